//! `claude-vm clean` and `clean-all`: delete templates and the VMs nobody owns any more,
//! after confirmation. VMs of sessions that are running are left to their owners, which
//! delete them when they end.

use super::Context;
use crate::error::{Error, Result};
use crate::lima;
use crate::lock::{self, Mode};
use crate::names::{self, Ours, TemplateName};
use crate::pool::Pool;
use crate::reap::Census;
use crate::template;

fn template_of(name: &str) -> Option<TemplateName> {
    match names::parse(name)? {
        Ours::Template(t) => Some(t),
        Ours::Clone { template, .. } => Some(template),
        Ours::Base(_) => None,
    }
}

/// Running sessions are not touched; says so.
fn spare_live(ctx: &Context, census: &Census, ours: impl Fn(&TemplateName) -> bool) {
    let live: Vec<&str> = census
        .instances
        .iter()
        .filter(|i| template_of(&i.name).is_some_and(|t| ours(&t)))
        .filter(|i| census.live_owner(&i.name).is_some())
        // Pre-booted clones waiting in a pool are removed, not spared.
        .filter(|i| !in_pool(ctx, &i.name))
        .map(|i| i.name.as_str())
        .collect();
    if !live.is_empty() {
        ctx.ui.info(&format!(
            "leaving {} of running claude-vm processes alone (they are deleted when those end): {}",
            count(live.len(), "VM"),
            live.join(", ")
        ));
    }
}

/// Lima's instances and the journal. A dry run asks too: `limactl list` changes nothing,
/// and which VMs would go is what a dry run is for.
fn census(ctx: &Context) -> Result<Option<Census>> {
    Census::take(&ctx.lima, &ctx.paths).map(Some)
}

pub use crate::ui::count;

pub fn clean(ctx: &Context, yes: bool) -> Result<i32> {
    let template = ctx.template()?;
    ctx.prepare_lima()?;
    let census = census(ctx)?;
    let mut doomed: Vec<String> = Vec::new();
    if let Some(census) = &census {
        // The template itself, and the orphans made from it.
        let orphans = census.orphans(&ctx.paths);
        doomed = census
            .instances
            .iter()
            .filter(|i| template_of(&i.name).as_ref() == Some(&template))
            .filter(|i| i.name == template.as_str() || orphans.contains(&i.name))
            .filter(|i| census.live_owner(&i.name).is_none())
            .map(|i| i.name.clone())
            .collect();
        doomed = crate::owner::deletable(&ctx.paths, &|m| ctx.ui.warn(m), &doomed, &[]);
        spare_live(ctx, census, |t| t == &template);
    }
    // A template VM that is not provably ours stays, and so does its record.
    let kept = census.as_ref().is_some_and(|c| {
        c.instances.iter().any(|i| i.name == template.as_str())
            && !doomed.contains(&template.to_string())
    });
    let has_record = template::read_manifest(&ctx.paths, template.as_str())?.is_some();
    if doomed.is_empty() && !has_record {
        ctx.ui.info(&format!(
            "nothing to clean: {} has no template VM",
            ctx.project.identity().display()
        ));
        return Ok(0);
    }
    let what = format!(
        "the template VM of {} ({template})",
        ctx.project.identity().display()
    );
    if !confirm(ctx, &what, &doomed, yes)? {
        return Ok(0);
    }
    let pools = [Pool::new(&ctx.paths, template.as_str())];
    doomed.extend(claim_pooled(ctx, &pools, &doomed)?);
    // No session may clone the template while it goes.
    let lock = lock::template_lock(&ctx.paths, template.as_str());
    let _held = delete(ctx, &doomed, Some(&lock))?;
    forget_pooled(ctx, &pools, &doomed)?;
    if let Some(base) = template::read_manifest(&ctx.paths, template.as_str())?.and_then(|m| m.base)
    {
        ctx.ui.info(&format!(
            "the shared base {} stays for other projects (`claude-vm gc` removes it once no template was cloned from it)",
            base.name
        ));
    }
    if !kept {
        template::remove_manifest(&ctx.paths, template.as_str())?;
        drop(_held);
        forget_files(ctx, template.as_str());
    }
    Ok(0)
}

