//! The latency model: what each `limactl` call costs on a real Lima, in seconds.
//!
//! The simulator answers in milliseconds; real Lima boots a VM. The figures below are the
//! issue's, checked against Lima v2's source (see DEVELOPMENT.md, "Performance"); they can be
//! replaced with `CLAUDE_VM_BENCH_MODEL="start=20,shell=0.5"` (figures from your own machine).

use std::fmt;

/// Seconds per call kind.
pub struct Model {
    figures: Vec<(&'static str, f64)>,
}

/// The call kinds the model knows, with their default figures and why.
const DEFAULTS: &[(&str, f64)] = &[
    // Copies the cached base image into the instance's disk and writes cidata; no boot.
    ("create", 2.0),
    // Boot until the host agent's requirements are met; Lima probes ssh every 10 s
    // (pkg/hostagent/requirements.go), so a boot takes one or two probes.
    ("start", 15.0),
    // Copies the instance directory copy-on-write where the filesystem allows
    // (pkg/instance/clone.go); `clone --start` is clone + start.
    ("clone", 1.0),
    // One ssh session over the host agent's ControlMaster, then a login shell.
    ("shell", 0.3),
    // Guest shutdown; Lima polls for it every 500 ms (pkg/instance/stop.go).
    ("stop", 3.0),
    // `--force` kills the host agent, then removes the directory.
    ("delete", 0.5),
    // Moves the instance directory (Lima 2.2+).
    ("rename", 0.1),
    // A Go binary reading the instance directories.
    ("list", 0.05),
    ("--version", 0.02),
    // The work inside a provisioning `limactl shell ... bash -s`, per step the script ran
    // (its `==> [i/n] what` lines in the build's log). The simulator does it in
    // milliseconds; on a real VM it is the bulk of a first setup. Estimates for a Debian 13
    // cloud image on a good connection, not measurements:
    // `installing packages`: one `apt-get update` (5–10 s against deb.debian.org) and one
    // install of the base packages (git brings perl: ~40 MB of .debs, unpacked in ~20 s).
    ("packages", 30.0),
    // `setting up TOOL`: a tool's post-install (docker's group and service, rustup's
    // toolchain download, pipx); rust is slower, gh and gpg faster: one figure for all.
    ("tool", 20.0),
    // `installing Claude Code`: the installer fetches the native build (~190 MB, see
    // DEVELOPMENT.md's real-Claude tier) and checks it, then `claude --version`.
    ("claude", 25.0),
    // `registering MCP servers`: `claude mcp add` per server (a start of Claude Code each).
    ("mcp", 2.0),
    // `running setup script X`: the project's own work, unknown here; a small script.
    ("script", 1.0),
];

/// The model's kind of a provisioning step, from its description.
fn step_kind(step: &str) -> Option<&'static str> {
    match step {
        "installing packages" => Some("packages"),
        "installing Claude Code" => Some("claude"),
        "registering MCP servers" => Some("mcp"),
        _ if step.starts_with("setting up ") => Some("tool"),
        _ if step.starts_with("running setup script ") => Some("script"),
        _ => None,
    }
}

impl Model {
    /// The default figures, with overrides from `spec` (`"start=20,shell=0.5"`).
    pub fn with_overrides(spec: Option<&str>) -> Result<Model, String> {
        let mut figures = DEFAULTS.to_vec();
        for item in spec
            .unwrap_or("")
            .split(',')
            .filter(|s| !s.trim().is_empty())
        {
            let (kind, secs) = item
                .split_once('=')
                .ok_or_else(|| format!("CLAUDE_VM_BENCH_MODEL: `{item}` is not KIND=SECONDS"))?;
            let secs: f64 = secs
                .trim()
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| {
                    format!("CLAUDE_VM_BENCH_MODEL: `{secs}` is not a number of seconds")
                })?;
            let slot = figures
                .iter_mut()
                .find(|(k, _)| *k == kind.trim())
                .ok_or_else(|| {
                    format!(
                        "CLAUDE_VM_BENCH_MODEL: no call kind `{kind}`; known: {}",
                        DEFAULTS
                            .iter()
                            .map(|(k, _)| *k)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            slot.1 = secs;
        }
        Ok(Model { figures })
    }

    fn figure(&self, kind: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, s)| *s)
    }

    /// The modelled seconds of one call (argv after `limactl`). A call kind the model does
    /// not know is an error, so a new call on a measured path is never counted as free.
    pub fn cost(&self, argv: &[String]) -> Result<f64, String> {
        let verb = verb(argv);
        let base = self
            .figure(verb)
            .ok_or_else(|| format!("the latency model has no figure for `limactl {verb}`"))?;
        let starts = verb == "clone" && argv.iter().any(|a| a == "--start");
        let boot = if starts {
            self.figure("start").unwrap_or(0.0)
        } else {
            0.0
        };
        Ok(base + boot)
    }
}

impl Model {
    /// The modelled seconds of the work a provisioning shell did: its steps' figures. A step
    /// the model does not know is an error, as for calls.
    pub fn provisioning(&self, steps: &[String]) -> Result<f64, String> {
        steps.iter().try_fold(0.0, |sum, step| {
            let kind = step_kind(step).ok_or_else(|| {
                format!("the latency model has no figure for the provisioning step `{step}`")
            })?;
            Ok(sum + self.figure(kind).unwrap_or(0.0))
        })
    }
}

/// Whether a call is a provisioning shell (the build's script on stdin).
pub fn is_provisioning(argv: &[String]) -> bool {
    verb(argv) == "shell" && argv.ends_with(&["bash".to_owned(), "-s".to_owned()])
}

/// The instance a `shell` call runs in: the first argument after its flags.
pub fn shell_instance(argv: &[String]) -> Option<&str> {
    let mut args = argv.iter().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--workdir" | "--shell" => {
                args.next();
            }
            _ if a.starts_with("--") => {}
            _ => return Some(a),
        }
    }
    None
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .figures
            .iter()
            .map(|(k, s)| format!("{k} {}", seconds(*s)))
            .collect();
        write!(
            f,
            "{}; clone --start = clone + start; a provisioning shell adds packages/tool/claude/mcp/script per step it ran",
            parts.join(", ")
        )
    }
}

/// The subcommand of a call (`--version` for the version query).
pub fn verb(argv: &[String]) -> &str {
    argv.first().map(String::as_str).unwrap_or("")
}

/// How a call is named in the report: its subcommand, plus the flag that changes its cost.
pub fn label(argv: &[String]) -> String {
    let verb = verb(argv);
    if verb == "clone" && argv.iter().any(|a| a == "--start") {
        "clone --start".to_owned()
    } else {
        verb.to_owned()
    }
}

/// Seconds without trailing zeros: `15 s`, `0.3 s`, `0.05 s`.
pub fn seconds(s: f64) -> String {
    let text = format!("{s:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} s")
}
