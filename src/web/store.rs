//! The sessions and rebuilds the server started: each one's record and every message it
//! produced (claude's stream-json lines, claude-vm's events, the server's own notes), in
//! memory and under the data directory's `web/` folder (`ID.json` the record, `ID.jsonl`
//! the messages), so a restarted server still shows them for review.
//!
//! A message is kept as its JSON text, made once: every stream of it sends that text. The
//! files are written by one thread of their own, in order, so no reader ever waits on the
//! disk while holding the lock the HTTP side takes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::workflow::child::{self, Sink, Stream};

/// How many earlier records a restarted server loads.
const LOADED_MAX: usize = 200;
/// The most messages kept per job (the rest are counted, not kept).
const MESSAGES_MAX: usize = 50_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Session,
    Rebuild,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Starting,
    Running,
    /// Ended by itself (`exit_status` says how).
    Finished,
    /// Ended by a stop from the page (or the server stopping).
    Stopped,
    /// Could not be started.
    Failed,
    /// Was running when an earlier server died; its child ended with it.
    Interrupted,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub kind: Kind,
    /// The template it belongs to (the project's id in the API).
    pub template: String,
    pub project: PathBuf,
    pub prompt: String,
    pub model: Option<String>,
    pub claude_args: Vec<String>,
    pub network: Option<String>,
    /// The session this one continues (its conversation resumed).
    pub continues: Option<String>,
    /// Milliseconds since the epoch.
    pub started_at: u64,
    pub ended_at: Option<u64>,
    pub state: State,
    pub stop_requested: bool,
    pub exit_status: Option<i32>,
    /// The child claude-vm (the journal's owner of the VM).
    pub owner_pid: Option<u32>,
    /// From `session.started`.
    pub vm: Option<String>,
    pub policy: Option<String>,
    pub warm: Option<bool>,
    /// From `session.ended`.
    pub vm_deleted: Option<bool>,
    /// From claude's messages (its `result` for cost and turns).
    pub claude_session_id: Option<String>,
    pub num_turns: Option<u64>,
    pub total_cost_usd: Option<f64>,
    pub result_subtype: Option<String>,
    /// The git snapshots of the project's working state (review), or why there is none.
    pub snapshot_start: Option<String>,
    pub snapshot_end: Option<String>,
    pub snapshot_note: Option<String>,
    /// What went wrong starting it, or claude-vm's first `error` event.
    pub error: Option<String>,
    pub messages: usize,
}

impl Record {
    pub fn is_live(&self) -> bool {
        matches!(self.state, State::Starting | State::Running)
    }
}

pub struct Job {
    pub record: Record,
    /// Each message's JSON text; message `seq` is at index `seq`.
    pub messages: Vec<Arc<str>>,
    /// Bumped on every change: SSE readers wait on it.
    pub version: watch::Sender<u64>,
}

/// What the writing thread does, in the order asked.
enum Disk {
    Save(String, String),
    Append(String, Arc<str>),
    Flushed(mpsc::Sender<()>),
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
    disk: mpsc::Sender<Disk>,
    /// Bumped whenever any record changes (the page's list stream).
    pub changed: watch::Sender<u64>,
}

struct Inner {
    jobs: BTreeMap<String, Job>,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn bump(tx: &watch::Sender<u64>) {
    tx.send_modify(|v| *v += 1);
}

impl Store {
    /// The store in `dir` (created 0700), with the records an earlier server left.
    pub fn open(dir: &Path) -> std::io::Result<Store> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut jobs = BTreeMap::new();
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        let skip = names.len().saturating_sub(LOADED_MAX);
        for p in names.into_iter().skip(skip) {
            let Some(mut r) = crate::fsread::small_regular_file(&p, 1 << 20)
                .ok()
                .and_then(|t| serde_json::from_str::<Record>(&t).ok())
            else {
                continue;
            };
            if r.is_live() {
                r.state = State::Interrupted;
            }
            let messages = read_messages(&dir.join(format!("{}.jsonl", r.id)));
            let (version, _) = watch::channel(0);
            jobs.insert(
                r.id.clone(),
                Job {
                    record: r,
                    messages,
                    version,
                },
            );
        }
        let (changed, _) = watch::channel(0);
        let (disk, todo) = mpsc::channel();
        let at = dir.to_path_buf();
        std::thread::Builder::new()
            .name("web-store".into())
            .spawn(move || write_all(&at, todo))?;
        Ok(Store {
            inner: Arc::new(Mutex::new(Inner { jobs })),
            disk,
            changed,
        })
    }

    /// Waits until everything asked so far is on disk.
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self.disk.send(Disk::Flushed(tx)).is_ok() {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(10));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Called under the lock, so the saves of one record are queued in order.
    fn save(&self, r: &Record) {
        if let Ok(text) = serde_json::to_string_pretty(r) {
            let _ = self.disk.send(Disk::Save(format!("{}.json", r.id), text));
        }
    }

    pub fn insert(&self, r: Record) {
        let (version, _) = watch::channel(0);
        let mut inner = self.lock();
        self.save(&r);
        inner.jobs.insert(
            r.id.clone(),
            Job {
                record: r,
                messages: Vec::new(),
                version,
            },
        );
        drop(inner);
        bump(&self.changed);
    }

    pub fn records(&self) -> Vec<Record> {
        let mut v: Vec<Record> = self
            .lock()
            .jobs
            .values()
            .map(|j| j.record.clone())
            .collect();
        v.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
        v
    }

    pub fn get(&self, id: &str) -> Option<Record> {
        self.lock().jobs.get(id).map(|j| j.record.clone())
    }

