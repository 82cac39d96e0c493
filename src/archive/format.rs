//! The template archive format (`claude-vm export`/`import`), pure: framing, the manifest and
//! the records of the payload, each checked as it is decoded.
//!
//! ```text
//! file     = MAGIC payload manifest trailer
//! payload  = one zstd stream of records (the instance directory)
//! manifest = JSON (`Manifest`)
//! trailer  = TRAILER_MAGIC, format u32, 0u32, payload length u64, manifest length u64 (LE)
//! record   = 'D' path mode uid gid                      a directory
//!          | 'F' path mode uid gid size n (offset len)*n  then the n extents' bytes
//!          | 'L' path uid gid target                    a guest symlink, as data
//!          | 'W' path uid gid                           an overlay whiteout (sim disk only)
//!          | 'Z' count                                  the end: how many records came before
//! path, target = u16 length + UTF-8 bytes; numbers little-endian
//! ```
//!
//! The manifest sits at the end because its checksum covers the payload, written first; the
//! fixed-size trailer says where everything is, so a truncated file is told from a whole one
//! by its size alone.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

pub const MAGIC: &[u8; 8] = b"CVMTMPL\n";
pub const TRAILER_MAGIC: &[u8; 8] = b"CVMTEND\n";
pub const TRAILER_LEN: u64 = 32;
/// The format this claude-vm writes and the newest it reads.
pub const FORMAT: u32 = 1;
/// Longest path or link target in a record.
pub const MAX_PATH: usize = 4096;
/// Most extents one file may have (a disk image fragmented beyond this is refused).
pub const MAX_EXTENTS: u32 = 1 << 20;

/// What the archive says about itself, checked before anything is written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub claude_vm_version: String,
    pub lima_version: String,
    /// Lima's name for the guest architecture (`x86_64`, `aarch64`).
    pub arch: String,
    /// `vz` or `qemu`.
    pub vm_type: String,
    /// Seconds since the epoch.
    pub exported_at: u64,
    /// The guest user the template was built for.
    pub guest_user: GuestUser,
    /// The template's record (image, tools, fingerprint, setup flags) as the exporter had it.
    pub template: crate::template::Manifest,
    pub credentials: Credentials,
    pub sizes: Sizes,
    /// SHA-256 (hex) of the payload's bytes as stored (compressed).
    pub payload_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestUser {
    pub name: String,
    pub uid: u32,
    pub home: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// `--include-credentials` was given.
    pub included: bool,
    /// Credential files the template held (guest paths under the home, `~/...`); removed
    /// from the archive unless `included`.
    pub found: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sizes {
    pub entries: u64,
    /// Sum of the files' lengths, holes included.
    pub nominal_bytes: u64,
    /// Bytes of data actually read and stored (uncompressed).
    pub data_bytes: u64,
    /// The compressed payload.
    pub payload_bytes: u64,
}

/// Where the parts of an archive file are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    pub format: u32,
    pub payload_len: u64,
    pub manifest_len: u64,
}

impl Trailer {
    pub fn encode(&self) -> [u8; TRAILER_LEN as usize] {
        let mut out = [0u8; TRAILER_LEN as usize];
        out[..8].copy_from_slice(TRAILER_MAGIC);
        out[8..12].copy_from_slice(&self.format.to_le_bytes());
        out[16..24].copy_from_slice(&self.payload_len.to_le_bytes());
        out[24..32].copy_from_slice(&self.manifest_len.to_le_bytes());
        out
    }

