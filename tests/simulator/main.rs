//! Integration tests of the Lima simulator (`tests/sim/`): they drive the
//! built `limactl` example binary the way claude-vm will, each test with its
//! own `$LIMA_HOME`, `$HOME` and project directory.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

// ---------------------------------------------------------------- harness

/// Builds (or refreshes) the simulator once per test run and returns it:
/// `<dir of this test binary>/../examples/limactl`.
fn sim_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>/deps");
        let bin = profile_dir.join("examples").join("limactl");
        let profile = profile_dir
            .file_name()
            .and_then(OsStr::to_str)
            .unwrap_or("debug");
        let profile = if profile == "debug" { "dev" } else { profile };
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "--example",
                "limactl",
                "--profile",
                profile,
                "--manifest-path",
            ])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .status()
            .expect("run cargo build --example limactl");
        assert!(status.success(), "cargo build --example limactl failed");
        assert!(bin.exists(), "{} was not built", bin.display());
        bin
    })
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
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
    fn ok(self) -> Out {
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
    fn fails_with(self, code: i32, needle: &str) -> Out {
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
    fn fatal_msg(&self) -> String {
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
struct Sim {
    root: TempDir,
    lima_home: PathBuf,
    home: PathBuf,
    project: PathBuf,
    log: PathBuf,
    env: Vec<(String, String)>,
}

impl Sim {
    fn new() -> Sim {
        Sim::with_lima_home("lima")
    }

    fn with_lima_home(rel: &str) -> Sim {
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

    fn base(&self) -> &Path {
        self.root.path()
    }

    fn set_env(&mut self, k: &str, v: &str) {
        self.env.push((k.into(), v.into()));
    }

    fn cmd(&self, args: &[&str]) -> Command {
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

    fn run(&self, args: &[&str]) -> Out {
        self.cmd(args).output().expect("run limactl").into()
    }

    /// `limactl shell NAME bash -c SCRIPT`.
    fn sh(&self, name: &str, script: &str) -> Out {
        self.run(&["shell", name, "bash", "-c", script])
    }

    fn create(&self, name: &str, extra: &[&str]) {
        let mut args = vec!["create", "--tty=false", "--name", name];
        args.extend_from_slice(extra);
        args.push("template:debian-13");
        self.run(&args).ok();
    }

    /// A running instance whose only mount is the project (writable).
    fn running_with_project(&self, name: &str) {
        let set = format!(
            ".mounts = [{}]",
            serde_json::json!({"location": self.project, "writable": true})
        );
        self.create(name, &["--set", &set]);
        self.run(&["start", name]).ok();
    }

    /// `--set` for lima.yaml's env, so guest processes of this test can be found.
    fn tagged(&self) -> String {
        format!(".env.SIM_TEST_ID = {}", serde_json::json!(self.base()))
    }

    fn list_json(&self, name: &str) -> Value {
        let out = self.run(&["list", "--format", "json", name]).ok();
        serde_json::from_str(out.stdout.trim()).expect("one JSON object")
    }

    fn calls(&self) -> Vec<Value> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("whole JSON line"))
            .collect()
    }

    fn isolation(&self) -> String {
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
fn assert_namespace_mode(sim: &Sim) {
    assert_eq!(
        sim.isolation(),
        "namespace",
        "the simulator fell back to its fallback mode: this machine does not allow mount namespaces \
         (as root, or unprivileged with user namespaces; on Ubuntu 24.04 set \
         kernel.apparmor_restrict_unprivileged_userns=0)"
    );
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

fn pid_gone(pid: u32) -> bool {
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

fn wait_child(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
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

// ---------------------------------------------------------------- the CLI

#[test]
fn version_unknown_commands_and_flags() {
    let sim = Sim::new();
    assert_eq!(
        sim.run(&["--version"]).ok().stdout,
        "limactl version 2.0.3\n"
    );
    let mut custom = Sim::new();
    custom.set_env("LIMA_SIM_VERSION", "2.1.0");
    assert_eq!(
        custom.run(&["--version"]).ok().stdout,
        "limactl version 2.1.0\n"
    );

    let out = sim.run(&["strat"]).fails_with(1, "level=fatal");
    assert_eq!(
        out.fatal_msg(),
        "unknown command \"strat\" for \"limactl\"\n\nDid you mean this?\n\tstart\n"
    );
    let out = sim.run(&["list", "--foo"]).fails_with(1, "level=fatal");
    assert_eq!(out.fatal_msg(), "unknown flag: --foo");
    assert!(
        out.stderr.starts_with("time=\""),
        "logrus text format: {}",
        out.stderr
    );
    sim.run(&["shell", "-A", "x"])
        .fails_with(1, "unknown shorthand flag: 'A' in -A");
    sim.run(&["snapshot", "list"]).fails_with(
        1,
        "command \\\"snapshot\\\" is not supported by the simulator",
    );
    sim.run(&["create", "--network", "lima:shared", "template:debian-13"])
        .fails_with(1, "flag --network is not supported by the simulator");
    sim.run(&["shell", "--sync", ".", "x"])
        .fails_with(1, "flag --sync is not supported by the simulator");

    let out = sim.run(&["clone", "a"]).fails_with(1, "level=fatal");
    assert_eq!(
        out.fatal_msg(),
        "\"limactl clone\" accepts 2 arg(s), received 1.\nSee 'limactl clone --help'.\n\nUsage:  limactl clone OLDINST NEWINST [flags]\n\nClone an instance of Lima"
    );
    let out = sim.run(&["shell"]).fails_with(1, "level=fatal");
    assert!(out
        .fatal_msg()
        .starts_with("\"limactl shell\" requires at least 1 arg(s), only received 0."));
    sim.run(&["create", "--cpus", "two"]).fails_with(
        1,
        "invalid argument \\\"two\\\" for \\\"--cpus\\\" flag: strconv.ParseInt: parsing \\\"two\\\": invalid syntax",
    );
    sim.run(&["--tty=false", "--yes", "list"])
        .fails_with(1, "cannot use both --tty and --yes flags at the same time");
    sim.run(&["list", "--log-format", "xml"])
        .fails_with(1, "unsupported log-format: \\\"xml\\\"");
    let json = sim
        .run(&["--log-format", "json", "list", "nope"])
        .fails_with(1, "\"level\":\"fatal\"");
    assert!(
        json.stderr.contains(
            "{\"level\":\"warning\",\"msg\":\"No instance matching nope found.\",\"time\":"
        ),
        "{}",
        json.stderr
    );
}

#[test]
fn flags_parse_like_pflag() {
    let sim = Sim::new();
    // Flags may follow positional arguments (except for shell).
    sim.run(&[
        "create",
        "template:debian-13",
        "--tty=false",
        "--cpus=2",
        "--name",
        "vm",
    ])
    .ok();
    assert_eq!(sim.list_json("vm")["cpus"], 2);
    // A bool flag never consumes the next argument: "false" is an instance name here.
    let out = sim
        .run(&["list", "--json", "false"])
        .fails_with(1, "No instance matching false found.");
    assert_eq!(out.fatal_msg(), "unmatched instances");
    // --set and --mount are repeatable, and --mount is a comma-separated list.
    let (a, b) = (sim.base().join("a"), sim.base().join("b"));
    let mounts = format!("{},{}:w", a.display(), b.display());
    sim.run(&[
        "create",
        "--tty=false",
        "--name",
        "m",
        "--mount",
        &mounts,
        "--set",
        ".cpus = 1",
        "--set",
        ".cpus += 2",
        "template:debian-13",
    ])
    .ok();
    let info = sim.list_json("m");
    assert_eq!(info["cpus"], 3);
    let mounts = info["config"]["mounts"].as_array().expect("mounts").clone();
    assert_eq!(mounts.len(), 3, "{mounts:?}");
    assert_eq!(mounts[0]["location"], b.to_str().expect("utf8"));
    assert_eq!(mounts[0]["writable"], true);
    assert_eq!(mounts[1]["location"], a.to_str().expect("utf8"));
    assert_eq!(mounts[2]["location"], sim.home.to_str().expect("utf8"));
    assert_eq!(mounts[2]["writable"], false);
}

// ------------------------------------------------------- creating instances

#[test]
fn create_writes_lima_yaml_and_list_reports_it() {
    let sim = Sim::new();
    let out = sim
        .run(&[
            "create",
            "--tty=false",
            "--memory",
            "2.5",
            "--disk",
            "20",
            "--set",
            ".env.FOO = \"bar\"",
            "template:debian-13",
        ])
        .ok();
    assert!(
        out.stderr
            .contains("Run `limactl start debian-13` to start the instance."),
        "{}",
        out.stderr
    );
    let dir = sim.lima_home.join("debian-13");
    let yaml: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("lima.yaml")).expect("lima.yaml"))
            .expect("JSON text");
    assert_eq!(yaml["mounts"], serde_json::json!([{"location": "~"}]));
    assert_eq!(yaml["memory"], "2.5GiB");
    assert_eq!(yaml["disk"], "20GiB");
    assert_eq!(yaml["cpus"], 4);
    assert_eq!(yaml["vmType"], "qemu");
    assert_eq!(yaml["ssh"]["forwardAgent"], false);
    assert_eq!(yaml["env"]["FOO"], "bar");
    assert!(yaml["user"]["home"]
        .as_str()
        .expect("home")
        .ends_with(".linux"));

    let info = sim.list_json("debian-13");
    assert_eq!(info["name"], "debian-13");
    assert_eq!(info["hostname"], "lima-debian-13");
    assert_eq!(info["status"], "Stopped");
    assert_eq!(info["dir"], dir.to_str().expect("utf8"));
    assert_eq!(info["memory"], 5_i64 << 29);
    assert_eq!(info["disk"], 20_i64 << 30);
    assert_eq!(info["protected"], false);
    assert_eq!(info["limaVersion"], "v2.0.3");
    assert_eq!(
        info["config"]["mounts"][0]["location"],
        sim.home.to_str().expect("utf8")
    );
    assert_eq!(
        info["config"]["mounts"][0]["mountPoint"],
        sim.home.to_str().expect("utf8")
    );
    assert_eq!(info["config"]["mountType"], "reverse-sshfs");

    sim.run(&["create", "--tty=false", "template:debian-13"])
        .fails_with(1, "instance \\\"debian-13\\\" already exists");
    sim.run(&["create", "--tty=false", "template:nope"])
        .fails_with(1, "template \\\"nope.yaml\\\" not found");
    sim.run(&["create", "--tty=false", "--name", "bad name", "template:debian-13"])
        .fails_with(1, "instance name \\\"bad name\\\" is not a valid identifier: identifier \\\"bad name\\\" must match");
    let legacy = sim
        .run(&["create", "--tty=false", "template://ubuntu-24.04"])
        .ok();
    assert!(
        legacy
            .stderr
            .contains("should be written \\\"template:ubuntu-24.04\\\" since Lima v2.0"),
        "{}",
        legacy.stderr
    );
    let file = sim.base().join("My-VM.yaml");
    fs::write(&file, fs::read(dir.join("lima.yaml")).expect("read")).expect("write");
    sim.run(&["create", "--tty=false", file.to_str().expect("utf8")])
        .ok();
    let mut stdin_create = sim.cmd(&["create", "--tty=false", "--name", "fromstdin", "-"]);
    let mut child = stdin_create
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&fs::read(&file).expect("read"))
        .expect("write stdin");
    Out::from(child.wait_with_output().expect("wait")).ok();
    let names = sim.run(&["list", "-q"]).ok().stdout;
    assert_eq!(names, "debian-13\nfromstdin\nmy-vm\nubuntu-24.04\n");
    let table = sim.run(&["list"]).ok().stdout;
    assert!(table.starts_with("NAME    "), "{table}");
    assert!(
        table.contains("debian-13       Stopped    127.0.0.1:0    4       2.5GiB    20GiB     "),
        "{table}"
    );
}

#[test]
fn invalid_configs_leave_nothing_behind() {
    let sim = Sim::new();
    let cases: &[(&[&str], &str)] = &[
        (&["--set", ".mounts = [{\"location\": \"/srv/x\", \"mountPoint\": \"/etc\"}]"], "field `mounts[0].mountPoint` must not be a system path such as /etc or /usr"),
        (&["--set", ".mounts = [{\"location\": \"relative\"}]"], "field `mounts[0].location` must be an absolute path, got \\\"relative\\\""),
        (&["--set", ".mounts = [{\"location\": \"/srv/x\", \"mountPoint\": \"~/x\"}]"], "must not start with \\\"~\\\""),
        (&["--vm-type", "vz"], "vmType \\\"vz\\\" is not a registered driver"),
        (&["--mount-type", "9p"], "mount type \\\"9p\\\" is explicitly unsupported"),
        (&["--set", ".memory = \"lots\""], "field `memory` has an invalid value: invalid size: 'lots'"),
        (&["--set", ".cpus = \"two\""], "cannot unmarshal string into int"),
        (&["--set", ".cpus ="], "invalid yq expression"),
        (&["--cpus", "-1"], "error while processing flag \\\"cpus\\\": invalid value for number of cpus, must be >= 0"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["create", "--tty=false", "--name", "bad"];
        args.extend_from_slice(extra);
        args.push("template:debian-13");
        sim.run(&args).fails_with(1, needle);
        assert!(
            !sim.lima_home.join("bad").exists(),
            "{extra:?} left an instance directory"
        );
    }
    // A missing mount location is only a warning, as in Lima.
    let out = sim
        .run(&[
            "create",
            "--tty=false",
            "--name",
            "warn",
            "--set",
            ".mounts = [{\"location\": \"/nonexistent/dir\"}]",
            "template:debian-13",
        ])
        .ok();
    assert!(
        out.stderr.contains(
            "level=warning msg=\"field `mounts[0].location` refers to a non-existent directory"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn socket_path_length_is_checked() {
    // $LIMA_HOME/NAME/ssh.sock.1234567890123456 must stay under UNIX_PATH_MAX (108).
    let sim = Sim::with_lima_home("l");
    let room = 108
        - sim.lima_home.to_str().expect("utf8").len()
        - "/".len()
        - "/ssh.sock.1234567890123456".len();
    let ok_name = "n".repeat(room - 1);
    let long_name = "n".repeat(room);
    sim.create(&ok_name, &[]);
    let out = sim
        .run(&[
            "create",
            "--tty=false",
            "--name",
            &long_name,
            "template:debian-13",
        ])
        .fails_with(1, "too long");
    let expected = format!(
        "instance name \"{long_name}\" too long: \"{}/{long_name}/ssh.sock.1234567890123456\" must be less than UNIX_PATH_MAX=108 characters, but is 108",
        sim.lima_home.display()
    );
    assert_eq!(out.fatal_msg(), expected);
    sim.run(&["clone", &ok_name, &long_name])
        .fails_with(1, "too long");
    assert!(!sim.lima_home.join(&long_name).exists());
}

// ------------------------------------------------------------- lifecycle

#[test]
fn lifecycle_states_follow_lima() {
    let sim = Sim::new();
    sim.create("vm", &[]);
    let out = sim.run(&["start", "vm"]).ok();
    assert!(
        out.stderr
            .contains("READY. Run `limactl shell vm` to open the shell."),
        "{}",
        out.stderr
    );
    let info = sim.list_json("vm");
    assert_eq!(info["status"], "Running");
    assert!(info["sshLocalPort"].as_i64().unwrap_or(0) > 0);
    let pid =
        fs::read_to_string(sim.lima_home.join("vm/ha.pid")).expect("ha.pid exists while Running");
    assert!(pid.trim().parse::<u32>().is_ok());
    let again = sim.run(&["start", "vm"]).ok();
    assert!(
        again
            .stderr
            .contains("The instance \\\"vm\\\" is already running."),
        "{}",
        again.stderr
    );

    sim.run(&["delete", "vm"]).fails_with(1, "failed to delete instance \\\"vm\\\": expected status \\\"Stopped\\\", got \\\"Running\\\"");
    sim.run(&["clone", "vm", "copy"])
        .fails_with(1, "cannot clone a running instance");
    sim.run(&["edit", "vm", "--cpus", "2"])
        .fails_with(1, "cannot edit a running instance");
    sim.run(&["stop", "vm"]).ok();
    assert_eq!(sim.list_json("vm")["status"], "Stopped");
    assert!(!sim.lima_home.join("vm/ha.pid").exists());
    sim.run(&["stop", "vm"]).fails_with(
        1,
        "expected status \\\"Running\\\", got \\\"Stopped\\\" (maybe use `limactl stop -f`?)",
    );
    sim.run(&["stop", "-f", "vm"]).ok();
    sim.run(&["stop", "nope"])
        .fails_with(1, "open ")
        .fails_with(1, "/nope/lima.yaml: no such file or directory");

    sim.run(&["protect", "vm"]).ok();
    assert_eq!(sim.list_json("vm")["protected"], true);
    sim.run(&["delete", "-f", "vm"]).fails_with(
        1,
        "instance is protected to prohibit accidental removal (Hint: use `limactl unprotect`)",
    );
    sim.run(&["unprotect", "vm"]).ok();
    sim.run(&["start", "vm"]).ok();
    let out = sim.run(&["delete", "--force", "vm", "ghost"]).ok();
    assert!(
        out.stderr
            .contains("Ignoring non-existent instance \\\"ghost\\\""),
        "{}",
        out.stderr
    );
    assert!(!sim.lima_home.join("vm").exists());
    assert_eq!(sim.run(&["rm", "ghost"]).ok().code, Some(0));
    let empty = sim.run(&["list"]).ok();
    assert_eq!(empty.stdout, "");
    assert!(
        empty.stderr.contains("No instance found."),
        "{}",
        empty.stderr
    );

    // A directory without a readable lima.yaml is Broken, and delete leaves it alone.
    fs::create_dir_all(sim.lima_home.join("half")).expect("mkdir");
    assert_eq!(sim.list_json("half")["status"], "Broken");
    sim.run(&["delete", "-f", "half"])
        .fails_with(1, "it was NOT deleted");
    fs::write(sim.lima_home.join("half/lima.yaml"), "{not json").expect("write");
    assert_eq!(sim.list_json("half")["status"], "Broken");
}

#[test]
fn clone_rename_and_edit_follow_lima() {
    let sim = Sim::new();
    sim.running_with_project("tmpl");
    sim.sh(
        "tmpl",
        "echo from-template > /opt/marker && mkdir -p ~/.cache && echo home > ~/.cache/h",
    )
    .ok();
    sim.run(&["stop", "tmpl"]).ok();
    sim.run(&["protect", "tmpl"]).ok();
    sim.run(&["clone", "nope", "x"])
        .fails_with(1, "instance \\\"nope\\\" not found");
    sim.run(&["clone", "tmpl", "tmpl"]).fails_with(
        1,
        "new instance name \\\"tmpl\\\" must be different from \\\"tmpl\\\"",
    );
    sim.run(&["clone", "tmpl", "bad/name"])
        .fails_with(1, "is not a valid identifier");

    let start = Instant::now();
    sim.run(&[
        "clone",
        "--tty=false",
        "tmpl",
        "c1",
        "--cpus",
        "2",
        "--set",
        ".env.ROLE = \"clone\"",
        "--start",
    ])
    .ok();
    let info = sim.list_json("c1");
    assert_eq!(
        (
            info["status"].as_str(),
            info["cpus"].as_i64(),
            info["protected"].as_bool()
        ),
        (Some("Running"), Some(2), Some(false))
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    let out = sim.sh("c1", "cat /opt/marker ~/.cache/h; echo $ROLE").ok();
    assert_eq!(out.stdout, "from-template\nhome\nclone\n");
    sim.run(&["clone", "tmpl", "c1"])
        .fails_with(1, "instance \\\"c1\\\" already exists");

    // Invalid edit flags fail after the copy, leaving the clone with the old config (as Lima does).
    let cwd = sim.project.join("rejected");
    fs::create_dir_all(&cwd).expect("mkdir");
    let out: Out = sim
        .cmd(&["clone", "tmpl", "c2", "--set", ".memory = \"lots\""])
        .current_dir(&cwd)
        .output()
        .expect("run")
        .into();
    out.fails_with(1, "the YAML is invalid, saved the buffer as \\\"lima.REJECTED.yaml\\\": field `memory` has an invalid value");
    assert!(cwd.join("lima.REJECTED.yaml").exists());
    assert_eq!(sim.list_json("c2")["config"]["memory"], "4GiB");

    sim.run(&["edit", "c2", "--tty=false", "--memory", "3"])
        .ok();
    assert_eq!(sim.list_json("c2")["config"]["memory"], "3GiB");
    sim.run(&["edit", "c2", "--disk", "10"])
        .fails_with(1, "shrinking the disk (100GiB --> 10GiB) is not supported");
    let same = sim.run(&["edit", "c2", "--memory", "3"]).ok();
    assert!(
        same.stderr
            .contains("Aborting, no changes made to the instance"),
        "{}",
        same.stderr
    );
    sim.run(&["rename", "c2", "c3"]).ok();
    assert!(!sim.lima_home.join("c2").exists());
    assert_eq!(sim.list_json("c3")["config"]["memory"], "3GiB");
}

// ------------------------------------------------------------- the guest

#[test]
fn shell_runs_like_an_ssh_session() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    let out = sim
        .sh(
            "vm",
            "echo \"$HOME|$USER|$LOGNAME|$SHELL|$LANG|$(hostname)|$(id -u)\"; env",
        )
        .ok();
    let first = out.stdout.lines().next().unwrap_or_default().to_string();
    let fields: Vec<&str> = first.split('|').collect();
    assert!(
        fields[0].starts_with("/home/") && fields[0].ends_with(".linux"),
        "{first}"
    );
    assert_eq!(fields[1], fields[2]);
    assert_eq!(&fields[3..], ["/bin/bash", "C.UTF-8", "lima-vm", "0"]);
    assert!(
        !out.stdout.contains("HOST_ONLY_VARIABLE"),
        "host environment leaked:\n{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("LIMA_HOME"),
        "host environment leaked:\n{}",
        out.stdout
    );
    assert_namespace_mode(&sim);

    // The exit status is the command's; a signal death reads as 255, like ssh.
    assert_eq!(sim.sh("vm", "exit 7").code, Some(7));
    assert_eq!(sim.sh("vm", "kill -9 $$").code, Some(255));
    // The host's current directory, when mounted, is the guest's too.
    assert_eq!(
        sim.run(&["shell", "vm", "pwd"]).ok().stdout.trim(),
        sim.project.to_str().expect("utf8")
    );
    assert_eq!(
        sim.run(&["shell", "--workdir", "/opt", "vm", "pwd"])
            .ok()
            .stdout,
        "/opt\n"
    );
    sim.run(&["shell", "--workdir", "/nonexistent", "vm", "pwd"])
        .code
        .filter(|c| *c == 1)
        .expect("cd failure exits 1");
    // Arguments arrive intact; flags after the instance belong to the command.
    let tricky = "it's \"$HOME\" \\ é";
    assert_eq!(
        sim.run(&["shell", "vm", "printf", "%s|", tricky, "--workdir"])
            .ok()
            .stdout,
        format!("{tricky}|--workdir|")
    );
    assert_eq!(
        sim.run(&["shell", "vm", "--", "echo", "A=1"]).ok().stdout,
        "A=1\n"
    );
    assert_eq!(
        sim.run(&["shell", "vm", "X=a b", "sh", "-c", "echo $X"])
            .ok()
            .stdout,
        "a b\n"
    );
    sim.sh("vm", "printf '#!/bin/sh\\necho custom-shell \"$@\"\\n' > /usr/local/bin/myshell && chmod +x /usr/local/bin/myshell").ok();
    assert_eq!(
        sim.run(&["shell", "--shell", "/usr/local/bin/myshell", "vm", "hi"])
            .ok()
            .stdout,
        "custom-shell -l -c hi\n"
    );
    let mut preserved = Sim::new();
    preserved.lima_home = sim.lima_home.clone();
    preserved.set_env("FORWARD_ME", "yes");
    let out = preserved
        .run(&[
            "shell",
            "--preserve-env",
            "vm",
            "sh",
            "-c",
            "echo $FORWARD_ME",
        ])
        .ok();
    assert_eq!(out.stdout, "yes\n");
    assert_eq!(
        sim.run(&["shell", "vm", "sh", "-c", "echo \"[$FORWARD_ME]\""])
            .ok()
            .stdout,
        "[]\n"
    );

    sim.run(&["edit", "vm"])
        .fails_with(1, "cannot edit a running instance");
    sim.run(&["stop", "vm"]).ok();
    sim.run(&["edit", "vm", "--set", ".env.GREETING = \"hi there\""])
        .ok();
    sim.run(&["shell", "vm", "true"]).fails_with(
        1,
        "instance \\\"vm\\\" is stopped, run `limactl start vm` to start the instance",
    );
    sim.run(&["shell", "nope", "true"]).fails_with(
        1,
        "instance \\\"nope\\\" does not exist, run `limactl create nope` to create a new instance",
    );
    let out = sim
        .run(&["shell", "--start", "vm", "sh", "-c", "echo $GREETING"])
        .ok();
    assert_eq!(out.stdout, "hi there\n");
}

#[test]
fn mounts_are_the_only_window_to_the_host() {
    let sim = Sim::new();
    let ro = sim.base().join("work/readonly");
    let nested = sim.project.join("nested-ro");
    fs::create_dir_all(&ro).expect("mkdir");
    fs::create_dir_all(&nested).expect("mkdir");
    fs::write(ro.join("data"), "ro data").expect("write");
    let mounts = serde_json::json!([
        {"location": sim.project, "mountPoint": "/workspace", "writable": true},
        {"location": ro, "mountPoint": "/mnt/ro"},
        {"location": nested, "mountPoint": "/workspace/nested-ro"},
        {"location": sim.base().join("work/created-at-boot"), "mountPoint": "/mnt/new", "writable": true},
    ]);
    sim.create("vm", &["--set", &format!(".mounts = {mounts}")]);
    sim.run(&["start", "vm"]).ok();
    assert!(
        sim.base().join("work/created-at-boot").is_dir(),
        "mount locations are created at boot"
    );
    let out = sim
        .sh(
            "vm",
            "cat /workspace/README /mnt/ro/data; echo new > /workspace/from-guest",
        )
        .ok();
    assert_eq!(out.stdout, "project filero data");
    assert_eq!(
        fs::read_to_string(sim.project.join("from-guest")).expect("written through"),
        "new\n"
    );
    assert_namespace_mode(&sim);

    // Read-only means EROFS, even for root, and nested mounts stack.
    let out = sim.sh("vm", "touch /mnt/ro/x; touch /workspace/nested-ro/x; id -u");
    assert!(
        out.stderr.matches("Read-only file system").count() == 2,
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "0\n");
    assert!(!ro.join("x").exists());
    // Nothing else of the host is there: not the project's siblings, not the host home.
    let probe = format!(
        "for p in {} {} {} {}; do test -e \"$p\" && echo \"visible: $p\"; done; true",
        sim.base().join("work/sibling.txt").display(),
        sim.project.display(),
        sim.home.join("host-secret.txt").display(),
        sim.lima_home.display()
    );
    assert_eq!(sim.sh("vm", &probe).ok().stdout, "");
    // The guest cannot undo its mounts.
    let out = sim.sh(
        "vm",
        "mount -o remount,rw /mnt/ro 2>&1; umount /mnt/ro 2>&1; cat /mnt/ro/data",
    );
    assert!(out.stdout.ends_with("ro data"), "{}", out.stdout);
}

#[test]
fn the_guest_names_the_host_as_lima_does() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    let host_hosts = fs::read("/etc/hosts").unwrap_or_default();
    let out = sim
        .sh(
            "vm",
            "getent hosts host.lima.internal; grep -c host.lima.internal /etc/hosts",
        )
        .ok();
    assert_namespace_mode(&sim);
    assert_eq!(out.stdout, "192.168.5.2     host.lima.internal\n1\n");
    // Once per boot, however often it boots, and never in the host's own file.
    sim.run(&["stop", "vm"]).ok();
    sim.run(&["start", "vm"]).ok();
    let out = sim.sh("vm", "grep -c host.lima.internal /etc/hosts").ok();
    assert_eq!(out.stdout, "1\n");
    assert_eq!(fs::read("/etc/hosts").unwrap_or_default(), host_hosts);
}

// --- The guest's network: Lima's user-mode network (slirp4netns) ---

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

fn host_command(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} on the host: {e} (the tests need it installed)"));
    assert!(
        out.status.success(),
        "{program} {args:?} on the host failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_guest_has_limas_user_mode_network() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    let out = sim
        .sh(
            "vm",
            "ip -4 -o addr show dev eth0 | awk '{print $4}'; ip route show default; \
             ip -o link | awk -F': ' '{print $2}' | sort | tr '\\n' ' '; echo; \
             cat /etc/resolv.conf; getent hosts host.lima.internal; readlink /proc/self/ns/net",
        )
        .ok();
    assert_namespace_mode(&sim);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "192.168.5.15/24", "{}", out.stdout);
    assert!(
        lines[1].starts_with("default via 192.168.5.2 dev eth0"),
        "{}",
        out.stdout
    );
    // Nothing of the host's interfaces: the guest's own loopback and its NIC.
    assert_eq!(lines[2].trim(), "eth0 lo", "{}", out.stdout);
    assert_eq!(lines[3], "nameserver 192.168.5.3");
    assert_eq!(lines[4], "192.168.5.2     host.lima.internal");
    let host_ns = fs::read_link("/proc/self/ns/net").expect("host netns");
    assert_ne!(
        lines[5],
        host_ns.to_string_lossy(),
        "the guest shares the host's network"
    );
    let log = fs::read_to_string(sim.lima_home.join("vm/ha.stderr.log")).unwrap_or_default();
    assert!(log.contains("user-mode network (slirp4netns)"), "{log}");
}

/// The slirp4netns attached to the host agent `agent` (by its command line).
fn slirp_of(agent: &str) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.first().is_some_and(|a| a.ends_with(b"slirp4netns"))
                && args.contains(&agent.as_bytes())
                && !fs::read_to_string(format!("/proc/{pid}/stat"))
                    .unwrap_or_default()
                    .contains(") Z ")
        })
        .collect()
}

#[test]
fn slirp4netns_lives_and_ends_with_the_host_agent() {
    let sim = Sim::new();
    sim.create("vm", &["--mount-none"]);
    for force in [false, true] {
        sim.run(&["start", "vm"]).ok();
        let agent = fs::read_to_string(sim.lima_home.join("vm/ha.pid")).expect("ha.pid");
        let agent = agent.trim().to_string();
        assert_eq!(
            slirp_of(&agent).len(),
            1,
            "one slirp4netns for agent {agent}"
        );
        let mut stop = vec!["stop"];
        if force {
            stop.push("--force");
        }
        stop.push("vm");
        sim.run(&stop).ok();
        assert!(
            wait_until(Duration::from_secs(3), || slirp_of(&agent).is_empty()),
            "slirp4netns outlived the host agent (stop force={force})"
        );
    }
}

#[test]
fn the_guest_reaches_the_hosts_loopback_through_host_lima_internal() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    let server = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = server.local_addr().expect("addr").port();
    let serving = std::thread::spawn(move || {
        let (mut conn, peer) = server.accept().expect("accept");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&conn), &mut line).expect("read");
        conn.write_all(format!("host saw {} from {}\n", line.trim(), peer.ip()).as_bytes())
            .expect("write");
    });
    let out = sim.sh(
        "vm",
        &format!(
            "exec 3<>/dev/tcp/host.lima.internal/{port} && echo hello >&3 && head -n1 <&3; \
             (exec 4<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo guest-loopback-is-the-host || echo guest-loopback-is-its-own"
        ),
    )
    .ok();
    serving.join().expect("server thread");
    assert_namespace_mode(&sim);
    // slirp turns the gateway into the host's 127.0.0.1, as Lima's usernet does.
    assert_eq!(
        out.stdout,
        "host saw hello from 127.0.0.1\nguest-loopback-is-its-own\n"
    );
}

#[test]
fn nft_and_routes_in_the_guest_change_only_the_guests_network() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    // Read only, to compare: rules change in the guest's namespace alone.
    let host_rules = host_command("nft", &["list", "ruleset"]); // read only; guest changes its own
    let host_routes = host_command("ip", &["route"]);
    let server = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = server.local_addr().expect("addr").port();
    let out = sim
        .sh(
            "vm",
            &format!(
                "set -e; : in the guest namespace; nft add table inet t; nft add chain inet t out '{{ type filter hook output priority 0; policy drop; }}'; nft add rule inet t out oifname lo accept; nft list ruleset; \
                 timeout 1 bash -c 'exec 3<>/dev/tcp/host.lima.internal/{port}' 2>/dev/null && echo reached || echo dropped"
            ),
        )
        .ok();
    assert_namespace_mode(&sim);
    assert!(out.stdout.contains("table inet t {"), "{}", out.stdout);
    assert!(out.stdout.contains("policy drop"), "{}", out.stdout);
    // The guest's rule holds in the guest...
    assert!(out.stdout.ends_with("dropped\n"), "{}", out.stdout);
    // ...stays for its next command (one "VM"), and never reaches the host.
    let again = sim
        .sh(
            "vm",
            ": guest; nft list tables; ip route del default; ip route",
        )
        .ok();
    assert!(
        again.stdout.starts_with("table inet t\n"),
        "{}",
        again.stdout
    );
    assert!(!again.stdout.contains("default"), "{}", again.stdout);
    let host_rules_after = host_command("nft", &["list", "ruleset"]); // read only, not the guest's
    assert_eq!(host_rules_after, host_rules);
    assert_eq!(host_command("ip", &["route"]), host_routes);
    let conn = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(conn.is_ok(), "the host's loopback must be untouched");
    // A reboot is a fresh network, as a VM's.
    sim.run(&["stop", "vm"]).ok();
    sim.run(&["start", "vm"]).ok();
    let fresh = sim
        .sh("vm", ": guest; nft list ruleset; ip route show default")
        .ok();
    assert_eq!(fresh.stdout, "default via 192.168.5.2 dev eth0 \n");
}

