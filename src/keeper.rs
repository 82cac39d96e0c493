//! The warm pool's keeper: the one background process per template
//! that owns the pre-booted clones (in the journal), keeps as many ready as asked for, removes
//! those of an outdated template or configuration, and empties the pool once it has been unused
//! for `[pool] idle_minutes`.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::cli::{GlobalOpts, SessionOpts};
use crate::error::Result;
use crate::handover::HandoverDir;
use crate::journal::{now, Entry, Journal};
use crate::lock::{self, Mode};
use crate::names::Role;
use crate::pool::{Pool, Ready, State};
use crate::script::Final;
use crate::signals;
use crate::workflow::pool::{drain, keeper_announcement, wanted_size, BACKOFF, KEEPER_VAR};
use crate::workflow::prepare::{self as session, Basis, Purpose};
use crate::workflow::Context;

/// How often the keeper looks at the pool.
const TICK: Duration = Duration::from_secs(1);

/// Runs `clone` holding the template lock shared, like a session: never while a rebuild
/// swaps the template, and not at all when the lock cannot be taken.
fn under_template_lock<T>(path: &Path, clone: impl FnOnce() -> T) -> Result<T> {
    let _shared = lock::acquire(path, Mode::Shared, |_| {})?;
    Ok(clone())
}

/// In the keeper's process (started by `ensure_keeper`): keeps the pool and returns its exit
/// code; `None` in every other process.
pub fn keeper_if_asked() -> Option<i32> {
    std::env::var_os(KEEPER_VAR).filter(|v| v == "1")?;
    std::env::remove_var(KEEPER_VAR);
    let global = GlobalOpts {
        verbose: false,
        quiet: true,
        dry_run: false,
        json: false,
    };
    let code = match Context::new(&global, false).and_then(|ctx| keep(&ctx)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!(
                "claude-vm pool keeper: {}{}",
                crate::ui::escape_text(e.message(), true),
                e.hint()
                    .map(|h| format!("\n  hint: {h}"))
                    .unwrap_or_default()
            );
            1
        }
    };
    Some(code)
}

fn keep(ctx: &Context) -> Result<()> {
    let template = ctx.template()?;
    let pool = Pool::new(&ctx.paths, template.as_str());
    let Some(mut keeper) = lock::try_acquire(&pool.keeper_lock(), Mode::Exclusive)? else {
        return Ok(()); // another keeper has it
    };
    keeper.announce(&keeper_announcement());
    signals::install();
    let journal = Journal::new(&ctx.paths);
    let mut basis = session::prepare(ctx, &SessionOpts::default(), Purpose::Pool)?;
    adopt(&journal, &pool, &basis);
    let mut retry_at: Option<Instant> = None;
    // The fit is recomputed only when what it depends on changed (it may ask the host's gpg).
    let mut fitted: Option<Fit> = None;
    eprintln!(
        "claude-vm pool keeper {} started for {template}",
        std::process::id()
    );
    loop {
        if signals::received().is_some() {
            drain(ctx, &pool, &template, |_| true)?;
            return Ok(());
        }
        // What would a session use now? The template may have been rebuilt or removed.
        match session::prepare(ctx, &SessionOpts::default(), Purpose::Pool) {
            Ok(b) => basis = b,
            Err(e) => {
                drain(ctx, &pool, &template, |_| true)?;
                return Err(e);
            }
        }
        let state = pool.state();
        let idle = u64::from(basis.config.pool.idle_minutes) * 60;
        let wanted = wanted_size(&basis.config, &pool) as usize;
        let unused = now().saturating_sub(state.last_used) > idle;
        if wanted == 0 || unused {
            if wanted > 0 {
                eprintln!(
                    "claude-vm pool keeper: unused for {} minutes: removing its VMs",
                    basis.config.pool.idle_minutes
                );
                // Idle: the pool sleeps until a session or `warm` uses it again.
                pool.set_state(State {
                    size: None,
                    ..state
                })?;
            }
            drain(ctx, &pool, &template, |_| true)?;
            return Ok(());
        }
        let stamp = serde_json::to_string(&(&basis.config, &basis.manifest.fingerprint))
            .unwrap_or_default();
        let Fit {
            key, fingerprint, ..
        } = match &fitted {
            Some(f) if f.stamp == stamp => f.clone(),
            _ => {
                let f = fit(ctx, &basis, stamp)?;
                fitted = Some(f.clone());
                f
            }
        };
        drain(ctx, &pool, &template, |r| {
            r.key != key || r.fingerprint != fingerprint
        })?;
        let missing = wanted.saturating_sub(pool.ready().len());
        if missing > 0 && retry_at.is_none_or(|t| Instant::now() >= t) {
            let made = fill(ctx, &journal, &pool, &basis, missing);
            retry_at = (made < missing).then(|| Instant::now() + BACKOFF);
        }
        std::thread::sleep(TICK);
    }
}

