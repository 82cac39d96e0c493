//! claude-vm as the `claude` an Agent SDK spawns: `claude-vm-claude` (a symlink) and
//! `claude-vm agent --stdio`. Here a test plays the SDK (stream-json lines on a pipe); the
//! official SDKs themselves drive it in `sdk_clients.rs`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::live::wait_until;
use crate::support::*;

/// `bin/claude-vm-claude`, a symlink to the claude-vm under test.
pub fn drop_in(w: &World) -> PathBuf {
    let link = w.bin.join("claude-vm-claude");
    if !link.exists() {
        std::os::unix::fs::symlink(CLAUDE_VM, &link).expect("symlink claude-vm-claude");
    }
    link
}

/// The environment World gives claude-vm, for a program (an SDK) that starts it.
pub fn world_env(w: &World, cmd: &mut Command) {
    cmd.env_clear()
        .env("HOME", &w.home)
        .env(
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", w.bin.display()),
        )
        .env("LANG", "C.UTF-8")
        .env("LIMA_SIM_LOG", &w.log);
    for (k, v) in &w.env {
        cmd.env(k, v);
    }
}

/// A claude-vm spoken to as an SDK speaks to claude.
struct Sdk {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Sdk {
    fn start(w: &World, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Sdk {
        let mut cmd = Command::new(program);
        cmd.args(args).current_dir(&w.project);
        world_env(w, &mut cmd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start claude-vm");
        let stdin = child.stdin.take();
        let lines = reader(child.stdout.take().expect("stdout"));
        let err = child.stderr.take().expect("stderr");
        let (tx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(err), &mut text);
            let _ = tx.send(text);
        });
        Sdk {
            child,
            stdin,
            lines,
            stderr,
        }
    }

    fn send(&mut self, v: Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{v}").expect("write to claude-vm");
        stdin.flush().expect("flush");
    }

    /// The next line on stdout, which must be one JSON object.
    fn next(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(60))
            .expect("a line from claude-vm's stdout");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON on stdout ({e}): {line:?}"))
    }

    fn until_result(&self) -> Vec<Value> {
        let mut got = Vec::new();
        loop {
            let v = self.next();
            let done = v["type"] == "result";
            got.push(v);
            if done {
                return got;
            }
        }
    }

    /// Closes stdin (the SDK is done); the exit code, what else came on stdout, and stderr.
    fn close(mut self) -> (i32, Vec<String>, String) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait");
        let rest: Vec<String> = self.lines.iter().collect();
        let stderr = self.stderr.recv().unwrap_or_default();
        (status.code().unwrap_or(-1), rest, stderr)
    }
}

