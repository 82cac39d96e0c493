//! The Lima client: the only code that spawns `limactl`.

mod call;
pub mod detect;
mod error;
mod instance;
mod run;
pub mod timeout;

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};

#[cfg(test)]
pub use call::Verb;
pub use call::{
    clone, create, delete, edit, host_vm_type, list, rename, shell, start, stop, version, Call,
    CloneSpec, CreateSpec, LimaMount, Resources, SetExpr, ShellSpec,
};
pub use error::{LimaError, LimaErrorKind};
pub use instance::{parse_list, Instance};
pub use run::exit_code;
pub use timeout::Timeouts;

use run::{Collector, Waited, Waiting};

#[derive(Debug, Clone)]
pub struct Limactl {
    program: OsString,
    /// Stream Lima's own output live instead of keeping it for errors only.
    verbose: bool,
    /// When a call counts as hung (`timeout.rs`).
    timeouts: Timeouts,
    terminal: Terminal,
}

/// What the client needs of the terminal, given by its caller: the Lima client itself never
/// prints and knows nothing of the UI.
#[derive(Debug, Clone, Copy)]
pub struct Terminal {
    /// Shows limactl's output under --verbose (it quotes the guest: the caller escapes it).
    pub echo: fn(&[u8]),
    /// Called before an attached child takes the terminal; what it returns is called once the
    /// child has exited (to put the terminal back as it was).
    pub hand_over: fn() -> Box<dyn FnOnce()>,
}

impl Terminal {
    /// No terminal: nothing is echoed, nothing to hand over.
    pub const NONE: Terminal = Terminal {
        echo: |_| {},
        hand_over: || Box::new(|| {}),
    };
}

impl Limactl {
    pub fn new(verbose: bool, timeouts: Timeouts) -> Limactl {
        Limactl {
            program: OsString::from("limactl"),
            verbose,
            timeouts,
            terminal: Terminal::NONE,
        }
    }

    /// The same client, echoing and handing over the terminal through `terminal`.
    pub fn with_terminal(self, terminal: Terminal) -> Limactl {
        Limactl { terminal, ..self }
    }

    /// The echo for `--verbose`, if on.
    fn echo(&self) -> Option<fn(&[u8])> {
        self.verbose.then_some(self.terminal.echo)
    }

    /// The child's exit status, or the error of a call that hung and was killed.
    fn exited(
        &self,
        call: &Call,
        instance: Option<&str>,
        waited: std::io::Result<Waited>,
    ) -> Result<ExitStatus, LimaError> {
        match waited {
            Ok(Waited::Exited(status)) => Ok(status),
            Ok(Waited::TimedOut(limit)) => {
                Err(self.error(call, instance, LimaErrorKind::TimedOut(limit)))
            }
            Ok(Waited::GaveUp) => Err(self.error(call, instance, LimaErrorKind::GaveUp)),
            Err(e) => Err(self.error(call, instance, LimaErrorKind::Spawn(e))),
        }
    }

    fn error(&self, call: &Call, instance: Option<&str>, kind: LimaErrorKind) -> LimaError {
        LimaError {
            verb: call.verb,
            instance: instance.map(str::to_owned),
            command: call.to_string(),
            kind,
        }
    }

    /// Success, or a failure carrying what limactl printed.
    fn outcome(
        &self,
        call: &Call,
        instance: Option<&str>,
        status: ExitStatus,
        output: String,
    ) -> Result<(), LimaError> {
        if status.success() {
            Ok(())
        } else {
            Err(self.error(
                call,
                instance,
                LimaErrorKind::Failed {
                    code: status.code(),
                    stderr: output,
                },
            ))
        }
    }

