//! What the host contributes to tools in a session: the git identity (read with git2) and
//! the gpg agent (its extra socket, public keys and ownertrust, from gpgconf and gpg).
//! These read the host; the plan turns them into guest scripts and Lima settings.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::paths::expand_tilde;

/// Git settings copied into the guest's global git config, in this order.
pub const GIT_KEYS: [&str; 6] = [
    "user.name",
    "user.email",
    "user.signingkey",
    "gpg.format",
    "commit.gpgsign",
    "tag.gpgsign",
];

/// `key = value` pairs of the host's git identity that are set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitIdentity {
    pub settings: Vec<(String, String)>,
}

/// The host's global (and system) git configuration, as git itself would read it.
pub fn git_identity(home: &Path) -> GitIdentity {
    let Ok(config) = git2::Config::open_default() else {
        return GitIdentity::default();
    };
    let get = |k: &str| config.get_string(k).ok().filter(|v| !v.is_empty());
    let mut settings: Vec<(String, String)> = GIT_KEYS
        .iter()
        .filter_map(|k| get(k).map(|v| ((*k).to_owned(), v)))
        .collect();
    // An SSH signing key given as a file on the host means nothing in the guest: pass the
    // public key itself (git's `key::` form); the signing goes through the forwarded agent.
    if get("gpg.format").as_deref() == Some("ssh") {
        for (k, v) in settings.iter_mut() {
            if k == "user.signingkey" && !v.starts_with("key::") && !v.starts_with("ssh-") {
                if let Some(key) = read_public_key(&expand_tilde(v, home)) {
                    *v = format!("key::{key}");
                }
            }
        }
    }
    GitIdentity { settings }
}

fn read_public_key(path: &Path) -> Option<String> {
    let public = if path.extension().is_some_and(|e| e == "pub") {
        path.to_path_buf()
    } else {
        let mut p = path.as_os_str().to_owned();
        p.push(".pub");
        PathBuf::from(p)
    };
    std::fs::read_to_string(public)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The host's gpg agent as a session needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpgForward {
    /// The agent's restricted "extra" socket, made for forwarding to other machines.
    pub extra_socket: PathBuf,
    pub public_keys: String,
    pub ownertrust: String,
}

/// Asks the host's gpgconf and gpg; an error says why forwarding is not possible.
pub fn gpg_forward() -> Result<GpgForward, String> {
    let run = |program: &str, args: &[&str]| -> Result<String, String> {
        let out = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run `{program}` on the host: {e}"))?;
        if !out.status.success() {
            // One line: the first thing it said is the cause, the rest repeats it.
            let stderr = String::from_utf8_lossy(&out.stderr);
            let said = stderr
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("no message");
            return Err(format!("`{program} {}` failed: {said}", args.join(" ")));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let socket = run("gpgconf", &["--list-dirs", "agent-extra-socket"])?;
    let socket = PathBuf::from(unescape_gpgconf(socket.trim()));
    // The socket exists only while the agent runs.
    run("gpgconf", &["--launch", "gpg-agent"])?;
    Ok(GpgForward {
        extra_socket: socket,
        public_keys: run("gpg", &["--batch", "--armor", "--export"])?,
        ownertrust: run("gpg", &["--batch", "--export-ownertrust"])?,
    })
}

/// gpgconf percent-escapes some characters in paths (`%3a` for `:`).
fn unescape_gpgconf(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpgconf_escapes_are_undone() {
        assert_eq!(
            unescape_gpgconf("/run/user/1000/gnupg/S.gpg-agent.extra"),
            "/run/user/1000/gnupg/S.gpg-agent.extra"
        );
        assert_eq!(unescape_gpgconf("C%3a/x%25y"), "C:/x%y");
    }

    #[test]
    fn ssh_public_keys_are_read_next_to_the_private_key() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("id.pub"), "ssh-ed25519 AAAA me@host\n").unwrap();
        assert_eq!(
            read_public_key(&tmp.path().join("id")).as_deref(),
            Some("ssh-ed25519 AAAA me@host")
        );
        assert_eq!(
            read_public_key(&tmp.path().join("id.pub")).as_deref(),
            Some("ssh-ed25519 AAAA me@host")
        );
        assert_eq!(read_public_key(&tmp.path().join("other")), None);
    }
}
