//! The "new version available" notice. It never makes a command wait: the command reads a
//! small state file, and when the cached answer is older than 72 hours it starts a detached
//! check (claude-vm itself, with `CLAUDE_VM_RUN_UPDATE_CHECK=1`) that asks the releases API and writes the answer for next time.
//! The notice itself is shown at most once per 72 hours, only to a person at a terminal, and
//! never in CI (`CI` set), with `CLAUDE_VM_NO_UPDATE_CHECK` set or with `[update] check = false`.

use std::fs;
use std::path::{Path, PathBuf};

use semver::Version;
use serde::{Deserialize, Serialize};

pub const DISABLE_VAR: &str = "CLAUDE_VM_NO_UPDATE_CHECK";
/// How often the releases API is asked, and how often the notice is shown.
pub const INTERVAL_SECS: u64 = 72 * 60 * 60;
/// Set (to 1) in the environment of the detached check: claude-vm then runs the check
/// instead of a command. An environment variable rather than a hidden subcommand keeps it
/// out of `--help` and the shell completions.
pub const REFRESH_VAR: &str = "CLAUDE_VM_RUN_UPDATE_CHECK";

/// What the last checks found, in `<data dir>/update-check.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// When a check was last started (seconds since the epoch).
    #[serde(default)]
    pub checked_at: Option<u64>,
    /// The latest release the last successful check saw.
    #[serde(default)]
    pub latest: Option<String>,
    /// When the notice was last shown.
    #[serde(default)]
    pub notified_at: Option<u64>,
    /// Why the last check failed, if it did (nobody waits for the check to see it fail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What to do this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Start a background check.
    pub refresh: bool,
    /// Show the notice for this version.
    pub notify: Option<Version>,
}

pub fn decide(state: &State, now: u64, current: &Version) -> Decision {
    let due = |at: Option<u64>| at.is_none_or(|t| now.saturating_sub(t) >= INTERVAL_SECS);
    let newer = state
        .latest
        .as_deref()
        .and_then(|v| Version::parse(v).ok())
        .filter(|v| v > current);
    Decision {
        refresh: due(state.checked_at),
        notify: newer.filter(|_| due(state.notified_at)),
    }
}

/// Whether the check may run at all: not in CI, not disabled by the environment.
pub fn allowed_by_env(lookup: &dyn Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| lookup(name).is_some_and(|v| !v.is_empty());
    !set("CI") && !set(DISABLE_VAR)
}

pub fn state_path(data_dir: &Path) -> PathBuf {
    data_dir.join(crate::filenames::UPDATE_CHECK)
}

pub fn read_state(path: &Path) -> State {
    fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Best effort: a state that cannot be written only means the check runs again next time.
pub fn write_state(path: &Path, state: &State) {
    let Ok(text) = serde_json::to_string_pretty(state) else {
        return;
    };
    // Write then rename: a concurrent reader sees the old state or the new one.
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
        let _ = crate::atomic::write(dir, &name.to_string_lossy(), text.as_bytes());
    }
}

pub use crate::clock::now;

/// Runs at the start of a command: starts a background check when one is due and returns
/// the notice to print when the command is done.
pub fn prepare(data_dir: &Path) -> Option<String> {
    let path = state_path(data_dir);
    let mut state = read_state(&path);
    let now = now();
    let current = super::current_version();
    let decision = decide(&state, now, &current);
    if decision.refresh {
        // Claim this round first, so commands started meanwhile do not start checks too.
        state.checked_at = Some(now);
        write_state(&path, &state);
        spawn_refresh(data_dir);
    }
    let latest = decision.notify?;
    state.notified_at = Some(now);
    write_state(&path, &state);
    Some(format!(
        "claude-vm {latest} is available (this is {current}): run `claude-vm update` \
         (turn this notice off with [update] check = false or {DISABLE_VAR}=1)"
    ))
}

