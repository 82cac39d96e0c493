//! Is a session clone still used by a claude-vm process? The journal answers it exactly:
//! every clone claude-vm makes is recorded with its owner (pid, start time, boot) before it
//! exists, and a clone whose owner is gone, or that has no entry at all, is an orphan — the
//! same rule `claude-vm gc` applies.

use std::collections::BTreeMap;

use crate::journal::{Entry, Journal};
use crate::paths::HostPaths;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A live process owns it.
    InUse(u32),
    /// Nothing uses it: an orphan.
    Unused,
}

pub trait Owners {
    fn owner(&self, instance: &str) -> Owner;
}

/// The journal, read once.
pub struct JournalOwners {
    entries: BTreeMap<String, Entry>,
}

impl JournalOwners {
    pub fn read(paths: &HostPaths) -> JournalOwners {
        let entries = Journal::new(paths)
            .entries()
            .into_iter()
            .map(|e| (e.instance.clone(), e))
            .collect();
        JournalOwners { entries }
    }
}

impl Owners for JournalOwners {
    fn owner(&self, instance: &str) -> Owner {
        match self.entries.get(instance) {
            Some(e) if e.owner_may_be_alive() => Owner::InUse(e.owner.pid),
            _ => Owner::Unused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Role;

    #[test]
    fn live_owners_own_dead_ones_and_strangers_do_not() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = HostPaths {
            home: tmp.path().into(),
            data_dir: tmp.path().join("data"),
            lima_home: tmp.path().join("lima"),
        };
        let journal = Journal::new(&paths);
        journal
            .record(&Entry::owned_here(
                "t.run-aaaaaa",
                Role::Run,
                "t",
                tmp.path(),
            ))
            .unwrap();
        let mut dead = Entry::owned_here("t.run-bbbbbb", Role::Run, "t", tmp.path());
        dead.owner.start += 1; // same pid, another process start: the owner is gone
        journal.record(&dead).unwrap();
        let owners = JournalOwners::read(&paths);
        assert_eq!(
            owners.owner("t.run-aaaaaa"),
            Owner::InUse(std::process::id())
        );
        assert_eq!(owners.owner("t.run-bbbbbb"), Owner::Unused);
        assert_eq!(
            owners.owner("t.run-cccccc"),
            Owner::Unused,
            "no entry: nobody owns it"
        );
    }
}
