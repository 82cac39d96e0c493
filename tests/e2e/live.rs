//! claude-vm as a live process the test can watch and signal: in its own process group
//! (what a shell gives a foreground job, so a signal to the group is a terminal's Ctrl-C), or
//! on a pseudo-terminal that is its controlling terminal. Readiness is awaited by polling the
//! simulator's call log or the process's output, never by sleeping a fixed time.

#![allow(dead_code)]

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::World;

/// Long enough for any step of the simulator on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Reads a pipe on a thread; the receiver fires at EOF.
fn collect(mut r: impl Read + Send + 'static) -> (Arc<Mutex<Vec<u8>>>, mpsc::Receiver<()>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let shared = Arc::clone(&buf);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            shared.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
        let _ = tx.send(());
    });
    (buf, rx)
}

fn text(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

/// Polls `ready` until it holds, or panics after PATIENCE with `what`.
#[track_caller]
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: sending a signal to a process (or, negative, a group) this test started.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// A claude-vm run in the background, in its own process group.
pub struct Spawned {
    pub child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    eof: Vec<mpsc::Receiver<()>>,
}

impl World {
    pub fn spawn(&self, args: &[&str]) -> Spawned {
        self.spawn_with(args, &[])
    }

    /// With extra environment for this run only (e.g. `LIMA_SIM_DELAY`).
    pub fn spawn_with(&self, args: &[&str], env: &[(&str, &str)]) -> Spawned {
        self.spawn_in(args, &self.project.clone(), env)
    }

    /// In another directory (another project).
    pub fn spawn_in(&self, args: &[&str], cwd: &std::path::Path, env: &[(&str, &str)]) -> Spawned {
        let mut cmd = self.command(args, cwd);
        cmd.process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn claude-vm");
        let (stdout, out_eof) = collect(child.stdout.take().unwrap());
        let (stderr, err_eof) = collect(child.stderr.take().unwrap());
        Spawned {
            child,
            stdout,
            stderr,
            eof: vec![out_eof, err_eof],
        }
    }

    /// The number of limactl calls so far whose argv satisfies `pred` and that `pid` made.
    pub fn calls_by(&self, pid: u32, pred: impl Fn(&[String]) -> bool) -> usize {
        self.logged_records()
            .iter()
            .filter(|(ppid, argv, _)| *ppid == pid && pred(argv))
            .count()
    }

    /// (ppid, argv, pid) of every limactl start record.
    pub fn logged_records(&self) -> Vec<(u32, Vec<String>, u32)> {
        let Ok(text) = std::fs::read_to_string(&self.log) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == "start")
            .map(|v| {
                let argv = v["argv"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| x.as_str().unwrap_or("").to_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    v["ppid"].as_u64().unwrap_or(0) as u32,
                    argv,
                    v["pid"].as_u64().unwrap_or(0) as u32,
                )
            })
            .collect()
    }

    /// Has the limactl process `pid` logged its (normal) end?
    pub fn ended(&self, pid: u32) -> bool {
        let Ok(text) = std::fs::read_to_string(&self.log) else {
            return false;
        };
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|v| v["event"] == "end" && v["pid"].as_u64() == Some(u64::from(pid)))
    }

    /// Waits until `pid` (claude-vm) has started a limactl call whose first word is `verb`;
    /// returns that limactl's pid.
    #[track_caller]
    pub fn await_call(&self, pid: u32, verb: &str) -> u32 {
        let mut found = 0;
        wait_until(&format!("`limactl {verb}` from pid {pid}"), || {
            if let Some((_, _, p)) = self.logged_records().into_iter().find(|(ppid, argv, _)| {
                *ppid == pid && argv.first().map(String::as_str) == Some(verb)
            }) {
                found = p;
                true
            } else {
                false
            }
        });
        found
    }
}

