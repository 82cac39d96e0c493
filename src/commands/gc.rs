//! `claude-vm gc`: delete every claude-vm VM that no running claude-vm owns.

use super::Context;
use crate::error::Result;

pub fn run(ctx: &Context, force: &[String]) -> Result<i32> {
    if ctx.dry_run {
        crate::outln!(
            "would delete every claude-vm VM without a running owner (`limactl list` decides)"
        );
        return Ok(0);
    }
    crate::lima::detect::ensure(&ctx.lima, &ctx.paths.lima_version_cache())?;
    crate::swap::recover_all(&ctx.lima, &ctx.ui, &ctx.paths)?;
    let removed = crate::reap::sweep(&ctx.lima, &ctx.ui, &ctx.paths, force)?;
    if removed.is_empty() {
        ctx.ui
            .info("nothing to clean up: no claude-vm VM is left without a running owner");
    } else {
        ctx.ui.info(&format!(
            "removed {}",
            super::clean::count(removed.len(), "VM")
        ));
    }
    Ok(0)
}
