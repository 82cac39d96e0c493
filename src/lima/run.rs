//! Spawning limactl: output capture that cannot hang, and signal-aware waiting.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::signals;

/// How much output an error keeps.
const KEEP: usize = 64 * 1024;
/// After limactl exits, how long its output may take to drain. A background process that
/// inherited the pipe (an ssh master, a host agent) must not make us hang.
pub(super) const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// Reads a stream on a thread, optionally echoing it to our stderr and copying it to a log.
pub struct Collector {
    buf: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Collector {
    pub fn start(
        stream: impl Read + Send + 'static,
        echo: Option<fn(&[u8])>,
        mut log: Option<File>,
        keep: bool,
    ) -> Collector {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        let shared = Arc::clone(&buf);
        thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                if let Some(echo) = echo {
                    echo(&line);
                }
                if let Some(f) = log.as_mut() {
                    let _ = f.write_all(&line);
                }
                if let Ok(mut b) = shared.lock() {
                    b.extend_from_slice(&line);
                    if !keep && b.len() > KEEP {
                        let cut = b.len() - KEEP;
                        b.drain(..cut);
                    }
                }
                line.clear();
            }
            let _ = tx.send(());
        });
        Collector { buf, done }
    }

    /// What was read, waiting briefly for the writer side to close.
    pub fn finish(self) -> String {
        let _ = self.done.recv_timeout(DRAIN_GRACE);
        let bytes = self.buf.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// A stream's lines, read on a thread of their own (not a scoped one: whoever else holds the
/// pipe may keep it open long after the child exited).
pub struct Lines {
    rx: mpsc::Receiver<String>,
}

impl Lines {
    pub fn start(stream: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            while matches!(reader.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                let text = String::from_utf8_lossy(&buf);
                if tx
                    .send(text.trim_end_matches(['\n', '\r']).to_owned())
                    .is_err()
                {
                    return;
                }
                buf.clear();
            }
        });
        Lines { rx }
    }

    /// Hands each line to `on_line` until the stream ends, or `DRAIN_GRACE` after the time
    /// `exited` is set to (the child's exit).
    pub fn deliver(self, on_line: &(dyn Fn(&str) + Sync), exited: &std::sync::OnceLock<Instant>) {
        // How often an unset `exited` is looked at again.
        const TICK: Duration = Duration::from_millis(50);
        loop {
            let wait = match exited.get() {
                None => TICK,
                Some(at) => match (*at + DRAIN_GRACE).checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return,
                },
            };
            match self.rx.recv_timeout(wait) {
                Ok(line) => on_line(&line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

/// How a wait treats our termination signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// Work: a signal is passed on to the child (once; a further one kills it), so limactl
    /// stops when we are asked to stop. A signal that arrived before the child existed is
    /// passed on at once.
    Forward,
    /// Cleanup: the child runs on; after repeated signals we stop waiting for it.
    Shield,
}

/// What became of a waited-for child.
#[derive(Debug)]
pub enum Waited {
    Exited(ExitStatus),
    /// We stopped waiting (cleanup, asked twice); the child runs on by itself.
    GaveUp,
    /// It ran past its time limit and was killed (and reaped).
    TimedOut(Duration),
}

/// After the time limit, SIGTERM; this long later, SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// Kills a child that outlives its time limit. The waiter marks the child done *before*
/// reaping it, under the same lock the watchdog kills under, so a pid is never signalled
/// after it was reaped (and possibly reused).
struct Watchdog {
    state: Arc<(Mutex<bool>, Condvar)>,
    fired: Arc<AtomicBool>,
}

impl Watchdog {
    fn start(pid: libc::pid_t, group: bool, limit: Duration) -> Watchdog {
        let state = Arc::new((Mutex::new(false), Condvar::new()));
        let fired = Arc::new(AtomicBool::new(false));
        let (s, f) = (Arc::clone(&state), Arc::clone(&fired));
        thread::spawn(move || {
            let (lock, cv) = &*s;
            let Ok(mut done) = lock.lock() else { return };
            let target = if group { -pid } else { pid };
            for (after, sig) in [(limit, libc::SIGTERM), (KILL_GRACE, libc::SIGKILL)] {
                let deadline = Instant::now() + after;
                while !*done {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    done = match cv.wait_timeout(done, deadline - now) {
                        Ok((d, _)) => d,
                        Err(_) => return,
                    };
                }
                if *done {
                    return;
                }
                f.store(true, Ordering::SeqCst);
                // SAFETY: the child is not reaped yet (done is false under the lock).
                unsafe {
                    libc::kill(target, sig);
                }
            }
        });
        Watchdog { state, fired }
    }

    /// Marks the child done (it exited and is about to be reaped); true if it was killed.
    fn finish(&self) -> bool {
        let (lock, cv) = &*self.state;
        if let Ok(mut done) = lock.lock() {
            *done = true;
        }
        cv.notify_all();
        self.fired.load(Ordering::SeqCst)
    }
}

/// Waits for `child`; with `limit`, kills it (its process group if `group`) once that has
/// passed.
pub fn wait(
    child: &Child,
    how: Waiting,
    limit: Option<Duration>,
    group: bool,
) -> io::Result<Waited> {
    let pid = child.id() as libc::pid_t;
    let watchdog = limit.map(|l| Watchdog::start(pid, group, l));
    let mut forwarded = 0;
    loop {
        match how {
            Waiting::Forward => {
                if let Some(sig) = signals::received() {
                    let seen = signals::count();
                    if seen > forwarded {
                        let send = if forwarded == 0 { sig } else { libc::SIGKILL };
                        // SAFETY: signalling our own (not yet reaped) child.
                        unsafe {
                            libc::kill(pid, send);
                        }
                        forwarded = seen;
                    }
                }
            }
            Waiting::Shield => {
                if signals::gave_up_cleanup() {
                    if let Some(w) = &watchdog {
                        w.finish();
                    }
                    return Ok(Waited::GaveUp);
                }
            }
        }
        // Wait for the exit without reaping (WNOWAIT), so the watchdog can still signal it.
        // SAFETY: waitid on our own child with a zeroed siginfo to fill.
        let r = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    let killed = watchdog.as_ref().is_some_and(Watchdog::finish);
    let mut status: libc::c_int = 0;
    // SAFETY: reaping our own child, which has exited, with a valid status pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    if r != pid {
        return Err(io::Error::last_os_error());
    }
    match (killed, limit) {
        (true, Some(l)) => Ok(Waited::TimedOut(l)),
        _ => Ok(Waited::Exited(ExitStatus::from_raw(status))),
    }
}

/// Waits for a child of the work, which is never given up on.
pub fn wait_work(child: &Child, limit: Option<Duration>) -> io::Result<Waited> {
    match wait(child, Waiting::Forward, limit, false)? {
        Waited::GaveUp => Err(io::Error::other("stopped waiting")),
        w => Ok(w),
    }
}

/// A shell-style exit code: the code, or 128 + the signal that killed the process.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(signals::exit_code))
        .unwrap_or(1)
}
