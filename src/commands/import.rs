//! `claude-vm import FILE [--project DIR]`: installs an exported template as this project's.
//!
//! Everything about the file is checked before anything is written: its frame and format,
//! architecture and VM type, the payload's SHA-256 and every entry (`archive::read`). Then it
//! is unpacked into a folder Lima ignores (`$LIMA_HOME/.claude-vm-import-*`, same file
//! system), renamed into an instance name in one step, given a fresh identity (no cidata, ssh
//! config, sockets or vz-identifier came along, so Lima makes new ones at boot; the guest
//! user is dropped from lima.yaml with `limactl edit`, so Lima fills in this host's user; a
//! new owner mark), its home handed to that user in one boot when the users differ, and put
//! in place like a rebuilt template (`swap.rs`), so an existing template serves sessions
//! until the new one is complete.
//!
//! Writing the instance directory is the only way in: Lima has no import, and `limactl
//! create` from a disk image would build a fresh VM. The directory written is what `limactl
//! clone` writes (pkg/instance/clone.go copies the instance folder file by file, skipping
//! what belongs to one instance), and `limactl list` must then show it Stopped.

use std::io::{Read, Seek};
use std::path::Path;

use super::Context;
use crate::archive::{self, format, guest};
use crate::cli::ImportArgs;
use crate::error::{Error, IoContext, Result};
use crate::journal::{Entry, Journal};
use crate::lima::{self, SetExpr, ShellSpec};
use crate::lock::{self, Mode};
use crate::names::{Role, TemplateName};
use crate::signals;
use crate::template;

/// Resolves FILE against the current directory, then enters `--project DIR`, so the rest
/// of the command sees that project as its own.
pub fn enter_project(args: &mut ImportArgs) -> Result<()> {
    let cwd = std::env::current_dir().io_context("read the current directory", ".")?;
    args.file = cwd.join(&args.file);
    if let Some(dir) = &args.project {
        std::env::set_current_dir(dir).map_err(|e| {
            Error::usage(format!("--project {}: {e}", dir.display()))
                .with_hint("give the folder of the project (a git repository) to import for")
        })?;
    }
    Ok(())
}

pub fn run(ctx: &Context, args: &ImportArgs) -> Result<i32> {
    let file = &args.file;
    let opened = archive::read::open(file).map_err(|m| archive::refused(file, &m))?;
    let m = opened.manifest.clone();
    archive::check_compatible(&m, archive::host_arch(), lima::host_vm_type().0)
        .map_err(|w| archive::refused(file, &w))?;
    let step = ctx.ui.step(format!("checking {}", file.display()));
    let summary = opened.verify().map_err(|w| archive::refused(file, &w))?;
    step.done();
    let template = ctx.template()?;
    if ctx.dry_run {
        crate::outln!(
            "import of {} ({} entries, {} of data) as template {template} for {}",
            file.display(),
            summary.entries,
            archive::human(summary.data_bytes),
            ctx.project.identity().display()
        );
        return Ok(0);
    }
    ctx.prepare_lima()?;
    signals::install();
    let _setup = crate::workflow::build::hold_template(ctx, &template, " (import)")?;
    archive::remove_dead_unpacks(&ctx.paths.lima_home);

    let instances = ctx.lima.list()?;
    let exists = instances.iter().any(|i| i.name == template.as_str());
    let name = if exists {
        template.instance(Role::Build)
    } else {
        template.to_string()
    };
    let mut manifest = m.template.clone();
    manifest.template = template.to_string();
    manifest.project = ctx.project.identity().to_path_buf();
    // Its base stayed on the exporter's machine: nothing here was cloned from a local one.
    manifest.base = None;

    let journal = Journal::new(&ctx.paths);
    journal.record(&Entry::owned_here(
        &name,
        Role::Build,
        template.as_str(),
        ctx.project.identity(),
    ))?;
    let pool = crate::pool::Pool::new(&ctx.paths, template.as_str());
    let paused = crate::workflow::pool::pause(ctx, &pool, &template)?;
    let result = install(
        ctx,
        &opened,
        &m,
        &template,
        &name,
        exists,
        &manifest,
        summary.data_bytes,
    );
    let settled = match &result {
        Ok(()) | Err(Stage::Unpacked(_)) => true,
        Err(Stage::InLima(_)) => {
            let _cleaning = signals::CleaningUp::begin();
            let step = ctx
                .ui
                .step(format!("removing the unfinished import {name}"));
            match ctx
                .lima
                .run_shielded(&lima::delete(std::slice::from_ref(&name)), Some(&name))
            {
                Ok(()) => {
                    step.done();
                    // A first import's name is the template's: no record may describe it.
                    if !exists {
                        template::remove_manifest(&ctx.paths, template.as_str())?;
                    }
                    true
                }
                Err(e) => {
                    ctx.ui
                        .warn(&format!("could not remove {name}: {e}\n  {}", e.hint()));
                    false
                }
            }
        }
        // The swap settles (or records) its own.
        Err(Stage::Swap(_)) => true,
    };
    if settled {
        journal.remove(&name)?;
    }
    result.map_err(Stage::into_error)?;
    let fingerprint = manifest.fingerprint.as_ref().map(|f| f.digest.clone());
    crate::workflow::pool::drain(ctx, &pool, &template, |r| r.fingerprint != fingerprint)?;
    drop(paused);
    let creds = if m.credentials.included && !m.credentials.found.is_empty() {
        format!(
            "; it holds the exporter's credentials: {}",
            m.credentials.found.join(", ")
        )
    } else {
        String::new()
    };
    ctx.ui.info(&format!(
        "template {template} is ready (imported from {}, built by claude-vm {}{creds}): run `claude-vm \"your prompt\"` or `claude-vm shell`",
        file.display(),
        crate::ui::escape(&m.template.claude_vm_version),
    ));
    Ok(0)
}

