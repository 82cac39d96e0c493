//! The hand-over directory: scripts and environment for the guest, written on the host into
//! a private directory (0700, files 0600) that the VM mounts read-only. This is how values
//! and secrets reach the guest without appearing on any command line, and without extra
//! round trips to the VM.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::plan::{FileSource, HandoverFile};

/// Removes the directory when dropped.
#[derive(Debug)]
pub struct HandoverDir {
    dir: PathBuf,
}

impl HandoverDir {
    /// Creates `dir` (which must not exist yet) and writes `files` into it.
    pub fn create(dir: &Path, files: &[HandoverFile]) -> Result<HandoverDir> {
        HandoverDir::prepare_empty(dir)?;
        let handover = HandoverDir {
            dir: dir.to_path_buf(),
        };
        for f in files {
            handover.write(f)?;
        }
        Ok(handover)
    }

    /// Creates `dir` empty, for a clone booted before its session exists (the warm pool);
    /// the directory stays until the clone is deleted.
    pub fn prepare_empty(dir: &Path) -> Result<()> {
        if let Some(parent) = dir.parent() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .io_context("create", parent)?;
        }
        DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .io_context("create the hand-over directory", dir)
    }

    /// Writes `files` into `dir`, made empty by [`HandoverDir::prepare_empty`] and mounted in
    /// a clone that is already running.
    pub fn fill(dir: &Path, files: &[HandoverFile]) -> Result<HandoverDir> {
        let meta = fs::symlink_metadata(dir).io_context("read the hand-over directory", dir)?;
        if !meta.is_dir() || fs::read_dir(dir).io_context("read", dir)?.next().is_some() {
            return Err(crate::error::Error::failure(format!(
                "the hand-over directory {} of a pre-booted VM is not an empty directory",
                dir.display()
            ))
            .with_hint("run `claude-vm warm 0` to empty the pool, then try again"));
        }
        let handover = HandoverDir {
            dir: dir.to_path_buf(),
        };
        for f in files {
            handover.write(f)?;
        }
        Ok(handover)
    }

    fn write(&self, f: &HandoverFile) -> Result<()> {
        let path = self.dir.join(&f.name);
        let contents = match &f.source {
            FileSource::Text(t) => t.as_bytes().to_vec(),
            FileSource::Copy(src) => src.read()?,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .io_context("create", &path)?;
        file.write_all(&contents).io_context("write", &path)?;
        Ok(())
    }
}

impl Drop for HandoverDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_files_removed_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src.sh");
        fs::write(&src, "echo hi").unwrap();
        let dir = tmp.path().join("root/h1");
        let files = [
            HandoverFile {
                name: "env.sh".into(),
                source: FileSource::Text("export A=1\n".into()),
                printable: false,
            },
            HandoverFile {
                name: "runtime-1.sh".into(),
                source: FileSource::Copy(crate::plan::HostCopy::plain(src)),
                printable: true,
            },
        ];
        let h = HandoverDir::create(&dir, &files).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("env.sh")), 0o600);
        assert_eq!(
            fs::read_to_string(dir.join("runtime-1.sh")).unwrap(),
            "echo hi"
        );
        assert!(
            HandoverDir::create(&dir, &[]).is_err(),
            "never reuses a directory"
        );
        drop(h);
        assert!(!dir.exists());
    }
}
