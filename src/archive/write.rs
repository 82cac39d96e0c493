//! Writing an archive: the instance directory's template files as records (`format.rs`),
//! files read by their data extents only.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::format::{self, Record, Sizes, SIM_DISK};
use super::sparse;

/// Why the instance directory cannot be packed.
pub type Result<T> = std::result::Result<T, String>;

fn io_err(what: &str, path: &Path, e: io::Error) -> String {
    format!("cannot {what} {}: {e}", path.display())
}

/// The template's entries of instance directory `inst`, parents first. Everything that is
/// not listed in `format::INSTANCE_FILES` (or the simulator's disk) stays out; so do the
/// guest's /tmp contents (emptied at every boot), sockets and FIFOs.
pub fn scan(inst: &Path) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    let mut names: Vec<String> = fs::read_dir(inst)
        .map_err(|e| io_err("read", inst, e))?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| format::INSTANCE_FILES.contains(&n.as_str()) || n == SIM_DISK)
        .collect();
    names.sort();
    for name in names {
        entry(inst, &name, &mut out)?;
    }
    // What import would refuse is not written (a link leading out of the guest's disk).
    for rec in &out {
        format::check(rec).map_err(|why| {
            format!(
                "cannot export {}: {}",
                inst.display(),
                why.replacen("it holds", "it has", 1)
            )
        })?;
    }
    Ok(out)
}

fn entry(inst: &Path, rel: &str, out: &mut Vec<Record>) -> Result<()> {
    let path = inst.join(rel);
    let meta = fs::symlink_metadata(&path).map_err(|e| io_err("read", &path, e))?;
    let (uid, gid) = (meta.uid(), meta.gid());
    let ft = meta.file_type();
    if ft.is_dir() {
        out.push(Record::Dir {
            path: rel.to_owned(),
            mode: meta.mode() & 0o7777,
            uid,
            gid,
        });
        // The guest's /tmp is emptied at every boot: only the folder itself matters.
        if rel == "simdisk/tmp" {
            return Ok(());
        }
        let mut names: Vec<String> = Vec::new();
        for e in fs::read_dir(&path).map_err(|e| io_err("read", &path, e))? {
            let e = e.map_err(|e| io_err("read", &path, e))?;
            let name = e.file_name().into_string().map_err(|n| {
                format!(
                    "cannot export {}: the name {:?} is not UTF-8",
                    path.display(),
                    n
                )
            })?;
            names.push(name);
        }
        names.sort();
        for n in names {
            entry(inst, &format!("{rel}/{n}"), out)?;
        }
    } else if ft.is_file() {
        let file = open_nofollow(&path)?;
        let size = file.metadata().map_err(|e| io_err("read", &path, e))?.len();
        let extents = sparse::extents(&file, size).map_err(|e| io_err("read", &path, e))?;
        out.push(Record::File {
            path: rel.to_owned(),
            mode: meta.mode() & 0o7777,
            uid,
            gid,
            size,
            extents,
        });
    } else if ft.is_symlink() {
        let target = fs::read_link(&path).map_err(|e| io_err("read", &path, e))?;
        let target = target.into_os_string().into_string().map_err(|t| {
            format!(
                "cannot export the link {}: its target {t:?} is not UTF-8",
                path.display()
            )
        })?;
        out.push(Record::Link {
            path: rel.to_owned(),
            uid,
            gid,
            target,
        });
    } else if ft.is_char_device() && meta.rdev() == 0 && rel.starts_with(format::SIM_UPPER) {
        // An overlay whiteout: a file the guest deleted from the layer below.
        out.push(Record::Whiteout {
            path: rel.to_owned(),
            uid,
            gid,
        });
    } else if ft.is_socket() || ft.is_fifo() {
        // Live endpoints of a boot, nothing to carry.
    } else {
        return Err(format!(
            "cannot export {}: it is a device file, which a template disk must not hold",
            path.display()
        ));
    }
    Ok(())
}

fn open_nofollow(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| io_err("open", path, e))
}

/// Counts and hashes what passes through to the archive file.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the magic and the payload of `records` (read from `inst`) to `out`; returns the
/// sizes and the payload's SHA-256. `progress` gets the data bytes done so far.
pub fn payload(
    inst: &Path,
    records: &[Record],
    out: &mut File,
    progress: &dyn Fn(u64) -> bool,
) -> Result<(Sizes, String)> {
    let fail = |e: io::Error| format!("cannot write the archive: {e}");
    out.write_all(format::MAGIC).map_err(fail)?;
    let sink = Hashing {
        inner: BufWriter::new(&mut *out),
        hasher: Sha256::new(),
        written: 0,
    };
    let mut enc = zstd::stream::write::Encoder::new(sink, 3).map_err(fail)?;
    let mut sizes = Sizes::default();
    let mut buf = vec![0u8; 1 << 20];
    for rec in records {
        format::encode(&mut enc, rec).map_err(fail)?;
        sizes.entries += 1;
        let Record::File {
            path,
            size,
            extents,
            ..
        } = rec
        else {
            continue;
        };
        sizes.nominal_bytes += size;
        let full = inst.join(path);
        let mut file = open_nofollow(&full)?;
        for (off, len) in extents {
            file.seek(SeekFrom::Start(*off))
                .map_err(|e| io_err("read", &full, e))?;
            let mut left = *len;
            while left > 0 {
                let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
                let n = file
                    .read(&mut buf[..want])
                    .map_err(|e| io_err("read", &full, e))?;
                if n == 0 {
                    return Err(format!(
                        "{} got shorter while it was exported",
                        full.display()
                    ));
                }
                enc.write_all(&buf[..n]).map_err(fail)?;
                left -= n as u64;
                sizes.data_bytes += n as u64;
                if !progress(sizes.data_bytes) {
                    return Err("the export was interrupted".into());
                }
            }
        }
    }
    format::encode(
        &mut enc,
        &Record::End {
            count: sizes.entries,
        },
    )
    .map_err(fail)?;
    let mut sink = enc.finish().map_err(fail)?;
    sink.flush().map_err(fail)?;
    sizes.payload_bytes = sink.written;
    let digest = hex(&sink.hasher.finalize());
    Ok((sizes, digest))
}

/// Appends the manifest and the trailer.
pub fn finish(out: &mut File, manifest: &format::Manifest) -> Result<()> {
    let fail = |e: io::Error| format!("cannot write the archive: {e}");
    let text = serde_json::to_vec_pretty(manifest)
        .map_err(|e| format!("cannot encode the archive manifest: {e}"))?;
    out.write_all(&text).map_err(fail)?;
    let trailer = format::Trailer {
        format: format::FORMAT,
        payload_len: manifest.sizes.payload_bytes,
        manifest_len: text.len() as u64,
    };
    out.write_all(&trailer.encode()).map_err(fail)?;
    out.sync_all().map_err(fail)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Data bytes `records` will read.
pub fn data_bytes(records: &[Record]) -> u64 {
    records
        .iter()
        .map(|r| match r {
            Record::File { extents, .. } => extents.iter().map(|(_, l)| l).sum(),
            _ => 0,
        })
        .sum()
}
