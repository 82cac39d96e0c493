//! The host agent: one background process per running instance, like
//! Lima's hostagent. `ha.pid` names it, so an instance is Running exactly
//! while it lives. In namespace mode it holds the guest's namespaces (the
//! "VM"); `stop` kills it together with every process inside the guest.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::disk;
use crate::fail::{Fail, Res};
use crate::forward;
use crate::gofmt::quote;
use crate::logrus;
use crate::store::HA_PID;
use crate::sys;

const ISOLATION_FILE: &str = "isolation";
/// Environment marker of fallback-mode guest processes (so `stop` can find them).
pub const FALLBACK_MARKER: &str = "LIMA_SIM_FALLBACK";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    Namespace,
    Fallback,
}

impl Isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Namespace => "namespace",
            Isolation::Fallback => "fallback",
        }
    }
}

/// The mode a boot tries first: namespaces on Linux unless
/// `LIMA_SIM_ISOLATION=fallback`.
pub fn preferred() -> Isolation {
    let forced = std::env::var("LIMA_SIM_ISOLATION").ok().as_deref() == Some("fallback");
    if cfg!(target_os = "linux") && !forced {
        Isolation::Namespace
    } else {
        Isolation::Fallback
    }
}

/// How the running instance was booted.
pub fn isolation(inst: &Path) -> Isolation {
    let path = disk::run_dir(inst).join(ISOLATION_FILE);
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim() == "namespace" => Isolation::Namespace,
        _ => Isolation::Fallback,
    }
}

/// The guest user's (uid, gid) when the guest runs as its own user (namespace mode as
/// root): the agent's guest sockets are then that user's, as sshd's are.
pub static GUEST_OWNER: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();

/// What the agent needs to boot the guest.
pub struct BootPlan {
    pub name: String,
    pub inst: PathBuf,
    pub want: Isolation,
    pub hostname: String,
    pub mounts: Vec<crate::config::Mount>,
    /// Reverse socket forwards the agent serves while the guest runs.
    pub socket_forwards: Vec<forward::Rule>,
    /// The guest user (`user`): its /run/user directory, and in namespace mode as root
    /// the account `shell` runs as.
    pub user: crate::config::User,
    /// This simulator binary, shown to the guest at /.limasim/limactl.
    pub exe: PathBuf,
    /// A real Claude Code to show the guest (`LIMA_SIM_CLAUDE_CODE`).
    pub claude_code: Option<PathBuf>,
    /// The guest's network in namespace mode (`LIMA_SIM_NETWORK`).
    pub network: crate::net::Mode,
    /// TCP port forwards, Lima's defaults included, in matching order.
    pub tcp_forwards: Vec<crate::net::TcpRule>,
}

enum Outcome {
    Ready(Isolation),
    Unavailable(String),
}

/// Starts the host agent and waits until the guest is up.
pub fn launch(plan: &BootPlan) -> Res<Isolation> {
    if let Some(dir) = &plan.claude_code {
        crate::claude_install::check_real_dir(dir).map_err(Fail::fatal)?;
    }
    if plan.want == Isolation::Namespace {
        match spawn(plan, Isolation::Namespace)? {
            Outcome::Ready(mode) => return Ok(mode),
            Outcome::Unavailable(why) => {
                logrus::debug(&format!(
                    "[simulator] namespaces unavailable ({why}): using the fallback guest mode"
                ));
            }
        }
    }
    if plan.claude_code.is_some() {
        return Err(Fail::fatal(format!(
            "[simulator] {} needs the namespace guest mode",
            crate::claude_install::REAL_ENV
        )));
    }
    match spawn(plan, Isolation::Fallback)? {
        Outcome::Ready(mode) => Ok(mode),
        Outcome::Unavailable(why) => Err(Fail::fatal(why)),
    }
}

fn spawn(plan: &BootPlan, mode: Isolation) -> Res<Outcome> {
    let dir_fd = sys::open_dir(&plan.inst).map_err(|e| Fail::path("open", &plan.inst, &e))?;
    let (mut status_r, status_w) =
        sys::pipe_cloexec().map_err(|e| Fail::fatal(format!("pipe: {e}")))?;
    let child = match sys::fork().map_err(|e| Fail::fatal(format!("fork: {e}")))? {
        sys::Fork::Child => {
            drop(status_r);
            agent_main(plan, mode, dir_fd, status_w)
        }
        sys::Fork::Parent(pid) => pid,
    };
    drop(status_w);
    let mut report = String::new();
    let _ = status_r.read_to_string(&mut report);
    let report = report.trim_end();
    if let Some(mode) = report.strip_prefix("ready ") {
        return Ok(Outcome::Ready(if mode == "namespace" {
            Isolation::Namespace
        } else {
            Isolation::Fallback
        }));
    }
    let _ = sys::waitpid(child);
    if let Some(why) = report.strip_prefix("unavailable ") {
        return Ok(Outcome::Unavailable(why.to_string()));
    }
    let stderr_log = plan.inst.join("ha.stderr.log");
    let why = report
        .strip_prefix("error ")
        .unwrap_or("the host agent exited unexpectedly");
    Err(Fail::fatal(format!(
        "{why} (hint: see {})",
        quote(&stderr_log.to_string_lossy())
    )))
}

