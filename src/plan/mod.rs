//! Plans: pure data saying what a command will do — the limactl calls in order, the mounts,
//! and the files handed over to the guest. Unit tests check plans; `--dry-run` prints them.

pub mod environment;
mod error;
mod mounts;
mod session_plan;
mod setup;

pub use error::PlanError;
pub use session_plan::{plan_session, GuestInputs, SessionInputs, SessionPlan};
pub use setup::{
    login_call, plan_base, plan_setup, template_tools, BasePlan, Boot, SetupInputs, SetupPlan,
};

pub use crate::hostfile::HostCopy;
use std::fmt::Write;

use crate::lima::Call;

/// A file placed in the hand-over directory before the guest needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoverFile {
    /// File name inside the hand-over directory.
    pub name: String,
    pub source: FileSource,
    /// Shown in `--dry-run` output? (false for anything that may hold secrets)
    pub printable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    Text(String),
    /// A host file copied as it was checked (`hostfile`).
    Copy(HostCopy),
}

/// A host script and how the user knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostScript {
    pub label: String,
    pub source: HostCopy,
}

impl HostScript {
    pub fn path(&self) -> &std::path::Path {
        &self.source.path
    }
}

/// Renders calls and hand-over files for `--dry-run`.
pub fn render(title: &str, calls: &[&Call], files: &[HandoverFile], files_heading: &str) -> String {
    let mut s = format!("{title}\n\nlimactl calls, in order:\n");
    for (i, c) in calls.iter().enumerate() {
        let _ = writeln!(s, "  {}. {c}", i + 1);
    }
    let _ = writeln!(s, "\n{files_heading}:");
    for f in files {
        match (&f.source, f.printable) {
            (FileSource::Copy(c), _) => {
                let _ = writeln!(s, "\n--- {} (copy of {})", f.name, c.path.display());
            }
            (FileSource::Text(_), false) => {
                let _ = writeln!(s, "\n--- {} (not shown: may hold secrets)", f.name);
            }
            (FileSource::Text(t), true) => {
                let _ = write!(s, "\n--- {}\n{t}", f.name);
            }
        }
    }
    // Scripts the agent may have written are shown, never obeyed by the terminal.
    crate::escape::escape_text(&s, true)
}

/// A script's label: relative to the project (`./x.sh`), home (`~/x.sh`), or absolute;
/// escaped, since it is printed and a project may name its scripts.
pub fn script_label(
    path: &std::path::Path,
    project_root: &std::path::Path,
    home: &std::path::Path,
) -> String {
    crate::escape::escape(&raw_script_label(path, project_root, home))
}

fn raw_script_label(
    path: &std::path::Path,
    project_root: &std::path::Path,
    home: &std::path::Path,
) -> String {
    if let Ok(rel) = path.strip_prefix(project_root) {
        format!("./{}", rel.display())
    } else if let Ok(rel) = path.strip_prefix(home) {
        format!("~/{}", rel.display())
    } else {
        path.display().to_string()
    }
}
