//! Tools, system packages and Claude Code in the template.

use crate::support::*;

/// The guest's apt log: one JSON argv per line.
fn apt_calls(w: &World) -> Vec<Vec<String>> {
    // `--network open`: a template with docker refuses the default policy (below).
    let r = w.run(&[
        "--network",
        "open",
        "shell",
        "--",
        "cat",
        "/var/lib/limasim/apt.log",
    ]);
    r.ok();
    r.stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Vec<String>>(l)
                .unwrap_or_else(|e| panic!("apt.log line {l:?}: {e}"))
        })
        .collect()
}

fn installed(w: &World) -> Vec<String> {
    let r = w.run(&[
        "--network",
        "open",
        "shell",
        "--",
        "cat",
        "/var/lib/limasim/installed",
    ]);
    r.ok();
    r.stdout.lines().map(str::to_owned).collect()
}

#[test]
fn setup_all_dry_run_shows_one_update_one_install_and_every_tool() {
    let w = World::new();
    let r = w.run(&["--dry-run", "setup", "--all"]);
    r.ok();
    assert!(r.calls.is_empty());
    let out = &r.stdout;
    assert_eq!(out.matches("apt-get update").count(), 1, "{out}");
    assert_eq!(out.matches("apt-get install").count(), 1, "{out}");
    for needle in [
        "download.docker.com",
        "deb.nodesource.com",
        "cli.github.com",
        "sh.rustup.rs",
        "setting up docker",
        "claude mcp add --scope user chrome-devtools",
        "no-autostart",
    ] {
        assert!(out.contains(needle), "{needle} missing:\n{out}");
    }
}

