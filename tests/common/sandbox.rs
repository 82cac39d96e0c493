//! Where claude-vm runs under test and under benchmark: a fresh HOME, git projects, the Lima
//! simulator on PATH as `limactl`, and nothing of the caller's environment but what a
//! user's shell would have. One copy for the end-to-end tests (tests/e2e/support.rs), the
//! benchmark (tests/bench/world.rs) and the simulator's tests: each crate includes this
//! file once, with `#[path = "../common/sandbox.rs"] mod sandbox;`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A temporary directory (removed when dropped) with `home/` for HOME, `bin/` on PATH
/// holding the simulator as `limactl`, and the simulator's call log `limactl.log`.
pub struct Sandbox {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub home: PathBuf,
    pub bin: PathBuf,
    pub log: PathBuf,
}

fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> String {
    let path = path.display().to_string();
    let what = what.to_owned();
    move |e| format!("cannot {what} {path}: {e}")
}

impl Sandbox {
    /// A new sandbox under the system's temporary directory, named `prefix...`.
    pub fn new(prefix: &str, simulator: &Path) -> Result<Sandbox, String> {
        let tmp = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
        let root = std::fs::canonicalize(tmp.path()).map_err(io("resolve", tmp.path()))?;
        let home = root.join("home");
        let bin = root.join("bin");
        for d in [&home, &bin] {
            std::fs::create_dir_all(d).map_err(io("create", d))?;
        }
        let link = bin.join("limactl");
        std::os::unix::fs::symlink(simulator, &link).map_err(io("link", &link))?;
        Ok(Sandbox {
            _tmp: tmp,
            log: root.join("limactl.log"),
            root,
            home,
            bin,
        })
    }

    /// `claude_vm ARGS` in `cwd`, without a terminal (stdin empty, stdout and stderr piped),
    /// every limactl call logged with its pid, ppid and times.
    pub fn command(&self, claude_vm: &Path, args: &[&str], cwd: &Path) -> Command {
        let mut cmd = Command::new(claude_vm);
        cmd.args(args)
            .current_dir(cwd)
            .env_clear()
            .env("HOME", &self.home)
            .env(
                "PATH",
                format!("{}:/usr/local/bin:/usr/bin:/bin", self.bin.display()),
            )
            .env("LANG", "C.UTF-8")
            .env("LIMA_SIM_LOG", &self.log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
}

/// Runs git in `dir`, unaffected by the caller's git configuration; its stdout.
pub fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Makes `dir` (and its parents) a git project on `main` with one commit: a README.md
/// holding `readme`.
pub fn git_project(dir: &Path, readme: &str) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    git(dir, &["init", "-q", "-b", "main"])?;
    let file = dir.join("README.md");
    std::fs::write(&file, readme).map_err(io("write", &file))?;
    git(dir, &["add", "."])?;
    git(dir, &["commit", "-q", "-m", "init"])?;
    Ok(())
}

/// Builds the simulator (`cargo build --example limactl`) with the profile of
/// `profile_dir` (`target/debug`, `target/release`, ...), into the same target directory,
/// and returns its path.
pub fn build_simulator(profile_dir: &Path) -> Result<PathBuf, String> {
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("{} is not in a target directory", profile_dir.display()))?;
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut cmd = Command::new(cargo);
    // Not the variables cargo set for this test or benchmark: build scripts watch some of
    // them (ring's: CARGO_PKG_NAME, CARGO_MANIFEST_DIR), and a change rebuilds half the tree.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "OUT_DIR",
            ]
            .contains(&key.as_ref())
        {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd.args(["build", "--quiet", "--example", "limactl", "--target-dir"])
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo to build the simulator: {e}"))?;
    if !status.success() {
        return Err("building the Lima simulator (`cargo build --example limactl`) failed".into());
    }
    let sim = profile_dir.join("examples/limactl");
    if sim.exists() {
        Ok(sim)
    } else {
        Err(format!(
            "the simulator was built but {} is missing",
            sim.display()
        ))
    }
}
