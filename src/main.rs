//! claude-vm: run Claude Code in disposable Lima VMs.

mod cli;
mod commands;
mod config;
mod doctor;
mod error;
mod handover;
mod integrations;
mod lima;
mod names;
mod paths;
mod plan;
mod project;
mod script;
mod session;
mod signals;
mod template;
mod tools;
mod ui;
mod update;

use clap::Parser;

fn main() {
    if let Some(code) = update::notice::run_if_asked() {
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
pub fn report(err: &error::Error) {
    eprintln!("claude-vm: error: {}", err.message());
    if let Some(hint) = err.hint() {
        for (i, line) in hint.lines().enumerate() {
            eprintln!("{} {line}", if i == 0 { "  hint:" } else { "       " });
        }
    }
}
