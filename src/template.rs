//! Templates: building one from a setup plan, and the manifest that records a complete build.
//!
//! A template counts as ready only once its manifest exists: setup writes it after the VM
//! is provisioned and stopped, so a session never clones a half-built template. A rebuild
//! swaps the new template in (`swap.rs`: old aside, new in, manifest, old deleted, journaled)
//! while holding the template lock exclusively, and sessions read the manifest and clone under the same lock
//! shared: they get the old template or the new one, never the moment in between.

use std::fs::{self, File};
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::journal::{Entry, Journal};
use crate::lima::Call;
use crate::lima::Limactl;
use crate::lock::{self, Mode};
use crate::names::Role;
use crate::paths::HostPaths;
use crate::plan::{BasePlan, Boot, FileSource, HandoverFile, SetupPlan};
use crate::signals;
use crate::ui::Ui;

pub use crate::manifest::{
    all_bases, all_manifests, read_base, read_manifest, remove_base, remove_manifest, users_of,
    write_manifest, BaseRecord, Manifest, SetupFlags,
};

/// Runs a setup plan and writes `manifest` once the template is in place. On any failure
/// (or a termination signal) the instance being built is deleted, so a failed setup leaves
/// nothing behind and an old template keeps working. The build is in the journal from
/// before `create`/`clone` until it is swapped in or deleted, so a SIGKILLed setup is reaped
/// later. `base_lock` (the shared base's, held so nobody removes the base while it is
/// cloned) is released once the manifest that names the base is written.
pub fn build(
    lima: &Limactl,
    ui: &Ui,
    paths: &HostPaths,
    plan: &SetupPlan,
    log_path: &Path,
    manifest: &Manifest,
    base_lock: Option<lock::Lock>,
) -> Result<Option<i32>> {
    let journal = Journal::new(paths);
    journal.record(&Entry::owned_here(
        &plan.build,
        Role::Build,
        plan.template.as_str(),
        &manifest.project,
    ))?;
    let shared = plan.base.is_some();
    let mut steps: Vec<(&str, &Call)> = match &plan.boot {
        Boot::Create { create, start } => {
            vec![("creating the VM", create), ("booting the VM", start)]
        }
        Boot::Clone(clone) if plan.provisioned => {
            vec![("cloning the shared base and booting it", clone)]
        }
        Boot::Clone(clone) => vec![("cloning the shared base", clone)],
    };
    if plan.provisioned {
        steps.push((
            if shared {
                "provisioning: the project's setup scripts"
            } else {
                "provisioning: packages, tools, Claude Code, setup scripts"
            },
            &plan.provision,
        ));
        steps.push(("stopping the VM", &plan.stop));
    }
    let vm = Vm {
        build: &plan.build,
        steps,
        maker: plan.boot.maker(),
        provision: &plan.provision,
        stop: &plan.stop,
        login: plan.login.as_ref(),
        mounted_dirs: &plan.mounted_dirs,
        cleanup: &plan.cleanup,
        files: &plan.files,
        total: shown_steps(plan),
        base_lock,
    };
    let result = build_recorded(lima, ui, paths, vm, log_path, || {
        install(lima, ui, paths, plan, manifest)
    });
    match &result {
        Ok(_) | Err(Failed { cleaned: true, .. }) => journal.remove(&plan.build)?,
        Err(Failed { cleaned: false, .. }) => {}
    }
    result.map_err(|f| f.error)
}

/// The numbered steps of a template build: boot, provision, stop, and a rebuild's swap.
fn shown_steps(plan: &SetupPlan) -> usize {
    plan.boot.calls().len() + 2 * usize::from(plan.provisioned) + usize::from(plan.is_rebuild())
}

