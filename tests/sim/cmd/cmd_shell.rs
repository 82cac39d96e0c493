//! `limactl shell`: Lima's checks and remote script, then the script runs
//! in the guest with an ssh-like environment.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::agent::{self, Isolation, FALLBACK_MARKER};
use crate::cmd_create::{boot, DEFAULT_TIMEOUT};
use crate::config::Config;
use crate::ctx::Ctx;
use crate::disk;
use crate::exec::{self, Session};
use crate::fail::{Fail, Res};
use crate::flags::Parsed;
use crate::gofmt::{quote, shell_quote};
use crate::logrus;
use crate::names;
use crate::script;
use crate::store::{Instance, Status};

/// The guest home on the host (fallback mode's `$HOME`).
pub fn fallback_home(inst: &Path, cfg: &Config) -> PathBuf {
    disk::host_path_of(inst, &cfg.user.home).unwrap_or_else(|| {
        disk::disk(inst)
            .join("home")
            .join(format!("{}.linux", cfg.user.name))
    })
}

const PROFILE_MARK: &str = "# lima-sim fallback PATH";

// Fallback mode has no guest /etc/profile of its own: the host's resets
// PATH, so the guest's ~/.profile puts the simulator's tools back in front.
fn ensure_fallback_profile(home: &Path) -> Res<()> {
    crate::fsutil::mkdir_all(home)?;
    let profile = home.join(".profile");
    let text = std::fs::read_to_string(&profile).unwrap_or_default();
    if text.contains(PROFILE_MARK) {
        return Ok(());
    }
    let block = format!(
        "\n{PROFILE_MARK}\nif [ -n \"${{{FALLBACK_MARKER}:-}}\" ]; then\n    PATH=\"${FALLBACK_MARKER}/{}/bin:${FALLBACK_MARKER}/{}/upper/usr/local/bin:$PATH\"\nfi\n",
        disk::RUN,
        disk::DISK
    );
    std::fs::write(&profile, text + &block).map_err(|e| Fail::path("open", &profile, &e))
}

fn kv(k: &str, v: impl AsRef<[u8]>) -> Vec<u8> {
    [k.as_bytes(), b"=", v.as_ref()].concat()
}

/// The session environment: what sshd sets, /etc/environment (lima.yaml's
/// `env`), and the forwarded agent.
fn guest_env(
    inst: &Instance,
    cfg: &Config,
    iso: Isolation,
    agent_sock: Option<&str>,
) -> Vec<Vec<u8>> {
    let mut env: Vec<(String, Vec<u8>)> = Vec::new();
    let mut set = |k: &str, v: Vec<u8>| {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v));
    };
    match iso {
        Isolation::Namespace => {
            set("HOME", cfg.user.home.clone().into_bytes());
            set("PATH", b"/usr/local/bin:/usr/bin:/bin:/usr/games".to_vec());
        }
        Isolation::Fallback => {
            set(
                "HOME",
                fallback_home(&inst.dir, cfg)
                    .into_os_string()
                    .into_encoded_bytes(),
            );
            let path = format!(
                "{}:{}:/usr/bin:/bin",
                disk::fallback_bin(&inst.dir).display(),
                disk::usr_local_bin(&inst.dir).display()
            );
            set("PATH", path.into_bytes());
            set(
                FALLBACK_MARKER,
                inst.dir.clone().into_os_string().into_encoded_bytes(),
            );
        }
    }
    set("USER", cfg.user.name.clone().into_bytes());
    set("LOGNAME", cfg.user.name.clone().into_bytes());
    set("SHELL", b"/bin/bash".to_vec());
    set("LANG", b"C.UTF-8".to_vec());
    // ssh sends TERM with its terminal request: only when the guest gets a terminal.
    if crate::pty::wanted() {
        let term = std::env::var_os("TERM").unwrap_or_else(|| "dumb".into());
        set("TERM", term.into_encoded_bytes());
    }
    if let Some(sock) = agent_sock {
        set("SSH_AUTH_SOCK", sock.as_bytes().to_vec());
    }
    for (k, v) in &cfg.env {
        set(k, v.clone().into_bytes());
    }
    env.into_iter().map(|(k, v)| kv(&k, v)).collect()
}

#[cfg(target_os = "linux")]
fn guest_user(inst: &Instance, iso: Isolation) -> Option<(String, u32, u32)> {
    match iso {
        Isolation::Namespace => crate::user::recorded(&inst.dir),
        Isolation::Fallback => None,
    }
}

#[cfg(not(target_os = "linux"))]
fn guest_user(_inst: &Instance, _iso: Isolation) -> Option<(String, u32, u32)> {
    None
}

