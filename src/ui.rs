//! What the user sees from claude-vm itself (never claude's output): step messages on
//! stderr, warnings, and yes/no questions that are only ever asked on a terminal.
//!
//! Nothing here may panic on a failed write: after the terminal is closed (SIGHUP) stderr
//! returns EIO, and cleanup must still run to the end.

use std::io::{self, BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, Default)]
pub struct Ui {
    pub quiet: bool,
}

/// Writes to stderr, ignoring failures (a closed terminal must not stop cleanup).
pub fn raw_stderr(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

macro_rules! say {
    ($($arg:tt)*) => {
        raw_stderr(&format!("{}\n", format_args!($($arg)*)))
    };
}

impl Ui {
    pub fn info(&self, msg: &str) {
        if !self.quiet {
            say!("claude-vm: {msg}");
        }
    }

    pub fn warn(&self, msg: &str) {
        say!("claude-vm: warning: {msg}");
    }

    /// A warning that must stand out: a headline and indented detail lines, never hidden by
    /// `--quiet`.
    pub fn alert(&self, headline: &str, lines: &[String]) {
        let mut text = format!("claude-vm: WARNING: {headline}\n");
        for l in lines {
            text.push_str(&format!("  {l}\n"));
        }
        raw_stderr(&text);
    }

    /// Announces a long step; `Step::done` reports how long it took.
    pub fn step(&self, what: impl Into<String>) -> Step {
        let what = what.into();
        if !self.quiet {
            say!("claude-vm: {what}...");
        }
        Step {
            ui: *self,
            what,
            started: Instant::now(),
        }
    }

    /// Asks a yes/no question on the terminal. `None` when stdin is not a terminal: the
    /// caller must then decide without asking (never block on a pipe).
    pub fn confirm(&self, question: &str, default: bool) -> Option<bool> {
        if !io::stdin().is_terminal() {
            return None;
        }
        let choices = if default { "[Y/n]" } else { "[y/N]" };
        raw_stderr(&format!("claude-vm: {question} {choices} "));
        let _ = io::stderr().flush();
        let mut line = String::new();
        match io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => Some(false),
            Ok(_) => match line.trim().to_ascii_lowercase().as_str() {
                "" => Some(default),
                "y" | "yes" => Some(true),
                _ => Some(false),
            },
        }
    }
}

pub struct Step {
    ui: Ui,
    what: String,
    started: Instant,
}

impl Step {
    pub fn done(self) -> Duration {
        let took = self.started.elapsed();
        if !self.ui.quiet {
            say!("claude-vm: ✓ {} ({:.1}s)", self.what, took.as_secs_f64());
        }
        took
    }
}
