//! Audit reports kept on disk (`DATA_DIR/audit/`), so a warning that scrolled away or was
//! hidden is still found: the next command points at reports nobody has been pointed at
//! yet, and `claude-vm info` lists the project's.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::paths::HostPaths;

fn dir(paths: &HostPaths) -> PathBuf {
    paths.audit_dir()
}

/// Where a report names its project.
const PROJECT: &str = "project: ";

/// Writes one report (already escaped text); returns its path.
pub fn keep(
    paths: &HostPaths,
    session: &str,
    project: &Path,
    headline: &str,
    lines: &[String],
) -> Result<PathBuf> {
    let name = format!("{}-{}.txt", crate::clock::now(), crate::ui::escape(session));
    let mut text = format!(
        "{PROJECT}{}\nsession: {}\n{headline}\n",
        crate::ui::escape(&project.display().to_string()),
        crate::ui::escape(session)
    );
    for l in lines {
        text.push_str(&format!("  {l}\n"));
    }
    let dir = dir(paths);
    crate::atomic::write(&dir, &name, text.as_bytes())?;
    // Unseen until a later command has pointed at it.
    crate::atomic::write(&dir.join(crate::filenames::AUDIT_UNSEEN), &name, b"")?;
    Ok(dir.join(name))
}

/// Reports no later command has pointed at yet; they count as seen from now on.
pub fn take_unseen(paths: &HostPaths) -> Vec<PathBuf> {
    let unseen = dir(paths).join(crate::filenames::AUDIT_UNSEEN);
    let Ok(rd) = fs::read_dir(&unseen) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name();
        let report = dir(paths).join(&name);
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let _ = fs::remove_file(e.path());
        if report.is_file() {
            out.push(report);
        }
    }
    out.sort();
    out
}

/// The reports about `project`, oldest first.
pub fn of_project(paths: &HostPaths, project: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir(paths)) else {
        return Vec::new();
    };
    let want = format!(
        "{PROJECT}{}",
        crate::ui::escape(&project.display().to_string())
    );
    let mut out: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .filter(|p| {
            fs::read_to_string(p)
                .ok()
                .and_then(|t| t.lines().next().map(|l| l == want))
                .unwrap_or(false)
        })
        .collect();
    out.sort();
    out
}