/// Builds the shared base `base` (its lock held by the caller) and writes its record once
/// it is stopped. Journaled like a template build; a failure removes it.
pub fn build_base(
    lima: &Limactl,
    ui: &Ui,
    paths: &HostPaths,
    base: &BasePlan,
    log_path: &Path,
    project: &Path,
    record: &BaseRecord,
) -> Result<()> {
    let journal = Journal::new(paths);
    journal.record(&Entry::owned_here(
        &base.name,
        Role::Build,
        &base.name,
        project,
    ))?;
    let vm = Vm {
        build: &base.name,
        steps: vec![
            ("creating the shared base", &base.create),
            ("booting the shared base", &base.start),
            (
                "provisioning the shared base: packages, tools, Claude Code",
                &base.provision,
            ),
            ("stopping the shared base", &base.stop),
        ],
        maker: &base.create,
        provision: &base.provision,
        stop: &base.stop,
        login: None,
        mounted_dirs: &[],
        cleanup: &base.cleanup,
        files: &base.files,
        total: 4,
        base_lock: None,
    };
    let result = build_recorded(lima, ui, paths, vm, log_path, || {
        let mut record = record.clone();
        record.claude_code = fs::read_to_string(log_path)
            .ok()
            .and_then(|text| installed_claude(&text));
        Ok(crate::manifest::write_base(paths, &record)?)
    });
    match &result {
        Ok(_) | Err(Failed { cleaned: true, .. }) => journal.remove(&base.name)?,
        Err(Failed { cleaned: false, .. }) => {}
    }
    result.map(|_| ()).map_err(|f| f.error)
}

/// The version the provisioning script reported (`Claude Code 2.1.3`), from the build's
/// output; it comes from the guest, so only a version's characters are kept.
pub fn installed_claude(build_output: &str) -> Option<String> {
    let line = build_output
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("Claude Code "))
        .find(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))?;
    let version: String = line
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || ".+-".contains(*c))
        .take(40)
        .collect();
    (!version.is_empty()).then_some(version)
}

/// One VM being built: its steps in order and what they need.
struct Vm<'a> {
    build: &'a str,
    steps: Vec<(&'a str, &'a Call)>,
    /// The call that makes the instance: it is marked ours once that succeeds.
    maker: &'a Call,
    provision: &'a Call,
    stop: &'a Call,
    login: Option<&'a Call>,
    mounted_dirs: &'a [std::path::PathBuf],
    cleanup: &'a Call,
    files: &'a [HandoverFile],
    /// Steps shown, the swap included.
    total: usize,
    /// Released once `maker` is done.
    base_lock: Option<lock::Lock>,
}

struct Failed {
    error: Error,
    /// The half-built instance is gone (or never existed).
    cleaned: bool,
}

fn build_recorded(
    lima: &Limactl,
    ui: &Ui,
    paths: &HostPaths,
    vm: Vm,
    log_path: &Path,
    install: impl FnOnce() -> Result<(), Installed>,
) -> Result<Option<i32>, Failed> {
    let early = |error| Failed {
        error,
        cleaned: true,
    };
    let bundle = provisioning_bundle(vm.files).map_err(early)?;
    if let Some(dir) = log_path.parent() {
        fs::create_dir_all(dir)
            .io_context("create", dir)
            .map_err(early)?;
    }
    let log = File::create(log_path)
        .io_context("create", log_path)
        .map_err(early)?;
    let (build, cleanup) = (vm.build, vm.cleanup);
    // Held until the manifest that names the base is written: a gc in between would see a
    // base no template uses yet.
    let mut vm = vm;
    let base_lock = vm.base_lock.take();
    let result = run_steps(lima, ui, paths, vm, &log, bundle)
        .map_err(Installed::Before)
        .and_then(|login| install().map(|()| login));
    drop(base_lock);
    let err = match result {
        Ok(login) => return Ok(login),
        // The swap settles its own failures (the build is gone or recorded with the swap).
        Err(Installed::Swap(error)) => {
            return Err(Failed {
                error,
                cleaned: true,
            })
        }
        Err(Installed::Before(err)) => err,
    };
    let cleaned = {
        let _cleaning = signals::CleaningUp::begin();
        let step = ui.step(format!("removing the unfinished VM {build}"));
        match lima.run_shielded(cleanup, Some(build)) {
            Ok(()) => {
                step.done();
                true
            }
            Err(e) => {
                ui.warn(&format!("could not remove {build}: {e}\n  {}", e.hint()));
                false
            }
        }
    };
    // Lima's hint may say what to do with the build VM; once it is removed, it must not.
    let hint = err
        .hint()
        .filter(|h| !(cleaned && h.contains(build)))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            if cleaned {
                "the unfinished VM was removed; run `claude-vm setup` again (`--verbose` shows Lima's output)".to_owned()
            } else {
                "run `claude-vm setup` again".to_owned()
            }
        });
    let hint = format!("{hint}\nfull output of the build: {}", log_path.display());
    Err(Failed {
        error: Error::failure(err.message().to_owned()).with_hint(hint),
        cleaned,
    })
}

