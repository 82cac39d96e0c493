//! Facts about the host that Lima folds into defaults and templates.

use std::path::PathBuf;

use crate::fail::Res;
use crate::names;
use crate::sys;

#[derive(Clone, Debug)]
pub struct Host {
    /// The host login name, as `{{.User}}` host templates see it.
    pub login: String,
    /// The guest user name Lima derives from it (`osutil.LimaUser`).
    pub guest_user: String,
    /// The guest user's uid: the host's, or Lima's fallback for a root host.
    pub guest_uid: u32,
    pub uid: u32,
    pub home: PathBuf,
}

/// Lima's `osutil.fallbackUser` and `fallbackUid`.
pub const FALLBACK_USER: &str = "lima";
pub const FALLBACK_UID: u32 = 1000;

/// Lima's guest user name rule: a valid Linux name, and never "admin".
pub fn guest_user_name(login: &str) -> (String, Option<String>) {
    let valid = login.chars().enumerate().all(|(i, c)| {
        c.is_ascii_lowercase() || c == '_' || (i > 0 && (c.is_ascii_digit() || c == '-'))
    }) && !login.is_empty();
    if !valid {
        let warning = format!(
            "local username {} is not a valid Linux username (must match \"^[a-z_][a-z0-9_-]*$\"); using \"lima\" instead",
            crate::gofmt::quote(login)
        );
        return ("lima".into(), Some(warning));
    }
    if login == "admin" {
        return (
            "lima".into(),
            Some("local username \"admin\" is reserved; using \"lima\" instead".into()),
        );
    }
    (login.to_string(), None)
}

impl Host {
    pub fn current() -> Res<Host> {
        let login = sys::current_user_name().unwrap_or_else(|| "lima".into());
        let uid = sys::getuid();
        // Lima refuses to run as root; run so, the simulator takes Lima's fallback user
        // (osutil's fallbackUser/fallbackUid), so the guest user is never root.
        let (guest_user, guest_uid) = match uid {
            0 => (FALLBACK_USER.to_string(), FALLBACK_UID),
            _ => (guest_user_name(&login).0, uid),
        };
        Ok(Host {
            guest_user,
            guest_uid,
            login,
            uid,
            home: names::home_dir()?,
        })
    }
}

/// Lima's name for the host architecture.
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86_64",
        "aarch64" => "aarch64",
        "arm" => "armv7l",
        "powerpc64" => "ppc64le",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        other => other,
    }
}

/// The VM driver Lima uses when `vmType` is unset.
pub fn default_vm_type() -> &'static str {
    if cfg!(target_os = "macos") {
        "vz"
    } else {
        "qemu"
    }
}

/// Drivers registered in a Lima build for this OS.
pub fn registered_vm_types() -> &'static [&'static str] {
    if cfg!(target_os = "macos") {
        &["qemu", "vz"]
    } else {
        &["qemu"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_user_follows_lima() {
        assert_eq!(guest_user_name("alice").0, "alice");
        assert_eq!(guest_user_name("a_b-1").0, "a_b-1");
        let (name, warning) = guest_user_name("Alice");
        assert_eq!(name, "lima");
        assert!(warning.unwrap().contains("is not a valid Linux username"));
        assert_eq!(guest_user_name("admin").0, "lima");
        assert_eq!(guest_user_name("1x").0, "lima");
    }
}
