//! The main repository of each worktree, as claude-vm first saw it.
//!
//! A worktree names its main repository in files the agent can write: the worktree's `.git`
//! file (in the project) and `<main>/.git/worktrees/<id>/commondir` (the main repository is
//! mounted writable). So the main repository git reports is only believed when
//! - the main repository's own `worktrees/*/gitdir` points back at this worktree (an agent
//!   cannot write that into a repository the VM does not see), and
//! - it is the one remembered for this worktree the first time claude-vm ran there; a change
//!   is refused until the user accepts it with `claude-vm trust`.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::paths::HostPaths;
use crate::project::Project;

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Record {
    worktree: PathBuf,
    main: PathBuf,
}

/// What [`pin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// Not a worktree, or the same main repository as before.
    Unchanged,
    /// First seen: remembered now.
    Remembered,
    /// Changed, and the caller accepted it (`claude-vm trust`): the old main repository.
    Accepted(PathBuf),
}

fn record_path(paths: &HostPaths, worktree: &Path) -> PathBuf {
    let digest = crate::digest::sha256_hex(worktree.as_os_str().as_encoded_bytes());
    paths
        .worktrees_dir()
        .join(format!("{}.json", &digest[..32]))
}

/// Checks the project's main repository against the facts above. `accept` takes a changed
/// main repository as the new one (what `claude-vm trust` does); `record` is false for a dry
/// run, which writes nothing.
pub fn pin(paths: &HostPaths, project: &Project, accept: bool, record: bool) -> Result<Pin> {
    let Some(main) = &project.main_root else {
        return Ok(Pin::Unchanged);
    };
    verify_back_link(&project.root, main)?;
    let file = record_path(paths, &project.root);
    let remembered = read_record(&file, &project.root);
    let outcome = match remembered {
        Some(old) if &old == main => return Ok(Pin::Unchanged),
        Some(old) if !accept => {
            return Err(Error::usage(format!(
                "the worktree {} now names {} as its main repository; it was {} (its .git file or the main repository's worktrees/*/commondir changed, possibly from inside a VM)",
                project.root.display(),
                main.display(),
                old.display()
            ))
            .with_hint(
                "if you moved the repository yourself, run `claude-vm trust` in the worktree to accept the new main repository; otherwise restore the worktree's .git file and commondir (`git worktree repair`)",
            ));
        }
        Some(old) => Pin::Accepted(old),
        None => Pin::Remembered,
    };
    if record {
        write_record(
            &file,
            &Record {
                worktree: project.root.clone(),
                main: main.clone(),
            },
        )?;
    }
    Ok(outcome)
}

fn read_record(file: &Path, worktree: &Path) -> Option<PathBuf> {
    let text = fs::read_to_string(file).ok()?;
    let r: Record = serde_json::from_str(&text).ok()?;
    (r.worktree == worktree).then_some(r.main)
}

