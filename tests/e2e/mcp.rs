//! `claude-vm mcp`: the MCP server driven by the official Rust SDK's client over the child's
//! stdio, against the simulator.

use std::path::Path;
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, CallToolResult, ClientRequest, Request};
use rmcp::service::{Peer, PeerRequestOptions, RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt;
use serde_json::{json, Value};

use crate::support::*;

struct Client {
    service: RunningService<RoleClient, ()>,
    pid: u32,
}

/// `claude-vm mcp` started in `cwd` with the world's environment, initialized.
async fn connect(w: &World, cwd: &Path) -> Client {
    let mut cmd = w.command(&["mcp"], cwd);
    cmd.stderr(std::process::Stdio::inherit());
    let transport = TokioChildProcess::new(tokio::process::Command::from(cmd)).expect("spawn");
    let pid = transport.id().expect("pid");
    let service = ().serve(transport).await.expect("initialize");
    Client { service, pid }
}

async fn call(peer: &Peer<RoleClient>, tool: &str, args: Value) -> CallToolResult {
    let args = args.as_object().expect("object").clone();
    peer.call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

/// `exec` of `sleep SECS` in the project, left running in the background.
fn spawn_sleep(
    peer: &Peer<RoleClient>,
    secs: u32,
) -> tokio::task::JoinHandle<Result<CallToolResult, rmcp::ServiceError>> {
    let peer = peer.clone();
    tokio::spawn(async move {
        let args = json!({"project": ".", "argv": ["sleep", secs.to_string()]});
        let args = args.as_object().expect("object").clone();
        peer.call_tool(CallToolRequestParams::new("exec").with_arguments(args))
            .await
    })
}

/// A session's VM (`*.run-*`) exists.
fn running(w: &World) -> bool {
    w.instances().iter().any(|n| n.contains(".run-"))
}

fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn structured(r: &CallToolResult) -> &Value {
    r.structured_content.as_ref().expect("structured content")
}

/// Closes the client and waits for the server process to be gone.
async fn close(c: Client) {
    let pid = c.pid as libc::pid_t;
    let _ = c.service.cancel().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    // SAFETY: signal 0 only asks whether the process exists.
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(Instant::now() < deadline, "the MCP server did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn an_mcp_client_lists_the_tools_runs_an_agent_and_a_command_and_reads_the_audit() {
    let w = World::new();
    w.setup();
    rt().block_on(async {
        // Started outside the project: `project` is resolved against the server's directory.
        let c = connect(&w, &w.root).await;
        let peer = c.service.peer().clone();

        let tools = peer.list_all_tools().await.expect("tools/list");
        let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
        names.sort();
        assert_eq!(names, ["exec", "list_sessions", "run_agent", "session_log"]);
        let schema = |n: &str| {
            Value::Object(
                tools
                    .iter()
                    .find(|t| t.name == n)
                    .expect("tool")
                    .input_schema
                    .as_ref()
                    .clone(),
            )
        };
        let required = |n: &str| {
            let mut r: Vec<String> = schema(n)["required"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            r.sort();
            r
        };
        assert_eq!(required("run_agent"), ["project", "prompt"]);
        assert_eq!(schema("run_agent")["properties"]["claude_args"]["type"], "array");
        assert_eq!(required("exec"), ["argv", "project"]);
        assert_eq!(schema("exec")["properties"]["argv"]["items"]["type"], "string");
        assert_eq!(required("session_log"), ["name"]);
        assert_eq!(schema("list_sessions")["type"], "object");
        let described = |n: &str| {
            tools
                .iter()
                .find(|t| t.name == n)
                .and_then(|t| t.description.as_deref().map(str::to_owned))
                .unwrap_or_default()
        };
        assert!(described("list_sessions").contains("\"bases\""), "{}", described("list_sessions"));

        // run_agent: claude -p PROMPT --output-format json ARGS in a fresh VM.
        let r = call(
            &peer,
            "run_agent",
            json!({"prompt": "fix it; $(touch /tmp/x) 'q'", "project": "src/app", "claude_args": ["--model", "opus"]}),
        )
        .await;
        assert_eq!(r.is_error, Some(false), "{}", text(&r));
        let s = structured(&r);
        assert_eq!(s["exit_status"], 0, "{s}");
        assert!(
            s["session_id"].as_str().is_some_and(|id| !id.is_empty()),
            "{s}"
        );
        assert_eq!(s["total_cost_usd"], 0.0125);
        assert_eq!(s["num_turns"], 1);
        assert_eq!(
            s["result"], "fake reply to: fix it; $(touch /tmp/x) 'q'",
            "the prompt arrives as one argument, byte for byte"
        );
        assert!(text(&r).starts_with(s["result"].as_str().unwrap()));
        let vm = s["claude_vm"]["vm"].as_str().expect("vm").to_owned();
        assert!(vm.contains(".run-"), "{vm}");
        assert_eq!(s["claude_vm"]["vm_deleted"], true);
        assert_eq!(s["claude_vm"]["audit_findings"], json!([]));
        // claude_args reach claude: the fake exits with the status it is told.
        let r = call(
            &peer,
            "run_agent",
            json!({"prompt": "again", "project": "src/app", "claude_args": ["--sim-exit", "4"]}),
        )
        .await;
        assert_eq!(r.is_error, Some(true), "{}", text(&r));
        assert_eq!(structured(&r)["exit_status"], 4, "{}", text(&r));

        // exec: the command's exit status, stdout and stderr lines.
        let project = w.project.to_str().unwrap();
        let r = call(
            &peer,
            "exec",
            json!({"project": project, "argv": ["sh", "-c", "echo out; echo err >&2; exit 3"]}),
        )
        .await;
        let s = structured(&r);
        assert_eq!(s["exit_status"], 3, "{s}");
        assert_eq!(s["stdout"], "out\n");
        assert_eq!(s["stderr"], json!(["err"]));
        assert_eq!(r.is_error, Some(true), "a failing command is a tool error");

        // A long run does not block other requests: list_sessions answers meanwhile and
        // shows the running session.
        let long = {
            let peer = peer.clone();
            let project = project.to_owned();
            tokio::spawn(async move {
                call(&peer, "exec", json!({"project": project, "argv": ["sh", "-c", "sleep 3; echo slept"]})).await
            })
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let running = loop {
            let r = call(&peer, "list_sessions", json!({})).await;
            assert_eq!(r.is_error, Some(false), "{}", text(&r));
            let s = structured(&r).clone();
            assert!(s["templates"].as_array().is_some_and(|t| !t.is_empty()), "{s}");
            // The project's template was cloned from one shared base, which names the project.
            let bases = s["bases"].as_array().expect("bases");
            assert_eq!(bases.len(), 1, "{s}");
            assert_eq!(bases[0]["used_by"], json!([s["templates"][0]["project"]]), "{s}");
            if let Some(first) = s["sessions"].as_array().and_then(|a| a.first()) {
                break first.clone();
            }
            assert!(Instant::now() < deadline, "the session never showed up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(!long.is_finished(), "list_sessions waited for the long run");
        assert!(running["name"].as_str().unwrap().contains(".run-"), "{running}");
        let r = long.await.expect("join");
        assert_eq!(structured(&r)["stdout"], "slept\n");

        // An audited session: the finding comes back, and session_log has its report.
        let r = call(
            &peer,
            "exec",
            json!({"project": project, "argv": ["sh", "-c", "printf '#!/bin/sh\\nevil\\n' > .git/hooks/pre-commit; chmod +x .git/hooks/pre-commit"]}),
        )
        .await;
        let s = structured(&r);
        assert_eq!(s["exit_status"], 0, "{s}");
        let findings = s["claude_vm"]["audit_findings"].as_array().expect("findings");
        assert!(
            findings.iter().any(|f| f["what"].as_str().unwrap_or("").ends_with(".git/hooks/pre-commit")),
            "{s}"
        );
        let vm = s["claude_vm"]["vm"].as_str().expect("vm").to_owned();
        let r = call(&peer, "session_log", json!({"name": vm})).await;
        assert_eq!(r.is_error, Some(false), "{}", text(&r));
        let reports = structured(&r)["audit_reports"].as_array().expect("reports").clone();
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert!(reports[0]["text"].as_str().unwrap().contains("pre-commit"), "{reports:?}");
        assert!(reports[0]["text"].as_str().unwrap().contains(&vm));
        // A session with nothing kept: no report.
        let r = call(&peer, "session_log", json!({"name": "claude-vm-none.run-zzzzzz"})).await;
        assert_eq!(structured(&r)["audit_reports"], json!([]));

        close(c).await;
    });
    w.assert_nothing_left("after the MCP session");
}

#[test]
fn bad_input_is_a_tool_error_that_touches_no_vm_and_claude_vm_errors_come_back_with_hints() {
    let w = World::new();
    w.setup();
    std::fs::write(w.root.join("file"), "x").unwrap();
    let other = w.root.join("other");
    std::fs::create_dir_all(&other).unwrap();
    git(&other, &["init", "-q", "-b", "main"]);
    rt().block_on(async {
        let c = connect(&w, &w.root).await;
        let peer = c.service.peer().clone();
        let before = w.logged().len();
        let project = w.project.to_str().unwrap().to_owned();
        for (tool, args, needle) in [
            (
                "run_agent",
                json!({"prompt": "p", "project": "nope"}),
                "\"nope\"",
            ),
            (
                "run_agent",
                json!({"prompt": "p", "project": "file"}),
                "not a directory",
            ),
            (
                "run_agent",
                json!({"prompt": "p", "project": ""}),
                "project is empty",
            ),
            (
                "run_agent",
                json!({"prompt": "  ", "project": project}),
                "prompt is empty",
            ),
            (
                "exec",
                json!({"project": "src/../nope", "argv": ["ls"]}),
                "nope",
            ),
            (
                "exec",
                json!({"project": project, "argv": []}),
                "argv is empty",
            ),
            (
                "exec",
                json!({"project": project, "argv": [""]}),
                "argv[0] is empty",
            ),
            (
                "session_log",
                json!({"name": "../../etc/passwd"}),
                "not a claude-vm",
            ),
            ("session_log", json!({"name": ".."}), "not a claude-vm"),
        ] {
            let r = call(&peer, tool, args.clone()).await;
            assert_eq!(r.is_error, Some(true), "{tool} {args}");
            assert!(text(&r).contains(needle), "{tool} {args}: {}", text(&r));
        }
        // Arguments of the wrong type are refused by the protocol layer, not a crash.
        let bad = peer
            .call_tool(
                CallToolRequestParams::new("exec").with_arguments(
                    json!({"project": project, "argv": "ls"})
                        .as_object()
                        .unwrap()
                        .clone(),
                ),
            )
            .await;
        assert!(
            bad.is_err() || bad.as_ref().is_ok_and(|r| r.is_error == Some(true)),
            "{bad:?}"
        );
        assert_eq!(w.logged().len(), before, "bad input reached limactl");

        // claude-vm's own error (no template for this project): its message and hint.
        let r = call(
            &peer,
            "run_agent",
            json!({"prompt": "p", "project": "other"}),
        )
        .await;
        assert_eq!(r.is_error, Some(true), "{}", text(&r));
        let errors = structured(&r)["claude_vm"]["errors"]
            .as_array()
            .expect("errors")
            .clone();
        assert_eq!(errors.len(), 1, "{errors:?}");
        let message = errors[0]["message"].as_str().expect("message");
        assert!(text(&r).contains(message), "{}", text(&r));
        let hint = errors[0]["hint"].as_str().expect("a hint");
        assert!(text(&r).contains(&format!("hint: {hint}")), "{}", text(&r));

        // The server is still there after all that.
        let r = call(&peer, "list_sessions", json!({})).await;
        assert_eq!(r.is_error, Some(false), "{}", text(&r));
        close(c).await;
    });
    w.assert_nothing_left("after bad input");
}

async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    // Room for a loaded machine: a VM's delete is one limactl call, but CI may be busy.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: timed out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_cancelled_call_a_closed_pipe_and_sigterm_mid_run_leave_no_vm() {
    let w = World::new();
    w.setup();
    rt().block_on(async {
        let c = connect(&w, &w.project).await;
        let peer = c.service.peer().clone();

        // The client cancels one call (notifications/cancelled): its VM goes, the server stays.
        let args = json!({"project": ".", "argv": ["sleep", "60"]});
        let request = ClientRequest::CallToolRequest(Request::new(
            CallToolRequestParams::new("exec").with_arguments(args.as_object().unwrap().clone()),
        ));
        let handle = peer
            .send_cancellable_request(request, PeerRequestOptions::no_options())
            .await
            .expect("send");
        wait_for("the VM comes up", || running(&w)).await;
        let cancelled = Instant::now();
        handle
            .cancel(Some("changed my mind".into()))
            .await
            .expect("cancel");
        wait_for("the cancelled run's VM is deleted", || !running(&w)).await;
        // The run's own process removes its journal entry just after the delete returns.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = call(&peer, "list_sessions", json!({})).await;
            if structured(&r)["sessions"] == json!([]) {
                break;
            }
            assert!(Instant::now() < deadline, "still listed: {}", text(&r));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(cancelled.elapsed() < Duration::from_secs(30));
        w.assert_nothing_left("after a cancelled call");
        let long = spawn_sleep(&peer, 60);
        wait_for("the VM comes up", || running(&w)).await;
        let started = Instant::now();
        close(c).await;
        assert!(
            started.elapsed() < Duration::from_secs(50),
            "the server waited for the command instead of ending it"
        );
        long.abort();
        w.assert_nothing_left("after the client went away");

        // A client that stops the server with SIGTERM mid-run: the server ends the run and
        // waits for its VM to be deleted before it exits.
        let c = connect(&w, &w.project).await;
        let peer = c.service.peer().clone();
        let long = spawn_sleep(&peer, 60);
        wait_for("the VM comes up", || running(&w)).await;
        // SAFETY: a signal to the server this test started.
        assert_eq!(
            unsafe { libc::kill(c.pid as libc::pid_t, libc::SIGTERM) },
            0
        );
        let started = Instant::now();
        close(c).await;
        assert!(
            started.elapsed() < Duration::from_secs(50),
            "the server waited for the command"
        );
        long.abort();
    });
    w.assert_nothing_left("after the server was sent SIGTERM");
}

#[test]
fn a_sigkilled_server_leaves_no_vm_behind() {
    let w = World::new();
    w.setup();
    rt().block_on(async {
        let c = connect(&w, &w.project).await;
        let peer = c.service.peer().clone();
        // Longer than every wait below: only the death signal can end it in time.
        let long = spawn_sleep(&peer, 600);
        wait_for("the VM comes up", || running(&w)).await;
        let owner = w
            .journal()
            .iter()
            .find(|e| e["instance"].as_str().is_some_and(|n| n.contains(".run-")))
            .and_then(|e| e["owner"]["pid"].as_u64())
            .expect("the session's owner in the journal") as libc::pid_t;
        assert_ne!(owner, c.pid as libc::pid_t, "the run is a child process");
        // SAFETY: SIGKILL to the server this test started.
        assert_eq!(
            unsafe { libc::kill(c.pid as libc::pid_t, libc::SIGKILL) },
            0
        );
        let started = Instant::now();
        close(c).await;
        // Its child got SIGTERM from the kernel and deletes its VM.
        wait_for("the VM to be deleted", || !running(&w)).await;
        // SAFETY: signal 0 only asks whether the process exists.
        wait_for(
            "the run's claude-vm to exit",
            || unsafe { libc::kill(owner, 0) } != 0,
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the run was not ended by its parent's death"
        );
        long.abort();
    });
    // The next command finds nothing to reap.
    w.run(&["list"]).ok();
    w.assert_nothing_left("after SIGKILL");
}
