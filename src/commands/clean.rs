//! `claude-vm clean` and `clean-all`: delete templates and the VMs nobody owns any more,
//! after confirmation. VMs of sessions that are running are left to their owners, which
//! delete them when they end.

use super::Context;
use crate::error::{Error, Result};
use crate::lima;
use crate::lock::{self, Mode};
use crate::names::{self, Ours, TemplateName};
use crate::reap::Census;
use crate::template;

fn template_of(name: &str) -> Option<TemplateName> {
    match names::parse(name)? {
        Ours::Template(t) => Some(t),
        Ours::Clone { template, .. } => Some(template),
    }
}

/// Running sessions are not touched; says so.
fn spare_live(ctx: &Context, census: &Census, ours: impl Fn(&TemplateName) -> bool) {
    let live: Vec<&str> = census
        .instances
        .iter()
        .filter(|i| template_of(&i.name).is_some_and(|t| ours(&t)))
        .filter(|i| census.live_owner(&i.name).is_some())
        .map(|i| i.name.as_str())
        .collect();
    if !live.is_empty() {
        ctx.ui.info(&format!(
            "leaving {} VMs of running claude-vm processes alone (they are deleted when those end): {}",
            live.len(),
            live.join(", ")
        ));
    }
}

pub fn clean(ctx: &Context, yes: bool) -> Result<i32> {
    let template = ctx.template()?;
    ctx.prepare_lima()?;
    let census = if ctx.dry_run {
        None
    } else {
        Some(Census::take(&ctx.lima, &ctx.paths)?)
    };
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
        spare_live(ctx, census, |t| t == &template);
    }
    if ctx.dry_run {
        doomed.push(template.to_string());
    }
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
    // No session may clone the template while it goes.
    let lock = lock::template_lock(&ctx.paths, template.as_str());
    let _held = delete(ctx, &doomed, &what, yes, Some(&lock))?;
    template::remove_manifest(&ctx.paths, template.as_str())?;
    Ok(0)
}

pub fn clean_all(ctx: &Context, yes: bool) -> Result<i32> {
    ctx.prepare_lima()?;
    let census = if ctx.dry_run {
        None
    } else {
        Some(Census::take(&ctx.lima, &ctx.paths)?)
    };
    let mut doomed: Vec<String> = Vec::new();
    if let Some(census) = &census {
        doomed = census
            .instances
            .iter()
            .filter(|i| names::parse(&i.name).is_some())
            .filter(|i| census.live_owner(&i.name).is_none())
            .map(|i| i.name.clone())
            .collect();
        spare_live(ctx, census, |_| true);
    }
    let records = template::all_manifests(&ctx.paths);
    if doomed.is_empty() && records.is_empty() {
        ctx.ui.info("nothing to clean: no claude-vm VMs");
        return Ok(0);
    }
    delete(
        ctx,
        &doomed,
        &format!("all {} claude-vm VMs", doomed.len()),
        yes,
        None,
    )?;
    for r in &records {
        template::remove_manifest(&ctx.paths, &r.template)?;
    }
    Ok(0)
}

/// Asks (or requires --yes), then deletes every instance in one call, holding `lock`
/// exclusively if given (returned, so the caller can finish under it).
fn delete(
    ctx: &Context,
    names: &[String],
    what: &str,
    yes: bool,
    lock: Option<&std::path::Path>,
) -> Result<Option<lock::Lock>> {
    let call = lima::delete(names);
    if ctx.dry_run {
        println!("would delete {what}:\n  {call}");
        return Ok(None);
    }
    if !yes {
        match ctx.ui.confirm(&format!("Delete {what}?"), false) {
            Some(true) => {}
            Some(false) => {
                return Err(Error::usage("nothing was deleted").with_hint("answer y to delete"))
            }
            None => {
                return Err(
                    Error::usage(format!("refusing to delete {what} without confirmation"))
                        .with_hint("pass --yes to delete without asking"),
                )
            }
        }
    }
    let exclusive = match lock {
        Some(path) => Some(lock::acquire(path, Mode::Exclusive, |_| {
            ctx.ui
                .info("waiting for sessions that are cloning the template")
        })?),
        None => None,
    };
    if !names.is_empty() {
        let step = ctx.ui.step(format!("deleting {}", names.join(", ")));
        ctx.lima.cleanup(&call, None)?;
        step.done();
        for n in names {
            let _ = std::fs::remove_dir_all(ctx.paths.handover_root().join(n));
        }
    }
    Ok(exclusive)
}