    /// The trailer of a file of `file_len` bytes whose last 32 bytes are `bytes`.
    pub fn decode(bytes: &[u8], file_len: u64) -> Result<Trailer, String> {
        if bytes.len() != TRAILER_LEN as usize || &bytes[..8] != TRAILER_MAGIC {
            return Err(
                "its end is missing (the file is truncated, or not a claude-vm template archive)"
                    .into(),
            );
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let t = Trailer {
            format: u32_at(8),
            payload_len: u64_at(16),
            manifest_len: u64_at(24),
        };
        if t.format > FORMAT {
            return Err(newer(t.format));
        }
        let expected = (MAGIC.len() as u64)
            .checked_add(t.payload_len)
            .and_then(|n| n.checked_add(t.manifest_len))
            .and_then(|n| n.checked_add(TRAILER_LEN));
        if expected != Some(file_len) {
            return Err(format!(
                "its size ({file_len} bytes) is not the size its end records (the file is truncated or damaged)"
            ));
        }
        if t.manifest_len > 16 << 20 {
            return Err("its manifest is larger than 16 MiB".into());
        }
        Ok(t)
    }
}

pub fn newer(format: u32) -> String {
    format!(
        "it was written in archive format {format} by a newer claude-vm; this one reads format {FORMAT}"
    )
}

/// One entry of the instance directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Dir {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    File {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
        size: u64,
        extents: Vec<(u64, u64)>,
    },
    Link {
        path: String,
        uid: u32,
        gid: u32,
        target: String,
    },
    Whiteout {
        path: String,
        uid: u32,
        gid: u32,
    },
    End {
        count: u64,
    },
}

impl Record {
    pub fn path(&self) -> Option<&str> {
        match self {
            Record::Dir { path, .. }
            | Record::File { path, .. }
            | Record::Link { path, .. }
            | Record::Whiteout { path, .. } => Some(path),
            Record::End { .. } => None,
        }
    }
}

fn put_str(w: &mut impl Write, s: &str) -> io::Result<()> {
    let len = u16::try_from(s.len())
        .ok()
        .filter(|n| usize::from(*n) <= MAX_PATH)
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("path too long: {s}"))
        })?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(s.as_bytes())
}

/// Writes a record's header (a file's extent bytes follow, written by the caller).
pub fn encode(w: &mut impl Write, r: &Record) -> io::Result<()> {
    let head = |w: &mut dyn Write, tag: u8| w.write_all(&[tag]);
    match r {
        Record::Dir {
            path,
            mode,
            uid,
            gid,
        } => {
            head(w, b'D')?;
            put_str(w, path)?;
            for n in [*mode, *uid, *gid] {
                w.write_all(&n.to_le_bytes())?;
            }
        }
        Record::File {
            path,
            mode,
            uid,
            gid,
            size,
            extents,
        } => {
            head(w, b'F')?;
            put_str(w, path)?;
            for n in [*mode, *uid, *gid] {
                w.write_all(&n.to_le_bytes())?;
            }
            w.write_all(&size.to_le_bytes())?;
            let n = u32::try_from(extents.len()).unwrap_or(u32::MAX);
            w.write_all(&n.to_le_bytes())?;
            for (off, len) in extents {
                w.write_all(&off.to_le_bytes())?;
                w.write_all(&len.to_le_bytes())?;
            }
        }
        Record::Link {
            path,
            uid,
            gid,
            target,
        } => {
            head(w, b'L')?;
            put_str(w, path)?;
            for n in [*uid, *gid] {
                w.write_all(&n.to_le_bytes())?;
            }
            put_str(w, target)?;
        }
        Record::Whiteout { path, uid, gid } => {
            head(w, b'W')?;
            put_str(w, path)?;
            for n in [*uid, *gid] {
                w.write_all(&n.to_le_bytes())?;
            }
        }
        Record::End { count } => {
            head(w, b'Z')?;
            w.write_all(&count.to_le_bytes())?;
        }
    }
    Ok(())
}

/// Why a payload cannot be decoded.
#[derive(Debug)]
pub enum DecodeError {
    Io(io::Error),
    Bad(String),
}

impl From<io::Error> for DecodeError {
    fn from(e: io::Error) -> Self {
        DecodeError::Io(e)
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                f.write_str("its payload ends in the middle of an entry (truncated)")
            }
            DecodeError::Io(e) => write!(f, "its payload cannot be read: {e}"),
            DecodeError::Bad(m) => f.write_str(m),
        }
    }
}

