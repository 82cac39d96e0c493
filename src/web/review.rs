//! What a session changed in its project, from git: a tree of the working state (tracked and
//! untracked files, ignored ones left out) written to the object database at the start and at
//! the end, and the diff between the two. The index, HEAD and refs are never touched, so the
//! user's own uncommitted changes from before the session are not counted and stay as they
//! were.

use std::path::Path;

use serde::Serialize;

/// The most of one file's diff kept, and of all of them.
const FILE_DIFF_MAX: usize = 256 << 10;
const TOTAL_DIFF_MAX: usize = 4 << 20;

/// A tree of the working state of the repository at `dir`, as a hex object id.
pub fn snapshot(dir: &Path) -> Result<String, String> {
    let repo = git2::Repository::discover(dir)
        .map_err(|e| format!("not a git repository: {}", e.message()))?;
    if repo.is_bare() {
        return Err("a bare repository has no working state".into());
    }
    // The repository's index read into memory; changed here and never written back.
    let mut index = repo
        .index()
        .map_err(|e| format!("cannot read the git index: {}", e.message()))?;
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .and_then(|()| index.update_all(["*"], None))
        .map_err(|e| format!("cannot read the working tree: {}", e.message()))?;
    let tree = index
        .write_tree_to(&repo)
        .map_err(|e| format!("cannot write the snapshot: {}", e.message()))?;
    Ok(tree.to_string())
}

#[derive(Debug, Serialize, PartialEq)]
pub struct FileChange {
    pub path: String,
    /// `added`, `modified`, `deleted`, `renamed`, `typechange`.
    pub status: String,
    pub binary: bool,
    /// The unified diff (headers included); cut at a limit, then `truncated`.
    pub diff: String,
    pub truncated: bool,
}

/// The changes from tree `from` to tree `to` in the repository at `dir`.
pub fn diff(dir: &Path, from: &str, to: &str) -> Result<Vec<FileChange>, String> {
    let repo = git2::Repository::discover(dir)
        .map_err(|e| format!("not a git repository: {}", e.message()))?;
    let tree = |id: &str| {
        git2::Oid::from_str(id)
            .and_then(|oid| repo.find_tree(oid))
            .map_err(|e| format!("snapshot {id} is gone: {}", e.message()))
    };
    let (a, b) = (tree(from)?, tree(to)?);
    let mut opts = git2::DiffOptions::new();
    opts.show_binary(false).context_lines(3);
    let d = repo
        .diff_tree_to_tree(Some(&a), Some(&b), Some(&mut opts))
        .map_err(|e| format!("cannot compare the snapshots: {}", e.message()))?;
    let mut out = Vec::new();
    let mut total = 0;
    for i in 0..d.deltas().len() {
        let Some(delta) = d.get_delta(i) else {
            continue;
        };
        let path = delta
            .new_file()
            .path()
            .or_else(|| delta.old_file().path())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let status = match delta.status() {
            git2::Delta::Added | git2::Delta::Untracked => "added",
            git2::Delta::Deleted => "deleted",
            git2::Delta::Renamed => "renamed",
            git2::Delta::Typechange => "typechange",
            _ => "modified",
        };
        let mut text = Vec::new();
        let mut binary = delta.flags().is_binary();
        if let Ok(Some(mut patch)) = git2::Patch::from_diff(&d, i) {
            binary = binary || patch.delta().flags().is_binary();
            if let Ok(buf) = patch.to_buf() {
                text = buf.to_vec();
            }
        }
        let room = FILE_DIFF_MAX.min(TOTAL_DIFF_MAX.saturating_sub(total));
        let truncated = text.len() > room;
        text.truncate(room);
        total += text.len();
        out.push(FileChange {
            path,
            status: status.to_owned(),
            binary,
            diff: String::from_utf8_lossy(&text).into_owned(),
            truncated,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    use crate::testing::git;

    #[test]
    fn only_what_changed_after_the_snapshot_counts_and_the_index_is_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        git(d, &["init", "-q"]);
        std::fs::write(d.join("a.txt"), "one\n").unwrap();
        std::fs::write(d.join("gone.txt"), "bye\n").unwrap();
        std::fs::write(d.join(".gitignore"), "target/\n").unwrap();
        git(d, &["add", "."]);
        git(d, &["commit", "-q", "-m", "init"]);
        // The user's own work before the session: not the session's.
        std::fs::write(d.join("a.txt"), "one\nmine\n").unwrap();
        std::fs::write(d.join("draft.txt"), "draft\n").unwrap();
        git(d, &["add", "draft.txt"]);
        let index = std::fs::read(d.join(".git/index")).unwrap();
        let head = std::fs::read(d.join(".git/HEAD")).unwrap();
        let start = snapshot(d).unwrap();
        assert_eq!(std::fs::read(d.join(".git/index")).unwrap(), index);

        std::fs::write(d.join("a.txt"), "one\nmine\nagent\n").unwrap();
        std::fs::write(d.join("new.txt"), "fresh\n").unwrap();
        std::fs::remove_file(d.join("gone.txt")).unwrap();
        std::fs::create_dir(d.join("target")).unwrap();
        std::fs::write(d.join("target/out"), "ignored\n").unwrap();
        let end = snapshot(d).unwrap();
        assert_eq!(std::fs::read(d.join(".git/index")).unwrap(), index);
        assert_eq!(std::fs::read(d.join(".git/HEAD")).unwrap(), head);

        let changes = diff(d, &start, &end).unwrap();
        let summary: Vec<(&str, &str)> = changes
            .iter()
            .map(|c| (c.path.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("a.txt", "modified"),
                ("gone.txt", "deleted"),
                ("new.txt", "added")
            ]
        );
        let a = &changes[0].diff;
        assert!(a.contains("+agent") && !a.contains("+mine"), "{a}");
        assert!(changes[2].diff.contains("+fresh"), "{}", changes[2].diff);
        assert_eq!(diff(d, &end, &end).unwrap(), []);
        // git status still shows the user's state as it was.
        let status = Command::new("git")
            .args(["status", "--porcelain"])
            .current_dir(d)
            .output()
            .unwrap();
        let status = String::from_utf8_lossy(&status.stdout);
        assert!(status.contains("A  draft.txt"), "{status}");
        assert!(status.contains("?? new.txt"), "{status}");
    }

    #[test]
    fn outside_git_it_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let e = snapshot(tmp.path()).unwrap_err();
        assert!(e.contains("not a git repository"), "{e}");
    }
}
