//! The host-execution audit. The project folder (and a worktree's main repository) is
//! writable by the agent, so a session can plant something the *host* runs later: a git hook,
//! a git config key that runs a command, claude-vm's own config and scripts, a direnv file.
//! A snapshot before the session and one after, both taken on the host (no limactl call),
//! show what changed; the changes are reported loudly.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::project::Project;
use crate::ui::Ui;

/// Where to look, resolved once before the session.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Work trees whose top-level files matter (the project, a worktree's main repository).
    roots: Vec<PathBuf>,
    /// The shared git directory (`.git` of the main repository): hooks and config.
    common_dir: Option<PathBuf>,
    /// A worktree's own git directory (`.git/worktrees/NAME`): its config.worktree.
    worktree_dir: Option<PathBuf>,
    /// Where a relative core.hooksPath starts.
    work_tree: PathBuf,
    /// What `~` in core.hooksPath means.
    home: PathBuf,
}

/// What each watched item looked like: a label and a fingerprint or value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot(BTreeMap<String, String>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub what: String,
    pub how: &'static str,
}

/// Files at a work tree's top level that the host runs: direnv's `.envrc`, claude-vm's own
/// configuration and scripts.
fn is_host_file(name: &str) -> bool {
    name == ".envrc"
        || name == ".claude-vm.toml"
        || (name.starts_with(".claude-vm.") && name.ends_with(".sh"))
}

/// Git configuration keys (lower-cased as git normalises them) whose value git runs, or
/// that make git read more configuration. `alias.*` counts only for `!` (shell) aliases.
fn runs_commands(key: &str, value: &str) -> bool {
    const EXACT: &[&str] = &[
        "core.hookspath",
        "core.fsmonitor",
        "core.sshcommand",
        "core.pager",
        "core.editor",
        "core.askpass",
        "core.gitproxy",
        "sequence.editor",
        "diff.external",
        "gpg.program",
        "credential.helper",
        "include.path",
        "uploadpack.packobjectshook",
    ];
    let (section, rest) = key.split_once('.').unwrap_or((key, ""));
    let last = key.rsplit('.').next().unwrap_or("");
    EXACT.contains(&key)
        || (section == "alias" && value.trim_start().starts_with('!'))
        || (section == "filter" && matches!(last, "clean" | "smudge" | "process"))
        || (section == "diff" && matches!(last, "textconv" | "command"))
        || (section == "merge" && last == "driver")
        || (matches!(section, "difftool" | "mergetool") && last == "cmd")
        || (section == "credential" && last == "helper")
        || (section == "gpg" && last == "program")
        || (section == "includeif" && last == "path")
        || (section == "pager" && !rest.is_empty())
}

impl Watch {
    pub fn new(project: &Project, home: &Path) -> Watch {
        let mut roots = vec![project.root.clone()];
        roots.extend(project.main_root.iter().cloned());
        let (common_dir, worktree_dir) = match git2::Repository::open(&project.root) {
            Ok(repo) => {
                let common = repo.commondir().to_path_buf();
                let own = repo.path().to_path_buf();
                let own = (own != common).then_some(own);
                (Some(common), own)
            }
            Err(_) => (None, None),
        };
        Watch {
            roots,
            common_dir,
            worktree_dir,
            work_tree: project.root.clone(),
            home: home.to_path_buf(),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut s = BTreeMap::new();
        for root in &self.roots {
            for path in dir_files(root).into_iter().filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(is_host_file)
            }) {
                s.insert(path.display().to_string(), file_digest(&path));
            }
        }
        let mut hook_dirs = Vec::new();
        if let Some(common) = &self.common_dir {
            hook_dirs.push(common.join("hooks"));
            for file in [common.join("config"), common.join("config.worktree")] {
                config_keys(&file, &mut s, &mut hook_dirs, self);
            }
        }
        if let Some(own) = &self.worktree_dir {
            config_keys(&own.join("config.worktree"), &mut s, &mut hook_dirs, self);
        }
        for dir in hook_dirs {
            for hook in dir_files(&dir) {
                s.insert(hook.display().to_string(), file_digest(&hook));
            }
        }
        Snapshot(s)
    }
}

fn dir_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| !m.is_dir()))
        .collect();
    v.sort();
    v
}

/// Content and executable bit; a symlink by its target.
fn file_digest(path: &Path) -> String {
    let meta = fs::symlink_metadata(path);
    if meta.as_ref().is_ok_and(|m| m.file_type().is_symlink()) {
        let target = fs::read_link(path).unwrap_or_default();
        return format!("symlink to {}", target.display());
    }
    let mode = meta.map(|m| m.permissions().mode() & 0o111).unwrap_or(0);
    match fs::read(path) {
        Ok(bytes) => format!("sha256:{:x} exec:{mode:o}", Sha256::digest(&bytes)),
        Err(e) => format!("unreadable: {}", e.kind()),
    }
}