fn bad(m: impl Into<String>) -> DecodeError {
    DecodeError::Bad(m.into())
}

fn get_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn get_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn get_str(r: &mut impl Read, what: &str) -> Result<String, DecodeError> {
    let mut b = [0u8; 2];
    r.read_exact(&mut b)?;
    let len = usize::from(u16::from_le_bytes(b));
    if len > MAX_PATH {
        return Err(bad(format!(
            "an entry's {what} is longer than {MAX_PATH} bytes"
        )));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    String::from_utf8(buf).map_err(|_| bad(format!("an entry's {what} is not UTF-8")))
}

/// Reads the next record's header; the caller consumes a file's extent bytes. The path is
/// checked (`check_path`); a file's extents must be ordered, disjoint and inside its size.
pub fn decode(r: &mut impl Read) -> Result<Record, DecodeError> {
    let mut tag = [0u8; 1];
    r.read_exact(&mut tag)?;
    let rec = match tag[0] {
        b'D' => {
            let path = get_str(r, "path")?;
            Record::Dir { path, mode: get_u32(r)?, uid: get_u32(r)?, gid: get_u32(r)? }
        }
        b'F' => {
            let path = get_str(r, "path")?;
            let (mode, uid, gid) = (get_u32(r)?, get_u32(r)?, get_u32(r)?);
            let size = get_u64(r)?;
            let n = get_u32(r)?;
            if n > MAX_EXTENTS {
                return Err(bad(format!("the entry {path:?} has more than {MAX_EXTENTS} extents")));
            }
            let mut extents = Vec::with_capacity(n as usize);
            let mut end = 0u64;
            for _ in 0..n {
                let (off, len) = (get_u64(r)?, get_u64(r)?);
                let stop = off.checked_add(len).filter(|s| *s <= size);
                if off < end || stop.is_none() || len == 0 {
                    return Err(bad(format!("the entry {path:?} has overlapping or out-of-range extents")));
                }
                end = stop.unwrap_or(size);
                extents.push((off, len));
            }
            Record::File { path, mode, uid, gid, size, extents }
        }
        b'L' => {
            let path = get_str(r, "path")?;
            let (uid, gid) = (get_u32(r)?, get_u32(r)?);
            Record::Link { path, uid, gid, target: get_str(r, "link target")? }
        }
        b'W' => {
            let path = get_str(r, "path")?;
            Record::Whiteout { path, uid: get_u32(r)?, gid: get_u32(r)? }
        }
        b'Z' => return Ok(Record::End { count: get_u64(r)? }),
        other => {
            return Err(bad(format!(
                "it holds an entry of unknown type {other:#04x} (only directories, regular files, guest links and overlay whiteouts may be in a template archive)"
            )))
        }
    };
    check(&rec).map_err(bad)?;
    Ok(rec)
}

/// What every record must satisfy (export checks it too, so what it writes imports).
pub fn check(rec: &Record) -> Result<(), String> {
    if let Some(path) = rec.path() {
        check_path(path)?;
    }
    check_kind(rec)
}

/// Files of a Lima instance directory that make up a template (Lima's
/// pkg/limatype/filenames; everything else there belongs to one machine or one boot:
/// sockets, pids, logs, cidata, ssh.config, vz-identifier, ...), and the simulator's disk.
pub const INSTANCE_FILES: &[&str] = &[
    "lima.yaml",
    "lima-version",
    "disk",
    "iso",
    "basedisk",
    "diffdisk",
    "kernel",
    "kernel.cmdline",
    "initrd",
    "vz-efi",
    "qemu-efi-code.fd",
];

/// The simulator's disk directory (tests/sim: the guest's files stand for a disk image).
pub const SIM_DISK: &str = "simdisk";
/// Overlay upper layers, the only place an overlay whiteout means something.
pub const SIM_UPPER: &str = "simdisk/upper/";

/// A path relative to the instance directory: plain components only (no `..`, `.`, empty
/// or absolute), under one of the template's files.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.starts_with('/') {
        return Err(format!(
            "it holds an entry with an absolute or empty path: {path:?}"
        ));
    }
    if path.contains('\0')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "it holds an entry whose path leaves its folder: {path:?}"
        ));
    }
    let top = path.split('/').next().unwrap_or_default();
    if !(INSTANCE_FILES.contains(&top) || top == SIM_DISK) {
        return Err(format!(
            "it holds {path:?}, which is not part of a template (only Lima's disk and configuration files)"
        ));
    }
    Ok(())
}

