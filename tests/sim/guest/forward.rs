//! Reverse unix-socket port forwards (`portForwards` rules with `reverse:
//! true`). Lima runs `ssh -O forward -R GUEST:HOST` once at boot: sshd in
//! the guest listens on the guest socket and every connection reaches the
//! host socket. Here the host agent plays sshd: it listens at the guest path
//! and relays each connection to the host socket.
//!
//! Lima's steps: log "Forwarding …", `rm -f` the guest path, create the host
//! socket's directory (0750; here before the agent enters the guest), then
//! bind. sshd never creates the guest directory, so a missing one fails the
//! forward with a warning and the boot goes on without it (Lima ignores the
//! error). The host socket is
//! looked up at each connection, so it may appear after boot; a connection
//! that cannot reach it is closed, as ssh closes the channel.
//!
//! In namespace mode the host path is not visible after pivot_root, so the
//! agent opens the host socket's directory before entering the guest and
//! connects through `/proc/self/fd/N/NAME`.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::gofmt::quote;
use crate::logrus::Level;
use crate::sys;

/// One reverse socket forward of lima.yaml.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// The guest socket path (templates expanded).
    pub guest: String,
    /// The host socket path (absolute).
    pub host: PathBuf,
}

/// The host end of a rule, opened before the agent enters the guest.
pub struct HostEnd {
    rule: Rule,
    dir: Option<OwnedFd>,
    name: OsString,
}

/// A forward being served; dropping it does not stop it (the agent lives
/// until it is stopped), `cleanup` removes its guest socket.
pub struct Active {
    rule: Rule,
    /// The listening socket's path as the agent sees it.
    path: PathBuf,
}

pub type Log<'a> = &'a dyn Fn(Level, &str, &[(&str, String)]);

fn open_dir_handle(dir: &Path) -> io::Result<OwnedFd> {
    let c = sys::cpath(dir)?;
    #[cfg(target_os = "linux")]
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
    #[cfg(not(target_os = "linux"))]
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    // SAFETY: c is NUL-terminated; the descriptor is owned by the result.
    let fd = unsafe { libc::open(c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just opened.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A path for `name` in the directory `dir` that stays short and valid
/// wherever the process's root is.
fn path_in(dir: &OwnedFd, dir_path: &Path, name: &OsString) -> PathBuf {
    if cfg!(target_os = "linux") {
        PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name)
    } else {
        dir_path.join(name)
    }
}

/// Host side of every rule: the socket's directory is created (0750, as
/// Lima's `os.MkdirAll`) and held open. Runs before the agent boots.
pub fn prepare(rules: &[Rule], log: Log) -> Vec<HostEnd> {
    rules
        .iter()
        .map(|rule| {
            let parent = rule.host.parent().unwrap_or(Path::new("/"));
            let name = rule
                .host
                .file_name()
                .map(OsString::from)
                .unwrap_or_default();
            let made = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(parent);
            let dir = match made.and_then(|_| open_dir_handle(parent)) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    // Lima drops this error without a word; say why here.
                    log(
                        Level::Info,
                        &format!(
                            "[simulator] can't create directory for local socket {}: {}",
                            quote(&rule.host.to_string_lossy()),
                            sys::go_errno_text(&e)
                        ),
                        &[],
                    );
                    None
                }
            };
            HostEnd {
                rule: rule.clone(),
                dir,
                name,
            }
        })
        .collect()
}

// `rm -f PATH`: fails on a directory, like rm.
fn remove_forced(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(io::Error::from_raw_os_error(libc::EISDIR)),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

// Binds like sshd: the directory must exist; the socket ends up 0600
// (sshd's StreamLocalBindMask 0177).
fn bind(guest: &str, path: &Path) -> io::Result<UnixListener> {
    // sshd binds the guest path itself, so that is what must fit sun_path.
    if guest.len() >= crate::portfwd::UNIX_PATH_MAX {
        return Err(io::Error::other(format!(
            "unix_listener: path {} too long for Unix domain socket",
            quote(guest)
        )));
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().map(OsString::from).unwrap_or_default();
    let dir = open_dir_handle(parent)?;
    let at = path_in(&dir, parent, &name);
    let listener = UnixListener::bind(&at)?;
    std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o600))?;
    if let Some((uid, gid)) = crate::agent::GUEST_OWNER.get() {
        std::os::unix::fs::chown(&at, Some(*uid), Some(*gid))?;
    }
    Ok(listener)
}

/// Sets up every forward the agent could prepare. `to_listen` maps a guest
/// path to where the agent binds it (itself in namespace mode).
pub fn start(ends: Vec<HostEnd>, to_listen: &dyn Fn(&str) -> PathBuf, log: Log) -> Vec<Active> {
    let mut active = Vec::new();
    let mut listeners = Vec::new();
    for end in ends {
        let host = end.rule.host.to_string_lossy().into_owned();
        let guest = end.rule.guest.clone();
        log(
            Level::Info,
            &format!(
                "Forwarding {} (host) to {} (guest)",
                quote(&host),
                quote(&guest)
            ),
            &[],
        );
        let path = to_listen(&guest);
        if let Err(e) = remove_forced(&path) {
            log(
                Level::Warn,
                &format!(
                    "Failed to clean up {} (guest) before setting up forwarding",
                    quote(&guest)
                ),
                &[("error", format!("rm: cannot remove {guest:?}: {e}"))],
            );
        }
        let Some(dir) = end.dir else {
            continue;
        };
        match bind(&guest, &path) {
            Ok(listener) => {
                listeners.push((listener, dir, end.rule.host.clone(), end.name));
                active.push(Active {
                    rule: end.rule,
                    path,
                });
            }
            Err(e) => {
                log(
                    Level::Warn,
                    &format!(
                        "Failed to set up forward from {} (host) to {} (guest)",
                        quote(&host),
                        quote(&guest)
                    ),
                    &[(
                        "error",
                        format!(
                            "remote port forwarding failed for listen path {guest}: {}",
                            sys::go_errno_text(&e)
                        ),
                    )],
                );
                let _ = remove_forced(&path);
            }
        }
    }
    for (listener, dir, host, name) in listeners {
        std::thread::spawn(move || serve(listener, dir, host, name));
    }
    active
}

