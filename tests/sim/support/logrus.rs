//! Lima's stderr messages, formatted like logrus (text, TTY or JSON).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use crate::gofmt;
use crate::sys;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Level {
    Fatal = 1,
    Error = 2,
    Warn = 3,
    Info = 4,
    Debug = 5,
    Trace = 6,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Fatal => "fatal",
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }

    fn color(self) -> u8 {
        match self {
            Level::Debug | Level::Trace => 37,
            Level::Warn => 33,
            Level::Error | Level::Fatal => 31,
            Level::Info => 36,
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static JSON: AtomicBool = AtomicBool::new(false);
static START: OnceLock<Instant> = OnceLock::new();

/// `logrus.ParseLevel`.
pub fn parse_level(s: &str) -> Result<Level, String> {
    match s.to_lowercase().as_str() {
        // logrus knows "panic" too; the simulator never panics on purpose.
        "panic" | "fatal" => Ok(Level::Fatal),
        "error" => Ok(Level::Error),
        "warn" | "warning" => Ok(Level::Warn),
        "info" => Ok(Level::Info),
        "debug" => Ok(Level::Debug),
        "trace" => Ok(Level::Trace),
        _ => Err(format!("not a valid logrus Level: {}", gofmt::quote(s))),
    }
}

pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn set_json(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Starts the clock shown by the TTY format (`INFO[0003]`).
pub fn init() {
    START.get_or_init(Instant::now);
}

/// RFC 3339 in local time, as logrus prints `time=`.
pub fn timestamp() -> String {
    sys::local_rfc3339()
}

fn needs_quoting(s: &str) -> bool {
    s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/@^+".contains(c))
}

fn text_value(s: &str) -> String {
    if needs_quoting(s) {
        gofmt::quote(s)
    } else {
        s.to_string()
    }
}

/// Formats one entry; `fields` are extra `key=value` pairs (sorted by logrus).
pub fn format(level: Level, msg: &str, fields: &[(&str, String)], tty: bool) -> String {
    let mut sorted: Vec<&(&str, String)> = fields.iter().collect();
    sorted.sort_by_key(|(k, _)| *k);
    if JSON.load(Ordering::Relaxed) {
        let mut map = BTreeMap::new();
        for (k, v) in &sorted {
            map.insert(k.to_string(), v.clone());
        }
        map.insert("level".into(), level.name().into());
        map.insert("msg".into(), msg.into());
        map.insert("time".into(), timestamp());
        let line = serde_json::to_string(&map).unwrap_or_default();
        return line + "\n";
    }
    if tty {
        let secs = START.get().map(|s| s.elapsed().as_secs()).unwrap_or(0);
        let tag: String = level.name().to_uppercase().chars().take(4).collect();
        let mut out = format!(
            "\x1b[{}m{}\x1b[0m[{:04}] {}",
            level.color(),
            tag,
            secs,
            msg.trim_end_matches('\n')
        );
        if !sorted.is_empty() {
            let pad = 44usize.saturating_sub(msg.chars().count());
            out.push_str(&" ".repeat(pad));
            for (k, v) in sorted {
                out.push_str(&format!(" \x1b[{}m{}\x1b[0m={}", level.color(), k, v));
            }
        }
        return out + "\n";
    }
    let mut out = format!(
        "time={} level={} msg={}",
        gofmt::quote(&timestamp()),
        level.name(),
        text_value(msg)
    );
    for (k, v) in sorted {
        out.push_str(&format!(" {}={}", k, text_value(v)));
    }
    out + "\n"
}

pub fn log(level: Level, msg: &str, fields: &[(&str, String)]) {
    if !enabled(level) {
        return;
    }
    let line = format(level, msg, fields, sys::isatty(2));
    // Unit tests: go through the capturable macro, not the raw handle.
    #[cfg(test)]
    eprint!("{line}");
    #[cfg(not(test))]
    crate::output::stderr(&line);
}

pub fn info(msg: &str) {
    log(Level::Info, msg, &[]);
}

pub fn warn(msg: &str) {
    log(Level::Warn, msg, &[]);
}

pub fn warn_err(msg: &str, err: &str) {
    log(Level::Warn, msg, &[("error", err.to_string())]);
}

pub fn error(msg: &str) {
    log(Level::Error, msg, &[]);
}

pub fn debug(msg: &str) {
    log(Level::Debug, msg, &[]);
}

pub fn fatal(msg: &str) {
    log(Level::Fatal, msg, &[]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_quotes_like_logrus() {
        let line = format(Level::Fatal, "unknown flag: --foo", &[], false);
        assert!(line.starts_with("time=\""), "{line}");
        assert!(
            line.ends_with(" level=fatal msg=\"unknown flag: --foo\"\n"),
            "{line}"
        );
        let plain = format(Level::Info, "READY.", &[], false);
        assert!(plain.ends_with(" level=info msg=READY.\n"), "{plain}");
        let warn = format(Level::Warn, "w", &[("error", "x y".into())], false);
        assert!(
            warn.ends_with(" level=warning msg=w error=\"x y\"\n"),
            "{warn}"
        );
        let multi = format(Level::Fatal, "a\nb", &[], false);
        assert!(multi.ends_with("msg=\"a\\nb\"\n"), "{multi}");
    }

    #[test]
    fn levels_parse_like_logrus() {
        assert_eq!(parse_level("WARN"), Ok(Level::Warn));
        assert_eq!(parse_level("debug"), Ok(Level::Debug));
        assert_eq!(
            parse_level("loud"),
            Err("not a valid logrus Level: \"loud\"".to_string())
        );
    }
}
