//! The one way claude-vm writes a state file: whole or not at all. A temporary file with a
//! name of its own (two writers never share one) in the same directory, synced, then renamed
//! over the target. A failed write (a full disk) removes the temporary file, so nothing
//! zero-length is left.

use std::fs;
use std::io::Write;
use std::path::Path;

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
}
