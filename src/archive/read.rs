//! Reading an archive: the trailer and manifest, a verifying pass (checksum and every
//! record) that writes nothing, then unpacking into a fresh folder with holes recreated.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::format::{self, DecodeError, Manifest, Record, Trailer};

pub type Result<T> = std::result::Result<T, String>;

/// An archive whose framing and manifest were read (nothing verified beyond that).
pub struct Opened {
    file: File,
    trailer: Trailer,
    pub manifest: Manifest,
}

/// Reads the trailer and the manifest; refuses a file of a newer format first.
pub fn open(path: &Path) -> Result<Opened> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot open it: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err("it is not a regular file".into());
    }
    let len = meta.len();
    let mut magic = [0u8; 8];
    if file.read_exact(&mut magic).is_err() || &magic != format::MAGIC {
        return Err("it is not a claude-vm template archive (no archive header)".into());
    }
    if len < format::MAGIC.len() as u64 + format::TRAILER_LEN {
        return Err("it is truncated (shorter than an empty archive)".into());
    }
    let mut tail = [0u8; format::TRAILER_LEN as usize];
    file.seek(SeekFrom::End(-(format::TRAILER_LEN as i64)))
        .and_then(|_| file.read_exact(&mut tail))
        .map_err(|e| format!("cannot read it: {e}"))?;
    let trailer = Trailer::decode(&tail, len)?;
    let mut text = vec![0u8; trailer.manifest_len as usize];
    file.seek(SeekFrom::Start(
        format::MAGIC.len() as u64 + trailer.payload_len,
    ))
    .and_then(|_| file.read_exact(&mut text))
    .map_err(|e| format!("cannot read its manifest: {e}"))?;
    // The format first: a newer manifest may not parse as this one.
    let format_only: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("its manifest is damaged: {e}"))?;
    if let Some(f) = format_only.get("format").and_then(|f| f.as_u64()) {
        if f > u64::from(format::FORMAT) {
            return Err(format::newer(u32::try_from(f).unwrap_or(u32::MAX)));
        }
    }
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|e| format!("its manifest is damaged: {e}"))?;
    if manifest.format != trailer.format {
        return Err(format!(
            "its manifest says format {} but its frame says {}: the file is damaged",
            manifest.format, trailer.format
        ));
    }
    Ok(Opened {
        file,
        trailer,
        manifest,
    })
}

/// Hashes what is read through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// What the verifying pass learnt.
#[derive(Debug, Default)]
pub struct Summary {
    pub entries: u64,
    pub data_bytes: u64,
    pub has_config: bool,
}

