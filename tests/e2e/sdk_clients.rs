//! The official Agent SDKs driving claude-vm's drop-in `claude` (`claude-vm-claude`) against
//! the simulator: the Python `claude-agent-sdk` (PyPI) with `cli_path`, the TypeScript
//! `@anthropic-ai/claude-agent-sdk` (npm) with `pathToClaudeCodeExecutable`. Both pinned,
//! installed once into the test cache; ignored by a plain `cargo test` (they need the
//! registries) and run with `cargo test --test e2e sdk_clients -- --ignored` (`.ci/run`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

use crate::live::wait_until;
use crate::real_claude::cache_root;
use crate::sdk::{drop_in, world_env};
use crate::support::*;

pub const PYTHON_SDK: &str = "0.2.189";
pub const TYPESCRIPT_SDK: &str = "0.3.333";

/// Builds `name` in the cache once: `make` fills a fresh directory, which then takes its
/// place (another test run that got there first wins).
fn cached(name: &str, done: &str, make: impl FnOnce(&Path)) -> PathBuf {
    let dir = cache_root().join(name);
    if dir.join(done).exists() {
        return dir;
    }
    std::fs::create_dir_all(cache_root()).expect("make the test cache");
    let tmp = tempfile::tempdir_in(cache_root()).expect("tempdir in the cache");
    make(tmp.path());
    assert!(tmp.path().join(done).exists(), "{name}: {done} missing");
    let made = tmp.keep();
    if std::fs::rename(&made, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&made);
        assert!(dir.join(done).exists(), "cannot put {name} in the cache");
    }
    dir
}

#[track_caller]
fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A venv's python with claude-agent-sdk installed. A venv is not relocatable, so it is
/// made at its final path (under a lock-free name per version; a half-made one is remade).
fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let dir = cache_root().join(format!("claude-agent-sdk-py-{PYTHON_SDK}"));
        let py = dir.join("bin/python");
        let done = dir.join("installed");
        if !done.exists() {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(cache_root()).expect("make the test cache");
            run_ok(
                Command::new("python3").args(["-m", "venv"]).arg(&dir),
                "python3 -m venv (the SDK tests need python3-venv)",
            );
            run_ok(
                Command::new(&py).args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    &format!("claude-agent-sdk=={PYTHON_SDK}"),
                ]),
                "pip install claude-agent-sdk",
            );
            std::fs::write(&done, "").expect("mark the venv done");
        }
        py
    })
}

/// node_modules with @anthropic-ai/claude-agent-sdk (without its bundled Claude Code).
fn node_modules() -> &'static Path {
    static NM: OnceLock<PathBuf> = OnceLock::new();
    NM.get_or_init(|| {
        let spec = format!("@anthropic-ai/claude-agent-sdk@{TYPESCRIPT_SDK}");
        let done = "node_modules/@anthropic-ai/claude-agent-sdk/package.json";
        cached(
            &format!("claude-agent-sdk-ts-{TYPESCRIPT_SDK}"),
            done,
            |dir| {
                std::fs::write(dir.join("package.json"), "{\"private\":true}\n").expect("write");
                run_ok(
                    Command::new("npm")
                        .args(["install", "--silent", "--no-audit", "--no-fund"])
                        .args(["--omit=optional", &spec])
                        .current_dir(dir),
                    "npm install the TypeScript Agent SDK",
                );
            },
        )
        .join("node_modules")
    })
}

