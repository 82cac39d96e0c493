//! The Lima client: the only code that spawns `limactl`.

mod call;
mod error;
mod instance;
mod run;

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};

pub use call::{
    clone, create, delete, list, rename, shell, start, stop, version, Call, CloneSpec, CreateSpec,
    LimaMount, Resources, SetExpr, ShellSpec, Verb,
};
pub use error::{LimaError, LimaErrorKind};
pub use instance::{parse_list, Instance};
pub use run::exit_code;

use run::Collector;

#[derive(Debug, Clone)]
pub struct Limactl {
    program: OsString,
    /// Stream Lima's own output live instead of keeping it for errors only.
    verbose: bool,
}

/// How a call relates to our signals and terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Part of the work: stops when we are asked to stop.
    Work,
    /// Cleanup: runs in its own process group so a Ctrl-C on the terminal cannot cut it short.
    Cleanup,
}

impl Limactl {
    pub fn new(verbose: bool) -> Limactl {
        Limactl {
            program: OsString::from("limactl"),
            verbose,
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
            .map(|s| Collector::start(s, false, None, true));
        let err = child
            .stderr
            .take()
            .map(|s| Collector::start(s, self.verbose, None, false));
        let status = run::wait(&child, true)
            .map_err(|e| self.error(call, instance, LimaErrorKind::Spawn(e)))?;
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
        self.run_merged(call, instance, log, Role::Work, None)
    }

    /// Like `run`, with `input` written to limactl's stdin (a script for `bash -s`).
    pub fn run_with_input(
        &self,
        call: &Call,
        instance: Option<&str>,
        log: Option<File>,
        input: Vec<u8>,
    ) -> Result<(), LimaError> {
        self.run_merged(call, instance, log, Role::Work, Some(input))
    }

    /// Runs a cleanup call (delete): not interruptible from the terminal.
    pub fn cleanup(&self, call: &Call, instance: Option<&str>) -> Result<(), LimaError> {
        self.run_merged(call, instance, None, Role::Cleanup, None)
    }

    fn run_merged(
        &self,
        call: &Call,
        instance: Option<&str>,
        log: Option<File>,
        role: Role,
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
            if role == Role::Cleanup {
                cmd.process_group(0);
            }
            // `cmd` (and its copies of the pipe's write end) is dropped at the end of this
            // block, so the reader sees EOF when limactl exits.
            cmd.spawn()
                .map_err(|e| self.spawn_error(call, instance, e))?
        };
        let output = Collector::start(reader, self.verbose, log, false);
        // Written on a thread: a child that stops reading must not block us.
        let mut child = child;
        if let (Some(mut stdin), Some(bytes)) = (child.stdin.take(), input) {
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = stdin.write_all(&bytes);
            });
        }
        let status = run::wait(&child, role == Role::Work)
            .map_err(|e| self.error(call, instance, LimaErrorKind::Spawn(e)))?;
        let text = output.finish();
        if status.success() {
            Ok(())
        } else {
            Err(self.error(
                call,
                instance,
                LimaErrorKind::Failed {
                    code: status.code(),
                    stderr: text,
                },
            ))
        }
    }

    /// Runs a call attached to our terminal (stdin, stdout, stderr inherited): `limactl shell`
    /// with claude or the user's shell. Signals we get are forwarded to it.
    pub fn run_attached(
        &self,
        call: &Call,
        instance: Option<&str>,
    ) -> Result<ExitStatus, LimaError> {
        // The terminal is the child's from here: no spinner may draw over it.
        crate::ui::release_terminal();
        let child = Command::new(&self.program)
            .args(&call.args)
            .spawn()
            .map_err(|e| self.spawn_error(call, instance, e))?;
        run::wait(&child, true).map_err(|e| self.error(call, instance, LimaErrorKind::Spawn(e)))
    }

    pub fn list(&self) -> Result<Vec<Instance>, LimaError> {
        let call = list();
        let out = self.capture(&call, None)?;
        parse_list(&out).map_err(|what| self.error(&call, None, LimaErrorKind::BadOutput(what)))
    }
}