#[test]
fn setup_all_for_real_installs_every_tool_in_one_apt_transaction() {
    let w = World::new();
    let r = w.run(&["setup", "--all"]);
    r.ok();
    // The first command of a fresh world also checks Lima's version (cached afterwards).
    assert_eq!(
        r.verbs(),
        FIRST_SETUP,
        "all of it in the shared base's one provisioning shell; the template is its clone"
    );
    let apt = apt_calls(&w);
    let updates = apt
        .iter()
        .filter(|a| a.iter().any(|x| x == "update"))
        .count();
    let installs = apt
        .iter()
        .filter(|a| a.iter().any(|x| x == "install"))
        .count();
    assert_eq!((updates, installs), (1, 1), "{apt:?}");
    let pkgs = installed(&w);
    for p in [
        "git",
        "docker-ce",
        "docker-compose-plugin",
        "nodejs",
        "python3-venv",
        "build-essential",
        "chromium",
        "gnupg",
        "gh",
    ] {
        assert!(pkgs.iter().any(|x| x == p), "{p} not installed: {pkgs:?}");
    }
    // Docker's socket is root in the VM: the default policy cannot hold with it, so the
    // session is refused before any VM, and `--network open` is the way to use it.
    let refused = w.run(&["shell", "--", "true"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("has the docker tool") && refused.stderr.contains("--network open"),
        "{}",
        refused.stderr
    );
    assert!(refused
        .calls
        .iter()
        .all(|c| c.first().map(String::as_str) != Some("clone")));
    // Post-install steps ran as the guest user, and the MCP server is registered for it.
    let s = w.run(&[
        "--network",
        "open",
        "shell",
        "--",
        "sh",
        "-c",
        "id -nG \"$USER\"; ls ~/.cargo/bin; grep -c no-autostart ~/.gnupg/gpg.conf; claude mcp list",
    ]);
    s.ok();
    assert!(s.stdout.contains("docker"), "docker group: {}", s.stdout);
    assert!(s.stdout.contains("cargo"), "rustup ran: {}", s.stdout);
    assert!(
        s.stdout.contains("chrome-devtools"),
        "MCP server registered: {}",
        s.stdout
    );
    // The tool list went into the template's record.
    let t = &w.templates()[0];
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(w.data_dir().join(format!("templates/{t}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["tools"],
        serde_json::json!(["docker", "node", "python", "rust", "chromium", "gpg", "gh", "git"])
    );
}

#[test]
fn tools_from_config_bring_their_requirements_and_runtime_scripts() {
    let w = World::new();
    w.write_project(".claude-vm.toml", "[tools]\nchromium = true\nrust = true\n");
    w.setup();
    let pkgs = installed(&w);
    assert!(
        pkgs.contains(&"nodejs".to_string()),
        "chromium requires node: {pkgs:?}"
    );
    // rust's runtime script puts cargo on PATH in every session.
    let r = w.run(&["shell", "--", "sh", "-c", "command -v cargo"]);
    r.ok();
    assert!(
        r.stdout.trim().ends_with(".cargo/bin/cargo"),
        "{}",
        r.stdout
    );
}

#[test]
fn system_packages_and_their_setup_script_share_the_one_install() {
    let w = World::new();
    w.write_project("apt-source.sh", "echo 'deb http://example.invalid stable main' | sudo tee /etc/apt/sources.list.d/mine.list >/dev/null\n");
    w.write_project(
        ".claude-vm.toml",
        "[packages]\nsystem = [\"jq\", \"postgresql-client\"]\nsetup_script = \"apt-source.sh\"\n",
    );
    w.setup();
    let pkgs = installed(&w);
    assert!(
        pkgs.contains(&"jq".into()) && pkgs.contains(&"postgresql-client".into()),
        "{pkgs:?}"
    );
    let apt = apt_calls(&w);
    assert_eq!(
        apt.iter()
            .filter(|a| a.iter().any(|x| x == "install"))
            .count(),
        1,
        "{apt:?}"
    );
    let r = w.run(&["shell", "--", "cat", "/etc/apt/sources.list.d/mine.list"]);
    assert!(r.ok().stdout.contains("example.invalid"));
}

#[test]
fn bad_package_names_and_unknown_tools_are_refused() {
    let w = World::new();
    w.write_project(
        ".claude-vm.toml",
        "[packages]\nsystem = [\"jq; rm -rf /\"]\n",
    );
    let r = w.run(&["setup"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("`packages.system[0]`"), "{}", r.stderr);
    assert!(r.calls.is_empty());
    w.write_project(".claude-vm.toml", "[tools]\ngpgg = true\n");
    let r = w.run(&["setup"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("did you mean `gpg`?") && r.stderr.contains("docker, node, python"),
        "{}",
        r.stderr
    );
    let r = w.run(&["setup", "--nodejs"]);
    assert_eq!(
        r.code, 2,
        "an unknown tool flag is a usage error: {}",
        r.stderr
    );
}

#[test]
fn claude_code_from_npm_with_a_pinned_version() {
    let w = World::new();
    w.write_project(
        ".claude-vm.toml",
        "[claude]\ninstall = \"npm\"\nversion = \"2.1.3\"\n",
    );
    w.setup();
    assert!(
        installed(&w).contains(&"nodejs".to_string()),
        "npm needs node"
    );
    let r = w.run(&["shell", "--", "claude", "--version"]);
    assert!(r.ok().stdout.contains("2.1.3"), "{}", r.stdout);
}

#[test]
fn claude_code_official_installer_with_a_pin() {
    let w = World::new();
    w.write_project(".claude-vm.toml", "[claude]\nversion = \"2.0.77\"\n");
    w.setup();
    let r = w.run(&["shell", "--", "claude", "--version"]);
    assert!(r.ok().stdout.contains("2.0.77"), "{}", r.stdout);
    w.write_project(".claude-vm.toml", "[claude]\ninstall = \"pip\"\n");
    let r = w.run(&["setup"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("claude") && r.stderr.contains("official"),
        "{}",
        r.stderr
    );
}

#[test]
fn login_needs_a_terminal_and_never_blocks_without_one() {
    let w = World::new();
    let r = w.run(&["setup", "--login"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("needs a terminal") && r.stderr.contains("CLAUDE_CODE_OAUTH_TOKEN"),
        "{}",
        r.stderr
    );
    assert!(r.calls.is_empty());
    w.setup();
    let r = w.run(&["login"]);
    assert_eq!(r.code, 2);
    assert!(r.calls.is_empty());
}

#[test]
fn login_on_a_terminal_runs_claudes_own_login_in_the_template() {
    let w = World::new();
    w.setup();
    let r = w.run_tty(&["login"], "the-code\n");
    r.ok();
    assert_eq!(r.verbs(), ["start", "shell", "stop"]);
    let shell = r.call("shell");
    assert_eq!(&shell[shell.len() - 3..], ["claude", "auth", "login"]);
    // Every later session is logged in: the credentials live in the template.
    let s = w.run(&["shell", "--", "claude", "auth", "status"]);
    s.ok();
    let status: serde_json::Value = serde_json::from_str(&s.stdout).expect("auth status JSON");
    assert_eq!(status["loggedIn"], true, "{}", s.stdout);
}
