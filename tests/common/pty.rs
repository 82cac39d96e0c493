//! Pseudo-terminals for the tests: opening one, recording what is drawn on it, and reading
//! its mode. One copy for every test crate: each includes this file once, with
//! `#[path = "../common/pty.rs"] mod pty;` (or `mod tty;` where `pty` is taken).

#![allow(dead_code)]

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The two ends of a pseudo-terminal: the test holds the master, a child gets the slave.
pub struct Pair {
    pub master: File,
    pub slave: OwnedFd,
}

/// Opens a pseudo-terminal of the system's default size, both ends close-on-exec, so that
/// no other child of the test inherits them (a slave handed to a child as its stdin,
/// stdout or stderr is duplicated without the flag).
pub fn open() -> Pair {
    open_pair(None, true)
}

/// Opens a `rows` x `cols` pseudo-terminal whose descriptors are left without
/// close-on-exec, as some terminal emulators and shells leave theirs.
pub fn open_inherited(rows: u16, cols: u16) -> Pair {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    open_pair(Some(&size), false)
}

fn open_pair(size: Option<&libc::winsize>, cloexec: bool) -> Pair {
    let (mut master, mut slave): (libc::c_int, libc::c_int) = (-1, -1);
    let size = size.map_or(std::ptr::null(), |s| s as *const libc::winsize);
    // SAFETY: openpty writes two fds into valid pointers; name and termios may be null,
    // the size is null or points to a live winsize.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just returned by openpty and are owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    if cloexec {
        for fd in [&master, &slave] {
            // SAFETY: setting a flag on a descriptor we own.
            let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
            assert_eq!(rc, 0, "FD_CLOEXEC: {}", std::io::Error::last_os_error());
        }
    }
    Pair {
        master: File::from(master),
        slave,
    }
}

/// Everything read from a master, by a thread that stops when the terminal closes (a
/// master reads EIO once every slave descriptor is closed).
pub struct Recording {
    bytes: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
}

impl Recording {
    /// Starts reading `master` (a duplicate of it: the caller keeps its own).
    pub fn start(master: &File) -> Recording {
        let mut read_end = master.try_clone().expect("dup pty master");
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&bytes);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = read_end.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("pty output")
                    .extend_from_slice(&buf[..n]);
            }
        });
        Recording {
            bytes,
            reader: Some(reader),
        }
    }

    /// What was drawn so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().expect("pty output")).into_owned()
    }

    /// Waits until the terminal is closed and everything drawn is read.
    pub fn wait(&mut self) {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// Whether all the local-mode flags in `want` (`libc::ICANON`, `ECHO`, `ISIG`, ...) are on
/// for the terminal `fd`.
pub fn has_lflags(fd: &impl AsRawFd, want: libc::tcflag_t) -> bool {
    // SAFETY: termios is plain data filled in by tcgetattr.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and out-pointer.
    let rc = unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) };
    assert_eq!(rc, 0, "tcgetattr: {}", std::io::Error::last_os_error());
    t.c_lflag & want == want
}
