//! `claude-vm warm [N]`: the size of the project's warm pool, and waiting until it is ready.

use std::time::{Duration, Instant};

use super::Context;
use crate::cli::SessionOpts;
use crate::error::{Error, Result};
use crate::journal::now;
use crate::pool::{Pool, State};
use crate::signals;
use crate::workflow::pool as control;
use crate::workflow::prepare::{self, Purpose};

/// `claude-vm warm [N]`: fills the pool to N ready clones (default `[pool] size`, or 1) and
/// returns once they are booted; `warm 0` empties it.
pub fn run(ctx: &Context, count: Option<u32>) -> Result<i32> {
    let basis = prepare::prepare(ctx, &SessionOpts::default(), Purpose::Pool)?;
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
            crate::ui::count(n as usize, "pre-booted clone"),
            basis.template
        );
        return Ok(0);
    }
    pool.set_state(State {
        size: Some(n),
        last_used: now(),
    })?;
    if n == 0 {
        // The keeper may be booting clones this moment: stop it first (it removes what it
        // made on its way out), so that none appears once `warm 0` has returned.
        let _paused = control::pause(ctx, &pool, &basis.template)?;
        let gone = control::drain(ctx, &pool, &basis.template, |_| true)?;
        ctx.ui.info(&format!(
            "the pool of {} is empty ({} removed)",
            ctx.project.identity().display(),
            crate::ui::count(gone, "pre-booted VM")
        ));
        return Ok(0);
    }
    // A failure from before this `warm` is not this one's.
    pool.clear_failure();
    let began = now();
    control::ensure_keeper(ctx, &basis.config, basis.template.as_str());
    let fingerprint = basis.manifest.fingerprint_digest();
    let step = ctx.ui.step(format!(
        "booting {} for {}",
        crate::ui::count(n as usize, "pre-booted VM"),
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
                control::BACKOFF.as_secs(),
                control::keeper_log(ctx, &basis.template).display()
            )));
        }
        match control::keeper_running(&pool) {
            Some(true) => seen_keeper = true,
            Some(false) if seen_keeper || started.elapsed() > Duration::from_secs(10) => {
                return Err(
                    Error::failure("the pool's keeper stopped before the VMs were ready")
                        .with_hint(format!(
                            "see its log: {}",
                            control::keeper_log(ctx, &basis.template).display()
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
        crate::ui::count(n as usize, "pre-booted VM"),
        crate::ui::count(basis.config.pool.idle_minutes as usize, "minute")
    ));
    Ok(0)
}
