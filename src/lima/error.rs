//! A failed limactl call: what we ran, what limactl said, and what the user can do.

use std::fmt;

use super::call::Verb;

#[derive(Debug)]
pub struct LimaError {
    pub verb: Verb,
    /// The instance the call was about, for hints.
    pub instance: Option<String>,
    pub command: String,
    pub kind: LimaErrorKind,
}

#[derive(Debug)]
pub enum LimaErrorKind {
    /// `limactl` is not on PATH.
    Missing,
    Spawn(std::io::Error),
    /// limactl ran and failed; `stderr` is what it printed (the tail of it).
    Failed {
        code: Option<i32>,
        stderr: String,
    },
    /// limactl succeeded but printed something we could not read.
    BadOutput(String),
    /// A cleanup call we stopped waiting for (the user asked twice); it runs on by itself.
    GaveUp,
    /// It ran past its time limit (`timeout.rs`) and was killed.
    TimedOut(std::time::Duration),
}

impl LimaError {
    /// Lima's own one-line reason: the `msg` of its last fatal log line, or the last line.
    pub fn reason(&self) -> Option<String> {
        let LimaErrorKind::Failed { stderr, .. } = &self.kind else {
            return None;
        };
        stderr.lines().rev().find_map(fatal_message).or_else(|| {
            stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_owned())
        })
    }

    pub fn hint(&self) -> String {
        let reason = self.reason().unwrap_or_default();
        let inst = self.instance.as_deref().unwrap_or("INSTANCE");
        match (&self.kind, self.verb) {
            (LimaErrorKind::Missing, _) => {
                "install Lima 2.0 or later (https://lima-vm.io/docs/installation/, e.g. `brew install lima`) and make sure `limactl` is on PATH".into()
            }
            (LimaErrorKind::Spawn(_), _) => "check that `limactl` on PATH is executable".into(),
            (LimaErrorKind::TimedOut(_), _) => format!(
                "if the step is only slow here, raise its limit, e.g. {}=\"{}=SECONDS\"; otherwise Lima is stuck: `limactl list` shows the VM's state and its logs are in its Lima directory",
                super::timeout::ENV,
                self.verb.as_str().trim_start_matches('-')
            ),
            (LimaErrorKind::GaveUp, _) => format!("it goes on in the background; if {inst} is still there, the next claude-vm command deletes it (or run `claude-vm gc`)"),
            (_, Verb::Clone) if reason.contains("not found") || reason.contains("does not exist") => {
                "the template VM is gone: rebuild it with `claude-vm setup`".into()
            }
            (_, Verb::Clone) if reason.contains("running") => {
                "the template VM is running (was it started by hand?): stop it with `limactl stop TEMPLATE`, then retry".into()
            }
            (_, Verb::Create) if reason.contains("already exists") => {
                format!("an instance named {inst} already exists: remove it with `limactl delete --force {inst}` or `claude-vm clean`")
            }
            (_, Verb::Create) => "check `[vm] image` in .claude-vm.toml and Lima's message above; `--verbose` shows Lima's full output".into(),
            (_, Verb::Start) | (_, Verb::Clone) => {
                "Lima could not boot the VM: retry with --verbose to watch the boot; if it keeps failing, rebuild the template with `claude-vm setup`".into()
            }
            (_, Verb::Delete) => format!("the next claude-vm command retries (or run `claude-vm gc`); by hand: `limactl delete --force {inst}`"),
            (_, Verb::Shell) => "Lima could not run the command in the VM: retry with --verbose; if the VM does not answer, `limactl list` shows its state".into(),
            (_, Verb::Rename) => "the template could not be put in place: run `claude-vm setup` again".into(),
            (_, Verb::List) => "Lima could not list its instances: check `limactl list` and $LIMA_HOME".into(),
            (_, Verb::Version) => "check that `limactl --version` works; reinstall Lima if it does not".into(),
            (_, Verb::Stop) => format!("stop it by hand with `limactl stop --force {inst}`"),
            (_, Verb::Edit) => format!("Lima could not rewrite the configuration of {inst}: `limactl edit {inst}` shows why"),
        }
    }
}

