//! Files written whole or not at all: a temporary file next to the target, then a rename.
//! A failed write (a full disk) removes the temporary file, so nothing zero-length is left.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result};

/// Writes `bytes` to `dir/name` atomically, creating `dir` (mode 0700 when new).
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    create_private_dir(dir)?;
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let target = dir.join(name);
    let written = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.flush()))
        .io_context("write", &tmp)
        .and_then(|()| fs::rename(&tmp, &target).io_context("write", &target));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
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