fn in_pool(ctx: &Context, instance: &str) -> bool {
    template_of(instance).is_some_and(|t| {
        Pool::new(&ctx.paths, t.as_str())
            .ready()
            .iter()
            .any(|r| r.instance == instance)
    })
}

/// Clones waiting in the warm pools: nobody uses them, so they go too. Claimed first, so no
/// session takes one while it is being deleted.
fn claim_pooled(ctx: &Context, pools: &[Pool], already: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for pool in pools {
        for r in pool.ready() {
            if !already.contains(&r.instance)
                && crate::owner::refusal(&ctx.paths, &r.instance).is_none()
                && pool.claim(&r.instance)?
            {
                out.push(r.instance);
            }
        }
    }
    Ok(out)
}

/// After the delete: the pools forget their clones and their size; the keepers see it and end.
fn forget_pooled(ctx: &Context, pools: &[Pool], deleted: &[String]) -> Result<()> {
    let journal = crate::journal::Journal::new(&ctx.paths);
    for pool in pools {
        for name in deleted {
            pool.forget(name);
        }
        pool.reset()?;
    }
    for name in deleted {
        if matches!(
            names::parse(name),
            Some(Ours::Clone {
                role: crate::names::Role::Warm,
                ..
            })
        ) {
            journal.remove(name)?;
        }
    }
    Ok(())
}

pub fn clean_all(ctx: &Context, yes: bool) -> Result<i32> {
    ctx.prepare_lima()?;
    let census = census(ctx)?;
    let mut doomed: Vec<String> = Vec::new();
    if let Some(census) = &census {
        doomed = census
            .instances
            .iter()
            .filter(|i| names::parse(&i.name).is_some())
            .filter(|i| census.live_owner(&i.name).is_none())
            .map(|i| i.name.clone())
            .collect();
        doomed = crate::owner::deletable(&ctx.paths, &|m| ctx.ui.warn(m), &doomed, &[]);
        spare_live(ctx, census, |_| true);
    }
    // A shared base a setup is cloning or building right now stays (its lock is held).
    let mut base_locks = Vec::new();
    doomed.retain(|n| {
        if !matches!(names::parse(n), Some(Ours::Base(_))) || ctx.dry_run {
            return true;
        }
        match lock::try_acquire(&lock::setup_lock(&ctx.paths, n), Mode::Exclusive) {
            Ok(Some(held)) => {
                base_locks.push(held);
                true
            }
            _ => {
                ctx.ui.info(&format!(
                    "leaving the shared base {n} alone: a setup is using it"
                ));
                false
            }
        }
    });
    // Records of template VMs that stay (not provably ours) stay too.
    let present: Vec<String> = census
        .as_ref()
        .map(|c| c.instances.iter().map(|i| i.name.clone()).collect())
        .unwrap_or_default();
    let records: Vec<template::Manifest> = template::all_manifests(&ctx.paths)
        .into_iter()
        .filter(|r| doomed.contains(&r.template) || !present.contains(&r.template))
        .collect();
    let bases: Vec<String> = template::all_bases(&ctx.paths)
        .into_iter()
        .map(|b| b.name)
        .filter(|b| doomed.contains(b) || !present.contains(b))
        .collect();
    if doomed.is_empty() && records.is_empty() && bases.is_empty() {
        ctx.ui.info("nothing to clean: no claude-vm VMs");
        return Ok(0);
    }
    let what = match doomed.len() {
        0 => "the records of claude-vm templates that no longer exist".to_owned(),
        1 => "the only claude-vm VM".to_owned(),
        n => format!("all {n} claude-vm VMs"),
    };
    if !confirm(ctx, &what, &doomed, yes)? {
        return Ok(0);
    }
    let pools: Vec<Pool> = records
        .iter()
        .map(|r| Pool::new(&ctx.paths, &r.template))
        .collect();
    doomed.extend(claim_pooled(ctx, &pools, &doomed)?);
    delete(ctx, &doomed, None)?;
    forget_pooled(ctx, &pools, &doomed)?;
    for r in &records {
        template::remove_manifest(&ctx.paths, &r.template)?;
    }
    for b in &bases {
        template::remove_base(&ctx.paths, b)?;
    }
    drop(base_locks);
    for b in bases.iter().chain(
        doomed
            .iter()
            .filter(|n| matches!(names::parse(n), Some(Ours::Base(_)))),
    ) {
        forget_files(ctx, b);
    }
    let mut gone: Vec<String> = records.iter().map(|r| r.template.clone()).collect();
    gone.extend(
        doomed
            .iter()
            .filter_map(|n| template_of(n))
            .map(|t| t.to_string()),
    );
    gone.sort();
    gone.dedup();
    for t in &gone {
        forget_files(ctx, t);
    }
    Ok(0)
}

