//! Why a plan cannot be made, each reason with the fix it needs.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// A configured mount lands where claude-vm mounts something itself.
    MountClash {
        location: PathBuf,
        guest: String,
        /// "is reserved for …" / "is already mounted by claude-vm (from …)".
        what: String,
    },
    /// Two port forwards (`[[ports]]` or a tool's) use the same host port.
    DuplicateHostPort(u16),
    /// A project directory that must reach the guest's settings is not UTF-8.
    PathNotUtf8(PathBuf),
    /// The host gpg-agent's socket path is not UTF-8.
    GpgSocketNotUtf8,
    /// A reason without a variant of its own yet.
    Other(String),
}

impl PlanError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            PlanError::MountClash { .. } => {
                "fix the mount in .claude-vm.toml or on the command line"
            }
            PlanError::DuplicateHostPort(_) => {
                "change the `host` port of one of them in [[ports]] of .claude-vm.toml (a tool's own port forwards are listed by `claude-vm info`)"
            }
            PlanError::PathNotUtf8(_) => {
                "rename the directory, or run claude-vm from a path with a UTF-8 name"
            }
            PlanError::GpgSocketNotUtf8 => {
                "start the host's gpg-agent with a UTF-8 home (GNUPGHOME), or drop the tool with `claude-vm setup --without gpg`"
            }
            PlanError::Other(_) => "check .claude-vm.toml and the command line",
        }
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::MountClash {
                location,
                guest,
                what,
            } => write!(
                f,
                "the mount of {} at {guest} {what}; remove it or choose another guest path",
                location.display()
            ),
            PlanError::DuplicateHostPort(port) => write!(
                f,
                "host port {port} is forwarded twice; give each [[ports]] entry its own host port"
            ),
            PlanError::PathNotUtf8(dir) => write!(f, "{} is not valid UTF-8", dir.display()),
            PlanError::GpgSocketNotUtf8 => {
                f.write_str("the gpg-agent socket path is not valid UTF-8")
            }
            PlanError::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for PlanError {}

impl From<String> for PlanError {
    fn from(message: String) -> Self {
        PlanError::Other(message)
    }
}

impl From<PlanError> for crate::error::Error {
    fn from(err: PlanError) -> Self {
        crate::error::Error::usage(err.to_string()).with_hint(err.hint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_has_its_own_fix() {
        let clash = PlanError::MountClash {
            location: "/data".into(),
            guest: "/tmp/claude-vm-handover".into(),
            what: "is reserved for claude-vm's hand-over directory".into(),
        };
        let port = PlanError::DuplicateHostPort(8080);
        let all = [
            clash.clone(),
            port.clone(),
            PlanError::PathNotUtf8("/x".into()),
            PlanError::GpgSocketNotUtf8,
            PlanError::Other("x".into()),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.hint(), b.hint(), "{a:?} and {b:?}");
            }
        }
        // A duplicate host port is not told to fix a mount.
        assert!(!port.hint().contains("mount"), "{}", port.hint());
        assert!(port.hint().contains("[[ports]]"));
        let e = crate::error::Error::from(port);
        assert_eq!(e.exit_code(), crate::error::EXIT_USAGE);
        assert!(e.message().contains("host port 8080 is forwarded twice"));
        assert!(clash
            .to_string()
            .contains("remove it or choose another guest path"));
    }
}
