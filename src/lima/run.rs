//! Spawning limactl: output capture that cannot hang, and signal-aware waiting.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::signals;

/// How much output an error keeps.
const KEEP: usize = 64 * 1024;
/// After limactl exits, how long its output may take to drain. A background process that
/// inherited the pipe (an ssh master, a host agent) must not make us hang.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// Reads a stream on a thread, optionally echoing it to our stderr and copying it to a log.
pub struct Collector {
    buf: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Collector {
    pub fn start(
        stream: impl Read + Send + 'static,
        echo: bool,
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
                if echo {
                    // Lima's output quotes the guest: shown, never obeyed by the terminal.
                    let text = crate::ui::escape_text(&String::from_utf8_lossy(&line), true);
                    let _ = io::stderr().lock().write_all(text.as_bytes());
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
}

pub fn wait(child: &Child, how: Waiting) -> io::Result<Waited> {
    let pid = child.id() as libc::pid_t;
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
                    return Ok(Waited::GaveUp);
                }
            }
        }
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid on our own child with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(Waited::Exited(ExitStatus::from_raw(status)));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Waits for a child of the work, which is never given up on.
pub fn wait_work(child: &Child) -> io::Result<ExitStatus> {
    match wait(child, Waiting::Forward)? {
        Waited::Exited(status) => Ok(status),
        Waited::GaveUp => Err(io::Error::other("stopped waiting")),
    }
}

/// A shell-style exit code: the code, or 128 + the signal that killed the process.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(signals::exit_code))
        .unwrap_or(1)
}
