//! The request log: one JSON line per request in `<dir>/<session>.jsonl`, written by a thread of
//! its own so that the data path never waits on the disk; and the reader behind `network log`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{SystemTime, UNIX_EPOCH};

/// One request, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// UTC, RFC 3339 with milliseconds (sorts as text).
    pub time: String,
    pub session: String,
    /// `CONNECT`, `GET`, ... as the guest sent it.
    pub method: String,
    pub host: String,
    pub port: u16,
    /// The address connected to (or refused), when the name was resolved.
    pub address: Option<String>,
    pub decision: Verdict,
    pub rule: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allowed,
    Denied,
}

/// The sending side; cheap to clone, never blocks.
#[derive(Clone)]
pub struct Logger {
    tx: mpsc::Sender<Record>,
}

impl Logger {
    /// Starts the writer thread for `dir` (created 0700 if missing).
    pub fn start(dir: &Path) -> std::io::Result<(Logger, Flusher)> {
        create_private_dir(dir)?;
        let (tx, rx) = mpsc::channel::<Record>();
        let dir = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("net-log".into())
            .spawn(move || write_loop(&dir, rx))?;
        Ok((
            Logger { tx },
            Flusher {
                thread: Some(thread),
            },
        ))
    }

    pub fn log(&self, record: Record) {
        // A stopped writer loses the line rather than the request.
        let _ = self.tx.send(record);
    }
}

/// Joined once every Logger is dropped: all lines are on disk after `finish`.
pub struct Flusher {
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    pub fn finish(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn write_loop(dir: &Path, rx: mpsc::Receiver<Record>) {
    let mut files: BTreeMap<String, BufWriter<File>> = BTreeMap::new();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        for record in batch {
            let Some(name) = file_name(&record.session) else {
                continue;
            };
            if !files.contains_key(&name) {
                match open_append(&dir.join(&name)) {
                    Ok(f) => {
                        files.insert(name.clone(), BufWriter::new(f));
                    }
                    Err(_) => continue,
                }
            }
            if let (Some(out), Ok(line)) = (files.get_mut(&name), serde_json::to_string(&record)) {
                let _ = writeln!(out, "{line}");
            }
        }
        for out in files.values_mut() {
            let _ = out.flush();
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        // Never write through a link someone left in the log directory.
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// The log file of a session; None for a name that could leave the directory.
pub fn file_name(session: &str) -> Option<String> {
    let ok = !session.is_empty()
        && !session.starts_with('.')
        && session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    ok.then(|| format!("{session}.jsonl"))
}

/// The time now as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Per host, what `network log` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostSummary {
    pub host: String,
    pub count: u64,
    pub allowed: u64,
    pub denied: u64,
    pub first_seen: String,
    pub last_seen: String,
    /// The rules that denied it, in first-seen order.
    pub denied_by: Vec<String>,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

/// What was read, and how many lines could not be (a torn last line, a foreign file).
#[derive(Debug, Default)]
pub struct Read {
    pub records: Vec<Record>,
    pub unreadable_lines: usize,
}

/// Reads the log of one session, or of every session when `session` is None.
pub fn read(dir: &Path, session: Option<&str>) -> std::io::Result<Read> {
    let mut out = Read::default();
    for path in log_files(dir, session)? {
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in BufReader::new(file).lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Record>(&line) {
                Ok(r) => out.records.push(r),
                Err(_) => out.unreadable_lines += 1,
            }
        }
    }
    out.records.sort_by(|a, b| a.time.cmp(&b.time));
    Ok(out)
}

fn log_files(dir: &Path, session: Option<&str>) -> std::io::Result<Vec<PathBuf>> {
    if let Some(s) = session {
        let name = file_name(s).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{s:?} is not a session name"),
            )
        })?;
        return Ok(vec![dir.join(name)]);
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// Groups records per host: the busiest first, then by name.
pub fn summarize(records: &[Record]) -> Vec<HostSummary> {
    let mut by_host: BTreeMap<&str, HostSummary> = BTreeMap::new();
    for r in records {
        let s = by_host.entry(&r.host).or_insert_with(|| HostSummary {
            host: r.host.clone(),
            count: 0,
            allowed: 0,
            denied: 0,
            first_seen: r.time.clone(),
            last_seen: r.time.clone(),
            denied_by: Vec::new(),
            bytes_up: 0,
            bytes_down: 0,
        });
        s.count += 1;
        match r.decision {
            Verdict::Allowed => s.allowed += 1,
            Verdict::Denied => {
                s.denied += 1;
                if !s.denied_by.contains(&r.rule) {
                    s.denied_by.push(r.rule.clone());
                }
            }
        }
        if r.time < s.first_seen {
            s.first_seen = r.time.clone();
        }
        if r.time > s.last_seen {
            s.last_seen = r.time.clone();
        }
        s.bytes_up += r.bytes_up;
        s.bytes_down += r.bytes_down;
    }
    let mut out: Vec<HostSummary> = by_host.into_values().collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.host.cmp(&b.host)));
    out
}