fn run_steps(
    lima: &Limactl,
    ui: &Ui,
    paths: &HostPaths,
    mut vm: Vm,
    log: &File,
    bundle: String,
) -> Result<Option<i32>> {
    let total = vm.total;
    let mut login = None;
    // The setup mounts must be what was checked when Lima mounts them at boot: no link in
    // their paths before the create, and the same folders once the VM has booted.
    let mounted = crate::hostfile::dir_identities(vm.mounted_dirs)?;
    let steps = std::mem::take(&mut vm.steps);
    for (n, (what, call)) in steps.into_iter().enumerate() {
        signals::check()?;
        if call == vm.provision && crate::hostfile::dir_identities(vm.mounted_dirs)? != mounted {
            return Err(Error::failure(format!(
                "a setup mount of {} changed while it booted (possibly from inside a VM of this project): nothing was provisioned",
                vm.build
            ))
            .with_hint("look at the setup mounts' folders for a replaced directory, then run `claude-vm setup` again"));
        }
        if call == vm.stop {
            if let Some(call) = vm.login {
                ui.info(
                    "logging in to Claude Code in the template (follow the instructions below)",
                );
                let status = lima
                    .run_attached(call, Some(vm.build))
                    .map_err(signals::explain)?;
                login = Some(crate::lima::exit_code(status));
                signals::check()?;
            }
        }
        let step = ui.step(format!("[{}/{total}] {what}", n + 1));
        let ran = if call == vm.provision {
            lima.run_with_input(
                call,
                Some(vm.build),
                log.try_clone().ok(),
                bundle.clone().into_bytes(),
            )
        } else {
            lima.run(call, Some(vm.build), log.try_clone().ok())
        };
        if call == vm.provision {
            ran.map_err(|e| signals::explain(guest_step_failed(e)))?;
        } else {
            ran.map_err(signals::explain)?;
        }
        if call == vm.maker {
            // Ours from the moment it exists (`owner.rs`); renames keep the mark, a clone's
            // copy of the base's is overwritten.
            crate::owner::mark(paths, vm.build)?;
        }
        step.done();
    }
    Ok(login)
}

/// How putting the finished build in place failed.
enum Installed {
    /// Before anything moved: the build is still to be removed.
    Before(Error),
    /// During the swap, which settled (or recorded) the build itself.
    Swap(Error),
}

impl From<Error> for Installed {
    fn from(e: Error) -> Installed {
        Installed::Before(e)
    }
}

/// Puts the finished, stopped build in place as the template, under the template lock.
fn install(
    lima: &Limactl,
    ui: &Ui,
    paths: &HostPaths,
    plan: &SetupPlan,
    manifest: &Manifest,
) -> Result<(), Installed> {
    signals::check()?;
    let _swap = lock::acquire(
        &lock::template_lock(paths, plan.template.as_str()),
        Mode::Exclusive,
        |_| ui.info("waiting for sessions that are cloning the old template"),
    )?;
    signals::check()?;
    let Some(aside) = &plan.aside else {
        return Ok(write_manifest(paths, manifest)?);
    };
    let total = shown_steps(plan);
    let step = ui.step(format!("[{total}/{total}] replacing the old template"));
    let swap = crate::swap::Swap {
        template: plan.template.to_string(),
        build: plan.build.clone(),
        aside: aside.clone(),
        manifest: manifest.clone(),
    };
    crate::swap::begin(paths, &swap)?;
    crate::swap::perform(lima, ui, paths, &swap).map_err(Installed::Swap)?;
    step.done();
    Ok(())
}