/// Asks (or requires --yes). `Ok(false)`: a dry run, which printed what it would do.
fn confirm(ctx: &Context, what: &str, names: &[String], yes: bool) -> Result<bool> {
    if ctx.dry_run {
        if names.is_empty() {
            crate::outln!("would delete {what} (no VM: no limactl call)");
        } else {
            crate::outln!("would delete {what}:\n  {}", lima::delete(names));
        }
        return Ok(false);
    }
    if yes {
        return Ok(true);
    }
    if !names.is_empty() {
        ctx.ui.info(&format!("to be deleted: {}", names.join(", ")));
    }
    match ctx.ui.confirm(&format!("Delete {what}?"), false) {
        Some(true) => Ok(true),
        Some(false) => Err(Error::usage("nothing was deleted").with_hint("answer y to delete")),
        None => Err(
            Error::usage(format!("refusing to delete {what} without confirmation"))
                .with_hint("pass --yes to delete without asking"),
        ),
    }
}

/// Deletes every instance in one call, holding `lock` exclusively if given (returned, so the
/// caller can finish under it).
fn delete(
    ctx: &Context,
    names: &[String],
    lock: Option<&std::path::Path>,
) -> Result<Option<lock::Lock>> {
    let exclusive = match lock {
        Some(path) => Some(lock::acquire(path, Mode::Exclusive, |_| {
            ctx.ui
                .info("waiting for sessions that are cloning the template")
        })?),
        None => None,
    };
    if !names.is_empty() {
        let step = ctx.ui.step(format!("deleting {}", names.join(", ")));
        ctx.lima.run_shielded(&lima::delete(names), None)?;
        step.done();
        for n in names {
            let _ = std::fs::remove_dir_all(ctx.paths.handover_root().join(n));
        }
    }
    Ok(exclusive)
}

/// A deleted template's files: its locks, logs and pool folder. A lock still held (a setup,
/// session or keeper that is running) stays: deleting it would let a second holder take a
/// new file beside the one held.
fn forget_files(ctx: &Context, template: &str) {
    for path in [
        lock::setup_lock(&ctx.paths, template),
        lock::template_lock(&ctx.paths, template),
    ] {
        if let Ok(Some(_held)) = lock::try_acquire(&path, Mode::Exclusive) {
            let _ = std::fs::remove_file(&path);
        }
    }
    let pool = Pool::new(&ctx.paths, template);
    if let Ok(Some(_keeper)) = lock::try_acquire(&pool.keeper_lock(), Mode::Exclusive) {
        let _ = std::fs::remove_dir_all(ctx.paths.pool_dir(template));
    }
    for log in crate::filenames::TEMPLATE_LOGS {
        let _ = std::fs::remove_file(ctx.paths.template_log(template, log));
    }
}
