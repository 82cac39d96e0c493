//! The hosts a policy of `allowlist` opens without being asked: what Claude Code itself needs,
//! and what each enabled tool brings. Setup gets a broader list of its own (apt mirrors and
//! the installers it runs). Pure data; `config show` lists every entry with its origin.

/// Hosts and where they come from (`claude code`, `tool node`, `setup: apt`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preset {
    pub origin: String,
    pub hosts: &'static [&'static str],
}

/// Claude Code in a session: its API, login and telemetry/feature-flag hosts. Its updates
/// are not here: a session's VM is thrown away, setup installs the version.
const CLAUDE_CODE: &[&str] = &[
    "api.anthropic.com",
    "statsig.anthropic.com",
    "sentry.io",
    "claude.ai",
    "console.anthropic.com",
    "platform.claude.com",
];

/// What each tool's users fetch in a session.
const TOOLS: &[(&str, &[&str])] = &[
    ("node", &["registry.npmjs.org"]),
    ("python", &["pypi.org", "files.pythonhosted.org"]),
    (
        "rust",
        &[
            "crates.io",
            "static.crates.io",
            "index.crates.io",
            "static.rust-lang.org",
        ],
    ),
    ("gh", GITHUB),
    ("git", GITHUB),
    (
        "docker",
        &[
            "registry-1.docker.io",
            "auth.docker.io",
            "production.cloudflare.docker.com",
        ],
    ),
];

const GITHUB: &[&str] = &[
    "github.com",
    "api.github.com",
    "*.githubusercontent.com",
    "codeload.github.com",
];

/// Setup only: the image's apt mirrors, Claude Code's installer and its downloads.
const SETUP_BASE: &[(&str, &[&str])] = &[
    (
        "apt (Debian's mirrors)",
        &["deb.debian.org", "security.debian.org"],
    ),
    (
        "Claude Code's installer",
        &["claude.ai", "downloads.claude.ai", "storage.googleapis.com"],
    ),
];

/// Setup only: the apt repositories and installers each tool's set-up uses.
const SETUP_TOOLS: &[(&str, &[&str])] = &[
    ("node", &["deb.nodesource.com", "registry.npmjs.org"]),
    ("docker", &["download.docker.com"]),
    ("gh", &["cli.github.com"]),
    ("rust", &["sh.rustup.rs", "static.rust-lang.org"]),
    ("chromium", &["registry.npmjs.org"]),
];

/// A session's presets for the template's tools (names as `[tools]` spells them).
pub fn session(tools: &[&str]) -> Vec<Preset> {
    let mut out = vec![Preset {
        origin: "claude code".into(),
        hosts: CLAUDE_CODE,
    }];
    for (tool, hosts) in TOOLS {
        if tools.contains(tool) {
            out.push(Preset {
                origin: format!("tool {tool}"),
                hosts,
            });
        }
    }
    out
}

/// Setup's presets: a session's, plus the mirrors and installers the build uses.
pub fn setup(tools: &[&str]) -> Vec<Preset> {
    let mut out = session(tools);
    for (what, hosts) in SETUP_BASE {
        out.push(Preset {
            origin: format!("setup: {what}"),
            hosts,
        });
    }
    for (tool, hosts) in SETUP_TOOLS {
        if tools.contains(tool) {
            out.push(Preset {
                origin: format!("setup: tool {tool}"),
                hosts,
            });
        }
    }
    out
}

/// Every host of the presets, each once, in order.
pub fn hosts(presets: &[Preset]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in presets.iter().flat_map(|p| p.hosts.iter()) {
        if !out.iter().any(|o| o == h) {
            out.push((*h).to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netpattern::Pattern;

    #[test]
    fn every_preset_is_a_valid_pattern() {
        let all = ["docker", "node", "python", "rust", "gh", "git", "chromium"];
        for p in setup(&all) {
            for h in p.hosts {
                assert!(Pattern::parse(h).is_ok(), "{h} of {}", p.origin);
            }
        }
    }

    #[test]
    fn tools_bring_their_hosts_and_only_theirs() {
        let none = hosts(&session(&[]));
        assert!(none.contains(&"api.anthropic.com".to_owned()));
        assert!(!none
            .iter()
            .any(|h| h.contains("npmjs") || h.contains("github")));
        let node = session(&["node"]);
        assert_eq!(node[1].origin, "tool node");
        assert!(hosts(&node).contains(&"registry.npmjs.org".to_owned()));
        let git = hosts(&session(&["git", "gh"]));
        assert_eq!(
            git.iter().filter(|h| *h == "github.com").count(),
            1,
            "listed once: {git:?}"
        );
        // Installers and mirrors are for the build only.
        assert!(!hosts(&session(&["rust"])).contains(&"sh.rustup.rs".to_owned()));
        let build = hosts(&setup(&["rust"]));
        for h in ["sh.rustup.rs", "deb.debian.org", "storage.googleapis.com"] {
            assert!(build.contains(&h.to_owned()), "{h}: {build:?}");
        }
    }
}