impl Spawned {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        text(&self.stdout)
    }

    pub fn stderr(&self) -> String {
        text(&self.stderr)
    }

    /// A signal to the process alone (`kill PID`).
    pub fn signal(&self, sig: libc::c_int) {
        signal(self.pid() as i32, sig);
    }

    /// A signal to its whole process group: what the terminal does on Ctrl-C.
    pub fn signal_group(&self, sig: libc::c_int) {
        signal(-(self.pid() as i32), sig);
    }

    #[track_caller]
    pub fn await_stdout(&self, needle: &str) {
        wait_until(&format!("{needle:?} on stdout"), || {
            self.stdout().contains(needle)
        });
    }

    #[track_caller]
    pub fn await_stderr(&self, needle: &str) {
        wait_until(&format!("{needle:?} on stderr"), || {
            self.stderr().contains(needle)
        });
    }

    /// Waits for the exit; the exit code (128 + N if it died of signal N).
    #[track_caller]
    pub fn finish(&mut self) -> i32 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Its output, up to EOF (a detached child holding the pipe may delay it).
                for eof in &self.eof {
                    let _ = eof.recv_timeout(Duration::from_secs(2));
                }
                return code(status);
            }
            assert!(
                Instant::now() < deadline,
                "claude-vm did not exit; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// claude-vm on a pseudo-terminal that is its controlling terminal: stdin, stdout and
/// stderr all on it, as in an interactive shell.
pub struct Terminal {
    pub child: Child,
    output: Arc<Mutex<Vec<u8>>>,
    typing: mpsc::Sender<Vec<u8>>,
    hangup: Arc<AtomicBool>,
    /// A second descriptor of the terminal, to read its mode.
    probe: OwnedFd,
}

impl World {
    pub fn spawn_on_terminal(&self, args: &[&str]) -> Terminal {
        // Close-on-exec: a master held open by claude-vm's children would never hang up.
        let crate::tty::Pair { master, slave } = crate::tty::open();
        let probe = slave.try_clone().unwrap();
        let mut cmd = self.command(args, &self.project);
        cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn claude-vm on a terminal");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (typing, keys) = mpsc::channel::<Vec<u8>>();
        let hangup = Arc::new(AtomicBool::new(false));
        {
            let output = Arc::clone(&output);
            let hangup = Arc::clone(&hangup);
            // The only holder of the master: dropping it hangs the terminal up.
            std::thread::spawn(move || {
                let fd = master.as_raw_fd();
                let mut buf = [0u8; 4096];
                while !hangup.load(Ordering::SeqCst) {
                    while let Ok(bytes) = keys.try_recv() {
                        // SAFETY: writing a valid buffer to our descriptor.
                        unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
                    }
                    let mut p = libc::pollfd {
                        fd,
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    if unsafe { libc::poll(&mut p, 1, 20) } > 0 && p.revents & libc::POLLIN != 0 {
                        // SAFETY: reading into a valid buffer.
                        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                        if n > 0 {
                            output.lock().unwrap().extend_from_slice(&buf[..n as usize]);
                        }
                    }
                }
                drop(master);
            });
        }
        Terminal {
            child,
            output,
            typing,
            hangup,
            probe,
        }
    }
}

impl Terminal {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn output(&self) -> String {
        text(&self.output)
    }

    #[track_caller]
    pub fn await_output(&self, needle: &str) {
        wait_until(&format!("{needle:?} on the terminal"), || {
            self.output().contains(needle)
        });
    }

    /// Keys typed by the user.
    pub fn type_keys(&self, bytes: &[u8]) {
        self.typing.send(bytes.to_vec()).unwrap();
    }

    /// Closes the terminal, as when its window is closed.
    pub fn hang_up(&self) {
        self.hangup.store(true, Ordering::SeqCst);
    }

    /// Canonical mode, echo and signal keys on: a usable shell terminal.
    pub fn is_cooked(&self) -> bool {
        crate::tty::has_lflags(&self.probe, libc::ICANON | libc::ECHO | libc::ISIG)
    }

    #[track_caller]
    pub fn finish(&mut self) -> i32 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                std::thread::sleep(Duration::from_millis(50));
                return code(status);
            }
            assert!(
                Instant::now() < deadline,
                "claude-vm did not exit; terminal:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.hang_up();
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
