//! `claude-vm clean` and `clean-all`: delete templates (and their clones) after confirmation.

use super::Context;
use crate::error::{Error, Result};
use crate::lima;
use crate::names::{self, Ours};
use crate::template;

pub fn clean(ctx: &Context, yes: bool) -> Result<i32> {
    let template = ctx.template()?;
    let instances = if ctx.dry_run {
        Vec::new()
    } else {
        ctx.lima.list()?
    };
    let mut doomed: Vec<String> = instances
        .iter()
        .filter(|i| match names::parse(&i.name) {
            Some(Ours::Template(t)) => t == template,
            Some(Ours::Clone { template: t, .. }) => t == template,
            None => false,
        })
        .map(|i| i.name.clone())
        .collect();
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
    delete(ctx, &doomed, &what, yes)?;
    template::remove_manifest(&ctx.paths, template.as_str())?;
    Ok(0)
}

pub fn clean_all(ctx: &Context, yes: bool) -> Result<i32> {
    let instances = if ctx.dry_run {
        Vec::new()
    } else {
        ctx.lima.list()?
    };
    let doomed: Vec<String> = instances
        .iter()
        .filter(|i| names::parse(&i.name).is_some())
        .map(|i| i.name.clone())
        .collect();
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
    )?;
    for r in &records {
        template::remove_manifest(&ctx.paths, &r.template)?;
    }
    Ok(0)
}

/// Asks (or requires --yes), then deletes every instance in one call.
fn delete(ctx: &Context, names: &[String], what: &str, yes: bool) -> Result<()> {
    let call = lima::delete(names);
    if ctx.dry_run {
        println!("would delete {what}:\n  {call}");
        return Ok(());
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
    if !names.is_empty() {
        let step = ctx.ui.step(format!("deleting {}", names.join(", ")));
        ctx.lima.cleanup(&call, None)?;
        step.done();
    }
    Ok(())
}
