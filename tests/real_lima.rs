//! Tests against a real Lima installation. They boot real VMs (minutes, gigabytes), so they
//! are ignored by default and run with `cargo test --test real_lima -- --ignored` where
//! `limactl` is installed (`.ci/run` does that when it finds one). They use your real
//! `$LIMA_HOME` and clean up after themselves.

use std::path::Path;
use std::process::{Command, Output};

fn claude_vm(args: &[&str], dir: &Path) -> Output {
    claude_vm_with(args, dir, None)
}

/// With `calls`: limactl is reached through a wrapper that logs each call's verb there.
fn claude_vm_with(args: &[&str], dir: &Path, calls: Option<&Calls>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_claude-vm"));
    cmd.args(args).current_dir(dir);
    if let Some(c) = calls {
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", c.bin.display()));
    }
    cmd.output().expect("run claude-vm")
}

/// A `limactl` first on PATH that logs its first argument and runs the real one.
struct Calls {
    bin: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl Calls {
    fn new(dir: &Path) -> Calls {
        use std::os::unix::fs::PermissionsExt;
        let real = String::from_utf8(
            Command::new("sh")
                .args(["-c", "command -v limactl"])
                .output()
                .expect("sh")
                .stdout,
        )
        .expect("a UTF-8 path");
        let (bin, log) = (dir.join("bin"), dir.join("calls.log"));
        std::fs::create_dir(&bin).unwrap();
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$1\" >> {}\nexec {} \"$@\"\n",
            shell_quote(&log.display().to_string()),
            shell_quote(real.trim()),
        );
        std::fs::write(bin.join("limactl"), script).unwrap();
        std::fs::set_permissions(bin.join("limactl"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        Calls { bin, log }
    }

    /// The verbs logged so far, and a fresh log for the next command.
    fn take(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let _ = std::fs::remove_file(&self.log);
        text.lines().map(str::to_owned).collect()
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn list_json(dir: &Path) -> serde_json::Value {
    let out = claude_vm(&["list", "--json"], dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("list --json")
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(args)
        .current_dir(dir)
        .status()
        .expect("git")
        .success();
    assert!(ok, "git {args:?}");
}

#[test]
#[ignore = "needs a real Lima (limactl on PATH); run with --ignored"]
fn real_lima_setup_session_and_cleanup() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("real lima 'test'");
    std::fs::create_dir(&project).unwrap();
    git(&project, &["init", "-q"]);

    let setup = claude_vm(&["setup"], &project);
    assert!(
        setup.status.success(),
        "setup failed:\n{}",
        String::from_utf8_lossy(&setup.stderr)
    );

    let shell = claude_vm(
        &[
            "shell",
            "--",
            "sh",
            "-c",
            "touch from-vm; command -v claude; exit 7",
        ],
        &project,
    );
    assert_eq!(
        shell.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&shell.stderr)
    );
    assert!(String::from_utf8_lossy(&shell.stdout).contains("claude"));
    assert!(
        project.join("from-vm").exists(),
        "the project is mounted writable"
    );

    let list = Command::new("limactl")
        .args(["list", "--format", "json"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        !listed.contains(".run-"),
        "a session clone was left behind:\n{listed}"
    );

    // Two layers: the project's template was cloned from a shared base.
    let bases = list_json(&project)["bases"].clone();
    let base = bases
        .as_array()
        .and_then(|b| {
            b.iter().find(|b| {
                b["used_by"].as_array().is_some_and(|u| {
                    u.iter().any(|p| {
                        p.as_str().map(Path::new)
                            == Some(&*std::fs::canonicalize(&project).unwrap())
                    })
                })
            })
        })
        .unwrap_or_else(|| panic!("no base lists the project: {bases}"))["name"]
        .as_str()
        .expect("a base name")
        .to_owned();

    // A second project with the same tools and nothing of its own to run: the base is
    // cloned, nothing is created or booted.
    let other = tmp.path().join("second");
    std::fs::create_dir(&other).unwrap();
    git(&other, &["init", "-q"]);
    let calls = Calls::new(tmp.path());
    let second = claude_vm_with(&["setup"], &other, Some(&calls));
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    // `--version` because the wrapper is another limactl binary than the cached one.
    assert_eq!(
        calls.take(),
        ["--version", "list", "clone"],
        "the second project's setup"
    );

    for dir in [&project, &other] {
        let clean = claude_vm(&["clean", "--yes"], dir);
        assert!(
            clean.status.success(),
            "{}",
            String::from_utf8_lossy(&clean.stderr)
        );
    }
    // No template of these uses the base now: gc removes it unless another project does.
    let gc = claude_vm(&["gc"], &project);
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    let left = list_json(&project)["bases"].clone();
    let still = left
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b["name"] == base.as_str());
    assert!(
        still.is_none_or(|b| b["used_by"].as_array().is_some_and(|u| !u.is_empty())),
        "an unused base survived gc: {left}"
    );
}