/// The plan's files (the provisioning script last) as one script for `bash -s`.
fn provisioning_bundle(plan_files: &[HandoverFile]) -> Result<String> {
    let mut files = Vec::new();
    for f in plan_files {
        let bytes = match &f.source {
            FileSource::Text(t) => t.clone().into_bytes(),
            FileSource::Copy(copy) => copy.read()?,
        };
        files.push((f.name.clone(), bytes));
    }
    let entry = plan_files
        .last()
        .map(|f| f.name.as_str())
        .unwrap_or("provision.sh");
    Ok(crate::script::bundle(&files, entry))
}

/// A provisioning step that failed in the guest is named, with what the script said
/// (`cvm_fail`), instead of Lima's hint; Lima's own failure (ssh's 255, no step begun) keeps
/// Lima's hint.
fn guest_step_failed(e: crate::lima::LimaError) -> Error {
    let crate::lima::LimaErrorKind::Failed {
        code: Some(code),
        stderr,
    } = &e.kind
    else {
        return e.into();
    };
    let step = stderr
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("==> ["))
        .and_then(|l| l.split_once("] "))
        .map(|(_, what)| what.to_owned());
    let (true, Some(step)) = (*code != 255, step) else {
        return e.into();
    };
    let said = stderr
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("claude-vm: "))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("a command exited with status {code}"));
    let script = step.strip_prefix("running setup script ");
    let hint = match script {
        Some(label) => format!(
            "fix the setup script {label} (it must exit 0) and run `claude-vm setup` again"
        ),
        None if said.contains("setup script") => {
            "fix that script (it must exit 0) and run `claude-vm setup` again".to_owned()
        }
        None => "the step's output is above; run `claude-vm setup` again (a download that failed may pass), with --verbose to watch it".to_owned(),
    };
    let detail: Vec<String> = e.to_string().lines().skip(1).map(str::to_owned).collect();
    Error::failure(format!(
        "the template's provisioning failed at \"{step}\": {said}\n{}",
        detail.join("\n")
    ))
    .with_hint(hint)
}

#[cfg(test)]
mod guest_step_tests {
    use super::*;
    use crate::lima::{LimaError, LimaErrorKind, Verb};

    fn failed(code: i32, stderr: &str) -> Error {
        guest_step_failed(LimaError {
            verb: Verb::Shell,
            instance: Some("b".into()),
            command: "limactl shell b bash -s".into(),
            kind: LimaErrorKind::Failed {
                code: Some(code),
                stderr: stderr.into(),
            },
        })
    }

    #[test]
    fn a_failing_step_is_named_and_lima_keeps_its_own_failures() {
        let e = failed(
            1,
            "==> [1/3] installing packages\n==> [3/3] running setup script ./s.sh\nclaude-vm: setup script ./s.sh failed with status 3\n",
        );
        assert!(e.message().starts_with("the template's provisioning failed at \"running setup script ./s.sh\": setup script ./s.sh failed with status 3"), "{}", e.message());
        assert!(
            e.message().contains("limactl said"),
            "the output stays: {}",
            e.message()
        );
        assert!(e.hint().unwrap().contains("fix the setup script ./s.sh"));
        assert!(!e.hint().unwrap().contains("Lima could not"));
        let e = failed(
            100,
            "==> [2/4] setting up rust\ncurl: (6) Could not resolve host\n",
        );
        assert!(
            e.message()
                .contains("at \"setting up rust\": a command exited with status 100"),
            "{}",
            e.message()
        );
        assert!(e.hint().unwrap().contains("run `claude-vm setup` again"));
        // ssh failed, or nothing ran: Lima's words.
        for (code, out) in [
            (255, "==> [1/3] installing packages\n"),
            (1, "ssh: connect refused\n"),
        ] {
            let e = failed(code, out);
            assert!(
                e.hint().unwrap().contains("Lima could not run the command"),
                "{code}"
            );
        }
    }
}
