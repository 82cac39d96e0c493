//! The terminal side of `limactl shell`, as ssh does it: Lima passes `-t` when stdout is a
//! terminal, and ssh then allocates a pseudo-terminal in the guest when stdin is one too.
//! The local terminal goes into raw mode, so a Ctrl-C typed by the user is the byte 0x03
//! for the guest (whose terminal turns it into SIGINT for the guest's foreground process,
//! or hands it to a program in raw mode, like Claude Code), not a signal on the host. The
//! mode is restored when the session ends, also when the simulator dies of a signal.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

/// The local terminal's mode before raw mode, for the signal handler.
static SAVED: OnceLock<libc::termios> = OnceLock::new();

/// Does this `limactl shell` get a guest terminal?
pub fn wanted() -> bool {
    crate::sys::isatty(0) && crate::sys::isatty(1)
}

pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A pair of descriptors, both close-on-exec, with the local window size.
pub fn open() -> io::Result<Pty> {
    let (mut m, mut s): (libc::c_int, libc::c_int) = (-1, -1);
    // SAFETY: openpty writes two descriptors; the other arguments may be null.
    check(unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    })?;
    // SAFETY: both were just returned by openpty and belong to nobody else.
    let pty = unsafe {
        Pty {
            master: OwnedFd::from_raw_fd(m),
            slave: OwnedFd::from_raw_fd(s),
        }
    };
    for fd in [m, s] {
        // SAFETY: setting a flag on a descriptor we own.
        check(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })?;
    }
    // SAFETY: winsize is plain data; both ioctls take a pointer to one.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(s, libc::TIOCSWINSZ, &ws);
        }
    }
    Ok(pty)
}

/// In the forked child: a new session with the slave as its controlling terminal and as
/// stdin, stdout and stderr (ssh merges the guest's stderr into the terminal).
pub fn attach_child(slave: RawFd) -> Result<(), String> {
    // SAFETY: plain process and descriptor calls in a freshly forked child.
    unsafe {
        if libc::setsid() < 0 {
            return Err(format!("setsid: {}", io::Error::last_os_error()));
        }
        if libc::ioctl(slave, libc::TIOCSCTTY as _, 0) < 0 {
            return Err(format!("TIOCSCTTY: {}", io::Error::last_os_error()));
        }
        for fd in 0..3 {
            if libc::dup2(slave, fd) < 0 {
                return Err(format!("dup2: {}", io::Error::last_os_error()));
            }
        }
    }
    Ok(())
}

/// Puts the local terminal (stdin) into raw mode, remembering the old mode.
pub fn enter_raw() {
    // SAFETY: termios is plain data filled in by tcgetattr.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and out-pointer.
    if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
        return;
    }
    let _ = SAVED.set(t);
    let mut raw = t;
    // SAFETY: cfmakeraw edits the struct in place.
    unsafe {
        libc::cfmakeraw(&mut raw);
        libc::tcsetattr(0, libc::TCSADRAIN, &raw);
    }
}

/// Restores the local terminal's mode. Async-signal-safe (tcsetattr is), so the signal
/// handler can call it before the simulator dies.
pub fn restore() {
    if let Some(t) = SAVED.get() {
        // SAFETY: a valid descriptor and the termios saved by enter_raw.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, t);
        }
    }
}

fn read(fd: RawFd, buf: &mut [u8]) -> isize {
    loop {
        // SAFETY: reading into a valid buffer.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return n;
    }
}

fn write_all(fd: RawFd, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        // SAFETY: writing from a valid buffer.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        buf = &buf[n as usize..];
    }
    true
}

/// Relays keystrokes to the guest and its output back, on threads (started after the
/// fork). Returns a receiver that fires when the guest side has closed.
pub fn relay(master: &OwnedFd) -> io::Result<mpsc::Receiver<()>> {
    let to_guest = master.try_clone()?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let n = read(0, &mut buf);
            if n <= 0 || !write_all(to_guest.as_raw_fd(), &buf[..n as usize]) {
                break;
            }
        }
    });
    let from_guest = master.try_clone()?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            // EIO once every guest holder of the terminal has closed it.
            let n = read(from_guest.as_raw_fd(), &mut buf);
            if n <= 0 || !write_all(1, &buf[..n as usize]) {
                break;
            }
        }
        let _ = tx.send(());
    });
    Ok(rx)
}

/// After the guest command exited: let its last output through (briefly; a background
/// process may keep the terminal open), then restore the local terminal.
pub fn finish(done: &mpsc::Receiver<()>) {
    let _ = done.recv_timeout(Duration::from_millis(500));
    restore();
}
