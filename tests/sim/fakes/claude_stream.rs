//! The fake claude's stream-json mode, what the Agent SDKs speak to `claude` (`--input-format
//! stream-json --output-format stream-json --verbose`): JSON lines in on stdin, JSON lines out
//! on stdout, until stdin ends. Control requests get a `control_response` (initialize,
//! interrupt and the SDKs' setters succeed; anything else is an error, as from the real one);
//! each user message is a turn: a `system` init before the first, then an `assistant` message
//! "fake reply to: TEXT" and a `result`. A turn whose text starts with `sim:hold` runs until
//! an `interrupt` arrives, which ends it with an `error_during_execution` result (user
//! messages sent meanwhile wait for it). The init also carries, under `sim`, the arguments
//! and the SDK variables claude got, for tests to check. The fields are those the SDKs'
//! message parsers require.

use std::io::{BufRead, Write};

use serde_json::{json, Value};

/// Control requests the fake answers with success (the SDKs' calls that need no reply data).
const ANSWERED: &[&str] = &[
    "initialize",
    "interrupt",
    "set_permission_mode",
    "set_model",
    "set_max_thinking_tokens",
    "mcp_status",
];

/// Whether these arguments ask for the stream-json protocol on both sides.
pub fn wanted(argv: &[String]) -> bool {
    let format = |flag: &str| {
        let eq = format!("{flag}=stream-json");
        argv.iter().enumerate().any(|(i, a)| {
            *a == eq || (a == flag && argv.get(i + 1).map(String::as_str) == Some("stream-json"))
        })
    };
    format("--input-format") && format("--output-format")
}

fn value_of(argv: &[String], flag: &str) -> Option<String> {
    let eq = format!("{flag}=");
    argv.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            argv.get(i + 1).cloned()
        } else {
            a.strip_prefix(&eq).map(str::to_owned)
        }
    })
}

/// The text of a user message: a string, or its text blocks joined.
fn text_of(message: &Value) -> String {
    match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

struct Session {
    argv: Vec<String>,
    id: String,
    model: String,
    version: String,
    turns: u64,
    serial: u64,
    started: bool,
}

impl Session {
    fn uuid(&mut self) -> String {
        self.serial += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.serial)
    }

    fn permission_mode(&self) -> String {
        if self
            .argv
            .iter()
            .any(|a| a == "--dangerously-skip-permissions")
        {
            return "bypassPermissions".into();
        }
        value_of(&self.argv, "--permission-mode").unwrap_or_else(|| "default".into())
    }

    fn init(&mut self) -> Value {
        let env: serde_json::Map<String, Value> = std::env::vars()
            .filter(|(k, _)| k.starts_with("CLAUDE_CODE_") || k.starts_with("CLAUDE_AGENT_"))
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        json!({
            "type": "system",
            "subtype": "init",
            "cwd": std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(),
            "session_id": self.id,
            "tools": ["Bash", "Edit", "Read"],
            "mcp_servers": [],
            "model": self.model,
            "permissionMode": self.permission_mode(),
            "slash_commands": [],
            "apiKeySource": "none",
            "claude_code_version": self.version,
            "output_style": "default",
            "agents": [],
            "skills": [],
            "plugins": [],
            "uuid": self.uuid(),
            "sim": { "argv": self.argv, "env": env },
        })
    }

    fn start_turn(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            out.push(self.init());
        }
        self.turns += 1;
        out
    }

    /// The end of a held turn, cut short by an interrupt.
    fn interrupted(&mut self) -> Value {
        json!({
            "type": "result",
            "subtype": "error_during_execution",
            "is_error": true,
            "duration_ms": 1,
            "duration_api_ms": 0,
            "num_turns": self.turns,
            "session_id": self.id,
            "total_cost_usd": 0.0,
            "usage": {"input_tokens": 0, "output_tokens": 0},
            "modelUsage": {},
            "permission_denials": [],
            "uuid": self.uuid(),
        })
    }

    fn turn(&mut self, text: &str) -> Vec<Value> {
        let mut out = self.start_turn();
        let reply = format!("fake reply to: {text}");
        let usage = json!({"input_tokens": 3, "output_tokens": 5});
        let id = format!("msg_fake_{}", self.turns);
        let uuid = self.uuid();
        out.push(json!({
            "type": "assistant",
            "message": {
                "id": id, "type": "message", "role": "assistant", "model": self.model,
                "content": [{"type": "text", "text": reply}],
                "stop_reason": "end_turn", "stop_sequence": null, "usage": usage,
            },
            "parent_tool_use_id": null,
            "session_id": self.id,
            "uuid": uuid,
        }));
        let uuid = self.uuid();
        out.push(json!({
            "type": "result",
            "subtype": "success",
            "is_error": false,
            "duration_ms": 1,
            "duration_api_ms": 1,
            "num_turns": self.turns,
            "result": reply,
            "stop_reason": "end_turn",
            "session_id": self.id,
            "total_cost_usd": 0.0,
            "usage": usage,
            "modelUsage": {},
            "permission_denials": [],
            "uuid": uuid,
        }));
        out
    }
}

