//! `claude-vm doctor`: checks of Lima, the host and claude-vm's VMs. Each check is a pure
//! function from facts to findings; `commands/doctor.rs` gathers the facts. Every warning and
//! failure carries the command or step that fixes it.

pub mod bases;
pub mod disk;
pub mod host;
pub mod instances;
pub mod lima;
pub mod owners;

use std::fmt::Write;
use std::path::Path;

use console::style;

use crate::names;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    /// Worth knowing, nothing to fix.
    Note,
    /// Works, but something should be done.
    Warn,
    /// claude-vm cannot work (well) until this is fixed.
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub text: String,
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(text: impl Into<String>) -> Finding {
        Finding {
            level: Level::Ok,
            text: text.into(),
            fix: None,
        }
    }

    pub fn note(text: impl Into<String>) -> Finding {
        Finding {
            level: Level::Note,
            text: text.into(),
            fix: None,
        }
    }

    pub fn warn(text: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            level: Level::Warn,
            text: text.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(text: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            level: Level::Fail,
            text: text.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The findings as text, one line each with its fix below, and a closing count.
pub fn render(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let mark = match f.level {
            Level::Ok => style("✓").green(),
            Level::Note => style("·").dim(),
            Level::Warn => style("!").yellow().bold(),
            Level::Fail => style("✗").red().bold(),
        };
        // Findings quote Lima, instance names and failed checks: escaped like all output.
        let _ = writeln!(out, "{mark} {}", crate::ui::escape_text(&f.text, true));
        if let Some(fix) = &f.fix {
            for (i, line) in crate::ui::escape_text(fix, true).lines().enumerate() {
                let label = if i == 0 { "fix:" } else { "    " };
                let _ = writeln!(out, "    {label} {line}");
            }
        }
    }
    let count = |level| findings.iter().filter(|f| f.level == level).count();
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let (fails, warns) = (count(Level::Fail), count(Level::Warn));
    let _ = match (fails, warns) {
        (0, 0) => writeln!(out, "\neverything looks fine"),
        _ => writeln!(
            out,
            "\n{}, {}",
            plural(fails, "problem", "problems"),
            plural(warns, "warning", "warnings")
        ),
    };
    out
}

/// Lima's socket paths under `$LIMA_HOME` must stay under the host's limit, and the instance
/// names claude-vm makes must fit what is left.
pub fn socket_room(lima_home: &Path) -> Finding {
    let r = names::room(lima_home);
    let home = lima_home.display();
    if r.budget < r.minimum {
        Finding::fail(
            format!(
                "socket paths: $LIMA_HOME ({home}) is {} characters long, which leaves room for \
                 instance names of {} characters; claude-vm needs {}",
                r.home_len, r.budget, r.minimum
            ),
            format!(
                "set LIMA_HOME to a directory whose path has at most {} characters, e.g. ~/.lima",
                r.max_home
            ),
        )
    } else if r.slug_room < 8 {
        Finding::warn(
            format!(
                "socket paths: $LIMA_HOME ({home}) leaves {} characters of the project's name \
                 in template names, so they are hard to tell apart",
                r.slug_room
            ),
            "use a shorter LIMA_HOME, e.g. ~/.lima, for readable template names",
        )
    } else {
        Finding::ok(format!(
            "socket paths: $LIMA_HOME ({home}, {} characters) leaves {} characters for instance \
             names; claude-vm needs at least {}",
            r.home_len, r.budget, r.minimum
        ))
    }
}

/// `1.2 GB`: decimal units, like Lima and Finder.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_marks_levels_and_counts_problems() {
        console::set_colors_enabled(false);
        let text = render(&[
            Finding::ok("fine"),
            Finding::warn("meh", "do this"),
            Finding::fail("bad", "do that\nthen this"),
            Finding::note("fyi"),
        ]);
        assert_eq!(
            text,
            "✓ fine\n! meh\n    fix: do this\n✗ bad\n    fix: do that\n         then this\n· fyi\n\n1 problem, 1 warning\n"
        );
        assert!(render(&[Finding::ok("x")]).ends_with("\neverything looks fine\n"));
    }

    #[test]
    fn socket_room_verdicts() {
        let ok = socket_room(Path::new("/Users/alexander/.lima"));
        assert_eq!(ok.level, Level::Ok, "{}", ok.text);
        let tight = names::room(Path::new("/x"));
        let cramped = PathBuf::from(format!("/{}", "h".repeat(tight.max_home - 4 - 1)));
        let w = socket_room(&cramped);
        assert_eq!(w.level, Level::Warn, "{}", w.text);
        let too_long = PathBuf::from(format!("/{}", "h".repeat(tight.max_home)));
        let f = socket_room(&too_long);
        assert_eq!(f.level, Level::Fail, "{}", f.text);
        assert!(f.fix.unwrap().contains("LIMA_HOME"));
    }

    use std::path::PathBuf;

    #[test]
    fn sizes_are_short() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1_500_000), "1.5 MB");
        assert_eq!(size(21_474_836_480), "21.5 GB");
    }
}
