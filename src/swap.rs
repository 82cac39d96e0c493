//! Swapping a rebuilt template in without ever being left without one.
//!
//! Lima cannot replace an instance in one step, so the swap is a journaled sequence:
//! write the swap record → rename the old template aside (`<template>.old-<id>`) → rename
//! the new one in → write its manifest → delete the old one → drop the record. The record
//! holds everything needed to finish (names and the new manifest), so a swap stopped at any
//! point, by a failure or a SIGKILL, is settled by looking at which of the three names exist:
//! the next claude-vm command (or the failing setup itself) rolls it forward or back. At
//! every point one complete template exists under a name the record knows, and the manifest
//! is rewritten before the old template is deleted, so it never describes a VM that is gone.
//!
//! Everything here runs under the template lock, exclusively: sessions clone only before or
//! after a swap, never in the middle of one.

use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::journal::Journal;
use crate::lima::{self, Limactl};
use crate::lock::{self, Mode};
use crate::manifest::{self as template, Manifest};
use crate::paths::HostPaths;
use crate::signals;
use crate::ui::Ui;

/// Where a rebuild of `template` stands until its swap is over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Swap {
    pub template: String,
    /// The new template, complete and stopped.
    pub build: String,
    /// Where the old template waits until the new one is in.
    pub aside: String,
    /// The new template's record, written once it is in place.
    pub manifest: Manifest,
}

/// Which way to settle a swap whose old template is aside and whose new one is not yet in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Undo: the old template back (a failed setup keeps the template it had).
    Back,
    /// Finish: the new template in (after a kill, the build the user waited for).
    Forward,
}

fn record_path(paths: &HostPaths, template: &str) -> PathBuf {
    paths
        .templates_dir()
        .join(crate::filenames::swap_record(template))
}

/// Records the swap before its first step (a failure here leaves everything as it was).
pub fn begin(paths: &HostPaths, swap: &Swap) -> Result<()> {
    let text = serde_json::to_string_pretty(swap)
        .map_err(|e| Error::failure(format!("cannot encode the swap record: {e}")))?;
    let name = crate::filenames::swap_record(&swap.template);
    crate::atomic::write(&paths.templates_dir(), &name, text.as_bytes())
}

fn forget_record(paths: &HostPaths, template: &str) -> Result<()> {
    let path = record_path(paths, template);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", &path, e)),
        _ => Ok(()),
    }
}

/// The unfinished swap of `template`, if any. A record that is not a regular file or does
/// not parse is no swap (and is not followed or read to its end).
pub fn pending(paths: &HostPaths, template: &str) -> Option<Swap> {
    read(&record_path(paths, template)).filter(|s| s.template == template)
}

fn read(path: &std::path::Path) -> Option<Swap> {
    let text = crate::fsread::small_regular_file(path, 1 << 20).ok()?;
    serde_json::from_str(&text).ok()
}

/// Every unfinished swap.
pub fn all_pending(paths: &HostPaths) -> Vec<Swap> {
    let Ok(dir) = fs::read_dir(paths.templates_dir()) else {
        return Vec::new();
    };
    dir.flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "swap"))
        .filter_map(|e| read(&e.path()))
        .filter(|s| record_path(paths, &s.template).exists())
        .collect()
}

/// The instance names unfinished swaps hold: no reaper or gc may delete them.
pub fn protected(paths: &HostPaths) -> Vec<String> {
    all_pending(paths)
        .into_iter()
        .flat_map(|s| [s.template, s.build, s.aside])
        .collect()
}

/// Swaps the complete, stopped `swap.build` in for `swap.template`, recorded by `begin`. The
/// caller holds the template lock exclusively. On failure the old template is put back (or,
/// once the new one is in, the swap is finished); whatever cannot be settled now stays
/// recorded for the next command.
pub fn perform(lima: &Limactl, ui: &Ui, paths: &HostPaths, swap: &Swap) -> Result<()> {
    // Work calls (a signal stops them): wherever a swap stops, it can be settled.
    let moved = lima
        .run(
            &lima::rename(&swap.template, &swap.aside),
            Some(&swap.template),
            None,
        )
        .and_then(|()| {
            lima.run(
                &lima::rename(&swap.build, &swap.template),
                Some(&swap.build),
                None,
            )
        });
    if let Err(e) = moved {
        // Asked to stop: every further call would be stopped too; the next command settles.
        let undone = match signals::received() {
            Some(sig) => Err(signals::interrupted(sig)),
            None => settle(lima, ui, paths, swap, Direction::Back),
        };
        if let Err(u) = undone {
            ui.warn(&format!(
                "could not put the old template {} back yet: {u}\n  the next claude-vm command finishes it",
                swap.template
            ));
        }
        return Err(signals::explain(e));
    }
    template::write_manifest(paths, &swap.manifest)?;
    retire(lima, ui, paths, swap)
}

