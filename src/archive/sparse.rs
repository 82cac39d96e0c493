//! Where a file holds data: SEEK_DATA/SEEK_HOLE, so a sparse disk image is read (and
//! written back) by its data only, never by its nominal size.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

fn seek(file: &File, offset: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    let off = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
    // SAFETY: lseek on a descriptor we own; it only moves the file offset.
    let r = unsafe { libc::lseek(file.as_raw_fd(), off, whence) };
    if r >= 0 {
        return Ok(Some(r as u64));
    }
    let e = io::Error::last_os_error();
    // ENXIO: no data (or hole) at or after `offset`.
    if e.raw_os_error() == Some(libc::ENXIO) {
        Ok(None)
    } else {
        Err(e)
    }
}

/// The data extents (offset, length) of `file`, whose length is `size`, in order. A file
/// system without SEEK_DATA (EINVAL) counts as all data.
pub fn extents(file: &File, size: u64) -> io::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let start = match seek(file, pos, libc::SEEK_DATA) {
            Ok(Some(s)) => s,
            Ok(None) => break,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && pos == 0 => {
                return Ok(vec![(0, size)]);
            }
            Err(e) => return Err(e),
        };
        if start >= size {
            break;
        }
        let end = seek(file, start, libc::SEEK_HOLE)?
            .unwrap_or(size)
            .min(size);
        if end <= start {
            break;
        }
        out.push((start, end - start));
        pos = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    #[test]
    fn a_sparse_file_is_its_data_extents() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("disk");
        let mut f = File::create(&path).unwrap();
        let size = 8u64 << 30;
        f.set_len(size).unwrap();
        f.seek(SeekFrom::Start(1 << 30)).unwrap();
        f.write_all(&[7u8; 65536]).unwrap();
        f.sync_all().unwrap();
        let f = File::open(&path).unwrap();
        let ex = extents(&f, size).unwrap();
        let data: u64 = ex.iter().map(|(_, l)| l).sum();
        assert!(!ex.is_empty());
        assert!(data < 4 << 20, "only the written block counts: {ex:?}");
        assert!(ex
            .iter()
            .all(|(o, l)| *o <= 1 << 30 && o + l >= (1 << 30) + 65536 || o + l <= size));
        // An empty file has none; a dense one is one extent.
        let e = tmp.path().join("e");
        File::create(&e).unwrap();
        assert!(extents(&File::open(&e).unwrap(), 0).unwrap().is_empty());
        let d = tmp.path().join("d");
        std::fs::write(&d, b"hello").unwrap();
        assert_eq!(extents(&File::open(&d).unwrap(), 5).unwrap(), vec![(0, 5)]);
    }
}
