//! The one error type of the program, with the hint shown under it and the exit code it maps to.

use std::fmt;
use std::io;
use std::path::Path;

/// Exit code for bad input: flags, config files, paths, names.
pub const EXIT_USAGE: i32 = 2;
/// Exit code for everything else that went wrong.
pub const EXIT_FAILURE: i32 = 1;

#[derive(Debug)]
pub struct Error {
    kind: Kind,
    message: String,
    hint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The user gave us something we cannot use (config, flag, path, name).
    Usage,
    /// Something failed while running (limactl, files, git).
    Failure,
}

impl Error {
    pub fn usage(message: impl Into<String>) -> Self {
        Error {
            kind: Kind::Usage,
            message: message.into(),
            hint: None,
        }
    }

    pub fn failure(message: impl Into<String>) -> Self {
        Error {
            kind: Kind::Failure,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// An I/O error on `path`, saying what we were doing.
    pub fn io(action: &str, path: &Path, err: io::Error) -> Self {
        Error::failure(format!("cannot {action} {}: {err}", path.display()))
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    pub fn exit_code(&self) -> i32 {
        match self.kind {
            Kind::Usage => EXIT_USAGE,
            Kind::Failure => EXIT_FAILURE,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds "while doing X on path P" context to I/O results.
pub trait IoContext<T> {
    fn io_context(self, action: &str, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn io_context(self, action: &str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(action, path.as_ref(), e))
    }
}

/// Paths must be UTF-8 to travel through JSON and shell scripts intact.
pub fn utf8_path<'a>(path: &'a Path, what: &str) -> Result<&'a str> {
    path.to_str().ok_or_else(|| {
        Error::usage(format!("{what} {} is not valid UTF-8", path.display()))
            .with_hint("rename the directory, or run claude-vm from a path with a UTF-8 name")
    })
}