#[test]
fn a_guest_port_is_forwarded_to_the_hosts_loopback() {
    let sim = Sim::new();
    let (guest_port, host_port) = (free_port(), free_port());
    let rules = serde_json::json!([{"guestPort": guest_port, "hostPort": host_port}]);
    sim.create(
        "vm",
        &["--mount-none", "--set", &format!(".portForwards = {rules}")],
    );
    sim.run(&["start", "vm"]).ok();
    // A one-shot server on the guest's 127.0.0.1, left running in the guest.
    let serve = format!(
        "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('127.0.0.1',{guest_port}))\ns.listen()\nc,a=s.accept()\n\
         c.sendall(('guest saw '+a[0]+'\\n').encode())\nc.close()\n"
    );
    let script = format!("nohup python3 -c {} >/dev/null 2>&1 &", shell_words(&serve));
    sim.sh("vm", &script).ok();
    assert_namespace_mode(&sim);
    let mut reply = String::new();
    let got = wait_until(Duration::from_secs(5), || {
        let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", host_port)) else {
            return false;
        };
        reply.clear();
        std::io::Read::read_to_string(&mut conn, &mut reply).is_ok() && !reply.is_empty()
    });
    assert!(got, "nothing answered on the host's 127.0.0.1:{host_port}");
    // The host agent connects on the guest's own loopback, as Lima's forwarder does.
    assert_eq!(reply, "guest saw 127.0.0.1\n");
    let log = fs::read_to_string(sim.lima_home.join("vm/ha.stderr.log")).unwrap_or_default();
    assert!(
        log.contains(&format!(
            "Forwarding TCP from 127.0.0.1:{guest_port} to 127.0.0.1:{host_port}"
        )),
        "{log}"
    );
    // The rule moved the port: the guest's port number is not the host's.
    assert!(std::net::TcpStream::connect(("127.0.0.1", guest_port)).is_err());
}

