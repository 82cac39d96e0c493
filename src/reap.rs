//! Reaping: VMs whose owner is gone (killed, crashed, rebooted) are deleted by the next
//! claude-vm command, in one `limactl delete --force` call, and the user is told.
//!
//! The automatic pass (`orphans`) reads only the journal, so a normal command with nothing
//! to reap makes no extra limactl call. `claude-vm gc` (`sweep`) also asks Lima, and finds
//! claude-vm VMs that have no journal entry at all.

use std::collections::BTreeMap;
use std::fs;

use crate::audit;
use crate::error::Result;
use crate::journal::{Entry, Journal};
use crate::lima::{self, Instance, Limactl};
use crate::names::{self, Ours, Role};
use crate::paths::HostPaths;
use crate::signals;
use crate::template;
use crate::ui::Ui;

/// Deletes the VMs of dead owners found in the journal. Nothing to reap: no limactl call.
/// A failed delete is a warning (the entries stay, the next command tries again).
pub fn delete_orphans(lima: &Limactl, ui: &Ui, paths: &HostPaths) -> Result<()> {
    let journal = Journal::new(paths);
    if !journal.entries().iter().any(|e| !e.owner_may_be_alive()) {
        return Ok(());
    }
    let _signals = signals::Scope::enter();
    let _lock = journal.reaper_lock()?;
    // Another command may have reaped them while we waited for the lock.
    let dead: Vec<Entry> = journal
        .entries()
        .into_iter()
        .filter(|e| !e.owner_may_be_alive())
        .collect();
    audit_dead(ui, paths, &journal, &dead);
    let held = crate::swap::protected(paths);
    let candidates: Vec<String> = dead
        .iter()
        .filter(|e| !is_finished_template(paths, e) && !held.contains(&e.instance))
        .map(|e| e.instance.clone())
        .collect();
    // Only what is provably ours (name and mark) is deleted. An entry whose VM is gone is
    // just forgotten; one naming a VM that is not ours is forgotten too, without a delete.
    let present: Vec<String> = candidates
        .into_iter()
        .filter(|n| paths.lima_home.join(n).exists())
        .collect();
    let doomed = crate::owner::deletable(paths, &|m| ui.warn(m), &present, &[]);
    let deleted: Vec<Entry> = dead
        .iter()
        .filter(|e| doomed.contains(&e.instance))
        .cloned()
        .collect();
    if doomed.is_empty() || delete(lima, ui, &doomed, &describe(&deleted))? {
        forget(paths, &journal, dead.iter().map(|e| e.instance.as_str()))?;
    }
    signals::check()
}

/// Finishes the audit of sessions whose owner died (SIGKILL, crash): what they changed is
/// reported like at the end of a session, once (the entry then drops its snapshot).
fn audit_dead(ui: &Ui, paths: &HostPaths, journal: &Journal, dead: &[Entry]) {
    for e in dead {
        let Some(pending) = &e.audit else {
            continue;
        };
        let changes = audit::changes(&pending.before, &pending.watch.snapshot());
        let headline = format!(
            "the session {} (pid {}), which ended without cleaning up, changed files that run on your host:",
            e.instance, e.owner.pid
        );
        audit::report(ui, paths, &pending.watch, &e.instance, &headline, &changes);
        let _ = journal.record(&Entry {
            audit: None,
            ..e.clone()
        });
    }
}

/// A first build that finished (manifest written) just before its owner died: the template
/// is complete and must stay; only its journal entry is stale.
/// The same for a shared base whose record was written.
fn is_finished_template(paths: &HostPaths, e: &Entry) -> bool {
    e.role == Role::Build
        && match names::parse(&e.instance) {
            Some(Ours::Template(_)) => {
                matches!(template::read_manifest(paths, &e.instance), Ok(Some(_)))
            }
            Some(Ours::Base(b)) => matches!(template::read_base(paths, &b), Ok(Some(_))),
            _ => false,
        }
}

fn describe(dead: &[Entry]) -> String {
    let owners: Vec<String> = dead
        .iter()
        .map(|e| {
            format!(
                "{} ({} of {}, pid {})",
                e.instance,
                match e.role {
                    Role::Run => "session",
                    Role::Build if matches!(names::parse(&e.instance), Some(Ours::Base(_))) => {
                        "shared base build"
                    }
                    Role::Build => "template build",
                    Role::Warm => "warm clone",
                    Role::Old => "replaced template",
                },
                e.project.display(),
                e.owner.pid
            )
        })
        .collect();
    format!(
        "removing VMs left behind by claude-vm processes that ended without cleaning up: {}",
        owners.join(", ")
    )
}

/// One `delete --force` for all of `names`; false (after a warning) when it failed.
fn delete(lima: &Limactl, ui: &Ui, names: &[String], what: &str) -> Result<bool> {
    let _cleaning = signals::CleaningUp::begin();
    let step = ui.step(what);
    match lima.run_shielded(&lima::delete(names), None) {
        Ok(()) => {
            step.done();
            Ok(true)
        }
        Err(e) => {
            ui.warn(&format!(
                "could not remove {}: {e}\n  the next claude-vm command tries again (or run `claude-vm gc`)",
                names.join(", ")
            ));
            Ok(false)
        }
    }
}

/// Drops journal entries and hand-over directories of deleted instances.
fn forget<'a>(
    paths: &HostPaths,
    journal: &Journal,
    instances: impl Iterator<Item = &'a str>,
) -> Result<()> {
    for name in instances {
        // Names come from entries' contents: never a path.
        if !names::is_valid_lima_name(name) {
            continue;
        }
        journal.remove(name)?;
        let _ = fs::remove_dir_all(paths.handover_root().join(name));
        crate::pool::forget_anywhere(paths, name);
    }
    Ok(())
}

