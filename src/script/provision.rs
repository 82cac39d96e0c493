//! The provisioning script: everything that builds a template, run in one `limactl shell`.

use std::fmt::Write;

use super::{quote, quote_words, GuestScript};
use crate::tools::Tool;

/// Installed in every template: what Claude Code and git inside the VM need.
/// python3 runs claude-vm's first-run answers for Claude Code (cloud images have it already).
pub const BASE_PACKAGES: &[&str] = &[
    "ca-certificates",
    "curl",
    "git",
    "less",
    "procps",
    "python3",
    "unzip",
];

/// How Claude Code gets into the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaudeInstall {
    /// Anthropic's installer script (a native binary in `~/.local/bin`), optionally pinned.
    Official { version: Option<String> },
    /// `npm install -g @anthropic-ai/claude-code[@version]` (needs node).
    Npm { version: Option<String> },
}

/// Which part of a template a provisioning script builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// Everything, in one VM (`[vm] shared_base = false`).
    Whole,
    /// A shared base: packages, tools, Claude Code, its first-run answers. No setup mounts
    /// and no setup scripts: it serves every project with the same tools.
    Base,
    /// A project's template cloned from a base: the setup-mount links and setup scripts.
    Project,
}

pub struct ProvisionInput<'a> {
    pub layer: Layer,
    /// Enabled tools, in set-up order (requirements first).
    pub tools: &'a [&'a Tool],
    /// The user's own Debian packages (`[packages] system`).
    pub system_packages: &'a [String],
    /// `[packages] setup_script`: runs before the one `apt-get update`.
    pub packages_setup: Option<&'a GuestScript>,
    pub claude: &'a ClaudeInstall,
    /// User setup scripts, in the order they run.
    pub scripts: &'a [GuestScript],
    /// The guest path of [`super::CLAUDE_STATE_PROGRAM`].
    pub claude_state: &'a str,
    /// Setup mounts shown at their mount point by a link (target, link), made first.
    pub links: &'a [(String, String)],
}

/// Fails fast (`set -e`, and each user script checked), numbering its steps so the output
/// shows where it is; a failing step or user script is named in the error.
pub fn provision(input: &ProvisionInput) -> String {
    let base = input.layer != Layer::Project;
    let project = input.layer != Layer::Base;
    let post: Vec<&Tool> = input
        .tools
        .iter()
        .copied()
        .filter(|t| base && t.post_install.is_some())
        .collect();
    let mcp: Vec<_> = input
        .tools
        .iter()
        .filter(|_| base)
        .flat_map(|t| t.mcp.iter())
        .collect();
    let scripts = if project { input.scripts } else { &[] };
    let total = 2 * usize::from(base) + post.len() + usize::from(!mcp.is_empty()) + scripts.len();
    let mut n = 0;
    let mut step = |s: &mut String, what: &str| {
        n += 1;
        let _ = writeln!(s, "cvm_step {n} {total} {}", quote(what));
    };

    let mut s = String::from(
        "# claude-vm provisioning script (generated; runs once in the VM being built)\n\
         set -euo pipefail\n\
         export DEBIAN_FRONTEND=noninteractive\n\
         cd \"$HOME\"\n\
         cvm_step() { printf '==> [%s/%s] %s\\n' \"$1\" \"$2\" \"$3\"; }\n\
         cvm_fail() { printf 'claude-vm: %s\\n' \"$1\" >&2; exit 1; }\n",
    );
    if project {
        s.push_str(&super::session_script::link_lines(input.links));
    }
    if base {
        base_steps(&mut s, &mut step, input, &post, &mcp);
    }
    for script in scripts {
        step(&mut s, &format!("running setup script {}", script.label));
        let _ = writeln!(
            s,
            "bash {} || cvm_fail \"setup script \"{}\" failed with status $?\"",
            quote(&script.guest_path),
            quote(&script.label)
        );
    }
    s.push_str(if project {
        "echo '==> template ready'\n"
    } else {
        "echo '==> base ready'\n"
    });
    s
}