fn shell_words(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[test]
fn dns_to_a_resolver_that_is_not_there_fails_cleanly() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    let host_resolv = fs::read("/etc/resolv.conf").unwrap_or_default();
    let started = Instant::now();
    // Nothing listens on the guest's own 127.0.0.1:53.
    let out = sim.sh(
        "vm",
        "echo 'nameserver 127.0.0.1' > /etc/resolv.conf; getent hosts no-such-host.example; echo \"getent=$?\"",
    );
    assert_namespace_mode(&sim);
    assert_eq!(out.stdout, "getent=2\n", "{}", out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        fs::read("/etc/resolv.conf").unwrap_or_default(),
        host_resolv
    );
    // The next boot has Lima's forwarder again.
    sim.run(&["stop", "vm"]).ok();
    sim.run(&["start", "vm"]).ok();
    assert_eq!(
        sim.sh("vm", "cat /etc/resolv.conf").ok().stdout,
        "nameserver 192.168.5.3\n"
    );
}

#[test]
fn a_linked_resolv_conf_is_followed_inside_the_guest() {
    let sim = Sim::new();
    sim.create("vm", &["--mount-none"]);
    // As systemd-resolved links it; the link must not lead to the host's /run.
    let upper_etc = sim.lima_home.join("vm/simdisk/upper/etc");
    fs::create_dir_all(&upper_etc).expect("mkdir");
    std::os::unix::fs::symlink(
        "../run/systemd/resolve/stub-resolv.conf",
        upper_etc.join("resolv.conf"),
    )
    .expect("symlink");
    sim.run(&["start", "vm"]).ok();
    let out = sim
        .sh(
            "vm",
            "readlink /etc/resolv.conf; cat /etc/resolv.conf; cat /run/systemd/resolve/stub-resolv.conf",
        )
        .ok();
    assert_namespace_mode(&sim);
    assert_eq!(
        out.stdout,
        "../run/systemd/resolve/stub-resolv.conf\nnameserver 192.168.5.3\nnameserver 192.168.5.3\n"
    );
    assert!(
        !Path::new("/run/systemd/resolve/stub-resolv.conf").exists()
            || !fs::read_to_string("/run/systemd/resolve/stub-resolv.conf")
                .unwrap_or_default()
                .contains("192.168.5.3")
    );
}