fn control_response(request: &Value) -> Value {
    let id = request["request_id"].clone();
    let subtype = request["request"]["subtype"].as_str().unwrap_or_default();
    if !ANSWERED.contains(&subtype) {
        return json!({"type": "control_response", "response": {
            "subtype": "error", "request_id": id,
            "error": format!("claude (simulator): unsupported control request {subtype:?}"),
        }});
    }
    let response = match subtype {
        "initialize" => json!({
            "commands": [], "agents": [], "models": [], "account": {},
            "output_style": "default", "available_output_styles": ["default"],
        }),
        "mcp_status" => json!({"mcpServers": []}),
        _ => json!({}),
    };
    json!({"type": "control_response", "response": {
        "subtype": "success", "request_id": id, "response": response,
    }})
}

fn session(argv: Vec<String>, version: String) -> Session {
    let id = value_of(&argv, "--resume")
        .or_else(|| value_of(&argv, "--session-id"))
        .unwrap_or_else(|| format!("5e551040-0000-4000-8000-{:012x}", std::process::id()));
    let model = value_of(&argv, "--model").unwrap_or_else(|| "claude-sim-1".into());
    Session {
        argv,
        id,
        model,
        version,
        turns: 0,
        serial: 0,
        started: false,
    }
}

/// `-p` (`--print`) with `--output-format json` or `stream-json` (stdin not stream-json): the
/// output format, if these arguments ask for one.
pub fn print_format(argv: &[String]) -> Option<&'static str> {
    if !argv.iter().any(|a| a == "-p" || a == "--print") {
        return None;
    }
    match value_of(argv, "--output-format").as_deref() {
        Some("json") => Some("json"),
        Some("stream-json") => Some("stream-json"),
        _ => None,
    }
}

/// What a print-mode turn costs.
const PRINT_COST_USD: f64 = 0.0125;

/// One print-mode turn, as the real one answers `-p PROMPT --output-format json` (the
/// `result` object alone) or `stream-json --verbose` (init, assistant, result lines). The
/// prompt is the argument after `-p`; the real claude, too, requires `--verbose` for
/// stream-json in print mode.
pub fn print(argv: Vec<String>, version: String, format: &str) -> i32 {
    let prompt = argv
        .iter()
        .position(|a| a == "-p" || a == "--print")
        .and_then(|i| argv.get(i + 1))
        .filter(|a| !a.starts_with('-'))
        .cloned()
        .unwrap_or_default();
    if format == "stream-json" && !argv.iter().any(|a| a == "--verbose") {
        crate::output::stderr(
            "Error: When using --print, --output-format=stream-json requires --verbose\n",
        );
        return 1;
    }
    let mut s = session(argv, version);
    let mut lines = s.turn(&prompt);
    // A cost that is not the default, so a reader that drops it shows.
    for m in lines.iter_mut().filter(|m| m["type"] == "result") {
        m["total_cost_usd"] = json!(PRINT_COST_USD);
    }
    if format == "json" {
        lines.retain(|m| m["type"] == "result");
    }
    let mut out = std::io::stdout().lock();
    for m in lines {
        let text = serde_json::to_string(&m).unwrap_or_default();
        if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
            return 1;
        }
    }
    // As in the report mode: `--sim-sleep S` after the output, then exit `--sim-exit N`.
    let sleep = value_of(&s.argv, "--sim-sleep").and_then(|v| v.parse::<f64>().ok());
    if let Some(secs) = sleep.filter(|s| s.is_finite() && *s > 0.0) {
        std::thread::sleep(std::time::Duration::from_secs_f64(secs));
    }
    value_of(&s.argv, "--sim-exit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Runs the protocol until stdin ends; returns the exit status.
pub fn main(argv: Vec<String>, version: String) -> i32 {
    let mut s = session(argv, version);
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut holding = false;
    let mut waiting: Vec<Value> = Vec::new();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { return 1 };
        if line.trim().is_empty() {
            continue;
        }
        let msg: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                crate::output::stderr(&format!(
                    "claude (simulator): stdin is not stream-json: {e}\n"
                ));
                return 1;
            }
        };
        let interrupt = msg["request"]["subtype"] == "interrupt";
        let mut replies = Vec::new();
        match msg["type"].as_str() {
            Some("control_request") => {
                replies.push(control_response(&msg));
                if interrupt && holding {
                    holding = false;
                    replies.push(s.interrupted());
                    for m in std::mem::take(&mut waiting) {
                        replies.extend(s.turn(&text_of(&m["message"])));
                    }
                }
            }
            Some("user") if holding => waiting.push(msg),
            Some("user") => {
                let text = text_of(&msg["message"]);
                if text.starts_with("sim:hold") {
                    holding = true;
                    replies.extend(s.start_turn());
                } else {
                    replies.extend(s.turn(&text));
                }
            }
            // Answers to our requests, keep-alives, environment updates: nothing to say.
            _ => {}
        }
        for r in replies {
            let text = serde_json::to_string(&r).unwrap_or_default();
            if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
                return 1;
            }
        }
    }
    0
}