/// Which kinds may stand where: links and whiteouts only inside the simulator's guest disk
/// (plus Lima's own `disk -> diffdisk`, `iso -> basedisk`); a link target never climbs above the guest's root.
fn check_kind(rec: &Record) -> Result<(), String> {
    match rec {
        Record::Link { path, target, .. } => {
            if lima_link(path, target) {
                return Ok(());
            }
            let Some(inside) = path.strip_prefix("simdisk/") else {
                return Err(format!("it holds a symbolic link {path:?} -> {target:?} outside the guest's disk"));
            };
            if target.is_empty() || target.contains('\0') || !target_stays_inside(inside, target) {
                return Err(format!(
                    "it holds a symbolic link {path:?} -> {target:?} that leads out of the guest's disk"
                ));
            }
            Ok(())
        }
        Record::Whiteout { path, .. } if !path.starts_with(SIM_UPPER) => Err(format!(
            "it holds a device entry {path:?} (only overlay whiteouts inside the guest disk's upper layers may be there)"
        )),
        Record::File { path, .. } | Record::Dir { path, .. } if path == SIM_DISK => match rec {
            Record::Dir { .. } => Ok(()),
            _ => Err(format!("{path:?} must be a directory")),
        },
        _ => Ok(()),
    }
}

/// The links Lima itself makes in an instance folder (pkg/driverutil/disk.go,
/// MigrateDiskLayout): `disk -> diffdisk` and `iso -> basedisk`.
pub fn lima_link(path: &str, target: &str) -> bool {
    matches!((path, target), ("disk", "diffdisk") | ("iso", "basedisk"))
}

/// Whether `target`, a link at `link` (relative to the guest's root), resolved lexically
/// from the link's folder (or from the guest root when absolute), stays within the root.
pub fn target_stays_inside(link: &str, target: &str) -> bool {
    let mut depth: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut parts: Vec<&str> = link.split('/').collect();
        parts.pop();
        parts
    };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            c => depth.push(c),
        }
    }
    true
}