    fn spawn_error(&self, call: &Call, instance: Option<&str>, e: std::io::Error) -> LimaError {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            LimaErrorKind::Missing
        } else {
            LimaErrorKind::Spawn(e)
        };
        self.error(call, instance, kind)
    }

    /// Runs a call whose stdout we need (list, version); stderr is kept for the error.
    pub fn capture(&self, call: &Call, instance: Option<&str>) -> Result<String, LimaError> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&call.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| self.spawn_error(call, instance, e))?;
        let out = child
            .stdout
            .take()
            .map(|s| Collector::start(s, None, None, true));
        let err = child
            .stderr
            .take()
            .map(|s| Collector::start(s, self.echo(), None, false));
        let status = self.exited(
            call,
            instance,
            run::wait_work(&child, self.timeouts.limit(call.verb)),
        )?;
        let stdout = out.map(Collector::finish).unwrap_or_default();
        let stderr = err.map(Collector::finish).unwrap_or_default();
        if status.success() {
            Ok(stdout)
        } else {
            Err(self.error(
                call,
                instance,
                LimaErrorKind::Failed {
                    code: status.code(),
                    stderr,
                },
            ))
        }
    }

    /// Runs a step of the work (create, start, clone, provisioning...). Its stdout and
    /// stderr are merged, shown live with `--verbose`, copied to `log`, kept for the error.
    pub fn run(
        &self,
        call: &Call,
        instance: Option<&str>,
        log: Option<File>,
    ) -> Result<(), LimaError> {
        self.run_merged(call, instance, log, None)
    }

    /// Like `run`, with `input` written to limactl's stdin (a script for `bash -s`).
    pub fn run_with_input(
        &self,
        call: &Call,
        instance: Option<&str>,
        log: Option<File>,
        input: Vec<u8>,
    ) -> Result<(), LimaError> {
        self.run_merged(call, instance, log, Some(input))
    }

    /// Runs a call that must finish once begun (a delete, a swap's renames): in its own process group, so a Ctrl-C on the terminal
    /// cannot cut it short, with its output in a file rather than a pipe, so it can finish
    /// even if we stop waiting for it (asked twice) and exit.
    pub fn run_shielded(&self, call: &Call, instance: Option<&str>) -> Result<(), LimaError> {
        let spawn_err = |e| self.error(call, instance, LimaErrorKind::Spawn(e));
        let mut out = tempfile::tempfile().map_err(spawn_err)?;
        let child = Command::new(&self.program)
            .args(&call.args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(spawn_err)?)
            .stderr(out.try_clone().map_err(spawn_err)?)
            .process_group(0)
            .spawn()
            .map_err(|e| self.spawn_error(call, instance, e))?;
        let limit = self.timeouts.limit(call.verb);
        let status = self.exited(
            call,
            instance,
            run::wait(&child, Waiting::Shield, limit, true),
        )?;
        let mut text = String::new();
        let _ = out
            .seek(SeekFrom::Start(0))
            .and_then(|_| out.read_to_string(&mut text));
        if let Some(echo) = self.echo() {
            echo(text.as_bytes());
        }
        self.outcome(call, instance, status, text)
    }

    fn run_merged(
        &self,
        call: &Call,
        instance: Option<&str>,
        log: Option<File>,
        input: Option<Vec<u8>>,
    ) -> Result<(), LimaError> {
        let (reader, writer) =
            std::io::pipe().map_err(|e| self.error(call, instance, LimaErrorKind::Spawn(e)))?;
        let child = {
            let mut cmd = Command::new(&self.program);
            let writer2 = writer
                .try_clone()
                .map_err(|e| self.error(call, instance, LimaErrorKind::Spawn(e)))?;
            let stdin = if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            };
            cmd.args(&call.args)
                .stdin(stdin)
                .stdout(writer)
                .stderr(writer2);
            // `cmd` (and its copies of the pipe's write end) is dropped at the end of this
            // block, so the reader sees EOF when limactl exits.
            cmd.spawn()
                .map_err(|e| self.spawn_error(call, instance, e))?
        };
        let output = Collector::start(reader, self.echo(), log, false);
        // Written on a thread: a child that stops reading must not block us.
        let mut child = child;
        if let (Some(mut stdin), Some(bytes)) = (child.stdin.take(), input) {
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = stdin.write_all(&bytes);
            });
        }
        let status = self.exited(
            call,
            instance,
            run::wait_work(&child, self.timeouts.limit(call.verb)),
        )?;
        let text = output.finish();
        self.outcome(call, instance, status, text)
    }

    /// Runs a call attached to our terminal (stdin, stdout, stderr inherited): `limactl shell`
    /// with claude or the user's shell, in our process group so it can use the terminal.
    /// Signals we get are forwarded to it; the terminal's mode is put back afterwards.
    pub fn run_attached(
        &self,
        call: &Call,
        instance: Option<&str>,
    ) -> Result<ExitStatus, LimaError> {
        // The terminal is the child's from here: no spinner may draw over it.
        let give_back = (self.terminal.hand_over)();
        let child = Command::new(&self.program)
            .args(&call.args)
            .spawn()
            .map_err(|e| self.spawn_error(call, instance, e))?;
        // No time limit: an attached shell lasts as long as the person or claude in it.
        let status = run::wait_work(&child, None);
        give_back();
        self.exited(call, instance, status)
    }

    /// Like [`Limactl::run_attached`], but the child's stderr comes back line by line to
    /// `on_line` (for `--json`, where every line on our stderr must be an event).
    ///
    /// Once limactl has exited, its stderr is read for at most `DRAIN_GRACE` more: a process
    /// that outlives it may hold the pipe (a guest command the simulator's session did not end,
    /// an ssh master), and the VM must still be deleted at once.
    pub fn run_attached_lines(
        &self,
        call: &Call,
        instance: Option<&str>,
        on_line: &(dyn Fn(&str) + Sync),
    ) -> Result<ExitStatus, LimaError> {
        let give_back = (self.terminal.hand_over)();
        let mut child = Command::new(&self.program)
            .args(&call.args)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(call, instance, e))?;
        let lines = child.stderr.take().map(run::Lines::start);
        let exited = std::sync::OnceLock::new();
        let status = std::thread::scope(|scope| {
            let delivering = lines.map(|lines| {
                let exited = &exited;
                scope.spawn(move || lines.deliver(on_line, exited))
            });
            let status = run::wait_work(&child, None);
            let _ = exited.set(std::time::Instant::now());
            if let Some(d) = delivering {
                let _ = d.join();
            }
            status
        });
        give_back();
        self.exited(call, instance, status)
    }

    /// `limactl --version`'s version number.
    pub fn version(&self) -> Result<String, LimaError> {
        let call = version();
        let out = self.capture(&call, None)?;
        detect::parse_version(&out)
            .ok_or_else(|| self.error(&call, None, LimaErrorKind::BadOutput(out.trim().to_owned())))
    }

    pub fn list(&self) -> Result<Vec<Instance>, LimaError> {
        let call = list();
        let out = self.capture(&call, None)?;
        parse_list(&out).map_err(|what| self.error(&call, None, LimaErrorKind::BadOutput(what)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    #[test]
    fn an_attached_call_returns_once_limactl_exits_though_another_process_holds_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let lima = Limactl {
            program: "/bin/sh".into(),
            verbose: false,
            timeouts: Timeouts::default(),
            terminal: Terminal::NONE,
        };
        // "limactl" exits at once; what it started (a guest command nobody ended) keeps the
        // pipe for 30 s.
        let script = format!(
            "echo first >&2; sleep 30 </dev/null >/dev/null & echo $! > '{}'; echo second >&2; exit 3",
            pidfile.display()
        );
        let call = Call {
            verb: Verb::Shell,
            args: vec!["-c".into(), script],
        };
        let lines = Mutex::new(Vec::new());
        let began = Instant::now();
        let status = lima
            .run_attached_lines(&call, None, &|l: &str| {
                lines.lock().unwrap().push(l.to_owned())
            })
            .unwrap();
        let took = began.elapsed();
        let holder: libc::pid_t = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SAFETY: ends the sleep this test started, by its pid.
        unsafe { libc::kill(holder, libc::SIGKILL) };
        assert_eq!(status.code(), Some(3));
        assert_eq!(*lines.lock().unwrap(), ["first", "second"]);
        assert!(
            took < run::DRAIN_GRACE + Duration::from_secs(2),
            "waited {took:?} for a pipe held by another process"
        );
    }
}
