//! The world an end-to-end test runs in: a fresh HOME, a git project, the Lima simulator on
//! PATH as `limactl`, and the real claude-vm binary, run without a terminal.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

use crate::sandbox::{self, Sandbox};

pub const CLAUDE_VM: &str = env!("CARGO_BIN_EXE_claude-vm");

/// The simulator binary, built by `cargo test` as an example target (built here if a
/// narrower `cargo test --test e2e` skipped it).
pub fn simulator() -> &'static Path {
    static SIM: OnceLock<PathBuf> = OnceLock::new();
    SIM.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        let target = exe.parent().and_then(Path::parent).expect("target dir");
        let sim = target.join("examples/limactl");
        if sim.exists() {
            sim
        } else {
            sandbox::build_simulator(target).unwrap_or_else(|e| panic!("{e}"))
        }
    })
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    sandbox::git(dir, args).unwrap_or_else(|e| panic!("{e}"))
}

/// A sandbox (`root`, `home`, `bin`, `log`: its fields are the world's) with a project.
pub struct World {
    sandbox: Sandbox,
    pub project: PathBuf,
    pub lima_home: PathBuf,
    /// Extra environment for claude-vm (and through it, the simulator).
    pub env: Vec<(String, String)>,
    /// claude-vm processes a test keeps running meanwhile: their VMs are not "left behind".
    pub background: std::sync::Mutex<Vec<u32>>,
}

impl std::ops::Deref for World {
    type Target = Sandbox;

    fn deref(&self) -> &Sandbox {
        &self.sandbox
    }
}

/// One run of claude-vm.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The limactl invocations this run made, in order (argv after `limactl`).
    pub calls: Vec<Vec<String>>,
}

impl Run {
    pub fn verbs(&self) -> Vec<&str> {
        self.calls
            .iter()
            .map(|c| c.first().map(String::as_str).unwrap_or(""))
            .collect()
    }

    pub fn call(&self, verb: &str) -> &Vec<String> {
        self.calls
            .iter()
            .find(|c| c[0] == verb)
            .unwrap_or_else(|| panic!("no `{verb}` call in {:?}", self.calls))
    }

    /// The JSON line the fake claude printed.
    pub fn claude(&self) -> Value {
        let line = self
            .stdout
            .lines()
            .find(|l| l.contains("\"fake\":\"claude\""))
            .unwrap_or_else(|| {
                panic!(
                    "fake claude did not run; stdout:\n{}\nstderr:\n{}",
                    self.stdout, self.stderr
                )
            });
        serde_json::from_str(line).expect("fake claude JSON")
    }

