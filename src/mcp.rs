//! The pure side of `claude-vm mcp`: checking a tool's input, and turning what a child
//! claude-vm printed (claude's stdout, the `--json` events on stderr) into a tool's answer.
//! The server (`commands::mcp`) only spawns and forwards.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

/// The most of a child's stdout kept for an answer (claude's result, a command's output).
pub const STDOUT_MAX: usize = 1 << 20;
/// The most stderr lines (events) kept from a child.
pub const EVENTS_MAX: usize = 10_000;

/// A tool's input was refused: the message names the argument and the fix.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal(pub String);

/// The project directory a tool runs in: an existing directory, absolute or relative to
/// the server's working directory, resolved once (links followed here, and only here).
pub fn project_dir(project: &str, cwd: &Path) -> Result<PathBuf, Refusal> {
    if project.is_empty() {
        return Err(Refusal(
            "project is empty: pass the project's directory (absolute, or relative to the server's working directory)".into(),
        ));
    }
    let path = cwd.join(project);
    match std::fs::canonicalize(&path) {
        Ok(p) if p.is_dir() => Ok(p),
        Ok(_) => Err(Refusal(format!(
            "project {project:?} is not a directory: pass the project's directory"
        ))),
        Err(e) => Err(Refusal(format!(
            "project {project:?} cannot be used ({e}): pass an existing directory (absolute, or relative to {})",
            cwd.display()
        ))),
    }
}

/// A command for `exec`: at least one word, no empty program name, no NUL byte.
pub fn check_argv(argv: &[String]) -> Result<(), Refusal> {
    match argv.first() {
        None => Err(Refusal(
            "argv is empty: pass the command and its arguments, e.g. [\"make\", \"test\"]".into(),
        )),
        Some(p) if p.is_empty() => Err(Refusal(
            "argv[0] is empty: the first word is the program to run".into(),
        )),
        _ => match argv.iter().position(|a| a.contains('\0')) {
            Some(i) => Err(Refusal(format!("argv[{i}] contains a NUL byte"))),
            None => Ok(()),
        },
    }
}

/// Arguments for claude: no NUL byte (they travel through JSON and shell scripts).
pub fn check_claude_args(args: &[String], prompt: &str) -> Result<(), Refusal> {
    use crate::workflow::child;
    child::check_prompt(prompt)
        .and_then(|()| child::check_claude_args(args))
        .map_err(Refusal)
}

/// A session or VM name for `session_log`: the characters claude-vm's names are made of,
/// so it can neither leave the data directory nor match everything.
pub fn check_name(name: &str) -> Result<(), Refusal> {
    let ok = name.len() >= 3
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Refusal(format!(
            "name {name:?} is not a claude-vm VM or session name: use one from list_sessions (letters, digits, '-', '_', '.'; at least 3)"
        )))
    }
}

/// The events a child printed on stderr under `--json`; a line that is not an event (it
/// should not happen) is kept as a `guest.stderr`-like line, never dropped silently.
pub fn events(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(EVENTS_MAX)
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(v) if v.get("type").is_some_and(Value::is_string) => v,
            _ => json!({"type": "unparsed", "line": l}),
        })
        .collect()
}

fn of_type<'a>(evs: &'a [Value], ty: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    evs.iter().filter(move |e| e["type"] == ty)
}

/// The first `error` event: claude-vm's message and hint.
pub fn error_of(evs: &[Value]) -> Option<(String, Option<String>)> {
    let e = of_type(evs, "error").next()?;
    Some((
        e["message"].as_str().unwrap_or_default().to_owned(),
        e["hint"].as_str().map(str::to_owned),
    ))
}

