//! The warm pool's control: the size wanted, starting the keeper, pausing it while a template
//! changes, and draining clones (the records are `crate::pool`, the daemon `crate::keeper`).

use std::fs::OpenOptions;
use std::time::Duration;

use super::Context;
use crate::config::Config;
use crate::error::Result;
use crate::journal::Journal;
use crate::lima;
use crate::lock::{self, Mode};
use crate::names::TemplateName;
use crate::pool::{Pool, Ready};
use crate::procinfo::{Liveness, ProcessIdentity};
use crate::signals;

/// Set in the keeper's environment; the keeper runs in the project's directory.
pub(crate) const KEEPER_VAR: &str = "CLAUDE_VM_POOL_KEEPER";
/// After a failed clone, how long the keeper waits before trying again.
pub(crate) const BACKOFF: Duration = Duration::from_secs(30);

/// The size the pool should have: what `claude-vm warm N` asked for last, else `[pool] size`.
pub fn wanted_size(config: &Config, pool: &Pool) -> u32 {
    pool.state().size.unwrap_or(config.pool.size)
}

pub(crate) fn keeper_log(ctx: &Context, template: &TemplateName) -> std::path::PathBuf {
    ctx.paths.template_log(template.as_str(), "pool")
}

/// Whether a keeper holds the pool (None: cannot tell).
pub(crate) fn keeper_running(pool: &Pool) -> Option<bool> {
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
pub(crate) fn keeper_announcement() -> String {
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
    let names = crate::owner::deletable(&ctx.paths, &|m| ctx.ui.warn(m), &names, &[]);
    if names.is_empty() {
        return Ok(0);
    }
    let _cleaning = signals::CleaningUp::begin();
    let step = ctx.ui.step(format!(
        "removing pre-booted VMs of {template}: {}",
        names.join(", ")
    ));
    ctx.lima.run_shielded(&lima::delete(&names), None)?;
    step.done();
    let journal = Journal::new(&ctx.paths);
    for name in &names {
        journal.remove(name)?;
        pool.forget(name);
        let _ = std::fs::remove_dir_all(ctx.paths.handover_root().join(name));
    }
    Ok(names.len())
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
}
