//! Termination signals (SIGINT, SIGTERM, SIGHUP) become a flag instead of killing us, so a
//! session can always delete its clone before it exits with 128 + the signal number.
//!
//! The handler only stores into atomics and `write(2)`s a fixed message: both are
//! async-signal-safe. It is installed without SA_RESTART, so a blocking `waitpid` or `flock`
//! returns EINTR and the waiter can react (forward the signal, give up waiting).
//!
//! During cleanup a signal does not stop anything: the first one says that the VM is still
//! being deleted, a second one stops *waiting* for the delete (which runs on, detached) and
//! leaves the journal entry, so the next claude-vm command finishes the job. Nothing is
//! abandoned silently. A SIGHUP counts only as the first signal: a hang-up is nobody asking
//! twice.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

static FIRST: AtomicI32 = AtomicI32::new(0);
static COUNT: AtomicU32 = AtomicU32::new(0);
/// While set, a signal also prints that cleanup is still under way.
static CLEANING: AtomicBool = AtomicBool::new(false);
/// Signals received since the current cleanup began.
static DURING_CLEANUP: AtomicU32 = AtomicU32::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Signals during one cleanup after which we stop waiting for it.
pub const GIVE_UP_AFTER: u32 = 2;

pub const HANDLED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGHUP {
        // A hang-up is never a second request: the terminal or the parent that started us is
        // gone, and nobody asked twice. (A multi-threaded parent that dies sends its death
        // signal once per thread the child is handed to on the way: up to several at once.)
        if COUNT
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return;
        }
    } else {
        COUNT.fetch_add(1, Ordering::SeqCst);
    }
    let _ = FIRST.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    if CLEANING.load(Ordering::SeqCst) {
        let n = DURING_CLEANUP.fetch_add(1, Ordering::SeqCst) + 1;
        const WAIT: &[u8] =
            b"\nclaude-vm: still deleting the VM (it would be left running otherwise); \
press Ctrl-C once more to stop waiting and leave it to the next claude-vm command\n";
        const LEAVE: &[u8] = b"\nclaude-vm: no longer waiting for the VM to be deleted\n";
        let msg = if n >= GIVE_UP_AFTER { LEAVE } else { WAIT };
        // SAFETY: write(2) is async-signal-safe; msg is a valid static buffer.
        unsafe {
            libc::write(2, msg.as_ptr().cast(), msg.len());
        }
    }
}

fn set_all(handler: libc::sighandler_t) {
    for sig in HANDLED {
        // SAFETY: a zeroed sigaction is valid; the handler is either SIG_DFL or an
        // extern "C" fn that only touches atomics and write(2).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = 0; // no SA_RESTART: blocking waits see EINTR
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Installs the handler. Idempotent.
pub fn install() {
    set_all(on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
    INSTALLED.store(true, Ordering::SeqCst);
}

/// Handlers for a stretch of work that must not be cut short (reaping old VMs), restored to
/// the default on drop unless something else had installed them before: a later prompt must
/// stay interruptible by Ctrl-C.
pub struct Scope {
    installed_here: bool,
}

impl Scope {
    pub fn enter() -> Scope {
        let installed_here = !INSTALLED.load(Ordering::SeqCst);
        if installed_here {
            install();
        }
        Scope { installed_here }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if self.installed_here {
            set_all(libc::SIG_DFL);
            INSTALLED.store(false, Ordering::SeqCst);
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

/// True once the user asked twice during the current cleanup to stop waiting for it.
pub fn gave_up_cleanup() -> bool {
    CLEANING.load(Ordering::SeqCst) && DURING_CLEANUP.load(Ordering::SeqCst) >= GIVE_UP_AFTER
}

/// The conventional exit status for dying of `sig`.
pub fn exit_code(sig: libc::c_int) -> i32 {
    128 + sig
}

/// Marks the cleanup phase: further signals are acknowledged but do not stop it.
pub struct CleaningUp(());

impl CleaningUp {
    pub fn begin() -> CleaningUp {
        DURING_CLEANUP.store(0, Ordering::SeqCst);
        CLEANING.store(true, Ordering::SeqCst);
        CleaningUp(())
    }
}

impl Drop for CleaningUp {
    fn drop(&mut self) {
        CLEANING.store(false, Ordering::SeqCst);
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

/// The error of work stopped by a signal.
pub fn interrupted(sig: libc::c_int) -> crate::error::Error {
    crate::error::Error::failure(format!("interrupted by {}", name(sig)))
}

/// A step that failed because we were asked to stop reads as the interruption, not as a
/// broken Lima (the signal killed limactl too).
pub fn explain(err: impl Into<crate::error::Error>) -> crate::error::Error {
    match received() {
        Some(sig) => interrupted(sig),
        None => err.into(),
    }
}

/// Fails when a termination signal has arrived: checked between steps.
pub fn check() -> crate::error::Result<()> {
    match received() {
        Some(sig) => Err(interrupted(sig)),
        None => Ok(()),
    }
}