/// Where an import failed, which decides what is left to clean.
enum Stage {
    /// Before the folder became an instance (the unpack folder removes itself).
    Unpacked(Error),
    /// The instance exists under its name: delete it.
    InLima(Error),
    /// During the swap, which settles itself.
    Swap(Error),
}

impl Stage {
    fn into_error(self) -> Error {
        match self {
            Stage::Unpacked(e) | Stage::InLima(e) | Stage::Swap(e) => e,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn install(
    ctx: &Context,
    opened: &archive::read::Opened,
    m: &format::Manifest,
    template: &TemplateName,
    name: &str,
    exists: bool,
    manifest: &template::Manifest,
    data_bytes: u64,
) -> Result<(), Stage> {
    let lima_home = &ctx.paths.lima_home;
    let unpacked = (|| -> Result<tempfile::TempDir> {
        std::fs::create_dir_all(lima_home).io_context("create", lima_home)?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(
                "{}{}-",
                archive::UNPACK_PREFIX,
                std::process::id()
            ))
            .tempdir_in(lima_home)
            .io_context("create a folder in", lima_home)?;
        let progress = archive::Progress::start(&ctx.ui, "unpacking the template", data_bytes);
        opened
            .unpack(tmp.path(), &|n| progress.set(n))
            .map_err(|e| {
                signals::check().err().unwrap_or_else(|| {
                    Error::failure(format!("cannot unpack the template: {e}")).with_hint(
                        "nothing was kept; check the free space of $LIMA_HOME and import again",
                    )
                })
            })?;
        progress.done();
        // As Lima makes instance folders (pkg/instance/clone.go: 0700).
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .io_context("set the mode of", tmp.path())?;
        if m.vm_type == "vz" {
            // Lima tells a vz instance by this file's presence; `limactl clone` leaves it
            // empty too (NullifyOnClone), and vz makes a new machine identifier.
            std::fs::write(tmp.path().join("vz-identifier"), b"")
                .io_context("write", tmp.path().join("vz-identifier"))?;
        }
        signals::check()?;
        Ok(tmp)
    })()
    .map_err(Stage::Unpacked)?;
    let target = lima_home.join(name);
    rename_noreplace(unpacked.path(), &target).map_err(Stage::Unpacked)?;
    // The folder is the instance now: TempDir must not remove it.
    let _ = unpacked.keep();
    let in_lima = |e: Error| Stage::InLima(e);
    crate::owner::mark(&ctx.paths, name).map_err(in_lima)?;
    let step = ctx.ui.step("giving the template this host's identity");
    ctx.lima
        .run(
            &lima::edit(name, &[SetExpr::delete(".user")]),
            Some(name),
            None,
        )
        .map_err(|e| in_lima(signals::explain(e)))?;
    let listed = ctx.lima.list().map_err(|e| in_lima(e.into()))?;
    step.done();
    let Some(inst) = listed.iter().find(|i| i.name == name) else {
        return Err(in_lima(Error::failure(format!(
            "Lima does not list the imported template {name}"
        ))));
    };
    if inst.status != "Stopped" {
        return Err(in_lima(Error::failure(format!(
            "Lima reports the imported template as {}, not Stopped",
            crate::ui::escape(&inst.status)
        ))
        .with_hint("`limactl list` and its ha.stderr.log say why; the archive may come from an incompatible Lima")));
    }
    let user = &inst.config["user"];
    let here = (
        user["home"].as_str().unwrap_or_default().to_owned(),
        user["uid"].as_u64().unwrap_or(u64::MAX),
    );
    if here != (m.guest_user.home.clone(), u64::from(m.guest_user.uid)) {
        rehome(ctx, name, &m.guest_user, &here.0).map_err(in_lima)?;
    }
    signals::check().map_err(in_lima)?;

    let _swap = lock::acquire(
        &lock::template_lock(&ctx.paths, template.as_str()),
        Mode::Exclusive,
        |_| {
            ctx.ui
                .info("waiting for sessions that are cloning the old template")
        },
    )
    .map_err(in_lima)?;
    if !exists {
        return template::write_manifest(&ctx.paths, manifest).map_err(in_lima);
    }
    let swap = crate::swap::Swap {
        template: template.to_string(),
        build: name.to_owned(),
        aside: template.instance(Role::Old),
        manifest: manifest.clone(),
    };
    crate::swap::begin(&ctx.paths, &swap).map_err(in_lima)?;
    let step = ctx.ui.step("replacing the old template");
    crate::swap::perform(&ctx.lima, &ctx.ui, &ctx.paths, &swap).map_err(Stage::Swap)?;
    step.done();
    Ok(())
}

/// One boot in which the guest gives the exported home to this host's user.
fn rehome(ctx: &Context, name: &str, old: &format::GuestUser, new_home: &str) -> Result<()> {
    ctx.ui.info(&format!(
        "the template was built for the guest user {} (uid {}); handing its home to this host's user ({})",
        crate::ui::escape(&old.name),
        old.uid,
        crate::ui::escape(new_home)
    ));
    let step = ctx.ui.step("booting the template once");
    ctx.lima
        .run(&lima::start(name), Some(name), None)
        .map_err(signals::explain)?;
    step.done();
    let step = ctx.ui.step("moving the home to this user");
    let command = ["bash".to_owned(), "-s".to_owned()];
    let log = tempfile::tempfile().io_context("create a temporary file", "$TMPDIR")?;
    let ran = ctx.lima.run_with_input(
        &lima::shell(&ShellSpec {
            name,
            workdir: None,
            command: &command,
        }),
        Some(name),
        log.try_clone().ok(),
        guest::rehome_script(old).into_bytes(),
    );
    let mut said = String::new();
    let mut log = log;
    let _ = log.rewind();
    let _ = (&log).take(1 << 20).read_to_string(&mut said);
    let stopped = ctx.lima.run(&lima::stop(name), Some(name), None);
    ran.map_err(signals::explain)?;
    stopped.map_err(signals::explain)?;
    if !said.contains("claude-vm-rehomed ") {
        return Err(Error::failure(
            "the guest did not confirm that it moved the home".to_owned(),
        ));
    }
    step.done();
    Ok(())
}

/// Renames `from` to `to` unless `to` exists (never replacing an instance).
fn rename_noreplace(from: &Path, to: &Path) -> Result<()> {
    if std::fs::symlink_metadata(to).is_ok() {
        return Err(Error::failure(format!("{} already exists", to.display()))
            .with_hint("run `claude-vm gc`, then import again"));
    }
    std::fs::rename(from, to).io_context("rename into", to)
}