    /// The texts of the messages from `from` on (message `from + i` at `i`), whether the job
    /// is live, and a receiver that changes with the next ones.
    pub fn messages_from(
        &self,
        id: &str,
        from: usize,
    ) -> Option<(Vec<Arc<str>>, bool, watch::Receiver<u64>)> {
        let inner = self.lock();
        let j = inner.jobs.get(id)?;
        let rx = j.version.subscribe();
        let msgs = j.messages.get(from..).unwrap_or_default().to_vec();
        Some((msgs, j.record.is_live(), rx))
    }

    /// Changes a record (saved, readers woken); returns the new one.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut Record)) -> Option<Record> {
        let r = {
            let mut inner = self.lock();
            let j = inner.jobs.get_mut(id)?;
            f(&mut j.record);
            bump(&j.version);
            let r = j.record.clone();
            self.save(&r);
            r
        };
        bump(&self.changed);
        Some(r)
    }

    /// Adds a message `{"seq", "source", "data" or "text"}`, learning from it what the
    /// record shows (VM, policy, cost, turns, ...).
    pub fn push(&self, id: &str, source: &str, line: String) {
        let data: Option<Value> = serde_json::from_str(&line).ok().filter(Value::is_object);
        let learned = {
            let mut inner = self.lock();
            let Some(j) = inner.jobs.get_mut(id) else {
                return;
            };
            let seq = j.record.messages;
            j.record.messages += 1;
            let msg = match &data {
                Some(d) => json!({"seq": seq, "source": source, "data": d}),
                None => json!({"seq": seq, "source": source, "text": line}),
            };
            let text: Arc<str> = msg.to_string().into();
            let learned = data
                .as_ref()
                .is_some_and(|d| learn(&mut j.record, source, d));
            if j.messages.len() < MESSAGES_MAX {
                j.messages.push(text.clone());
            }
            if learned {
                let r = j.record.clone();
                self.save(&r);
            }
            let _ = self.disk.send(Disk::Append(id.to_owned(), text));
            bump(&j.version);
            learned
        };
        if learned {
            bump(&self.changed);
        }
    }

    /// The ids of jobs still running, with their child's pid.
    pub fn live(&self) -> Vec<(String, Option<u32>)> {
        self.lock()
            .jobs
            .values()
            .filter(|j| j.record.is_live())
            .map(|j| (j.record.id.clone(), j.record.owner_pid))
            .collect()
    }
}

/// Updates the record from one message; true if it changed something shown in lists.
fn learn(r: &mut Record, source: &str, d: &Value) -> bool {
    let s = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_owned);
    match (source, d.get("type").and_then(Value::as_str)) {
        ("claude-vm", Some("session.started")) => {
            r.vm = s("vm");
            r.policy = s("policy");
            r.warm = d.get("warm").and_then(Value::as_bool);
            true
        }
        ("claude-vm", Some("session.ended")) => {
            r.vm_deleted = d.get("vm_deleted").and_then(Value::as_bool);
            true
        }
        ("claude-vm", Some("error")) if r.error.is_none() => {
            r.error = s("message");
            true
        }
        ("claude", Some("result")) => {
            r.num_turns = d.get("num_turns").and_then(Value::as_u64);
            r.total_cost_usd = d.get("total_cost_usd").and_then(Value::as_f64);
            r.result_subtype = s("subtype");
            r.claude_session_id = s("session_id").or(r.claude_session_id.take());
            true
        }
        ("claude", Some("system")) if r.claude_session_id.is_none() => {
            r.claude_session_id = s("session_id");
            r.claude_session_id.is_some()
        }
        _ => false,
    }
}

fn read_messages(path: &Path) -> Vec<Arc<str>> {
    let Ok(text) = crate::fsread::small_regular_file(path, 64 << 20) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v.is_object()))
        .map(Arc::from)
        .take(MESSAGES_MAX)
        .collect()
}

/// The writing thread: records saved whole (atomically), messages appended, in the order
/// asked; ends with the store.
fn write_all(dir: &Path, todo: mpsc::Receiver<Disk>) {
    use std::os::unix::fs::OpenOptionsExt;
    // The job whose file is open (messages come in runs of one job).
    let mut open: Option<(String, std::fs::File)> = None;
    for d in todo {
        match d {
            Disk::Save(name, text) => {
                let _ = crate::atomic::write(dir, &name, text.as_bytes());
            }
            Disk::Append(id, line) => {
                if open.as_ref().is_none_or(|(o, _)| *o != id) {
                    open = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .mode(0o600)
                        .custom_flags(libc::O_NOFOLLOW)
                        .open(dir.join(format!("{id}.jsonl")))
                        .ok()
                        .map(|f| (id, f));
                }
                if let Some((_, f)) = open.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
            }
            Disk::Flushed(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// What to do when a job's child exits: (store, job id, exit status).
pub type OnExit = Box<dyn Fn(&Store, &str, i32) + Send + Sync>;

/// A job's child output, into the store; the exit through `on_exit`.
pub struct JobSink {
    pub store: Store,
    pub id: String,
    pub on_exit: OnExit,
}

impl Sink for JobSink {
    /// Lines as they arrive (the page streams them).
    fn read(&self, stream: Stream, r: &mut dyn std::io::Read) {
        let source = match stream {
            Stream::Stdout => "claude",
            Stream::Stderr => "claude-vm",
        };
        child::read_lines(r, |line| self.store.push(&self.id, source, line));
    }

    fn exited(&self, status: i32) {
        (self.on_exit)(&self.store, &self.id, status);
    }
}
