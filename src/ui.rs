//! What the user sees from claude-vm itself (never claude's output): step progress, messages
//! and warnings on stderr, and yes/no questions that are only ever asked on a terminal.
//!
//! On a terminal a long step is a spinner with its name and elapsed time, replaced by a ✓ line
//! with the duration. Off a terminal (or with `--verbose`, whose streamed Lima output a spinner
//! would garble) every message is one plain line. `NO_COLOR` turns colour off; `--quiet`
//! leaves only errors, which `main` prints.
//!
//! Nothing here may panic on a failed write: after the terminal is closed (SIGHUP) stderr
//! returns EIO, and cleanup must still run to the end.

use std::io::{self, BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use console::style;

use crate::events::Event;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How messages are drawn, decided once from the terminal, the environment and the flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ui {
    pub quiet: bool,
    /// Spinners that redraw in place (stderr is a terminal, no `--verbose`).
    live: bool,
    color: bool,
    /// stderr is a terminal (whatever the flags): alerts first undo what the VM's output may
    /// have left set there.
    terminal: bool,
    /// `--json`: every message is an event line (`events.rs`), nothing else is drawn.
    json: bool,
}

/// `--json` is on for this process (errors printed by `main` follow it too).
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn json_mode() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Writes one event line on stderr (JSON text is escaped by serde: nothing raw reaches a
/// terminal).
pub fn emit(event: &Event) {
    line(&event.to_json_line());
}

/// Puts a terminal back to plain, visible text: attributes (hidden, same colour as the
/// background), the character set (line drawing), the scroll region, the alternate screen,
/// a hidden cursor, insert and origin modes, synchronized output, an open hyperlink.
pub const TERMINAL_RESET: &str =
    "\x1b[0m\x1b(B\x1b[r\x1b[?1049l\x1b[?25h\x1b[?7h\x1b[4l\x1b[?6l\x1b[?2026l\x1b]8;;\x1b\\";

/// The spinner currently drawn, so other output can step around it and nothing outlives a
/// step into a command that owns the terminal.
static ACTIVE: Mutex<Option<(u64, ProgressBar)>> = Mutex::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

pub use crate::escape::{escape, escape_text};

/// The first failure to write command output other than a closed pipe (`main` reports it).
static STDOUT_FAILED: Mutex<Option<String>> = Mutex::new(None);

/// Writes command output (a listing, JSON, a plan) to stdout. A reader that went away
/// (`claude-vm list | head`) is no error: the rest is dropped quietly. Any other failure (a
/// full disk) is remembered for `stdout_failure`.
pub fn out(args: std::fmt::Arguments) {
    if let Err(e) = io::stdout().lock().write_fmt(args) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            if let Ok(mut first) = STDOUT_FAILED.lock() {
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// Flushes stdout; why the output could not be written, if it could not (a closed pipe does
/// not count).
pub fn stdout_failure() -> Option<String> {
    if let Err(e) = io::stdout().lock().flush() {
        if e.kind() != io::ErrorKind::BrokenPipe {
            return Some(e.to_string());
        }
    }
    STDOUT_FAILED.lock().ok().and_then(|f| f.clone())
}

/// `print!` for command output: never panics (see `ui::out`).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::ui::out(format_args!($($arg)*)) };
}

/// `println!` for command output: never panics (see `ui::out`).
#[macro_export]
macro_rules! outln {
    () => { $crate::ui::out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::ui::out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Writes to stderr, ignoring failures (a closed terminal must not stop cleanup).
pub fn raw_stderr(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

impl Ui {
    /// Looks at stderr and the environment (`TERM`, `NO_COLOR`).
    pub fn new(quiet: bool, verbose: bool, json: bool) -> Ui {
        let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let terminal = io::stderr().is_terminal() && env("TERM").is_none_or(|t| t != "dumb");
        let mut ui = Ui::decide(terminal, env("NO_COLOR").is_some(), quiet, verbose);
        if json {
            JSON.store(true, Ordering::Relaxed);
            ui.json = true;
            ui.live = false;
            ui.color = false;
            ui.terminal = false;
        }
        // Spinners and marks on stderr are styled through console's switch for stderr.
        console::set_colors_enabled_stderr(ui.color);
        ui
    }

    /// The pure part of `new`.
    pub fn decide(terminal: bool, no_color: bool, quiet: bool, verbose: bool) -> Ui {
        Ui {
            quiet,
            live: terminal && !quiet && !verbose,
            terminal,
            color: terminal && !no_color,
            json: false,
        }
    }

    /// A typed event: a line of its own under `--json`; on a terminal the plain messages
    /// around it already say the same.
    pub fn event(&self, event: Event) {
        if self.json {
            emit(&event);
        }
    }

    pub fn is_json(&self) -> bool {
        self.json
    }

    pub fn info(&self, msg: &str) {
        if self.json {
            return emit(&Event::Info {
                message: msg.to_owned(),
            });
        }
        if !self.quiet {
            line(&format!("claude-vm: {}", escape_text(msg, true)));
        }
    }

    pub fn warn(&self, msg: &str) {
        if self.json {
            return emit(&Event::Warning {
                message: msg.to_owned(),
            });
        }
        if !self.quiet {
            let label = style("warning:").yellow().bold().for_stderr();
            line(&format!("claude-vm: {label} {}", escape_text(msg, true)));
        }
    }

    /// A warning that must stand out: a headline and indented detail lines, never hidden by
    /// `--quiet`.
    pub fn alert(&self, headline: &str, lines: &[String]) {
        if self.json {
            return emit(&Event::Alert {
                message: headline.to_owned(),
                lines: lines.to_vec(),
            });
        }
        let label = style("WARNING:").red().bold().for_stderr();
        // A session's last output may have made the terminal hide or garble text.
        let reset = if self.terminal { TERMINAL_RESET } else { "" };
        let mut text = format!("{reset}claude-vm: {label} {}", escape_text(headline, true));
        for l in lines {
            text.push_str(&format!("\n  {}", escape_text(l, true)));
        }
        line(&text);
    }

    /// Announces a long step; `Step::done` reports how long it took. A step dropped without
    /// `done` (an error on the way) is reported as failed on a terminal.
    pub fn step(&self, what: impl Into<String>) -> Step {
        let what = what.into();
        if self.json {
            emit(&Event::StepStarted { step: what.clone() });
        }
        let bar = if self.quiet || self.json {
            None
        } else if self.live {
            Some(spinner(&what))
        } else {
            line(&format!("claude-vm: {}...", escape_text(&what, true)));
            None
        };
        Step {
            ui: *self,
            what,
            started: Instant::now(),
            bar,
            finished: false,
        }
    }

    /// Asks a yes/no question on the terminal. `None` when stdin is not a terminal: the
    /// caller must then decide without asking (never block on a pipe).
    pub fn confirm(&self, question: &str, default: bool) -> Option<bool> {
        if !io::stdin().is_terminal() {
            return None;
        }
        release_terminal();
        let choices = if default { "[Y/n]" } else { "[y/N]" };
        raw_stderr(&format!(
            "claude-vm: {} {choices} ",
            escape_text(question, true)
        ));
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

/// Stops any spinner for good. Called before a child process gets the terminal (the session's
/// `limactl shell`), so claude's output is never interleaved with, or delayed by, ours.
pub fn release_terminal() {
    if let Some((_, bar)) = active().take() {
        bar.finish_and_clear();
    }
}

fn active() -> std::sync::MutexGuard<'static, Option<(u64, ProgressBar)>> {
    ACTIVE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Prints one line on stderr, above the spinner if one is drawn.
fn line(text: &str) {
    let guard = active();
    match guard.as_ref() {
        Some((_, bar)) => bar.suspend(|| raw_stderr(&format!("{text}\n"))),
        None => raw_stderr(&format!("{text}\n")),
    }
}

fn spinner(what: &str) -> (u64, ProgressBar) {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    // The template is a constant; should it ever be rejected, the default style still spins.
    if let Ok(style) = ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}") {
        bar.set_style(style);
    }
    bar.set_message(escape(what));
    bar.enable_steady_tick(Duration::from_millis(100));
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    if let Some((_, previous)) = active().replace((id, bar.clone())) {
        previous.finish_and_clear();
    }
    (id, bar)
}

pub struct Step {
    ui: Ui,
    what: String,
    started: Instant,
    bar: Option<(u64, ProgressBar)>,
    /// Reported as finished (so dropping it reports nothing more).
    finished: bool,
}

impl Step {
    pub fn done(mut self) -> Duration {
        let took = self.started.elapsed();
        self.close();
        if self.ui.json {
            self.finished = true;
            emit(&Event::StepFinished {
                step: self.what.clone(),
                duration_ms: took.as_millis() as u64,
            });
        } else if !self.ui.quiet {
            let mark = style("✓").green().for_stderr();
            let prefix = if self.ui.live { "" } else { "claude-vm: " };
            line(&format!(
                "{prefix}{mark} {} ({})",
                escape(&self.what),
                seconds(took)
            ));
        }
        took
    }

    /// Removes the spinner; true if there was one.
    fn close(&mut self) -> bool {
        let Some((id, bar)) = self.bar.take() else {
            return false;
        };
        bar.finish_and_clear();
        let mut guard = active();
        if guard
            .as_ref()
            .is_some_and(|(active_id, _)| *active_id == id)
        {
            *guard = None;
        }
        true
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if self.ui.json && !self.finished {
            emit(&Event::StepFailed {
                step: self.what.clone(),
                duration_ms: self.started.elapsed().as_millis() as u64,
            });
        }
        if self.close() {
            let mark = style("✗").red().for_stderr();
            line(&format!(
                "{mark} {} ({})",
                escape(&self.what),
                seconds(self.started.elapsed())
            ));
        }
    }
}

/// `0.4s`, `12.3s`, `2m05s`.
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

pub fn stdin_is_terminal() -> bool {
    io::stdin().is_terminal()
}

/// The Lima client's terminal: limactl's output under --verbose, escaped (it quotes the
/// guest: shown, never obeyed by the terminal); an attached child gets the terminal with no
/// spinner drawing over it, and its mode is put back afterwards.
pub fn lima_terminal() -> crate::lima::Terminal {
    crate::lima::Terminal {
        echo: |bytes| raw_stderr(&escape_text(&String::from_utf8_lossy(bytes), true)),
        hand_over: || {
            release_terminal();
            let saved = crate::tty::save_stdin();
            Box::new(move || {
                if let Some(t) = &saved {
                    t.restore();
                }
            })
        },
    }
}

/// "1 VM", "2 VMs".
pub fn count(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spinners_only_on_a_terminal_and_never_with_verbose_or_quiet() {
        assert!(Ui::decide(true, false, false, false).live);
        assert!(!Ui::decide(false, false, false, false).live, "no terminal");
        assert!(
            !Ui::decide(true, false, false, true).live,
            "verbose streams Lima's output"
        );
        assert!(!Ui::decide(true, false, true, false).live, "quiet");
    }

    #[test]
    fn colour_needs_a_terminal_and_no_no_color() {
        assert!(Ui::decide(true, false, false, false).color);
        assert!(!Ui::decide(true, true, false, false).color, "NO_COLOR");
        assert!(!Ui::decide(false, false, false, false).color);
    }

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(escape("hook\x1b[2K\x1b[1Aname"), "hook\\x1b[2K\\x1b[1Aname");
        assert_eq!(escape("a\rb\x08c\x7fd"), "a\\rb\\x08c\\x7fd");
        assert_eq!(escape("a\u{9b}2Kb"), "a\\x9b2Kb", "C1 CSI");
        assert_eq!(
            escape("x\u{202e}txt.sh"),
            "x\\u{202e}txt.sh",
            "bidi override"
        );
        assert_eq!(escape("one\ntwo\tz"), "one\\ntwo\\tz");
        assert_eq!(escape_text("one\ntwo\x1b\t", true), "one\ntwo\\x1b\t");
        assert_eq!(escape("plain ünïcode ✓"), "plain ünïcode ✓");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(seconds(Duration::from_millis(420)), "0.4s");
        assert_eq!(seconds(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(seconds(Duration::from_secs(125)), "2m05s");
    }
}
