//! The journal of live VMs: one small file per instance claude-vm creates (session clones,
//! template builds; the warm pool adds its own role), written *before* the `clone`/`create`
//! call and removed only *after* a successful `delete`. Each file names the owning process
//! (pid, start time, boot), so a VM whose owner is gone (SIGKILL, crash, reboot) is found and
//! reaped by the next claude-vm command (`reap.rs`).

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lock::{self, Lock, Mode};
use crate::names::Role;
use crate::paths::HostPaths;
use crate::procinfo::ProcessIdentity;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub instance: String,
    pub role: Role,
    pub template: String,
    /// The project (main repository) the VM works for.
    pub project: PathBuf,
    pub owner: ProcessIdentity,
    /// Seconds since the epoch.
    pub started_at: u64,
    /// A session's audit "before" snapshot: a command that reaps the session after its owner
    /// died finishes the audit with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<crate::audit::Pending>,
    /// A session's network policy (`allowlist`, `open`, `offline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

impl Entry {
    /// An entry owned by this process.
    pub fn owned_here(instance: &str, role: Role, template: &str, project: &Path) -> Entry {
        // Without a start time and boot the owner's liveness is "unknown": never reaped
        // automatically, which is the safe side.
        let owner = ProcessIdentity::current().unwrap_or(ProcessIdentity {
            pid: std::process::id(),
            start: 0,
            boot: String::new(),
        });
        Entry {
            instance: instance.to_owned(),
            role,
            template: template.to_owned(),
            project: project.to_path_buf(),
            owner,
            started_at: now(),
            audit: None,
            policy: None,
        }
    }

    pub fn owner_may_be_alive(&self) -> bool {
        self.owner.may_be_alive()
    }
}

pub use crate::clock::now;

#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    pub fn new(paths: &HostPaths) -> Journal {
        Journal {
            dir: paths.journal_dir(),
        }
    }

    fn path(&self, instance: &str) -> PathBuf {
        self.dir.join(format!("{instance}.json"))
    }

    /// Records `entry` atomically (write, then rename): a reader sees all of it or nothing.
    pub fn record(&self, entry: &Entry) -> Result<()> {
        let text = serde_json::to_string_pretty(entry)
            .map_err(|e| Error::failure(format!("cannot encode the journal entry: {e}")))?;
        crate::atomic::write(
            &self.dir,
            &format!("{}.json", entry.instance),
            text.as_bytes(),
        )
    }

    /// Forgets an instance once it is deleted. A missing entry is fine.
    pub fn remove(&self, instance: &str) -> Result<()> {
        let path = self.path(instance);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io("remove", &path, e))
            }
            _ => Ok(()),
        }
    }

    /// Every readable entry, oldest first. Unreadable files are skipped: a damaged entry
    /// must not stop a session (`claude-vm gc` still finds its VM through `limactl list`).
    pub fn entries(&self) -> Vec<Entry> {
        // Finished regular files only: no writer's temporary, no FIFO, device or link.
        let mut out: Vec<Entry> = crate::atomic::written(&self.dir, "json")
            .into_iter()
            // Small, and named for the instance they describe.
            .filter_map(|path| {
                let text = crate::fsread::small_regular_file(&path, 64 * 1024).ok()?;
                let entry: Entry = serde_json::from_str(&text).ok()?;
                (crate::names::is_valid_lima_name(&entry.instance)
                    && path.file_name()? == format!("{}.json", entry.instance).as_str())
                .then_some(entry)
            })
            .collect();
        out.sort_by(|a: &Entry, b: &Entry| {
            (a.started_at, &a.instance).cmp(&(b.started_at, &b.instance))
        });
        out
    }

    /// Serialises reapers, so two commands never delete the same orphan at once.
    pub fn reaper_lock(&self) -> Result<Lock> {
        lock::acquire(&self.dir.join(".reap.lock"), Mode::Exclusive, |_| {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> (tempfile::TempDir, Journal) {
        let tmp = tempfile::tempdir().unwrap();
        let j = Journal {
            dir: tmp.path().join("journal"),
        };
        (tmp, j)
    }

    #[test]
    fn record_list_remove() {
        let (_tmp, j) = journal();
        assert!(j.entries().is_empty());
        let a = Entry::owned_here("t.run-aaaaaa", Role::Run, "t", Path::new("/p"));
        let b = Entry::owned_here("t.build-bbbbbb", Role::Build, "t", Path::new("/p"));
        j.record(&a).unwrap();
        j.record(&b).unwrap();
        let names: Vec<String> = j.entries().into_iter().map(|e| e.instance).collect();
        assert_eq!(names.len(), 2);
        assert!(names.contains(&a.instance) && names.contains(&b.instance));
        assert!(j.entries().iter().all(Entry::owner_may_be_alive));
        j.remove(&a.instance).unwrap();
        j.remove(&a.instance).unwrap();
        assert_eq!(j.entries(), vec![b]);
    }

    #[test]
    fn damaged_and_temporary_files_are_skipped() {
        let (_tmp, j) = journal();
        let a = Entry::owned_here("t.run-aaaaaa", Role::Run, "t", Path::new("/p"));
        j.record(&a).unwrap();
        fs::write(j.dir.join("t.run-zzzzzz.json"), "{not json").unwrap();
        fs::write(j.dir.join(".t.run-yyyyyy.tmp"), "{}").unwrap();
        // A record mid-write: whole JSON under the writer's hidden temporary name.
        let whole = fs::read_to_string(j.path(&a.instance)).unwrap();
        let b = whole.replace("t.run-aaaaaa", "t.run-bbbbbb");
        fs::write(j.dir.join(".t.run-bbbbbb.json.Ab12Cd.tmp"), &b).unwrap();
        fs::write(j.dir.join(".t.run-bbbbbb.json"), &b).unwrap();
        assert_eq!(j.entries(), vec![a]);
    }

    #[test]
    fn fifos_links_and_misnamed_entries_are_skipped_without_blocking() {
        let (_tmp, j) = journal();
        let a = Entry::owned_here("t.run-aaaaaa", Role::Run, "t", Path::new("/p"));
        j.record(&a).unwrap();
        let text = fs::read_to_string(j.path(&a.instance)).unwrap();
        // A FIFO would block a plain read forever.
        let fifo =
            std::ffi::CString::new(j.dir.join("t.run-ffffff.json").to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        std::os::unix::fs::symlink(j.path(&a.instance), j.dir.join("t.run-llllll.json")).unwrap();
        // An entry whose file name is not its instance, or whose instance is a path.
        fs::write(j.dir.join("t.run-mmmmmm.json"), &text).unwrap();
        fs::write(j.dir.join("x.json"), text.replace("t.run-aaaaaa", "x/../y")).unwrap();
        assert_eq!(j.entries(), vec![a]);
    }

    #[test]
    fn an_entry_of_a_dead_owner_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let mut e = Entry::owned_here("t.run-aaaaaa", Role::Run, "t", Path::new("/p"));
        e.owner.pid = pid;
        assert!(!e.owner_may_be_alive());
    }
}
