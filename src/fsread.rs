//! Reading small files that someone else may have replaced by a FIFO, a device or something
//! huge: the file is opened without blocking, checked on its descriptor (what is checked is
//! what is read) and never read beyond the limit.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Why a file was refused (the io::Error's message, kind InvalidData).
pub fn refused(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Opens `path` for reading if it is a regular file of at most `max` bytes.
pub fn open_regular(path: &Path, max: u64) -> io::Result<File> {
    // O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refused(
            "it is not a regular file (a FIFO, device, socket or directory)",
        ));
    }
    if meta.len() > max {
        return Err(refused(format!(
            "it is {} bytes, more than the {max} allowed",
            meta.len()
        )));
    }
    Ok(file)
}

/// The largest project configuration file read.
pub const CONFIG_MAX: u64 = 1 << 20;
/// The largest script (setup, runtime, packages) copied into a VM.
pub const SCRIPT_MAX: u64 = 16 << 20;

/// The bytes of `path` if it is a regular file of at most `max` bytes (also if it grows
/// while being read: reading stops past the limit).
pub fn read_regular(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let file = open_regular(path, max)?;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(refused(format!("it grew beyond the {max} bytes allowed")));
    }
    Ok(bytes)
}

/// Like `read_regular`, as UTF-8 text.
pub fn small_regular_file(path: &Path, max: u64) -> io::Result<String> {
    String::from_utf8(read_regular(path, max)?).map_err(|_| refused("it is not UTF-8 text"))
}

/// Whether a project script at `path` is there: false if nothing is, true for a regular file
/// (through links) of at most `max` bytes, an error for anything else, which must not be
/// skipped silently nor read.
pub fn present(path: &Path, max: u64) -> io::Result<bool> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
        Ok(m) if !m.is_file() => Err(refused(
            "it is not a regular file (a FIFO, device, socket or directory)",
        )),
        Ok(m) if m.len() > max => Err(refused(format!(
            "it is {} bytes, more than the {max} allowed",
            m.len()
        ))),
        Ok(_) => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn regular_small_files_are_read() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a");
        std::fs::write(&p, "hello").unwrap();
        assert_eq!(small_regular_file(&p, 5).unwrap(), "hello");
        let e = small_regular_file(&p, 4).unwrap_err();
        assert!(e.to_string().contains("more than the 4"), "{e}");
    }

    #[test]
    fn fifos_devices_and_directories_are_refused_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let started = Instant::now();
        for p in [fifo.as_path(), Path::new("/dev/zero"), tmp.path()] {
            let e = small_regular_file(p, 1 << 20).unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{p:?}: {e}");
        }
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
