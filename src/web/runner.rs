//! One child claude-vm per session or rebuild, as `claude-vm mcp` runs its tools: this same
//! executable with `--json`, in the project's directory, its stdout (claude's stream-json)
//! and stderr (claude-vm's events) read line by line. Children are spawned by one thread
//! that lives as long as the server, with PR_SET_PDEATHSIG=SIGTERM (Linux), so a server
//! that dies, even by SIGKILL, still makes each child delete its VM; each child is in its
//! own process group, so a Ctrl-C at the server's terminal reaches the server alone, which
//! then ends each child with one SIGTERM.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The longest line kept from a child (longer ones are cut).
const LINE_MAX: usize = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Where a child's output goes.
pub trait Sink: Send + Sync {
    fn line(&self, stream: Stream, line: String);
    /// The exit status (128+N for a signal), once both streams ended (or 2 s after exit).
    fn exited(&self, status: i32);
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
            .name("web-spawner".into())
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
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The server died before the signal was armed: nothing would send it.
                if libc::getppid() != parent {
                    libc::_exit(143);
                }
                Ok(())
            });
        }
    }
    cmd.spawn()
}

/// Reads lines (cut at LINE_MAX) until the stream ends.
fn pump(r: impl Read, stream: Stream, sink: &dyn Sink) {
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
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']);
                if !line.trim().is_empty() {
                    sink.line(stream, line.to_owned());
                }
            }
        }
    }
}

/// Starts `exe ARGS` in `dir`; returns its pid. Output and the exit go to `sink`.
pub fn spawn(exe: &Path, args: &[String], dir: &Path, sink: Arc<dyn Sink>) -> std::io::Result<u32> {
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
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut readers = 0;
    if let Some(out) = child.stdout.take() {
        let (sink, done) = (sink.clone(), done_tx.clone());
        readers += 1;
        std::thread::spawn(move || {
            pump(out, Stream::Stdout, &*sink);
            let _ = done.send(());
        });
    }
    if let Some(err) = child.stderr.take() {
        let (sink, done) = (sink.clone(), done_tx.clone());
        readers += 1;
        std::thread::spawn(move || {
            pump(err, Stream::Stderr, &*sink);
            let _ = done.send(());
        });
    }
    drop(done_tx);
    std::thread::spawn(move || {
        use std::os::unix::process::ExitStatusExt;
        let status = child
            .wait()
            .map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)))
            .unwrap_or(-1);
        // A VM's process may hold the pipes a little longer: do not wait for it forever.
        for _ in 0..readers {
            if done_rx.recv_timeout(Duration::from_secs(2)).is_err() {
                break;
            }
        }
        sink.exited(status);
    });
    Ok(pid)
}

/// SIGTERM to a child: claude-vm deletes its VM and exits.
pub fn terminate(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: a plain signal to a child this server started. Callers signal only a job
        // whose record is live; its waiting thread records the exit right after reaping, so
        // only that instant could see a reused pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
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
        fn line(&self, stream: Stream, line: String) {
            self.lines.lock().unwrap().push((stream, line));
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
        spawn(Path::new("/bin/sh"), &args, Path::new("/"), c.clone()).unwrap();
        assert_eq!(wait(&c), 3);
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
    fn terminate_ends_a_child_with_sigterm() {
        let c = Arc::new(Collect::default());
        let pid = spawn(
            Path::new("/bin/sleep"),
            &["30".to_owned()],
            Path::new("/"),
            c.clone(),
        )
        .unwrap();
        terminate(pid);
        assert_eq!(wait(&c), 128 + libc::SIGTERM);
    }
}
