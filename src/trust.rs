//! Trust for project files that widen the sandbox, like `direnv allow`: the agent can write
//! the project folder, so a project `.claude-vm.toml` that mounts host directories outside
//! the project (or a project script that is a link out of it) could have been planted by a
//! previous session. Such a file is used only once `claude-vm trust` approved its exact
//! content (stored by sha256); any change needs approval again. `--yes` allows it once,
//! explicitly. The global `~/.claude-vm.toml` is the user's own and always trusted.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::config::Review;
use crate::config::Review as R;
use crate::digest::sha256_hex;
use crate::error::{Error, Result};
use crate::paths::HostPaths;
use crate::project::Project;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Approved,
    /// Approved once, changed since.
    Changed,
    Never,
}

#[derive(Debug, Serialize, Deserialize)]
struct Approval {
    path: PathBuf,
    digest: String,
    approved_at: u64,
}

/// Approvals, one small file per approved path, named by the path's hash.
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(paths: &HostPaths) -> Store {
        Store {
            dir: paths.trust_dir(),
        }
    }

    fn file(&self, path: &Path) -> PathBuf {
        let key = sha256_hex(path.as_os_str().as_encoded_bytes());
        self.dir.join(format!("{}.json", &key[..32]))
    }

    fn approval(&self, path: &Path) -> Option<Approval> {
        let text = fs::read_to_string(self.file(path)).ok()?;
        serde_json::from_str::<Approval>(&text)
            .ok()
            .filter(|a| a.path == path)
    }

    pub fn status(&self, review: &R) -> Status {
        match self.approval(&review.path) {
            Some(a) if a.digest == review.digest => Status::Approved,
            Some(_) => Status::Changed,
            None => Status::Never,
        }
    }

    pub fn approve(&self, review: &R) -> Result<()> {
        let approval = Approval {
            path: review.path.clone(),
            digest: review.digest.clone(),
            approved_at: crate::journal::now(),
        };
        let text = serde_json::to_string_pretty(&approval)
            .map_err(|e| Error::failure(format!("cannot encode the approval: {e}")))?;
        let file = self.file(&review.path);
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        crate::atomic::write(&self.dir, &name, text.as_bytes())
    }

    /// True if there was an approval to remove.
    pub fn revoke(&self, path: &Path) -> Result<bool> {
        let file = self.file(path);
        match fs::remove_file(&file) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("remove", &file, e)),
        }
    }
}

/// A project script (`.claude-vm.setup.sh`, `.claude-vm.runtime.sh`) that resolves outside
/// the project would copy a host file into the VM: it needs approval like a config file.
/// None when the script is missing or inside the project.
pub fn project_script(script: &Path, project: &Project) -> Option<R> {
    fs::symlink_metadata(script).ok()?;
    // What the file really is, read from one descriptor: the same reading the copy does.
    let (target, content) = match crate::hostfile::read_regular(script) {
        Ok(read) => read,
        Err(_) => (fs::canonicalize(script).ok()?, Vec::new()),
    };
    let inside = std::iter::once(&project.root)
        .chain(project.main_root.as_ref())
        .any(|r| target.starts_with(r));
    if inside {
        return None;
    }
    Some(R {
        path: script.to_path_buf(),
        digest: script_digest(&target, &content),
        widens: vec![format!(
            "is a link to {}, outside the project: its content would be copied into the VM",
            target.display()
        )],
    })
}

pub use crate::hostfile::script_digest;

/// The files of `reviews` that widen the sandbox and are not approved as they are now.
pub fn unapproved<'a>(store: &Store, reviews: &'a [R]) -> Vec<(&'a R, Status)> {
    reviews
        .iter()
        .filter(|r| !r.widens.is_empty())
        .map(|r| (r, store.status(r)))
        .filter(|(_, s)| *s != Status::Approved)
        .collect()
}

/// The error for files that are not approved, naming each file and what it would open up.
pub fn refusal(pending: &[(&R, Status)]) -> Error {
    let mut msg = String::new();
    for (i, (r, status)) in pending.iter().enumerate() {
        if i > 0 {
            msg.push('\n');
        }
        msg.push_str(&format!(
            "{} widens the sandbox and {}:",
            r.path.display(),
            match status {
                Status::Changed => "has changed since you approved it",
                _ => "has not been approved",
            }
        ));
        for w in &r.widens {
            msg.push_str(&format!("\n  - it {w}"));
        }
    }
    Error::usage(msg).with_hint(
        "the agent can write the project folder, so such a file runs only with your approval:\n\
         review it, then run `claude-vm trust` to approve its exact content\n\
         (or pass --yes to allow it this once)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(path: &str, digest: &str, widens: bool) -> R {
        R {
            path: path.into(),
            digest: digest.into(),
            widens: if widens {
                vec!["mounts /x into every session".into()]
            } else {
                vec![]
            },
        }
    }

    #[test]
    fn approval_is_for_the_exact_content() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store {
            dir: tmp.path().join("trust"),
        };
        let v1 = review("/p/.claude-vm.toml", "aaa", true);
        assert_eq!(store.status(&v1), Status::Never);
        assert_eq!(unapproved(&store, std::slice::from_ref(&v1)).len(), 1);
        store.approve(&v1).unwrap();
        assert_eq!(store.status(&v1), Status::Approved);
        assert!(unapproved(&store, std::slice::from_ref(&v1)).is_empty());
        let v2 = review("/p/.claude-vm.toml", "bbb", true);
        assert_eq!(store.status(&v2), Status::Changed);
        let err = refusal(&unapproved(&store, std::slice::from_ref(&v2)));
        assert!(err.message().contains("has changed since you approved it"));
        assert!(err.message().contains("- it mounts /x"));
        assert!(err.hint().unwrap().contains("claude-vm trust"));
        assert_eq!(
            store.status(&review("/q/.claude-vm.toml", "aaa", true)),
            Status::Never,
            "approval is per path"
        );
        assert!(
            unapproved(&store, &[review("/r/.claude-vm.toml", "x", false)]).is_empty(),
            "a file that does not widen needs nothing"
        );
        assert!(store.revoke(Path::new("/p/.claude-vm.toml")).unwrap());
        assert!(!store.revoke(Path::new("/p/.claude-vm.toml")).unwrap());
        assert_eq!(store.status(&v1), Status::Never);
    }

    #[test]
    fn a_project_script_linking_out_needs_approval() {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        let proj = root.join("p");
        fs::create_dir(&proj).unwrap();
        fs::write(root.join("secret"), "key").unwrap();
        let project = Project {
            root: proj.clone(),
            main_root: None,
            in_git: false,
        };
        let script = proj.join(".claude-vm.runtime.sh");
        assert_eq!(project_script(&script, &project), None, "missing");
        fs::write(&script, "echo hi").unwrap();
        assert_eq!(project_script(&script, &project), None, "inside");
        fs::remove_file(&script).unwrap();
        std::os::unix::fs::symlink(root.join("secret"), &script).unwrap();
        let r = project_script(&script, &project).expect("a link out");
        assert!(r.widens[0].contains("secret"), "{:?}", r.widens);
        fs::write(root.join("secret"), "other key").unwrap();
        assert_ne!(project_script(&script, &project).unwrap().digest, r.digest);
    }
}
