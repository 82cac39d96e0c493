//! Tests against a real Lima installation. They boot real VMs (minutes, gigabytes), so they
//! are ignored by default and run with `cargo test --test real_lima -- --ignored` where
//! `limactl` is installed (`.ci/run` does that when it finds one). They use your real
//! `$LIMA_HOME` and clean up after themselves.

use std::path::Path;
use std::process::{Command, Output};

fn claude_vm(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_claude-vm"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run claude-vm")
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

    let clean = claude_vm(&["clean", "--yes"], &project);
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
}
