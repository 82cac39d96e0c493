//! Is `limactl` there, and new enough?

use std::path::{Path, PathBuf};

use super::Finding;
use crate::lima::detect::{self, Version};

/// The oldest Lima claude-vm works with (`template:NAME`, `clone`, `--tty=false`).
pub const MINIMUM: (u64, u64) = (detect::MIN_MAJOR, 0);

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
    if v.too_old() {
        return Finding::fail(
            format!(
                "Lima {v} ({where_}) is too old: claude-vm needs {}.{} or later",
                MINIMUM.0, MINIMUM.1
            ),
            "upgrade Lima: `brew upgrade lima`, or the latest release from \
             https://github.com/lima-vm/lima/releases",
        );
    }
    Finding::ok(format!("limactl {v} ({where_})"))
}

/// `limactl version 2.0.3`, read as every command reads it (`lima::detect`).
pub fn parse(out: &str) -> Option<Version> {
    detect::parse_version(out).and_then(|v| Version::parse(&v))
}

/// The first `name` on PATH that is an executable file, absolute entries only (as sessions
/// look for `limactl`).
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    detect::find_on_path(name, std::env::var_os("PATH").as_deref())
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Level;

    #[test]
    fn versions_are_read() {
        let r = |a, b, c| Some(Version::Release(a, b, c));
        assert_eq!(parse("limactl version 2.0.3\n"), r(2, 0, 3));
        assert_eq!(parse("limactl version v2.1.0-beta.1"), r(2, 1, 0));
        assert_eq!(parse("limactl version 1.2"), r(1, 2, 0));
        // A development build is accepted, as sessions accept it.
        assert_eq!(
            parse("limactl version HEAD-abc"),
            Some(Version::Development("HEAD-abc".into()))
        );
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
        let f = limactl(Some(p), Ok("limactl version HEAD-1a2b3c"));
        assert_eq!(
            f,
            Finding::ok("limactl HEAD-1a2b3c (a development build) (/usr/bin/limactl)")
        );
        assert_eq!(limactl(Some(p), Err("exit 1".into())).level, Level::Fail);
    }
}
