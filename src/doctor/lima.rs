//! Is `limactl` there, and new enough?

use std::path::{Path, PathBuf};

use super::Finding;

/// The oldest Lima claude-vm works with (`template:NAME`, `clone`, `--tty=false`).
pub const MINIMUM: (u64, u64) = (2, 0);

const INSTALL: &str = "install Lima 2.0 or later: `brew install lima` (macOS and Linux), or see \
                       https://lima-vm.io/docs/installation/";

/// `path` is where `limactl` was found on PATH; `version` what `limactl --version` printed,
/// or why it could not run.
pub fn limactl(path: Option<&Path>, version: Result<&str, String>) -> Finding {
    let Some(path) = path else {
        return Finding::fail("limactl is not on PATH", INSTALL);
    };
    let where_ = path.display();
    let out = match version {
        Ok(out) => out,
        Err(why) => {
            return Finding::fail(
                format!("limactl ({where_}) does not run: {why}"),
                format!("reinstall Lima; {INSTALL}"),
            )
        }
    };
    let Some(v) = parse(out) else {
        return Finding::warn(
            format!(
                "limactl ({where_}) printed `{}`, not a version claude-vm can read",
                out.trim()
            ),
            format!("make sure `limactl` is Lima's; {INSTALL}"),
        );
    };
    if (v.0, v.1) < MINIMUM {
        return Finding::fail(
            format!(
                "Lima {}.{}.{} ({where_}) is too old: claude-vm needs {}.{} or later",
                v.0, v.1, v.2, MINIMUM.0, MINIMUM.1
            ),
            "upgrade Lima: `brew upgrade lima`, or the latest release from \
             https://github.com/lima-vm/lima/releases",
        );
    }
    Finding::ok(format!("limactl {}.{}.{} ({where_})", v.0, v.1, v.2))
}

/// `limactl version 2.0.3` (also `v2.0.3`, `2.1.0-beta.1`).
pub fn parse(out: &str) -> Option<(u64, u64, u64)> {
    let word = out.split_whitespace().last()?;
    let word = word.strip_prefix('v').unwrap_or(word);
    let mut parts = word
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u64>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// The first `name` on PATH that is an executable file.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Level;

    #[test]
    fn versions_are_read() {
        assert_eq!(parse("limactl version 2.0.3\n"), Some((2, 0, 3)));
        assert_eq!(parse("limactl version v2.1.0-beta.1"), Some((2, 1, 0)));
        assert_eq!(parse("limactl version 1.2"), Some((1, 2, 0)));
        assert_eq!(parse("limactl version HEAD-abc"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn verdicts_carry_fixes() {
        let p = Path::new("/usr/bin/limactl");
        let f = limactl(None, Err("x".into()));
        assert_eq!(f.level, Level::Fail);
        assert!(f.fix.unwrap().contains("brew install lima"));
        let f = limactl(Some(p), Ok("limactl version 1.9.9"));
        assert_eq!(f.level, Level::Fail);
        assert!(f.text.contains("too old"), "{}", f.text);
        let f = limactl(Some(p), Ok("limactl version 2.0.3"));
        assert_eq!(f, Finding::ok("limactl 2.0.3 (/usr/bin/limactl)"));
        assert_eq!(limactl(Some(p), Ok("garbage")).level, Level::Warn);
        assert_eq!(limactl(Some(p), Err("exit 1".into())).level, Level::Fail);
    }
}
