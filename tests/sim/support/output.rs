//! Writing to stdout and stderr without panicking when they are closed (the
//! `print!` macros would).

use std::io::Write;

use crate::fail::{Fail, Res};
use crate::sys;

/// Command output: a failed write is an error, as in Go.
pub fn stdout(text: &str) -> Res<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Fail::fatal(format!("write /dev/stdout: {}", sys::go_errno_text(&e))))
}

/// Best-effort output of the guest tools (nothing to do if it is gone).
pub fn stdout_lossy(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}

/// Best-effort diagnostics on stderr.
pub fn stderr(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}
