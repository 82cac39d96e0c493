//! Templates as files (issue 15): `claude-vm export` and `claude-vm import` between two HOMEs,
//! sparse disks, and hostile archives. The archive format (DEVELOPMENT.md) is decoded and
//! re-encoded here independently of claude-vm's code, so a tampered file differs from a good
//! one only by the flaw under test (its checksum recomputed).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{isolated, Run, World};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn verbs(run: &Run) -> Vec<String> {
    run.calls
        .iter()
        .filter(|c| c.first().map(String::as_str) != Some("--version"))
        .map(|c| c[0].clone())
        .collect()
}

fn template_dir(w: &World) -> PathBuf {
    let t = w.templates();
    assert_eq!(t.len(), 1, "one template: {t:?}");
    w.lima_home.join(&t[0])
}

/// Everything under $LIMA_HOME and the data directory's template records, to show that a
/// refused import wrote nothing.
fn snapshot(w: &World) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            out.push(format!("{} {} {}", p.display(), m.len(), m.mtime_nsec()));
            if m.is_dir() {
                walk(&p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&w.lima_home, &mut out);
    walk(&w.data_dir().join("templates"), &mut out);
    out.sort();
    out
}

// ---- the archive format, as DEVELOPMENT.md describes it --------------------------------

#[derive(Clone, Debug)]
struct Rec {
    tag: u8,
    path: String,
    /// The fixed fields after the path (and for files: size, count, extents).
    meta: Vec<u8>,
    target: Option<String>,
    data: Vec<u8>,
}

struct Archive {
    records: Vec<Rec>,
    manifest: Value,
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (h, t) = b.split_at(n);
    *b = t;
    h
}

fn u64_at(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().unwrap())
}

fn get_str(b: &mut &[u8]) -> String {
    let len = u16::from_le_bytes(take(b, 2).try_into().unwrap()) as usize;
    String::from_utf8(take(b, len).to_vec()).unwrap()
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u16).to_le_bytes());
    out.extend(s.as_bytes());
}

fn decode(bytes: &[u8]) -> Archive {
    assert_eq!(&bytes[..8], b"CVMTMPL\n");
    let tail = &bytes[bytes.len() - 32..];
    assert_eq!(&tail[..8], b"CVMTEND\n");
    let payload_len = u64_at(&tail[16..]) as usize;
    let manifest_len = u64_at(&tail[24..]) as usize;
    let payload = &bytes[8..8 + payload_len];
    let manifest: Value =
        serde_json::from_slice(&bytes[8 + payload_len..8 + payload_len + manifest_len]).unwrap();
    let raw = zstd::decode_all(payload).unwrap();
    let mut b = raw.as_slice();
    let mut records = Vec::new();
    loop {
        let tag = take(&mut b, 1)[0];
        if tag == b'Z' {
            assert_eq!(u64_at(take(&mut b, 8)), records.len() as u64);
            assert!(b.is_empty());
            break;
        }
        let path = get_str(&mut b);
        let (meta, target, data) = match tag {
            b'D' => (take(&mut b, 12).to_vec(), None, Vec::new()),
            b'F' => {
                let mut meta = take(&mut b, 12 + 8).to_vec();
                let n = u32::from_le_bytes(take(&mut b, 4).try_into().unwrap()) as usize;
                meta.extend((n as u32).to_le_bytes());
                let ex = take(&mut b, 16 * n).to_vec();
                let total: u64 = ex.chunks(16).map(|c| u64_at(&c[8..])).sum();
                meta.extend(ex);
                (meta, None, take(&mut b, total as usize).to_vec())
            }
            b'L' => {
                let meta = take(&mut b, 8).to_vec();
                (meta, Some(get_str(&mut b)), Vec::new())
            }
            b'W' => (take(&mut b, 8).to_vec(), None, Vec::new()),
            t => panic!("unknown tag {t}"),
        };
        records.push(Rec {
            tag,
            path,
            meta,
            target,
            data,
        });
    }
    Archive { records, manifest }
}

