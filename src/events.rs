//! claude-vm's own messages as data: what `--json` prints on stderr, one object per line
//! (`docs/events.md` is the schema). The terminal's lines are another rendering of the same
//! events; claude's output never goes through here.

use serde::Serialize;

/// The schema version every line carries as `"v"`.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum Event {
    /// A session's VM is about to run claude (or the shell, or the command).
    #[serde(rename = "session.started")]
    SessionStarted {
        project: String,
        template: String,
        vm: String,
        /// The network policy the session runs under.
        policy: String,
        /// A pre-booted VM from the warm pool was used.
        warm: bool,
    },
    #[serde(rename = "step.started")]
    StepStarted { step: String },
    #[serde(rename = "step.finished")]
    StepFinished { step: String, duration_ms: u64 },
    /// A step that ended in an error (the `error` event says which).
    #[serde(rename = "step.failed")]
    StepFailed { step: String, duration_ms: u64 },
    #[serde(rename = "runtime_script.failed")]
    RuntimeScriptFailed { script: String, status: i32 },
    /// One change to what the host runs, found by the audit after a session.
    #[serde(rename = "audit.finding")]
    AuditFinding {
        /// `added`, `changed`, `removed` or `replaced`.
        change: String,
        what: String,
        reason: String,
    },
    /// A line the guest (or Lima) wrote on stderr during a session.
    #[serde(rename = "guest.stderr")]
    GuestStderr { line: String },
    #[serde(rename = "info")]
    Info { message: String },
    #[serde(rename = "warning")]
    Warning { message: String },
    /// A warning that cannot be silenced (the audit's headline and its lines).
    #[serde(rename = "alert")]
    Alert { message: String, lines: Vec<String> },
    #[serde(rename = "error")]
    Error {
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        hint: Option<String>,
        /// `usage` (exit 2: flags, configuration, paths) or `failure` (exit 1).
        kind: String,
        exit_code: i32,
    },
    /// A request of the session's guest the network policy refused (one per request, from
    /// the proxy's log when the session ends).
    #[serde(rename = "network.denied")]
    NetworkDenied {
        host: String,
        port: u16,
        /// `CONNECT`, or the HTTP method of a plain request.
        method: String,
        /// The rule that refused it (`not in allow`, `deny *.evil.example`, `policy offline`, ...).
        rule: String,
        /// When (RFC 3339, UTC).
        time: String,
    },
    #[serde(rename = "session.ended")]
    SessionEnded {
        exit_status: i32,
        duration_ms: u64,
        vm_deleted: bool,
    },
}

#[derive(Serialize)]
struct Line<'a> {
    v: u32,
    #[serde(flatten)]
    event: &'a Event,
}

impl Event {
    /// The event as one JSON line (without the newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(&Line {
            v: VERSION,
            event: self,
        })
        .unwrap_or_else(|e| {
            format!("{{\"v\":{VERSION},\"type\":\"error\",\"message\":\"cannot encode an event: {e}\",\"kind\":\"failure\",\"exit_code\":1}}")
        })
    }
}