fn serve(listener: UnixListener, dir: OwnedFd, host: PathBuf, name: OsString) {
    let host = path_in(&dir, host.parent().unwrap_or(Path::new("/")), &name);
    for conn in listener.incoming().flatten() {
        let host = host.clone();
        std::thread::spawn(move || {
            // ssh closes the channel when the host socket cannot be reached.
            if let Ok(upstream) = UnixStream::connect(&host) {
                let _ = pipe_both_ways(conn, upstream);
            }
        });
    }
}

/// Copies both directions until each side has closed its end.
pub fn pipe_both_ways(guest: UnixStream, host: UnixStream) -> io::Result<()> {
    let (mut guest_r, mut host_w) = (guest.try_clone()?, host.try_clone()?);
    let upstream = std::thread::spawn(move || {
        let _ = io::copy(&mut guest_r, &mut host_w);
        let _ = host_w.shutdown(std::net::Shutdown::Write);
    });
    let (mut host_r, mut guest_w) = (host, guest);
    let _ = io::copy(&mut host_r, &mut guest_w);
    let _ = guest_w.shutdown(std::net::Shutdown::Write);
    let _ = upstream.join();
    Ok(())
}

/// A graceful stop: Lima cancels each forward and runs `rm -f` on the guest
/// socket (a forced stop leaves it behind).
pub fn cleanup(active: &[Active], log: Log) {
    for a in active {
        log(
            Level::Info,
            &format!(
                "Stopping forwarding {} (host) to {} (guest)",
                quote(&a.rule.host.to_string_lossy()),
                quote(&a.rule.guest)
            ),
            &[],
        );
        let is_socket = std::fs::symlink_metadata(&a.path)
            .map(|m| m.file_type().is_socket())
            .unwrap_or(false);
        if is_socket {
            let _ = std::fs::remove_file(&a.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::Mutex;

    #[test]
    fn relays_to_the_host_socket_and_reports_failures() {
        let tmp = tempfile::tempdir().unwrap();
        let host_sock = tmp.path().join("host/dir/echo.sock");
        let guest = tmp.path().join("guest");
        std::fs::create_dir(&guest).unwrap();
        let rules = vec![
            Rule {
                guest: guest.join("ok.sock").to_string_lossy().into(),
                host: host_sock.clone(),
            },
            Rule {
                guest: guest.join("missing/x.sock").to_string_lossy().into(),
                host: host_sock.clone(),
            },
        ];
        let lines = Mutex::new(Vec::<String>::new());
        let log = |_: Level, msg: &str, fields: &[(&str, String)]| {
            let extra: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            lines
                .lock()
                .unwrap()
                .push(format!("{msg} {}", extra.join(" ")));
        };
        let ends = prepare(&rules, &log);
        // Lima creates the host socket's directory with mode 0750.
        let mode = std::fs::metadata(host_sock.parent().unwrap()).unwrap();
        assert_eq!(mode.permissions().mode() & 0o777, 0o750);
        // A stale file at the guest path is removed first.
        std::fs::write(guest.join("ok.sock"), "stale").unwrap();
        let active = start(ends, &|g| PathBuf::from(g), &log);
        assert_eq!(active.len(), 1);
        let lines_now = lines.lock().unwrap().clone();
        assert!(lines_now[0].starts_with("Forwarding "), "{lines_now:?}");
        assert!(
            lines_now
                .iter()
                .any(|l| l.contains("Failed to set up forward from")
                    && l.contains("remote port forwarding failed for listen path")
                    && l.contains("missing/x.sock")),
            "{lines_now:?}"
        );
        let meta = std::fs::metadata(guest.join("ok.sock")).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // The host server may start after the forward: it is looked up per connection.
        let early = UnixStream::connect(guest.join("ok.sock")).unwrap();
        let mut buf = Vec::new();
        (&early).read_to_end(&mut buf).unwrap();
        assert!(buf.is_empty(), "no host socket: the connection is closed");
        let server = UnixListener::bind(&host_sock).unwrap();
        std::thread::spawn(move || {
            for mut c in server.incoming().flatten() {
                let mut line = String::new();
                (&c).read_to_string(&mut line).unwrap();
                c.write_all(format!("echo:{line}").as_bytes()).unwrap();
            }
        });
        let mut c = UnixStream::connect(guest.join("ok.sock")).unwrap();
        c.write_all(b"hello").unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut reply = String::new();
        c.read_to_string(&mut reply).unwrap();
        assert_eq!(reply, "echo:hello");
        cleanup(&active, &log);
        assert!(!guest.join("ok.sock").exists());
        assert!(lines
            .lock()
            .unwrap()
            .last()
            .unwrap()
            .starts_with("Stopping forwarding"));
    }
}
