//! `claude-vm warm [N]`, and the warm pool's keeper: the one background process per template
//! that owns the pre-booted clones (in the journal), keeps as many ready as asked for, removes
//! those of an outdated template or configuration, and empties the pool once it has been unused
//! for `[pool] idle_minutes`.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::path::Path;
use std::time::{Duration, Instant};

use super::session::{self, Basis, Purpose};
use super::Context;
use crate::cli::{GlobalOpts, SessionOpts};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::handover::Handover;
use crate::journal::{now, Entry, Journal};
use crate::lima;
use crate::lock::{self, Mode};
use crate::names::{Role, TemplateName};
use crate::pool::{self, Pool, Ready, State};
use crate::procinfo::{Liveness, ProcessIdentity};
use crate::script::Final;
use crate::signals;

/// Set in the keeper's environment; the keeper runs in the project's directory.
const KEEPER_VAR: &str = "CLAUDE_VM_POOL_KEEPER";
/// How often the keeper looks at the pool.
const TICK: Duration = Duration::from_secs(1);
/// After a failed clone, how long the keeper waits before trying again.
const BACKOFF: Duration = Duration::from_secs(30);

/// The size the pool should have: what `claude-vm warm N` asked for last, else `[pool] size`.
pub fn wanted_size(config: &Config, pool: &Pool) -> u32 {
    pool.state().size.unwrap_or(config.pool.size)
}