/// What the session script prints when a runtime script fails (`script::session`), read
/// back from the guest's stderr: (script, status).
pub fn runtime_script_failure(line: &str) -> Option<(String, i32)> {
    let rest = line.strip_prefix("claude-vm: runtime script ")?;
    let (script, status) = rest
        .rsplit_once(" exited with status ")
        .or_else(|| rest.rsplit_once(" failed with status "))?;
    Some((script.to_owned(), status.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// One of every event the code can emit: a new variant fails to compile here until it is
    /// added, and then the schema check below covers it.
    fn every_event() -> Vec<Event> {
        let all = vec![
            Event::SessionStarted {
                project: "/p".into(),
                template: "t".into(),
                vm: "t.run-1".into(),
                policy: "open".into(),
                warm: false,
            },
            Event::StepStarted { step: "s".into() },
            Event::StepFinished {
                step: "s".into(),
                duration_ms: 1,
            },
            Event::StepFailed {
                step: "s".into(),
                duration_ms: 1,
            },
            Event::RuntimeScriptFailed {
                script: "./x.sh".into(),
                status: 3,
            },
            Event::AuditFinding {
                change: "added".into(),
                what: "/p/.git/hooks/pre-commit".into(),
                reason: "git runs its hooks".into(),
            },
            Event::GuestStderr { line: "l".into() },
            Event::Info {
                message: "m".into(),
            },
            Event::Warning {
                message: "m".into(),
            },
            Event::Alert {
                message: "m".into(),
                lines: vec!["l".into()],
            },
            Event::Error {
                message: "m".into(),
                hint: Some("h".into()),
                kind: "usage".into(),
                exit_code: 2,
            },
            Event::NetworkDenied {
                host: "evil.example".into(),
                port: 443,
                method: "CONNECT".into(),
                rule: "not in allow".into(),
                time: "2026-01-01T00:00:00.000Z".into(),
            },
            Event::SessionEnded {
                exit_status: 0,
                duration_ms: 5,
                vm_deleted: true,
            },
        ];
        for e in &all {
            // Exhaustive: adding a variant means adding it above.
            match e {
                Event::SessionStarted { .. }
                | Event::StepStarted { .. }
                | Event::StepFinished { .. }
                | Event::StepFailed { .. }
                | Event::RuntimeScriptFailed { .. }
                | Event::AuditFinding { .. }
                | Event::GuestStderr { .. }
                | Event::Info { .. }
                | Event::Warning { .. }
                | Event::Alert { .. }
                | Event::Error { .. }
                | Event::NetworkDenied { .. }
                | Event::SessionEnded { .. } => {}
            }
        }
        all
    }

    /// `docs/events.md`'s table: type -> documented fields.
    fn schema() -> Vec<(String, Vec<String>)> {
        let text = include_str!("../docs/events.md");
        text.lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let ty = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                let fields = cells
                    .get(2)?
                    .split(',')
                    .filter_map(|f| {
                        let f = f.trim().strip_prefix('`')?;
                        Some(f.split('`').next()?.to_owned())
                    })
                    .collect();
                Some((ty.to_owned(), fields))
            })
            .collect()
    }

    #[test]
    fn every_event_is_documented_with_exactly_its_fields() {
        let schema = schema();
        assert!(!schema.is_empty(), "docs/events.md has no table");
        for e in every_event() {
            let v: Value = serde_json::from_str(&e.to_json_line()).unwrap();
            assert_eq!(v["v"], 1);
            let ty = v["type"].as_str().unwrap();
            let (_, documented) = schema
                .iter()
                .find(|(t, _)| t == ty)
                .unwrap_or_else(|| panic!("event type {ty} is not in docs/events.md"));
            let mut have: Vec<String> = v
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "v" && *k != "type")
                .cloned()
                .collect();
            have.sort();
            let mut want = documented.clone();
            want.sort();
            assert_eq!(have, want, "fields of {ty}");
        }
        let emitted: Vec<String> = every_event()
            .iter()
            .map(|e| {
                let v: Value = serde_json::from_str(&e.to_json_line()).unwrap();
                v["type"].as_str().unwrap().to_owned()
            })
            .collect();
        for (ty, _) in &schema {
            assert!(
                emitted.contains(ty),
                "docs/events.md lists {ty}, which nothing emits"
            );
        }
    }

    #[test]
    fn runtime_script_failures_are_read_back_from_the_guest() {
        assert_eq!(
            runtime_script_failure(
                "claude-vm: runtime script ./.claude-vm.runtime.sh exited with status 4"
            ),
            Some(("./.claude-vm.runtime.sh".into(), 4))
        );
        assert_eq!(
            runtime_script_failure("claude-vm: runtime script tool node failed with status 1"),
            Some(("tool node".into(), 1))
        );
        assert_eq!(runtime_script_failure("claude-vm: something else"), None);
        assert_eq!(
            runtime_script_failure("runtime script x exited with status 1"),
            None
        );
    }
}
