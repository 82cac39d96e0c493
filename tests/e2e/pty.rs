//! Running claude-vm on a pseudo-terminal (stdin, stdout and stderr), as a person at a
//! terminal would, and reading everything it drew.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{Run, World};
use crate::tty;

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

/// claude-vm running on a terminal that a test types into and reads from as it goes.
pub struct PtySession<'w> {
    world: &'w World,
    child: std::process::Child,
    master: std::fs::File,
    output: tty::Recording,
    before: usize,
}

impl PtySession<'_> {
    pub fn write(&mut self, bytes: &[u8]) {
        use std::io::Write;
        let _ = self.master.write_all(bytes);
    }

    pub fn transcript(&self) -> String {
        self.output.text()
    }

    /// What was drawn so far, without escape sequences.
    pub fn screen(&self) -> String {
        strip_ansi(&self.transcript())
    }

    pub fn wait_for_screen(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if pred(&self.screen()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        pred(&self.screen())
    }

    /// Waits for claude-vm to exit (killing it after `timeout`) and checks the invariants.
    pub fn finish(mut self, timeout: Duration) -> TtyRun {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break self.child.wait().expect("wait");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        self.output.wait();
        let run = TtyRun {
            code: status.code().unwrap_or(-1),
            transcript: self.transcript(),
            calls: self.world.logged()[self.before..].to_vec(),
        };
        self.world.check_invariants(&Run {
            code: run.code,
            stdout: String::new(),
            stderr: run.transcript.clone(),
            calls: run.calls.clone(),
        });
        run
    }
}

impl World {
    /// Starts claude-vm in `cwd` with a terminal as stdin, stdout and stderr.
    pub fn spawn_pty_in(&self, args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> PtySession<'_> {
        // Left without close-on-exec, as some terminal emulators and shells leave theirs:
        // claude-vm must not keep such inherited descriptors open in anything it leaves
        // running in the background (the test would wait for the terminal to close).
        let tty::Pair { master, slave } = tty::open_inherited(40, 120);
        let before = self.logged().len();
        let mut cmd = self.command(args, cwd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.env("TERM", "xterm-256color")
            .stdin(Stdio::from(slave.try_clone().expect("dup pty")))
            .stdout(Stdio::from(slave.try_clone().expect("dup pty")))
            .stderr(Stdio::from(slave));
        let child = cmd.spawn().expect("spawn claude-vm");
        // Drop our copies of the slave (moved into `cmd`), so reading ends when the child's do.
        drop(cmd);
        let output = tty::Recording::start(&master);
        PtySession {
            world: self,
            child,
            master,
            output,
            before,
        }
    }

    pub fn spawn_pty(&self, args: &[&str], env: &[(&str, &str)]) -> PtySession<'_> {
        self.spawn_pty_in(args, &self.project.clone(), env)
    }

    /// Runs claude-vm in `cwd` with the terminal as stdin, stdout and stderr, typing nothing.
    pub fn run_pty_in(&self, args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> TtyRun {
        self.spawn_pty_in(args, cwd, env)
            .finish(Duration::from_secs(600))
    }

    pub fn run_pty(&self, args: &[&str], env: &[(&str, &str)]) -> TtyRun {
        self.run_pty_in(args, &self.project.clone(), env)
    }
}