fn build_script(p: &Parsed, cfg: &Config, args: &[OsString]) -> Res<Vec<u8>> {
    let cwd = std::env::current_dir().ok();
    let home = names::home_dir().ok();
    let change_dir = script::change_dir_cmd(
        &p.str("workdir"),
        &cfg.mounts,
        cwd.as_deref(),
        home.as_deref(),
    );
    let shell = match p.str("shell") {
        s if s.is_empty() => b"\"$SHELL\"".to_vec(),
        s => shell_quote(s.as_bytes()),
    };
    let prefix = if p.bool("preserve-env") {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        let allow = std::env::var("LIMA_SHELLENV_ALLOW").unwrap_or_default();
        let block = std::env::var("LIMA_SHELLENV_BLOCK").unwrap_or_default();
        script::env_prefix(&script::filter_environment(&vars, &allow, &block).map_err(Fail::fatal)?)
    } else {
        Vec::new()
    };
    Ok(script::remote_script(&change_dir, &prefix, &shell, args))
}

fn running_instance(ctx: &Ctx, p: &Parsed, name: &str) -> Res<Instance> {
    let not_found = |_| {
        format!(
            "instance {} does not exist, run `limactl create {name}` to create a new instance",
            quote(name)
        )
    };
    let inst = ctx.store().require(name, not_found)?;
    inst.config()?;
    if inst.status != Status::Stopped {
        return Ok(inst);
    }
    if ctx.tty && !p.changed("start") && crate::sys::isatty(0) {
        return Err(Fail::fatal(
            "the \"start now?\" prompt (--tty=true) is not supported by the simulator; pass --start or --tty=false",
        ));
    }
    if !p.bool("start") {
        return Err(Fail::fatal(format!(
            "instance {} is stopped, run `limactl start {name}` to start the instance",
            quote(name)
        )));
    }
    boot(ctx, &inst, DEFAULT_TIMEOUT)?;
    ctx.store().require(name, |e| e)
}

pub fn shell(ctx: &mut Ctx, p: &Parsed) -> Res<()> {
    let mut args = p.args.clone();
    if args.len() >= 2 && args[1] == "--" {
        args.remove(1);
    }
    let name = args[0].to_string_lossy().into_owned();
    // The call log reports a mode even when no guest is reached.
    ctx.isolation = Some(agent::preferred().as_str());
    if let Some(word) = args.get(1).map(|a| a.to_string_lossy().into_owned()) {
        if ["create", "start", "delete", "shell"].contains(&word.as_str()) {
            let rest: Vec<String> = args[1..]
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            logrus::warn(&format!("Perhaps you meant `limactl {}`?", rest.join(" ")));
        }
    }
    let inst = running_instance(ctx, p, &name)?;
    let cfg = inst.config()?;
    let iso = agent::isolation(&inst.dir);
    ctx.isolation = Some(iso.as_str());
    let script = build_script(p, cfg, &args[1..])?;
    ctx.inject.checkpoint("shell")?;
    let host_sock =
        std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty() && cfg.forward_agent);
    let user = guest_user(&inst, iso);
    #[cfg(target_os = "linux")]
    let relay = match (&host_sock, iso) {
        (Some(_), Isolation::Namespace) => Some(crate::relay::Relay::listen(
            &disk::guest_tmp(&inst.dir),
            user.as_ref().map(|u| (u.1, u.2)),
        )?),
        _ => None,
    };
    #[cfg(target_os = "linux")]
    let agent_sock = match &relay {
        Some(r) => Some(r.guest_path.clone()),
        None => host_sock.as_ref().map(|s| s.to_string_lossy().into_owned()),
    };
    #[cfg(not(target_os = "linux"))]
    let agent_sock = host_sock.as_ref().map(|s| s.to_string_lossy().into_owned());
    let cwd = match iso {
        Isolation::Namespace => PathBuf::from(&cfg.user.home),
        Isolation::Fallback => {
            let home = fallback_home(&inst.dir, cfg);
            ensure_fallback_profile(&home)?;
            home
        }
    };
    let session = Session {
        agent: inst.ha_pid,
        isolation: iso,
        argv: vec![b"bash".to_vec(), b"-c".to_vec(), script],
        env: guest_env(&inst, cfg, iso, agent_sock.as_deref()),
        cwd,
        user: user.as_ref().map(|u| u.0.clone()),
    };
    let serve = || -> Res<()> {
        #[cfg(target_os = "linux")]
        if let (Some(relay), Some(sock)) = (&relay, &host_sock) {
            relay.serve(PathBuf::from(sock))?;
        }
        Ok(())
    };
    match exec::run(&session, serve)? {
        0 => Ok(()),
        code => Err(Fail::quiet(code)),
    }
}