impl Opened {
    fn payload(&self) -> Result<impl Read + '_> {
        let mut f = &self.file;
        f.seek(SeekFrom::Start(format::MAGIC.len() as u64))
            .map_err(|e| format!("cannot read it: {e}"))?;
        Ok(BufReader::new(f.take(self.trailer.payload_len)))
    }

    /// Checks the payload's SHA-256 and decodes every record (data discarded): nothing is
    /// written. A damaged payload whose checksum is also wrong is reported as the checksum.
    pub fn verify(&self) -> Result<Summary> {
        let mut hashing = Hashing {
            inner: self.payload()?,
            hasher: Sha256::new(),
        };
        let mut summary = Summary::default();
        let decoded = match zstd::stream::read::Decoder::new(&mut hashing) {
            Ok(mut dec) => walk(&mut dec, &mut |rec, data| {
                if let Record::File { path, .. } = rec {
                    summary.has_config |= path == "lima.yaml";
                    summary.data_bytes += io::copy(data, &mut io::sink())?;
                }
                summary.entries += 1;
                Ok(())
            }),
            Err(e) => Err(DecodeError::Io(e)),
        };
        // Whatever the decoder left unread is hashed too (trailing bytes are tampering).
        let rest =
            io::copy(&mut hashing, &mut io::sink()).map_err(|e| format!("cannot read it: {e}"))?;
        let actual = super::write::hex(&hashing.hasher.finalize());
        if actual != self.manifest.payload_sha256 {
            return Err(format!(
                "its checksum does not match: the payload's SHA-256 is {actual}, the manifest says {} (the file was changed or damaged)",
                self.manifest.payload_sha256
            ));
        }
        decoded.map_err(|e| e.to_string())?;
        if rest > 0 {
            return Err("it has data after the end of its payload".into());
        }
        if !summary.has_config {
            return Err("it holds no lima.yaml (not a template)".into());
        }
        Ok(summary)
    }

    /// Unpacks into `dest`, an empty folder this process made. Holes are recreated (the
    /// file's length set, only data extents written); links are made last, so nothing is
    /// ever written through one; set-user/group-ID bits are dropped; owners are kept when
    /// running as root. Call `verify` first.
    pub fn unpack(&self, dest: &Path, progress: &dyn Fn(u64) -> bool) -> Result<()> {
        let mut dec = zstd::stream::read::Decoder::new(self.payload()?)
            .map_err(|e| format!("cannot read it: {e}"))?;
        let root = unsafe_is_root();
        let mut dirs: Vec<(String, u32, u32, u32)> = Vec::new();
        let mut links: Vec<(String, String, u32, u32)> = Vec::new();
        let mut done = 0u64;
        walk(&mut dec, &mut |rec, data| {
            match rec {
                Record::Dir { path, mode, uid, gid } => {
                    let p = dest.join(path);
                    fs::DirBuilder::new().mode(0o700).create(&p)?;
                    dirs.push((path.clone(), *mode, *uid, *gid));
                }
                Record::File { path, mode, uid, gid, size, extents } => {
                    let p = dest.join(path);
                    let mut f = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .custom_flags(libc::O_NOFOLLOW)
                        .open(&p)?;
                    f.set_len(*size)?;
                    let mut buf = vec![0u8; 1 << 20];
                    for (off, len) in extents {
                        f.seek(SeekFrom::Start(*off))?;
                        let mut left = *len;
                        while left > 0 {
                            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
                            data.read_exact(&mut buf[..want])?;
                            f.write_all(&buf[..want])?;
                            left -= want as u64;
                            done += want as u64;
                            if !progress(done) {
                                return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
                            }
                        }
                    }
                    f.set_permissions(fs::Permissions::from_mode(format::safe_mode(*mode, false)))?;
                    if root {
                        std::os::unix::fs::fchown(&f, Some(*uid), Some(*gid))?;
                    }
                }
                Record::Link { path, target, uid, gid } => {
                    links.push((path.clone(), target.clone(), *uid, *gid));
                }
                Record::Whiteout { path, uid, gid } => {
                    let p = dest.join(path);
                    let c = CString::new(p.as_os_str().as_bytes())
                        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))?;
                    // SAFETY: mknod with a valid C string; a 0/0 character device is an
                    // overlay whiteout.
                    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, 0) } != 0 {
                        let e = io::Error::last_os_error();
                        return Err(io::Error::new(
                            e.kind(),
                            format!("cannot recreate the overlay whiteout {path} (it needs root, as the simulator's own clone does): {e}"),
                        ));
                    }
                    if root {
                        std::os::unix::fs::lchown(&p, Some(*uid), Some(*gid))?;
                    }
                }
                Record::End { .. } => {}
            }
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        for (path, target, uid, gid) in &links {
            let p = dest.join(path);
            std::os::unix::fs::symlink(target, &p)
                .map_err(|e| format!("cannot create the link {path}: {e}"))?;
            if root {
                std::os::unix::fs::lchown(&p, Some(*uid), Some(*gid))
                    .map_err(|e| format!("cannot set the owner of {path}: {e}"))?;
            }
        }
        // Deepest first, so a read-only folder is closed only once its contents are in.
        for (path, mode, uid, gid) in dirs.iter().rev() {
            let p = dest.join(path);
            let dir = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY)
                .open(&p)
                .map_err(|e| format!("cannot open {path}: {e}"))?;
            if root {
                std::os::unix::fs::fchown(&dir, Some(*uid), Some(*gid))
                    .map_err(|e| format!("cannot set the owner of {path}: {e}"))?;
            }
            dir.set_permissions(fs::Permissions::from_mode(format::safe_mode(*mode, true)))
                .map_err(|e| format!("cannot set the mode of {path}: {e}"))?;
        }
        Ok(())
    }
}

fn unsafe_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Decodes every record, handing each (and a file's data) to `visit`. Structure is checked
/// here: each path once, its folder an earlier directory record (so nothing lies under a
/// link or a file), a file's data read exactly, the end record's count right, nothing after.
fn walk(
    r: &mut impl Read,
    visit: &mut dyn FnMut(&Record, &mut dyn Read) -> io::Result<()>,
) -> std::result::Result<(), DecodeError> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut dirs: HashSet<String> = HashSet::new();
    let mut count = 0u64;
    loop {
        let rec = format::decode(r)?;
        if let Record::End { count: n } = rec {
            if n != count {
                return Err(DecodeError::Bad(format!(
                    "its payload ends after {count} entries but says {n} (truncated or damaged)"
                )));
            }
            let mut extra = [0u8; 1];
            if r.read(&mut extra)? != 0 {
                return Err(DecodeError::Bad(
                    "it has data after the end of its payload".into(),
                ));
            }
            return Ok(());
        }
        let path = rec.path().unwrap_or_default().to_owned();
        if !seen.insert(path.clone()) {
            return Err(DecodeError::Bad(format!("it holds {path:?} twice")));
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            if !dirs.contains(parent) {
                return Err(DecodeError::Bad(format!(
                    "it holds {path:?} before (or without) its folder"
                )));
            }
        }
        if let Record::Dir { .. } = rec {
            dirs.insert(path.clone());
        }
        let want = match &rec {
            Record::File { extents, .. } => extents.iter().map(|(_, l)| l).sum(),
            _ => 0,
        };
        let mut data = (&mut *r).take(want);
        visit(&rec, &mut data).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => DecodeError::Bad(format!(
                "its payload ends in the middle of {path:?} (truncated)"
            )),
            _ => DecodeError::Bad(format!("cannot unpack {path:?}: {e}")),
        })?;
        if data.limit() != 0 {
            return Err(DecodeError::Bad(format!(
                "its payload ends in the middle of {path:?} (truncated)"
            )));
        }
        count += 1;
    }
}
