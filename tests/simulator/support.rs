//! The harness: the simulator binary, one simulated machine (`Sim`) and its runs (`Out`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// Builds (or refreshes) the simulator once per test run and returns it:
/// `<dir of this test binary>/../examples/limactl`.
pub fn sim_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>/deps");
        crate::sandbox::build_simulator(profile_dir).unwrap_or_else(|e| panic!("{e}"))
    })
}

pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Out {
    fn from(o: Output) -> Self {
        Out {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Out {
    #[track_caller]
    pub fn ok(self) -> Out {
        assert_eq!(
            self.code,
            Some(0),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn fails_with(self, code: i32, needle: &str) -> Out {
        assert_eq!(
            self.code,
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        assert!(
            self.stderr.contains(needle),
            "expected {needle:?} in stderr:\n{}",
            self.stderr
        );
        self
    }

    /// The single fatal line's `msg`, unquoted.
    pub fn fatal_msg(&self) -> String {
        let line = self
            .stderr
            .lines()
            .find(|l| l.contains("level=fatal"))
            .unwrap_or_default();
        let quoted = line.split_once("msg=").map(|(_, m)| m).unwrap_or_default();
        serde_json::from_str::<String>(quoted).unwrap_or_else(|_| quoted.to_string())
    }
}

/// One simulated machine: a LIMA_HOME, a host HOME and a project directory.
pub struct Sim {
    pub root: TempDir,
    pub lima_home: PathBuf,
    pub home: PathBuf,
    pub project: PathBuf,
    pub log: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Sim {
    pub fn new() -> Sim {
        Sim::with_lima_home("lima")
    }

    pub fn with_lima_home(rel: &str) -> Sim {
        let root = tempfile::tempdir().expect("tempdir");
        let base = root.path().canonicalize().expect("canonical tempdir");
        let (lima_home, home, project) =
            (base.join(rel), base.join("home"), base.join("work/project"));
        for d in [&lima_home, &home, &project] {
            fs::create_dir_all(d).expect("mkdir");
        }
        fs::write(home.join("host-secret.txt"), "secret").expect("write");
        fs::write(base.join("work/sibling.txt"), "sibling").expect("write");
        fs::write(project.join("README"), "project file").expect("write");
        let log = base.join("calls.jsonl");
        Sim {
            lima_home,
            home,
            project,
            log,
            root,
            env: Vec::new(),
        }
    }

    pub fn base(&self) -> &Path {
        self.root.path()
    }

    pub fn set_env(&mut self, k: &str, v: &str) {
        self.env.push((k.into(), v.into()));
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(sim_bin());
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("LIMA_HOME", &self.lima_home)
            .env("LIMA_SIM_LOG", &self.log)
            .env("HOST_ONLY_VARIABLE", "must-not-leak")
            .current_dir(&self.project)
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Out {
        self.cmd(args).output().expect("run limactl").into()
    }

    /// `limactl ARGS` in a new network namespace that the harness owns: a guest on "the host's
    /// network" started this way shares that namespace, never the machine's own.
    pub fn run_in_own_netns(&self, args: &[&str]) -> Out {
        let inner = self.cmd(args);
        let mut c = Command::new("unshare");
        c.arg("--net");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            c.arg("--map-current-user");
        }
        c.arg("--")
            .arg(inner.get_program())
            .args(inner.get_args())
            .env_clear()
            .current_dir(&self.project)
            .stdin(Stdio::null());
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c.output()
            .expect("run limactl under unshare --net (util-linux)")
            .into()
    }

    /// `limactl shell NAME bash -c SCRIPT`.
    pub fn sh(&self, name: &str, script: &str) -> Out {
        self.run(&["shell", name, "bash", "-c", script])
    }

    pub fn create(&self, name: &str, extra: &[&str]) {
        let mut args = vec!["create", "--tty=false", "--name", name];
        args.extend_from_slice(extra);
        args.push("template:debian-13");
        self.run(&args).ok();
    }

    /// A running instance whose only mount is the project (writable).
    pub fn running_with_project(&self, name: &str) {
        let set = format!(
            ".mounts = [{}]",
            serde_json::json!({"location": self.project, "writable": true})
        );
        self.create(name, &["--set", &set]);
        self.run(&["start", name]).ok();
    }

    /// `--set` for lima.yaml's env, so guest processes of this test can be found.
    pub fn tagged(&self) -> String {
        format!(".env.SIM_TEST_ID = {}", serde_json::json!(self.base()))
    }

    pub fn list_json(&self, name: &str) -> Value {
        let out = self.run(&["list", "--format", "json", name]).ok();
        serde_json::from_str(out.stdout.trim()).expect("one JSON object")
    }

    pub fn calls(&self) -> Vec<Value> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("whole JSON line"))
            .collect()
    }

    pub fn isolation(&self) -> String {
        let ends: Vec<Value> = self
            .calls()
            .into_iter()
            .filter(|c| c["isolation"].is_string())
            .collect();
        ends.last()
            .map(|c| c["isolation"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    }
}

#[track_caller]
pub fn assert_namespace_mode(sim: &Sim) {
    assert_eq!(
        sim.isolation(),
        "namespace",
        "the simulator fell back to its fallback mode: this machine does not allow mount namespaces \
         (as root, or unprivileged with user namespaces; on Ubuntu 24.04 set \
         kernel.apparmor_restrict_unprivileged_userns=0)"
    );
}

pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

pub fn pid_gone(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    let alive = unsafe { libc::kill(pid as i32, 0) } == 0;
    let zombie = fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false);
    !alive || zombie
}

pub fn wait_child(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Live guest processes of `sim` running `needle`: they carry the
/// `SIM_TEST_ID` that `Sim::tagged` put in lima.yaml's `env`.
pub fn guest_pids(sim: &Sim, needle: &str) -> Vec<u32> {
    let tag = format!("SIM_TEST_ID={}", sim.base().display());
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline =
            String::from_utf8_lossy(&fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
                .replace('\0', " ");
        let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let tagged = environ.split(|b| *b == 0).any(|kv| kv == tag.as_bytes());
        if tagged && cmdline.contains(needle) && !pid_gone(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// The guest user's name, as Lima derives it from the host user (`osutil.LimaUser`); a root
/// host (which Lima refuses) gets Lima's fallback user, as the simulator does.
pub fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let valid = !name.is_empty()
        && unsafe { libc::geteuid() } != 0
        && name != "admin"
        && name.chars().enumerate().all(|(i, c)| {
            c.is_ascii_lowercase() || c == '_' || (i > 0 && (c.is_ascii_digit() || c == '-'))
        });
    if valid {
        name
    } else {
        "lima".into()
    }
}

/// The uid guest commands run as: the guest user's in namespace mode as root (Lima's
/// fallback uid 1000 for a root host), 0 in a user namespace (which maps only the caller).
pub fn guest_uid() -> u32 {
    if unsafe { libc::geteuid() } == 0 {
        1000
    } else {
        0
    }
}

/// A unix-socket echo server on the host: each connection gets back
/// `echo:` and what it sent, once the client has shut down its side.
pub fn echo_server(path: &Path) {
    use std::io::Read;
    let listener = std::os::unix::net::UnixListener::bind(path).expect("bind echo socket");
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut got = Vec::new();
            let _ = conn.read_to_end(&mut got);
            let _ = conn.write_all(&[b"echo:".as_slice(), &got].concat());
        }
    });
}
