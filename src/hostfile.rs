//! Reading a host file that claude-vm copies into a VM, so that what is copied is what was
//! checked. A path inside a folder the agent can write may be swapped for a link to any host
//! file at any moment (by a session of the same project), so the file is opened once, the
//! opened file itself says where it really is (`/proc/self/fd` on Linux, `F_GETPATH` on
//! macOS), and its bytes are read from that descriptor.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A host file to copy, and what it may resolve to when it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCopy {
    pub path: PathBuf,
    /// Folders the agent can write (the project, a worktree's main repository, writable
    /// mounts). A path inside one of them must still lead inside one when read.
    pub confined_to: Vec<PathBuf>,
    /// The approved digest (`trust::project_script`) of a path that led outside them when it
    /// was checked: then it may lead there only with that exact content.
    pub approved: Option<String>,
}

impl HostCopy {
    /// A file that is copied as it is (nothing confines it).
    pub fn plain(path: PathBuf) -> HostCopy {
        HostCopy {
            path,
            confined_to: Vec::new(),
            approved: None,
        }
    }

    /// The bytes to copy, read once from the file that was checked.
    pub fn read(&self) -> Result<Vec<u8>> {
        let (target, bytes) = read_regular(&self.path)?;
        let inside = |p: &Path| self.confined_to.iter().any(|r| p.starts_with(r));
        if inside(&self.path) && !inside(&target) {
            let digest = script_digest(&target, &bytes);
            if self.approved.as_deref() != Some(digest.as_str()) {
                return Err(Error::failure(format!(
                    "{} now leads to {}, outside the project (it changed after claude-vm checked it, possibly from inside a VM); it was not copied",
                    self.path.display(),
                    target.display()
                ))
                .with_hint("look at what replaced it; `claude-vm trust` approves a link out of the project you made yourself"));
            }
        }
        Ok(bytes)
    }
}

/// Opens `path` once and returns where it really is and its bytes: a regular file of at most
/// `fsread::SCRIPT_MAX` bytes, never a FIFO or a device (opened without blocking, never read).
pub fn read_regular(path: &Path) -> Result<(PathBuf, Vec<u8>)> {
    let max = crate::fsread::SCRIPT_MAX;
    let refused = |e: std::io::Error| {
        Error::usage(format!("cannot use {}: {e}", path.display()))
            .with_hint("a script must be a regular file")
    };
    let file = crate::fsread::open_regular(path, max).map_err(refused)?;
    let target = opened_path(&file).unwrap_or_else(|| path.to_path_buf());
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", path, e))?;
    if bytes.len() as u64 > max {
        return Err(Error::usage(format!(
            "{} grew while it was read",
            path.display()
        )));
    }
    Ok((target, bytes))
}

/// A directory claude-vm mounts, as it is now: (device, inode). Its path and every folder
/// above it must be real directories, not links: a canonical path that holds a link now was
/// changed after it was resolved.
pub fn dir_identity(path: &Path) -> Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut here = PathBuf::new();
    let mut last = None;
    for part in path.components() {
        here.push(part);
        let meta = std::fs::symlink_metadata(&here).map_err(|e| Error::io("read", &here, e))?;
        if meta.file_type().is_symlink() {
            return Err(Error::failure(format!(
                "{} is now a link (it was resolved to a folder before; something changed it, possibly from inside a VM): nothing is mounted from there",
                here.display()
            ))
            .with_hint("look at what replaced it, then run claude-vm again"));
        }
        last = Some(meta);
    }
    match last {
        Some(m) if m.is_dir() => Ok((m.dev(), m.ino())),
        _ => Err(
            Error::failure(format!("{} is not a folder", path.display()))
                .with_hint("a mount must be a folder"),
        ),
    }
}

/// [`dir_identity`] of each folder, in order.
pub fn dir_identities(dirs: &[PathBuf]) -> Result<Vec<(u64, u64)>> {
    dirs.iter().map(|d| dir_identity(d)).collect()
}

/// The path of the file behind an open descriptor.
#[cfg(target_os = "linux")]
fn opened_path(file: &File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
}

#[cfg(target_os = "macos")]
fn opened_path(file: &File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: F_GETPATH writes at most PATH_MAX bytes into the buffer.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETPATH, buf.as_mut_ptr()) };
    if rc == -1 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0)?;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(&buf[..end])))
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn opened_path(_file: &File) -> Option<PathBuf> {
    None
}

/// What an approval of a script that leads out of the project covers: where it leads and
/// its exact bytes.
pub fn script_digest(target: &Path, content: &[u8]) -> String {
    let mut bytes = target.as_os_str().as_encoded_bytes().to_vec();
    bytes.push(0);
    bytes.extend_from_slice(content);
    crate::digest::sha256_hex(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swapped_link_out_of_the_project_is_not_copied() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let project = root.join("proj");
        std::fs::create_dir_all(&project).unwrap();
        std::fs::write(root.join("secret"), "host secret").unwrap();
        let script = project.join("rt.sh");
        std::fs::write(&script, "echo ok").unwrap();
        let copy = HostCopy {
            path: script.clone(),
            confined_to: vec![project.clone()],
            approved: None,
        };
        assert_eq!(copy.read().unwrap(), b"echo ok");
        std::fs::remove_file(&script).unwrap();
        std::os::unix::fs::symlink(root.join("secret"), &script).unwrap();
        let e = copy.read().unwrap_err();
        assert!(
            e.message().contains("outside the project"),
            "{}",
            e.message()
        );
        // An approved link with the approved content is fine; other content is not.
        let approved = HostCopy {
            approved: Some(script_digest(&root.join("secret"), b"host secret")),
            ..copy.clone()
        };
        assert_eq!(approved.read().unwrap(), b"host secret");
        std::fs::write(root.join("secret"), "changed").unwrap();
        assert!(approved.read().is_err());
        // A link that stays inside the project is fine.
        std::fs::write(project.join("real.sh"), "echo real").unwrap();
        std::fs::remove_file(&script).unwrap();
        std::os::unix::fs::symlink("real.sh", &script).unwrap();
        assert_eq!(copy.read().unwrap(), b"echo real");
    }

    #[test]
    fn fifos_devices_and_huge_files_are_refused_unread() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_regular(&fifo).unwrap_err();
        assert!(
            e.message().contains("not a regular file"),
            "{}",
            e.message()
        );
        let e = read_regular(Path::new("/dev/zero")).unwrap_err();
        assert!(
            e.message().contains("not a regular file"),
            "{}",
            e.message()
        );
        let big = tmp.path().join("big");
        let f = File::create(&big).unwrap();
        f.set_len(crate::fsread::SCRIPT_MAX + 1).unwrap();
        let e = read_regular(&big).unwrap_err();
        assert!(e.message().contains("more than the"), "{}", e.message());
    }
}
