//! The one way claude-vm writes a state file: whole or not at all. A temporary file with a
//! name of its own (two writers never share one) in the same directory, synced, then renamed
//! over the target. A failed write (a full disk) removes the temporary file, so nothing
//! zero-length is left.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

/// Writes `bytes` to `dir/name` atomically, creating `dir` (mode 0700 when new). The file is
/// the owner's only (0600).
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    create_private_dir(dir)?;
    let target = dir.join(name);
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .io_context("write a temporary file in", dir)?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .io_context("write", tmp.path())?;
    // On failure the temporary file is dropped, and with it removed.
    tmp.persist(&target)
        .map_err(|e| e.error)
        .io_context("write", &target)?;
    // The rename itself survives a crash once the directory is synced (best effort).
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The files `write` finished in `dir` whose names end in `.ext`, sorted: never a writer's
/// temporary file (hidden, and whole only once renamed), never a link or a directory.
pub fn written(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let suffix = format!(".{ext}");
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && name.ends_with(&suffix)
        })
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// `create_dir_all`, with the directories it creates readable by the owner only.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .io_context("create", dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_whole_files_and_leaves_no_temporary_file_on_failure() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        write(&dir, "x.json", b"{}").unwrap();
        assert_eq!(fs::read(dir.join("x.json")).unwrap(), b"{}");
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // The rename fails (a directory is in the way): the temporary file goes too.
        fs::create_dir_all(dir.join("y.json/inner")).unwrap();
        assert!(write(&dir, "y.json", b"{}").is_err());
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn written_lists_finished_files_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write(dir, "b.json", b"{}").unwrap();
        write(dir, "a.json", b"{}").unwrap();
        // What a writer holds before its rename: whole JSON under a hidden name.
        fs::write(dir.join(".c.json.Ab12Cd.tmp"), b"{}").unwrap();
        fs::write(dir.join(".d.json"), b"{}").unwrap();
        fs::write(dir.join("e.txt"), b"").unwrap();
        fs::create_dir(dir.join("f.json")).unwrap();
        std::os::unix::fs::symlink(dir.join("a.json"), dir.join("g.json")).unwrap();
        assert_eq!(
            written(dir, "json"),
            [dir.join("a.json"), dir.join("b.json")]
        );
        assert!(written(&dir.join("missing"), "json").is_empty());
    }
}
