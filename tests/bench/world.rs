//! Where the benchmark runs claude-vm: the end-to-end tests' sandbox (tests/common/sandbox.rs:
//! a fresh HOME, git projects, the Lima simulator on PATH as `limactl`), timing each run.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::calllog::{self, Call};
use crate::sandbox::{self, Sandbox};

pub struct World {
    sandbox: Sandbox,
    claude_vm: PathBuf,
}

/// One timed run of claude-vm.
pub struct Timed {
    pub pid: i64,
    pub code: i32,
    /// Where this run's records begin in the call log.
    pub log_from: usize,
    pub stdout: String,
    pub stderr: String,
    /// Seconds since the epoch, read right before the spawn and right after the process
    /// was reaped (the same clock as the simulator's log).
    pub spawned: f64,
    pub exited: f64,
    /// Every call the log recorded from the spawn on, by any process.
    pub calls: Vec<Call>,
    /// The steps each provisioning shell ran, by the instance it ran in (read from the
    /// builds' logs by [`World::read_steps`]; empty until then).
    pub steps: Vec<(String, Vec<String>)>,
}

impl Timed {
    pub fn describe(&self) -> String {
        format!(
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The steps a provisioning script announced (`==> [i/n] what`).
pub fn steps_in(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.trim().strip_prefix("==> ["))
        .filter_map(|l| l.split_once("] "))
        .map(|(_, what)| what.to_owned())
        .collect()
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl World {
    pub fn new(claude_vm: &Path, simulator: &Path) -> Result<World, String> {
        Ok(World {
            sandbox: Sandbox::new("cvm-bench-", simulator)?,
            claude_vm: claude_vm.to_owned(),
        })
    }

    /// A new git project with one commit, `~/src/NAME`.
    pub fn project(&self, name: &str) -> Result<PathBuf, String> {
        let dir = self.sandbox.home.join("src").join(name);
        sandbox::git_project(&dir, "benchmark project\n")?;
        Ok(dir)
    }

    /// No LIMA_SIM_DELAY, so the time inside limactl is the simulator's real (small) work.
    fn command(&self, args: &[&str], project: &Path) -> Command {
        self.sandbox.command(&self.claude_vm, args, project)
    }

    /// Runs claude-vm and times it from spawn to exit.
    pub fn run(&self, args: &[&str], project: &Path) -> Result<Timed, String> {
        let before = calllog::read(&self.sandbox.log)?.len();
        let mut cmd = self.command(args, project);
        let spawned = now();
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.claude_vm.display()))?;
        let pid = i64::from(child.id());
        let (out, err) = drain(&mut child);
        let status = child
            .wait()
            .map_err(|e| format!("cannot wait for claude-vm: {e}"))?;
        // The exit, not the pipes' end: a detached helper may hold them longer.
        let exited = now();
        let stdout = join(out);
        let stderr = join(err);
        let calls = calllog::read(&self.sandbox.log)?.split_off(before);
        Ok(Timed {
            pid,
            log_from: before,
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
            spawned,
            exited,
            calls,
            steps: Vec::new(),
        })
    }

    /// Fills `run.steps` from the build logs of its provisioning shells
    /// (`logs/<base or template>.setup.log`: a rebuild's `<template>.build-ID` logs under
    /// its template's name).
    pub fn read_steps(&self, run: &mut Timed) -> Result<(), String> {
        let logs = self.sandbox.home.join(".local/share/claude-vm/logs");
        for c in run.calls.iter().filter(|c| c.ppid == run.pid) {
            if !crate::model::is_provisioning(&c.argv) {
                continue;
            }
            let instance = crate::model::shell_instance(&c.argv)
                .ok_or_else(|| format!("a shell call without an instance: {:?}", c.argv))?;
            let key = instance.split('.').next().unwrap_or(instance);
            let path = logs.join(format!("{key}.setup.log"));
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            run.steps.push((instance.to_owned(), steps_in(&text)));
        }
        Ok(())
    }

    /// Runs claude-vm outside any measurement and requires success.
    pub fn must(&self, args: &[&str], project: &Path) -> Result<Timed, String> {
        let run = self.run(args, project)?;
        if run.code == 0 {
            Ok(run)
        } else {
            Err(format!(
                "`claude-vm {}` failed: {}",
                args.join(" "),
                run.describe()
            ))
        }
    }

    /// What spawning one `limactl` costs outside its own logged time (fork, exec, start-up
    /// until its first log record, exit and reaping after its last): the part of every
    /// call that the call log cannot see and so counts as claude-vm's overhead.
    pub fn spawn_cost(&self) -> Result<f64, String> {
        let log = self.sandbox.home.with_file_name("spawn-cost.log");
        let before = calllog::read(&log)?.len();
        let start = now();
        let out = Command::new(self.sandbox.bin.join("limactl"))
            .arg("--version")
            .env_clear()
            .env("LIMA_SIM_LOG", &log)
            .output()
            .map_err(|e| format!("cannot run the simulator: {e}"))?;
        let wall = now() - start;
        if !out.status.success() {
            return Err("`limactl --version` failed".into());
        }
        let inside = calllog::read(&log)?
            .get(before)
            .and_then(|c| Some(c.end? - c.start))
            .ok_or("`limactl --version` logged no call")?;
        Ok(wall - inside)
    }

    /// Every call logged from record `from` on (a run's, and any background work since).
    pub fn calls_since(&self, from: usize) -> Result<Vec<Call>, String> {
        let mut calls = calllog::read(&self.sandbox.log)?;
        Ok(calls.split_off(from.min(calls.len())))
    }

    /// Live processes of this claude-vm binary (none but detached helpers when no command
    /// of ours runs: the warm pool's keeper, which stays for the pool's idle time).
    pub fn claude_vm_processes(&self) -> Vec<i64> {
        live_processes_of(&self.claude_vm)
    }

    /// Waits until no process of this claude-vm binary runs except `residents` (a detached
    /// helper, such as a refill, may outlive the command) and no limactl call is in flight,
    /// so one run's background work never overlaps the next run's measurement.
    pub fn settle(&self, residents: &[i64]) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let busy: Vec<i64> = live_processes_of(&self.claude_vm)
                .into_iter()
                .filter(|p| !residents.contains(p))
                .collect();
            let in_flight: Vec<Call> = calllog::read(&self.sandbox.log)?
                .into_iter()
                .filter(|c| c.end.is_none() && alive(c.pid))
                .collect();
            if busy.is_empty() && in_flight.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "background work did not finish within 120 s: claude-vm processes {busy:?}, limactl calls {:?}",
                    in_flight.iter().map(|c| &c.argv).collect::<Vec<_>>()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn drain(child: &mut Child) -> (JoinHandle<String>, JoinHandle<String>) {
    fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<String> {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let mut bytes = Vec::new();
                let _ = p.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            text
        })
    }
    (reader(child.stdout.take()), reader(child.stderr.take()))
}

fn join(handle: JoinHandle<String>) -> String {
    handle.join().unwrap_or_default()
}

/// A process that exists and is not a zombie (where PID 1 does not reap, a finished
/// orphan stays a zombie).
pub fn alive(pid: i64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().chars().next()),
            Some(Some('Z' | 'X'))
        ),
        Err(_) => true,
    }
}

/// Live processes running the binary at `exe`.
fn live_processes_of(exe: &Path) -> Vec<i64> {
    let Ok(want) = std::fs::canonicalize(exe) else {
        return Vec::new();
    };
    if let Ok(dir) = std::fs::read_dir("/proc") {
        return dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i64>().ok())
            .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p == want))
            .filter(|pid| alive(*pid))
            .collect();
    }
    // No /proc (macOS): ask ps for full command lines.
    let Ok(out) = Command::new("ps").args(["-A", "-o", "pid=,args="]).output() else {
        return Vec::new();
    };
    let want = want.to_string_lossy().into_owned();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (pid, args) = l.trim_start().split_once(' ')?;
            let pid = pid.parse::<i64>().ok()?;
            (args.trim_start().starts_with(&want) && alive(pid)).then_some(pid)
        })
        .collect()
}