/// `claude-vm warm [N]`: fills the pool to N ready clones (default `[pool] size`, or 1) and
/// returns once they are booted; `warm 0` empties it.
pub fn run(ctx: &Context, count: Option<u32>) -> Result<i32> {
    let basis = session::prepare(ctx, &SessionOpts::default(), Purpose::Pool)?;
    let n = count.unwrap_or(if basis.config.pool.size > 0 {
        basis.config.pool.size
    } else {
        1
    });
    if !crate::config::POOL_SIZE.contains(&n) {
        return Err(Error::usage(format!(
            "cannot keep {n} pre-booted VMs: at most {}",
            crate::config::POOL_SIZE.end()
        ))
        .with_hint("ask for fewer, e.g. `claude-vm warm 2`"));
    }
    let pool = Pool::new(&ctx.paths, basis.template.as_str());
    if ctx.dry_run {
        crate::outln!(
            "would keep {} of {} ready (no limactl call now)",
            super::clean::count(n as usize, "pre-booted clone"),
            basis.template
        );
        return Ok(0);
    }
    pool.set_state(State {
        size: Some(n),
        last_used: now(),
    })?;
    if n == 0 {
        let gone = drain(ctx, &pool, &basis.template, |_| true)?;
        ctx.ui.info(&format!(
            "the pool of {} is empty ({} removed)",
            ctx.project.identity().display(),
            super::clean::count(gone, "pre-booted VM")
        ));
        return Ok(0);
    }
    // A failure from before this `warm` is not this one's.
    pool.clear_failure();
    let began = now();
    ensure_keeper(ctx, &basis.config, basis.template.as_str());
    let fingerprint = basis
        .manifest
        .fingerprint
        .as_ref()
        .map(|f| f.digest.clone());
    let step = ctx.ui.step(format!(
        "booting {} for {}",
        super::clean::count(n as usize, "pre-booted VM"),
        ctx.project.identity().display()
    ));
    signals::install();
    // A keeper just started needs a moment to take its lock.
    let started = Instant::now();
    let mut seen_keeper = false;
    loop {
        signals::check()?;
        let ready = pool
            .ready()
            .iter()
            .filter(|r| r.fingerprint == fingerprint)
            .count();
        if ready >= n as usize {
            break;
        }
        // The keeper retries later; `warm` does not wait for that.
        if let Some(f) = pool.last_failure().filter(|f| f.at >= began) {
            return Err(Error::failure(format!(
                "a pre-booted VM could not be booted: {}",
                f.message
            ))
            .with_hint(format!(
                "the keeper tries again every {}s; its log: {}",
                BACKOFF.as_secs(),
                keeper_log(ctx, &basis.template).display()
            )));
        }
        match keeper_running(&pool) {
            Some(true) => seen_keeper = true,
            Some(false) if seen_keeper || started.elapsed() > Duration::from_secs(10) => {
                return Err(
                    Error::failure("the pool's keeper stopped before the VMs were ready")
                        .with_hint(format!(
                            "see its log: {}",
                            keeper_log(ctx, &basis.template).display()
                        )),
                );
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    step.done();
    ctx.ui.info(&format!(
        "{} ready: sessions of this project start without a boot; unused for {} the pool empties itself (`claude-vm warm 0` empties it now)",
        super::clean::count(n as usize, "pre-booted VM"),
        super::clean::count(basis.config.pool.idle_minutes as usize, "minute")
    ));
    Ok(0)
}

fn keeper_log(ctx: &Context, template: &TemplateName) -> std::path::PathBuf {
    ctx.paths
        .data_dir
        .join("logs")
        .join(format!("{template}.pool.log"))
}

/// Whether a keeper holds the pool (None: cannot tell).
fn keeper_running(pool: &Pool) -> Option<bool> {
    match lock::try_acquire(&pool.keeper_lock(), Mode::Exclusive) {
        Ok(Some(_)) => Some(false),
        Ok(None) => Some(true),
        Err(_) => None,
    }
}

/// Starts the pool's keeper in the background if the pool should have clones and no keeper
/// runs. Never waits and never fails the caller: the pool is an optimisation.
pub fn ensure_keeper(ctx: &Context, config: &Config, template: &str) {
    let pool = Pool::new(&ctx.paths, template);
    if ctx.dry_run || wanted_size(config, &pool) == 0 || keeper_running(&pool) != Some(false) {
        return;
    }
    if pool.state().size.is_none() {
        // A pool from `[pool] size`: its idle time counts from now.
        let _ = pool.touch();
    }
    let Ok(template) = ctx.template() else { return };
    let log_path = keeper_log(ctx, &template);
    if let Some(dir) = log_path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let spawned = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .and_then(|log| crate::detach::spawn_self(KEEPER_VAR, &ctx.project.root, log));
    if let Err(e) = spawned {
        ctx.ui
            .warn(&format!("cannot start the warm pool's keeper: {e}"));
    }
}

/// Stops the pool's keeper (it removes its clones as it goes) and keeps any other from
/// starting until the returned lock is dropped.
pub fn pause(ctx: &Context, pool: &Pool, template: &TemplateName) -> Result<lock::Lock> {
    let path = pool.keeper_lock();
    if let Some(held) = lock::try_acquire(&path, Mode::Exclusive)? {
        return Ok(held);
    }
    let holder = std::fs::read_to_string(&path).unwrap_or_default();
    if let Some(pid) = live_keeper(&holder) {
        // SAFETY: asking the keeper (the very process named in its lock) to stop.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let mut held = lock::acquire(&path, Mode::Exclusive, |_| {
        ctx.ui
            .info(&format!("waiting for the warm pool of {template} to stop"))
    })?;
    // No keeper holds it now: a later `pause` must not signal the one named there.
    held.announce("");
    Ok(held)
}

/// What a keeper writes into its lock: its process identity, so that `pause` never signals a
/// pid that a dead keeper left behind and another process may have by now.
fn keeper_announcement() -> String {
    ProcessIdentity::current()
        .and_then(|id| serde_json::to_string(&id).ok())
        .unwrap_or_default()
}

/// The pid to ask to stop: only a keeper's identity whose process is still that keeper.
fn live_keeper(holder: &str) -> Option<libc::pid_t> {
    let id: ProcessIdentity = serde_json::from_str(holder.trim()).ok()?;
    let pid = libc::pid_t::try_from(id.pid).ok().filter(|p| *p > 0)?;
    (id.liveness() == Liveness::Alive).then_some(pid)
}

/// Runs `clone` holding the template lock shared, like a session: never while a rebuild
/// swaps the template, and not at all when the lock cannot be taken.
fn under_template_lock<T>(path: &Path, clone: impl FnOnce() -> T) -> Result<T> {
    let _shared = lock::acquire(path, Mode::Shared, |_| {})?;
    Ok(clone())
}

/// Claims every ready clone that `doomed` picks and deletes them in one call. Returns how
/// many went.
pub fn drain(
    ctx: &Context,
    pool: &Pool,
    template: &TemplateName,
    doomed: impl Fn(&Ready) -> bool,
) -> Result<usize> {
    let mut names = Vec::new();
    for r in pool.ready() {
        if doomed(&r) && pool.claim(&r.instance)? {
            names.push(r.instance);
        }
    }
    // Pool records are ours, but the VMs they name must be too (`owner.rs`).
    let names = crate::owner::deletable(&ctx.paths, &ctx.ui, &names, &[]);
    if names.is_empty() {
        return Ok(0);
    }
    let _cleaning = signals::CleaningUp::begin();
    let step = ctx.ui.step(format!(
        "removing pre-booted VMs of {template}: {}",
        names.join(", ")
    ));
    ctx.lima.cleanup(&lima::delete(&names), None)?;
    step.done();
    let journal = Journal::new(&ctx.paths);
    for name in &names {
        journal.remove(name)?;
        pool.forget(name);
        let _ = std::fs::remove_dir_all(ctx.paths.handover_root().join(name));
    }
    Ok(names.len())
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
    let mut fitted: Option<(String, (String, Option<String>))> = None;
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
        let (key, fingerprint) = match &fitted {
            Some((s, fit)) if *s == stamp => fit.clone(),
            _ => {
                let fit = fit(ctx, &basis)?;
                fitted = Some((stamp, fit.clone()));
                fit
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

/// The key and fingerprint a session would need a clone to have right now.
fn fit(ctx: &Context, basis: &Basis) -> Result<(String, Option<String>)> {
    let probe = basis.template.instance(Role::Warm);
    let plan = session::plan_for(ctx, &SessionOpts::default(), basis, probe, Final::Shell)?;
    let key = pool::key(&plan.clone, &plan.instance, &plan.handover_dir);
    Ok((
        key,
        basis
            .manifest
            .fingerprint
            .as_ref()
            .map(|f| f.digest.clone()),
    ))
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
    if journal.record(&entry).is_err() || Handover::prepare_empty(&plan.handover_dir).is_err() {
        let _ = journal.remove(&instance);
        return false;
    }
    let locked = under_template_lock(
        &lock::template_lock(&ctx.paths, basis.template.as_str()),
        || {
            ctx.lima
                .run(&plan.clone, Some(&instance), None)
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
                key: pool::key(&plan.clone, &plan.instance, &plan.handover_dir),
                settings: pool::settings(&plan.clone, &plan.instance, &plan.handover_dir),
                fingerprint: basis
                    .manifest
                    .fingerprint
                    .as_ref()
                    .map(|f| f.digest.clone()),
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
            if ctx.lima.cleanup(&plan.delete, Some(&instance)).is_ok() {
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
    fn only_a_live_keeper_named_by_its_identity_is_signalled() {
        let me = ProcessIdentity::current().expect("this process has an identity");
        let alive = serde_json::to_string(&me).unwrap();
        assert_eq!(live_keeper(&alive), Some(me.pid as libc::pid_t));
        // The same pid started at another time: a dead keeper's pid, reused.
        let reused = ProcessIdentity {
            start: me.start + 1,
            ..me.clone()
        };
        assert_eq!(live_keeper(&serde_json::to_string(&reused).unwrap()), None);
        // A keeper of an earlier boot.
        let rebooted = ProcessIdentity {
            boot: format!("{}-before", me.boot),
            ..me.clone()
        };
        assert_eq!(
            live_keeper(&serde_json::to_string(&rebooted).unwrap()),
            None
        );
        // An exited process.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let exited = ProcessIdentity { pid, ..me.clone() };
        assert_eq!(live_keeper(&serde_json::to_string(&exited).unwrap()), None);
        // Bare pids (the old format), pids that signal a group, and nothing at all.
        for text in ["", "pid 1", &std::process::id().to_string(), "garbage"] {
            assert_eq!(live_keeper(text), None, "{text:?}");
        }
        for pid in [0, u32::MAX, i32::MAX as u32 + 1] {
            let group = ProcessIdentity { pid, ..me.clone() };
            assert_eq!(live_keeper(&serde_json::to_string(&group).unwrap()), None);
        }
    }

    #[test]
    fn the_keeper_announces_its_identity() {
        let text = keeper_announcement();
        let id: ProcessIdentity = serde_json::from_str(&text).unwrap();
        assert_eq!(id, ProcessIdentity::current().unwrap());
        assert_eq!(live_keeper(&text), Some(std::process::id() as libc::pid_t));
    }

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
