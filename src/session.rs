//! Running a session plan: clone and boot, one shell, and a delete that happens on every
//! way out (success, failure, non-zero exit, termination signals).
//!
//! Around it: a journal entry from before the clone until after the delete (so a SIGKILLed
//! session is reaped by the next command), the template lock while cloning (so a rebuild
//! never swaps the template away under the clone), and a watch on the files the host
//! executes (so changes the agent made to them are reported loudly).

use std::fs;
use std::path::PathBuf;

use crate::audit;
use crate::error::{Error, IoContext, Result};
use crate::handover::Handover;
use crate::journal::{Entry, Journal};
use crate::lima::{exit_code, Limactl};
use crate::lock::{self, Mode};
use crate::plan::SessionPlan;
use crate::signals;
use crate::ui::Ui;

/// Where the session's VM comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Cloned from the template and booted by this session.
    Cold,
    /// Taken from the warm pool: already booted, with the session's mounts and an empty
    /// hand-over directory; only the hand-over files and one `limactl shell` remain.
    Warm,
}

/// What protects a session besides the plan itself.
pub struct Guard {
    pub journal: Journal,
    pub entry: Entry,
    pub template_lock: PathBuf,
    pub audit: audit::Watch,
    /// Where the clone's owner mark goes (`owner.rs`).
    pub paths: crate::paths::HostPaths,
}

/// Runs the session and returns the exit code of claude or the command.
pub fn run(
    lima: &Limactl,
    ui: &Ui,
    plan: &SessionPlan,
    guard: &Guard,
    start: Start,
) -> Result<i32> {
    signals::install();
    signals::check()?;
    for dir in &plan.host_dirs {
        fs::create_dir_all(dir).io_context("create", dir)?;
    }
    // For a warm clone this takes it over from the pool's keeper: the entry is replaced.
    guard.journal.record(&guard.entry)?;
    let handover = match start {
        Start::Cold => Handover::create(&plan.handover_dir, &plan.files),
        Start::Warm => Handover::fill(&plan.handover_dir, &plan.files),
    };
    let handover = match handover {
        Ok(h) => h,
        Err(e) => {
            let _ = guard.journal.remove(&plan.instance);
            return Err(e);
        }
    };
    let before = guard.audit.snapshot();

    // A warm clone exists already: it must be deleted on every way out.
    let mut cloning = start == Start::Warm;
    let work = work(lima, ui, plan, guard, start, &mut cloning);

    let deleted = if cloning {
        let _cleaning = signals::CleaningUp::begin();
        let step = ui.step(format!("deleting the VM {}", plan.instance));
        let deleted = lima.cleanup(&plan.delete, Some(&plan.instance));
        if deleted.is_ok() {
            step.done();
        }
        deleted
    } else {
        Ok(())
    };
    drop(handover);
    if deleted.is_ok() {
        // Only now: until the VM is gone, the entry lets a later command finish the job.
        guard.journal.remove(&plan.instance)?;
    }
    audit::report(ui, &audit::changes(&before, &guard.audit.snapshot()));

    match deleted {
        Ok(()) => work,
        Err(e) => {
            let leak = Error::failure(format!(
                "the VM {} could not be deleted and may still be running: {e}",
                plan.instance
            ))
            .with_hint(e.hint());
            match work {
                // The command's own failure stays the exit status; the leak is still reported.
                Ok(code) if code != 0 => {
                    crate::report(&leak);
                    Ok(code)
                }
                Ok(_) => Err(leak),
                Err(first) => {
                    crate::report(&leak);
                    Err(first)
                }
            }
        }
    }
}

fn work(
    lima: &Limactl,
    ui: &Ui,
    plan: &SessionPlan,
    guard: &Guard,
    start: Start,
    cloning: &mut bool,
) -> Result<i32> {
    if start == Start::Cold {
        let step = ui.step("cloning the template and booting the VM");
        {
            // Shared: sessions clone side by side; a rebuild's swap waits for them, and they
            // wait for it.
            let _template = lock::acquire(&guard.template_lock, Mode::Shared, |_| {
                ui.info("waiting for a rebuild to put the new template in place")
            })?;
            signals::check()?;
            *cloning = true;
            lima.run(&plan.clone, Some(&plan.instance), None)
                .map_err(signals::explain)?;
            // The clone carries the template's mark: it gets its own.
            crate::owner::mark(&guard.paths, &plan.instance)?;
        }
        step.done();
    }
    signals::check()?;
    let status = lima.run_attached(&plan.shell, Some(&plan.instance))?;
    let code = exit_code(status);
    if code == 255 && signals::received().is_none() {
        ui.warn("`limactl shell` ended with status 255: the command's own status, or Lima lost the connection to the VM (its message would be above; --verbose shows more)");
    }
    Ok(code)
}