fn reader(out: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn user(text: &str) -> Value {
    json!({"type": "user", "message": {"role": "user", "content": text},
           "parent_tool_use_id": null, "session_id": ""})
}

const SDK_ARGS: &[&str] = &[
    "--output-format",
    "stream-json",
    "--verbose",
    "--system-prompt",
    "",
    "--input-format",
    "stream-json",
];

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn the_drop_in_speaks_stream_json_over_two_turns_and_deletes_the_vm_at_eof() {
    let w = World::new();
    w.setup();
    let before = w.logged().len();
    let env = [
        ("CLAUDE_CODE_ENTRYPOINT", "sdk-py"),
        ("CLAUDE_AGENT_SDK_VERSION", "9.9.9"),
    ];
    let mut sdk = Sdk::start(&w, &drop_in(&w), SDK_ARGS, &env);
    sdk.send(json!({"type": "control_request", "request_id": "req_1",
                    "request": {"subtype": "initialize", "hooks": null}}));
    let init = sdk.next();
    assert_eq!(init["type"], "control_response", "{init}");
    assert_eq!(init["response"]["subtype"], "success", "{init}");
    assert_eq!(init["response"]["request_id"], "req_1", "{init}");

    sdk.send(user("first question"));
    let turn = sdk.until_result();
    let kinds: Vec<&str> = turn
        .iter()
        .map(|v| v["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["system", "assistant", "result"], "{turn:?}");
    let system = &turn[0];
    // The SDK's arguments reach claude unchanged, after the permissions claude-vm adds.
    let argv = strings(&system["sim"]["argv"]);
    let mut want = vec!["--dangerously-skip-permissions".to_owned()];
    want.extend(SDK_ARGS.iter().map(|s| (*s).to_owned()));
    assert_eq!(argv, want);
    assert_eq!(system["permissionMode"], "bypassPermissions");
    // The SDK's variables reach it too.
    assert_eq!(
        system["sim"]["env"]["CLAUDE_CODE_ENTRYPOINT"], "sdk-py",
        "{system}"
    );
    assert_eq!(
        system["sim"]["env"]["CLAUDE_AGENT_SDK_VERSION"], "9.9.9",
        "{system}"
    );
    assert_eq!(
        turn[1]["message"]["content"][0]["text"],
        "fake reply to: first question"
    );
    assert_eq!(turn[2]["num_turns"], 1);

    // A turn that runs until interrupted: the interrupt reaches claude and stops it; the
    // message sent meanwhile is answered after it, and the conversation goes on.
    sdk.send(user("sim:hold on"));
    sdk.send(user("second question"));
    sdk.send(json!({"type": "control_request", "request_id": "req_2",
                    "request": {"subtype": "interrupt"}}));
    let r = sdk.next();
    assert_eq!(r["type"], "control_response", "{r}");
    assert_eq!(r["response"]["subtype"], "success", "{r}");
    assert_eq!(r["response"]["request_id"], "req_2", "{r}");
    let stopped = sdk.next();
    assert_eq!(stopped["type"], "result", "{stopped}");
    assert_eq!(stopped["subtype"], "error_during_execution", "{stopped}");
    let turn = sdk.until_result();
    assert_eq!(turn.len(), 2, "no second init: {turn:?}");
    assert_eq!(turn[1]["result"], "fake reply to: second question");
    assert_eq!(turn[1]["num_turns"], 3);
    assert_eq!(turn[1]["session_id"], system["session_id"]);

    let (code, rest, stderr) = sdk.close();
    assert_eq!(code, 0, "{stderr}");
    assert!(rest.is_empty(), "stdout after the last result: {rest:?}");
    assert_eq!(stderr, "", "claude-vm is quiet in this mode");
    let calls = w.logged_since(before, None);
    let verbs: Vec<&str> = calls.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(verbs, ["clone", "shell", "delete"]);
    w.assert_nothing_left(&stderr);
}

#[test]
fn agent_stdio_is_the_same_and_verbose_talks_on_stderr_only() {
    let w = World::new();
    w.setup();
    for (args, talks) in [
        (vec!["agent", "--stdio"], false),
        (vec!["-v", "agent", "--stdio"], true),
    ] {
        let args: Vec<&str> = args.into_iter().chain(SDK_ARGS.iter().copied()).collect();
        let mut sdk = Sdk::start(&w, Path::new(CLAUDE_VM), &args, &[]);
        sdk.send(user("hi"));
        let turn = sdk.until_result();
        assert_eq!(
            turn[0]["sim"]["argv"][1], "--output-format",
            "{:?}",
            turn[0]
        );
        assert_eq!(turn.last().unwrap()["result"], "fake reply to: hi");
        let (code, rest, stderr) = sdk.close();
        assert_eq!(code, 0, "{stderr}");
        assert!(rest.is_empty(), "{rest:?}");
        assert_eq!(!stderr.is_empty(), talks, "{args:?}: {stderr}");
        if talks {
            assert!(stderr.contains("deleting the VM"), "{stderr}");
        }
        w.assert_nothing_left(&stderr);
    }
}

#[test]
fn a_permission_mode_the_sdk_chose_is_kept() {
    let w = World::new();
    w.setup();
    for (extra, mode) in [
        (&["--permission-mode", "default"][..], "default"),
        (&["--permission-mode=plan"], "plan"),
        (&["--permission-prompt-tool=stdio"], "default"),
    ] {
        let args: Vec<&str> = SDK_ARGS.iter().chain(extra).copied().collect();
        let mut sdk = Sdk::start(&w, &drop_in(&w), &args, &[]);
        sdk.send(user("hi"));
        let turn = sdk.until_result();
        let argv = strings(&turn[0]["sim"]["argv"]);
        assert!(
            !argv.contains(&"--dangerously-skip-permissions".to_owned()),
            "{argv:?}"
        );
        assert_eq!(turn[0]["permissionMode"], mode, "{extra:?}");
        let (code, _, stderr) = sdk.close();
        assert_eq!(code, 0, "{stderr}");
        w.assert_nothing_left(&stderr);
    }
}

#[test]
fn version_and_other_one_shot_calls_answer_as_claude_does() {
    let w = World::new();
    w.setup();
    for args in [&["--version"][..], &["-v"]] {
        let mut cmd = Command::new(drop_in(&w));
        cmd.args(args).current_dir(&w.project);
        world_env(&w, &mut cmd);
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .expect("run claude-vm-claude");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout, "2.0.0 (Claude Code)\n", "{args:?}");
        // Only what was asked: `claude --version`, nothing added.
        assert_eq!(String::from_utf8_lossy(&out.stderr), "");
        w.assert_nothing_left("");
    }
}

#[test]
fn an_sdk_that_dies_leaves_no_vm() {
    let w = World::new();
    w.setup();
    // The SDK's process is gone: its ends of both pipes close at once.
    let mut sdk = Sdk::start(&w, &drop_in(&w), SDK_ARGS, &[]);
    sdk.send(user("hi"));
    sdk.until_result();
    let pid = sdk.child.id();
    drop(sdk.stdin.take());
    drop(std::mem::replace(&mut sdk.lines, mpsc::channel().1));
    let status = sdk.child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    assert_eq!(w.calls_by(pid, |a| a[0] == "delete"), 1);
    w.assert_nothing_left("");

    // An SDK that gives up waiting sends SIGTERM: passed on, the VM deleted, 143.
    let mut sdk = Sdk::start(&w, &drop_in(&w), SDK_ARGS, &[]);
    sdk.send(user("hi"));
    sdk.until_result();
    let pid = sdk.child.id();
    crate::live::signal(pid as i32, libc::SIGTERM);
    let (code, _, stderr) = sdk.close();
    assert_eq!(code, 143, "{stderr}");
    assert_eq!(w.calls_by(pid, |a| a[0] == "delete"), 1);
    w.assert_nothing_left(&stderr);

    // SIGKILLed with it (no cleanup at all): the next command reaps the VM.
    let mut sdk = Sdk::start(&w, &drop_in(&w), SDK_ARGS, &[]);
    sdk.send(user("hi"));
    sdk.until_result();
    crate::live::signal(sdk.child.id() as i32, libc::SIGKILL);
    let _ = sdk.child.wait();
    let clones = || {
        w.instances()
            .into_iter()
            .filter(|n| n.contains('.'))
            .count()
    };
    wait_until("the guest side to notice", || clones() == 1);
    let r = w.run(&["list"]);
    r.ok();
    assert_eq!(r.verbs(), ["delete", "list"], "{}", r.stderr);
    w.assert_nothing_left(&r.stderr);
}