fn redirect_stdio(inst: &Path) -> std::io::Result<()> {
    let open = |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(inst.join(name))
    };
    let null = std::fs::File::open("/dev/null")?;
    sys::dup2(null.as_raw_fd(), 0)?;
    sys::dup2(open("ha.stdout.log")?.as_raw_fd(), 1)?;
    sys::dup2(open("ha.stderr.log")?.as_raw_fd(), 2)
}

fn log_line(level: logrus::Level, msg: &str) {
    log_fields(level, msg, &[]);
}

// The agent's stderr is ha.stderr.log.
fn log_fields(level: logrus::Level, msg: &str, fields: &[(&str, String)]) {
    let _ = std::io::stderr().write_all(logrus::format(level, msg, fields, false).as_bytes());
}

static TERMINATED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigterm(_: libc::c_int) {
    TERMINATED.store(true, Ordering::SeqCst);
}

// The forked agent: never returns into the caller's code.
fn agent_main(plan: &BootPlan, mode: Isolation, dir: OwnedFd, status: std::fs::File) -> ! {
    let status_fd = status.as_raw_fd();
    let report = |line: &str| {
        let _ = (&status).write_all(format!("{line}\n").as_bytes());
    };
    let _ = sys::setsid();
    // A daemon must not keep its caller's directory busy.
    let _ = std::env::set_current_dir("/");
    if let Err(e) = redirect_stdio(&plan.inst) {
        report(&format!("error cannot open the host agent logs: {e}"));
        sys::exit_now(1);
    }
    sys::close_fds_except(&[dir.as_raw_fd(), status_fd]);
    let me = sys::getpid();
    if sys::write_at(&dir, HA_PID, format!("{me}\n").as_bytes(), true).is_err() {
        let pid_path = plan.inst.join(HA_PID);
        report(&format!(
            "error instance {} seems running (hint: remove {} if the instance is not actually running)",
            quote(&plan.name),
            quote(&pid_path.to_string_lossy())
        ));
        sys::exit_now(1);
    }
    // The host ends first: host paths are out of sight once in the guest.
    let host_ends = forward::prepare(&plan.socket_forwards, &log_fields);
    let (notes, network) = match boot(plan, mode) {
        Ok(booted) => booted,
        Err((unavailable, why)) => {
            let _ = sys::unlink_at(&dir, HA_PID);
            log_line(logrus::Level::Error, &why);
            report(&format!(
                "{} {why}",
                if unavailable { "unavailable" } else { "error" }
            ));
            sys::exit_now(1);
        }
    };
    let _ = sys::write_at(
        &dir,
        &format!("{}/{ISOLATION_FILE}", disk::RUN),
        mode.as_str().as_bytes(),
        false,
    );
    log_line(
        logrus::Level::Info,
        &format!("[simulator] guest booted in {} mode", mode.as_str()),
    );
    for note in notes {
        log_line(logrus::Level::Info, &format!("[simulator] {note}"));
    }
    let inst = plan.inst.clone();
    let listen_at = |guest: &str| match mode {
        Isolation::Namespace => PathBuf::from(guest),
        Isolation::Fallback => disk::fallback_path(&inst, guest),
    };
    let forwards = forward::start(host_ends, &listen_at, &log_fields);
    sys::set_handler(libc::SIGTERM, on_sigterm);
    report(&format!("ready {}", mode.as_str()));
    drop(status);
    let mut ports = Ports {
        network,
        rules: &plan.tcp_forwards,
        seen: std::collections::HashSet::new(),
    };
    watch(&dir, me, mode, &plan.inst, &forwards, &mut ports)
}

/// The agent's TCP port forwards: each new guest listener that a rule
/// forwards gets a host socket (Lima's guest agent reports listeners, the
/// host agent forwards them; here the agent polls the guest's /proc).
struct Ports<'a> {
    network: Option<Network>,
    rules: &'a [crate::net::TcpRule],
    seen: std::collections::HashSet<std::net::SocketAddr>,
}

#[cfg(target_os = "linux")]
type Network = crate::slirp::Helper;
#[cfg(not(target_os = "linux"))]
type Network = ();

