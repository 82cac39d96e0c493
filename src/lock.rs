//! Advisory file locks (flock) between claude-vm processes. The kernel drops a lock when its
//! holder dies, even by SIGKILL, so a crash never leaves a project locked.
//!
//! Per template (project) there are two:
//! - the *setup* lock, exclusive, held for a whole build: two setups never build at once;
//! - the *template* lock, a readers-writer lock: sessions hold it shared while they read the
//!   manifest or clone the template; setup holds it exclusively while it swaps a rebuilt
//!   template in (delete old + rename new + write the manifest), so no session clones a
//!   template that is half gone.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::paths::HostPaths;
use crate::signals;

/// Held until dropped (closing the file releases the lock).
#[derive(Debug)]
pub struct Lock {
    file: File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Shared,
    Exclusive,
}

pub fn setup_lock(paths: &HostPaths, template: &str) -> PathBuf {
    paths
        .locks_dir()
        .join(crate::filenames::setup_lock(template))
}

pub fn template_lock(paths: &HostPaths, template: &str) -> PathBuf {
    paths
        .locks_dir()
        .join(crate::filenames::template_lock(template))
}

fn open(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).io_context("create", dir)?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .io_context("open the lock file", path)
}

fn flock(file: &File, op: libc::c_int) -> io::Result<()> {
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn op(mode: Mode) -> libc::c_int {
    match mode {
        Mode::Shared => libc::LOCK_SH,
        Mode::Exclusive => libc::LOCK_EX,
    }
}

/// Takes the lock at `path`. If someone else holds it, `waiting` is called once with what the
/// holder wrote into the file (empty if nothing), then we block. A termination signal while
/// blocked ends the wait with an "interrupted" error (the handler has no SA_RESTART).
pub fn acquire(path: &Path, mode: Mode, waiting: impl FnOnce(&str)) -> Result<Lock> {
    let mut file = open(path)?;
    match flock(&file, op(mode) | libc::LOCK_NB) {
        Ok(()) => return Ok(Lock { file }),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {}
        Err(e) => return Err(Error::io("lock", path, e)),
    }
    let mut holder = String::new();
    let _ = file.read_to_string(&mut holder);
    waiting(holder.trim());
    loop {
        signals::check()?;
        match flock(&file, op(mode)) {
            Ok(()) => return Ok(Lock { file }),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("lock", path, e)),
        }
    }
}

/// The lock if it is free right now.
pub fn try_acquire(path: &Path, mode: Mode) -> Result<Option<Lock>> {
    let file = open(path)?;
    match flock(&file, op(mode) | libc::LOCK_NB) {
        Ok(()) => Ok(Some(Lock { file })),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(None),
        Err(e) => Err(Error::io("lock", path, e)),
    }
}

impl Lock {
    /// Tells later waiters who holds the lock (exclusive locks only).
    pub fn announce(&mut self, holder: &str) {
        let _ = self
            .file
            .set_len(0)
            .and_then(|_| self.file.seek(SeekFrom::Start(0)))
            .and_then(|_| self.file.write_all(holder.as_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_locks_coexist_and_exclude_an_exclusive_one() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("locks/t.lock");
        let a = try_acquire(&path, Mode::Shared)
            .unwrap()
            .expect("first reader");
        let b = try_acquire(&path, Mode::Shared)
            .unwrap()
            .expect("second reader");
        assert!(try_acquire(&path, Mode::Exclusive).unwrap().is_none());
        drop(a);
        assert!(try_acquire(&path, Mode::Exclusive).unwrap().is_none());
        drop(b);
        let mut w = try_acquire(&path, Mode::Exclusive)
            .unwrap()
            .expect("writer after readers left");
        w.announce("pid 42");
        let mut seen = String::new();
        let r = acquire(&tmp.path().join("other.lock"), Mode::Shared, |h| {
            seen = h.to_owned()
        })
        .unwrap();
        assert_eq!(seen, "", "a free lock never waits");
        drop(r);
        assert!(try_acquire(&path, Mode::Shared).unwrap().is_none());
        drop(w);
        assert!(try_acquire(&path, Mode::Shared).unwrap().is_some());
    }

    #[test]
    fn a_waiter_learns_the_holder_and_gets_the_lock_once_it_is_free() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s.lock");
        let mut held = try_acquire(&path, Mode::Exclusive).unwrap().unwrap();
        held.announce("pid 7");
        let p = path.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            // flock locks belong to the open file, so a thread of the same process waits too.
            let lock = acquire(&p, Mode::Exclusive, |h| tx.send(h.to_owned()).unwrap()).unwrap();
            drop(lock);
        });
        // The waiter reports the holder just before it blocks.
        assert_eq!(rx.recv().unwrap(), "pid 7");
        drop(held);
        waiter.join().unwrap();
    }
}
