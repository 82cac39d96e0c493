//! Which directories may be a session's project. A session mounts its project writable, so
//! one started from `$HOME`, `/`, a parent of `$HOME` or a system directory would hand the
//! agent the whole home or system: refused unless `--allow-any-dir` says it is meant.

use std::path::Path;

/// Directories that hold a system, never a project (and every parent of them is `/`).
const SYSTEM: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/lib",
    "/usr/local",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/share",
    "/var",
    "/var/tmp",
    "/home",
    "/Users",
    "/Applications",
    "/Library",
    "/System",
    "/Volumes",
    "/private",
    "/private/etc",
    "/private/tmp",
    "/private/var",
    "/nix",
    "/nix/store",
    "/snap",
    "/mnt",
    "/media",
];

/// Trees no project lives in.
const SYSTEM_TREES: &[&str] = &["/proc", "/sys", "/dev", "/nix/store"];

/// Why `root` is not a project a session may mount writable, if it is not.
pub fn not_a_project(root: &Path, home: &Path) -> Option<String> {
    let home = std::fs::canonicalize(home).unwrap_or_else(|_| home.to_path_buf());
    if root == Path::new("/") {
        return Some("it is the root of the file system".into());
    }
    if root == home {
        return Some("it is your home directory".into());
    }
    if home.starts_with(root) {
        return Some(format!(
            "it contains your home directory ({})",
            home.display()
        ));
    }
    if SYSTEM.iter().any(|s| root == Path::new(s)) {
        return Some("it is a system directory".into());
    }
    if SYSTEM_TREES.iter().any(|s| root.starts_with(s)) {
        return Some("it is inside a system directory".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_root_parents_of_home_and_system_directories_are_not_projects() {
        let home = Path::new("/nonexistent-home/me");
        for dir in [
            "/",
            "/nonexistent-home/me",
            "/nonexistent-home",
            "/usr",
            "/etc",
            "/var",
            "/tmp",
            "/proc/1",
            "/Users",
        ] {
            assert!(not_a_project(Path::new(dir), home).is_some(), "{dir}");
        }
        for dir in [
            "/nonexistent-home/me/src/app",
            "/nonexistent-home/me/.dotfiles",
            "/srv/git/app",
            "/usr/local/src/app",
            "/tmp/build/app",
            "/nonexistent-home/other",
        ] {
            assert!(not_a_project(Path::new(dir), home).is_none(), "{dir}");
        }
    }
}