/// The end-of-session line, when something was denied:
/// `network: 2 requests denied (evil.example) — claude-vm network log SESSION shows them`.
pub fn denied_line(records: &[Record], session: &str) -> Option<String> {
    let denied: Vec<&Record> = records
        .iter()
        .filter(|r| r.decision == Verdict::Denied)
        .collect();
    if denied.is_empty() {
        return None;
    }
    let mut hosts: Vec<&str> = Vec::new();
    for r in &denied {
        if !hosts.contains(&r.host.as_str()) {
            hosts.push(&r.host);
        }
    }
    let shown = if hosts.len() > 3 {
        format!("{}, and {} more", hosts[..3].join(", "), hosts.len() - 3)
    } else {
        hosts.join(", ")
    };
    let n = denied.len();
    let noun = if n == 1 { "request" } else { "requests" };
    Some(format!(
        "network: {n} {noun} denied ({shown}) — claude-vm network log {session} shows them"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rec(time: &str, host: &str, decision: Verdict, rule: &str) -> Record {
        Record {
            time: time.into(),
            session: "s1".into(),
            method: "CONNECT".into(),
            host: host.into(),
            port: 443,
            address: None,
            decision,
            rule: rule.into(),
            bytes_up: 10,
            bytes_down: 20,
            duration_ms: 1,
        }
    }

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_123); // leap day 2000
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_796_167_799);
        assert_eq!(rfc3339(t), "2026-12-01T23:29:59.000Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_107_542_400); // 2100 is not a leap year
        assert_eq!(rfc3339(t), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn summary_counts_decisions_and_spans_per_host() {
        let records = vec![
            rec(
                "2026-01-01T00:00:02.000Z",
                "a.example",
                Verdict::Allowed,
                "allow a.example",
            ),
            rec(
                "2026-01-01T00:00:01.000Z",
                "evil.example",
                Verdict::Denied,
                "not in allow",
            ),
            rec(
                "2026-01-01T00:00:03.000Z",
                "a.example",
                Verdict::Allowed,
                "allow a.example",
            ),
            rec(
                "2026-01-01T00:00:04.000Z",
                "evil.example",
                Verdict::Denied,
                "deny evil.example",
            ),
            rec(
                "2026-01-01T00:00:00.500Z",
                "evil.example",
                Verdict::Denied,
                "not in allow",
            ),
            rec(
                "2026-01-01T00:00:05.000Z",
                "b.example",
                Verdict::Allowed,
                "policy open",
            ),
        ];
        let s = summarize(&records);
        assert_eq!(
            s.iter().map(|h| h.host.as_str()).collect::<Vec<_>>(),
            ["evil.example", "a.example", "b.example"]
        );
        assert_eq!((s[0].count, s[0].allowed, s[0].denied), (3, 0, 3));
        assert_eq!(s[0].first_seen, "2026-01-01T00:00:00.500Z");
        assert_eq!(s[0].last_seen, "2026-01-01T00:00:04.000Z");
        assert_eq!(s[0].denied_by, ["not in allow", "deny evil.example"]);
        assert_eq!((s[1].count, s[1].allowed, s[1].denied), (2, 2, 0));
        assert_eq!((s[1].bytes_up, s[1].bytes_down), (20, 40));
    }

    #[test]
    fn denied_line_names_hosts_once() {
        let mut records = vec![rec("t1", "ok.example", Verdict::Allowed, "allow")];
        assert_eq!(denied_line(&records, "s1"), None);
        records.push(rec("t2", "evil.example", Verdict::Denied, "not in allow"));
        assert_eq!(
            denied_line(&records, "s1").unwrap(),
            "network: 1 request denied (evil.example) — claude-vm network log s1 shows them"
        );
        records.push(rec("t3", "evil.example", Verdict::Denied, "not in allow"));
        for h in ["b.example", "c.example", "d.example"] {
            records.push(rec("t4", h, Verdict::Denied, "not in allow"));
        }
        assert_eq!(
            denied_line(&records, "s1").unwrap(),
            "network: 5 requests denied (evil.example, b.example, c.example, and 1 more) — claude-vm network log s1 shows them"
        );
    }

    #[test]
    fn writer_and_reader_round_trip_and_skip_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("net");
        let (logger, flusher) = Logger::start(&logs).unwrap();
        let a = rec(
            "2026-01-01T00:00:01.000Z",
            "a.example",
            Verdict::Allowed,
            "allow a.example",
        );
        let mut b = rec(
            "2026-01-01T00:00:02.000Z",
            "evil.example",
            Verdict::Denied,
            "not in allow",
        );
        b.session = "s2".into();
        logger.log(a.clone());
        logger.log(b.clone());
        let mut bad = a.clone();
        bad.session = "../escape".into();
        logger.log(bad);
        drop(logger);
        flusher.finish();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&logs).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(!dir.path().join("escape.jsonl").exists());
        // A torn line (a crash mid-write) is counted, not fatal.
        let mut f = OpenOptions::new()
            .append(true)
            .open(logs.join("s1.jsonl"))
            .unwrap();
        write!(f, "{{\"time\":\"2026").unwrap();
        let all = read(&logs, None).unwrap();
        assert_eq!(all.records, vec![a.clone(), b]);
        assert_eq!(all.unreadable_lines, 1);
        let one = read(&logs, Some("s1")).unwrap();
        assert_eq!(one.records, vec![a]);
        assert!(read(&logs, Some("../x")).is_err());
        assert!(read(&dir.path().join("none"), None)
            .unwrap()
            .records
            .is_empty());
    }
}
