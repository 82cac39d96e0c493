//! Where the fake Claude Code was installed, and so which version it is.
//! Both installers lay out what the real ones do, with the simulator binary
//! in place of Claude Code:
//!
//! ```text
//! native (claude.ai/install.sh): ~/.local/bin/claude -> ~/.local/share/claude/versions/V
//! npm -g (prefix /usr/local):    /usr/local/bin/claude -> ../lib/node_modules/@anthropic-ai/claude-code/cli.js
//!                                (package.json next to cli.js holds the version)
//! ```
//!
//! `claude --version` follows the symlinks from the command it was run as
//! and reports the first installation it passes.

use std::path::{Path, PathBuf};

/// What `latest`, `stable` and an unpinned install resolve to (the fake
/// makes no difference between the two channels).
pub const LATEST: &str = "2.0.0";
pub const NPM_PACKAGE: &str = "@anthropic-ai/claude-code";

/// A real Claude Code, when the test hands one to the simulator
/// (`LIMA_SIM_CLAUDE_CODE=DIR` at boot: DIR holds the `claude` executable and
/// its npm `package.json`). The guest sees DIR read-only here, and both
/// installers then install it instead of the fake.
pub const REAL_DIR: &str = "/.limasim/claude-code";
pub const REAL_ENV: &str = "LIMA_SIM_CLAUDE_CODE";

/// The real Claude Code's version, when the guest has one.
pub fn real_version() -> Option<String> {
    let dir = crate::fakes::guest_path(REAL_DIR);
    let manifest = std::fs::read(dir.join("package.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&manifest).ok()?;
    v.get("version")?.as_str().map(String::from)
}

/// Checks a directory given as [`REAL_ENV`] before a boot uses it.
pub fn check_real_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let exe = dir.join("claude");
    let executable = std::fs::metadata(&exe)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false);
    if !dir.is_absolute() || !executable || !dir.join("package.json").is_file() {
        return Err(format!(
            "{REAL_ENV}={}: not an absolute directory holding an executable `claude` and its package.json",
            dir.display()
        ));
    }
    Ok(())
}

/// The real installers' version syntax: `stable`, `latest` or `X.Y.Z[-pre]`.
pub fn valid_target(t: &str) -> bool {
    if t == "stable" || t == "latest" {
        return true;
    }
    let (core, pre) = match t.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (t, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && pre.is_none_or(|p| !p.is_empty() && !p.contains(char::is_whitespace))
}

fn version_at(path: &Path) -> Option<String> {
    let parent = path.parent()?;
    if parent.ends_with(".local/share/claude/versions") {
        return Some(path.file_name()?.to_string_lossy().into_owned());
    }
    if path.file_name()? == "cli.js"
        && parent.ends_with(Path::new("node_modules").join(NPM_PACKAGE))
    {
        let manifest = std::fs::read(parent.join("package.json")).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&manifest).ok()?;
        return v.get("version")?.as_str().map(String::from);
    }
    None
}

/// The command as the shell found it: argv[0], or its match on PATH.
fn invoked_path(argv0: &Path) -> Option<PathBuf> {
    if argv0.components().count() > 1 {
        return Some(argv0.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(argv0))
        .find(|p| p.is_file())
}

/// The installed version of the `claude` that is running, if installed.
pub fn installed_version(argv0: &Path) -> Option<String> {
    let mut path = invoked_path(argv0)?;
    for _ in 0..40 {
        if let Some(v) = version_at(&path) {
            return Some(v);
        }
        let target = std::fs::read_link(&path).ok()?;
        path = match path.parent() {
            Some(dir) if target.is_relative() => dir.join(target),
            _ => target,
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn targets_follow_the_installer() {
        for ok in ["stable", "latest", "1.2.3", "2.0.14-beta.1"] {
            assert!(valid_target(ok), "{ok}");
        }
        for bad in ["", "1.2", "v1.2.3", "1.2.3.4", "next", "1.2.3-", "1.x.3"] {
            assert!(!valid_target(bad), "{bad}");
        }
    }

    #[test]
    fn finds_the_version_through_the_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = tmp.path().join("limactl");
        std::fs::write(&exe, "").unwrap();
        let versions = tmp.path().join("home/.local/share/claude/versions");
        std::fs::create_dir_all(&versions).unwrap();
        std::fs::create_dir_all(tmp.path().join("home/.local/bin")).unwrap();
        symlink(&exe, versions.join("1.2.3")).unwrap();
        let native = tmp.path().join("home/.local/bin/claude");
        symlink(versions.join("1.2.3"), &native).unwrap();
        assert_eq!(installed_version(&native).as_deref(), Some("1.2.3"));

        let pkg = tmp
            .path()
            .join("usr/local/lib/node_modules")
            .join(NPM_PACKAGE);
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::create_dir_all(tmp.path().join("usr/local/bin")).unwrap();
        std::fs::write(pkg.join("package.json"), r#"{"version": "0.9.1"}"#).unwrap();
        symlink(&exe, pkg.join("cli.js")).unwrap();
        let npm = tmp.path().join("usr/local/bin/claude");
        symlink("../lib/node_modules/@anthropic-ai/claude-code/cli.js", &npm).unwrap();
        assert_eq!(installed_version(&npm).as_deref(), Some("0.9.1"));
        assert_eq!(installed_version(&exe), None);
    }
}