/// Starts the check detached (see `detach`): never waited for, never in our way. Its output
/// goes to a log next to its state, so a failing check can be looked into.
fn spawn_refresh(data_dir: &Path) {
    let logs = data_dir.join(crate::filenames::LOGS);
    let _ = std::fs::create_dir_all(&logs);
    let Ok(log) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join(crate::filenames::UPDATE_CHECK_LOG))
    else {
        return;
    };
    let _ = crate::detach::spawn_self(REFRESH_VAR, &std::env::temp_dir(), log);
}

/// In the detached check's process: runs the check and returns its exit code; `None` in
/// every other process.
pub fn run_if_asked() -> Option<i32> {
    std::env::var_os(REFRESH_VAR).filter(|v| v == "1")?;
    Some(match crate::paths::HostPaths::from_env() {
        Ok(paths) => refresh(&paths.data_dir),
        Err(_) => 1,
    })
}

/// The detached check: asks for the latest release and records it. Exit 0 on success.
pub fn refresh(data_dir: &Path) -> i32 {
    let env = |name: &str| std::env::var(name).ok();
    let latest = super::Source::from_env(&env).and_then(|s| s.latest());
    let path = state_path(data_dir);
    let mut state = read_state(&path);
    state.checked_at = Some(now());
    match latest {
        Ok(version) => {
            state.latest = Some(version.to_string());
            state.error = None;
            write_state(&path, &state);
            0
        }
        Err(e) => {
            state.error = Some(e.message().to_owned());
            write_state(&path, &state);
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 24 * 60 * 60;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn first_run_checks_and_says_nothing() {
        let d = decide(&State::default(), 1000 * DAY, &v("0.1.0"));
        assert!(d.refresh);
        assert_eq!(d.notify, None);
    }

    #[test]
    fn checks_at_most_every_72_hours() {
        let s = State {
            checked_at: Some(100 * DAY),
            ..State::default()
        };
        assert!(!decide(&s, 100 * DAY + 71 * 3600, &v("0.1.0")).refresh);
        assert!(decide(&s, 100 * DAY + 72 * 3600, &v("0.1.0")).refresh);
    }

    #[test]
    fn notice_for_a_newer_release_at_most_every_72_hours() {
        let mut s = State {
            checked_at: Some(100 * DAY),
            latest: Some("0.2.0".into()),
            notified_at: None,
            error: None,
        };
        let now = 100 * DAY + 60;
        assert_eq!(decide(&s, now, &v("0.1.0")).notify, Some(v("0.2.0")));
        s.notified_at = Some(now);
        assert_eq!(decide(&s, now + 3 * DAY - 1, &v("0.1.0")).notify, None);
        assert_eq!(
            decide(&s, now + 3 * DAY, &v("0.1.0")).notify,
            Some(v("0.2.0"))
        );
    }

    #[test]
    fn no_notice_when_current_or_newer_or_garbled() {
        for latest in ["0.1.0", "0.0.9", "not a version"] {
            let s = State {
                checked_at: Some(1),
                latest: Some(latest.into()),
                notified_at: None,
                error: None,
            };
            assert_eq!(decide(&s, 2, &v("0.1.0")).notify, None, "{latest}");
        }
    }

    #[test]
    fn off_in_ci_and_when_disabled() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(allowed_by_env(&env(&[])));
        assert!(!allowed_by_env(&env(&[("CI", "true")])));
        assert!(!allowed_by_env(&env(&[(DISABLE_VAR, "1")])));
        assert!(allowed_by_env(&env(&[("CI", "")])), "empty means unset");
    }

    #[test]
    fn state_survives_a_round_trip_and_garbage_reads_as_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let path = state_path(tmp.path());
        assert_eq!(read_state(&path), State::default());
        let s = State {
            checked_at: Some(5),
            latest: Some("1.0.0".into()),
            notified_at: None,
            error: Some("offline".into()),
        };
        write_state(&path, &s);
        assert_eq!(read_state(&path), s);
        std::fs::write(&path, "{oops").unwrap();
        assert_eq!(read_state(&path), State::default());
    }
}
