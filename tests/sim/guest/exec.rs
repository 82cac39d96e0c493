//! Runs one command "inside" the guest, as the ssh session of
//! `limactl shell` would: the simulator forks, the child enters the guest
//! and execs bash, the parent waits and relays signals.

use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::agent::Isolation;
use crate::fail::{Fail, Res};
use crate::pty;
use crate::sys;

pub struct Session {
    pub agent: i32,
    pub isolation: Isolation,
    /// argv for /bin/bash (argv[0] included).
    pub argv: Vec<Vec<u8>>,
    /// `KEY=VALUE` entries: the whole environment of the guest command.
    pub env: Vec<Vec<u8>>,
    /// Where the session starts (the guest home), before the script's `cd`.
    pub cwd: PathBuf,
    /// The guest user to switch to once inside (namespace mode as root), as sshd does.
    pub user: Option<String>,
}

static CHILD: AtomicI32 = AtomicI32::new(0);

// Closing the session, as ssh would: pass the signal on, put the terminal back, then die
// of it.
extern "C" fn forward(sig: libc::c_int) {
    let child = CHILD.load(Ordering::SeqCst);
    pty::restore();
    // SAFETY: kill, signal and raise are async-signal-safe.
    unsafe {
        if child > 0 {
            libc::kill(child, sig);
        }
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

#[cfg(target_os = "linux")]
fn enter(s: &Session) -> Result<(), String> {
    match s.isolation {
        Isolation::Namespace => {
            crate::ns::enter(s.agent)?;
            match &s.user {
                Some(name) => crate::user::switch_to(name),
                None => Ok(()),
            }
        }
        Isolation::Fallback => Ok(()),
    }
}

#[cfg(not(target_os = "linux"))]
fn enter(s: &Session) -> Result<(), String> {
    match s.isolation {
        Isolation::Namespace => Err("namespace mode needs Linux".into()),
        Isolation::Fallback => Ok(()),
    }
}

fn child_main(s: &Session, mut status: std::fs::File, terminal: Option<RawFd>) -> ! {
    use std::io::Write;
    sys::reset_signals_for_exec();
    if let Some(slave) = terminal {
        if let Err(e) = pty::attach_child(slave) {
            let _ = status.write_all(format!("failed to set up the terminal: {e}").as_bytes());
            sys::exit_now(255);
        }
    }
    if let Err(e) = enter(s) {
        let _ = status.write_all(format!("failed to enter the guest: {e}").as_bytes());
        sys::exit_now(255);
    }
    // sshd starts in the home directory, or in / if that is missing.
    if std::env::set_current_dir(&s.cwd).is_err() {
        let _ = std::env::set_current_dir("/");
    }
    let err = sys::execve(b"/bin/bash", &s.argv, &s.env);
    let _ = status.write_all(format!("exec /bin/bash: {}", sys::go_errno_text(&err)).as_bytes());
    sys::exit_now(127)
}

/// Runs the session; returns the exit status as ssh reports it (255 if the
/// guest command died of a signal). `after_fork` runs in the parent once the
/// child exists (threads may only start then). With a terminal on stdin and
/// stdout the guest command gets a terminal of its own (`pty.rs`).
pub fn run(s: &Session, after_fork: impl FnOnce() -> Res<()>) -> Res<i32> {
    let terminal = if pty::wanted() {
        Some(pty::open().map_err(|e| Fail::fatal(format!("openpty: {e}")))?)
    } else {
        None
    };
    let (mut status_r, status_w) =
        sys::pipe_cloexec().map_err(|e| Fail::fatal(format!("pipe: {e}")))?;
    let child = match sys::fork().map_err(|e| Fail::fatal(format!("fork: {e}")))? {
        sys::Fork::Child => {
            drop(status_r);
            child_main(s, status_w, terminal.as_ref().map(|t| t.slave.as_raw_fd()))
        }
        sys::Fork::Parent(pid) => pid,
    };
    CHILD.store(child, Ordering::SeqCst);
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        sys::set_handler(sig, forward);
    }
    drop(status_w);
    // The guest's output ends (EIO on the master) only once no one here holds the slave.
    let relay = match terminal {
        Some(pty::Pty { master, slave }) => {
            drop(slave);
            let done = pty::relay(&master).map_err(|e| {
                let _ = sys::kill(child, libc::SIGKILL);
                Fail::fatal(format!("relay: {e}"))
            })?;
            pty::enter_raw();
            Some((master, done))
        }
        None => None,
    };
    if let Err(e) = after_fork() {
        let _ = sys::kill(child, libc::SIGKILL);
        let _ = sys::waitpid(child);
        pty::restore();
        return Err(e);
    }
    let mut failure = String::new();
    let _ = status_r.read_to_string(&mut failure);
    let status = sys::waitpid(child).map_err(|e| Fail::fatal(format!("wait: {e}")));
    if let Some((_master, done)) = &relay {
        pty::finish(done);
    }
    let status = status?;
    if !failure.is_empty() {
        return Err(Fail::with_code(failure, 255));
    }
    Ok(match status {
        sys::WaitStatus::Exited(code) => code,
        sys::WaitStatus::Signaled => 255,
    })
}
