//! The shell scripts claude-vm runs in the guest, composed from plain data. Every value that
//! reaches a script goes through shell-escape; nothing here touches a process or a file.

mod build_network;
mod bundle;
mod claude_state;
mod enforce;
mod provision;
mod session_script;

pub use build_network::{build_network, session_proxy_config, BuildNetwork};
pub use bundle::{bundle, BUNDLE_DIR};
pub use claude_state::{CLAUDE_STATE_FILE, CLAUDE_STATE_PROGRAM};
pub use enforce::{drop_and_run, Enforcement};
pub use provision::{provision, ClaudeInstall, Layer, ProvisionInput};
pub use session_script::{env_file, session, ClaudeState, Final, SessionInput};

use std::borrow::Cow;

/// Where the hand-over directory appears in the guest (outside the guest home on purpose:
/// Lima's guest home differs between versions).
pub const HANDOVER_MOUNT: &str = "/mnt/claude-vm";

/// A host script copied into the hand-over directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestScript {
    /// How the user knows it (e.g. `./.claude-vm.runtime.sh`), for messages.
    pub label: String,
    /// Its path in the guest.
    pub guest_path: String,
}

/// Shell-quotes one word.
pub fn quote(s: &str) -> Cow<'_, str> {
    shell_escape::unix::escape(Cow::Borrowed(s))
}

/// Quotes and joins words into one command line.
pub fn quote_words<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote(w.as_ref()).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
pub(crate) mod testing {
    use std::process::Command;

    /// Runs `script` with bash and returns (status, stdout, stderr).
    pub fn run_bash(script: &str, args: &[&str]) -> (i32, String, String) {
        let out = Command::new("bash")
            .arg("-c")
            .arg(script)
            .arg("bash")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}
