//! File-tree helpers: Lima's clone/rename walk, `cp -a` for the guest disk,
//! and removal that a guest's odd permissions cannot block.

use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::fail::{Fail, Res};
use crate::sys;

/// Removes a tree even if the guest left read-only or 000 directories in it
/// (a real guest disk is one file, so Lima's delete always succeeds).
pub fn remove_all(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return std::fs::remove_file(path);
    }
    if std::fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    // Make every directory writable and searchable, then try again.
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_all(&entry.path())?;
            }
        }
    }
    std::fs::remove_dir_all(path)
}

/// Empties a directory, keeping the directory itself.
pub fn clear_dir(path: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(path)? {
        remove_all(&entry?.path())?;
    }
    Ok(())
}

/// `cp -a SRC DST`: keeps modes, owners, symlinks, devices (overlay
/// whiteouts) and xattrs (opaque directories), with copy-on-write if possible.
pub fn copy_archive(src: &Path, dst: &Path) -> Res<()> {
    let mut cmd = Command::new("cp");
    cmd.arg("-a");
    if cfg!(target_os = "linux") {
        cmd.arg("--reflink=auto");
        die_with_parent(&mut cmd);
    }
    let out = cmd
        .arg(src)
        .arg(dst)
        .output()
        .map_err(|e| Fail::fatal(format!("failed to run cp: {e}")))?;
    if !out.status.success() {
        return Err(Fail::fatal(format!(
            "failed to copy {:?} to {:?}: {}",
            src,
            dst,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Lima copies in its own process, so a killed `limactl clone` stops copying. A `cp` left
/// running would write into an instance directory after its delete (a "Broken" instance).
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: prctl and getppid are async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other("limactl exited before cp started"));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_: &mut Command) {}

/// What Lima's clone walk does with one directory entry.
pub enum Action {
    Skip,
    /// Create an empty file instead (`vz-identifier`).
    Nullify,
    /// Copy (or move) as one unit with `cp -a` (the guest disk).
    Whole,
    Copy,
}

/// Lima's `CloneOrRename` walk over the instance directory. `classify`
/// decides per entry (by base name); regular files keep their mode.
pub fn clone_tree(
    src: &Path,
    dst: &Path,
    rename: bool,
    classify: &dyn Fn(&str) -> Action,
) -> Res<()> {
    let mut entries: Vec<_> = std::fs::read_dir(src)
        .map_err(|e| Fail::path("open", src, &e))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&from).map_err(|e| Fail::path("lstat", &from, &e))?;
        match classify(&name) {
            Action::Skip => continue,
            Action::Nullify => {
                std::fs::write(&to, b"").map_err(|e| Fail::path("open", &to, &e))?;
                continue;
            }
            Action::Whole if rename => {
                std::fs::rename(&from, &to).map_err(|e| Fail::path("rename", &from, &e))?;
                continue;
            }
            Action::Whole => {
                copy_archive(&from, &to)?;
                continue;
            }
            Action::Copy => {}
        }
        if meta.is_dir() {
            std::fs::create_dir_all(&to).map_err(|e| Fail::path("mkdir", &to, &e))?;
            std::fs::set_permissions(&to, meta.permissions())
                .map_err(|e| Fail::path("chmod", &to, &e))?;
            clone_tree(&from, &to, rename, classify)?;
        } else if rename {
            std::fs::rename(&from, &to).map_err(|e| Fail::path("rename", &from, &e))?;
        } else if meta.file_type().is_symlink() {
            let target =
                std::fs::read_link(&from).map_err(|e| Fail::path("readlink", &from, &e))?;
            symlink(&target, &to).map_err(|e| Fail::path("symlink", &to, &e))?;
        } else {
            std::fs::copy(&from, &to).map_err(|e| {
                Fail::fatal(format!(
                    "copy {}: {}",
                    from.display(),
                    sys::go_errno_text(&e)
                ))
            })?;
        }
    }
    Ok(())
}

pub fn mkdir_all(path: &Path) -> Res<()> {
    std::fs::create_dir_all(path).map_err(|e| Fail::path("mkdir", path, &e))
}

pub fn chmod(path: &Path, mode: u32) -> Res<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Fail::path("chmod", path, &e))
}

/// Replaces whatever is at `link` with a symlink to `target`.
pub fn force_symlink(target: &Path, link: &Path) -> Res<()> {
    match std::fs::symlink_metadata(link) {
        Ok(_) => std::fs::remove_file(link).map_err(|e| Fail::path("remove", link, &e))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Fail::path("lstat", link, &e)),
    }
    symlink(target, link).map_err(|e| Fail::path("symlink", link, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_all_handles_locked_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let locked = tmp.path().join("a/b");
        std::fs::create_dir_all(&locked).unwrap();
        std::fs::write(locked.join("f"), "x").unwrap();
        chmod(&locked, 0o000).unwrap();
        chmod(&tmp.path().join("a"), 0o500).unwrap();
        remove_all(&tmp.path().join("a")).unwrap();
        assert!(!tmp.path().join("a").exists());
    }

    #[test]
    fn clone_tree_follows_the_rules() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::create_dir_all(&dst).unwrap();
        std::fs::write(src.join("keep"), "k").unwrap();
        chmod(&src.join("keep"), 0o600).unwrap();
        std::fs::write(src.join("skip"), "s").unwrap();
        std::fs::write(src.join("null"), "n").unwrap();
        std::fs::write(src.join("sub/inner"), "i").unwrap();
        symlink("keep", src.join("link")).unwrap();
        let classify = |n: &str| match n {
            "skip" => Action::Skip,
            "null" => Action::Nullify,
            "sub" => Action::Whole,
            _ => Action::Copy,
        };
        clone_tree(&src, &dst, false, &classify).unwrap();
        assert_eq!(std::fs::read_to_string(dst.join("keep")).unwrap(), "k");
        let mode = std::fs::metadata(dst.join("keep"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!dst.join("skip").exists());
        assert_eq!(std::fs::read(dst.join("null")).unwrap(), b"");
        assert_eq!(std::fs::read_to_string(dst.join("sub/inner")).unwrap(), "i");
        assert_eq!(
            std::fs::read_link(dst.join("link")).unwrap(),
            Path::new("keep")
        );
    }
}
