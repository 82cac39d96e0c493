//! Guest tools the simulator stands in for. The simulator binary is visible
//! in the guest and these names link to it; `main` dispatches on argv[0].

pub(crate) mod apt;
pub(crate) mod apt_sources;
pub(crate) mod claude;
pub(crate) mod claude_auth;
pub(crate) mod claude_install;
pub(crate) mod claude_mcp;
pub(crate) mod claude_stream;
pub(crate) mod commander;
pub(crate) mod curl;
pub(crate) mod firewall;
pub(crate) mod installers;
pub(crate) mod npm;
pub(crate) mod sudo;
pub(crate) mod urls;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Runs the fake named by argv[0], if it is one; returns its exit status.
pub fn dispatch(argv0: &Path, args: &[OsString]) -> Option<i32> {
    let name = argv0.file_name()?.to_string_lossy().into_owned();
    Some(match name.as_str() {
        "sudo" => sudo::main(args),
        "apt-get" => apt::main(args),
        "curl" => curl::main(args),
        "claude" => claude::main(argv0, args),
        "npm" => npm::main(args),
        tool if firewall::TOOLS.contains(&tool) => firewall::main(tool, args),
        _ => return None,
    })
}

/// A guest path as a fake must access it: unchanged inside the namespace,
/// and under the instance's disk in fallback mode (where "/" is the host's).
pub fn guest_path(path: &str) -> PathBuf {
    match std::env::var_os(crate::agent::FALLBACK_MARKER) {
        Some(inst) => crate::disk::fallback_path(Path::new(&inst), path),
        None => PathBuf::from(path),
    }
}

/// Prints a fake tool's error to stderr.
pub fn complain(tool: &str, msg: &str) {
    crate::output::stderr(&format!("{tool}: {msg}\n"));
}

/// Whether a fake runs as the guest's own non-root user (namespace mode as root), where the
/// real tool would need root; fallback and user-namespace guests stand for root.
pub fn unprivileged() -> bool {
    std::env::var_os(crate::agent::FALLBACK_MARKER).is_none() && crate::sys::geteuid() != 0
}
