//! ssh-agent forwarding for namespace mode: like sshd, listen on
//! `/tmp/ssh-XXXXXXXXXX/agent.PID` in the guest and relay each connection
//! to the host's `$SSH_AUTH_SOCK`. (The guest cannot reach host paths, and a
//! relay works for unprivileged users where a bind mount would not.)

use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::fail::{Fail, Res};
use crate::fsutil;
use crate::sys;

/// The relay's socket directory; removed when dropped.
pub struct Relay {
    dir: PathBuf,
    listener: UnixListener,
    /// The socket path as the guest sees it.
    pub guest_path: String,
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ ((sys::getpid() as u64) << 32);
    (0..10)
        .map(|_| {
            // xorshift: unpredictability is not needed, only uniqueness.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            ALPHABET[(seed % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

impl Relay {
    /// Creates the listening socket in the guest's /tmp (`guest_tmp` is its
    /// host-side directory), owned by the guest user when it has one (as sshd makes it).
    pub fn listen(guest_tmp: &Path, owner: Option<(u32, u32)>) -> Res<Relay> {
        let name = format!("ssh-{}", random_suffix());
        let dir = guest_tmp.join(&name);
        std::fs::create_dir(&dir).map_err(|e| Fail::path("mkdir", &dir, &e))?;
        fsutil::chmod(&dir, 0o700)?;
        let sock = format!("agent.{}", sys::getpid());
        // Bind through the directory's descriptor: the full host path may be
        // longer than a socket address allows.
        let dir_fd = sys::open_dir(&dir).map_err(|e| Fail::path("open", &dir, &e))?;
        let short = format!("/proc/self/fd/{}/{sock}", dir_fd.as_raw_fd());
        let listener =
            UnixListener::bind(&short).map_err(|e| Fail::path("listen", &dir.join(&sock), &e))?;
        if let Some((uid, gid)) = owner {
            for path in [dir.clone(), dir.join(&sock)] {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .map_err(|e| Fail::path("chown", &path, &e))?;
            }
        }
        Ok(Relay {
            guest_path: format!("/tmp/{name}/{sock}"),
            dir,
            listener,
        })
    }

    /// Serves connections on background threads until the process exits.
    pub fn serve(&self, host_sock: PathBuf) -> Res<()> {
        let listener = self
            .listener
            .try_clone()
            .map_err(|e| Fail::fatal(format!("agent relay: {e}")))?;
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let host_sock = host_sock.clone();
                std::thread::spawn(move || {
                    if let Ok(host) = UnixStream::connect(&host_sock) {
                        let _ = crate::forward::pipe_both_ways(conn, host);
                    }
                });
            }
        });
        Ok(())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = fsutil::remove_all(&self.dir);
    }
}