/// What claude-vm said about the session: its VM, audit findings, warnings, errors, whether
/// the VM was deleted.
pub fn summary(evs: &[Value]) -> Value {
    let strip = |e: &Value| {
        let mut m: Map<String, Value> = e.as_object().cloned().unwrap_or_default();
        m.remove("v");
        m.remove("type");
        Value::Object(m)
    };
    let started = of_type(evs, "session.started").next();
    let ended = of_type(evs, "session.ended").next();
    json!({
        "vm": started.and_then(|e| e.get("vm")).cloned().unwrap_or(Value::Null),
        "template": started.and_then(|e| e.get("template")).cloned().unwrap_or(Value::Null),
        "policy": started.and_then(|e| e.get("policy")).cloned().unwrap_or(Value::Null),
        "warm": started.and_then(|e| e.get("warm")).cloned().unwrap_or(Value::Null),
        "vm_deleted": ended.and_then(|e| e.get("vm_deleted")).cloned().unwrap_or(Value::Null),
        "duration_ms": ended.and_then(|e| e.get("duration_ms")).cloned().unwrap_or(Value::Null),
        "audit_findings": of_type(evs, "audit.finding").map(strip).collect::<Vec<_>>(),
        "alerts": of_type(evs, "alert").map(strip).collect::<Vec<_>>(),
        "runtime_script_failures": of_type(evs, "runtime_script.failed").map(strip).collect::<Vec<_>>(),
        "network_denied": of_type(evs, "network.denied").map(strip).collect::<Vec<_>>(),
        "warnings": of_type(evs, "warning").filter_map(|e| e.get("message").cloned()).collect::<Vec<_>>(),
        "errors": of_type(evs, "error").map(strip).collect::<Vec<_>>(),
    })
}

/// The lines the guest wrote on stderr (a command's stderr under `exec`).
pub fn guest_stderr(evs: &[Value]) -> Vec<String> {
    evs.iter()
        .filter(|e| e["type"] == "guest.stderr" || e["type"] == "unparsed")
        .filter_map(|e| e["line"].as_str().map(str::to_owned))
        .collect()
}

/// claude's `--output-format json` result message, when stdout is one.
pub fn result_message(stdout: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(stdout.trim()).ok()?;
    (v["type"] == "result").then_some(v)
}