#[test]
fn the_hosts_network_only_when_asked_for() {
    let mut sim = Sim::new();
    sim.create("vm", &["--mount-none"]);
    // Without slirp4netns the boot fails, naming the package; it never shares silently.
    let bare = sim
        .cmd(&["start", "vm"])
        .env("PATH", "/nonexistent")
        .output()
        .expect("run limactl");
    let bare: Out = bare.into();
    assert_eq!(bare.code, Some(1), "{}", bare.stderr);
    assert!(
        bare.stderr.contains("apt-get install slirp4netns"),
        "{}",
        bare.stderr
    );
    assert!(
        bare.stderr.contains("LIMA_SIM_NETWORK=host"),
        "{}",
        bare.stderr
    );
    assert_eq!(sim.list_json("vm")["status"], "Stopped");
    sim.set_env("LIMA_SIM_NETWORK", "bridged");
    let bad = sim.run(&["start", "vm"]);
    assert_eq!(bad.code, Some(1));
    assert!(
        bad.fatal_msg()
            .contains("LIMA_SIM_NETWORK: unknown network \"bridged\""),
        "{}",
        bad.stderr
    );
    let mut sim = sim;
    sim.env.clear();
    sim.set_env("LIMA_SIM_NETWORK", "host");
    sim.run(&["start", "vm"]).ok();
    let out = sim
        .sh("vm", "getent hosts host.lima.internal; readlink /proc/self/ns/net; test -e /etc/resolv.conf && echo resolv")
        .ok();
    assert_namespace_mode(&sim);
    let host_ns = fs::read_link("/proc/self/ns/net").expect("host netns");
    assert_eq!(
        out.stdout,
        format!(
            "127.0.0.1       host.lima.internal\n{}\nresolv\n",
            host_ns.display()
        )
    );
}

