//! `claude-vm doctor` against the simulator: findings with fixes, and the exit status.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::*;

/// Lima needs QEMU on Linux; a stand-in on PATH makes that check pass wherever this runs.
fn with_qemu(w: &World) {
    let qemu = w
        .bin
        .join(format!("qemu-system-{}", std::env::consts::ARCH));
    std::fs::write(&qemu, "#!/bin/sh\nexit 0\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn limactl(w: &World, args: &[&str]) {
    let out = std::process::Command::new(w.bin.join("limactl"))
        .args(args)
        .env("HOME", &w.home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// doctor without the end-of-run checks (it is run while leftovers exist on purpose).
fn doctor_raw(w: &World) -> (i32, String) {
    let out = w.command(&["doctor"], &w.project).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn finding<'a>(out: &'a str, start: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no finding starting with {start:?}:\n{out}"))
}

/// The fix printed under the finding that starts with `start`.
fn fix_of<'a>(out: &'a str, start: &str) -> &'a str {
    let mut lines = out.lines().skip_while(|l| !l.starts_with(start));
    lines.next();
    lines
        .next()
        .and_then(|l| l.trim_start().strip_prefix("fix: "))
        .unwrap_or_else(|| panic!("no fix under {start:?}:\n{out}"))
}

#[test]
fn a_healthy_setup_passes_with_two_limactl_calls() {
    let w = World::new();
    with_qemu(&w);
    w.setup();
    let t = w.templates().remove(0);
    let r = w.run(&["doctor"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(r.verbs(), ["--version", "list"]);
    let out = &r.stdout;
    finding(
        out,
        &format!("✓ limactl 2.0.3 ({})", w.bin.join("limactl").display()),
    );
    finding(out, "✓ VM type: qemu (");
    finding(out, "✓ socket paths: $LIMA_HOME (");
    finding(
        out,
        &format!("✓ template {t} ({}): stopped, ", w.project.display()),
    );
    finding(out, "✓ sessions: none running, no orphans");
    let base = w.bases().remove(0);
    finding(
        out,
        &format!(
            "✓ shared base {base} (no extra tools): used by {}",
            w.project.display()
        ),
    );
    finding(out, "✓ disk: claude-vm's VMs use ");
    assert!(
        out.contains("for 1 template, 1 shared base and 0 sessions"),
        "{out}"
    );
}

#[test]
fn lima_problems_fail_with_a_fix() {
    let mut w = World::new();
    with_qemu(&w);
    w.set_env("LIMA_SIM_VERSION", "1.2.0");
    let r = w.run(&["doctor"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(finding(&r.stdout, "✗ Lima 1.2.0").contains("too old"));
    assert!(fix_of(&r.stdout, "✗ Lima 1.2.0").contains("brew upgrade lima"));
    assert_eq!(
        r.verbs(),
        ["--version"],
        "no list from a Lima that is too old"
    );

    let w = World::new();
    with_qemu(&w);
    std::fs::remove_file(w.bin.join("limactl")).unwrap();
    let r = w.run(&["doctor"]);
    assert_eq!(r.code, 1);
    finding(&r.stdout, "✗ limactl is not on PATH");
    assert!(fix_of(&r.stdout, "✗ limactl is not on PATH").contains("brew install lima"));
}

#[test]
fn a_lima_home_without_room_for_socket_paths_fails() {
    let mut w = World::new();
    with_qemu(&w);
    let long = w.root.join("x".repeat(70));
    w.set_env("LIMA_HOME", long.to_str().unwrap());
    let r = w.run(&["doctor"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    finding(&r.stdout, "✗ socket paths:");
    assert!(fix_of(&r.stdout, "✗ socket paths:").contains("set LIMA_HOME"));
}

#[test]
fn orphans_and_leftovers_are_found_and_their_fixes_work() {
    let w = World::new();
    with_qemu(&w);
    w.setup();
    let t = w.templates().remove(0);
    // A session clone nobody uses (its claude-vm was killed before it booted it), and a
    // hand-over directory whose VM is gone.
    let orphan = format!("{t}.run-abc123");
    limactl(&w, &["clone", "--tty=false", &t, &orphan]);
    let leftover = w
        .data_dir()
        .join("handover/claude-vm-gone-12345678.run-zzzzzz");
    std::fs::create_dir_all(&leftover).unwrap();

    let (code, out) = doctor_raw(&w);
    assert_eq!(code, 0, "warnings do not fail: {out}");
    let head = format!("! session {orphan}: orphaned");
    finding(&out, &head);
    let fix = fix_of(&out, &head);
    assert_eq!(fix, format!("`limactl delete --force {orphan}`"));
    let head = format!("! hand-over directory {}", leftover.display());
    finding(&out, &head);
    let fix_dir = fix_of(&out, &head).to_owned();
    assert!(
        out.contains("1 template, 1 shared base and 1 session"),
        "{out}"
    );

    // The fixes, run as printed.
    for fix in [fix.to_owned(), fix_dir] {
        let cmd = fix.trim_matches('`');
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .env("PATH", format!("{}:/usr/bin:/bin", w.bin.display()))
            .env("HOME", &w.home)
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }
    let r = w.run(&["doctor"]);
    r.ok();
    assert!(!r.stdout.contains("! "), "{}", r.stdout);
}

#[test]
fn a_live_session_is_in_use_not_orphaned() {
    let w = World::new();
    with_qemu(&w);
    w.setup();
    let t = w.templates().remove(0);
    let before = w.logged().len();
    let mut session = w
        .command(
            &[
                "shell",
                "--",
                "sh",
                "-c",
                "while [ ! -e stop ]; do sleep 0.1; done",
            ],
            &w.project,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !w.logged()[before..].iter().any(|c| c[0] == "shell") {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the session never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, out) = doctor_raw(&w);
    let line = finding(&out, &format!("✓ session {t}.run-"));
    assert!(line.contains(": in use (pid "), "{out}");
    let pid: String = line
        .split("(pid ")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let argv: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if cfg!(target_os = "linux") {
        assert_eq!(argv.get(1).map(String::as_str), Some("shell"), "{argv:?}");
    }
    assert_eq!(code, 0, "{out}");
    std::fs::write(w.project.join("stop"), "").unwrap();
    assert!(session.wait().unwrap().success());
}

#[test]
fn a_template_deleted_by_hand_is_named_with_the_rebuild() {
    let w = World::new();
    with_qemu(&w);
    w.setup();
    let t = w.templates().remove(0);
    limactl(&w, &["delete", "--tty=false", "--force", &t]);
    let r = w.run(&["doctor"]);
    let head = format!("! template {t} ({}): its VM is gone", w.project.display());
    finding(&r.stdout, &head);
    assert!(fix_of(&r.stdout, &head).contains("claude-vm setup"));
    // The fix works.
    w.setup();
    let r = w.run(&["doctor"]);
    assert!(!r.stdout.contains("! template"), "{}", r.stdout);
}
