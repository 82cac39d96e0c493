//! A session run as a child claude-vm process, as `claude-vm mcp` and `claude-vm web` run
//! theirs: this same executable with `--json` in the project's directory, an argv (never a
//! shell line), its stdout and stderr read to the end so it never blocks on a full pipe.
//!
//! Children are spawned by one thread that lives as long as the process, with
//! PR_SET_PDEATHSIG=SIGHUP (Linux; the signal is tied to the spawning *thread*, so a
//! runtime's worker thread that ends would fire it early), so a parent that dies, even by
//! SIGKILL, still makes each child delete its VM. SIGHUP, not SIGTERM: a dying
//! multi-threaded parent sends the signal once per thread the child is handed to while its
//! threads exit (often two or three at once), and claude-vm counts repeated hang-ups as one,
//! where a second SIGTERM would mean "stop now" (SIGKILL to `limactl shell`, the guest
//! command never told). Each child is in its own process group,
//! so a Ctrl-C at the parent's terminal reaches the parent alone, which then ends each
//! child with one SIGTERM (`Children`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The longest line kept by `read_lines` (longer ones are cut).
pub const LINE_MAX: usize = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Where a child's output goes.
pub trait Sink: Send + Sync {
    /// Reads one stream to its end (`read_lines` or `read_bounded`), on its own thread.
    fn read(&self, stream: Stream, r: &mut dyn Read);
    /// The exit status (128+N for a signal), once both streams ended (or `linger` after
    /// the exit).
    fn exited(&self, status: i32);
}

/// `claude-vm --json [--network MODE] -- -p PROMPT CLAUDE_ARGS`: a session's argv.
pub fn agent_argv(network: Option<&str>, prompt: &str, claude_args: &[String]) -> Vec<String> {
    let mut a = vec!["--json".to_owned()];
    if let Some(n) = network {
        a.extend(["--network".to_owned(), n.to_owned()]);
    }
    a.extend(["--", "-p", prompt].map(str::to_owned));
    a.extend(claude_args.iter().cloned());
    a
}

/// A prompt for claude: not blank, no NUL byte (it travels through JSON and scripts).
pub fn check_prompt(prompt: &str) -> Result<(), String> {
    if prompt.trim().is_empty() {
        return Err("prompt is empty: say what the agent should do".into());
    }
    if prompt.contains('\0') {
        return Err("prompt contains a NUL byte".into());
    }
    Ok(())
}

/// More arguments for claude: no NUL byte (an argv cannot carry one).
pub fn check_claude_args(args: &[String]) -> Result<(), String> {
    match args.iter().position(|a| a.contains('\0')) {
        Some(i) => Err(format!("claude_args[{i}] contains a NUL byte")),
        None => Ok(()),
    }
}

/// The children running now and whether each was sent SIGTERM already. One signal only: a
/// second one would cut a clean-up short. A pid leaves the table before it is reaped, so a
/// signal never reaches a reused pid.
#[derive(Clone, Default)]
pub struct Children(Arc<(Mutex<HashMap<u32, bool>>, Condvar)>);

impl Children {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<u32, bool>> {
        self.0
             .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// SIGTERM to a running child, once: claude-vm deletes its VM and exits.
    pub fn terminate(&self, pid: u32) {
        let mut t = self.table();
        if let Some(signalled) = t.get_mut(&pid) {
            if !*signalled {
                *signalled = true;
                if let Ok(pid) = libc::pid_t::try_from(pid) {
                    // SAFETY: a plain signal to our unreaped child (it is in the table).
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                }
            }
        }
    }

    /// One SIGTERM to every child not signalled yet.
    pub fn terminate_all(&self) {
        let pids: Vec<u32> = self.table().keys().copied().collect();
        for pid in pids {
            self.terminate(pid);
        }
    }

    /// Waits until every child has exited (or `deadline`); true if none is left.
    pub fn wait_all(&self, deadline: Option<Instant>) -> bool {
        let mut t = self.table();
        while !t.is_empty() {
            let wait = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) => left.min(Duration::from_secs(1)),
                    None => return false,
                },
                None => Duration::from_secs(1),
            };
            t = self
                .0
                 .1
                .wait_timeout(t, wait)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        true
    }

    fn insert(&self, pid: u32) {
        self.table().insert(pid, false);
    }

    fn remove(&self, pid: u32) {
        self.table().remove(&pid);
        self.0 .1.notify_all();
    }
}

