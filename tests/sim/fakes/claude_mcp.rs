//! `claude mcp add|add-json|list|get|remove`, stored where Claude Code
//! stores them:
//!
//! | scope | file | key |
//! |---|---|---|
//! | user | `~/.claude.json` (`$CLAUDE_CONFIG_DIR/.claude.json`) | `mcpServers` |
//! | local (default) | the same file | `projects[CWD].mcpServers` |
//! | project | `./.mcp.json` | `mcpServers` |
//!
//! The fake never starts a server, so `list` and `get` report every one as
//! failing to connect.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::commander::{self, Opt};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Scope {
    Local,
    Project,
    User,
}

const SCOPES: [Scope; 3] = [Scope::Local, Scope::Project, Scope::User];

impl Scope {
    fn parse(s: &str) -> Result<Scope, String> {
        match s {
            "local" => Ok(Scope::Local),
            "project" => Ok(Scope::Project),
            "user" => Ok(Scope::User),
            other => Err(format!(
                "Invalid scope: {other}. Must be one of: local, project, user"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scope::Local => "local",
            Scope::Project => "project",
            Scope::User => "user",
        }
    }

    fn described(self) -> &'static str {
        match self {
            Scope::Local => "Local config (private to you in this project)",
            Scope::Project => "Project config (shared via .mcp.json)",
            Scope::User => "User config (available in all your projects)",
        }
    }
}

/// Where one scope's servers live.
struct Store {
    file: PathBuf,
    /// Key path of the `mcpServers` object inside the file.
    keys: Vec<String>,
    cwd: String,
}

fn cwd() -> String {
    std::env::current_dir()
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Claude Code's global config file.
pub fn global_config() -> PathBuf {
    match std::env::var_os("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join(".claude.json"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".claude.json"),
    }
}

fn store(scope: Scope) -> Store {
    let cwd = cwd();
    match scope {
        Scope::User => Store {
            file: global_config(),
            keys: vec!["mcpServers".into()],
            cwd,
        },
        Scope::Local => Store {
            file: global_config(),
            keys: vec!["projects".into(), cwd.clone(), "mcpServers".into()],
            cwd,
        },
        Scope::Project => Store {
            file: Path::new(&cwd).join(".mcp.json"),
            keys: vec!["mcpServers".into()],
            cwd,
        },
    }
}

fn read_json(file: &Path) -> Result<Value, String> {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "Error reading {}: the file is not valid JSON ({e})",
                file.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        Err(e) => Err(format!("Error reading {}: {e}", file.display())),
    }
}

fn write_json(file: &Path, doc: &Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(doc).map_err(|e| e.to_string())? + "\n";
    std::fs::write(file, text).map_err(|e| format!("Error writing {}: {e}", file.display()))
}

impl Store {
    fn servers(&self) -> Result<Map<String, Value>, String> {
        let doc = read_json(&self.file)?;
        let mut at = &doc;
        for k in &self.keys {
            match at.get(k) {
                Some(v) => at = v,
                None => return Ok(Map::new()),
            }
        }
        Ok(at.as_object().cloned().unwrap_or_default())
    }

    fn save(&self, servers: Map<String, Value>) -> Result<(), String> {
        let mut doc = read_json(&self.file)?;
        let mut at = &mut doc;
        for k in &self.keys {
            if !at.is_object() {
                *at = json!({});
            }
            let obj = at.as_object_mut().ok_or("not an object")?;
            at = obj.entry(k.clone()).or_insert_with(|| json!({}));
        }
        *at = Value::Object(servers);
        write_json(&self.file, &doc)
    }

    fn modified_line(&self, scope: Scope) -> String {
        match scope {
            Scope::Local => format!(
                "File modified: {} [project: {}]",
                self.file.display(),
                self.cwd
            ),
            _ => format!("File modified: {}", self.file.display()),
        }
    }
}

fn out(s: &str) {
    crate::output::stdout_lossy(&format!("{s}\n"));
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

const ADD_OPTS: &[Opt] = &[
    Opt {
        short: Some('s'),
        long: "scope",
        value: Some("scope"),
    },
    Opt {
        short: Some('t'),
        long: "transport",
        value: Some("transport"),
    },
    Opt {
        short: Some('e'),
        long: "env",
        value: Some("env..."),
    },
    Opt {
        short: Some('H'),
        long: "header",
        value: Some("header..."),
    },
];

const SCOPE_OPT: &[Opt] = &[Opt {
    short: Some('s'),
    long: "scope",
    value: Some("scope"),
}];

fn scope_of(p: &commander::Parsed) -> Result<Option<Scope>, String> {
    p.value("scope").map(|s| Scope::parse(&s)).transpose()
}

fn operand<'a>(p: &'a commander::Parsed, i: usize, name: &str) -> Result<&'a str, String> {
    p.operands
        .get(i)
        .map(String::as_str)
        .ok_or_else(|| format!("error: missing required argument '{name}'"))
}