#[test]
fn a_real_claude_code_is_installed_when_one_is_given() {
    let sim = Sim::new();
    let real = sim.base().join("real-claude");
    fs::create_dir_all(&real).expect("mkdir");
    fs::write(
        real.join("package.json"),
        r#"{"name": "@anthropic-ai/claude-code-linux-x64", "version": "9.8.7"}"#,
    )
    .expect("write");
    fs::write(
        real.join("claude"),
        "#!/bin/sh\necho \"9.8.7 (Claude Code) real $*\"\n",
    )
    .expect("write");
    fs::set_permissions(
        real.join("claude"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let set = format!(
        ".mounts = [{}]",
        serde_json::json!({"location": sim.project, "writable": true})
    );
    sim.create("vm", &["--set", &set]);
    let out = sim
        .cmd(&["start", "vm"])
        .env("LIMA_SIM_CLAUDE_CODE", &real)
        .output()
        .expect("start");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sim
        .sh("vm", "curl -fsSL https://claude.ai/install.sh | bash; ~/.local/bin/claude --version; curl -fsSL https://claude.ai/install.sh | bash -s 1.0.0 2>&1; echo \"status $?\"")
        .ok();
    assert_namespace_mode(&sim);
    assert!(
        out.stdout.contains("9.8.7 (Claude Code) real --version\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Failed to download Claude Code 1.0.0"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.ends_with("status 1\n"), "{}", out.stdout);
    // The real files are read-only in the guest.
    let out = sim.sh("vm", "echo x > /.limasim/claude-code/claude; true");
    assert!(
        out.stderr.contains("Read-only file system"),
        "{}",
        out.stderr
    );

    // A directory that is not a Claude Code is refused at boot.
    sim.run(&["stop", "vm"]).ok();
    let out = sim
        .cmd(&["start", "vm"])
        .env("LIMA_SIM_CLAUDE_CODE", sim.base())
        .output()
        .expect("start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("LIMA_SIM_CLAUDE_CODE="), "{err}");
}

#[test]
fn the_guest_disk_persists_and_tmp_is_per_boot() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    sim.sh("vm", "echo t > /tmp/t; echo o > /opt/o; echo e > /etc/sim-test; echo u > /usr/local/bin/u; echo h > ~/h; rm -f /etc/environment").ok();
    sim.run(&["stop", "vm"]).ok();
    sim.run(&["start", "vm"]).ok();
    let out = sim.sh("vm", "ls /tmp; cat /opt/o /etc/sim-test /usr/local/bin/u ~/h; test -e /etc/environment && echo still-there; true").ok();
    assert_eq!(out.stdout, "o\ne\nu\nh\n");
    // The host's /etc is untouched: the guest wrote to its own upper layer.
    assert!(!Path::new("/etc/sim-test").exists());
    assert!(sim.lima_home.join("vm/simdisk/upper/etc/sim-test").exists());
}

#[test]
fn guest_tools_are_faked() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    let out = sim
        .sh(
            "vm",
            "curl -fsSL --proto '=https' --tlsv1.2 https://claude.ai/install.sh | bash",
        )
        .ok();
    assert!(
        out.stdout
            .starts_with("✔ Claude Code successfully installed!\n\n  Version: 2.0.0\n"),
        "{}",
        out.stdout
    );
    let out = sim.run(&["shell", "vm", "claude", "-p", "do it", "--sim-exit", "3"]);
    assert_eq!(out.code, Some(3));
    let report: Value = serde_json::from_str(out.stdout.trim()).expect("one JSON line");
    assert_eq!(report["fake"], "claude");
    assert_eq!(
        report["argv"],
        serde_json::json!(["-p", "do it", "--sim-exit", "3"])
    );
    assert_eq!(report["cwd"], sim.project.to_str().expect("utf8"));
    assert_eq!(report["uid"], 0);
    assert_eq!(report["env"]["LANG"], "C.UTF-8");
    assert!(report["env"].get("HOST_ONLY_VARIABLE").is_none());
    assert_eq!(
        sim.run(&["shell", "vm", "claude", "--version"]).ok().stdout,
        "2.0.0 (Claude Code)\n"
    );

    let mut child = sim
        .cmd(&["shell", "vm", "claude", "--sim-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"the prompt")
        .expect("write");
    let out = Out::from(child.wait_with_output().expect("wait")).ok();
    let report: Value = serde_json::from_str(out.stdout.trim()).expect("JSON");
    assert_eq!(report["stdin"], "the prompt");

    let out = sim.sh("vm", "sudo -E DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 git ripgrep && sudo apt-get update -q >/dev/null && cat /var/lib/limasim/installed && wc -l < /var/lib/limasim/apt.log").ok();
    assert_eq!(out.stdout, "git\nripgrep\n2\n");
    assert_eq!(sim.sh("vm", "apt-get dist-upgrade").code, Some(100));
    let out = sim.sh("vm", "curl -fsSL https://packages.example.com/key.gpg");
    assert_eq!(out.code, Some(6));
    assert!(
        out.stderr
            .contains("curl: (6) Could not resolve host: packages.example.com"),
        "{}",
        out.stderr
    );
    assert_eq!(sim.sh("vm", "sudo whoami").ok().stdout, "root\n");
}

#[test]
fn agent_forwarding_only_when_configured() {
    let sim = Sim::new();
    let sock = sim.base().join("agent.sock");
    let agent = Command::new("ssh-agent")
        .args(["-D", "-a"])
        .arg(&sock)
        .stdout(Stdio::null())
        .spawn()
        .expect("ssh-agent (openssh-client) is needed for this test");
    assert!(
        wait_until(Duration::from_secs(5), || sock.exists()),
        "ssh-agent did not start"
    );
    let mut with_agent = Sim::new();
    with_agent.lima_home = sim.lima_home.clone();
    with_agent.set_env("SSH_AUTH_SOCK", sock.to_str().expect("utf8"));
    sim.create("plain", &["--mount-none"]);
    sim.create(
        "fwd",
        &["--mount-none", "--set", ".ssh.forwardAgent = true"],
    );
    for name in ["plain", "fwd"] {
        with_agent.run(&["start", name]).ok();
    }
    // ssh-add exits 1 for an empty agent, 2 when it cannot reach one.
    let fwd = with_agent.sh("fwd", "echo $SSH_AUTH_SOCK; ssh-add -l");
    assert_eq!(fwd.code, Some(1), "{}{}", fwd.stdout, fwd.stderr);
    assert!(fwd.stdout.starts_with("/tmp/ssh-"), "{}", fwd.stdout);
    let plain = with_agent.sh("plain", "echo \"[$SSH_AUTH_SOCK]\"; ssh-add -l");
    assert_eq!(plain.code, Some(2), "{}{}", plain.stdout, plain.stderr);
    assert!(plain.stdout.starts_with("[]"));
    let mut agent = agent;
    let _ = agent.kill();
    let _ = agent.wait();
}

// ------------------------------------------------------ test-only hooks

#[test]
fn failure_injection() {
    let mut sim = Sim::new();
    sim.create("tmpl", &["--mount-none"]);
    sim.set_env("LIMA_SIM_FAIL", "clone,shell@2,start@1");
    let out = sim
        .run(&["clone", "tmpl", "c"])
        .fails_with(1, "level=fatal");
    assert_eq!(
        out.fatal_msg(),
        "simulated failure of \"clone\" (LIMA_SIM_FAIL)"
    );
    assert!(!sim.lima_home.join("c").exists());
    sim.run(&["start", "tmpl"])
        .fails_with(1, "simulated failure of \\\"start\\\"");
    assert_eq!(sim.list_json("tmpl")["status"], "Stopped");
    sim.run(&["start", "tmpl"]).ok();
    sim.sh("tmpl", "echo 1 >> /opt/calls").ok();
    let out = sim.sh("tmpl", "echo 2 >> /opt/calls");
    assert_eq!(out.code, Some(255));
    assert!(
        out.stderr
            .contains("simulated failure of \\\"shell\\\" (LIMA_SIM_FAIL)"),
        "{}",
        out.stderr
    );
    sim.sh("tmpl", "echo 3 >> /opt/calls").ok();
    assert_eq!(sim.sh("tmpl", "cat /opt/calls").ok().stdout, "1\n3\n");
    let mut bad = Sim::new();
    bad.set_env("LIMA_SIM_FAIL", "strat");
    bad.run(&["list"])
        .fails_with(1, "LIMA_SIM_FAIL: unknown command");
}

#[test]
fn delays_and_the_call_log() {
    let mut sim = Sim::new();
    sim.create("vm", &["--mount-none"]);
    sim.run(&["start", "vm"]).ok();
    sim.set_env("LIMA_SIM_DELAY", "shell=0.3");
    let start = Instant::now();
    sim.run(&["shell", "vm", "true"]).ok();
    assert!(start.elapsed() >= Duration::from_millis(300));

    let calls = sim.calls();
    let starts: Vec<&Value> = calls.iter().filter(|c| c["event"] == "start").collect();
    let ends: Vec<&Value> = calls.iter().filter(|c| c["event"] == "end").collect();
    assert_eq!(starts.len(), 3);
    assert_eq!(ends.len(), 3);
    assert_eq!(
        starts[2]["argv"],
        serde_json::json!(["shell", "vm", "true"])
    );
    assert_eq!(starts[2]["pid"], ends[2]["pid"]);
    assert_eq!(ends[2]["exit"], 0);
    assert!(ends[2]["time"].as_f64() >= starts[2]["time"].as_f64());
    assert!(ends[2]["isolation"].is_string());
    assert!(ends[0].get("isolation").is_none());

    // Concurrent writers never interleave lines.
    let children: Vec<Child> = (0..8)
        .map(|_| {
            sim.cmd(&["list", "-q"])
                .stdout(Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for mut c in children {
        c.wait().expect("wait");
    }
    assert_eq!(sim.calls().len(), 22);
}

#[test]
fn signals_end_the_session_like_ssh() {
    let mut sim = Sim::new();
    sim.create("vm", &["--mount-none", "--set", &sim.tagged()]);
    sim.run(&["start", "vm"]).ok();
    let marker = sim.lima_home.join("vm/simdisk/opt/started");
    let mut child = sim
        .cmd(&[
            "shell",
            "vm",
            "bash",
            "-c",
            "touch /opt/started; exec -a claude /.limasim/limactl --sim-sleep 30",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    assert!(
        wait_until(Duration::from_secs(5), || marker.exists()),
        "guest command did not start"
    );
    let guest = guest_pids(&sim, "--sim-sleep");
    assert_eq!(guest.len(), 1, "{guest:?}");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_child(&mut child, Duration::from_secs(5)).expect("sim exits");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(libc::SIGTERM),
        "the sim dies of the same signal"
    );
    assert!(
        wait_until(Duration::from_secs(5), || pid_gone(guest[0])),
        "the guest command outlived the session"
    );
    let last = sim.calls().pop().expect("records");
    assert_eq!(
        last["event"], "start",
        "no end record for a killed invocation"
    );

    // Stopping the instance ends running sessions with 255.
    let mut child = sim
        .cmd(&["shell", "vm", "sleep", "30"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    assert!(wait_until(Duration::from_secs(5), || !guest_pids(
        &sim, "sleep 30"
    )
    .is_empty()));
    let sleeper = guest_pids(&sim, "sleep 30");
    sim.run(&["stop", "vm"]).ok();
    let status =
        wait_child(&mut child, Duration::from_secs(5)).expect("shell ends when the VM stops");
    assert_eq!(status.code(), Some(255));
    assert!(sleeper.iter().all(|p| pid_gone(*p)));

    // A delay is interruptible: SIGTERM ends the command at once, no effect.
    sim.set_env("LIMA_SIM_DELAY", "start=5");
    let mut child = sim
        .cmd(&["start", "vm"])
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_child(&mut child, Duration::from_secs(2)).expect("interrupted");
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert_eq!(sim.list_json("vm")["status"], "Stopped");
}

/// Live guest processes of `sim` running `needle`: they carry the
/// `SIM_TEST_ID` that `Sim::tagged` put in lima.yaml's `env`.
fn guest_pids(sim: &Sim, needle: &str) -> Vec<u32> {
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

#[test]
fn fallback_mode_runs_without_namespaces() {
    let mut sim = Sim::new();
    sim.set_env("LIMA_SIM_ISOLATION", "fallback");
    sim.create("vm", &["--mount-none", "--set", &sim.tagged()]);
    sim.run(&["start", "vm"]).ok();
    let out = sim
        .sh(
            "vm",
            "echo $HOME; curl -fsSL https://claude.ai/install.sh | bash >/dev/null",
        )
        .ok();
    assert_eq!(
        out.stdout.trim(),
        sim.lima_home
            .join("vm/simdisk/home")
            .join(format!("{}.linux", whoami()))
            .to_str()
            .expect("utf8")
    );
    assert_eq!(sim.isolation(), "fallback");
    let report = sim.run(&["shell", "vm", "claude", "hello"]).ok();
    let report: Value = serde_json::from_str(report.stdout.trim()).expect("JSON");
    assert_eq!(report["argv"], serde_json::json!(["hello"]));
    // Stop still ends the sessions it can find.
    let mut child = sim
        .cmd(&["shell", "vm", "sleep", "30"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    assert!(wait_until(Duration::from_secs(5), || !guest_pids(
        &sim, "sleep 30"
    )
    .is_empty()));
    sim.run(&["stop", "vm"]).ok();
    assert_eq!(
        wait_child(&mut child, Duration::from_secs(5)).and_then(|s| s.code()),
        Some(255)
    );
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let valid = !name.is_empty()
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

#[test]
fn copy_between_host_and_guest() {
    let sim = Sim::new();
    sim.create("vm", &["--mount-none"]);
    sim.run(&["start", "vm"]).ok();
    let src = sim.base().join("to-guest.txt");
    fs::write(&src, "hello guest").expect("write");
    sim.run(&["copy", src.to_str().expect("utf8"), "vm:/opt/"])
        .ok();
    sim.run(&["cp", src.to_str().expect("utf8"), "vm:in-home.txt"])
        .ok();
    assert_eq!(
        sim.sh("vm", "cat /opt/to-guest.txt ~/in-home.txt")
            .ok()
            .stdout,
        "hello guesthello guest"
    );
    let back = sim.base().join("back.txt");
    sim.run(&["copy", "vm:/opt/to-guest.txt", back.to_str().expect("utf8")])
        .ok();
    assert_eq!(
        fs::read_to_string(&back).expect("copied back"),
        "hello guest"
    );
    sim.run(&["copy", "ghost:/x", "."])
        .fails_with(1, "instance \\\"ghost\\\" does not exist");
    sim.run(&["stop", "vm"]).ok();
    sim.run(&["copy", "vm:/x", "."])
        .fails_with(1, "instance \\\"vm\\\" is stopped");
}

#[test]
fn unprivileged_users_get_namespace_mode_too() {
    // As root, repeat the basic flow as "nobody"; otherwise the whole suite
    // already runs unprivileged.
    // SAFETY: geteuid has no side effects.
    if unsafe { libc::geteuid() } != 0 {
        return unprivileged_flow(Sim::new(), None);
    }
    let sim = Sim::new();
    for dir in [
        sim.base().to_path_buf(),
        sim.lima_home.clone(),
        sim.home.clone(),
        sim.project.clone(),
        sim.base().join("work"),
    ] {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    unprivileged_flow(sim, Some(65534));
}

fn unprivileged_flow(sim: Sim, uid: Option<u32>) {
    let run = |args: &[&str]| -> Out {
        let mut c = sim.cmd(args);
        if let Some(uid) = uid {
            use std::os::unix::process::CommandExt;
            c.uid(uid).gid(uid);
        }
        c.output().expect("run").into()
    };
    let set = format!(
        ".mounts = [{}]",
        serde_json::json!({"location": sim.project, "writable": true})
    );
    run(&[
        "create",
        "--tty=false",
        "--name",
        "vm",
        "--set",
        &set,
        "template:debian-13",
    ])
    .ok();
    run(&["start", "vm"]).ok();
    let out = run(&[
        "shell",
        "vm",
        "bash",
        "-c",
        "id -u; echo x > /etc/guest-only; touch made-here; test -e /work || echo no-work",
    ])
    .ok();
    assert_eq!(out.stdout, "0\nno-work\n");
    assert_namespace_mode(&sim);
    // A reverse socket forward works from inside a user namespace too.
    let host_sock = sim.base().join("echo.sock");
    echo_server(&host_sock);
    fs::set_permissions(&host_sock, fs::Permissions::from_mode(0o666)).expect("chmod");
    let rule = serde_json::json!([{"guestSocket": "/run/user/{{.UID}}/echo.sock", "hostSocket": host_sock, "reverse": true}]);
    run(&["stop", "vm"]).ok();
    run(&[
        "edit",
        "--tty=false",
        "--set",
        &format!(".portForwards = {rule}"),
        "vm",
    ])
    .ok();
    run(&["start", "vm"]).ok();
    let client = "python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); s.connect(\"/run/user/0/echo.sock\"); s.sendall(b\"hi\"); s.shutdown(socket.SHUT_WR); print(s.recv(99).decode())'";
    assert_eq!(
        run(&["shell", "vm", "bash", "-c", client]).ok().stdout,
        "echo:hi\n"
    );
    assert!(sim.project.join("made-here").exists());
    run(&["stop", "vm"]).ok();
    run(&["clone", "vm", "vm2", "--start"]).ok();
    assert_eq!(
        run(&["shell", "vm2", "cat", "/etc/guest-only"]).ok().stdout,
        "x\n"
    );
    run(&["delete", "-f", "vm", "vm2"]).ok();
}

// ------------------------------------------------- port forwards (issue 3)

/// A unix-socket echo server on the host: each connection gets back
/// `echo:` and what it sent, once the client has shut down its side.
fn echo_server(path: &Path) {
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

/// Sends `hello` from the guest to the unix socket `sock` (shell text, so
/// `"$HOME/x"` works) and prints the reply.
fn guest_echo(sim: &Sim, name: &str, sock: &str) -> Out {
    let client = r#"python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"hello")
s.shutdown(socket.SHUT_WR)
print(s.recv(100).decode())
'"#;
    sim.sh(name, &format!("{client} {sock}"))
}

fn host_uid() -> u32 {
    // SAFETY: getuid has no side effects.
    unsafe { libc::getuid() }
}

#[test]
fn reverse_socket_forwards_reach_the_host() {
    let sim = Sim::new();
    let host_sock = sim.base().join("host/echo.sock");
    fs::create_dir_all(host_sock.parent().expect("parent")).expect("mkdir");
    echo_server(&host_sock);
    let rules = serde_json::json!([
        {"guestSocket": "{{.Home}}/fwd/echo.sock", "hostSocket": host_sock, "reverse": true},
        {"guestSocket": "/run/user/{{.UID}}/echo.sock", "hostSocket": host_sock, "reverse": true},
        {"guestPort": 8080, "hostPort": 18080},
        {"guestPortRange": [3000, 3009], "hostPortRange": [13000, 13009], "proto": "tcp"},
    ]);
    sim.create(
        "vm",
        &["--mount-none", "--set", &format!(".portForwards = {rules}")],
    );
    sim.run(&["start", "vm"]).ok();
    let home = format!("/home/{}.linux", whoami());
    // sshd does not create the guest directory: the first forward fails at
    // boot (a warning in ha.stderr.log), the boot goes on.
    let log = fs::read_to_string(sim.lima_home.join("vm/ha.stderr.log")).expect("ha log");
    assert!(
        log.contains(&format!(
            "level=warning msg=\"Failed to set up forward from \\\"{}\\\" (host) to \\\"{home}/fwd/echo.sock\\\" (guest)\"",
            host_sock.display()
        )),
        "{log}"
    );
    // /run/user/UID exists as logind makes it; that forward works at once.
    let run_sock = format!("/run/user/{}/echo.sock", host_uid());
    assert_eq!(
        guest_echo(&sim, "vm", &run_sock).ok().stdout,
        "echo:hello\n"
    );
    assert_namespace_mode(&sim);
    let out = guest_echo(&sim, "vm", &format!("{home}/fwd/echo.sock"));
    assert_ne!(out.code, Some(0), "the failed forward has no socket");
    // With the directory made, the next boot binds it (mode 0600, as sshd).
    sim.sh("vm", "mkdir ~/fwd").ok();
    sim.run(&["stop", "vm"]).ok();
    sim.run(&["start", "vm"]).ok();
    let out = guest_echo(&sim, "vm", "\"$HOME/fwd/echo.sock\"").ok();
    assert_eq!(out.stdout, "echo:hello\n");
    assert_eq!(
        sim.sh("vm", "stat -c %a ~/fwd/echo.sock").ok().stdout,
        "600\n"
    );
    // The filled rules are in the instance's config, TCP ones included.
    let cfg = &sim.list_json("vm")["config"]["portForwards"];
    assert_eq!(cfg[0]["guestSocket"], format!("{home}/fwd/echo.sock"));
    assert_eq!(cfg[0]["reverse"], true);
    assert_eq!(cfg[2]["guestPortRange"], serde_json::json!([8080, 8080]));
    assert_eq!(cfg[2]["hostPortRange"], serde_json::json!([18080, 18080]));
    assert_eq!(cfg[3]["proto"], "tcp");
    assert_eq!(cfg[3]["guestIP"], "127.0.0.1");
    // A graceful stop removes the guest socket, a forced one leaves it.
    let guest_sock = sim
        .lima_home
        .join(format!("vm/simdisk{home}/fwd/echo.sock"));
    assert!(guest_sock.exists());
    sim.run(&["stop", "vm"]).ok();
    assert!(!guest_sock.exists(), "graceful stop runs `rm -f` on it");
    let log = fs::read_to_string(sim.lima_home.join("vm/ha.stderr.log")).expect("ha log");
    assert!(log.contains("Stopping forwarding"), "{log}");
    sim.run(&["start", "vm"]).ok();
    sim.run(&["stop", "--force", "vm"]).ok();
    assert!(guest_sock.exists(), "a forced stop leaves it behind");
    // ...and the next boot replaces the stale socket.
    sim.run(&["start", "vm"]).ok();
    assert_eq!(
        guest_echo(&sim, "vm", "\"$HOME/fwd/echo.sock\"")
            .ok()
            .stdout,
        "echo:hello\n"
    );
    sim.run(&["delete", "--force", "vm"]).ok();
}

#[test]
fn forwards_find_a_host_socket_that_appears_later() {
    let sim = Sim::new();
    let host_sock = sim.base().join("late/echo.sock");
    let rules = serde_json::json!([
        {"guestSocket": "/tmp/echo.sock", "hostSocket": host_sock, "reverse": true},
    ]);
    sim.create(
        "vm",
        &["--mount-none", "--set", &format!(".portForwards = {rules}")],
    );
    sim.run(&["start", "vm"]).ok();
    // Lima creates the host socket's directory (0750).
    let mode = fs::metadata(host_sock.parent().expect("parent"))
        .expect("host dir made")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750);
    let out = guest_echo(&sim, "vm", "/tmp/echo.sock");
    assert_ne!(out.code, Some(0), "no host server yet");
    echo_server(&host_sock);
    assert_eq!(
        guest_echo(&sim, "vm", "/tmp/echo.sock").ok().stdout,
        "echo:hello\n"
    );
}

#[test]
fn socket_forwards_in_fallback_mode() {
    let mut sim = Sim::new();
    sim.set_env("LIMA_SIM_ISOLATION", "fallback");
    let host_sock = sim.base().join("echo.sock");
    echo_server(&host_sock);
    let rules = serde_json::json!([
        {"guestSocket": "{{.Home}}/echo.sock", "hostSocket": host_sock, "reverse": true},
    ]);
    sim.create(
        "vm",
        &["--mount-none", "--set", &format!(".portForwards = {rules}")],
    );
    sim.run(&["start", "vm"]).ok();
    // The guest path is bound at its host-side location: $HOME finds it.
    assert_eq!(
        guest_echo(&sim, "vm", "\"$HOME/echo.sock\"").ok().stdout,
        "echo:hello\n"
    );
    assert_eq!(sim.isolation(), "fallback");
    let home = sim
        .lima_home
        .join(format!("vm/simdisk/home/{}.linux", whoami()));
    assert!(home.join("echo.sock").exists());
}

#[test]
fn port_forwards_are_validated_like_lima() {
    let sim = Sim::new();
    let long = format!("/{}", "s".repeat(108));
    let cases: Vec<(String, &str)> = vec![
        (
            r#"[{"guestSocket": "rel.sock", "hostSocket": "/h.sock", "reverse": true}]"#.into(),
            "field `portForwards[0].guestSocket` must be an absolute path, but is \\\"rel.sock\\\"",
        ),
        (
            r#"[{"guestSocket": "/g.sock", "reverse": true}]"#.into(),
            "field `portForwards[0].reverse` must be false",
        ),
        (
            r#"[{"hostSocket": "/h.sock", "reverse": true}]"#.into(),
            "field `portForwards[0].hostSocket` can only be mapped from a single port or socket. not a range",
        ),
        (
            format!(r#"[{{"guestSocket": "/g.sock", "hostSocket": "{long}", "reverse": true}}]"#),
            "field `portForwards[0].hostSocket` must be less than UNIX_PATH_MAX=108 characters, but is 109",
        ),
        (
            r#"[{"guestPort": 22}]"#.into(),
            "field `portForwards[0].guestPort` must not be 22",
        ),
        (
            r#"[{"guestPort": 80}, {"guestPortRange": [3000, 3001], "hostPortRange": [4000, 4009]}]"#.into(),
            "field `portForwards[1].hostPortRange` must specify the same number of ports as field `portForwards[1].guestPortRange`",
        ),
        (
            r#"[{"guestPort": 80, "proto": "sctp"}]"#.into(),
            "field `portForwards[0].proto` must be \\\"tcp\\\", \\\"udp\\\", or \\\"any\\\"",
        ),
        (
            r#"[{"guestPort": "http"}]"#.into(),
            "field \\\"portForwards[0].guestPort\\\": cannot unmarshal string into int",
        ),
    ];
    for (rules, needle) in &cases {
        sim.run(&[
            "create",
            "--tty=false",
            "--name",
            "bad",
            "--set",
            &format!(".portForwards = {rules}"),
            "template:debian-13",
        ])
        .fails_with(1, needle);
        assert!(!sim.lima_home.join("bad").exists(), "{rules}");
    }
    // `--port-forward HOST:GUEST` and relative host sockets (under sock/).
    sim.create(
        "ok",
        &[
            "--mount-none",
            "--port-forward",
            "18080:8080",
            "--set",
            r#".portForwards += [{"guestSocket": "/tmp/a.sock", "hostSocket": "a.sock", "reverse": true}]"#,
        ],
    );
    let cfg = sim.list_json("ok")["config"]["portForwards"].clone();
    let rules = cfg.as_array().expect("rules");
    let tcp = rules
        .iter()
        .find(|r| r["guestPort"] == 8080)
        .expect("tcp rule");
    assert_eq!(tcp["hostPort"], 18080);
    let sock = rules
        .iter()
        .find(|r| r["guestSocket"] == "/tmp/a.sock")
        .expect("socket rule");
    assert_eq!(
        sock["hostSocket"],
        sim.lima_home.join("ok/sock/a.sock").to_str().expect("utf8")
    );
    // A socket forward from the guest to the host is not emulated.
    sim.create(
        "fwd",
        &[
            "--mount-none",
            "--set",
            r#".portForwards = [{"guestSocket": "/run/docker.sock", "hostSocket": "/tmp/d.sock"}]"#,
        ],
    );
    sim.run(&["start", "fwd"]).fails_with(
        1,
        "uses socket `portForwards` without `reverse: true`, which the simulator cannot emulate",
    );
}

/// A host gpg-agent with a throwaway home and a passphrase-less key; killed
/// when dropped.
struct HostGpg {
    home: PathBuf,
}

impl HostGpg {
    fn gpg(&self, args: &[&str]) -> Output {
        Command::new("gpg")
            .env("GNUPGHOME", &self.home)
            .args(["--batch", "--yes"])
            .args(args)
            .output()
            .expect("gpg (GnuPG) is needed for this test")
    }

    fn dir(&self, what: &str) -> String {
        let out = Command::new("gpgconf")
            .env("GNUPGHOME", &self.home)
            .args(["--list-dirs", what])
            .output()
            .expect("gpgconf");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for HostGpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", &self.home)
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

/// A pseudo-terminal for the simulator's stdin and stdout, read on a thread.
struct Pty {
    master: std::os::fd::OwnedFd,
    slave: std::os::fd::OwnedFd,
    output: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Pty {
    fn open() -> Pty {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        let (mut m, mut s) = (-1, -1);
        // SAFETY: openpty writes two fds; the other arguments may be null.
        let rc = unsafe {
            libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        assert_eq!(rc, 0);
        for fd in [m, s] {
            // SAFETY: a flag on our own descriptors.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        // SAFETY: fresh descriptors owned by nobody else.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let reader = master.try_clone().unwrap();
        let out = std::sync::Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            loop {
                // SAFETY: reading into a valid buffer.
                let n =
                    unsafe { libc::read(reader.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n <= 0 {
                    break;
                }
                out.lock().unwrap().extend_from_slice(&buf[..n as usize]);
            }
        });
        Pty {
            master,
            slave,
            output,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    fn type_keys(&self, bytes: &[u8]) {
        use std::os::fd::AsRawFd;
        // SAFETY: writing a valid buffer to our descriptor.
        let n = unsafe { libc::write(self.master.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        assert_eq!(n, bytes.len() as isize);
    }

    /// Canonical mode with signal keys: what a shell leaves a terminal in.
    fn cooked(&self) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: termios is plain data filled in by tcgetattr.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: a valid descriptor and out-pointer.
        assert_eq!(
            unsafe { libc::tcgetattr(self.slave.as_raw_fd(), &mut t) },
            0
        );
        t.c_lflag & (libc::ICANON | libc::ISIG) == (libc::ICANON | libc::ISIG)
    }
}

#[test]
fn gpg_signs_in_the_guest_through_the_forwarded_extra_socket() {
    let sim = Sim::new();
    let gpg = HostGpg {
        home: sim.base().join("gnupg"),
    };
    fs::create_dir(&gpg.home).expect("mkdir");
    fs::set_permissions(&gpg.home, fs::Permissions::from_mode(0o700)).expect("chmod");
    let key = gpg.gpg(&[
        "--passphrase",
        "",
        "--quick-gen-key",
        "Sim Test <sim@test.invalid>",
        "ed25519",
        "sign",
        "never",
    ]);
    assert!(key.status.success(), "{key:?}");
    let extra = gpg.dir("agent-extra-socket");
    let public = sim.base().join("pub.asc");
    let export = gpg.gpg(&["--armor", "--export", "sim@test.invalid"]);
    fs::write(&public, &export.stdout).expect("write key");
    let rules = serde_json::json!([
        {"guestSocket": "/run/user/{{.UID}}/gnupg/S.gpg-agent", "hostSocket": extra, "reverse": true},
    ]);
    // A guest uid of its own: the guest's gpg (uid 0) must still find the
    // user's /run/user/UID/gnupg, as the real guest user's gpg does.
    sim.create(
        "vm",
        &[
            "--mount-none",
            "--set",
            &format!(".portForwards = {rules} | .user.uid = 4242"),
        ],
    );
    sim.run(&["start", "vm"]).ok();
    // GnuPG's user units make /run/user/UID/gnupg at login once it is
    // installed; before that the forward has no directory to bind in.
    sim.sh("vm", "sudo apt-get install -y -qq gnupg").ok();
    sim.run(&["stop", "vm"]).ok();
    sim.run(&["start", "vm"]).ok();
    sim.run(&["copy", public.to_str().expect("utf8"), "vm:/tmp/pub.asc"])
        .ok();
    let out = sim
        .sh(
            "vm",
            "install -d -m 700 ~/.gnupg && echo no-autostart > ~/.gnupg/gpg.conf \
             && gpg --batch --quiet --import /tmp/pub.asc \
             && echo 'signed in the guest' | gpg --batch --local-user sim@test.invalid --armor --sign",
        )
        .ok();
    assert!(
        out.stdout.contains("-----BEGIN PGP MESSAGE-----"),
        "{}",
        out.stderr
    );
    // The host checks the guest's signature.
    let sig = sim.base().join("msg.asc");
    fs::write(&sig, &out.stdout).expect("write signature");
    let verify = gpg.gpg(&["--decrypt", sig.to_str().expect("utf8")]);
    assert!(verify.status.success(), "{verify:?}");
    assert_eq!(
        String::from_utf8_lossy(&verify.stdout),
        "signed in the guest\n"
    );
    assert!(String::from_utf8_lossy(&verify.stderr)
        .contains("Good signature from \"Sim Test <sim@test.invalid>\""));
    // Without the forward the guest has no agent: nothing is signed.
    sim.run(&["stop", "vm"]).ok();
    sim.run(&["edit", "--tty=false", "--set", ".portForwards = []", "vm"])
        .ok();
    sim.run(&["start", "vm"]).ok();
    let out = sim.sh(
        "vm",
        "echo x | gpg --batch --local-user sim@test.invalid --sign >/dev/null",
    );
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("no gpg-agent running"),
        "{}",
        out.stderr
    );
}

// ------------------------------------------- Claude Code in the guest

#[test]
fn claude_code_installs_with_a_version() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    let out = sim
        .sh(
            "vm",
            "curl -fsSL https://claude.ai/install.sh | bash -s 1.2.3",
        )
        .ok();
    assert!(out.stdout.contains("Version: 1.2.3"), "{}", out.stdout);
    assert_eq!(
        sim.run(&["shell", "vm", "claude", "--version"]).ok().stdout,
        "1.2.3 (Claude Code)\n"
    );
    assert_eq!(
        sim.sh("vm", "readlink ~/.local/bin/claude").ok().stdout,
        format!(
            "/home/{}.linux/.local/share/claude/versions/1.2.3\n",
            whoami()
        )
    );
    sim.sh(
        "vm",
        "curl -fsSL https://claude.ai/install.sh | bash -s latest",
    )
    .ok();
    assert_eq!(
        sim.run(&["shell", "vm", "claude", "-v"]).ok().stdout,
        "2.0.0 (Claude Code)\n"
    );
    let out = sim.sh("vm", "curl -fsSL https://claude.ai/install.sh | bash -s v3");
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("Usage: bash [stable|latest|VERSION]"),
        "{}",
        out.stderr
    );

    // npm appears with Node.js; it installs the package's `claude` bin.
    let out = sim.sh("vm", "npm --version");
    assert_eq!(out.code, Some(127), "no nodejs yet: {}", out.stderr);
    let out = sim
        .sh(
            "vm",
            "sudo apt-get install -y -qq nodejs && npm --version && sudo npm install -g @anthropic-ai/claude-code@2.1.3 \
             && /usr/local/bin/claude --version && readlink /usr/local/bin/claude \
             && cat /usr/local/lib/node_modules/@anthropic-ai/claude-code/package.json",
        )
        .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "10.9.3");
    assert!(lines.contains(&"added 1 package in 1s"), "{}", out.stdout);
    assert!(lines.contains(&"2.1.3 (Claude Code)"), "{}", out.stdout);
    assert!(lines.contains(&"../lib/node_modules/@anthropic-ai/claude-code/cli.js"));
    let manifest: Value = serde_json::from_str(lines.last().expect("package.json")).expect("JSON");
    assert_eq!(manifest["version"], "2.1.3");
    // Every other package needs the registry, which the guest cannot reach.
    let out = sim.sh("vm", "npm install -g left-pad");
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("npm error code ENOTFOUND"),
        "{}",
        out.stderr
    );
    let out = sim.sh("vm", "npm install -g @anthropic-ai/claude-code@^2");
    assert!(
        out.stderr.contains("npm error code ETARGET"),
        "{}",
        out.stderr
    );
}

#[test]
fn claude_mcp_commands_store_servers_like_claude_code() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    sim.sh("vm", "curl -fsSL https://claude.ai/install.sh | bash")
        .ok();
    let claude = |script: &str| sim.sh("vm", &format!("PATH=$HOME/.local/bin:$PATH; {script}"));
    let out = claude(
        "claude mcp add --scope user -e TOKEN=s3cret chrome-devtools -- npx -y chrome-devtools-mcp@latest --headless",
    );
    // commander's variadic -e takes the name too, as the real CLI does.
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .contains("Invalid environment variable format: chrome-devtools"),
        "{}",
        out.stderr
    );
    let out = claude(
        "claude mcp add --scope user chrome-devtools -e TOKEN=s3cret -- npx -y chrome-devtools-mcp@latest --headless",
    )
    .ok();
    assert_eq!(
        out.stdout,
        format!(
            "Added stdio MCP server chrome-devtools with command: npx -y chrome-devtools-mcp@latest --headless to user config\nFile modified: /home/{}.linux/.claude.json\n",
            whoami()
        )
    );
    let cfg: Value = serde_json::from_str(&claude("cat ~/.claude.json").ok().stdout).expect("JSON");
    assert_eq!(
        cfg["mcpServers"]["chrome-devtools"],
        serde_json::json!({"type": "stdio", "command": "npx",
            "args": ["-y", "chrome-devtools-mcp@latest", "--headless"], "env": {"TOKEN": "s3cret"}})
    );
    let out = claude("claude mcp add -s user chrome-devtools -- npx other");
    assert_eq!(out.code, Some(1));
    assert!(out
        .stderr
        .contains("MCP server chrome-devtools already exists in user config"));
    let out = claude("claude mcp add fetch python -m server");
    assert!(
        out.stderr.contains("error: unknown option '-m'"),
        "{}",
        out.stderr
    );
    // Local scope keys the project directory; project scope writes .mcp.json.
    claude("claude mcp add docs --transport http https://docs.example/mcp").ok();
    claude("claude mcp add -s project tests -- ./run-tests.sh --mcp").ok();
    let project = sim.project.to_str().expect("utf8");
    let cfg: Value = serde_json::from_str(&claude("cat ~/.claude.json").ok().stdout).expect("JSON");
    assert_eq!(
        cfg["projects"][project]["mcpServers"]["docs"],
        serde_json::json!({"type": "http", "url": "https://docs.example/mcp"})
    );
    let mcp_json: Value = serde_json::from_str(
        &fs::read_to_string(sim.project.join(".mcp.json")).expect(".mcp.json"),
    )
    .expect("JSON");
    assert_eq!(mcp_json["mcpServers"]["tests"]["command"], "./run-tests.sh");
    let list = claude("claude mcp list").ok().stdout;
    assert!(
        list.contains("chrome-devtools: npx -y chrome-devtools-mcp@latest --headless - "),
        "{list}"
    );
    assert!(
        list.contains("docs: https://docs.example/mcp (HTTP) - "),
        "{list}"
    );
    assert!(list.contains("tests: ./run-tests.sh --mcp - "), "{list}");
    let get = claude("claude mcp get chrome-devtools").ok().stdout;
    assert!(get.contains("Scope: User config"), "{get}");
    assert!(get.contains("TOKEN=s3cret"), "{get}");
    assert_eq!(claude("claude mcp get nope").code, Some(1));
    claude("claude mcp remove chrome-devtools").ok();
    assert_eq!(claude("claude mcp get chrome-devtools").code, Some(1));
    // Everything else is still the JSON report.
    let report: Value =
        serde_json::from_str(claude("claude -p hi").ok().stdout.trim()).expect("report");
    assert_eq!(report["argv"], serde_json::json!(["-p", "hi"]));
}

/// Opens a pseudo-terminal: (master, slave).
fn open_pty() -> (fs::File, fs::File) {
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors; the others may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: both descriptors were just opened and are owned here.
    unsafe { (fs::File::from_raw_fd(master), fs::File::from_raw_fd(slave)) }
}

#[test]
fn claude_auth_login_needs_a_terminal() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    sim.sh("vm", "curl -fsSL https://claude.ai/install.sh | bash")
        .ok();
    let claude = |args: &[&str]| {
        let mut all = vec![
            "shell",
            "vm",
            "/bin/bash",
            "-lc",
            "exec claude \"$@\"",
            "claude",
        ];
        all.extend_from_slice(args);
        sim.run(&all)
    };
    let status = claude(&["auth", "status"]);
    assert_eq!(status.code, Some(1));
    let doc: Value = serde_json::from_str(&status.stdout).expect("JSON");
    assert_eq!(doc["loggedIn"], false);
    // No terminal: it fails at once instead of waiting for a code.
    let out = claude(&["auth", "login"]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("Raw mode is not supported"),
        "{}",
        out.stderr
    );
    // On a terminal it prints the URL and takes the pasted code.
    let (mut master, slave) = open_pty();
    let child = sim
        .cmd(&["shell", "vm", "/bin/bash", "-lc", "exec claude auth login"])
        .stdin(Stdio::from(slave))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    master
        .write_all(b"the-code#state\n")
        .expect("type the code");
    let out = Out::from(child.wait_with_output().expect("wait")).ok();
    assert!(
        out.stdout.contains("https://claude.ai/oauth/authorize?"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.ends_with("Login successful.\n"),
        "{}",
        out.stdout
    );
    drop(master);
    let creds = sim
        .sh(
            "vm",
            "stat -c %a ~/.claude/.credentials.json && cat ~/.claude/.credentials.json",
        )
        .ok()
        .stdout;
    let (mode, json) = creds.split_once('\n').expect("two parts");
    assert_eq!(mode, "600");
    let creds: Value = serde_json::from_str(json).expect("JSON");
    assert!(creds["claudeAiOauth"]["accessToken"]
        .as_str()
        .is_some_and(|t| t.starts_with("sk-ant-oat01-")));
    let status = claude(&["auth", "status"]).ok();
    let doc: Value = serde_json::from_str(&status.stdout).expect("JSON");
    assert_eq!(
        (doc["loggedIn"].clone(), doc["authMethod"].clone()),
        (Value::Bool(true), Value::from("claude.ai"))
    );
    claude(&["auth", "logout"]).ok();
    assert_eq!(claude(&["auth", "status"]).code, Some(1));
}

// ------------------------------------------------ tools' installers

#[test]
fn apt_repositories_and_installers_of_the_tools() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    // docker-ce comes only from Docker's repository.
    let out = sim.sh("vm", "sudo apt-get install -y -qq docker-ce");
    assert_eq!(out.code, Some(100));
    assert!(
        out.stderr.contains("E: Unable to locate package docker-ce"),
        "{}",
        out.stderr
    );
    let docker_list = "echo \"deb [signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/debian $(. /etc/os-release && echo \"$VERSION_CODENAME\") stable\" | sudo tee /etc/apt/sources.list.d/docker.list >/dev/null";
    // A repository whose keyring is missing is not signed: update fails.
    let out = sim.sh("vm", &format!("{docker_list} && sudo apt-get update -qq"));
    assert_eq!(out.code, Some(100));
    assert!(
        out.stderr
            .contains("E: The repository 'https://download.docker.com/linux/debian"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("is not signed."), "{}", out.stderr);
    let out = sim
        .sh(
            "vm",
            "sudo install -m 0755 -d /etc/apt/keyrings \
             && sudo curl -fsSL https://download.docker.com/linux/debian/gpg -o /etc/apt/keyrings/docker.asc \
             && head -1 /etc/apt/keyrings/docker.asc \
             && sudo apt-get update -qq \
             && sudo -E DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-ce docker-ce-cli containerd.io \
             && cat /var/lib/limasim/installed",
        )
        .ok();
    assert_eq!(
        out.stdout,
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\ndocker-ce\ndocker-ce-cli\ncontainerd.io\n"
    );
    // The other keys the tools fetch.
    let out = sim
        .sh(
            "vm",
            "curl -fsSL https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key | head -1 \
             && curl -fsSL https://cli.github.com/packages/githubcli-archive-keyring.gpg | od -An -tx1 -N1",
        )
        .ok();
    assert_eq!(out.stdout, "-----BEGIN PGP PUBLIC KEY BLOCK-----\n 99\n");
    // rustup-init's flags, then cargo and rustc through ~/.cargo/env.
    let out = sim
        .sh(
            "vm",
            "curl --proto '=https' --tlsv1.2 -fsSL https://sh.rustup.rs | sh -s -- -y --profile minimal --no-modify-path >/dev/null \
             && . \"$HOME/.cargo/env\" && command -v cargo && cargo --version && rustc --version \
             && ! grep -q cargo ~/.profile",
        )
        .ok();
    let home = format!("/home/{}.linux", whoami());
    assert_eq!(
        out.stdout,
        format!("{home}/.cargo/bin/cargo\ncargo 1.90.0 (simulated)\nrustc 1.90.0 (simulated)\n")
    );
    assert!(
        out.stderr.contains("info: profile set to 'minimal'"),
        "{}",
        out.stderr
    );
    let out = sim.sh(
        "vm",
        "curl -fsSL https://sh.rustup.rs | sh -s -- --profile minimal",
    );
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .contains("Unable to run interactively. Run with -y"),
        "{}",
        out.stderr
    );
    // sudo -u keeps the target user's home; -E keeps the caller's environment.
    let out = sim
        .sh(
            "vm",
            "FOO=kept sudo -E sh -c 'echo $FOO $HOME'; sudo -u root sh -c 'echo $HOME'",
        )
        .ok();
    assert_eq!(out.stdout, format!("kept {home}\n/root\n"));
}

#[test]
fn a_terminal_gets_a_guest_terminal_in_raw_mode_like_ssh_t() {
    let sim = Sim::new();
    sim.create("vm", &["--mount-none"]);
    sim.run(&["start", "vm"]).ok();
    let script = r#"if [ -t 0 ] && [ -t 1 ]; then echo "guest-tty TERM=$TERM"; else echo no-tty; fi
trap 'echo got-INT; exit 3' INT
echo ready
while :; do sleep 0.1; done"#;

    let pty = Pty::open();
    let mut child = sim
        .cmd(&["shell", "vm", "sh", "-c", script])
        .env("TERM", "xterm-test")
        .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    assert!(
        wait_until(Duration::from_secs(10), || pty.text().contains("ready")),
        "{}",
        pty.text()
    );
    assert!(
        pty.text().contains("guest-tty TERM=xterm-test"),
        "{}",
        pty.text()
    );
    assert!(
        !pty.cooked(),
        "the local terminal is raw while the session runs"
    );
    // Ctrl-C is a keystroke: the guest's terminal makes it SIGINT for the guest command;
    // the simulator itself is not interrupted and reports the command's status.
    pty.type_keys(b"\x03");
    let status = wait_child(&mut child, Duration::from_secs(10)).expect("session ends");
    assert_eq!(status.code(), Some(3), "{}", pty.text());
    assert!(pty.text().contains("got-INT"), "{}", pty.text());
    assert!(pty.cooked(), "the terminal's mode is restored");

    // Without a terminal: no guest terminal, no TERM.
    let out = sim
        .cmd(&[
            "shell",
            "vm",
            "sh",
            "-c",
            "[ -t 0 ] && echo tty || echo no-tty; echo \"TERM=${TERM-unset}\"",
        ])
        .env("TERM", "xterm-test")
        .output()
        .expect("run");
    let out = Out::from(out).ok();
    assert_eq!(out.stdout, "no-tty\nTERM=unset\n");
}