/// Deletes the replaced template and drops the record. The new template is in place: a
/// failure or a signal only leaves the old one for the next command to delete.
fn retire(lima: &Limactl, ui: &Ui, paths: &HostPaths, swap: &Swap) -> Result<()> {
    // Work, not cleanup: Ctrl-C or SIGTERM stops it at once (nothing is lost by stopping).
    match lima.run(
        &lima::delete(std::slice::from_ref(&swap.aside)),
        Some(&swap.aside),
        None,
    ) {
        Ok(()) => {
            forget_record(paths, &swap.template)?;
            Journal::new(paths).remove(&swap.build)
        }
        Err(e) => {
            signals::check()?;
            ui.warn(&format!(
                "the new template {} is in place, but the old one ({}) could not be removed yet: {e}\n  the next claude-vm command tries again",
                swap.template, swap.aside
            ));
            Ok(())
        }
    }
}

/// Brings a swap that stopped anywhere to an end, from which of its names exist (one
/// `limactl list`, then at most two calls).
fn settle(lima: &Limactl, ui: &Ui, paths: &HostPaths, swap: &Swap, dir: Direction) -> Result<()> {
    let names: Vec<String> = lima.list()?.into_iter().map(|i| i.name).collect();
    let has = |n: &str| names.iter().any(|x| x == n);
    let (t, a, b) = (has(&swap.template), has(&swap.aside), has(&swap.build));
    let rename = |from: &str, to: &str| lima.run(&lima::rename(from, to), Some(from), None);
    let delete = |name: &str| lima.run(&lima::delete(&[name.to_owned()]), Some(name), None);
    match (t, a, b) {
        // Not started: the old template is where it was, with its manifest.
        (true, false, true) => delete(&swap.build)?,
        // The old one aside, the new one not in yet.
        (false, true, true) => match dir {
            Direction::Back => {
                rename(&swap.aside, &swap.template)?;
                delete(&swap.build)?;
            }
            Direction::Forward => {
                rename(&swap.build, &swap.template)?;
                template::write_manifest(paths, &swap.manifest)?;
                return retire(lima, ui, paths, swap);
            }
        },
        // The new one in: finish (its manifest may not be written yet).
        (true, true, false) => {
            template::write_manifest(paths, &swap.manifest)?;
            return retire(lima, ui, paths, swap);
        }
        // The new one is gone (deleted by hand?): the old one comes back.
        (false, true, false) => rename(&swap.aside, &swap.template)?,
        // The old one is gone: the new one goes in.
        (false, false, true) => {
            rename(&swap.build, &swap.template)?;
            template::write_manifest(paths, &swap.manifest)?;
        }
        // Done, one way or the other: the manifest was written to match before the delete.
        (true, false, false) => {}
        // Nothing left at all (deleted by hand): no record may describe a missing VM.
        (false, false, false) => template::remove_manifest(paths, &swap.template)?,
        // Cannot come from a swap (a rename never overwrites): keep what is named the
        // template and leave the others to `claude-vm gc`.
        (true, true, true) => ui.warn(&format!(
            "{} and {} were left by an interrupted rebuild of {}; `claude-vm gc` removes them",
            swap.aside, swap.build, swap.template
        )),
    }
    forget_record(paths, &swap.template)?;
    Journal::new(paths).remove(&swap.build)
}

/// Settles the unfinished swap of `template`, if any, for a caller that holds its setup lock
/// (setup, before it builds). No swap: no limactl call.
pub fn recover_locked(lima: &Limactl, ui: &Ui, paths: &HostPaths, template: &str) -> Result<()> {
    if pending(paths, template).is_none() {
        return Ok(());
    }
    let _swap = lock::acquire(
        &lock::template_lock(paths, template),
        Mode::Exclusive,
        |_| ui.info("waiting for sessions that are cloning the template"),
    )?;
    let Some(swap) = pending(paths, template) else {
        return Ok(());
    };
    let step = ui.step(format!(
        "finishing the interrupted rebuild of template {template}"
    ));
    settle(lima, ui, paths, &swap, Direction::Forward)?;
    step.done();
    Ok(())
}

/// Settles every unfinished swap whose setup is not running (a running setup settles its
/// own). No swap: no limactl call.
pub fn recover_all(lima: &Limactl, ui: &Ui, paths: &HostPaths) -> Result<()> {
    for swap in all_pending(paths) {
        let setup = lock::setup_lock(paths, &swap.template);
        let Some(_setup) = lock::try_acquire(&setup, Mode::Exclusive)? else {
            continue;
        };
        recover_locked(lima, ui, paths, &swap.template)?;
    }
    Ok(())
}