impl Ports<'_> {
    #[cfg(target_os = "linux")]
    fn poll(&mut self) {
        let Some(helper) = &self.network else {
            return;
        };
        for listener in crate::net::guest_listeners() {
            if !self.seen.insert(listener) {
                continue;
            }
            let Some(host) = crate::net::host_address(self.rules, listener) else {
                continue;
            };
            let guest = crate::net::guest_target(listener);
            match helper.listen(host) {
                Ok(sock) => {
                    log_line(
                        logrus::Level::Info,
                        &format!("Forwarding TCP from {guest} to {host}"),
                    );
                    crate::net::serve(sock, guest);
                }
                Err(e) => log_line(
                    logrus::Level::Warn,
                    &format!("failed to set up forwarding tcp port {} (negligible if already forwarded): {e}", host.port()),
                ),
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn poll(&mut self) {}
}

type Booted = (Vec<String>, Option<Network>);

#[cfg(target_os = "linux")]
fn boot(plan: &BootPlan, mode: Isolation) -> Result<Booted, (bool, String)> {
    if mode == Isolation::Fallback {
        return Ok((Vec::new(), None));
    }
    crate::ns::boot(plan).map_err(|e| match e {
        crate::ns::BootError::Unavailable(why) => (true, why),
        crate::ns::BootError::Failed(why) => (false, why),
    })
}

#[cfg(not(target_os = "linux"))]
fn boot(_plan: &BootPlan, mode: Isolation) -> Result<Booted, (bool, String)> {
    match mode {
        Isolation::Fallback => Ok((Vec::new(), None)),
        Isolation::Namespace => Err((true, "namespaces need Linux".into())),
    }
}

// Lives until stopped; exits on its own (taking the guest's processes with
// it) once its instance directory is gone or ha.pid names someone else. A
// SIGTERM (graceful stop) first takes the socket forwards down.
fn watch(
    dir: &OwnedFd,
    me: i32,
    mode: Isolation,
    inst: &Path,
    forwards: &[forward::Active],
    ports: &mut Ports,
) -> ! {
    let mut tick = 0u64;
    loop {
        tick += 1;
        ports.poll();
        std::thread::sleep(Duration::from_millis(100));
        let terminated = TERMINATED.load(Ordering::SeqCst);
        if terminated {
            log_line(logrus::Level::Info, "Shutting down the host agent");
            forward::cleanup(forwards, &log_fields);
        }
        let gone = tick.is_multiple_of(5) && {
            let removed = sys::nlink(dir).map(|n| n == 0).unwrap_or(true);
            let ours = sys::read_at(dir, HA_PID)
                .map(|b| String::from_utf8_lossy(&b).trim() == me.to_string())
                .unwrap_or(false);
            removed || !ours
        };
        if terminated || gone {
            for pid in guest_processes(me, mode, inst) {
                let _ = sys::kill(pid, libc::SIGKILL);
            }
            sys::exit_now(0);
        }
    }
}

/// Processes running inside the guest of the agent `agent`.
pub fn guest_processes(agent: i32, mode: Isolation, inst: &Path) -> Vec<i32> {
    match mode {
        #[cfg(target_os = "linux")]
        Isolation::Namespace => crate::ns::processes_sharing_mount_ns(agent),
        _ => {
            let _ = agent;
            fallback_processes(inst)
        }
    }
}

#[cfg(target_os = "linux")]
fn fallback_processes(inst: &Path) -> Vec<i32> {
    let marker = format!("{FALLBACK_MARKER}={}", inst.display()).into_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|kv| kv == marker.as_slice()))
                .unwrap_or(false)
        })
        .collect()
}

// Without /proc the fallback guest's processes cannot be found; they
// outlive `stop` (documented).
#[cfg(not(target_os = "linux"))]
fn fallback_processes(_inst: &Path) -> Vec<i32> {
    Vec::new()
}

fn wait_gone(pids: &[i32], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if pids.iter().all(|p| !sys::pid_alive(*p)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Shuts the guest down: its processes get SIGTERM (graceful) then SIGKILL,
/// then the agent itself goes. Returns once they are gone.
pub fn shut_down(inst: &Path, agent: i32, graceful: bool) {
    let mode = isolation(inst);
    let guests = guest_processes(agent, mode, inst);
    if graceful && !guests.is_empty() {
        for pid in &guests {
            let _ = sys::kill(*pid, libc::SIGTERM);
        }
        wait_gone(&guests, Duration::from_secs(2));
    }
    for pid in guest_processes(agent, mode, inst) {
        let _ = sys::kill(pid, libc::SIGKILL);
    }
    // A graceful stop lets the agent take its socket forwards down first.
    if graceful {
        let _ = sys::kill(agent, libc::SIGTERM);
        wait_gone(&[agent], Duration::from_secs(3));
    }
    let _ = sys::kill(agent, libc::SIGKILL);
    wait_gone(&[agent], Duration::from_secs(5));
}
