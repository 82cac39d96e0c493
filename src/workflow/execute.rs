//! Running a session plan: clone and boot, one shell, and a delete that happens on every
//! way out (success, failure, non-zero exit, termination signals).
//!
//! Around it: a journal entry from before the clone until after the delete (so a SIGKILLed
//! session is reaped by the next command), the template lock while cloning (so a rebuild
//! never swaps the template away under the clone), and a watch on the files the host
//! executes (so changes the agent made to them are reported loudly).

use std::path::PathBuf;

use crate::audit;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::handover::HandoverDir;
use crate::journal::{Entry, Journal};
use crate::lima::{exit_code, Limactl};
use crate::lock::{self, Mode};
use crate::paths::HostPaths;
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

/// What protects a session besides the plan itself: the records the run keeps (its journal
/// entry, the template lock it clones under, the audit watch). Plain data; nothing acts on drop.
pub struct Safeguards {
    pub journal: Journal,
    pub entry: Entry,
    pub template_lock: PathBuf,
    pub audit: audit::Watch,
    /// Where the clone's owner mark goes (`owner.rs`).
    pub paths: crate::paths::HostPaths,
    /// The network policy the session runs under (`session.started`).
    pub policy: &'static str,
}

/// Runs the session and returns the exit code of claude or the command.
pub fn run(
    lima: &Limactl,
    ui: &Ui,
    paths: &HostPaths,
    plan: &SessionPlan,
    guard: &Safeguards,
    start: Start,
) -> Result<i32> {
    signals::install();
    signals::check()?;
    let began = std::time::Instant::now();
    // Claude's conversation folders hold transcripts: the owner's only.
    for dir in &plan.host_dirs {
        crate::atomic::create_private_dir(dir)?;
    }
    // The audit's "before" goes into the journal entry: should this process be killed, the
    // command that reaps the session finishes the audit.
    let before = guard.audit.snapshot();
    let entry = Entry {
        audit: Some(audit::Pending {
            watch: guard.audit.clone(),
            before: before.clone(),
        }),
        ..guard.entry.clone()
    };
    // What is mounted must still be what was checked: no link anywhere in its path now, and
    // the same folder once the VM has booted.
    let mounted = mount_identities(plan)?;
    // For a warm clone this takes it over from the pool's keeper: the entry is replaced.
    guard.journal.record(&entry)?;
    let handover = match start {
        Start::Cold => HandoverDir::create(&plan.handover_dir, &plan.files),
        Start::Warm => HandoverDir::fill(&plan.handover_dir, &plan.files),
    };
    let handover = match handover {
        Ok(h) => h,
        Err(e) => {
            let _ = guard.journal.remove(&plan.instance);
            return Err(e);
        }
    };
    // A warm clone exists already: it must be deleted on every way out.
    let mut vm_exists = start == Start::Warm;
    let work = work(lima, ui, plan, guard, start, &mut vm_exists, &mounted);

    let deleted = if vm_exists {
        let _cleaning = signals::CleaningUp::begin();
        let step = ui.step(format!("deleting the VM {}", plan.instance));
        let deleted = lima.run_shielded(&plan.delete, Some(&plan.instance));
        if deleted.is_ok() {
            step.done();
        }
        deleted
    } else {
        Ok(())
    };
    drop(handover);
    // Before the entry goes: a SIGKILL from here on leaves the audit to the reaper.
    audit::report(
        ui,
        paths,
        &guard.audit,
        &plan.instance,
        audit::HEADLINE,
        &audit::changes(&before, &guard.audit.snapshot()),
    );
    if deleted.is_ok() {
        // Only now: until the VM is gone, the entry lets a later command finish the job.
        guard.journal.remove(&plan.instance)?;
    } else {
        // The audit is done: the reaper only has the VM left to delete.
        let _ = guard.journal.record(&guard.entry);
    }

    ui.event(Event::SessionEnded {
        exit_status: match &work {
            Ok(code) => *code,
            Err(e) => e.exit_code(),
        },
        duration_ms: began.elapsed().as_millis() as u64,
        vm_deleted: vm_exists && deleted.is_ok(),
    });
    if let (Ok(code), None) = (&work, signals::received()) {
        // Last, after the cleanup's lines, so it is what the user reads.
        if let Some(hint) = shell_hint(*code) {
            ui.warn(&hint);
        }
    }

    match deleted {
        // Like an interrupted setup: the line says why the session ended.
        Ok(()) => match (work, signals::received()) {
            (Ok(_), Some(sig)) => Err(Error::failure(format!(
                "the session was interrupted by {}; its VM {} is deleted",
                signals::name(sig),
                plan.instance
            ))),
            (work, _) => work,
        },
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

fn mount_identities(plan: &SessionPlan) -> Result<Vec<(u64, u64)>> {
    crate::hostfile::dir_identities(&plan.mounted_dirs)
}

/// What a failed session shell most likely means, and what to do.
fn shell_hint(code: i32) -> Option<String> {
    let hint = match code {
        126 => "the session's command ended with status 126: it is not executable in the VM\n  hint: check its permissions, or run it through its interpreter (e.g. `claude-vm shell -- bash script.sh`)",
        127 => "the session's command ended with status 127: it was not found in the VM\n  hint: check its name; install it in .claude-vm.setup.sh (then `claude-vm setup`), or open `claude-vm shell` and look around",
        255 => "`limactl shell` ended with status 255: the command's own status, or Lima lost the connection to the VM (its message would be above)\n  hint: retry with --verbose to see Lima's side; `limactl list` shows whether the VM is still running; if sessions keep failing, rebuild the template with `claude-vm setup`",
        _ => return None,
    };
    Some(hint.to_owned())
}

fn work(
    lima: &Limactl,
    ui: &Ui,
    plan: &SessionPlan,
    guard: &Safeguards,
    start: Start,
    vm_exists: &mut bool,
    mounted: &[(u64, u64)],
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
            *vm_exists = true;
            lima.run(&plan.clone_call, Some(&plan.instance), None)
                .map_err(signals::explain)?;
            // The clone carries the template's mark: it gets its own.
            crate::owner::mark(&guard.paths, &plan.instance)?;
        }
        step.done();
    }
    if mount_identities(plan)? != mounted {
        return Err(Error::failure(format!(
            "a folder the VM {} mounts changed while it booted (possibly from inside another VM): the session does not start",
            plan.instance
        ))
        .with_hint("look at the project's folders for a replaced directory, then run claude-vm again"));
    }
    signals::check()?;
    ui.event(Event::SessionStarted {
        project: guard.entry.project.display().to_string(),
        template: guard.entry.template.clone(),
        vm: plan.instance.clone(),
        policy: guard.policy.to_owned(),
        warm: start == Start::Warm,
    });
    let status = if ui.is_json() {
        let on_line = |line: &str| {
            if let Some((script, status)) = crate::events::runtime_script_failure(line) {
                ui.event(Event::RuntimeScriptFailed { script, status });
            }
            ui.event(Event::GuestStderr {
                line: line.to_owned(),
            });
        };
        lima.run_attached_lines(&plan.shell, Some(&plan.instance), &on_line)?
    } else {
        lima.run_attached(&plan.shell, Some(&plan.instance))?
    };
    Ok(exit_code(status))
}