    pub fn claude_argv(&self) -> Vec<String> {
        self.claude()["argv"]
            .as_array()
            .expect("argv")
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    #[track_caller]
    pub fn ok(&self) -> &Run {
        assert_eq!(
            self.code, 0,
            "claude-vm failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// How a shared base's name starts (`names::BASE_PREFIX`).
pub const BASE_PREFIX: &str = "claude-vm_base-";

impl World {
    /// A fresh world with a git project called `name` (any bytes the file system allows).
    pub fn with_project_name(name: &OsStr) -> World {
        let sandbox = Sandbox::new("cvm-e2e-", simulator()).unwrap_or_else(|e| panic!("{e}"));
        let project = sandbox.root.join("src").join(name);
        sandbox::git_project(&project, "hello\n").unwrap_or_else(|e| panic!("{e}"));
        World {
            lima_home: sandbox.home.join(".lima"),
            sandbox,
            project,
            env: Vec::new(),
            background: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub fn new() -> World {
        World::with_project_name(OsStr::new("app"))
    }

    pub fn set_env(&mut self, k: &str, v: &str) -> &mut World {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.root.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(&p, text).expect("write");
        p
    }

    pub fn write_project(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.project.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(&p, text).expect("write");
        p
    }

    pub fn command(&self, args: &[&str], cwd: &Path) -> Command {
        let mut cmd = self.sandbox.command(Path::new(CLAUDE_VM), args, cwd);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs claude-vm in the project directory and checks the invariants every run keeps.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_in(args, &self.project.clone())
    }

    pub fn run_in(&self, args: &[&str], cwd: &Path) -> Run {
        self.run_full(args, cwd, &[])
    }

    /// With extra environment for this run only.
    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.run_full(args, &self.project.clone(), env)
    }

    fn run_full(&self, args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Run {
        let before = self.logged().len();
        let mut cmd = self.command(args, cwd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("run claude-vm");
        let pid = child.id();
        let out: Output = child.wait_with_output().expect("wait for claude-vm");
        // Only this claude-vm's own calls: a warm pool's keeper may be working meanwhile.
        let calls = self.logged_since(before, Some(pid));
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            calls,
        };
        self.check_invariants(&run);
        run
    }

    /// Every limactl call so far, from the simulator's log.
    pub fn logged(&self) -> Vec<Vec<String>> {
        self.logged_since(0, None)
    }

    /// The limactl calls from the `from`-th on, made by the process `parent` (every process's
    /// for `None`).
    pub fn logged_since(&self, from: usize, parent: Option<u32>) -> Vec<Vec<String>> {
        let Ok(text) = std::fs::read_to_string(&self.log) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["event"] == "start")
            .skip(from)
            .filter(|v| parent.is_none_or(|p| v["ppid"].as_u64() == Some(u64::from(p))))
            .map(|v| {
                v["argv"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| x.as_str().unwrap_or("").to_owned())
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Lima instances on disk, but the shared bases (see [`World::bases`]): templates,
    /// clones, builds and whatever else is there.
    pub fn instances(&self) -> Vec<String> {
        self.all_instances()
            .into_iter()
            .filter(|n| !n.starts_with(BASE_PREFIX))
            .collect()
    }

    /// Every Lima instance on disk.
    pub fn all_instances(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(&self.lima_home) else {
            return Vec::new();
        };
        let mut v: Vec<String> = dir
            .flatten()
            .filter(|e| e.path().join("lima.yaml").exists())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// The shared bases on disk (`claude-vm_base-<hex>`).
    pub fn bases(&self) -> Vec<String> {
        self.all_instances()
            .into_iter()
            .filter(|n| n.starts_with(BASE_PREFIX))
            .collect()
    }

    /// The record of a complete shared base.
    pub fn base_record(&self, base: &str) -> Option<Value> {
        let text =
            std::fs::read_to_string(self.data_dir().join(format!("templates/bases/{base}.json")))
                .ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The instance's lima.yaml (JSON text in the simulator).
    pub fn lima_yaml(&self, name: &str) -> Value {
        let text = std::fs::read_to_string(self.lima_home.join(name).join("lima.yaml"))
            .expect("lima.yaml");
        serde_json::from_str(&text).expect("lima.yaml is JSON in the simulator")
    }

    pub fn templates(&self) -> Vec<String> {
        self.instances()
            .into_iter()
            .filter(|n| n.starts_with("claude-vm-") && !n.contains('.'))
            .collect()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.home.join(".local/share/claude-vm")
    }

    /// Runs claude-vm without checking what it leaves behind (the caller checks).
    pub fn run_unchecked(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let before = self.logged().len();
        let mut cmd = self.command(args, &self.project);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out: Output = cmd.output().expect("run claude-vm");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            calls: self.logged()[before..].to_vec(),
        }
    }

    /// Journal entries (live VMs claude-vm knows about).
    pub fn journal(&self) -> Vec<Value> {
        let Ok(dir) = std::fs::read_dir(self.data_dir().join("journal")) else {
            return Vec::new();
        };
        dir.flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|t| serde_json::from_str(&t).ok())
            .collect()
    }

    /// What must hold after any run: non-interactive calls only, no clone or build left, no
    /// hand-over directory left.
    #[track_caller]
    pub fn check_invariants(&self, run: &Run) {
        for c in &run.calls {
            if c.first().map(String::as_str) != Some("--version") {
                assert_eq!(
                    c.get(1).map(String::as_str),
                    Some("--tty=false"),
                    "call without --tty=false: {c:?}"
                );
            }
        }
        self.assert_nothing_left(&run.stderr);
    }

    /// The clones waiting in warm pools (they legitimately outlive the command that made
    /// them or the keeper that owns them).
    pub fn pooled(&self) -> Vec<String> {
        let Ok(pools) = std::fs::read_dir(self.data_dir().join("pool")) else {
            return Vec::new();
        };
        let mut names: Vec<String> = pools
            .flatten()
            .filter_map(|p| std::fs::read_dir(p.path().join("ready")).ok())
            .flat_map(|d| d.flatten())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".json")
                    .map(str::to_owned)
            })
            .collect();
        names.sort();
        names
    }

    /// No clone or build instance, no hand-over directory, no journal entry is left, except
    /// those of clones waiting in a warm pool.
    #[track_caller]
    pub fn assert_nothing_left(&self, context: &str) {
        let mut pooled = self.pooled();
        let background = self.background.lock().expect("background").clone();
        pooled.extend(
            self.journal()
                .iter()
                .filter(|e| {
                    let pid = e["owner"]["pid"].as_u64().map(|p| p as u32);
                    // A keeper at work on a clone for its pool: the pool's, not the command's.
                    let keeper_at_work = e["role"] == "warm" && pid.is_some_and(alive);
                    keeper_at_work || pid.is_some_and(|p| background.contains(&p))
                })
                .filter_map(|e| e["instance"].as_str().map(str::to_owned)),
        );
        let left: Vec<String> = self
            .instances()
            .into_iter()
            .filter(|n| n.contains('.') && !pooled.contains(n))
            .collect();
        assert!(
            left.is_empty(),
            "instances left behind: {left:?}\nstderr:\n{context}"
        );
        // A shared base stays only complete (recorded); an unfinished one is left behind.
        let unfinished: Vec<String> = self
            .bases()
            .into_iter()
            .filter(|b| self.base_record(b).is_none() && !pooled.contains(b))
            .collect();
        assert!(
            unfinished.is_empty(),
            "unfinished shared bases left behind: {unfinished:?}\nstderr:\n{context}"
        );
        let handover = self.data_dir().join("handover");
        let leftovers: Vec<_> = std::fs::read_dir(&handover)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !pooled.contains(n))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            leftovers.is_empty(),
            "hand-over directories left behind: {leftovers:?}"
        );
        let journal: Vec<Value> = self
            .journal()
            .into_iter()
            .filter(|e| {
                !e["instance"]
                    .as_str()
                    .is_some_and(|i| pooled.iter().any(|p| p == i))
            })
            .collect();
        assert!(
            journal.is_empty(),
            "journal entries left behind: {journal:?}\nstderr:\n{context}"
        );
    }

    /// Runs `claude-vm setup` and asserts it worked.
    pub fn setup(&self) -> Run {
        let r = self.run(&["setup"]);
        r.ok();
        r
    }
}

/// The calls of a project's first setup without a setup script: the shared base (create,
/// boot, one provisioning shell, stop), then the template, a clone of it with nothing to boot.
pub const FIRST_SETUP: [&str; 7] = [
    "--version",
    "list",
    "create",
    "start",
    "shell",
    "stop",
    "clone",
];

/// True where the simulator enforces mounts for real (Linux namespaces).
pub fn isolated() -> bool {
    cfg!(target_os = "linux")
        && std::env::var_os("LIMA_SIM_ISOLATION").as_deref() != Some(OsStr::new("fallback"))
}

pub fn bytes_of(s: &str) -> &[u8] {
    OsStr::new(s).as_bytes()
}

impl World {
    /// Runs claude-vm with a pseudo-terminal as stdin (stdout and stderr still captured),
    /// typing `input` into it: what a user at a terminal would answer.
    pub fn run_tty(&self, args: &[&str], input: &str) -> Run {
        use std::io::Write;

        let crate::tty::Pair { master, slave } = crate::tty::open();
        let before = self.logged().len();
        let mut cmd = self.command(args, &self.project);
        cmd.stdin(Stdio::from(slave));
        let child = cmd.spawn().expect("spawn claude-vm");
        let mut typing = master;
        typing
            .write_all(input.as_bytes())
            .expect("type into the terminal");
        let out = child.wait_with_output().expect("wait");
        drop(typing);
        let calls = self.logged()[before..].to_vec();
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            calls,
        };
        self.check_invariants(&run);
        run
    }
}

/// Whether a process with this pid exists (signal 0 only asks).
fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 sends nothing.
    libc::pid_t::try_from(pid).is_ok_and(|p| unsafe { libc::kill(p, 0) } == 0)
}
