//! Checks for single values, shared by config files, flags and environment variables. Each
//! returns what is wrong in words a user can act on.

/// `[A-Za-z_][A-Za-z0-9_]*`: what a POSIX shell accepts in `export NAME=...`.
pub fn env_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let ok = matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid variable name (letters, digits and _, not starting with a digit)"
        ))
    }
}

/// Any bytes but NUL, which no environment can hold.
pub fn env_value(name: &str, value: &str) -> Result<(), String> {
    if value.contains('\0') {
        Err(format!(
            "the value of `{name}` contains a NUL byte, which an environment variable cannot hold"
        ))
    } else {
        Ok(())
    }
}

/// A Debian package name, optionally with `=VERSION` or `/RELEASE`.
pub fn package(spec: &str) -> Result<(), String> {
    let name = spec.split(['=', '/']).next().unwrap_or_default();
    let name_ok = name.len() >= 2
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    let rest_ok = spec[name.len()..]
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"=/+-.~:_".contains(&b));
    if name_ok && rest_ok {
        Ok(())
    } else {
        Err(format!(
            "`{spec}` is not a Debian package name (like `jq` or `postgresql-client=16.4-1`)"
        ))
    }
}

/// A Claude Code version to pin: `1.2.3`, `stable` or `latest`.
pub fn claude_version(v: &str) -> Result<(), String> {
    let ok = matches!(v, "stable" | "latest")
        || (!v.is_empty()
            && v.bytes().next().is_some_and(|b| b.is_ascii_digit())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b)));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{v}` is not a version (use e.g. `2.1.3`, `stable` or `latest`)"
        ))
    }
}

/// Host ports below 1024 need root, which Lima's host agent does not have.
pub fn host_port(port: u16) -> Result<(), String> {
    match port {
        0 => Err("port 0 is not a port (use 1-65535)".into()),
        1..=1023 => Err(format!(
            "host port {port} is privileged (below 1024); use a port from 1024 to 65535"
        )),
        _ => Ok(()),
    }
}

pub fn guest_port(port: u16) -> Result<(), String> {
    if port == 0 {
        Err("port 0 is not a port (use 1-65535)".into())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values() {
        assert!(env_name("_A1").is_ok());
        for bad in ["", "1A", "A-B", "A B", "é"] {
            assert!(env_name(bad).is_err(), "{bad:?}");
        }
        assert!(env_value("A", "any\nbytes ✓ $`'\"").is_ok());
        assert!(env_value("A", "nul\0").is_err());
    }

    #[test]
    fn packages_versions_ports() {
        for ok in [
            "jq",
            "g++",
            "libssl-dev",
            "postgresql-client=16.4-1",
            "python3/trixie-backports",
        ] {
            assert!(package(ok).is_ok(), "{ok}");
        }
        for bad in ["", "J", "-x", "a b", "jq;rm", "$(x)"] {
            assert!(package(bad).is_err(), "{bad:?}");
        }
        for ok in ["2.1.3", "stable", "latest", "1.0.0-beta.2"] {
            assert!(claude_version(ok).is_ok(), "{ok}");
        }
        for bad in ["", "v2", "1 2", "2;x"] {
            assert!(claude_version(bad).is_err(), "{bad:?}");
        }
        assert!(host_port(80).is_err() && host_port(0).is_err() && host_port(8080).is_ok());
        assert!(guest_port(80).is_ok() && guest_port(0).is_err());
    }
}