/// Permission bits kept from an archive: never set-user-ID or set-group-ID (an archive from
/// elsewhere must not plant such files on this host).
pub fn safe_mode(mode: u32, dir: bool) -> u32 {
    if dir {
        mode & 0o1777
    } else {
        mode & 0o777
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(r: &Record) -> Result<Record, String> {
        let mut buf = Vec::new();
        encode(&mut buf, r).unwrap();
        decode(&mut buf.as_slice()).map_err(|e| e.to_string())
    }

    #[test]
    fn records_round_trip() {
        for r in [
            Record::Dir {
                path: "simdisk/home".into(),
                mode: 0o755,
                uid: 1,
                gid: 2,
            },
            Record::File {
                path: "simdisk/opt/big".into(),
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: 1 << 40,
                extents: vec![(0, 4096), (1 << 30, 8192)],
            },
            Record::Link {
                path: "simdisk/home/a/.local/bin/claude".into(),
                uid: 0,
                gid: 0,
                target: "/home/a/x".into(),
            },
            Record::Whiteout {
                path: "simdisk/upper/etc/motd".into(),
                uid: 0,
                gid: 0,
            },
            Record::Link {
                path: "disk".into(),
                uid: 0,
                gid: 0,
                target: "diffdisk".into(),
            },
            Record::End { count: 3 },
        ] {
            assert_eq!(roundtrip(&r).unwrap(), r);
        }
    }

    #[test]
    fn paths_that_leave_or_do_not_belong_are_refused() {
        for p in [
            "",
            "/etc/passwd",
            "simdisk/../../x",
            "simdisk/./x",
            "simdisk//x",
            "..",
            "simdisk/..",
            "ssh.config",
            "ha.pid",
            "cidata.iso",
            "claude-vm.owner",
            "sim.run/x",
            "vz-identifier",
        ] {
            assert!(check_path(p).is_err(), "{p:?}");
        }
        for p in [
            "lima.yaml",
            "diffdisk",
            "simdisk",
            "simdisk/home/u.linux/.profile",
        ] {
            assert!(check_path(p).is_ok(), "{p:?}");
        }
    }

    #[test]
    fn links_and_devices_stay_in_the_guest() {
        let link = |path: &str, target: &str| Record::Link {
            path: path.into(),
            uid: 0,
            gid: 0,
            target: target.into(),
        };
        for (p, t) in [
            ("lima.yaml", "/etc/passwd"),
            ("diffdisk", "/dev/sda"),
            ("disk", "../x"),
            ("simdisk/home/a", "../../../../etc"),
            ("simdisk/x", ".."),
            ("simdisk/home/a/b", "../../../../.."),
            ("simdisk/home/x", ""),
        ] {
            assert!(roundtrip(&link(p, t)).is_err(), "{p} -> {t}");
        }
        for (p, t) in [
            ("simdisk/home/a/b", "/usr/bin/python3"),
            ("simdisk/home/a/b", "../c"),
            ("disk", "diffdisk"),
        ] {
            assert!(roundtrip(&link(p, t)).is_ok(), "{p} -> {t}");
        }
        let w = Record::Whiteout {
            path: "simdisk/home/x".into(),
            uid: 0,
            gid: 0,
        };
        assert!(roundtrip(&w).unwrap_err().contains("device entry"));
        let mut unknown = Vec::new();
        encode(
            &mut unknown,
            &Record::Whiteout {
                path: "simdisk/upper/x".into(),
                uid: 0,
                gid: 0,
            },
        )
        .unwrap();
        unknown[0] = b'B';
        assert!(decode(&mut unknown.as_slice())
            .unwrap_err()
            .to_string()
            .contains("unknown type"));
    }

    #[test]
    fn extents_must_be_ordered_and_inside_the_file() {
        let f = |extents: Vec<(u64, u64)>| Record::File {
            path: "diffdisk".into(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 100,
            extents,
        };
        assert!(roundtrip(&f(vec![(0, 10), (20, 80)])).is_ok());
        for e in [
            vec![(0, 10), (5, 10)],
            vec![(90, 20)],
            vec![(u64::MAX, 2)],
            vec![(10, 0)],
        ] {
            assert!(roundtrip(&f(e.clone())).is_err(), "{e:?}");
        }
    }

    #[test]
    fn the_trailer_tells_truncated_and_newer_files() {
        let t = Trailer {
            format: FORMAT,
            payload_len: 100,
            manifest_len: 20,
        };
        let bytes = t.encode();
        assert_eq!(Trailer::decode(&bytes, 8 + 100 + 20 + 32).unwrap(), t);
        assert!(Trailer::decode(&bytes, 8 + 100 + 20 + 31)
            .unwrap_err()
            .contains("truncated"));
        assert!(Trailer::decode(&bytes[..31], 100)
            .unwrap_err()
            .contains("truncated"));
        let newer = Trailer {
            format: FORMAT + 1,
            ..t
        }
        .encode();
        assert!(Trailer::decode(&newer, 8 + 100 + 20 + 32)
            .unwrap_err()
            .contains("newer claude-vm"));
    }

    #[test]
    fn modes_lose_setuid_and_setgid() {
        assert_eq!(safe_mode(0o4755, false), 0o755);
        assert_eq!(safe_mode(0o2775, true), 0o775);
        assert_eq!(safe_mode(0o1777, true), 0o1777);
    }
}
