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
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path_var?)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join("limactl"))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
}

/// "limactl version 2.0.3" -> "2.0.3".
pub fn parse_version(out: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("limactl version "))
        .map(|v| v.trim().trim_start_matches('v').to_owned())
        .filter(|v| !v.is_empty())
}

/// Older than 2.0? A version we cannot read (a development build) is given the benefit of
/// the doubt.
pub fn too_old(version: &str) -> bool {
    version
        .split(['.', '-', '+'])
        .next()
        .and_then(|major| major.parse::<u64>().ok())
        .is_some_and(|major| major < MIN_MAJOR)
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
                let _ = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(cache, text));
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
    }
}
