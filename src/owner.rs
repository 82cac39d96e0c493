//! Which VMs claude-vm may delete: only those it provably made. Right after `create` or
//! `clone` succeeds, claude-vm writes a mark into the VM's own directory
//! (`$LIMA_HOME/<name>/claude-vm.owner`, no limactl call) naming the claude-vm data
//! directory that made it; `rename` keeps it, and a clone's copy is overwritten with the
//! clone's own. The role comes from the name (`names::parse`). Before anything it found
//! (journal, `limactl list`, the pool) is deleted, the name must be ours and the mark must
//! be this data directory's: a VM marked by another data directory (another
//! `XDG_DATA_HOME` sharing `$LIMA_HOME`) or not marked at all stays, unless the user names it
//! with `--force NAME`.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::names;
use crate::paths::HostPaths;

pub const FILE: &str = "claude-vm.owner";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Mark {
    /// The claude-vm data directory (canonical) whose journal and records own the VM.
    data_dir: PathBuf,
    /// The name the VM was created (or cloned) as.
    created_as: String,
}

/// What the mark of a VM says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Marked by this data directory.
    Ours,
    /// Marked by another data directory.
    Other(PathBuf),
    /// No (readable) mark: not made by claude-vm, or by one before marks.
    Unmarked,
}

fn data_dir(paths: &HostPaths) -> PathBuf {
    fs::canonicalize(&paths.data_dir).unwrap_or_else(|_| paths.data_dir.clone())
}

fn mark_path(paths: &HostPaths, instance: &str) -> Option<PathBuf> {
    // Only a plain instance name can be joined to $LIMA_HOME (a journal entry could name
    // anything, `../x` included).
    names::is_valid_lima_name(instance).then(|| paths.lima_home.join(instance).join(FILE))
}

/// Marks `instance` (which this process just created or cloned) as this data directory's.
pub fn mark(paths: &HostPaths, instance: &str) -> Result<()> {
    let path = mark_path(paths, instance)
        .ok_or_else(|| Error::failure(format!("{instance:?} is not a Lima instance name")))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(&paths.data_dir).io_context("create", &paths.data_dir)?;
    let text = serde_json::to_string(&Mark {
        data_dir: data_dir(paths),
        created_as: instance.to_owned(),
    })
    .map_err(|e| Error::failure(format!("cannot encode the owner mark: {e}")))?;
    crate::atomic::write(dir, FILE, text.as_bytes())
}

/// Who marked `instance`.
pub fn owner(paths: &HostPaths, instance: &str) -> Owner {
    let Some(path) = mark_path(paths, instance) else {
        return Owner::Unmarked;
    };
    // Never through a link; a FIFO or a huge file is no mark.
    if !fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file()) {
        return Owner::Unmarked;
    }
    let Ok(text) = crate::fsread::small_regular_file(&path, 64 * 1024) else {
        return Owner::Unmarked;
    };
    match serde_json::from_str::<Mark>(&text) {
        Ok(m) if m.data_dir == data_dir(paths) => Owner::Ours,
        Ok(m) => Owner::Other(m.data_dir),
        Err(_) => Owner::Unmarked,
    }
}

/// Why `instance` may not be deleted (None: it may): its name is not one claude-vm makes, or
/// its mark is not this data directory's.
pub fn refusal(paths: &HostPaths, instance: &str) -> Option<String> {
    if names::parse(instance).is_none() {
        return Some("its name is not one claude-vm makes".to_owned());
    }
    match owner(paths, instance) {
        Owner::Ours => None,
        Owner::Other(dir) => Some(format!(
            "it belongs to another claude-vm data directory ({})",
            dir.display()
        )),
        Owner::Unmarked => Some(
            "it carries no claude-vm owner mark (made by hand or by an older claude-vm)".to_owned(),
        ),
    }
}

/// A name as printed: a valid Lima name as it is, anything else (from a journal entry)
/// quoted and escaped.
fn shown(name: &str) -> String {
    if names::is_valid_lima_name(name) {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

/// The names among `names` that may be deleted: ours by name and mark, or named in `forced`.
/// The others are reported once each to `warn`, with how to delete them anyway.
pub fn deletable(
    paths: &HostPaths,
    warn: &dyn Fn(&str),
    names: &[String],
    forced: &[String],
) -> Vec<String> {
    let mut out = Vec::new();
    for name in names {
        match refusal(paths, name) {
            Some(_) if forced.contains(name) => out.push(name.clone()),
            None => out.push(name.clone()),
            Some(why) => {
                let shown = shown(name);
                warn(&format!(
                    "not deleting {shown}: {why}\n  if it is claude-vm's and unused, `claude-vm gc --force {shown}` deletes it"
                ))
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(tmp: &Path, data: &str) -> HostPaths {
        HostPaths {
            home: tmp.to_path_buf(),
            data_dir: tmp.join(data),
            lima_home: tmp.join("lima"),
        }
    }

    #[test]
    fn marks_belong_to_one_data_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let a = paths(tmp.path(), "a");
        let b = paths(tmp.path(), "b");
        let name = "claude-vm-app-0123abcd";
        fs::create_dir_all(a.lima_home.join(name)).unwrap();
        assert_eq!(owner(&a, name), Owner::Unmarked);
        assert!(refusal(&a, name)
            .unwrap()
            .contains("no claude-vm owner mark"));
        mark(&a, name).unwrap();
        assert_eq!(owner(&a, name), Owner::Ours);
        assert_eq!(refusal(&a, name), None);
        assert!(matches!(owner(&b, name), Owner::Other(_)));
        assert!(refusal(&b, name)
            .unwrap()
            .contains("another claude-vm data directory"));
        // Not our kind of name, or not a name at all: refused whatever the mark says.
        assert!(refusal(&a, "default").is_some());
        assert_eq!(owner(&a, "../claude-vm-app-0123abcd"), Owner::Unmarked);
    }

    #[test]
    fn a_linked_mark_is_no_mark() {
        let tmp = tempfile::tempdir().unwrap();
        let a = paths(tmp.path(), "a");
        let real = "claude-vm-app-0123abcd";
        let other = "claude-vm-bbb-0123abcd";
        fs::create_dir_all(a.lima_home.join(real)).unwrap();
        fs::create_dir_all(a.lima_home.join(other)).unwrap();
        mark(&a, real).unwrap();
        std::os::unix::fs::symlink(
            a.lima_home.join(real).join(FILE),
            a.lima_home.join(other).join(FILE),
        )
        .unwrap();
        assert_eq!(owner(&a, other), Owner::Unmarked);
    }
}
