//! The warm pool of a template: clones booted in advance, each with the mounts and settings a
//! session of the project uses and its own (still empty) hand-over directory, so a session
//! only has to write its scripts and run one `limactl shell`.
//!
//! On disk, under `data_dir/pool/<template>/`:
//! - `ready/<instance>.json`: a booted clone nobody has taken. A session takes one by
//!   renaming it into `claimed/` — rename is atomic, so two sessions never take the same one;
//! - `state.json`: the size asked for (`claude-vm warm N`) and when the pool was last used;
//! - `keeper.lock`: held by the keeper, the one background process that owns the pool's
//!   clones (in the journal), refills it, expires it after the idle time, and removes clones
//!   of an outdated template.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::filenames;
use crate::journal::now;
use crate::lima::Call;
use crate::paths::HostPaths;

/// A booted clone waiting for a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub instance: String,
    /// What a session must match to use it: see [`key`].
    pub key: String,
    /// The template's fingerprint when the clone was made.
    pub fingerprint: Option<String>,
    /// Seconds since the epoch.
    pub created_at: u64,
    /// The settings behind `key` (see [`settings`]), so a mismatch can say what differs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct State {
    /// The size asked for with `claude-vm warm N`; none: `[pool] size` decides.
    #[serde(default)]
    pub size: Option<u32>,
    /// When a session last took a clone or `warm` last ran (seconds since the epoch).
    pub last_used: u64,
}

pub struct Pool {
    dir: PathBuf,
}

/// Why the keeper's last clone failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Seconds since the epoch.
    pub at: u64,
    pub message: String,
}

impl Pool {
    pub fn new(paths: &HostPaths, template: &str) -> Pool {
        Pool {
            dir: paths.pool_dir(template),
        }
    }

    fn ready_dir(&self) -> PathBuf {
        self.dir.join(filenames::POOL_READY)
    }

    fn claimed_dir(&self) -> PathBuf {
        self.dir.join(filenames::POOL_CLAIMED)
    }

    pub fn keeper_lock(&self) -> PathBuf {
        self.dir.join(filenames::KEEPER_LOCK)
    }

    /// The clones ready to be taken, oldest first.
    pub fn ready(&self) -> Vec<Ready> {
        // Only finished records: a record being written is whole JSON under its temporary
        // name, and counting it would call a clone ready before sessions can claim it.
        let mut out: Vec<Ready> = crate::atomic::written(&self.ready_dir(), "json")
            .into_iter()
            .filter_map(|p| fs::read_to_string(p).ok())
            .filter_map(|t| serde_json::from_str(&t).ok())
            .collect();
        out.sort_by_key(|r| (r.created_at, r.instance.clone()));
        out
    }

    /// Offers a booted clone to sessions.
    pub fn add(&self, ready: &Ready) -> Result<()> {
        let text = serde_json::to_string(ready)
            .map_err(|e| Error::failure(format!("cannot encode a pool record: {e}")))?;
        crate::atomic::write(
            &self.ready_dir(),
            &format!("{}.json", ready.instance),
            text.as_bytes(),
        )
    }