/// How a child is run: where its pid is kept, and how long to wait for its streams after
/// it exited (None: until they end).
pub struct Options {
    pub children: Children,
    pub linger: Option<Duration>,
}

struct Request {
    exe: PathBuf,
    args: Vec<String>,
    dir: PathBuf,
    reply: mpsc::Sender<std::io::Result<std::process::Child>>,
}

/// The spawning thread: never ends, so the death signal fires only with the process.
fn spawner() -> &'static Mutex<mpsc::Sender<Request>> {
    static TX: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        let spawned = std::thread::Builder::new()
            .name("child-spawner".into())
            .spawn(move || {
                for r in rx {
                    let _ = r.reply.send(start(&r.exe, &r.args, &r.dir));
                }
            });
        if let Err(e) = spawned {
            crate::ui::raw_stderr(&format!("claude-vm: error: cannot start a thread: {e}\n"));
        }
        Mutex::new(tx)
    })
}

fn start(exe: &Path, args: &[String], dir: &Path) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getpid is async-signal-safe; read before the fork.
        let parent = unsafe { libc::getpid() };
        // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGHUP) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent died before the signal was armed: nothing would send it.
                if libc::getppid() != parent {
                    libc::_exit(128 + libc::SIGHUP);
                }
                Ok(())
            });
        }
    }
    cmd.spawn()
}

/// Reads lines (cut at LINE_MAX, blank ones skipped, without their line end) until the
/// stream ends.
pub fn read_lines(r: &mut dyn Read, mut line: impl FnMut(String)) {
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut r).take(LINE_MAX as u64).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let full = buf.last() == Some(&b'\n');
                if !full && buf.len() >= LINE_MAX {
                    // Skip the rest of an overlong line.
                    let mut rest = Vec::new();
                    let _ = r.read_until(b'\n', &mut rest);
                }
                let text = String::from_utf8_lossy(&buf);
                let text = text.trim_end_matches(['\n', '\r']);
                if !text.trim().is_empty() {
                    line(text.to_owned());
                }
            }
        }
    }
}

/// Everything `r` gives, the first `max` bytes kept.
pub fn read_bounded(r: &mut dyn Read, max: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = max.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    kept
}