impl fmt::Display for LimaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = self.verb.as_str();
        match &self.kind {
            LimaErrorKind::Missing => write!(
                f,
                "`limactl` was not found on PATH; claude-vm needs Lima to run VMs"
            ),
            LimaErrorKind::Spawn(e) => write!(f, "cannot run `{}`: {e}", self.command),
            LimaErrorKind::BadOutput(what) => write!(
                f,
                "`limactl {verb}` printed output claude-vm cannot read: {what}"
            ),
            LimaErrorKind::TimedOut(limit) => write!(
                f,
                "`limactl {verb}` hung: it did not finish within {}s and was killed\n  command: {}",
                limit.as_secs(),
                self.command
            ),
            LimaErrorKind::GaveUp => write!(
                f,
                "stopped waiting for `{}` after repeated interrupts",
                self.command
            ),
            LimaErrorKind::Failed { code, stderr } => {
                let status = code.map_or_else(
                    || "was killed by a signal".to_owned(),
                    |c| format!("exited with status {c}"),
                );
                write!(f, "`limactl {verb}` {status}")?;
                if let Some(reason) = self.reason() {
                    write!(f, ": {reason}")?;
                }
                write!(f, "\n  command: {}", self.command)?;
                let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
                if !lines.is_empty() {
                    f.write_str("\n  limactl said:")?;
                    for l in &lines[lines.len().saturating_sub(12)..] {
                        write!(f, "\n    {l}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for LimaError {}

/// The message of a logrus line: `level=fatal msg="..."` (text) or `FATA[0000] ...` (TTY).
fn fatal_message(line: &str) -> Option<String> {
    if line.contains("level=fatal") || line.contains("level=error") {
        let start = line.find("msg=\"")? + 5;
        return Some(unquote_go(&line[start..]));
    }
    let rest = line
        .strip_prefix("FATA[")
        .or_else(|| line.strip_prefix("ERRO["))?;
    Some(rest.split_once(']')?.1.trim().to_owned())
}

/// Reads a Go-quoted string body up to its closing quote.
fn unquote_go(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    out
}

/// Lima's errors become the program's (message and hint); here, so that `error.rs` is a leaf.
impl From<LimaError> for crate::error::Error {
    fn from(err: LimaError) -> Self {
        let hint = err.hint();
        crate::error::Error::failure(err.to_string()).with_hint(hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(verb: Verb, stderr: &str) -> LimaError {
        LimaError {
            verb,
            instance: Some("tmpl".into()),
            command: "limactl x".into(),
            kind: LimaErrorKind::Failed {
                code: Some(1),
                stderr: stderr.into(),
            },
        }
    }

    #[test]
    fn reason_is_lima_fatal_message() {
        let e = failed(
            Verb::Clone,
            "time=\"2026\" level=info msg=\"hi\"\ntime=\"2026\" level=fatal msg=\"instance \\\"tmpl\\\" not found\"\n",
        );
        assert_eq!(e.reason().as_deref(), Some("instance \"tmpl\" not found"));
        assert!(e.hint().contains("claude-vm setup"));
        let text = e.to_string();
        assert!(
            text.contains("`limactl clone` exited with status 1: instance \"tmpl\" not found"),
            "{text}"
        );
        assert!(text.contains("limactl said:"));
    }

    #[test]
    fn tty_style_and_plain_lines_work_too() {
        assert_eq!(
            failed(Verb::Start, "FATA[0001] boom\n").reason().as_deref(),
            Some("boom")
        );
        assert_eq!(
            failed(Verb::Start, "some text\n\n").reason().as_deref(),
            Some("some text")
        );
        assert!(failed(
            Verb::Clone,
            "level=fatal msg=\"cannot clone a running instance\""
        )
        .hint()
        .contains("limactl stop"));
    }
}
