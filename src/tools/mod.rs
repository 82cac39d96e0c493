//! Tools a template can be built with, defined declaratively (one TOML file per tool,
//! embedded in the binary): apt packages, repository set-up, a post-install script, a
//! runtime script, MCP servers, port forwards, and the tools it requires.

use std::sync::OnceLock;

use serde::Deserialize;

/// Definitions in the order they are set up: every tool comes after the tools it requires.
const DEFINITIONS: &[(&str, &str)] = &[
    ("docker", include_str!("defs/docker.toml")),
    ("node", include_str!("defs/node.toml")),
    ("python", include_str!("defs/python.toml")),
    ("rust", include_str!("defs/rust.toml")),
    ("chromium", include_str!("defs/chromium.toml")),
    ("gpg", include_str!("defs/gpg.toml")),
    ("gh", include_str!("defs/gh.toml")),
    ("git", include_str!("defs/git.toml")),
];

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub requires: Vec<String>,
    /// Debian packages, installed with everything else in one `apt-get install`.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Adds apt sources and keys; runs before the one `apt-get update`.
    #[serde(default)]
    pub repository: Option<String>,
    /// Runs after the packages are installed, as the guest user.
    #[serde(default)]
    pub post_install: Option<String>,
    /// Sourced at the start of every session, before the user's runtime scripts.
    #[serde(default)]
    pub runtime: Option<String>,
    #[serde(default)]
    pub mcp: Vec<McpServer>,
    #[serde(default)]
    pub ports: Vec<Port>,
    /// What claude-vm does on the host for this tool in each session.
    #[serde(default)]
    pub integrations: Vec<Integration>,
}

/// An MCP server registered for the guest user (`claude mcp add --scope user`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServer {
    pub name: String,
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    pub guest: u16,
    pub host: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Integration {
    /// The host's git identity and signing settings, applied in the guest.
    GitIdentity,
    /// The host's gpg-agent, forwarded into the guest with the public keys.
    GpgAgent,
}

/// Every tool, in set-up order.
pub fn all() -> &'static [Tool] {
    static TOOLS: OnceLock<Vec<Tool>> = OnceLock::new();
    TOOLS.get_or_init(|| {
        DEFINITIONS
            .iter()
            .map(|(name, text)| match toml::from_str::<Tool>(text) {
                Ok(tool) => tool,
                // The definitions are part of the binary and checked by the tests below.
                Err(e) => panic!("built-in tool definition {name} is invalid: {e}"),
            })
            .collect()
    })
}

pub fn names() -> Vec<&'static str> {
    DEFINITIONS.iter().map(|(n, _)| *n).collect()
}

pub fn get(name: &str) -> Option<&'static Tool> {
    all().iter().find(|t| t.name == name)
}

/// The tools to set up for `wanted`: with what they require, in set-up order. Unknown names
/// are the caller's to reject (config validation does).
pub fn resolve<S: AsRef<str>>(wanted: &[S]) -> Vec<&'static Tool> {
    let mut chosen: Vec<&str> = Vec::new();
    let mut stack: Vec<&str> = wanted
        .iter()
        .filter_map(|w| get(w.as_ref()))
        .map(|t| t.name.as_str())
        .collect();
    while let Some(name) = stack.pop() {
        if chosen.contains(&name) {
            continue;
        }
        chosen.push(name);
        if let Some(t) = get(name) {
            stack.extend(t.requires.iter().map(String::as_str));
        }
    }
    all()
        .iter()
        .filter(|t| chosen.contains(&t.name.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_parse_and_are_named_after_their_files() {
        for (name, _) in DEFINITIONS {
            let tool = get(name).unwrap();
            assert_eq!(&tool.name, name);
            assert!(!tool.description.is_empty());
        }
        assert_eq!(
            names(),
            ["docker", "node", "python", "rust", "chromium", "gpg", "gh", "git"]
        );
    }

    #[test]
    fn requirements_exist_and_come_first() {
        for (i, tool) in all().iter().enumerate() {
            for req in &tool.requires {
                let j = all()
                    .iter()
                    .position(|t| &t.name == req)
                    .unwrap_or_else(|| panic!("{} requires unknown {req}", tool.name));
                assert!(j < i, "{} must come after {req}", tool.name);
            }
        }
    }

    #[test]
    fn resolve_adds_requirements_in_a_fixed_order() {
        let names = |v: Vec<&Tool>| v.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(resolve(&["chromium"])), ["node", "chromium"]);
        assert_eq!(names(resolve(&["git", "docker", "git"])), ["docker", "git"]);
        assert_eq!(names(resolve(&names_all())), names_all());
        assert!(resolve(&["nope"]).is_empty());
    }

    fn names_all() -> Vec<String> {
        names().into_iter().map(String::from).collect()
    }

    #[test]
    fn chromium_brings_the_devtools_mcp_server() {
        let mcp = &get("chromium").unwrap().mcp[0];
        assert_eq!(mcp.name, "chrome-devtools");
        assert!(mcp
            .args
            .iter()
            .any(|a| a.starts_with("chrome-devtools-mcp")));
    }
}