/// Lima's instances and the journal around them, for deciding what nobody owns.
pub struct Census {
    pub instances: Vec<Instance>,
    /// Journal entries by instance, read before and after the list.
    pub entries: BTreeMap<String, Entry>,
}

impl Census {
    /// Reads the journal, lists Lima's instances, reads the journal again: an entry is
    /// written before its VM exists and removed after it is gone, so every VM in the list
    /// that has an owner shows up in one of the two readings.
    pub fn take(lima: &Limactl, paths: &HostPaths) -> Result<Census> {
        let journal = Journal::new(paths);
        let before = journal.entries();
        let instances = lima.list()?;
        let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
        for e in before.into_iter().chain(journal.entries()) {
            entries.insert(e.instance.clone(), e);
        }
        Ok(Census { instances, entries })
    }

    /// The journal entry of a live owner of `name`.
    pub fn live_owner(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name).filter(|e| e.owner_may_be_alive())
    }

    /// claude-vm instances nobody owns: clones and builds without a live owner, and templates
    /// and shared bases that never got their record.
    pub fn orphans(&self, paths: &HostPaths) -> Vec<String> {
        // An unfinished swap's names hold the only complete template: never orphans.
        let held = crate::swap::protected(paths);
        self.instances
            .iter()
            .filter(|i| self.live_owner(&i.name).is_none() && !held.contains(&i.name))
            .filter(|i| match names::parse(&i.name) {
                Some(Ours::Clone { .. }) => true,
                Some(Ours::Template(t)) => {
                    matches!(template::read_manifest(paths, t.as_str()), Ok(None))
                }
                Some(Ours::Base(b)) => matches!(template::read_base(paths, &b), Ok(None)),
                None => false,
            })
            .map(|i| i.name.clone())
            .collect()
    }
}

/// `claude-vm gc`: every claude-vm VM without a live owner that is provably ours (name and
/// mark, `owner.rs`) or named in `force`, in one delete call; stale journal entries and
/// hand-over directories too. Returns the deleted names.
pub fn sweep(lima: &Limactl, ui: &Ui, paths: &HostPaths, force: &[String]) -> Result<Vec<String>> {
    let journal = Journal::new(paths);
    let _signals = signals::Scope::enter();
    let _lock = journal.reaper_lock()?;
    let census = Census::take(lima, paths)?;
    let mut candidates = census.orphans(paths);
    // Shared bases no template was cloned from; one a setup is building or cloning right now
    // holds its lock and stays. The locks are held until the delete is done.
    let manifests = template::all_manifests(paths);
    let mut base_locks = Vec::new();
    for i in &census.instances {
        let Some(Ours::Base(b)) = names::parse(&i.name) else {
            continue;
        };
        if candidates.contains(&b) || !template::users_of(&manifests, &b).is_empty() {
            continue;
        }
        if let Ok(Some(held)) = crate::lock::try_acquire(
            &crate::lock::setup_lock(paths, &b),
            crate::lock::Mode::Exclusive,
        ) {
            // Someone may have cloned it while we looked: read the manifests again.
            if template::users_of(&template::all_manifests(paths), &b).is_empty() {
                base_locks.push(held);
                candidates.push(b);
            }
        }
    }
    for name in force {
        let exists = census.instances.iter().any(|i| &i.name == name);
        if !exists {
            return Err(crate::error::Error::usage(format!(
                "gc --force {name:?}: Lima has no instance of that name"
            ))
            .with_hint("`limactl list` shows the instances"));
        }
        if census.live_owner(name).is_some() {
            return Err(crate::error::Error::usage(format!(
                "gc --force {name}: a running claude-vm uses it"
            ))
            .with_hint("it is deleted when that session ends"));
        }
        if !candidates.contains(name) {
            candidates.push(name.clone());
        }
    }
    let doomed = crate::owner::deletable(paths, &|m| ui.warn(m), &candidates, force);
    if !doomed.is_empty() {
        let what = format!(
            "removing {} VMs nobody owns: {}",
            doomed.len(),
            doomed.join(", ")
        );
        if !delete(lima, ui, &doomed, &what)? {
            return Err(
                crate::error::Error::failure("some VMs could not be removed")
                    .with_hint("see the warning above; `limactl list` shows what is left"),
            );
        }
    }
    for name in &doomed {
        if matches!(names::parse(name), Some(Ours::Base(_))) {
            template::remove_base(paths, name)?;
        }
    }
    drop(base_locks);
    let dead: Vec<Entry> = census
        .entries
        .values()
        .filter(|e| !e.owner_may_be_alive())
        .cloned()
        .collect();
    audit_dead(ui, paths, &journal, &dead);
    // Entries of dead owners whose VM is gone already, and hand-overs nobody uses.
    let stale = census
        .entries
        .values()
        .filter(|e| !e.owner_may_be_alive())
        .map(|e| e.instance.clone());
    let names: Vec<String> = doomed.iter().cloned().chain(stale).collect();
    forget(paths, &journal, names.iter().map(String::as_str))?;
    if let Ok(dir) = fs::read_dir(paths.handover_root()) {
        let live: Vec<String> = journal.entries().into_iter().map(|e| e.instance).collect();
        for d in dir.flatten() {
            let name = d.file_name().to_string_lossy().into_owned();
            if !live.contains(&name) && census.live_owner(&name).is_none() {
                let _ = fs::remove_dir_all(d.path());
            }
        }
    }
    signals::check()?;
    Ok(doomed)
}