/// `run_agent`'s answer: (text for the agent, structured content, is_error).
pub fn agent_answer(exit: i32, stdout: &str, evs: &[Value]) -> (String, Value, bool) {
    let result = result_message(stdout);
    let field = |k: &str| {
        result
            .as_ref()
            .and_then(|r| r.get(k))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let claude_error = field("is_error").as_bool().unwrap_or(false);
    let mut text = match result.as_ref().and_then(|r| r["result"].as_str()) {
        Some(t) => t.to_owned(),
        None => stdout.to_owned(),
    };
    if let Some((message, hint)) = error_of(evs) {
        text.push_str(&format!("\nclaude-vm: error: {message}"));
        if let Some(h) = hint {
            text.push_str(&format!("\n  hint: {h}"));
        }
    }
    let summary = summary(evs);
    let findings = summary["audit_findings"].as_array().map_or(0, Vec::len);
    if findings > 0 {
        text.push_str(&format!(
            "\nclaude-vm: the audit found {findings} change(s) to what the host runs: see claude_vm.audit_findings"
        ));
    }
    let structured = json!({
        "exit_status": exit,
        "result": result.as_ref().map(|r| r["result"].clone()).unwrap_or(Value::Null),
        "is_error": claude_error,
        "session_id": field("session_id"),
        "total_cost_usd": field("total_cost_usd"),
        "num_turns": field("num_turns"),
        "stdout": if result.is_some() { Value::Null } else { Value::String(stdout.to_owned()) },
        "claude_vm": summary,
    });
    (text, structured, exit != 0 || claude_error)
}

/// `exec`'s answer.
pub fn exec_answer(exit: i32, stdout: &str, evs: &[Value]) -> (String, Value, bool) {
    let stderr = guest_stderr(evs);
    let mut text = format!("exit status {exit}\n--- stdout\n{stdout}");
    if !stderr.is_empty() {
        text.push_str(&format!("\n--- stderr\n{}", stderr.join("\n")));
    }
    if let Some((message, hint)) = error_of(evs) {
        text.push_str(&format!("\nclaude-vm: error: {message}"));
        if let Some(h) = hint {
            text.push_str(&format!("\n  hint: {h}"));
        }
    }
    let structured = json!({
        "exit_status": exit,
        "stdout": stdout,
        "stderr": stderr,
        "claude_vm": summary(evs),
    });
    (text, structured, exit != 0)
}

/// The most audit reports `session_log` returns (the newest), and bytes of each.
const REPORTS_MAX: usize = 50;
const REPORT_MAX: u64 = 64 << 10;
/// The most of a network log read (its last part), and of its lines returned.
const NETLOG_MAX: u64 = 1 << 20;
const NETLOG_LINES: usize = 1000;

/// What is known on disk about a session (or every session whose VM name contains
/// `name`): its audit reports and its network log. Files are read without following links,
/// bounded.
pub fn session_log(data_dir: &Path, name: &str) -> Value {
    let audit = data_dir.join(crate::filenames::AUDIT);
    let mut names: Vec<String> = std::fs::read_dir(&audit)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.ends_with(".txt") && !n.starts_with('.') && n.contains(name))
                .collect()
        })
        .unwrap_or_default();
    // Names start with the time they were written: newest last.
    names.sort();
    let skip = names.len().saturating_sub(REPORTS_MAX);
    let reports: Vec<Value> = names
        .iter()
        .skip(skip)
        .map(|n| {
            let path = audit.join(n);
            match read_nofollow(&path, REPORT_MAX, false) {
                Ok(text) => json!({"file": path, "text": text}),
                Err(e) => json!({"file": path, "unreadable": e.to_string()}),
            }
        })
        .collect();
    let net = data_dir
        .join(crate::filenames::NETWORK)
        .join(crate::filenames::network_log(name));
    let network = match read_nofollow(&net, NETLOG_MAX, true) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(NETLOG_LINES);
            let entries: Vec<Value> = lines[from..]
                .iter()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            json!({"file": net, "entries": entries, "truncated": from > 0})
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Null,
        Err(e) => json!({"file": net, "unreadable": e.to_string()}),
    };
    json!({
        "name": name,
        "audit_reports": reports,
        "network_log": network,
    })
}