/// Runs `program script args` in the project with the World's environment; (status, stdout,
/// stderr).
fn run_program(w: &World, program: &Path, script: &Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(program);
    cmd.arg(script).args(args).current_dir(&w.project);
    world_env(w, &mut cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("run the SDK program");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const PYTHON_SESSION: &str = r#"
import json, sys
import anyio
from claude_agent_sdk import (ClaudeSDKClient, ClaudeAgentOptions, query, AssistantMessage,
                              ResultMessage, SystemMessage, TextBlock)

def describe(m):
    if isinstance(m, SystemMessage):
        return {"system": m.subtype, "data": m.data}
    if isinstance(m, AssistantMessage):
        return {"assistant": [b.text for b in m.content if isinstance(b, TextBlock)]}
    if isinstance(m, ResultMessage):
        return {"result": m.result, "num_turns": m.num_turns, "session_id": m.session_id,
                "is_error": m.is_error, "cost": m.total_cost_usd}
    return {"other": type(m).__name__}

async def main():
    options = ClaudeAgentOptions(cli_path=sys.argv[1])
    out = {"client": [], "query": []}
    async with ClaudeSDKClient(options=options) as client:
        for prompt in ["first question", "second question"]:
            await client.query(prompt)
            out["client"].append([describe(m) async for m in client.receive_response()])
        if "interrupt" in sys.argv[2:]:
            # A turn the fake claude holds until interrupted.
            await client.query("sim:hold")
            await client.interrupt()
            out["interrupted"] = [describe(m) async for m in client.receive_response()]
            await client.query("after the interrupt")
            out["client"].append([describe(m) async for m in client.receive_response()])
    out["query"] = [describe(m) async for m in query(prompt="one shot", options=options)]
    print(json.dumps(out))

anyio.run(main)
"#;

const PYTHON_KILLED: &str = r#"
import sys, time
import anyio
from claude_agent_sdk import ClaudeSDKClient, ClaudeAgentOptions

async def main():
    async with ClaudeSDKClient(options=ClaudeAgentOptions(cli_path=sys.argv[1])) as client:
        await client.query("hi")
        async for m in client.receive_response():
            pass
        print("READY", flush=True)
        time.sleep(3600)

anyio.run(main)
"#;

fn clones(w: &World) -> Vec<String> {
    w.instances()
        .into_iter()
        .filter(|n| n.contains('.'))
        .collect()
}

/// Since `before`: one VM per SDK connection (`sessions` of them), each deleted when the SDK
/// was done with it.
#[track_caller]
fn assert_vms(w: &World, before: usize, sessions: usize) {
    let calls = w.logged_since(before, None);
    let verbs: Vec<&str> = calls.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(verbs, ["clone", "shell", "delete"].repeat(sessions));
}

/// TYPESCRIPT_QUERY in a folder beside `nm` (ESM resolves packages from the script's folder).
fn typescript_query(w: &World, nm: &Path) -> PathBuf {
    let dir = w.root.join("ts");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::os::unix::fs::symlink(nm, dir.join("node_modules")).expect("link node_modules");
    let script = dir.join("query.mjs");
    std::fs::write(&script, TYPESCRIPT_QUERY).expect("write");
    script
}

#[test]
#[ignore = "needs PyPI (claude-agent-sdk); run by .ci/run with --ignored"]
fn sdk_clients_python_runs_two_turns_and_a_one_shot_query_in_fresh_vms() {
    let py = python();
    let w = World::new();
    w.setup();
    let before = w.logged().len();
    let script = w.write("session.py", PYTHON_SESSION);
    let link = drop_in(&w);
    let (code, stdout, stderr) =
        run_program(&w, py, &script, &[link.to_str().unwrap(), "interrupt"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        !stderr.contains("claude-vm"),
        "claude-vm is quiet: {stderr}"
    );
    let out: Value = serde_json::from_str(stdout.trim()).expect("the program's JSON");

    // client.interrupt() reached claude and ended the turn it held; the session went on.
    let stopped = out["interrupted"].as_array().expect("the interrupted turn");
    assert_eq!(
        stopped.last().expect("a result")["is_error"],
        true,
        "{stopped:?}"
    );
    let turns = out["client"].as_array().expect("turns");
    assert_eq!(turns.len(), 3, "{out}");
    let after = turns[2]
        .as_array()
        .and_then(|t| t.last())
        .expect("a result");
    assert_eq!(
        after["result"], "fake reply to: after the interrupt",
        "{after}"
    );
    assert_eq!(after["num_turns"], 4, "{after}");
    let init = &turns[0][0];
    assert_eq!(init["system"], "init", "{out}");
    let argv = init["data"]["sim"]["argv"].as_array().expect("argv");
    assert_eq!(argv[0], "--dangerously-skip-permissions");
    for flag in ["--output-format", "--input-format", "--verbose"] {
        assert!(argv.iter().any(|a| a == flag), "{flag} in {argv:?}");
    }
    assert_eq!(
        init["data"]["sim"]["env"]["CLAUDE_CODE_ENTRYPOINT"],
        "sdk-py"
    );
    for (i, prompt) in ["first question", "second question"]
        .iter()
        .enumerate()
        .take(2)
    {
        let turn = turns[i].as_array().expect("turn");
        let reply = format!("fake reply to: {prompt}");
        assert!(
            turn.iter().any(|m| m["assistant"][0] == reply.as_str()),
            "{turn:?}"
        );
        let result = turn.last().expect("a result");
        assert_eq!(result["result"], reply.as_str(), "{turn:?}");
        assert_eq!(result["num_turns"], i as u64 + 1);
        assert_eq!(result["is_error"], false);
        assert_eq!(result["session_id"], init["data"]["session_id"]);
    }
    let q = out["query"].as_array().expect("query");
    assert_eq!(
        q.last().expect("result")["result"],
        "fake reply to: one shot",
        "{q:?}"
    );
    assert_eq!(
        q.last().expect("result")["num_turns"],
        1,
        "a fresh claude: {q:?}"
    );

    assert_vms(&w, before, 2);
    w.assert_nothing_left(&stderr);
}

#[test]
#[ignore = "needs PyPI (claude-agent-sdk); run by .ci/run with --ignored"]
fn sdk_clients_python_killed_leaves_no_vm() {
    let py = python();
    let w = World::new();
    w.setup();
    let script = w.write("killed.py", PYTHON_KILLED);
    let link = drop_in(&w);
    let mut cmd = Command::new(py);
    cmd.arg(&script).arg(&link).current_dir(&w.project);
    world_env(&w, &mut cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start python");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).expect("read");
    assert_eq!(line, "READY\n");
    assert_eq!(clones(&w).len(), 1, "the session's VM runs");
    // kill -9: no atexit, no close(); claude-vm sees its stdin end.
    crate::live::signal(child.id() as i32, libc::SIGKILL);
    let _ = child.wait();
    wait_until("the VM to be deleted", || {
        clones(&w).is_empty() && w.journal().is_empty()
    });
    w.assert_nothing_left("");
}

const TYPESCRIPT_QUERY: &str = r#"
import { query } from '@anthropic-ai/claude-agent-sdk';
const messages = [];
for await (const m of query({ prompt: 'one shot', options: { pathToClaudeCodeExecutable: process.argv[2] } })) {
  messages.push(m);
}
console.log(JSON.stringify(messages));
"#;

#[test]
#[ignore = "needs the npm registry (@anthropic-ai/claude-agent-sdk); run by .ci/run with --ignored"]
fn sdk_clients_typescript_runs_a_query_in_a_fresh_vm() {
    let nm = node_modules();
    let w = World::new();
    w.setup();
    let before = w.logged().len();
    let script = typescript_query(&w, nm);
    let link = drop_in(&w);
    let node = Path::new("node");
    let (code, stdout, stderr) = run_program(&w, node, &script, &[link.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        !stderr.contains("claude-vm"),
        "claude-vm is quiet: {stderr}"
    );
    let messages: Vec<Value> = serde_json::from_str(stdout.trim()).expect("the program's JSON");
    let init = messages
        .iter()
        .find(|m| m["type"] == "system" && m["subtype"] == "init")
        .expect("an init message");
    assert_eq!(
        init["sim"]["env"]["CLAUDE_CODE_ENTRYPOINT"], "sdk-ts",
        "{init}"
    );
    let result = messages.last().expect("messages");
    assert_eq!(result["type"], "result", "{messages:?}");
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["result"], "fake reply to: one shot");
    assert_vms(&w, before, 1);
    w.assert_nothing_left(&stderr);
}

#[test]
#[ignore = "needs PyPI (claude-agent-sdk) and the real Claude Code from the npm registry; run by .ci/run with --ignored"]
fn sdk_clients_python_drives_the_actual_claude_code_over_two_turns() {
    let py = python();
    let answer = "The stand-in answers ✓";
    let (w, api) = crate::real_claude::world_with_real_claude(answer);
    let before = w.logged().len();
    let script = w.write("session.py", PYTHON_SESSION);
    let link = drop_in(&w);
    let (code, stdout, stderr) = run_program(&w, py, &script, &[link.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let out: Value = serde_json::from_str(stdout.trim()).expect("the program's JSON");
    let turns = out["client"].as_array().expect("turns");
    assert_eq!(turns.len(), 2, "{out}");
    let init = turns[0]
        .as_array()
        .expect("turn")
        .iter()
        .find(|m| m["system"] == "init")
        .expect("an init message");
    assert_eq!(
        init["data"]["claude_code_version"],
        crate::real_claude::VERSION,
        "{init}"
    );
    for turn in turns {
        let result = turn.as_array().and_then(|t| t.last()).expect("a result");
        assert_eq!(result["result"], answer, "{turn}");
        assert_eq!(result["is_error"], false, "{turn}");
        assert_eq!(
            result["session_id"], init["data"]["session_id"],
            "one conversation"
        );
    }
    // The second turn went to the API with the first one in its context: one claude.
    assert!(
        api.messages_requests().iter().any(|r| {
            let t = r.conversation_text();
            t.contains("first question") && t.contains("second question")
        }),
        "no request carried both turns"
    );
    let q = out["query"].as_array().expect("query");
    assert_eq!(q.last().expect("result")["result"], answer, "{q:?}");
    assert_vms(&w, before, 2);
    w.assert_nothing_left(&stderr);
}

#[test]
#[ignore = "needs the npm registry (the TypeScript Agent SDK and the real Claude Code); run by .ci/run with --ignored"]
fn sdk_clients_typescript_drives_the_actual_claude_code() {
    let nm = node_modules();
    let answer = "The stand-in answers ✓";
    let (w, api) = crate::real_claude::world_with_real_claude(answer);
    let before = w.logged().len();
    let script = typescript_query(&w, nm);
    let link = drop_in(&w);
    let (code, stdout, stderr) =
        run_program(&w, Path::new("node"), &script, &[link.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let messages: Vec<Value> = serde_json::from_str(stdout.trim()).expect("the program's JSON");
    let init = messages
        .iter()
        .find(|m| m["type"] == "system" && m["subtype"] == "init")
        .expect("an init message");
    assert_eq!(
        init["claude_code_version"],
        crate::real_claude::VERSION,
        "{init}"
    );
    let result = messages.last().expect("messages");
    assert_eq!(result["type"], "result", "{messages:?}");
    assert_eq!(result["result"], answer, "{result}");
    assert!(
        api.messages_requests()
            .iter()
            .any(|r| r.conversation_text().contains("one shot")),
        "the prompt reached the API"
    );
    assert_vms(&w, before, 1);
    w.assert_nothing_left(&stderr);
}
