//! `--json`: claude-vm's own messages as NDJSON on stderr, stdout left to claude.

use serde_json::Value;

use crate::support::*;

/// Every stderr line, parsed; panics on a line that is not a v1 event.
fn events(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}"));
            assert_eq!(v["v"], 1, "{l}");
            assert!(v["type"].is_string(), "{l}");
            v
        })
        .collect()
}

fn of_type<'a>(evs: &'a [Value], ty: &str) -> Vec<&'a Value> {
    evs.iter().filter(|e| e["type"] == ty).collect()
}

#[test]
fn a_session_under_json_prints_events_and_leaves_stdout_to_the_command() {
    let w = World::new();
    w.setup();
    let r = w.run(&[
        "--json",
        "shell",
        "--",
        "sh",
        "-c",
        "printf 'out \\033[2K\\n'; echo 'err \\033[1A' >&2; exit 3",
    ]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(
        r.stdout, "out \u{1b}[2K\n",
        "stdout is the command's, byte for byte"
    );
    let evs = events(&r.stderr);
    let started = of_type(&evs, "session.started");
    assert_eq!(started.len(), 1, "{evs:?}");
    assert_eq!(started[0]["warm"], false);
    assert_eq!(started[0]["project"], w.project.to_str().unwrap());
    assert!(started[0]["vm"].as_str().unwrap().contains(".run-"));
    assert_eq!(started[0]["policy"], "allowlist", "the default policy");
    let guest = of_type(&evs, "guest.stderr");
    assert_eq!(guest.len(), 1, "{evs:?}");
    assert_eq!(
        guest[0]["line"], "err \u{1b}[1A",
        "the guest's line, JSON-escaped"
    );
    assert!(!r.stderr.contains('\u{1b}'), "no raw escape reaches stderr");
    let steps: Vec<&str> = of_type(&evs, "step.finished")
        .iter()
        .map(|e| e["step"].as_str().unwrap())
        .collect();
    assert!(steps.iter().any(|s| s.starts_with("cloning")), "{steps:?}");
    assert!(
        steps.iter().any(|s| s.starts_with("deleting the VM")),
        "{steps:?}"
    );
    let ended = of_type(&evs, "session.ended");
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0]["exit_status"], 3);
    assert_eq!(ended[0]["vm_deleted"], true);
    assert!(ended[0]["duration_ms"].is_u64());
    assert_eq!(evs.last().unwrap()["type"], "session.ended", "{evs:?}");
}

#[test]
fn failures_errors_and_audit_findings_are_events() {
    let w = World::new();
    w.write_project(".claude-vm.runtime.sh", "echo setting up >&2\nfalse\n");
    w.setup();
    let r = w.run(&["--json", "shell", "--", "true"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let evs = events(&r.stderr);
    let failed = of_type(&evs, "runtime_script.failed");
    assert_eq!(failed.len(), 1, "{evs:?}");
    assert_eq!(failed[0]["script"], "./.claude-vm.runtime.sh");
    assert_eq!(failed[0]["status"], 1);
    std::fs::remove_file(w.project.join(".claude-vm.runtime.sh")).unwrap();

    // An error: message, hint, kind and exit code; nothing else on stderr.
    let r = w.run(&["--json", "--mount", "/nonexistent/x", "hello"]);
    assert_eq!(r.code, 2);
    let evs = events(&r.stderr);
    let err = of_type(&evs, "error");
    assert_eq!(err.len(), 1, "{evs:?}");
    assert_eq!(err[0]["kind"], "usage");
    assert_eq!(err[0]["exit_code"], 2);
    assert!(err[0]["message"].as_str().unwrap().contains("--mount"));
    assert!(err[0]["hint"].is_string());
    // A flag clap refuses is an event too.
    let r = w.run(&["--json", "setup", "--cpus", "many"]);
    assert_eq!(r.code, 2);
    let evs = events(&r.stderr);
    assert_eq!(of_type(&evs, "error").len(), 1, "{evs:?}");
    assert!(of_type(&evs, "error")[0]["message"]
        .as_str()
        .unwrap()
        .contains("--cpus"));

    // A hook planted from the guest: an audit.finding, and the alert.
    let r = w.run(&[
        "--json",
        "shell",
        "--",
        "sh",
        "-c",
        "printf '#!/bin/sh\\necho hi\\n' > .git/hooks/pre-commit; chmod +x .git/hooks/pre-commit",
    ]);
    r.ok();
    let evs = events(&r.stderr);
    let findings = of_type(&evs, "audit.finding");
    assert_eq!(findings.len(), 1, "{evs:?}");
    assert_eq!(findings[0]["change"], "added");
    assert!(findings[0]["what"]
        .as_str()
        .unwrap()
        .ends_with(".git/hooks/pre-commit"));
    assert!(!findings[0]["reason"].as_str().unwrap().is_empty());
    assert_eq!(of_type(&evs, "alert").len(), 1);
}

#[test]
fn other_commands_speak_json_too() {
    let w = World::new();
    let r = w.run(&["--json", "setup"]);
    r.ok();
    let evs = events(&r.stderr);
    assert!(!of_type(&evs, "step.started").is_empty());
    assert!(!of_type(&evs, "info").is_empty());
    let r = w.run(&["--json", "list"]);
    r.ok();
    events(&r.stderr);
    assert!(
        r.stdout.contains("claude-vm-app-"),
        "list's output stays on stdout"
    );
}

#[test]
fn a_refused_command_line_under_json_is_an_error_event() {
    let w = World::new();
    for args in [
        &["--json", "setup", "--memory", "999"][..],
        &["setup", "--json", "--no-such-flag"][..],
        &["--json", "shell", "--bogus"][..],
    ] {
        let r = w.run(args);
        assert_eq!(r.code, 2, "{args:?}");
        let evs = events(&r.stderr);
        assert_eq!(evs.len(), 1, "{args:?}: {evs:?}");
        assert_eq!(evs[0]["type"], "error");
        assert_eq!(evs[0]["kind"], "usage");
        assert_eq!(evs[0]["exit_code"], 2);
        let message = evs[0]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(args[args.len() - 1].trim_start_matches('-')),
            "{message}"
        );
        assert!(evs[0]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("--help")));
        assert!(r.calls.is_empty(), "{:?}", r.calls);
    }
    // Without --json (or with it only after `--`, as a command's argument) the text is kept.
    let r = w.run(&["setup", "--no-such-flag", "--", "--json"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.starts_with("claude-vm: error: "), "{}", r.stderr);
}
