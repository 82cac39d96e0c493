//! `claude-vm export [-o FILE] [--include-credentials]`: the project's template as one file.
//!
//! The template itself is never booted or changed: a clone of it is booted once so the guest
//! can list (and, unless asked to keep them, remove) the credentials stored in it, then
//! stopped and packed, then deleted. Calls: `list`, `clone --start`, `shell`, `stop`,
//! `delete`. The setup lock is held throughout (no rebuild meanwhile), the template lock
//! shared while cloning (as a session does).

use std::io::{Read, Seek};

use super::Context;
use crate::archive::{self, format, guest};
use crate::cli::ExportArgs;
use crate::error::{Error, IoContext, Result};
use crate::journal::{Entry, Journal};
use crate::lima::{self, CloneSpec, Resources, ShellSpec};
use crate::lock::{self, Mode};
use crate::names::Role;
use crate::signals;
use crate::template;

pub fn run(ctx: &Context, args: &ExportArgs) -> Result<i32> {
    let template = ctx.template()?;
    let out = match &args.output {
        Some(p) => ctx.cwd.join(p),
        None => archive::default_output(&ctx.cwd, template.as_str()),
    };
    let Some(out_dir) = out.parent().filter(|d| d.is_dir()) else {
        return Err(
            Error::usage(format!("-o {}: its folder does not exist", out.display()))
                .with_hint("create the folder first, or give another path with -o FILE"),
        );
    };
    if out.is_dir() {
        return Err(
            Error::usage(format!("-o {}: it is a folder", out.display()))
                .with_hint("give a file name, e.g. -o template.cvm-template"),
        );
    }
    let clone = template.instance(Role::Build);
    let script = guest::credentials_script(args.include_credentials);
    let calls = [
        lima::list(),
        clone_call(template.as_str(), &clone),
        shell_call(&clone),
        lima::stop(&clone),
        lima::delete(std::slice::from_ref(&clone)),
    ];
    if ctx.dry_run {
        crate::outln!(
            "export of template {template} to {}\n\nlimactl calls, in order:",
            out.display()
        );
        for (i, c) in calls.iter().enumerate() {
            crate::outln!("  {}. {c}", i + 1);
        }
        crate::outln!("\nsent on the shell's stdin:\n{script}");
        return Ok(0);
    }
    ctx.prepare_lima()?;
    let lima_version = lima::detect::ensure(&ctx.lima, &ctx.paths.lima_version_cache())?;
    signals::install();
    // No rebuild (and no swap) while the template is read.
    let _setup = crate::workflow::build::hold_template(ctx, &template, " (export)")?;
    let Some(manifest) = template::read_manifest(&ctx.paths, template.as_str())? else {
        return Err(Error::usage(format!(
            "there is no template VM for {} to export",
            ctx.project.identity().display()
        ))
        .with_hint("build it with `claude-vm setup` first"));
    };
    let instances = ctx.lima.list()?;
    let Some(inst) = instances.iter().find(|i| i.name == template.as_str()) else {
        return Err(Error::failure(format!(
            "the template {template} is recorded but Lima has no such instance"
        ))
        .with_hint("rebuild it with `claude-vm setup`"));
    };
    if inst.status != "Stopped" {
        return Err(Error::failure(format!(
            "the template {template} is {} (not stopped), so its disk may be changing",
            crate::ui::escape(&inst.status)
        ))
        .with_hint(format!(
            "stop it with `limactl stop {template}` and export again"
        )));
    }
    let user = &inst.config["user"];
    let guest_user = format::GuestUser {
        name: user["name"].as_str().unwrap_or_default().to_owned(),
        uid: user["uid"]
            .as_u64()
            .and_then(|u| u32::try_from(u).ok())
            .unwrap_or(0),
        home: user["home"].as_str().unwrap_or_default().to_owned(),
    };
    if guest_user.home.is_empty() {
        return Err(Error::failure(format!(
            "Lima did not say which guest user the template {template} has"
        ))
        .with_hint("check `limactl list --format json` for its config.user"));
    }
    let base = format::Manifest {
        format: format::FORMAT,
        claude_vm_version: env!("CARGO_PKG_VERSION").to_owned(),
        lima_version,
        arch: inst.arch.clone(),
        vm_type: inst.vm_type.clone(),
        exported_at: crate::journal::now(),
        guest_user,
        template: manifest,
        credentials: format::Credentials {
            included: args.include_credentials,
            found: Vec::new(),
        },
        sizes: format::Sizes::default(),
        payload_sha256: String::new(),
    };

    let journal = Journal::new(&ctx.paths);
    journal.record(&Entry::owned_here(
        &clone,
        Role::Build,
        template.as_str(),
        ctx.project.identity(),
    ))?;
    let result = export_clone(ctx, &template, &clone, &calls, &script, base, &out, out_dir);
    // The clone goes on every way out (its journal entry stays if it cannot be deleted).
    let cleaned = {
        let _cleaning = signals::CleaningUp::begin();
        let step = ctx.ui.step(format!("deleting the export's clone {clone}"));
        match ctx.lima.run_shielded(&calls[4], Some(&clone)) {
            Ok(()) => {
                step.done();
                true
            }
            Err(e) => {
                ctx.ui
                    .warn(&format!("could not delete {clone}: {e}\n  {}", e.hint()));
                false
            }
        }
    };
    if cleaned {
        journal.remove(&clone)?;
    }
    let written = result?;
    signals::check()?;
    let creds = &written.credentials;
    let kept = match (creds.found.is_empty(), creds.included) {
        (true, _) => "no stored credentials".to_owned(),
        (false, true) => format!("credentials included: {}", creds.found.join(", ")),
        (false, false) => format!(
            "credentials left out: {} (--include-credentials keeps them)",
            creds.found.join(", ")
        ),
    };
    ctx.ui.info(&format!(
        "wrote {}: {} ({} of data on {} of disk; {kept})",
        out.display(),
        archive::human(
            std::fs::metadata(&out)
                .map(|m| m.len())
                .unwrap_or(written.sizes.payload_bytes)
        ),
        archive::human(written.sizes.data_bytes),
        archive::human(written.sizes.nominal_bytes),
    ));
    Ok(0)
}

