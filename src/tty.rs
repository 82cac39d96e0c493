//! The terminal's mode around an interactive `limactl shell`.
//!
//! With a terminal, `limactl shell` runs ssh with `-t`: ssh puts the terminal into raw mode, so
//! Ctrl-C is a keystroke for claude in the VM, not a signal for us. ssh restores the mode when
//! it exits normally; when it is killed (a second signal makes us SIGKILL it) it cannot, so we
//! put back what we saved.

use std::os::fd::RawFd;

pub struct Saved {
    fd: RawFd,
    termios: libc::termios,
}

/// The mode of stdin, when stdin is a terminal and we are in its foreground.
pub fn save_stdin() -> Option<Saved> {
    let fd = libc::STDIN_FILENO;
    if !in_foreground(fd) {
        return None;
    }
    // SAFETY: termios is plain data filled in by tcgetattr.
    let mut termios: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and out-pointer.
    if unsafe { libc::tcgetattr(fd, &mut termios) } != 0 {
        return None;
    }
    Some(Saved { fd, termios })
}

impl Saved {
    /// Puts the saved mode back. Only from the foreground: a background process changing the
    /// mode would be stopped with SIGTTOU.
    pub fn restore(&self) {
        if in_foreground(self.fd) {
            // SAFETY: a valid descriptor and a termios from tcgetattr.
            unsafe {
                libc::tcsetattr(self.fd, libc::TCSANOW, &self.termios);
            }
        }
    }
}

fn in_foreground(fd: RawFd) -> bool {
    // SAFETY: isatty, tcgetpgrp and getpgrp only inspect state.
    unsafe { libc::isatty(fd) == 1 && libc::tcgetpgrp(fd) == libc::getpgrp() }
}
