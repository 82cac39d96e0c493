//! claude-vm: run Claude Code in disposable Lima VMs.

mod archive;
mod atomic;
mod audit;
mod cli;
mod clock;
mod commands;
mod config;
mod detach;
mod digest;
mod doctor;
mod error;
mod escape;
mod events;
mod filenames;
mod fingerprint;
mod fsread;
mod handover;
mod hostfile;
mod integrations;
mod journal;
mod keeper;
mod lima;
mod lock;
mod manifest;
mod mcp;
mod names;
mod net;
mod netpattern;
mod network;
mod owner;
mod paths;
mod plan;
mod pool;
mod procinfo;
mod project;
mod reap;
mod script;
mod signals;
mod swap;
mod template;
#[cfg(test)]
mod testing;
mod tools;
mod trust;
mod tty;
mod typos;
mod ui;
mod update;
mod web;
mod workdir;
mod workflow;
mod worktrees;

use clap::Parser;

fn main() {
    if let Some(code) = update::notice::run_if_asked() {
        std::process::exit(code);
    }
    if let Some(code) = keeper::keeper_if_asked() {
        std::process::exit(code);
    }
    let args = cli::argv(std::env::args_os());
    // Asked before parsing, so that a refused command line is an `error` event too.
    let json = args
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json");
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli.quiet_for_stdio(),
        Err(e) => std::process::exit(clap_failed(&e, json)),
    };
    let code = match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            report(&err);
            err.exit_code()
        }
    };
    let code = match ui::stdout_failure() {
        Some(why) if code == 0 => {
            let err = error::Error::failure(format!("cannot write the output: {why}"));
            report(&err);
            err.exit_code()
        }
        _ => code,
    };
    // A termination signal decides the exit status, once cleanup is done.
    let code = signals::received().map_or(code, signals::exit_code);
    std::process::exit(code);
}

/// Prints clap's help or version as it is, and its errors like ours (`claude-vm: error:`).
/// Under `--json` an error is one `error` event (`usage`): its first paragraph the message,
/// the rest (usage line, `--help` pointer) the hint. Returns the exit code.
fn clap_failed(e: &clap::Error, json: bool) -> i32 {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        // Into a closed pipe (`claude-vm --help | head`): nothing to say.
        let _ = e.print();
        return 0;
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        ui::raw_stderr(&e.render().to_string());
        return 2;
    }
    let text = e.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    if json {
        let (message, rest) = text.split_once("\n\n").unwrap_or((text, ""));
        let hint = rest.trim();
        ui::emit(&events::Event::Error {
            message: message.trim().to_owned(),
            hint: (!hint.is_empty()).then(|| hint.to_owned()),
            kind: "usage".to_owned(),
            exit_code: 2,
        });
        return 2;
    }
    ui::raw_stderr(&format!("claude-vm: error: {text}"));
    2
}

/// Prints an error and its hint; no backtrace, no debug formatting.
/// Never panics: stderr may be a terminal that was closed.
pub fn report(err: &error::Error) {
    if ui::json_mode() {
        return ui::emit(&events::Event::Error {
            message: err.message().to_owned(),
            hint: err.hint().map(str::to_owned),
            kind: if err.exit_code() == 2 {
                "usage"
            } else {
                "failure"
            }
            .to_owned(),
            exit_code: err.exit_code(),
        });
    }
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