fn clone_call(template: &str, clone: &str) -> lima::Call {
    lima::clone(&CloneSpec {
        source: template,
        name: clone,
        start: true,
        resources: Resources::default(),
        mounts: &[],
        extra: &[],
    })
}

fn shell_call(clone: &str) -> lima::Call {
    let command = ["bash".to_owned(), "-s".to_owned()];
    lima::shell(&ShellSpec {
        name: clone,
        workdir: None,
        command: &command,
    })
}

#[allow(clippy::too_many_arguments)]
fn export_clone(
    ctx: &Context,
    template: &crate::names::TemplateName,
    clone: &str,
    calls: &[lima::Call; 5],
    script: &str,
    mut manifest: format::Manifest,
    out: &std::path::Path,
    out_dir: &std::path::Path,
) -> Result<format::Manifest> {
    {
        let _shared = lock::acquire(
            &lock::template_lock(&ctx.paths, template.as_str()),
            Mode::Shared,
            |_| ctx.ui.info("waiting for the template to be free"),
        )?;
        signals::check()?;
        let step = ctx
            .ui
            .step(format!("cloning and booting the template {template}"));
        ctx.lima
            .run(&calls[1], Some(clone), None)
            .map_err(signals::explain)?;
        step.done();
    }
    crate::owner::mark(&ctx.paths, clone)?;
    signals::check()?;
    let step = ctx.ui.step(if manifest.credentials.included {
        "listing stored credentials".to_owned()
    } else {
        "removing stored credentials from the clone".to_owned()
    });
    let log = tempfile::tempfile().io_context("create a temporary file", "$TMPDIR")?;
    ctx.lima
        .run_with_input(
            &calls[2],
            Some(clone),
            log.try_clone().ok(),
            script.as_bytes().to_vec(),
        )
        .map_err(signals::explain)?;
    let mut said = String::new();
    let mut log = log;
    let _ = log.rewind();
    let _ = (&log).take(1 << 20).read_to_string(&mut said);
    manifest.credentials.found = guest::credentials_found(&said);
    step.done();
    signals::check()?;
    let step = ctx.ui.step(format!("stopping {clone}"));
    ctx.lima
        .run(&calls[3], Some(clone), None)
        .map_err(signals::explain)?;
    step.done();
    signals::check()?;

    let dir = ctx.paths.lima_home.join(clone);
    let records = archive::write::scan(&dir).map_err(Error::failure)?;
    let total = archive::write::data_bytes(&records);
    // Written next to its destination, renamed into place when complete.
    let mut tmp = tempfile::Builder::new()
        .prefix(".claude-vm-export-")
        .tempfile_in(out_dir)
        .io_context("create a file in", out_dir)?;
    let progress = archive::Progress::start(&ctx.ui, &format!("packing {}", out.display()), total);
    let (sizes, sha) =
        archive::write::payload(&dir, &records, tmp.as_file_mut(), &|n| progress.set(n)).map_err(
            |e| Error::failure(e).with_hint("nothing was written; run `claude-vm export` again"),
        )?;
    manifest.sizes = sizes;
    manifest.payload_sha256 = sha;
    archive::write::finish(tmp.as_file_mut(), &manifest).map_err(Error::failure)?;
    progress.done();
    signals::check()?;
    tmp.persist(out)
        .map_err(|e| Error::io("write", out, e.error))?;
    Ok(manifest)
}
