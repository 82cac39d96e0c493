//! Instance names and paths: Lima's `identifiers`, `dirnames` and the
//! UNIX_PATH_MAX rule for the longest socket in an instance directory.

use std::path::{Path, PathBuf};

use crate::fail::{Fail, Res};
use crate::gofmt::quote;

pub const IDENTIFIER_RE: &str = "^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$";
const MAX_LENGTH: usize = 76;
const LONGEST_SOCK: &str = "ssh.sock.1234567890123456";

#[cfg(target_os = "linux")]
pub const UNIX_PATH_MAX: usize = 108;
#[cfg(not(target_os = "linux"))]
pub const UNIX_PATH_MAX: usize = 104;

fn identifier_ok(s: &str) -> bool {
    let mut expect_alnum = true;
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            expect_alnum = false;
        } else if b"._-".contains(&b) && !expect_alnum {
            expect_alnum = true;
        } else {
            return false;
        }
    }
    !s.is_empty() && !expect_alnum
}

/// `identifiers.Validate`.
pub fn validate_identifier(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("identifier must not be empty".into());
    }
    if s.len() > MAX_LENGTH {
        return Err(format!(
            "identifier {} greater than maximum length ({MAX_LENGTH} characters)",
            quote(s)
        ));
    }
    if !identifier_ok(s) {
        return Err(format!(
            "identifier {} must match {IDENTIFIER_RE}",
            quote(s)
        ));
    }
    Ok(())
}

/// `dirnames.ValidateInstName`.
pub fn validate(name: &str) -> Res<()> {
    validate_identifier(name).map_err(|e| {
        Fail::fatal(format!(
            "instance name {} is not a valid identifier: {e}",
            quote(name)
        ))
    })?;
    let lower = name.to_lowercase();
    if lower.ends_with(".yml") || lower.ends_with(".yaml") {
        return Err(Fail::fatal(format!(
            "instance name {} must not end with .yml or .yaml suffix",
            quote(name)
        )));
    }
    Ok(())
}

/// `$LIMA_HOME` (default `~/.lima`), symlinks resolved like `dirnames.LimaDir`.
pub fn lima_dir() -> Res<PathBuf> {
    let dir = match std::env::var_os("LIMA_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => home_dir()?.join(".lima"),
    };
    if !dir.exists() {
        return Ok(dir);
    }
    std::fs::canonicalize(&dir).map_err(|e| {
        Fail::fatal(format!(
            "cannot evaluate symlinks in {}: {}",
            quote(&dir.to_string_lossy()),
            crate::sys::path_error("lstat", &dir, &e)
        ))
    })
}

/// `os.UserHomeDir` on Unix.
pub fn home_dir() -> Res<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| Fail::fatal("$HOME is not defined"))
}

/// `dirnames.InstanceDir`: validates the name, then joins it.
pub fn instance_dir(lima_home: &Path, name: &str) -> Res<PathBuf> {
    validate(name)?;
    Ok(lima_home.join(name))
}

/// The socket-length rule Lima applies before creating an instance dir.
pub fn check_socket_length(name: &str, dir: &Path) -> Res<()> {
    let longest = dir.join(LONGEST_SOCK);
    let len = longest.as_os_str().len();
    if len >= UNIX_PATH_MAX {
        return Err(Fail::fatal(format!(
            "instance name {} too long: {} must be less than UNIX_PATH_MAX={UNIX_PATH_MAX} characters, but is {len}",
            quote(name),
            quote(&longest.to_string_lossy())
        )));
    }
    Ok(())
}

/// `hostname.FromInstName`.
pub fn hostname(name: &str) -> String {
    format!("lima-{}", name.replace(['.', '_'], "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_follow_lima() {
        for ok in ["a", "default", "a.b-c_d", "A9", "x1.2"] {
            assert!(validate_identifier(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "a..b", "a b", "é", "a/b"] {
            assert!(validate_identifier(bad).is_err(), "{bad}");
        }
        assert!(validate_identifier(&"a".repeat(76)).is_ok());
        assert_eq!(
            validate_identifier(&"a".repeat(77)).unwrap_err(),
            format!(
                "identifier \"{}\" greater than maximum length (76 characters)",
                "a".repeat(77)
            )
        );
        let err = validate("bad name").unwrap_err().msg.unwrap();
        assert_eq!(
            err,
            "instance name \"bad name\" is not a valid identifier: identifier \"bad name\" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$"
        );
        assert!(validate("x.yaml")
            .unwrap_err()
            .msg
            .unwrap()
            .contains("must not end with .yml"));
    }

    #[test]
    fn socket_length_limit() {
        let base = PathBuf::from("/".to_string() + &"d".repeat(60));
        assert!(check_socket_length("short", &base.join("short")).is_ok());
        let long = "n".repeat(30);
        let err = check_socket_length(&long, &base.join(&long))
            .unwrap_err()
            .msg
            .unwrap();
        assert!(err.contains("too long"), "{err}");
        assert!(err.contains(&format!(
            "must be less than UNIX_PATH_MAX={UNIX_PATH_MAX} characters, but is "
        )));
    }

    #[test]
    fn hostnames() {
        assert_eq!(hostname("my_example.com"), "lima-my-example-com");
    }
}
