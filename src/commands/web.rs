//! `claude-vm web [--port N] [--open]`: the web UI (`crate::web`). This side tells the server
//! each project's template state, as `claude-vm info` does.

use std::path::Path;
use std::sync::Arc;

use super::Context;
use crate::cli::{GlobalOpts, WebArgs};
use crate::error::Result;
use crate::paths::HostPaths;
use crate::template::{self, Manifest};
use crate::web::ProjectInfo;

pub fn run(args: &WebArgs) -> Result<i32> {
    crate::web::run(crate::web::Options {
        paths: HostPaths::from_env()?,
        port: args.port.unwrap_or(0),
        open: args.open,
        projects: Arc::new(projects),
    })
}

/// Every project with a template: up to date or why not, tools, resources, size on disk.
fn projects(paths: &HostPaths) -> Vec<ProjectInfo> {
    template::all_manifests(paths)
        .into_iter()
        .map(|m| {
            let (up_to_date, reasons) = match staleness(&m) {
                Ok(r) => (Some(r.is_empty()), r),
                Err(e) => (None, vec![format!("cannot tell: {e}")]),
            };
            ProjectInfo {
                size_bytes: disk_usage(&paths.lima_home.join(&m.template)),
                id: m.template,
                path: m.project,
                up_to_date,
                reasons,
                tools: m.tools,
                disk_gb: m.disk,
                memory_gb: m.memory,
                cpus: m.cpus,
                built_at: m.built_at,
                claude_vm_version: m.claude_vm_version,
            }
        })
        .collect()
}

/// Why the template is out of date (`claude-vm info`'s "up to date" line).
fn staleness(m: &Manifest) -> Result<Vec<String>> {
    let quiet = GlobalOpts {
        verbose: false,
        quiet: true,
        dry_run: false,
        json: false,
    };
    let ctx = Context::in_dir(&quiet, false, m.project.clone())?;
    let template = ctx.template()?;
    if template.as_str() != m.template {
        return Ok(vec![format!(
            "{} now belongs to the template {template}",
            m.project.display()
        )]);
    }
    let (_, _, reasons) = crate::workflow::build::staleness(&ctx, &template, m)?;
    Ok(reasons)
}

/// Bytes under `dir`, links not followed; None when it cannot be read.
fn disk_usage(dir: &Path) -> Option<u64> {
    let mut total = 0u64;
    let mut todo = vec![dir.to_path_buf()];
    let mut seen = 0;
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            seen += 1;
            if seen > 100_000 {
                return Some(total);
            }
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                todo.push(e.path());
            } else {
                use std::os::unix::fs::MetadataExt;
                // Disk images are sparse: what they take, not what they could.
                total += meta.blocks() * 512;
            }
        }
    }
    Some(total)
}
