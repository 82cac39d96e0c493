//! `limactl copy` (`cp`): host↔guest copies with `INSTANCE:PATH`. Lima runs
//! scp; the simulator runs `cp` on guest paths seen from the host (through
//! the host agent's root in namespace mode).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use crate::agent::{self, Isolation};
use crate::cmd_shell::fallback_home;
use crate::ctx::Ctx;
use crate::fail::{Fail, Res};
use crate::flags::Parsed;
use crate::gofmt::quote;
use crate::store::{Instance, Status};

// The host-side path of `path` in the guest of `inst`.
fn host_view(inst: &Instance, path: &str) -> Res<PathBuf> {
    let cfg = inst.config()?;
    let guest = if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        // scp resolves relative guest paths from the user's home.
        PathBuf::from(&cfg.user.home).join(path)
    };
    Ok(match agent::isolation(&inst.dir) {
        Isolation::Namespace => {
            let rel = guest.strip_prefix("/").unwrap_or(&guest).to_path_buf();
            PathBuf::from(format!("/proc/{}/root", inst.ha_pid)).join(rel)
        }
        Isolation::Fallback if path.starts_with('/') => guest,
        Isolation::Fallback => fallback_home(&inst.dir, cfg).join(path),
    })
}

fn resolve(ctx: &Ctx, arg: &OsString) -> Res<PathBuf> {
    let text = arg.to_string_lossy();
    let Some((name, path)) = text.split_once(':') else {
        return Ok(PathBuf::from(arg));
    };
    let inst = ctx.store().require(name, |_| {
        format!(
            "instance {} does not exist, run `limactl create {name}` to create a new instance",
            quote(name)
        )
    })?;
    if inst.status == Status::Stopped {
        return Err(Fail::fatal(format!(
            "instance {} is stopped, run `limactl start {name}` to start the instance",
            quote(name)
        )));
    }
    host_view(&inst, path)
}

pub fn copy(ctx: &mut Ctx, p: &Parsed) -> Res<()> {
    match p.str("backend").as_str() {
        "auto" | "scp" => {}
        "rsync" => {
            return Err(Fail::fatal(
                "copy --backend=rsync is not supported by the simulator",
            ))
        }
        other => {
            return Err(Fail::fatal(format!(
                "invalid backend {}, must be one of: scp, rsync, auto",
                quote(other)
            )))
        }
    }
    let paths: Vec<PathBuf> = p.args.iter().map(|a| resolve(ctx, a)).collect::<Res<_>>()?;
    ctx.inject.checkpoint("copy")?;
    let mut cmd = Command::new("cp");
    if p.bool("recursive") {
        cmd.arg("-R");
    }
    if p.bool("verbose") || p.bool("debug") {
        cmd.arg("-v");
    }
    let status = cmd
        .arg("--")
        .args(&paths)
        .status()
        .map_err(|e| Fail::fatal(format!("failed to run cp: {e}")))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(Fail::quiet(code)),
        None => Err(Fail::quiet(255)),
    }
}
