//! claude-vm: run Claude Code in disposable Lima VMs.

mod atomic;
mod audit;
mod cli;
mod commands;
mod config;
mod detach;
mod doctor;
mod error;
mod fingerprint;
mod handover;
mod hostfile;
mod integrations;
mod journal;
mod lima;
mod lock;
mod names;
// The session network proxy (issue 12); sessions start it once it is wired in.
#[allow(dead_code, unused_imports)]
mod net;
mod paths;
mod plan;
mod pool;
mod procinfo;
mod project;
mod reap;
mod script;
mod session;
mod signals;
mod template;
mod tools;
mod trust;
mod tty;
mod ui;
mod update;
mod workdir;
mod worktrees;

use clap::Parser;

fn main() {
    if let Some(code) = update::notice::run_if_asked() {
        std::process::exit(code);
    }
    if let Some(code) = commands::warm::keeper_if_asked() {
        std::process::exit(code);
    }
    let cli = cli::Cli::parse();
    let code = match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            report(&err);
            err.exit_code()
        }
    };
    // A termination signal decides the exit status, once cleanup is done.
    let code = signals::received().map_or(code, signals::exit_code);
    std::process::exit(code);
}

/// Prints an error and its hint; no backtrace, no debug formatting.
/// Never panics: stderr may be a terminal that was closed.
pub fn report(err: &error::Error) {
    // Errors quote Lima's messages, release tags and file names: escaped like every message.
    let message = ui::escape_text(err.message(), true);
    let mut text = format!("claude-vm: error: {message}\n");
    if let Some(hint) = err.hint() {
        for (i, line) in ui::escape_text(hint, true).lines().enumerate() {
            let lead = if i == 0 { "  hint:" } else { "       " };
            text.push_str(&format!("{lead} {line}\n"));
        }
    }
    ui::raw_stderr(&text);
}