/// Packages, tools, Claude Code and MCP servers: what a shared base holds.
fn base_steps(
    s: &mut String,
    step: &mut impl FnMut(&mut String, &str),
    input: &ProvisionInput,
    post: &[&Tool],
    mcp: &[&crate::tools::McpServer],
) {
    // One update and one install for everything: apt is the slow part of a build.
    step(s, "installing packages");
    for tool in input.tools {
        if let Some(repo) = &tool.repository {
            let _ = writeln!(s, "# apt repository for {}\n{}", tool.name, repo.trim_end());
        }
    }
    if let Some(script) = input.packages_setup {
        let _ = writeln!(
            s,
            "bash {} || cvm_fail \"packages setup script \"{}\" failed with status $?\"",
            quote(&script.guest_path),
            quote(&script.label)
        );
    }
    let mut packages: Vec<&str> = BASE_PACKAGES.to_vec();
    for p in input
        .tools
        .iter()
        .flat_map(|t| t.packages.iter())
        .chain(input.system_packages)
    {
        if !packages.contains(&p.as_str()) {
            packages.push(p);
        }
    }
    s.push_str("sudo apt-get update -qq\n");
    let _ = writeln!(
        s,
        "sudo -E apt-get install -y -qq --no-install-recommends {}",
        quote_words(&packages)
    );

    for tool in post {
        step(s, &format!("setting up {}", tool.name));
        if let Some(script) = &tool.post_install {
            s.push_str(script.trim_end());
            s.push('\n');
        }
    }

    step(s, "installing Claude Code");
    // Login shells of every later session find ~/.local/bin, whatever the image's .profile.
    s.push_str(
        "printf '%s\\n' 'case \":$PATH:\" in *\":$HOME/.local/bin:\"*) ;; *) PATH=\"$HOME/.local/bin:$PATH\" ;; esac' \
         | sudo tee /etc/profile.d/claude-vm-path.sh >/dev/null\n\
         export PATH=\"$HOME/.local/bin:$PATH\"\n\
         if command -v claude >/dev/null 2>&1; then\n  echo \"Claude Code is already installed: $(command -v claude)\"\nelse\n",
    );
    match input.claude {
        ClaudeInstall::Official { version } => {
            let arg = version
                .as_deref()
                .map(|v| format!(" -s {}", quote(v)))
                .unwrap_or_default();
            let _ = writeln!(s, "  curl -fsSL https://claude.ai/install.sh | bash{arg}");
        }
        ClaudeInstall::Npm { version } => {
            let package = match version {
                Some(v) => format!("@anthropic-ai/claude-code@{v}"),
                None => "@anthropic-ai/claude-code".to_owned(),
            };
            let _ = writeln!(s, "  sudo npm install -g {}", quote(&package));
        }
    }
    s.push_str(
        "fi\n\
         command -v claude >/dev/null 2>&1 || cvm_fail 'Claude Code did not install: claude is not on PATH'\n\
         cvm_claude=$(claude --version) || cvm_fail 'Claude Code is installed but does not run: claude --version failed'\n\
         cvm_claude=${cvm_claude%% (Claude Code)}\n\
         echo \"Claude Code $cvm_claude\"\n",
    );
    // Sessions start at the prompt: onboarding done and the bypass warning answered.
    let _ = writeln!(
        s,
        "python3 {} template \"${{cvm_claude%% *}}\" || cvm_fail 'could not record the first-run answers for Claude Code'",
        quote(input.claude_state)
    );

    if !mcp.is_empty() {
        step(s, "registering MCP servers");
        for m in mcp {
            let mut add = vec![
                "claude",
                "mcp",
                "add",
                "--scope",
                "user",
                m.name.as_str(),
                "--",
                m.command.as_str(),
            ];
            add.extend(m.args.iter().map(String::as_str));
            let _ = writeln!(
                s,
                "claude mcp get {name} >/dev/null 2>&1 || {add}",
                name = quote(&m.name),
                add = quote_words(&add)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::testing::run_bash;
    use crate::tools;

    fn official() -> ClaudeInstall {
        ClaudeInstall::Official { version: None }
    }

    fn script(
        tools: &[&Tool],
        system: &[String],
        claude: &ClaudeInstall,
        scripts: &[GuestScript],
    ) -> String {
        provision(&ProvisionInput {
            layer: Layer::Whole,
            tools,
            system_packages: system,
            packages_setup: None,
            claude,
            scripts,
            claude_state: "/tmp/claude-vm-setup/claude-state.py",
            links: &[],
        })
    }

    #[test]
    fn one_update_and_one_install_for_every_package() {
        let all = tools::resolve(&tools::names());
        let s = script(&all, &["jq".to_owned(), "git".to_owned()], &official(), &[]);
        assert_eq!(s.matches("apt-get update").count(), 1);
        assert_eq!(s.matches("apt-get install").count(), 1);
        let install = s.lines().find(|l| l.contains("apt-get install")).unwrap();
        for p in [
            "ca-certificates",
            "docker-ce",
            "nodejs",
            "chromium",
            "gnupg",
            "gh",
            "pipx",
            "jq",
        ] {
            assert!(
                install.split(' ').any(|w| w == p),
                "{p} missing from {install}"
            );
        }
        assert_eq!(
            install.matches(" git").count(),
            1,
            "no package twice: {install}"
        );
        // Every repository is set up before the update.
        let update = s.find("apt-get update").unwrap();
        for url in [
            "download.docker.com",
            "deb.nodesource.com",
            "cli.github.com",
        ] {
            assert!(s.find(url).unwrap() < update, "{url}");
        }
    }

    #[test]
    fn steps_follow_tool_order_then_claude_mcp_and_user_scripts() {
        let all = tools::resolve(&["chromium", "docker", "rust"]);
        let g = GuestScript {
            label: "./.claude-vm.setup.sh".into(),
            guest_path: "/mnt/claude-vm/setup-1.sh".into(),
        };
        let s = script(&all, &[], &official(), &[g]);
        let steps: Vec<&str> = s.lines().filter(|l| l.starts_with("cvm_step ")).collect();
        assert_eq!(
            steps,
            [
                "cvm_step 1 6 'installing packages'",
                "cvm_step 2 6 'setting up docker'",
                "cvm_step 3 6 'setting up rust'",
                "cvm_step 4 6 'installing Claude Code'",
                "cvm_step 5 6 'registering MCP servers'",
                "cvm_step 6 6 'running setup script ./.claude-vm.setup.sh'",
            ]
        );
        assert!(s.contains("claude mcp get chrome-devtools >/dev/null 2>&1 || claude mcp add --scope user chrome-devtools -- npx -y"));
    }

    #[test]
    fn claude_install_methods_and_pins() {
        let s = script(
            &[],
            &[],
            &ClaudeInstall::Official {
                version: Some("2.1.3".into()),
            },
            &[],
        );
        assert!(
            s.contains("curl -fsSL https://claude.ai/install.sh | bash -s 2.1.3\n"),
            "{s}"
        );
        let s = script(
            &[],
            &[],
            &ClaudeInstall::Npm {
                version: Some("2.1.3".into()),
            },
            &[],
        );
        assert!(
            s.contains("sudo npm install -g '@anthropic-ai/claude-code@2.1.3'\n"),
            "{s}"
        );
        let check = s.find("if command -v claude").unwrap();
        assert!(
            check < s.find("npm install").unwrap(),
            "installed only when missing"
        );
    }

    #[test]
    fn user_scripts_run_in_order_and_the_failing_one_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("log");
        let mk = |name: &str, body: &str| {
            let p = tmp.path().join(name);
            std::fs::write(&p, body).unwrap();
            GuestScript {
                label: format!("./{name}"),
                guest_path: p.to_str().unwrap().into(),
            }
        };
        let a = mk("a.sh", &format!("echo a >> '{}'", log.display()));
        let b = mk("b b.sh", "exit 3");
        let c = mk("c.sh", &format!("echo c >> '{}'", log.display()));
        let full = script(&[], &[], &official(), &[a, b, c]);
        // Only the user-script part: the rest needs a VM.
        let part = &full[full.find("cvm_step 3").unwrap()..];
        let head = "set -euo pipefail\ncvm_step() { :; }\ncvm_fail() { printf 'claude-vm: %s\\n' \"$1\" >&2; exit 1; }\n";
        let (code, _, err) = run_bash(&format!("{head}{part}"), &[]);
        assert_eq!(code, 1);
        assert!(
            err.contains("setup script ./b b.sh failed with status 3"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "a\n");
    }
}
