//! `claude-vm completions bash|zsh|fish`: a completion script on stdout.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::error::{Error, Result};

const BIN: &str = "claude-vm";

pub fn run(shell: Shell) -> Result<i32> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN, &mut script);
    if shell == Shell::Bash {
        script = fix_bash(&script);
    }
    match std::io::stdout().write_all(&script) {
        // `claude-vm completions bash | head` closed the pipe: not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::failure(format!(
            "cannot write the completion script: {e}"
        ))),
        _ => Ok(0),
    }
}

/// clap_complete names bash's per-subcommand cases after the binary with its `-` turned
/// into `__subcmd__`, but selects them with `-` turned into `__`, so for `claude-vm` no
/// subcommand's flags would complete. Name the cases the way they are selected.
fn fix_bash(script: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(script);
    text.replace("claude__subcmd__vm", "claude__vm")
        .into_bytes()
}
