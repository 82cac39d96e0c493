//! Disk: what claude-vm's VMs take (allocated blocks: Lima's disks are sparse) and what is
//! left where `$LIMA_HOME` lives.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{size, Finding};

/// Below this, a template build (and the sessions' growing disks) may run out of room.
pub const LOW_FREE: u64 = 10_000_000_000;

/// Bytes allocated under `dir`, symlinks not followed; unreadable parts count as empty.
pub fn usage(dir: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let own = meta.blocks() * 512;
    if !meta.is_dir() {
        return own;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return own;
    };
    own + entries.flatten().map(|e| usage(&e.path())).sum::<u64>()
}

/// Free bytes for an unprivileged user on the file system holding `path` (or its nearest
/// existing parent).
pub fn free_space(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let c = std::ffi::CString::new(existing.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain data, valid when zeroed.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a pointer to a statvfs we own.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

/// The summary line.
pub fn summary(
    templates: (usize, u64),
    bases: (usize, u64),
    sessions: (usize, u64),
    free: Option<u64>,
    lima_home: &Path,
) -> Finding {
    let plural = |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    let bases_part = match bases.0 {
        0 => String::new(),
        n => format!(", {}", plural(n, "shared base")),
    };
    let used = format!(
        "{} for {}{bases_part} and {}",
        size(templates.1 + bases.1 + sessions.1),
        plural(templates.0, "template"),
        plural(sessions.0, "session")
    );
    let home = lima_home.display();
    match free {
        Some(free) if free < LOW_FREE => Finding::warn(
            format!(
                "disk: claude-vm's VMs use {used}; only {} free under {home}",
                size(free)
            ),
            "free some space, or delete templates you no longer use: `claude-vm clean` in their \
             project, `claude-vm clean-all` for all of them",
        ),
        Some(free) => Finding::ok(format!(
            "disk: claude-vm's VMs use {used}; {} free under {home}",
            size(free)
        )),
        None => Finding::note(format!(
            "disk: claude-vm's VMs use {used}; free space under {home} is unknown"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Level;

    #[test]
    fn usage_counts_allocated_blocks_not_sparse_sizes() {
        let tmp = tempfile::tempdir().unwrap();
        let sparse = std::fs::File::create(tmp.path().join("disk")).unwrap();
        sparse.set_len(50_000_000_000).unwrap();
        std::fs::write(tmp.path().join("data"), vec![1u8; 200_000]).unwrap();
        let used = usage(tmp.path());
        assert!(used >= 200_000, "{used}");
        assert!(
            used < 10_000_000,
            "a sparse 50 GB file takes no room: {used}"
        );
        assert_eq!(usage(&tmp.path().join("missing")), 0);
    }

    #[test]
    fn free_space_is_found_for_missing_paths_too() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(free_space(&tmp.path().join("not/yet")).is_some());
    }

    #[test]
    fn low_free_space_is_a_warning_with_a_fix() {
        let home = Path::new("/h/.lima");
        let f = summary(
            (2, 3_000_000_000),
            (0, 0),
            (1, 0),
            Some(5_000_000_000),
            home,
        );
        assert_eq!(f.level, Level::Warn);
        assert!(
            f.text.contains("3.0 GB for 2 templates and 1 session"),
            "{}",
            f.text
        );
        assert!(f.fix.unwrap().contains("clean-all"));
        assert_eq!(
            summary((0, 0), (0, 0), (0, 0), Some(LOW_FREE), home).level,
            Level::Ok
        );
        let f = summary((1, 1_000), (1, 2_000), (0, 0), None, home);
        assert_eq!(f.level, Level::Note);
        assert!(
            f.text
                .contains("3.0 kB for 1 template, 1 shared base and 0 sessions"),
            "{}",
            f.text
        );
    }
}
