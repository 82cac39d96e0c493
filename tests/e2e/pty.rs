//! Running claude-vm on a pseudo-terminal (stdin, stdout and stderr), as a person at a
//! terminal would, and reading everything it drew.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;

use crate::support::{Run, World};

/// One run on a terminal: the transcript is stdout and stderr as the terminal got them
/// (the terminal turns `\n` into `\r\n`).
pub struct TtyRun {
    pub code: i32,
    pub transcript: String,
    pub calls: Vec<Vec<String>>,
}

impl TtyRun {
    #[track_caller]
    pub fn ok(&self) -> &TtyRun {
        assert_eq!(self.code, 0, "claude-vm failed:\n{}", self.transcript);
        self
    }

    /// The transcript's lines, as the terminal finally shows them: each `\r` returns to the
    /// start of the line, erase-line sequences clear it.
    pub fn screen_lines(&self) -> Vec<String> {
        self.transcript
            .split("\r\n")
            .map(|l| {
                let last = l.rsplit('\r').next().unwrap_or("");
                strip_ansi(last)
            })
            .collect()
    }
}

/// Removes ANSI escape sequences (CSI ... final byte).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The descriptors are left without close-on-exec, as some terminal emulators and shells
/// leave theirs: claude-vm must not keep such inherited descriptors open in anything it
/// leaves running in the background (the test would wait for the terminal to close).
fn openpty() -> (OwnedFd, OwnedFd) {
    let mut master: libc::c_int = -1;
    let mut slave: libc::c_int = -1;
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two fds into valid pointers; name and termios may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just returned by openpty and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

impl World {
    /// Runs claude-vm in `cwd` with the terminal as stdin, stdout and stderr.
    pub fn run_pty_in(&self, args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> TtyRun {
        let (master, slave) = openpty();
        let before = self.logged().len();
        let mut cmd = self.command(args, cwd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.env("TERM", "xterm-256color")
            .stdin(Stdio::from(slave.try_clone().expect("dup pty")))
            .stdout(Stdio::from(slave.try_clone().expect("dup pty")))
            .stderr(Stdio::from(slave));
        let mut child = cmd.spawn().expect("spawn claude-vm");
        // Drop our copies of the slave (moved into `cmd`), so reading ends when the child's do.
        drop(cmd);
        let reader = std::thread::spawn(move || {
            let mut file = std::fs::File::from(master);
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            // A pty master reads EIO once every slave descriptor is closed.
            while let Ok(n) = file.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            out
        });
        let status = child.wait().expect("wait");
        let transcript = String::from_utf8_lossy(&reader.join().expect("reader")).into_owned();
        let calls = self.logged()[before..].to_vec();
        let run = TtyRun {
            code: status.code().unwrap_or(-1),
            transcript,
            calls,
        };
        self.check_invariants(&Run {
            code: run.code,
            stdout: String::new(),
            stderr: run.transcript.clone(),
            calls: run.calls.clone(),
        });
        run
    }

    pub fn run_pty(&self, args: &[&str], env: &[(&str, &str)]) -> TtyRun {
        self.run_pty_in(args, &self.project.clone(), env)
    }
}