    /// Takes `instance` out of the pool. Only one caller ever gets `true` for it.
    pub fn claim(&self, instance: &str) -> Result<bool> {
        let from = self.ready_dir().join(format!("{instance}.json"));
        let to_dir = self.claimed_dir();
        fs::create_dir_all(&to_dir).io_context("create", &to_dir)?;
        match fs::rename(&from, to_dir.join(format!("{instance}.json"))) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("claim", &from, e)),
        }
    }

    /// Forgets `instance` (deleted, or never made it).
    pub fn forget(&self, instance: &str) {
        let _ = fs::remove_file(self.ready_dir().join(format!("{instance}.json")));
        let _ = fs::remove_file(self.claimed_dir().join(format!("{instance}.json")));
    }

    pub fn state(&self) -> State {
        fs::read_to_string(self.dir.join(filenames::POOL_STATE))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    pub fn set_state(&self, state: State) -> Result<()> {
        let text = serde_json::to_string(&state)
            .map_err(|e| Error::failure(format!("cannot encode the pool state: {e}")))?;
        crate::atomic::write(&self.dir, filenames::POOL_STATE, text.as_bytes())
    }

    /// Forgets the size asked for (`[pool] size` decides again).
    pub fn reset(&self) -> Result<()> {
        match fs::remove_file(self.dir.join(filenames::POOL_STATE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(
                "remove",
                &self.dir.join(filenames::POOL_STATE),
                e,
            )),
            _ => Ok(()),
        }
    }

    /// Records that the pool was used now (a session took a clone, or `warm` ran).
    /// Records why the keeper could not boot a clone, for `warm N` to report.
    pub fn record_failure(&self, message: &str) {
        let text = serde_json::to_string(&Failure {
            at: now(),
            message: message.to_owned(),
        })
        .unwrap_or_default();
        let _ = crate::atomic::write(&self.dir, filenames::POOL_FAILURE, text.as_bytes());
    }

    /// The keeper's last failure to boot a clone, if it has not succeeded since.
    pub fn last_failure(&self) -> Option<Failure> {
        let path = self.dir.join(filenames::POOL_FAILURE);
        let text = crate::fsread::small_regular_file(&path, 1 << 20).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn clear_failure(&self) {
        let _ = fs::remove_file(self.dir.join(filenames::POOL_FAILURE));
    }

    pub fn touch(&self) -> Result<()> {
        let state = State {
            last_used: now(),
            ..self.state()
        };
        self.set_state(state)
    }
}

/// Forgets `instance` in whatever pool holds it (for the reaper, which knows only names).
pub fn forget_anywhere(paths: &HostPaths, instance: &str) {
    if let Some((template, _)) = instance.split_once('.') {
        Pool::new(paths, template).forget(instance);
    }
}

/// What makes a clone fit a session: its `clone` call (mounts, resources, agent and port
/// settings), without its own instance name and hand-over directory. Equal keys mean the
/// session would have made exactly this clone.
pub fn key(clone: &Call, instance: &str, handover_dir: &Path) -> String {
    let settings = settings(clone, instance, handover_dir);
    crate::digest::sha256_hex_parts(settings.iter().map(|a| a.as_bytes()))
}

/// The clone call's arguments without what differs per clone (its name, its hand-over
/// directory): what [`key`] digests.
pub fn settings(clone: &Call, instance: &str, handover_dir: &Path) -> Vec<String> {
    let handover = handover_dir.to_string_lossy();
    clone
        .args
        .iter()
        .map(|arg| {
            arg.replace(handover.as_ref(), "<handover>")
                .replace(instance, "<instance>")
        })
        .collect()
}

/// Which settings differ between two [`settings`] lists, by name: a flag (`--cpus`) or the
/// Lima field a `--set` assigns (`.mounts`).
pub fn differences(made: &[String], wanted: &[String]) -> Vec<String> {
    fn named(args: &[String]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            // The clone call's flags that take a value (`lima::clone`).
            let takes_value = ["--cpus", "--memory", "--disk", "--set"].contains(&a.as_str());
            match (takes_value, args.get(i + 1)) {
                (true, Some(v)) => {
                    let name = if a == "--set" {
                        v.split_once(" = ")
                            .map_or(v.as_str(), |(p, _)| p)
                            .to_owned()
                    } else {
                        a.clone()
                    };
                    out.push((name, v.clone()));
                    i += 2;
                }
                _ => {
                    out.push((a.clone(), String::new()));
                    i += 1;
                }
            }
        }
        out
    }
    let (a, b) = (named(made), named(wanted));
    let mut names: Vec<String> = Vec::new();
    for (name, _) in a
        .iter()
        .filter(|x| !b.contains(x))
        .chain(b.iter().filter(|x| !a.contains(x)))
    {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::lima::{self, CloneSpec, LimaMount, Resources};

    #[test]
    fn differences_name_the_settings() {
        let v = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let made = v(&[
            "clone",
            "--start",
            "--cpus",
            "2",
            "--set",
            ".mounts = [1]",
            "--set",
            ".ssh.forwardAgent = false",
            "t",
            "<instance>",
        ]);
        let wanted = v(&[
            "clone",
            "--start",
            "--cpus",
            "3",
            "--set",
            ".mounts = [2]",
            "--set",
            ".ssh.forwardAgent = false",
            "t",
            "<instance>",
        ]);
        assert_eq!(differences(&made, &wanted), ["--cpus", ".mounts"]);
        assert!(differences(&made, &made).is_empty());
        let fewer = v(&["clone", "--start", "t", "<instance>"]);
        assert_eq!(
            differences(&made, &fewer),
            ["--cpus", ".mounts", ".ssh.forwardAgent"]
        );
    }

    fn paths(root: &Path) -> HostPaths {
        HostPaths {
            home: root.into(),
            data_dir: root.join("data"),
            lima_home: root.join("lima"),
        }
    }

    fn clone_call(instance: &str, handover: &str, project: &str) -> Call {
        let mounts = [
            LimaMount {
                location: handover.into(),
                mount_point: Some("/mnt/claude-vm".into()),
                writable: false,
            },
            LimaMount {
                location: project.into(),
                mount_point: None,
                writable: true,
            },
        ];
        lima::clone(&CloneSpec {
            source: "t",
            name: instance,
            start: true,
            resources: Resources::default(),
            mounts: &mounts,
            extra: &[],
        })
    }

    #[test]
    fn keys_ignore_names_but_not_mounts() {
        let a = key(
            &clone_call("t.run-aaaaaa", "/d/handover/t.run-aaaaaa", "/src/app"),
            "t.run-aaaaaa",
            Path::new("/d/handover/t.run-aaaaaa"),
        );
        let b = key(
            &clone_call("t.warm-bbbbbb", "/d/handover/t.warm-bbbbbb", "/src/app"),
            "t.warm-bbbbbb",
            Path::new("/d/handover/t.warm-bbbbbb"),
        );
        let other = key(
            &clone_call("t.warm-cccccc", "/d/handover/t.warm-cccccc", "/src/other"),
            "t.warm-cccccc",
            Path::new("/d/handover/t.warm-cccccc"),
        );
        assert_eq!(a, b);
        assert_ne!(a, other);
    }

    #[test]
    fn a_ready_clone_is_claimed_once() {
        let tmp = tempfile::tempdir().unwrap();
        let pool = Pool::new(&paths(tmp.path()), "t");
        let r = Ready {
            instance: "t.warm-aaaaaa".into(),
            key: "k".into(),
            fingerprint: None,
            created_at: 1,
            settings: Vec::new(),
        };
        // Mid-write, the record is whole JSON under its temporary name: not ready yet, as
        // no session could claim it under that name.
        let text = serde_json::to_string(&r).unwrap();
        crate::atomic::create_private_dir(&pool.ready_dir()).unwrap();
        fs::write(
            pool.ready_dir().join(".t.warm-aaaaaa.json.x1Y2z3.tmp"),
            &text,
        )
        .unwrap();
        assert!(pool.ready().is_empty(), "{:?}", pool.ready());
        fs::remove_file(pool.ready_dir().join(".t.warm-aaaaaa.json.x1Y2z3.tmp")).unwrap();
        pool.add(&r).unwrap();
        assert_eq!(pool.ready(), vec![r.clone()]);
        let winners: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| pool.claim("t.warm-aaaaaa").unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            winners.iter().filter(|w| **w).count(),
            1,
            "exactly one claim wins: {winners:?}"
        );
        assert!(pool.ready().is_empty());
        pool.forget("t.warm-aaaaaa");
        assert!(!pool.claim("t.warm-aaaaaa").unwrap());
    }

    #[test]
    fn state_round_trips_and_touch_keeps_the_size() {
        let tmp = tempfile::tempdir().unwrap();
        let pool = Pool::new(&paths(tmp.path()), "t");
        assert_eq!(pool.state(), State::default());
        pool.set_state(State {
            size: Some(3),
            last_used: 5,
        })
        .unwrap();
        pool.touch().unwrap();
        let s = pool.state();
        assert_eq!(s.size, Some(3));
        assert!(s.last_used > 5);
    }
}