/// Records the command-running keys of one git config file; collects hook directories.
fn config_keys(
    file: &Path,
    out: &mut BTreeMap<String, String>,
    hook_dirs: &mut Vec<PathBuf>,
    watch: &Watch,
) {
    if !file.exists() {
        return;
    }
    let label = file.display().to_string();
    let Ok(config) = git2::Config::open(file) else {
        // Git itself would refuse such a file; still, a change to it must show.
        out.insert(format!("{label} (unparsable)"), file_digest(file));
        return;
    };
    let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Ok(mut entries) = config.entries(None) {
        while let Some(Ok(entry)) = entries.next() {
            let (Some(name), Some(value)) = (entry.name(), entry.value()) else {
                continue;
            };
            let key = lower_key(name);
            if runs_commands(&key, value) {
                values.entry(key).or_default().push(value.to_owned());
            }
        }
    }
    for (key, vals) in values {
        if key == "core.hookspath" {
            for v in &vals {
                let p = crate::paths::expand_tilde(v, &watch.home);
                hook_dirs.push(if p.is_absolute() {
                    p
                } else {
                    watch.work_tree.join(p)
                });
            }
        }
        out.insert(format!("{label}: {key}"), vals.join("\n"));
    }
}

/// Git's key normalisation: section and variable names are case-insensitive, a subsection
/// (between the first and last dot) is not.
fn lower_key(name: &str) -> String {
    match (name.find('.'), name.rfind('.')) {
        (Some(first), Some(last)) if first != last => format!(
            "{}{}{}",
            name[..first].to_ascii_lowercase(),
            &name[first..last],
            name[last..].to_ascii_lowercase()
        ),
        _ => name.to_ascii_lowercase(),
    }
}

pub fn changes(before: &Snapshot, after: &Snapshot) -> Vec<Change> {
    let mut out = Vec::new();
    for (what, old) in &before.0 {
        match after.0.get(what) {
            None => out.push(Change {
                what: what.clone(),
                how: "removed",
            }),
            Some(new) if new != old => out.push(Change {
                what: describe(what, new),
                how: "changed",
            }),
            Some(_) => {}
        }
    }
    for (what, new) in &after.0 {
        if !before.0.contains_key(what) {
            out.push(Change {
                what: describe(what, new),
                how: "added",
            });
        }
    }
    out.sort_by(|a, b| a.what.cmp(&b.what));
    out
}

/// A config key shows its new value (that is what will run); a file just its name.
fn describe(what: &str, value: &str) -> String {
    if what.contains(": ") {
        format!("{what} = {value:?}")
    } else {
        what.to_owned()
    }
}

/// Loud, never hidden by --quiet: the user has to look before running git or claude-vm here.
pub fn report(ui: &Ui, changes: &[Change]) {
    if changes.is_empty() {
        return;
    }
    let mut lines: Vec<String> = changes
        .iter()
        .map(|c| format!("{:<8} {}", c.how, c.what))
        .collect();
    lines.push(
        "the agent can write there; review these before you run git, direnv or claude-vm in this project again"
            .into(),
    );
    ui.alert("this session changed files that run on your host:", &lines);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_git_keys_run_commands() {
        for (k, v) in [
            ("core.hookspath", "x"),
            ("core.fsmonitor", "x"),
            ("core.sshcommand", "ssh -i k"),
            ("alias.st", "!rm -rf ~"),
            ("filter.lfs.smudge", "x"),
            ("filter.lfs.process", "x"),
            ("diff.pdf.textconv", "x"),
            ("merge.ours.driver", "x"),
            ("credential.https://x.helper", "x"),
            ("includeif.gitdir:/x/.path", "x"),
            ("pager.log", "x"),
        ] {
            assert!(runs_commands(k, v), "{k}");
        }
        for (k, v) in [
            ("alias.st", "status -s"),
            ("user.name", "x"),
            ("branch.main.remote", "origin"),
            ("remote.origin.url", "x"),
            ("filter.lfs.required", "true"),
        ] {
            assert!(!runs_commands(k, v), "{k}");
        }
    }

    #[test]
    fn keys_normalise_like_git() {
        assert_eq!(lower_key("Core.HooksPath"), "core.hookspath");
        assert_eq!(lower_key("Filter.MyFilter.Clean"), "filter.MyFilter.clean");
    }

    #[test]
    fn changes_are_added_changed_removed() {
        let a = Snapshot(BTreeMap::from([
            ("/p/.envrc".to_string(), "1".to_string()),
            ("/p/.git/config: core.pager".to_string(), "less".to_string()),
            ("/p/.git/hooks/x".to_string(), "1".to_string()),
        ]));
        let b = Snapshot(BTreeMap::from([
            ("/p/.envrc".to_string(), "2".to_string()),
            ("/p/.git/config: core.pager".to_string(), "evil".to_string()),
            ("/p/.git/hooks/y".to_string(), "1".to_string()),
        ]));
        let c = changes(&a, &b);
        let text: Vec<String> = c.iter().map(|c| format!("{} {}", c.how, c.what)).collect();
        assert_eq!(
            text,
            [
                "changed /p/.envrc",
                "changed /p/.git/config: core.pager = \"evil\"",
                "removed /p/.git/hooks/x",
                "added /p/.git/hooks/y",
            ]
        );
        assert!(changes(&a, &a).is_empty());
    }
}
