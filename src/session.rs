//! Running a session plan: clone and boot, one shell, and a delete that happens on every
//! way out (success, failure, non-zero exit, termination signals).

use std::fs;

use crate::error::{Error, IoContext, Result};
use crate::handover::Handover;
use crate::lima::{exit_code, Limactl};
use crate::plan::SessionPlan;
use crate::signals;
use crate::ui::Ui;

/// Runs the session and returns the exit code of claude or the command.
pub fn run(lima: &Limactl, ui: &Ui, plan: &SessionPlan) -> Result<i32> {
    for dir in &plan.host_dirs {
        fs::create_dir_all(dir).io_context("create", dir)?;
    }
    let handover = Handover::create(&plan.handover_dir, &plan.files)?;
    signals::install();
    let work = work(lima, ui, plan);

    let cleaning = signals::CleaningUp::begin();
    let step = ui.step(format!("deleting the VM {}", plan.instance));
    let deleted = lima.cleanup(&plan.delete, Some(&plan.instance));
    drop(cleaning);
    drop(handover);
    match deleted {
        Ok(()) => {
            step.done();
            work
        }
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

fn work(lima: &Limactl, ui: &Ui, plan: &SessionPlan) -> Result<i32> {
    let step = ui.step("cloning the template and booting the VM");
    lima.run(&plan.clone, Some(&plan.instance), None)?;
    step.done();
    if let Some(sig) = signals::received() {
        return Err(Error::failure(format!(
            "interrupted by {}",
            signals::name(sig)
        )));
    }
    let status = lima.run_attached(&plan.shell, Some(&plan.instance))?;
    Ok(exit_code(status))
}