/// A regular file's text, never through a link; at most `max` bytes (the last ones when
/// `tail`, starting at a line).
fn read_nofollow(path: &Path, max: u64, tail: bool) -> std::io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(crate::fsread::refused("it is not a regular file"));
    }
    let mut from = 0;
    if tail && meta.len() > max {
        from = meta.len() - max;
        file.seek(SeekFrom::Start(from))?;
    }
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes)?;
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if from > 0 {
        // Drop the partial first line.
        text = text
            .split_once('\n')
            .map(|(_, r)| r.to_owned())
            .unwrap_or_default();
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projects_must_be_existing_directories() {
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir(root.join("p")).unwrap();
        std::fs::write(root.join("f"), "x").unwrap();
        assert_eq!(project_dir("p", &root), Ok(root.join("p")));
        assert_eq!(
            project_dir(root.join("p").to_str().unwrap(), Path::new("/")),
            Ok(root.join("p"))
        );
        for bad in ["", "f", "missing", "p/../missing"] {
            let e = project_dir(bad, &root).unwrap_err();
            assert!(e.0.contains("project"), "{bad}: {e:?}");
        }
    }

    #[test]
    fn argv_and_names_are_checked() {
        assert!(check_argv(&[]).is_err());
        assert!(check_argv(&["".into()]).is_err());
        assert!(check_argv(&["ls".into(), "a\0b".into()]).is_err());
        assert!(check_argv(&["ls".into(), "".into()]).is_ok());
        for bad in ["", "..", ".x.run-1", "../../etc", "a/b", "ab", "x y z"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name("claude-vm-app-1234abcd.run-xyz").is_ok());
        assert!(check_claude_args(&[], " ").is_err());
        assert!(check_claude_args(&["a\0".into()], "p").is_err());
    }

    #[test]
    fn an_agent_answer_carries_the_result_the_findings_and_the_error() {
        let stdout = r#"{"type":"result","subtype":"success","is_error":false,"result":"done","session_id":"s1","num_turns":1,"total_cost_usd":0.5}"#;
        let stderr = [
            r#"{"v":1,"type":"session.started","project":"/p","template":"t","vm":"t.run-1","policy":"open","warm":false}"#,
            r#"{"v":1,"type":"audit.finding","change":"added","what":"/p/.git/hooks/x","reason":"git runs its hooks"}"#,
            r#"{"v":1,"type":"session.ended","exit_status":0,"duration_ms":5,"vm_deleted":true}"#,
        ]
        .join("\n");
        let (text, s, is_error) = agent_answer(0, stdout, &events(&stderr));
        assert!(!is_error);
        assert!(text.starts_with("done"), "{text}");
        assert!(text.contains("1 change(s)"), "{text}");
        assert_eq!(s["session_id"], "s1");
        assert_eq!(s["total_cost_usd"], 0.5);
        assert_eq!(s["claude_vm"]["vm"], "t.run-1");
        assert_eq!(s["claude_vm"]["vm_deleted"], true);
        assert_eq!(
            s["claude_vm"]["audit_findings"][0]["what"],
            "/p/.git/hooks/x"
        );
        let err = r#"{"v":1,"type":"error","message":"no template","hint":"run setup","kind":"failure","exit_code":1}"#;
        let (text, s, is_error) = agent_answer(1, "", &events(err));
        assert!(is_error);
        assert!(
            text.contains("no template") && text.contains("run setup"),
            "{text}"
        );
        assert_eq!(s["claude_vm"]["errors"][0]["hint"], "run setup");
        // A non-event line is kept, not dropped.
        assert_eq!(guest_stderr(&events("plain")), vec!["plain".to_owned()]);
    }

    #[test]
    fn session_logs_are_bounded_and_never_follow_links() {
        let d = tempfile::tempdir().unwrap();
        let audit = d.path().join("audit");
        let net = d.path().join("network");
        std::fs::create_dir_all(&audit).unwrap();
        std::fs::create_dir_all(&net).unwrap();
        std::fs::write(audit.join("100-t.run-1.txt"), "report one\n").unwrap();
        std::fs::write(audit.join("200-t.run-2.txt"), "report two\n").unwrap();
        std::fs::write(d.path().join("secret"), "secret\n").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret"), audit.join("300-t.run-1x.txt"))
            .unwrap();
        let mut big = String::new();
        for i in 0..50_000 {
            big.push_str(&format!("{{\"n\":{i}}}\n"));
        }
        std::fs::write(net.join("t.run-1.jsonl"), big).unwrap();
        let v = session_log(d.path(), "t.run-1");
        let reports = v["audit_reports"].as_array().unwrap();
        assert_eq!(reports.len(), 2, "{v}");
        assert_eq!(reports[0]["text"], "report one\n");
        assert!(
            reports[1]["unreadable"].is_string(),
            "the link is not followed"
        );
        assert!(!v.to_string().contains("secret\\n"));
        let entries = v["network_log"]["entries"].as_array().unwrap();
        assert_eq!(entries.len(), NETLOG_LINES);
        assert_eq!(entries.last().unwrap()["n"], 49_999);
        assert_eq!(v["network_log"]["truncated"], true);
        let none = session_log(d.path(), "t.run-9");
        assert_eq!(none["audit_reports"].as_array().unwrap().len(), 0);
        assert!(none["network_log"].is_null());
    }
}
