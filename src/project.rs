//! The project a command runs for: its root, and for a git worktree the main repository.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// The directory the agent works in: the repository's work tree root (canonical), or the
    /// current directory outside git.
    pub root: PathBuf,
    /// For a linked worktree, the main repository (its work tree, or the bare git directory).
    /// It is mounted too, writable, so git inside the VM can update refs and objects.
    pub main_root: Option<PathBuf>,
    pub in_git: bool,
}

impl Project {
    /// Finds the project around `cwd`.
    pub fn discover(cwd: &Path) -> Result<Project> {
        let cwd = std::fs::canonicalize(cwd).io_context("resolve the current directory", cwd)?;
        let repo = match git2::Repository::discover(&cwd) {
            Ok(repo) => repo,
            Err(e) if e.code() == git2::ErrorCode::NotFound => {
                return Ok(Project {
                    root: cwd,
                    main_root: None,
                    in_git: false,
                });
            }
            Err(e) => {
                return Err(Error::failure(format!(
                    "cannot read the git repository around {}: {}",
                    cwd.display(),
                    e.message()
                ))
                .with_hint("check the repository with `git status`"));
            }
        };
        let Some(workdir) = repo.workdir() else {
            return Err(Error::usage(format!(
                "{} is inside a bare git repository, which has no work tree to mount",
                cwd.display()
            ))
            .with_hint("run claude-vm from a checkout or a worktree (`git worktree add`)"));
        };
        let root =
            std::fs::canonicalize(workdir).io_context("resolve the repository root", workdir)?;
        // Where the user stands is the one fact here nobody in a VM can change: a `.git` file
        // that names another repository's work tree must not move the project there.
        if !cwd.starts_with(&root) {
            return Err(Error::usage(format!(
                "the git repository of {} says its work tree is {}, which does not contain it (its .git file points elsewhere)",
                cwd.display(),
                root.display()
            ))
            .with_hint("restore the .git file (`git worktree repair` in the main repository), then run claude-vm again"));
        }
        let main_root = if repo.is_worktree() {
            let common = std::fs::canonicalize(repo.commondir())
                .io_context("resolve the main repository", repo.commondir())?;
            // `<main>/.git` for a normal repository, the directory itself when it is bare.
            let main = match common.file_name() {
                Some(n) if n == ".git" => common.parent().map(Path::to_path_buf).unwrap_or(common),
                _ => common,
            };
            (main != root).then_some(main)
        } else {
            None
        };
        Ok(Project {
            root,
            main_root,
            in_git: true,
        })
    }

    /// The repository the template belongs to: the main repository for a worktree, so all
    /// worktrees of one repository share one template.
    pub fn identity(&self) -> &Path {
        self.main_root.as_deref().unwrap_or(&self.root)
    }

    pub fn config_file(&self) -> PathBuf {
        self.root.join(".claude-vm.toml")
    }

    /// The main repository's config, for a worktree whose main repository has a work tree.
    pub fn main_config_file(&self) -> Option<PathBuf> {
        self.main_root
            .as_ref()
            .map(|m| m.join(".claude-vm.toml"))
            .filter(|f| f != &self.config_file())
    }

    pub fn setup_script(&self) -> PathBuf {
        self.root.join(".claude-vm.setup.sh")
    }

    pub fn runtime_script(&self) -> PathBuf {
        self.root.join(".claude-vm.runtime.sh")
    }
}

/// Claude Code's folder name for a project path in `~/.claude/projects`: every UTF-16 code
/// unit that is not an ASCII letter or digit becomes `-`. Names longer than 200 are cut and
/// given a hash that depends on how Claude Code was built, so they are not computed here.
pub fn claude_project_folder(path: &str) -> Option<String> {
    const MAX: usize = 200;
    let encoded: String = path
        .encode_utf16()
        .map(|u| match u8::try_from(u) {
            Ok(b) if b.is_ascii_alphanumeric() => b as char,
            _ => '-',
        })
        .collect();
    (encoded.len() <= MAX).then_some(encoded)
}

/// Whether a project script (`.claude-vm.setup.sh`, `.claude-vm.runtime.sh`) is there; one
/// that is a FIFO, a device or huge is refused, not skipped (and never read).
pub fn script_present(path: &std::path::Path) -> Result<bool> {
    crate::fsread::present(path, crate::fsread::SCRIPT_MAX).map_err(|e| {
        Error::usage(format!("cannot use {}: {e}", path.display()))
            .with_hint("make it a regular file, or remove it")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::git;

    fn init_repo(dir: &Path) {
        git(dir, &["init", "-q", "-b", "main"]);
        git(
            dir,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "i",
            ],
        );
    }

    #[test]
    fn plain_directory_is_its_own_project() {
        let tmp = tempfile::tempdir().unwrap();
        let p = Project::discover(tmp.path()).unwrap();
        assert_eq!(p.root, std::fs::canonicalize(tmp.path()).unwrap());
        assert!(!p.in_git);
        assert_eq!(p.main_root, None);
    }

    #[test]
    fn subdirectory_of_a_repository_finds_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo with space");
        std::fs::create_dir_all(repo.join("a/b")).unwrap();
        init_repo(&repo);
        let p = Project::discover(&repo.join("a/b")).unwrap();
        assert_eq!(p.root, std::fs::canonicalize(&repo).unwrap());
        assert!(p.in_git);
        assert_eq!(p.identity(), p.root.as_path());
    }

    #[test]
    fn worktree_knows_its_main_repository() {
        let tmp = tempfile::tempdir().unwrap();
        let main = tmp.path().join("main");
        std::fs::create_dir(&main).unwrap();
        init_repo(&main);
        let wt = tmp.path().join("wt");
        git(&main, &["worktree", "add", "-q", wt.to_str().unwrap()]);
        let p = Project::discover(&wt).unwrap();
        assert_eq!(p.root, std::fs::canonicalize(&wt).unwrap());
        assert_eq!(
            p.main_root.as_deref(),
            Some(std::fs::canonicalize(&main).unwrap().as_path())
        );
        assert_eq!(p.identity(), std::fs::canonicalize(&main).unwrap());
        assert_eq!(
            p.main_config_file(),
            Some(
                std::fs::canonicalize(&main)
                    .unwrap()
                    .join(".claude-vm.toml")
            )
        );
    }

    #[test]
    fn conversation_folder_matches_claude_code() {
        assert_eq!(
            claude_project_folder("/Users/me/my_proj.v2").as_deref(),
            Some("-Users-me-my-proj-v2")
        );
        // One dash per UTF-16 unit: 'é' is one unit, an emoji two.
        assert_eq!(
            claude_project_folder("/a/é\u{1F600}").as_deref(),
            Some("-a----")
        );
        assert_eq!(
            claude_project_folder(&format!("/{}", "a".repeat(199))).map(|s| s.len()),
            Some(200)
        );
        assert_eq!(
            claude_project_folder(&format!("/{}", "a".repeat(200))),
            None
        );
    }
}