/// A well-formed file holding `a`: payload, checksum and trailer recomputed.
fn encode(a: &Archive, trailer_format: u32) -> Vec<u8> {
    let mut raw = Vec::new();
    for r in &a.records {
        raw.push(r.tag);
        put_str(&mut raw, &r.path);
        raw.extend(&r.meta);
        if let Some(t) = &r.target {
            put_str(&mut raw, t);
        }
        raw.extend(&r.data);
    }
    raw.push(b'Z');
    raw.extend((a.records.len() as u64).to_le_bytes());
    let payload = zstd::encode_all(raw.as_slice(), 3).unwrap();
    let mut manifest = a.manifest.clone();
    manifest["payload_sha256"] = Value::String(hex(&Sha256::digest(&payload)));
    if manifest["sizes"].is_object() {
        manifest["sizes"]["payload_bytes"] = payload.len().into();
    }
    let m = serde_json::to_vec(&manifest).unwrap();
    let mut out = b"CVMTMPL\n".to_vec();
    out.extend(&payload);
    out.extend(&m);
    out.extend(b"CVMTEND\n");
    out.extend(trailer_format.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    out.extend((payload.len() as u64).to_le_bytes());
    out.extend((m.len() as u64).to_le_bytes());
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn manifest_of(file: &Path) -> Value {
    decode(&std::fs::read(file).unwrap()).manifest
}

fn owner_fields(uid: u32) -> Vec<u8> {
    let mut v = uid.to_le_bytes().to_vec();
    v.extend(uid.to_le_bytes());
    v
}

// ---- worlds ----------------------------------------------------------------------------

/// A world with a built template, exported to `root/t.cvm-template`.
fn exported() -> (World, PathBuf) {
    let w = World::new();
    w.setup();
    let file = w.root.join("t.cvm-template");
    w.run(&["export", "-o", file.to_str().unwrap()]).ok();
    (w, file)
}

/// Imports `bytes` into a fresh world and asserts it is refused with `needle`, before any
/// limactl call, with nothing written.
#[track_caller]
fn refused(bytes: &[u8], needle: &str) {
    let w = World::new();
    let before = snapshot(&w);
    let file = w.root.join("bad.cvm-template");
    std::fs::write(&file, bytes).unwrap();
    let r = w.run(&["import", file.to_str().unwrap()]);
    assert_eq!(r.code, 2, "refused as bad input: {}", r.stderr);
    assert!(r.stderr.contains(needle), "{needle:?} in:\n{}", r.stderr);
    assert!(
        r.stderr.contains(file.to_str().unwrap()) && r.stderr.contains("nothing was written"),
        "{}",
        r.stderr
    );
    assert!(r.calls.is_empty(), "no limactl call: {:?}", r.calls);
    assert_eq!(snapshot(&w), before, "nothing written");
}

// ---- round trip ------------------------------------------------------------------------

/// Makes A's template look built by another user (alice, uid 4242): Lima's user in
/// lima.yaml, the home under her name and owned by her uid, the native Claude Code's link
/// pointing into her home, and credentials stored in it.
fn as_built_by_alice(dir: &Path) {
    let yaml = dir.join("lima.yaml");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&yaml).unwrap()).unwrap();
    let old_home = cfg["user"]["home"].as_str().unwrap().to_owned();
    cfg["user"] = serde_json::json!({"name": "alice", "uid": 4242, "home": "/home/alice.linux"});
    std::fs::write(&yaml, cfg.to_string()).unwrap();
    let disk = dir.join("simdisk/home");
    let old = disk.join(old_home.trim_start_matches("/home/"));
    let new = disk.join("alice.linux");
    std::fs::rename(&old, &new).unwrap();
    let link = new.join(".local/bin/claude");
    let target = std::fs::read_link(&link).unwrap();
    let target = target
        .to_str()
        .unwrap()
        .replace(&old_home, "/home/alice.linux");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for (f, text) in [
        (
            ".claude/.credentials.json",
            r#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-SECRET"}}"#,
        ),
        (
            ".config/gh/hosts.yml",
            "github.com:\n  oauth_token: gho_SECRET\n",
        ),
        (".git-credentials", "https://x:ghp_SECRET@github.com\n"),
    ] {
        let p = new.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
    }
    let status = std::process::Command::new("chown")
        .args(["-R", "-h", "4242:4242"])
        .arg(&new)
        .status()
        .unwrap();
    assert!(status.success());
}

