//! Is Lima there, and new enough? Checked up front by every command that drives Lima, so a
//! missing `limactl` or a Lima older than 2.0 gets the install/upgrade hint before anything
//! starts. `limactl --version` runs once per binary: the answer is cached under the data
//! directory, keyed by the binary's resolved path, modification time and size.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use super::Limactl;
use crate::error::{Error, Result};

/// The oldest Lima claude-vm works with (major version).
pub const MIN_MAJOR: u64 = 2;

const INSTALL: &str = "install Lima 2.0 or later: `brew install lima` on macOS, or see https://lima-vm.io/docs/installation/";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Cached {
    path: PathBuf,
    modified_ns: u128,
    size: u64,
    version: String,
}

/// `limactl` as PATH finds it, symlinks resolved.
pub fn find(path_var: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    find_on_path("limactl", path_var).map(|p| std::fs::canonicalize(&p).unwrap_or(p))
}

/// The first executable file `name` in the absolute entries of `path_var`. A relative entry
/// (`.`, `bin`, an empty one) is skipped: a shell resolves it against the current directory,
/// which may be the project, so a `limactl` there would be the project's, not Lima's.
pub fn find_on_path(name: &str, path_var: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path_var?)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A version `limactl --version` printed, read the same way by every command and `doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// A release: `2.0.3`, `v2.1.0-beta.1`, `1.2` (patch 0).
    Release(u64, u64, u64),
    /// A build from source (`HEAD-<sha>`): accepted, its age unknown.
    Development(String),
}

impl Version {
    /// Reads a version as `parse_version` returns it; None: not a version.
    pub fn parse(version: &str) -> Option<Version> {
        let v = version.trim();
        if v.starts_with("HEAD-") && v.len() > "HEAD-".len() {
            return Some(Version::Development(v.to_owned()));
        }
        let v = v.strip_prefix('v').unwrap_or(v);
        if !v.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let mut parts = v
            .split(|c: char| !c.is_ascii_digit())
            .map(|p| p.parse::<u64>().ok());
        Some(Version::Release(
            parts.next()??,
            parts.next()??,
            parts.next().flatten().unwrap_or(0),
        ))
    }

    /// Older than Lima 2.0 (a development build is not).
    pub fn too_old(&self) -> bool {
        matches!(self, Version::Release(major, ..) if *major < MIN_MAJOR)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Version::Release(a, b, c) => write!(f, "{a}.{b}.{c}"),
            Version::Development(v) => write!(f, "{v} (a development build)"),
        }
    }
}

/// "limactl version 2.0.3" -> "2.0.3".
pub fn parse_version(out: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("limactl version "))
        .map(|v| v.trim().trim_start_matches('v').to_owned())
        .filter(|v| !v.is_empty())
}

/// Older than 2.0? A development build (`HEAD-<sha>`) is not; a version we cannot read at
/// all is given the benefit of the doubt here (`doctor` warns about it).
pub fn too_old(version: &str) -> bool {
    Version::parse(version).is_some_and(|v| v.too_old())
}

fn key(binary: &Path) -> Option<(u128, u64)> {
    let meta = std::fs::metadata(binary).ok()?;
    let modified = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some((modified.as_nanos(), meta.len()))
}

/// Lima's version; fails with the install or upgrade hint when Lima is missing or too old.
pub fn ensure(lima: &Limactl, cache: &Path) -> Result<String> {
    let binary = find(std::env::var_os("PATH").as_deref()).ok_or_else(|| {
        Error::failure("`limactl` was not found on PATH; claude-vm needs Lima to run VMs")
            .with_hint(INSTALL)
    })?;
    let (modified_ns, size) = key(&binary).unwrap_or_default();
    let cached = std::fs::read_to_string(cache)
        .ok()
        .and_then(|t| serde_json::from_str::<Cached>(&t).ok())
        .filter(|c| c.path == binary && c.modified_ns == modified_ns && c.size == size);
    let version = match cached {
        Some(c) => c.version,
        None => {
            let version = lima.version()?;
            let entry = Cached {
                path: binary.clone(),
                modified_ns,
                size,
                version: version.clone(),
            };
            if let (Some(dir), Ok(text)) = (cache.parent(), serde_json::to_string(&entry)) {
                // A cache we cannot write only costs a `limactl --version` next time.
                if let Some(name) = cache.file_name().and_then(|n| n.to_str()) {
                    let _ = crate::atomic::write(dir, name, text.as_bytes());
                }
            }
            version
        }
    };
    if too_old(&version) {
        return Err(Error::failure(format!(
            "Lima {version} ({}) is too old: claude-vm needs Lima {MIN_MAJOR}.0 or later",
            binary.display()
        ))
        .with_hint("upgrade Lima: `brew upgrade lima` on macOS, or see https://lima-vm.io/docs/installation/"));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `to` relative to `from` (`../../tmp/x`), so a PATH entry can name it relatively.
    fn pathdiff(to: &Path, from: &Path) -> String {
        let ups = from.components().count() - 1;
        let down = to.strip_prefix("/").unwrap();
        format!("{}{}", "../".repeat(ups), down.display())
    }

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("limactl version 2.0.3\n").as_deref(),
            Some("2.0.3")
        );
        assert_eq!(
            parse_version("limactl version v1.2.1").as_deref(),
            Some("1.2.1")
        );
        assert_eq!(parse_version("something else"), None);
        assert!(too_old("1.2.1"));
        assert!(too_old("0.23.2"));
        assert!(!too_old("2.0.0"));
        assert!(!too_old("2.1.0-rc.1"));
        assert!(!too_old("10.0.0"));
        assert!(!too_old("HEAD-abcdef"));
        assert!(!too_old("garbage"));
        assert_eq!(Version::parse("2.0.3"), Some(Version::Release(2, 0, 3)));
        assert_eq!(
            Version::parse("v2.1.0-beta.1"),
            Some(Version::Release(2, 1, 0))
        );
        assert_eq!(Version::parse("1.2"), Some(Version::Release(1, 2, 0)));
        assert_eq!(
            Version::parse("HEAD-1a2b3c"),
            Some(Version::Development("HEAD-1a2b3c".into()))
        );
        assert!(!Version::parse("HEAD-1a2b3c").unwrap().too_old());
        for bad in ["", "HEAD-", "HEAD", "garbage", "2", "v"] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn finds_executables_only_on_absolute_path_entries() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("limactl"), "not executable").unwrap();
        std::fs::write(b.join("limactl"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(b.join("limactl"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(
            find(Some(&path)),
            Some(std::fs::canonicalize(b.join("limactl")).unwrap())
        );
        assert_eq!(find(Some(std::ffi::OsStr::new("relative:dirs"))), None);
        assert_eq!(find(None), None);
        // A relative entry is never searched, even when it holds an executable `limactl`
        // (the current directory may be the project), nor is an empty one (also `.`).
        let here = std::env::current_dir().unwrap();
        let rel = pathdiff(&b, &here);
        for path_var in [rel.clone(), format!("{rel}:"), format!(":{rel}")] {
            let found = find_on_path("limactl", Some(std::ffi::OsStr::new(&path_var)));
            assert_eq!(found, None, "{path_var:?}");
        }
        let with_abs = format!("{rel}:{}", b.display());
        assert_eq!(
            find_on_path("limactl", Some(std::ffi::OsStr::new(&with_abs))),
            Some(b.join("limactl"))
        );
    }
}