fn write_record(file: &Path, record: &Record) -> Result<()> {
    let text = serde_json::to_string_pretty(record)
        .map_err(|e| Error::failure(format!("cannot encode the worktree record: {e}")))?;
    let (dir, name) = (
        file.parent().unwrap_or(Path::new(".")),
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    crate::atomic::write(dir, &name, text.as_bytes())
}

/// The git directory of the main repository (`<main>/.git`, or `main` itself when bare).
fn common_dir(main: &Path) -> PathBuf {
    let dotgit = main.join(".git");
    if dotgit.is_dir() {
        dotgit
    } else {
        main.to_path_buf()
    }
}

/// The main repository must list this worktree: one of its `worktrees/<id>/gitdir` files
/// names `<worktree>/.git`.
fn verify_back_link(worktree: &Path, main: &Path) -> Result<()> {
    let want = worktree.join(".git");
    let entries = common_dir(main).join("worktrees");
    let listed = fs::read_dir(&entries)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let dir = e.path();
            let Ok(text) = fs::read_to_string(dir.join("gitdir")) else {
                return false;
            };
            let named = Path::new(text.trim_end_matches(['\n', '\r']));
            let named = if named.is_absolute() {
                named.to_path_buf()
            } else {
                dir.join(named)
            };
            fs::canonicalize(&named).is_ok_and(|p| p == want)
        });
    if listed {
        return Ok(());
    }
    Err(Error::usage(format!(
        "{} is not a worktree of {}: that repository does not list it (its .git file or commondir points elsewhere)",
        worktree.display(),
        main.display()
    ))
    .with_hint("restore the worktree's link to its own repository with `git worktree repair`, then run claude-vm again"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    use crate::testing::git;

    fn repo(dir: &Path) {
        fs::create_dir_all(dir).unwrap();
        git(dir, &["init", "-q", "-b", "main"]);
        fs::write(dir.join("f"), "x").unwrap();
        git(dir, &["add", "."]);
        git(dir, &["commit", "-q", "-m", "init"]);
    }

    fn paths(root: &Path) -> HostPaths {
        HostPaths {
            home: root.into(),
            data_dir: root.join("data"),
            lima_home: root.join("lima"),
        }
    }

    #[test]
    fn a_worktree_keeps_the_main_repository_it_was_first_seen_with() {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        let (main, other, wt) = (root.join("main"), root.join("other"), root.join("wt"));
        repo(&main);
        repo(&other);
        git(&main, &["worktree", "add", "-q", wt.to_str().unwrap()]);
        let p = paths(&root);
        let project = Project::discover(&wt).unwrap();
        assert_eq!(project.main_root.as_deref(), Some(main.as_path()));
        assert_eq!(pin(&p, &project, false, true).unwrap(), Pin::Remembered);
        assert_eq!(pin(&p, &project, false, true).unwrap(), Pin::Unchanged);

        // commondir pointed at another repository: that one does not list the worktree.
        let admin = main.join(".git/worktrees/wt");
        fs::write(
            admin.join("commondir"),
            format!("{}\n", other.join(".git").display()),
        )
        .unwrap();
        let moved = Project::discover(&wt).unwrap();
        assert_eq!(moved.main_root.as_deref(), Some(other.as_path()));
        let e = pin(&p, &moved, true, true).unwrap_err();
        assert!(e.message().contains("does not list it"), "{}", e.message());
        // A relative commondir is resolved the same way.
        fs::write(admin.join("commondir"), "../../../../other/.git\n").unwrap();
        let moved = Project::discover(&wt).unwrap();
        assert_eq!(moved.main_root.as_deref(), Some(other.as_path()));
        assert!(pin(&p, &moved, false, true).is_err());
        fs::write(admin.join("commondir"), "../..\n").unwrap();

        // Even when the other repository does list the worktree (its owner made it so), a new
        // main repository is refused until accepted.
        let forged = other.join(".git/worktrees/wt");
        fs::create_dir_all(other.join(".git/worktrees")).unwrap();
        let copied = Command::new("cp")
            .arg("-a")
            .arg(&admin)
            .arg(&forged)
            .status()
            .unwrap();
        assert!(copied.success());
        fs::write(wt.join(".git"), format!("gitdir: {}\n", forged.display())).unwrap();
        let moved = Project::discover(&wt).unwrap();
        assert_eq!(moved.main_root.as_deref(), Some(other.as_path()));
        let e = pin(&p, &moved, false, true).unwrap_err();
        assert!(e.message().contains("now names"), "{}", e.message());
        assert!(e.hint().unwrap_or_default().contains("claude-vm trust"));
        assert_eq!(
            pin(&p, &moved, true, true).unwrap(),
            Pin::Accepted(main.clone())
        );
        assert_eq!(pin(&p, &moved, false, true).unwrap(), Pin::Unchanged);
    }

    #[test]
    fn a_dry_run_remembers_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        let (main, wt) = (root.join("main"), root.join("wt"));
        repo(&main);
        git(&main, &["worktree", "add", "-q", wt.to_str().unwrap()]);
        let p = paths(&root);
        let project = Project::discover(&wt).unwrap();
        assert_eq!(pin(&p, &project, false, false).unwrap(), Pin::Remembered);
        assert!(!root.join("data/worktrees").exists());
    }
}