/// What a session would need a pre-booted clone to have, and what it was computed from.
#[derive(Clone)]
struct Fit {
    /// The configuration and template fingerprint it was computed for.
    stamp: String,
    /// The pool key of the clone a session would make (`SessionPlan::pool_key`).
    key: String,
    /// The template's fingerprint digest.
    fingerprint: Option<String>,
}

/// The key and fingerprint a session would need a clone to have right now.
fn fit(ctx: &Context, basis: &Basis, stamp: String) -> Result<Fit> {
    let probe = basis.template.instance(Role::Warm);
    let plan = session::plan_for(ctx, &SessionOpts::default(), basis, probe, Final::Shell)?;
    Ok(Fit {
        stamp,
        key: plan.pool_key(),
        fingerprint: basis.manifest.fingerprint_digest(),
    })
}

/// Takes over clones a previous keeper left in the pool (it died; the reaper has not run).
fn adopt(journal: &Journal, pool: &Pool, basis: &Basis) {
    let ready: HashSet<String> = pool.ready().into_iter().map(|r| r.instance).collect();
    for e in journal.entries() {
        if e.role == Role::Warm && ready.contains(&e.instance) {
            let _ = journal.record(&Entry::owned_here(
                &e.instance,
                Role::Warm,
                basis.template.as_str(),
                &e.project,
            ));
        }
    }
}

/// Clones `n` VMs side by side (each booting takes as long as one), offering each to sessions
/// as soon as it is up. Returns how many were made.
fn fill(ctx: &Context, journal: &Journal, pool: &Pool, basis: &Basis, n: usize) -> usize {
    let made: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| s.spawn(|| make_one(ctx, journal, pool, basis)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(false))
            .collect()
    });
    made.into_iter().filter(|m| *m).count()
}

fn make_one(ctx: &Context, journal: &Journal, pool: &Pool, basis: &Basis) -> bool {
    let instance = basis.template.instance(Role::Warm);
    let Ok(plan) = session::plan_for(
        ctx,
        &SessionOpts::default(),
        basis,
        instance.clone(),
        Final::Shell,
    ) else {
        return false;
    };
    let entry = Entry::owned_here(
        &instance,
        Role::Warm,
        basis.template.as_str(),
        ctx.project.identity(),
    );
    for dir in &plan.host_dirs {
        let _ = crate::atomic::create_private_dir(dir);
    }
    if journal.record(&entry).is_err() || HandoverDir::prepare_empty(&plan.handover_dir).is_err() {
        let _ = journal.remove(&instance);
        return false;
    }
    let locked = under_template_lock(
        &lock::template_lock(&ctx.paths, basis.template.as_str()),
        || {
            ctx.lima
                .run(&plan.clone_call, Some(&instance), None)
                .map_err(crate::error::Error::from)
                .and_then(|()| crate::owner::mark(&ctx.paths, &instance))
        },
    );
    let cloned = match locked {
        Ok(cloned) => cloned,
        Err(e) => {
            // Nothing was cloned: nothing to delete.
            eprintln!(
                "claude-vm pool keeper: not cloning {instance}: {}",
                crate::ui::escape_text(e.message(), true)
            );
            let _ = journal.remove(&instance);
            let _ = std::fs::remove_dir_all(&plan.handover_dir);
            return false;
        }
    };
    match cloned {
        Ok(()) => {
            let ready = Ready {
                key: plan.pool_key(),
                settings: plan.pool_settings(),
                fingerprint: basis.manifest.fingerprint_digest(),
                created_at: now(),
                instance,
            };
            eprintln!("claude-vm pool keeper: {} is ready", ready.instance);
            pool.clear_failure();
            pool.add(&ready).is_ok()
        }
        Err(e) => {
            eprintln!(
                "claude-vm pool keeper: cannot boot {instance}: {}",
                crate::ui::escape_text(&e.to_string(), true)
            );
            pool.record_failure(&e.to_string());
            if ctx.lima.run_shielded(&plan.delete, Some(&instance)).is_ok() {
                let _ = journal.remove(&instance);
                let _ = std::fs::remove_dir_all(&plan.handover_dir);
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_clone_without_the_template_lock() {
        let tmp = tempfile::tempdir().unwrap();
        // A lock that cannot be opened (a directory in its place).
        let broken = tmp.path().join("t.template.lock");
        std::fs::create_dir(&broken).unwrap();
        let mut cloned = false;
        assert!(under_template_lock(&broken, || cloned = true).is_err());
        assert!(!cloned, "cloned without the lock");
        // With the lock: held for the whole clone, shared (a rebuild's swap waits).
        let path = tmp.path().join("u.template.lock");
        let during = under_template_lock(&path, || {
            (
                lock::try_acquire(&path, Mode::Exclusive).unwrap().is_none(),
                lock::try_acquire(&path, Mode::Shared).unwrap().is_some(),
            )
        })
        .unwrap();
        assert_eq!(during, (true, true));
        assert!(lock::try_acquire(&path, Mode::Exclusive).unwrap().is_some());
    }
}