fn add_server(scope: Scope, name: &str, server: Value) -> Result<Store, String> {
    if !valid_name(name) {
        return Err(format!(
            "Invalid name {name}. Names can only contain letters, numbers, hyphens, and underscores."
        ));
    }
    let st = store(scope);
    let mut servers = st.servers()?;
    if servers.contains_key(name) {
        return Err(format!(
            "MCP server {name} already exists in {} config",
            scope.name()
        ));
    }
    servers.insert(name.to_string(), server);
    st.save(servers)?;
    Ok(st)
}

fn add(args: &[String]) -> Result<(), String> {
    let p = commander::parse(args, ADD_OPTS)?;
    let name = operand(&p, 0, "name")?.to_string();
    let target = operand(&p, 1, "commandOrUrl")?.to_string();
    let rest: Vec<String> = p.operands[2..].to_vec();
    let scope = scope_of(&p)?.unwrap_or(Scope::Local);
    let transport = p.value("transport").unwrap_or_else(|| "stdio".into());
    let mut env = Map::new();
    for kv in p.values("env") {
        match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                env.insert(k.to_string(), json!(v));
            }
            _ => {
                return Err(format!(
                    "Invalid environment variable format: {kv}, environment variables should be added as: -e KEY1=value1 -e KEY2=value2"
                ))
            }
        }
    }
    let mut headers = Map::new();
    for h in p.values("header") {
        match h.split_once(':') {
            Some((k, v)) if !k.trim().is_empty() => {
                headers.insert(k.trim().to_string(), json!(v.trim()));
            }
            _ => {
                return Err(format!(
                    "Invalid header format: \"{h}\". Expected format: \"Header-Name: value\""
                ))
            }
        }
    }
    let (server, said) = match transport.as_str() {
        "stdio" => {
            let shown = std::iter::once(target.clone())
                .chain(rest.iter().cloned())
                .collect::<Vec<_>>()
                .join(" ");
            (
                json!({"type": "stdio", "command": target, "args": rest, "env": env}),
                format!("Added stdio MCP server {name} with command: {shown}"),
            )
        }
        "sse" | "http" => {
            let mut server = json!({"type": transport, "url": target});
            if !headers.is_empty() {
                server["headers"] = Value::Object(headers);
            }
            let kind = transport.to_uppercase();
            (
                server,
                format!("Added {kind} MCP server {name} with URL: {target}"),
            )
        }
        other => {
            return Err(format!(
                "Invalid transport type: {other}. Must be one of: stdio, sse, http"
            ))
        }
    };
    let st = add_server(scope, &name, server)?;
    out(&format!("{said} to {} config", scope.name()));
    out(&st.modified_line(scope));
    Ok(())
}

fn add_json(args: &[String]) -> Result<(), String> {
    let p = commander::parse(args, SCOPE_OPT)?;
    let name = operand(&p, 0, "name")?.to_string();
    let text = operand(&p, 1, "json")?;
    let scope = scope_of(&p)?.unwrap_or(Scope::Local);
    let mut server: Value = serde_json::from_str(text).map_err(|e| format!("Invalid JSON: {e}"))?;
    let kind = match (server.get("type").and_then(Value::as_str), server.get("command"), server.get("url")) {
        (Some(t @ ("stdio" | "sse" | "http")), _, _) => t.to_string(),
        (None, Some(Value::String(_)), _) => "stdio".to_string(),
        _ => return Err("Invalid configuration: expected a stdio server with \"command\" or an sse/http server with \"url\"".into()),
    };
    if kind == "stdio" && !server.get("command").is_some_and(Value::is_string) {
        return Err("Invalid configuration: command: Required".into());
    }
    if kind != "stdio" && !server.get("url").is_some_and(Value::is_string) {
        return Err("Invalid configuration: url: Required".into());
    }
    server["type"] = json!(kind);
    add_server(scope, &name, server)?;
    out(&format!(
        "Added {kind} MCP server {name} to {} config",
        scope.name()
    ));
    Ok(())
}

/// Every server visible here, in Claude Code's precedence (local, project, user).
fn all_servers() -> Result<Vec<(Scope, String, Value)>, String> {
    let mut all = Vec::new();
    for scope in SCOPES {
        for (name, server) in store(scope).servers()? {
            all.push((scope, name, server));
        }
    }
    Ok(all)
}