fn all_owned_by(dir: &Path, uid: u32) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.uid() != uid {
                wrong.push(format!("{} ({})", e.path().display(), m.uid()));
            }
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    wrong
}

#[test]
fn a_template_exported_by_another_user_runs_sessions_in_a_fresh_home() {
    let a = World::new();
    // A template whose provisioning deleted a file of the image: an overlay whiteout.
    if isolated() {
        a.write("home/.claude-vm.setup.sh", "sudo rm -f /etc/issue\n");
    }
    a.setup();
    let tdir = template_dir(&a);
    as_built_by_alice(&tdir);
    let file = a.root.join("shared.cvm-template");
    let r = a.run(&["export", "-o", file.to_str().unwrap()]);
    r.ok();
    assert_eq!(verbs(&r), ["list", "clone", "shell", "stop", "delete"]);
    // The template itself was not touched: its credentials are still there.
    assert!(tdir
        .join("simdisk/home/alice.linux/.git-credentials")
        .exists());
    assert!(r.stderr.contains("credentials left out"), "{}", r.stderr);
    let m = manifest_of(&file);
    assert_eq!(m["format"], 1);
    assert_eq!(m["guest_user"]["name"], "alice");
    assert_eq!(m["guest_user"]["uid"], 4242);
    assert_eq!(m["credentials"]["included"], false);
    let found: Vec<&str> = m["credentials"]["found"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        found,
        [
            "~/.claude/.credentials.json",
            "~/.config/gh/hosts.yml",
            "~/.git-credentials"
        ]
    );
    assert_eq!(m["lima_version"], "2.0.3");
    assert_eq!(m["arch"], std::env::consts::ARCH);
    assert!(m["template"]["fingerprint"]["digest"].is_string());
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // What belongs to one machine stays out; secrets stay out.
    let archive = decode(&std::fs::read(&file).unwrap());
    for rec in &archive.records {
        let top = rec.path.split('/').next().unwrap();
        assert!(
            ["lima.yaml", "lima-version", "simdisk"].contains(&top),
            "{}",
            rec.path
        );
        assert!(!rec.path.ends_with("credentials.json") && !rec.path.ends_with(".git-credentials"));
        assert!(
            !String::from_utf8_lossy(&rec.data).contains("SECRET"),
            "{}",
            rec.path
        );
        assert!(rec.path == "simdisk/tmp" || !rec.path.starts_with("simdisk/tmp/"));
    }
    if isolated() {
        assert!(
            archive
                .records
                .iter()
                .any(|r| r.tag == b'W' && r.path == "simdisk/upper/etc/issue"),
            "the whiteout is carried"
        );
    }

    // Another HOME (and another project) imports it.
    let b = World::new();
    let r = b.run(&["import", file.to_str().unwrap()]);
    r.ok();
    assert_eq!(
        verbs(&r),
        ["list", "edit", "list", "start", "shell", "stop"],
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("built for the guest user alice"),
        "{}",
        r.stderr
    );
    let bdir = template_dir(&b);
    let dot: Vec<_> = std::fs::read_dir(&b.lima_home)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".claude-vm-import-")
        })
        .collect();
    assert!(dot.is_empty(), "no unpack folder left");
    // A fresh identity: B's owner mark, no user of A's in lima.yaml, nothing of A's boots.
    let mark = std::fs::read_to_string(bdir.join("claude-vm.owner")).unwrap();
    assert!(mark.contains(b.data_dir().to_str().unwrap()), "{mark}");
    assert!(b.lima_yaml(&b.templates()[0]).get("user").is_none());
    let me = unsafe { libc::getuid() };
    let home = bdir.join("simdisk/home");
    let homes: Vec<String> = std::fs::read_dir(&home)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mine = homes
        .iter()
        .find(|h| *h != "alice.linux")
        .expect("the importer's home")
        .clone();
    assert!(
        std::fs::symlink_metadata(home.join("alice.linux"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the old home path leads to the new one"
    );
    // The importer's guest user: the one whose home it is in the guest's own passwd (as root the
    // simulator's guest user is Lima's fallback user); without one the guest runs as the caller.
    let passwd = std::fs::read_to_string(bdir.join("simdisk/upper/etc/passwd")).unwrap_or_default();
    let me = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 5 && f[5] == format!("/home/{mine}"))
        .and_then(|f| f[2].parse::<u32>().ok())
        .unwrap_or(me);
    let wrong = all_owned_by(&home.join(&mine), me);
    assert!(wrong.is_empty(), "files not the importer's: {wrong:?}");
    assert!(!home.join(&mine).join(".git-credentials").exists());

    // A session runs: the agent on PATH, the home the importer's.
    let r = b.run(&[
        "shell",
        "--",
        "sh",
        "-c",
        "echo home=$HOME; command -v claude; claude --version; test -e ~/.config/gh/hosts.yml && echo creds; test -e /etc/issue && echo issue; echo end",
    ]);
    r.ok();
    assert!(
        r.stdout.contains(&format!("home=/home/{mine}")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("/home/{mine}/.local/bin/claude")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("(Claude Code)"), "{}", r.stdout);
    assert!(!r.stdout.contains("creds"), "{}", r.stdout);
    if isolated() {
        assert!(
            !r.stdout.contains("issue"),
            "the whiteout hides /etc/issue: {}",
            r.stdout
        );
    }
    assert!(r.stdout.contains("end"));
    // Staleness is judged with B's own setup: A had a global setup script, B has none.
    let info = b.run(&["info"]);
    info.ok();
    let stale = info
        .stdout
        .lines()
        .find(|l| l.contains("up to date"))
        .unwrap();
    if isolated() {
        assert!(stale.contains("no"), "{}", info.stdout);
    } else {
        assert!(stale.contains("yes"), "{}", info.stdout);
    }
}

#[test]
fn credentials_are_kept_only_when_asked_and_the_manifest_says_so() {
    let w = World::new();
    w.setup();
    let tdir = template_dir(&w);
    let home = std::fs::read_dir(tdir.join("simdisk/home"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    std::fs::write(
        home.join(".git-credentials"),
        "https://x:ghp_SECRET@github.com\n",
    )
    .unwrap();
    let file = w.root.join("c.cvm-template");
    let r = w.run(&[
        "--json",
        "export",
        "--include-credentials",
        "-o",
        file.to_str().unwrap(),
    ]);
    r.ok();
    // With --json the long steps are events (and nothing else is drawn).
    let events: Vec<Value> = r
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stderr line is an event"))
        .collect();
    let finished: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "step.finished")
        .filter_map(|e| e["step"].as_str())
        .collect();
    assert!(
        finished.iter().any(|s| s.starts_with("packing ")),
        "{finished:?}"
    );
    assert!(finished
        .iter()
        .any(|s| s.starts_with("listing stored credentials")));
    let a = decode(&std::fs::read(&file).unwrap());
    assert_eq!(a.manifest["credentials"]["included"], true);
    assert_eq!(a.manifest["credentials"]["found"][0], "~/.git-credentials");
    assert!(a
        .records
        .iter()
        .any(|r| r.path.ends_with("/.git-credentials") && r.data.starts_with(b"https://x:ghp_")));
    let b = World::new();
    let r = b.run(&["import", file.to_str().unwrap()]);
    r.ok();
    assert!(r.stderr.contains("exporter's credentials"), "{}", r.stderr);
    // Same user on both sides: no boot at import.
    assert_eq!(verbs(&r), ["list", "edit", "list"]);
}

#[test]
fn a_sparse_disk_exports_and_imports_by_its_data() {
    let a = World::new();
    a.setup();
    let disk = template_dir(&a).join("simdisk/opt/disk.img");
    let nominal = 20 * GIB;
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(&disk).unwrap();
        f.set_len(nominal).unwrap();
        for (i, off) in [0, 10 * GIB, nominal - MIB].into_iter().enumerate() {
            f.seek(SeekFrom::Start(off)).unwrap();
            // Incompressible bytes (xorshift), so the archive's size shows what was stored.
            let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ i as u64;
            let chunk: Vec<u8> = (0..MIB)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            f.write_all(&chunk).unwrap();
        }
    }
    let file = a.root.join("sparse.cvm-template");
    a.run(&["export", "-o", file.to_str().unwrap()]).ok();
    let size = std::fs::metadata(&file).unwrap().len();
    let m = manifest_of(&file);
    let data = m["sizes"]["data_bytes"].as_u64().unwrap();
    let nominal_all = m["sizes"]["nominal_bytes"].as_u64().unwrap();
    eprintln!("sparse export: archive {size} bytes, {data} data bytes read, {nominal_all} nominal");
    assert!(nominal_all >= nominal);
    assert!(
        (3 * MIB..4 * MIB).contains(&data),
        "only the data was read: {data}"
    );
    assert!(
        (3 * MIB..4 * MIB).contains(&size),
        "the archive holds the data and nothing of the holes: {size} bytes"
    );
    let b = World::new();
    b.run(&["import", file.to_str().unwrap()]).ok();
    let copy = template_dir(&b).join("simdisk/opt/disk.img");
    let meta = std::fs::metadata(&copy).unwrap();
    assert_eq!(meta.len(), nominal);
    assert!(
        meta.blocks() * 512 < 8 * MIB,
        "holes recreated: {} blocks",
        meta.blocks()
    );
    let original = std::fs::File::open(&disk).unwrap();
    let imported = std::fs::File::open(&copy).unwrap();
    for off in [0, 10 * GIB, nominal - MIB, 5 * GIB] {
        use std::os::unix::fs::FileExt;
        let (mut x, mut y) = (vec![0u8; 4096], vec![1u8; 4096]);
        original.read_exact_at(&mut x, off).unwrap();
        imported.read_exact_at(&mut y, off).unwrap();
        assert_eq!(x, y, "at {off}");
    }
}

#[test]
fn an_import_keeps_the_existing_template_until_the_new_one_is_in() {
    let (_a, file) = exported();
    let b = World::new();
    b.setup();
    let before = std::fs::read_to_string(
        b.data_dir()
            .join("templates")
            .join(format!("{}.json", b.templates()[0])),
    )
    .unwrap();
    // Lima fails while the import is being given its identity: the old template stays.
    let r = b.run_with(
        &["import", file.to_str().unwrap()],
        &[("LIMA_SIM_FAIL", "edit")],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(b.instances(), b.templates(), "only the old template");
    let after = std::fs::read_to_string(
        b.data_dir()
            .join("templates")
            .join(format!("{}.json", b.templates()[0])),
    )
    .unwrap();
    assert_eq!(before, after);
    assert!(
        !std::fs::read_dir(&b.lima_home).unwrap().flatten().any(|e| e
            .file_name()
            .to_string_lossy()
            .starts_with(".claude-vm-import-"))
    );
    // Then it works, replacing it through the journaled swap.
    let r = b.run(&["import", file.to_str().unwrap()]);
    r.ok();
    assert_eq!(
        verbs(&r),
        ["list", "edit", "list", "rename", "rename", "delete"]
    );
    b.run(&["shell", "--", "true"]).ok();
}

// ---- hostile archives ------------------------------------------------------------------

#[test]
fn a_wrong_checksum_is_refused() {
    let (_w, file) = exported();
    let good = std::fs::read(&file).unwrap();
    for at in [8, 20, 100] {
        let mut bad = good.clone();
        bad[at] ^= 0x40;
        refused(&bad, "checksum does not match");
    }
}

#[test]
fn a_truncated_file_is_refused() {
    let (_w, file) = exported();
    let good = std::fs::read(&file).unwrap();
    for len in [0, 7, 12, good.len() / 2, good.len() - 33, good.len() - 1] {
        let needle = if len < 8 {
            "not a claude-vm template archive"
        } else {
            "truncated"
        };
        refused(&good[..len], needle);
    }
    // A payload cut short but framed again (checksum right): still truncated.
    let mut a = decode(&good);
    a.records.truncate(a.records.len() / 2);
    let mut bytes = encode(&a, 1);
    // Drop the end record's count so the stream stops in the middle.
    let raw_cut = {
        let payload_len = u64_at(&bytes[bytes.len() - 16..]) as usize;
        let raw = zstd::decode_all(&bytes[8..8 + payload_len]).unwrap();
        raw[..raw.len() - 20].to_vec()
    };
    let payload = zstd::encode_all(raw_cut.as_slice(), 3).unwrap();
    let mut m = a.manifest.clone();
    m["payload_sha256"] = Value::String(hex(&Sha256::digest(&payload)));
    let mtext = serde_json::to_vec(&m).unwrap();
    bytes = b"CVMTMPL\n".to_vec();
    bytes.extend(&payload);
    bytes.extend(&mtext);
    bytes.extend(b"CVMTEND\n");
    bytes.extend(1u32.to_le_bytes());
    bytes.extend(0u32.to_le_bytes());
    bytes.extend((payload.len() as u64).to_le_bytes());
    bytes.extend((mtext.len() as u64).to_le_bytes());
    refused(&bytes, "truncated");
}

#[test]
fn an_entry_with_dotdot_or_an_absolute_path_is_refused() {
    let (_w, file) = exported();
    let good = decode(&std::fs::read(&file).unwrap());
    let file_rec = good.records.iter().find(|r| r.tag == b'F').unwrap().clone();
    for (path, needle) in [
        ("simdisk/../../../escaped", "leaves its folder"),
        ("../escaped", "leaves its folder"),
        ("simdisk/home/..", "leaves its folder"),
        ("/tmp/escaped", "absolute"),
        ("simdisk//x", "leaves its folder"),
        ("ha.pid", "not part of a template"),
    ] {
        let mut a = Archive {
            records: good.records.clone(),
            manifest: good.manifest.clone(),
        };
        a.records.push(Rec {
            path: path.into(),
            ..file_rec.clone()
        });
        refused(&encode(&a, 1), needle);
    }
}

#[test]
fn a_symlink_or_device_entry_is_refused() {
    let (_w, file) = exported();
    let good = decode(&std::fs::read(&file).unwrap());
    let link = |path: &str, target: &str| Rec {
        tag: b'L',
        path: path.into(),
        meta: owner_fields(0),
        target: Some(target.into()),
        data: Vec::new(),
    };
    let cases = [
        // A link in place of lima.yaml, or beside it, would be followed on the host.
        (link("diffdisk", "/etc/passwd"), "outside the guest's disk"),
        (
            link("simdisk/home/evil", "../../../../../../etc/shadow"),
            "leads out of the guest's disk",
        ),
        (link("simdisk/evil", ".."), "leads out of the guest's disk"),
        (
            Rec {
                tag: b'W',
                path: "simdisk/home/dev".into(),
                meta: owner_fields(0),
                target: None,
                data: Vec::new(),
            },
            "device entry",
        ),
        (
            Rec {
                tag: b'B',
                path: "simdisk/home/sda".into(),
                meta: owner_fields(0),
                target: None,
                data: Vec::new(),
            },
            "unknown type",
        ),
    ];
    for (rec, needle) in cases {
        let mut a = Archive {
            records: good.records.clone(),
            manifest: good.manifest.clone(),
        };
        a.records.push(rec);
        refused(&encode(&a, 1), needle);
    }
    // A link then a file under it: the file's folder is no directory of the archive.
    let mut a = Archive {
        records: good.records.clone(),
        manifest: good.manifest.clone(),
    };
    let f = good.records.iter().find(|r| r.tag == b'F').unwrap().clone();
    a.records.push(link("simdisk/opt/etc", "/etc"));
    a.records.push(Rec {
        path: "simdisk/opt/etc/passwd".into(),
        ..f
    });
    refused(&encode(&a, 1), "before (or without) its folder");
}

#[test]
fn a_manifest_from_a_newer_format_is_refused() {
    let (_w, file) = exported();
    let good = decode(&std::fs::read(&file).unwrap());
    let mut a = Archive {
        records: good.records.clone(),
        manifest: good.manifest.clone(),
    };
    a.manifest["format"] = 2.into();
    // A newer format's manifest may hold what this one cannot parse.
    a.manifest["sizes"] = Value::String("new layout".into());
    refused(&encode(&a, 2), "newer claude-vm");
    refused(&encode(&a, 1), "newer claude-vm");
}

#[test]
fn a_template_of_another_architecture_or_vm_type_is_refused() {
    let (_w, file) = exported();
    let good = decode(&std::fs::read(&file).unwrap());
    let other = if std::env::consts::ARCH == "aarch64" {
        "x86_64"
    } else {
        "aarch64"
    };
    for (key, value, needle) in [
        ("arch", other, "architecture"),
        (
            "vm_type",
            if cfg!(target_os = "macos") {
                "qemu"
            } else {
                "vz"
            },
            "VM type",
        ),
    ] {
        let mut a = Archive {
            records: good.records.clone(),
            manifest: good.manifest.clone(),
        };
        a.manifest[key] = value.into();
        refused(&encode(&a, 1), needle);
    }
}

// ---- interruptions and usage -----------------------------------------------------------

fn template_record(w: &World) -> String {
    let t = &w.templates()[0];
    std::fs::read_to_string(w.data_dir().join("templates").join(format!("{t}.json"))).unwrap()
}

fn unpack_folders(w: &World) -> Vec<String> {
    std::fs::read_dir(&w.lima_home)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".claude-vm-import-"))
        .collect()
}

