//! The "new version available" notice: found by a detached check that never holds up a
//! command, shown to a person at a terminal at most once per 72 hours, off in CI and when
//! disabled.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::release_server::*;
use crate::support::*;

const CURRENT: &str = env!("CARGO_PKG_VERSION");

fn world(server: &ReleaseServer) -> World {
    let mut w = World::new();
    w.set_env("CLAUDE_VM_UPDATE_API", &server.base)
        .set_env("CLAUDE_VM_UPDATE_REPO", REPO);
    w
}

fn state_file(w: &World) -> std::path::PathBuf {
    w.data_dir().join("update-check.json")
}

fn latest_requests(server: &ReleaseServer) -> usize {
    let latest = format!("/repos/{REPO}/releases/latest");
    server.requests().iter().filter(|p| **p == latest).count()
}

/// Waits (a generous bound, not a speed test) for something the detached check does.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "gave up waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn notice() -> String {
    format!("claude-vm 9.9.9 is available (this is {CURRENT}): run `claude-vm update`")
}

#[test]
fn a_background_check_finds_the_release_and_the_notice_shows_once() {
    let server = ReleaseServer::start();
    publish_build(&server, &std::env::temp_dir(), "v9.9.9", "9.9.9", true);
    let w = world(&server);
    // The releases API answers only when the test says so, so a command that waited for
    // the check could only finish once the check had failed (a timeout, recorded).
    server.hold(&format!("/repos/{REPO}/releases/latest"));
    let r = w.run_pty(&["list"], &[]);
    r.ok();
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state_file(&w)).unwrap()).unwrap();
    assert!(
        state["latest"].is_null() && state.get("error").is_none(),
        "the check was still waiting for its answer when the command was done: {state}"
    );
    assert!(!r.transcript.contains("is available"), "nothing known yet");
    eventually("the detached check asks the API", || {
        latest_requests(&server) == 1
    });
    server.release_held();
    eventually("the detached check records the answer", || {
        std::fs::read_to_string(state_file(&w)).is_ok_and(|t| t.contains("\"9.9.9\""))
    });

    let r = w.run_pty(&["list"], &[]);
    r.ok();
    assert!(
        r.screen_lines().iter().any(|l| l.contains(&notice())),
        "{:?}",
        r.transcript
    );
    let r = w.run_pty(&["list"], &[]);
    r.ok();
    assert!(!r.transcript.contains("is available"), "once per 72 hours");
    let r = w.run(&["list"]);
    r.ok();
    assert!(!r.stderr.contains("is available"), "never off a terminal");
    assert_eq!(latest_requests(&server), 1, "one check per 72 hours");
}

#[test]
fn a_stale_answer_is_refreshed_and_an_old_notice_repeated() {
    let server = ReleaseServer::start();
    publish_build(&server, &std::env::temp_dir(), "v9.9.9", "9.9.9", true);
    let w = world(&server);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let old = now - 73 * 3600;
    std::fs::create_dir_all(w.data_dir()).unwrap();
    std::fs::write(
        state_file(&w),
        serde_json::json!({"checked_at": old, "latest": "9.9.9", "notified_at": old}).to_string(),
    )
    .unwrap();
    let r = w.run_pty(&["list"], &[]);
    r.ok();
    assert!(r.transcript.contains(&notice()), "{:?}", r.transcript);
    eventually("a new check after 72 hours", || {
        latest_requests(&server) == 1
    });
}

#[test]
fn off_in_ci_and_when_disabled() {
    let server = ReleaseServer::start();
    publish_build(&server, &std::env::temp_dir(), "v9.9.9", "9.9.9", true);
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>);
    let cases: [Case; 3] = [
        ("CI", &[("CI", "true")], None),
        ("variable", &[("CLAUDE_VM_NO_UPDATE_CHECK", "1")], None),
        ("config", &[], Some("[update]\ncheck = false\n")),
    ];
    for (why, env, config) in cases {
        let w = world(&server);
        if let Some(text) = config {
            std::fs::write(w.home.join(".claude-vm.toml"), text).unwrap();
        }
        let r = w.run_pty(&["list"], env);
        r.ok();
        // The state is claimed before a check starts, so no file means no check.
        assert!(!state_file(&w).exists(), "{why}: a check was started");
    }
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}
