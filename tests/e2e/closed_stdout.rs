//! Output into a pipe whose reader is gone (`claude-vm list | head`) ends quietly.

use std::io::Read;
use std::process::Stdio;

use crate::support::*;

/// Runs claude-vm with its stdout's reader closed before it writes: (exit code, stderr).
fn into_closed_pipe(w: &World, args: &[&str]) -> (Option<i32>, String) {
    let mut child = w
        .command(args, &w.project)
        .stdout(Stdio::piped())
        .spawn()
        .expect("run claude-vm");
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    (child.wait().expect("wait").code(), stderr)
}

#[test]
fn every_listing_into_a_closed_pipe_ends_quietly() {
    let w = World::new();
    w.setup();
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["info"],
        &["config", "show"],
        &["doctor"],
        &["completions", "bash"],
        &["--dry-run", "shell"],
        &["--help"],
    ] {
        let (code, stderr) = into_closed_pipe(&w, args);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
            "{args:?} panicked:\n{stderr}"
        );
        assert!(!stderr.contains("error"), "{args:?}:\n{stderr}");
        // doctor's exit status reports its findings; the others succeed.
        if args != ["doctor"] {
            assert_eq!(code, Some(0), "{args:?}:\n{stderr}");
        } else {
            assert!(matches!(code, Some(0 | 1)), "{args:?}: {code:?}\n{stderr}");
        }
    }
}

#[test]
#[cfg(target_os = "linux")]
fn a_failure_to_write_other_than_a_closed_pipe_is_an_error() {
    let w = World::new();
    w.setup();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full");
    let out = w
        .command(&["list"], &w.project)
        .stdout(Stdio::from(full))
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("claude-vm: error: cannot write the output")
            && !stderr.contains("panicked"),
        "{stderr}"
    );
}