fn summary(server: &Value) -> String {
    let s = |k: &str| {
        server
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match server
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("stdio")
    {
        "stdio" => {
            let args: Vec<String> = server
                .get("args")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            std::iter::once(s("command"))
                .chain(args)
                .collect::<Vec<_>>()
                .join(" ")
        }
        kind => format!("{} ({})", s("url"), kind.to_uppercase()),
    }
}

const NOT_RUNNING: &str = "✗ Failed to connect";

fn list() -> Result<(), String> {
    let all = all_servers()?;
    if all.is_empty() {
        out("No MCP servers configured. Use `claude mcp add` to add a server.");
        return Ok(());
    }
    out("Checking MCP server health...\n");
    let mut seen: Vec<String> = Vec::new();
    for (_, name, server) in all {
        if seen.contains(&name) {
            continue;
        }
        out(&format!("{name}: {} - {NOT_RUNNING}", summary(&server)));
        seen.push(name);
    }
    Ok(())
}

fn get(args: &[String]) -> Result<(), String> {
    let p = commander::parse(args, &[])?;
    let name = operand(&p, 0, "name")?;
    let found = all_servers()?.into_iter().find(|(_, n, _)| n == name);
    let Some((scope, _, server)) = found else {
        return Err(format!("No MCP server found with name: {name}"));
    };
    let kind = server
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("stdio");
    out(&format!("{name}:"));
    out(&format!("  Scope: {}", scope.described()));
    out(&format!("  Status: {NOT_RUNNING}"));
    out(&format!("  Type: {kind}"));
    if kind == "stdio" {
        let text = |k: &str| server.get(k).and_then(Value::as_str).unwrap_or_default();
        out(&format!("  Command: {}", text("command")));
        let args: Vec<&str> = server
            .get("args")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out(&format!("  Args: {}", args.join(" ")));
        if let Some(env) = server
            .get("env")
            .and_then(Value::as_object)
            .filter(|e| !e.is_empty())
        {
            out("  Environment:");
            for (k, v) in env {
                out(&format!("    {k}={}", v.as_str().unwrap_or_default()));
            }
        }
    } else {
        out(&format!(
            "  URL: {}",
            server
                .get("url")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ));
        if let Some(headers) = server.get("headers").and_then(Value::as_object) {
            out("  Headers:");
            for (k, v) in headers {
                out(&format!("    {k}: {}", v.as_str().unwrap_or_default()));
            }
        }
    }
    out(&format!(
        "\nTo remove this server, run: claude mcp remove \"{name}\" -s {}",
        scope.name()
    ));
    Ok(())
}

fn remove(args: &[String]) -> Result<(), String> {
    let p = commander::parse(args, SCOPE_OPT)?;
    let name = operand(&p, 0, "name")?;
    let scopes: Vec<Scope> = match scope_of(&p)? {
        Some(s) => vec![s],
        None => SCOPES.to_vec(),
    };
    let mut holders = Vec::new();
    for scope in scopes {
        if store(scope).servers()?.contains_key(name) {
            holders.push(scope);
        }
    }
    match holders.as_slice() {
        [] => match scope_of(&p)? {
            Some(s) => Err(format!(
                "No {} MCP server found with name: {name}",
                s.name()
            )),
            None => Err(format!("No MCP server found with name: \"{name}\"")),
        },
        [scope] => {
            let st = store(*scope);
            let mut servers = st.servers()?;
            servers.remove(name);
            st.save(servers)?;
            out(&format!(
                "Removed MCP server {name} from {} config",
                scope.name()
            ));
            out(&st.modified_line(*scope));
            Ok(())
        }
        many => {
            let mut msg = format!("MCP server \"{name}\" exists in multiple scopes:");
            for s in many {
                msg.push_str(&format!("\n  - {}", s.described()));
            }
            msg.push_str("\n\nTo remove from a specific scope, use:");
            for s in many {
                msg.push_str(&format!("\n  claude mcp remove \"{name}\" -s {}", s.name()));
            }
            Err(msg)
        }
    }
}

const USAGE: &str = "Usage: claude mcp [options] [command]\n\nConfigure and manage MCP servers\n\nCommands:\n  add [options] <name> <commandOrUrl> [args...]\n  add-json [options] <name> <json>\n  get <name>\n  list\n  remove [options] <name>\n";

pub fn main(args: &[String]) -> i32 {
    let (sub, rest) = match args.split_first() {
        Some((s, r)) => (s.as_str(), r),
        None => {
            crate::output::stderr(USAGE);
            return 1;
        }
    };
    let result = match sub {
        "add" => add(rest),
        "add-json" => add_json(rest),
        "list" => list(),
        "get" => get(rest),
        "remove" => remove(rest),
        "-h" | "--help" | "help" => {
            out(USAGE.trim_end());
            return 0;
        }
        "serve" | "add-from-claude-desktop" | "reset-project-choices" | "login" | "logout" => Err(
            format!("claude mcp {sub} is not supported by the simulator"),
        ),
        other => Err(format!("error: unknown command '{other}'")),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            crate::output::stderr(&format!("{e}\n"));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_and_names() {
        assert_eq!(
            summary(&json!({"type": "stdio", "command": "npx", "args": ["-y", "x"]})),
            "npx -y x"
        );
        assert_eq!(
            summary(&json!({"type": "http", "url": "https://h/mcp"})),
            "https://h/mcp (HTTP)"
        );
        assert!(valid_name("chrome-devtools_2"));
        assert!(!valid_name("a b") && !valid_name("") && !valid_name("x.y"));
        assert!(Scope::parse("global")
            .unwrap_err()
            .contains("Invalid scope: global"));
    }
}
