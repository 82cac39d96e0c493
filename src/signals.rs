//! Termination signals (SIGINT, SIGTERM, SIGHUP) become a flag instead of killing us, so a
//! session can always delete its clone before it exits with 128 + the signal number.
//!
//! The handler only stores into atomics and `write(2)`s a fixed message: both are
//! async-signal-safe. It is installed without SA_RESTART, so a blocking `waitpid` returns
//! EINTR and the waiter can forward the signal to its child.

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

static FIRST: AtomicI32 = AtomicI32::new(0);
static COUNT: AtomicU32 = AtomicU32::new(0);
/// While set, a signal also prints that cleanup is still under way.
static CLEANING: AtomicI32 = AtomicI32::new(0);

pub const HANDLED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

extern "C" fn on_signal(sig: libc::c_int) {
    let _ = FIRST.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    COUNT.fetch_add(1, Ordering::SeqCst);
    if CLEANING.load(Ordering::SeqCst) != 0 {
        const MSG: &[u8] = b"\nclaude-vm: still deleting the VM, please wait (it would be left running otherwise)\n";
        // SAFETY: write(2) is async-signal-safe; MSG is a valid static buffer.
        unsafe {
            libc::write(2, MSG.as_ptr().cast(), MSG.len());
        }
    }
}

/// Installs the handler. Idempotent.
pub fn install() {
    for sig in HANDLED {
        // SAFETY: a zeroed sigaction is valid; the handler is an extern "C" fn that only
        // touches atomics and write(2).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = 0; // no SA_RESTART: blocking waits see EINTR
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// The first termination signal received, if any.
pub fn received() -> Option<libc::c_int> {
    match FIRST.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// How many termination signals arrived so far.
pub fn count() -> u32 {
    COUNT.load(Ordering::SeqCst)
}

/// The conventional exit status for dying of `sig`.
pub fn exit_code(sig: libc::c_int) -> i32 {
    128 + sig
}

/// Marks the cleanup phase: further signals are acknowledged but do not stop it.
pub struct CleaningUp(());

impl CleaningUp {
    pub fn begin() -> CleaningUp {
        CLEANING.store(1, Ordering::SeqCst);
        CleaningUp(())
    }
}

impl Drop for CleaningUp {
    fn drop(&mut self) {
        CLEANING.store(0, Ordering::SeqCst);
    }
}

pub fn name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}
