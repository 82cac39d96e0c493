//! `limactl stop`, `delete`, `protect` and `unprotect`.

use std::path::Path;

use crate::agent;
use crate::ctx::Ctx;
use crate::fail::{Fail, Res};
use crate::flags::Parsed;
use crate::fsutil;
use crate::gofmt::quote;
use crate::logrus;
use crate::store::{self, Inspect, Instance, Status};

// Lima's StopForcibly tail: drop *.pid, *.sock and *.tmp files.
fn remove_tmp_files(dir: &Path) {
    logrus::info(&format!(
        "Removing *.pid *.sock *.tmp under {}",
        quote(&dir.to_string_lossy())
    ));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().map(|t| !t.is_dir()).unwrap_or(false);
        if is_file && [".pid", ".sock", ".tmp"].iter().any(|s| name.ends_with(s)) {
            logrus::info(&format!(
                "Removing {}",
                quote(&entry.path().to_string_lossy())
            ));
            if let Err(e) = std::fs::remove_file(entry.path()) {
                logrus::error(&crate::sys::path_error("remove", &entry.path(), &e));
            }
        }
    }
}

/// `instance.StopForcibly`: kill the agent and the guest, no questions.
pub fn stop_forcibly(inst: &Instance) {
    if inst.ha_pid > 0 {
        logrus::info(&format!(
            "Sending SIGKILL to the host agent process {}",
            inst.ha_pid
        ));
        agent::shut_down(&inst.dir, inst.ha_pid, false);
    } else {
        logrus::info("The host agent process seems already stopped");
    }
    remove_tmp_files(&inst.dir);
}

fn stop_gracefully(inst: &Instance) -> Res<()> {
    if inst.status != Status::Running {
        return Err(Fail::fatal(format!(
            "expected status {}, got {} (maybe use `limactl stop -f`?)",
            quote(Status::Running.as_str()),
            quote(inst.status.as_str())
        )));
    }
    logrus::info(&format!(
        "Sending SIGINT to hostagent process {}",
        inst.ha_pid
    ));
    logrus::info("Waiting for the host agent and the driver processes to shut down");
    agent::shut_down(&inst.dir, inst.ha_pid, true);
    let _ = std::fs::remove_file(inst.dir.join(store::HA_PID));
    logrus::info(&format!("The instance {} has shut down", inst.name));
    Ok(())
}

pub fn stop(ctx: &mut Ctx, p: &Parsed) -> Res<()> {
    let name = p
        .args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_else(|| "default".into());
    let inst = ctx.store().require(&name, |e| e)?;
    let force = p.bool("force");
    if !force && inst.status != Status::Running {
        return stop_gracefully(&inst);
    }
    ctx.inject.checkpoint("stop")?;
    if force {
        stop_forcibly(&inst);
        Ok(())
    } else {
        stop_gracefully(&inst)
    }
}

// v2.2's answer for a directory whose lima.yaml cannot be read: it may be
// a clone in progress, so it is left alone.
fn missing_instance(ctx: &Ctx, name: &str) -> Res<()> {
    let dir = crate::names::instance_dir(&ctx.lima_home, name)?;
    if !dir.exists() {
        logrus::warn(&format!("Ignoring non-existent instance {}", quote(name)));
        return Ok(());
    }
    Err(Fail::fatal(format!(
        "instance {} directory {} exists but its {} could not be read; it was NOT deleted, in case it is currently being cloned into. If no `limactl` operation is using it, remove it manually",
        quote(name),
        quote(&dir.to_string_lossy()),
        quote(store::LIMA_YAML)
    )))
}

pub fn delete(ctx: &mut Ctx, p: &Parsed) -> Res<()> {
    let force = p.bool("force");
    let mut checked = false;
    let mut errors: Vec<String> = Vec::new();
    for arg in &p.args {
        let name = arg.to_string_lossy().into_owned();
        let inst = match ctx.store().inspect(&name)? {
            Inspect::Found(inst) => *inst,
            Inspect::Missing(_) => {
                if let Err(e) = missing_instance(ctx, &name) {
                    errors.extend(e.msg);
                }
                continue;
            }
        };
        let fail =
            |why: String| Fail::fatal(format!("failed to delete instance {}: {why}", quote(&name)));
        if inst.protected {
            return Err(fail(
                "instance is protected to prohibit accidental removal (Hint: use `limactl unprotect`)".into(),
            ));
        }
        if !force && inst.status != Status::Stopped {
            return Err(fail(format!(
                "expected status {}, got {}",
                quote(Status::Stopped.as_str()),
                quote(inst.status.as_str())
            )));
        }
        if !checked {
            ctx.inject.checkpoint("delete")?;
            checked = true;
        }
        stop_forcibly(&inst);
        fsutil::remove_all(&inst.dir).map_err(|e| {
            fail(format!(
                "failed to remove {}: {}",
                quote(&inst.dir.to_string_lossy()),
                crate::sys::go_errno_text(&e)
            ))
        })?;
        logrus::info(&format!(
            "Deleted {} ({})",
            quote(&name),
            quote(&inst.dir.to_string_lossy())
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Fail::fatal(errors.join("\n")))
    }
}

fn protection(ctx: &mut Ctx, p: &Parsed, protect: bool) -> Res<()> {
    let op = if protect { "protect" } else { "unprotect" };
    ctx.inject.checkpoint(op)?;
    let mut errors: Vec<String> = Vec::new();
    for arg in &p.args {
        let name = arg.to_string_lossy().into_owned();
        let inst = match ctx.store().inspect(&name) {
            Ok(Inspect::Found(inst)) => *inst,
            Ok(Inspect::Missing(e)) => {
                errors.push(format!("failed to inspect instance {}: {e}", quote(&name)));
                continue;
            }
            Err(e) => {
                errors.push(format!(
                    "failed to inspect instance {}: {}",
                    quote(&name),
                    e.msg.unwrap_or_default()
                ));
                continue;
            }
        };
        let marker = inst.dir.join(store::PROTECTED);
        if inst.protected == protect {
            let state = if protect {
                "is already protected"
            } else {
                "isn't protected"
            };
            logrus::warn(&format!("Instance {} {state}. Skipping.", quote(&name)));
            continue;
        }
        let done = if protect {
            std::fs::write(&marker, b"").and_then(|_| {
                std::fs::set_permissions(
                    &marker,
                    std::os::unix::fs::PermissionsExt::from_mode(0o400),
                )
            })
        } else {
            std::fs::remove_file(&marker)
        };
        match done {
            Ok(()) => logrus::info(&format!(
                "{} {}",
                if protect { "Protected" } else { "Unprotected" },
                quote(&name)
            )),
            Err(e) => errors.push(format!(
                "failed to {op} instance {}: {}",
                quote(&name),
                crate::sys::path_error("open", &marker, &e)
            )),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Fail::fatal(errors.join("\n")))
    }
}

pub fn protect(ctx: &mut Ctx, p: &Parsed) -> Res<()> {
    protection(ctx, p, true)
}

pub fn unprotect(ctx: &mut Ctx, p: &Parsed) -> Res<()> {
    protection(ctx, p, false)
}
