//! The simulator's one error type: what `limactl` prints and how it exits.

use std::io;
use std::path::Path;

use crate::sys;

/// A command failure. With a message, `main` prints it as a logrus fatal
/// line (as Lima's `logrus.Fatal(err)` does); without one it exits quietly
/// with `code` (as Lima does for a failed ssh/scp child).
#[derive(Debug)]
pub struct Fail {
    pub msg: Option<String>,
    pub code: i32,
}

pub type Res<T> = Result<T, Fail>;

impl Fail {
    pub fn fatal(msg: impl Into<String>) -> Self {
        Fail {
            msg: Some(msg.into()),
            code: 1,
        }
    }

    pub fn with_code(msg: impl Into<String>, code: i32) -> Self {
        Fail {
            msg: Some(msg.into()),
            code,
        }
    }

    pub fn quiet(code: i32) -> Self {
        Fail { msg: None, code }
    }

    /// A Go-style path error: "open /x: no such file or directory".
    pub fn path(op: &str, path: &Path, err: &io::Error) -> Self {
        Fail::fatal(sys::path_error(op, path, err))
    }

    /// Prefixes the message, like Go's `fmt.Errorf("...: %w", err)`.
    pub fn context(self, prefix: &str) -> Self {
        Fail {
            msg: self.msg.map(|m| format!("{prefix}: {m}")),
            code: self.code,
        }
    }
}

impl From<String> for Fail {
    fn from(msg: String) -> Self {
        Fail::fatal(msg)
    }
}