/// Waits for `pid` to exit without reaping it (so its pid stays ours meanwhile).
fn await_exit(pid: u32) {
    let pid: libc::id_t = pid;
    loop {
        // SAFETY: a zeroed siginfo_t is a valid out-parameter.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waits for our own child; WNOWAIT leaves it to be reaped by `wait`.
        let r = unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// Starts `exe ARGS` in `dir`; returns its pid. Output and the exit go to `sink`; the pid
/// is in `opts.children` until it exited.
pub fn spawn(
    exe: &Path,
    args: &[String],
    dir: &Path,
    sink: Arc<dyn Sink>,
    opts: Options,
) -> std::io::Result<u32> {
    let (reply, answer) = mpsc::channel();
    let sent = spawner()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .send(Request {
            exe: exe.to_path_buf(),
            args: args.to_vec(),
            dir: dir.to_path_buf(),
            reply,
        });
    if sent.is_err() {
        return Err(std::io::Error::other("the spawning thread is gone"));
    }
    let mut child = answer
        .recv()
        .map_err(|_| std::io::Error::other("the spawning thread is gone"))??;
    let pid = child.id();
    opts.children.insert(pid);
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut readers = 0;
    let streams: [(Stream, Option<Box<dyn Read + Send>>); 2] = [
        (
            Stream::Stdout,
            child.stdout.take().map(|r| Box::new(r) as _),
        ),
        (
            Stream::Stderr,
            child.stderr.take().map(|r| Box::new(r) as _),
        ),
    ];
    for (stream, r) in streams {
        let Some(mut r) = r else { continue };
        let (sink, done) = (sink.clone(), done_tx.clone());
        readers += 1;
        std::thread::spawn(move || {
            sink.read(stream, &mut r);
            let _ = done.send(());
        });
    }
    drop(done_tx);
    let Options { children, linger } = opts;
    std::thread::spawn(move || {
        use std::os::unix::process::ExitStatusExt;
        await_exit(pid);
        children.remove(pid);
        let status = child
            .wait()
            .map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)))
            .unwrap_or(-1);
        for _ in 0..readers {
            let got = match linger {
                // A VM's process may hold the pipes a little longer: do not wait forever.
                Some(d) => done_rx.recv_timeout(d).is_ok(),
                None => done_rx.recv().is_ok(),
            };
            if !got {
                break;
            }
        }
        sink.exited(status);
    });
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect {
        lines: Mutex<Vec<(Stream, String)>>,
        status: Mutex<Option<i32>>,
    }

    impl Sink for Collect {
        fn read(&self, stream: Stream, r: &mut dyn Read) {
            read_lines(r, |l| self.lines.lock().unwrap().push((stream, l)));
        }
        fn exited(&self, status: i32) {
            *self.status.lock().unwrap() = Some(status);
        }
    }

    fn wait(c: &Collect) -> i32 {
        for _ in 0..500 {
            if let Some(s) = *c.status.lock().unwrap() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the child did not end");
    }

    fn opts(children: &Children) -> Options {
        Options {
            children: children.clone(),
            linger: Some(Duration::from_secs(2)),
        }
    }

    #[test]
    fn lines_of_both_streams_and_the_exit_status_arrive_and_argv_is_not_a_shell() {
        let c = Arc::new(Collect::default());
        let args = [
            "-c",
            "printf 'a\\n\\nb'; echo e >&2; echo \"$1\"; exit 3",
            "sh",
            "$(x) 'q' \"\n\u{e9}",
        ]
        .map(str::to_owned);
        let children = Children::default();
        spawn(
            Path::new("/bin/sh"),
            &args,
            Path::new("/"),
            c.clone(),
            opts(&children),
        )
        .unwrap();
        assert_eq!(wait(&c), 3);
        assert!(children.wait_all(Some(Instant::now())));
        let lines = c.lines.lock().unwrap().clone();
        let out: Vec<&str> = lines
            .iter()
            .filter(|(s, _)| *s == Stream::Stdout)
            .map(|(_, l)| l.as_str())
            .collect();
        assert_eq!(out, ["a", "b$(x) 'q' \"", "\u{e9}"]);
        assert!(lines.contains(&(Stream::Stderr, "e".into())));
    }

    #[test]
    fn terminate_ends_a_child_with_one_sigterm_and_wait_all_sees_it_gone() {
        let c = Arc::new(Collect::default());
        let children = Children::default();
        // A child that survives its first SIGTERM: a second one would end it.
        let script = "trap 'trap - TERM; echo once' TERM; while :; do sleep 0.05; done";
        let pid = spawn(
            Path::new("/bin/sh"),
            &["-c".to_owned(), script.to_owned()],
            Path::new("/"),
            c.clone(),
            opts(&children),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        children.terminate(pid);
        children.terminate(pid);
        children.terminate_all();
        assert!(!children.wait_all(Some(Instant::now() + Duration::from_millis(500))));
        assert!(c.status.lock().unwrap().is_none(), "signalled twice");
        // SAFETY: the test's own child, still unreaped (it is in the table).
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        assert!(children.wait_all(Some(Instant::now() + Duration::from_secs(5))));
        assert_eq!(wait(&c), 128 + libc::SIGKILL);
        assert!(c
            .lines
            .lock()
            .unwrap()
            .contains(&(Stream::Stdout, "once".into())));
    }

    #[test]
    fn bounded_reads_keep_the_start_and_drain_the_rest() {
        let data = vec![b'x'; 100_000];
        assert_eq!(read_bounded(&mut &data[..], 10), vec![b'x'; 10]);
        assert_eq!(read_bounded(&mut &data[..], 1 << 20).len(), 100_000);
    }

    #[test]
    fn prompts_and_arguments_are_checked() {
        assert!(check_prompt("fix it").is_ok());
        for bad in ["", "  \n", "a\0b"] {
            assert!(check_prompt(bad).is_err(), "{bad:?}");
        }
        assert!(check_claude_args(&["--model".into(), "".into()]).is_ok());
        assert_eq!(
            check_claude_args(&["a".into(), "b\0".into()]),
            Err("claude_args[1] contains a NUL byte".into())
        );
        assert_eq!(
            agent_argv(Some("open"), "$(x) -v", &["--verbose".into()]),
            [
                "--json",
                "--network",
                "open",
                "--",
                "-p",
                "$(x) -v",
                "--verbose"
            ]
        );
    }
}
