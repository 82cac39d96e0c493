//! `claude-vm trust [--revoke]`: approve the project's files as they are now.

use super::Context;
use crate::config::Overrides;
use crate::error::Result;
use crate::trust::{self, Review, Store};

pub fn run(ctx: &Context, revoke: bool) -> Result<i32> {
    let store = Store::new(&ctx.paths);
    let p = &ctx.project;
    if revoke {
        let candidates = [
            Some(p.config_file()),
            p.main_config_file(),
            Some(p.setup_script()),
            Some(p.runtime_script()),
        ];
        let mut any = false;
        for path in candidates.into_iter().flatten() {
            if store.revoke(&path)? {
                crate::outln!("revoked the approval of {}", path.display());
                any = true;
            }
        }
        if !any {
            crate::outln!("nothing to revoke for {}", p.root.display());
        }
        return Ok(0);
    }
    if let crate::worktrees::Pin::Accepted(old) = &ctx.main_repo {
        if let Some(main) = &p.main_root {
            crate::outln!(
                "accepted {} as the main repository of this worktree (it was {})",
                main.display(),
                old.display()
            );
        }
    }
    // Loading validates the files: an invalid one is refused here, not approved.
    let loaded = ctx.load_config(&Overrides::default())?;
    let mut reviews: Vec<Review> = loaded.reviews.clone();
    reviews.extend(trust::project_script(&p.setup_script(), p));
    reviews.extend(trust::project_script(&p.runtime_script(), p));
    if reviews.is_empty() {
        crate::outln!(
            "nothing to approve: {} has no .claude-vm.toml",
            p.root.display()
        );
        return Ok(0);
    }
    for r in &reviews {
        store.approve(r)?;
        if r.widens.is_empty() {
            crate::outln!(
                "approved {} (it does not widen the sandbox)",
                r.path.display()
            );
        } else {
            crate::outln!("approved {}; it:", r.path.display());
            for w in &r.widens {
                crate::outln!("  - {w}");
            }
        }
    }
    crate::outln!("a change to an approved file needs `claude-vm trust` again");
    Ok(0)
}
