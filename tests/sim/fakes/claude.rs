//! Fake Claude Code. `claude --version` reports the installed version,
//! `claude mcp ...` and `claude auth ...` act like the real subcommands
//! (`claude_mcp.rs`, `claude_auth.rs`). Anything else reports how it was
//! run as one JSON line on stdout, so tests can check the arguments,
//! directory, environment and user that a program gave it. `--sim-exit N`,
//! `--sim-sleep S`, `--sim-stdin` and `--sim-keys` steer it (stdin is read
//! first, then the line is printed, then it sleeps, then it exits).
//! `--sim-keys` reads keystrokes the way Claude Code's interactive UI does: a
//! terminal on stdin goes into raw mode (so Ctrl-C arrives as the byte 0x03,
//! not as SIGINT), "reading keys" is announced on stderr, and bytes are read
//! up to a `q` (or EOF). With `--input-format stream-json --output-format stream-json` it
//! speaks the Agent SDKs' protocol instead (`claude_stream.rs`). With `-p --output-format json`
//! the report is the `result` text of a result message shaped like the real one.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde::Serialize;

use crate::claude_install;

#[derive(Serialize)]
struct Report {
    fake: &'static str,
    argv: Vec<String>,
    cwd: String,
    env: BTreeMap<String, String>,
    uid: u32,
    /// stdin is a terminal.
    tty: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stdin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keys: Option<String>,
}

/// Reads keystrokes up to `q`, in raw mode when stdin is a terminal.
fn read_keys() -> String {
    // SAFETY: termios is plain data; the calls only touch descriptor 0.
    let saved = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        (libc::tcgetattr(0, &mut t) == 0).then(|| {
            let mut raw = t;
            libc::cfmakeraw(&mut raw);
            libc::tcsetattr(0, libc::TCSANOW, &raw);
            t
        })
    };
    crate::output::stderr("claude (simulator): reading keys, q ends\n");
    let mut keys = Vec::new();
    let mut byte = [0u8; 1];
    let mut stdin = std::io::stdin().lock();
    while matches!(stdin.read(&mut byte), Ok(1)) {
        keys.push(byte[0]);
        if byte[0] == b'q' {
            break;
        }
    }
    if let Some(t) = saved {
        // SAFETY: restoring the mode read above.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
    }
    String::from_utf8_lossy(&keys).into_owned()
}

fn lossy(s: &std::ffi::OsStr) -> String {
    String::from_utf8_lossy(s.as_bytes()).into_owned()
}

fn value_after(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

pub fn main(argv0: &Path, args: &[OsString]) -> i32 {
    let argv: Vec<String> = args.iter().map(|a| lossy(a)).collect();
    match argv.first().map(String::as_str) {
        Some("--version" | "-v") => {
            let version = claude_install::installed_version(argv0)
                .unwrap_or_else(|| claude_install::LATEST.to_string());
            crate::output::stdout_lossy(&format!("{version} (Claude Code)\n"));
            return 0;
        }
        Some("mcp") => return crate::claude_mcp::main(&argv[1..]),
        Some("auth") => return crate::claude_auth::main(&argv[1..]),
        _ => {}
    }
    if crate::claude_stream::wanted(&argv) {
        let version = claude_install::installed_version(argv0)
            .unwrap_or_else(|| claude_install::LATEST.to_string());
        return crate::claude_stream::main(argv, version);
    }
    let exit = match value_after(&argv, "--sim-exit").map(|v| v.parse::<i32>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            crate::output::stderr("claude (simulator): --sim-exit needs an integer\n");
            return 2;
        }
    };
    let sleep = match value_after(&argv, "--sim-sleep").map(|v| v.parse::<f64>()) {
        None => 0.0,
        Some(Ok(s)) if s.is_finite() && s >= 0.0 => s,
        Some(_) => {
            crate::output::stderr("claude (simulator): --sim-sleep needs a number of seconds\n");
            return 2;
        }
    };
    let tty = crate::sys::isatty(0);
    let keys = argv.iter().any(|a| a == "--sim-keys").then(read_keys);
    let stdin = if argv.iter().any(|a| a == "--sim-stdin") {
        let mut buf = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut buf);
        Some(String::from_utf8_lossy(&buf).into_owned())
    } else {
        None
    };
    let report = Report {
        fake: "claude",
        argv,
        cwd: std::env::current_dir()
            .map(|d| lossy(d.as_os_str()))
            .unwrap_or_default(),
        env: std::env::vars_os()
            .map(|(k, v)| (lossy(&k), lossy(&v)))
            .collect(),
        uid: crate::sys::getuid(),
        tty,
        stdin,
        keys,
    };
    let mut line = serde_json::to_string(&report).unwrap_or_default();
    if print_json(&report.argv) {
        line = result_message(&line, exit);
    }
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
        return 1;
    }
    drop(out);
    if sleep > 0.0 {
        std::thread::sleep(std::time::Duration::from_secs_f64(sleep));
    }
    exit
}

/// `-p`/`--print` with `--output-format json`: the real claude prints one result message.
fn print_json(argv: &[String]) -> bool {
    argv.iter().any(|a| a == "-p" || a == "--print")
        && value_after(argv, "--output-format").as_deref() == Some("json")
}

/// The result message real Claude Code prints for `-p --output-format json`, carrying `text`.
fn result_message(text: &str, exit: i32) -> String {
    serde_json::json!({
        "type": "result",
        "subtype": if exit == 0 { "success" } else { "error_during_execution" },
        "is_error": exit != 0,
        "duration_ms": 1,
        "duration_api_ms": 1,
        "num_turns": 1,
        "result": text,
        "session_id": "00000000-0000-4000-8000-000000000001",
        "total_cost_usd": 0.0123,
    })
    .to_string()
}