#[test]
fn an_interrupted_import_leaves_nothing_and_keeps_the_template() {
    let a = World::new();
    a.setup();
    as_built_by_alice(&template_dir(&a));
    let file = a.root.join("alice.cvm-template");
    a.run(&["export", "-o", file.to_str().unwrap()]).ok();
    let b = World::new();
    b.setup();
    let before = template_record(&b);
    // Stopped while it boots the import to hand the home over.
    let mut s = b.spawn_with(
        &["import", file.to_str().unwrap()],
        &[("LIMA_SIM_DELAY", "start=60")],
    );
    b.await_call(s.pid(), "start");
    s.signal(libc::SIGTERM);
    assert_eq!(s.finish(), 143, "{}", s.stderr());
    assert_eq!(b.instances(), b.templates(), "only the old template");
    assert_eq!(template_record(&b), before);
    assert!(unpack_folders(&b).is_empty());
    b.assert_nothing_left(&s.stderr());
    b.run(&["shell", "--", "true"]).ok();
}

#[test]
fn an_interrupted_export_leaves_no_file_and_no_clone() {
    let w = World::new();
    w.setup();
    let file = w.root.join("out/t.cvm-template");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let mut s = w.spawn_with(
        &["export", "-o", file.to_str().unwrap()],
        &[("LIMA_SIM_DELAY", "stop=60")],
    );
    w.await_call(s.pid(), "stop");
    s.signal(libc::SIGINT);
    assert_eq!(s.finish(), 130, "{}", s.stderr());
    let left: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .flatten()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(w.instances(), w.templates());
    w.assert_nothing_left(&s.stderr());
}

#[test]
fn export_needs_a_template_and_a_folder_and_import_a_project() {
    let w = World::new();
    let r = w.run(&["export"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("no template VM") && r.stderr.contains("claude-vm setup"),
        "{}",
        r.stderr
    );
    let r = w.run(&["export", "-o", "/nonexistent/dir/t.cvm-template"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("-o /nonexistent/dir/t.cvm-template: its folder does not exist"),
        "{}",
        r.stderr
    );
    assert!(r.calls.is_empty());
    // `--project DIR` from elsewhere, a relative FILE read from where it was typed.
    let (_a, file) = exported();
    std::fs::copy(&file, w.root.join("rel.cvm-template")).unwrap();
    let r = w.run_in(
        &[
            "import",
            "rel.cvm-template",
            "--project",
            w.project.to_str().unwrap(),
        ],
        &w.root.clone(),
    );
    r.ok();
    assert_eq!(w.templates().len(), 1);
    w.run(&["shell", "--", "true"]).ok();
    let r = w.run(&["import", "missing.cvm-template"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("missing.cvm-template") && r.stderr.contains("cannot open it"),
        "{}",
        r.stderr
    );
}
