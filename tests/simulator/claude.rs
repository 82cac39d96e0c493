//! Claude Code in the guest: the installer, versions, `claude mcp`, `claude auth`.

use std::fs;
use std::io::Write;
use std::process::Stdio;

use serde_json::Value;

use crate::support::*;

#[test]
fn a_real_claude_code_is_installed_when_one_is_given() {
    let sim = Sim::new();
    let real = sim.base().join("real-claude");
    fs::create_dir_all(&real).expect("mkdir");
    fs::write(
        real.join("package.json"),
        r#"{"name": "@anthropic-ai/claude-code-linux-x64", "version": "9.8.7"}"#,
    )
    .expect("write");
    fs::write(
        real.join("claude"),
        "#!/bin/sh\necho \"9.8.7 (Claude Code) real $*\"\n",
    )
    .expect("write");
    fs::set_permissions(
        real.join("claude"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let set = format!(
        ".mounts = [{}]",
        serde_json::json!({"location": sim.project, "writable": true})
    );
    sim.create("vm", &["--set", &set]);
    let out = sim
        .cmd(&["start", "vm"])
        .env("LIMA_SIM_CLAUDE_CODE", &real)
        .output()
        .expect("start");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sim
        .sh("vm", "curl -fsSL https://claude.ai/install.sh | bash; ~/.local/bin/claude --version; curl -fsSL https://claude.ai/install.sh | bash -s 1.0.0 2>&1; echo \"status $?\"")
        .ok();
    assert_namespace_mode(&sim);
    assert!(
        out.stdout.contains("9.8.7 (Claude Code) real --version\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Failed to download Claude Code 1.0.0"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.ends_with("status 1\n"), "{}", out.stdout);
    // The real files are read-only in the guest.
    let out = sim.sh("vm", "echo x > /.limasim/claude-code/claude; true");
    assert!(
        out.stderr.contains("Read-only file system"),
        "{}",
        out.stderr
    );

    // A directory that is not a Claude Code is refused at boot.
    sim.run(&["stop", "vm"]).ok();
    let out = sim
        .cmd(&["start", "vm"])
        .env("LIMA_SIM_CLAUDE_CODE", sim.base())
        .output()
        .expect("start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("LIMA_SIM_CLAUDE_CODE="), "{err}");
}

#[test]
fn claude_code_installs_with_a_version() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    let out = sim
        .sh(
            "vm",
            "curl -fsSL https://claude.ai/install.sh | bash -s 1.2.3",
        )
        .ok();
    assert!(out.stdout.contains("Version: 1.2.3"), "{}", out.stdout);
    assert_eq!(
        sim.run(&["shell", "vm", "claude", "--version"]).ok().stdout,
        "1.2.3 (Claude Code)\n"
    );
    assert_eq!(
        sim.sh("vm", "readlink ~/.local/bin/claude").ok().stdout,
        format!(
            "/home/{}.linux/.local/share/claude/versions/1.2.3\n",
            whoami()
        )
    );
    sim.sh(
        "vm",
        "curl -fsSL https://claude.ai/install.sh | bash -s latest",
    )
    .ok();
    assert_eq!(
        sim.run(&["shell", "vm", "claude", "-v"]).ok().stdout,
        "2.0.0 (Claude Code)\n"
    );
    let out = sim.sh("vm", "curl -fsSL https://claude.ai/install.sh | bash -s v3");
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("Usage: bash [stable|latest|VERSION]"),
        "{}",
        out.stderr
    );

    // npm appears with Node.js; it installs the package's `claude` bin.
    let out = sim.sh("vm", "npm --version");
    assert_eq!(out.code, Some(127), "no nodejs yet: {}", out.stderr);
    let out = sim
        .sh(
            "vm",
            "sudo apt-get install -y -qq nodejs && npm --version && sudo npm install -g @anthropic-ai/claude-code@2.1.3 \
             && /usr/local/bin/claude --version && readlink /usr/local/bin/claude \
             && cat /usr/local/lib/node_modules/@anthropic-ai/claude-code/package.json",
        )
        .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "10.9.3");
    assert!(lines.contains(&"added 1 package in 1s"), "{}", out.stdout);
    assert!(lines.contains(&"2.1.3 (Claude Code)"), "{}", out.stdout);
    assert!(lines.contains(&"../lib/node_modules/@anthropic-ai/claude-code/cli.js"));
    let manifest: Value = serde_json::from_str(lines.last().expect("package.json")).expect("JSON");
    assert_eq!(manifest["version"], "2.1.3");
    // Every other package needs the registry, which the guest cannot reach.
    let out = sim.sh("vm", "npm install -g left-pad");
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("npm error code ENOTFOUND"),
        "{}",
        out.stderr
    );
    let out = sim.sh("vm", "npm install -g @anthropic-ai/claude-code@^2");
    assert!(
        out.stderr.contains("npm error code ETARGET"),
        "{}",
        out.stderr
    );
}

#[test]
fn claude_mcp_commands_store_servers_like_claude_code() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    sim.sh("vm", "curl -fsSL https://claude.ai/install.sh | bash")
        .ok();
    let claude = |script: &str| sim.sh("vm", &format!("PATH=$HOME/.local/bin:$PATH; {script}"));
    let out = claude(
        "claude mcp add --scope user -e TOKEN=s3cret chrome-devtools -- npx -y chrome-devtools-mcp@latest --headless",
    );
    // commander's variadic -e takes the name too, as the real CLI does.
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .contains("Invalid environment variable format: chrome-devtools"),
        "{}",
        out.stderr
    );
    let out = claude(
        "claude mcp add --scope user chrome-devtools -e TOKEN=s3cret -- npx -y chrome-devtools-mcp@latest --headless",
    )
    .ok();
    assert_eq!(
        out.stdout,
        format!(
            "Added stdio MCP server chrome-devtools with command: npx -y chrome-devtools-mcp@latest --headless to user config\nFile modified: /home/{}.linux/.claude.json\n",
            whoami()
        )
    );
    let cfg: Value = serde_json::from_str(&claude("cat ~/.claude.json").ok().stdout).expect("JSON");
    assert_eq!(
        cfg["mcpServers"]["chrome-devtools"],
        serde_json::json!({"type": "stdio", "command": "npx",
            "args": ["-y", "chrome-devtools-mcp@latest", "--headless"], "env": {"TOKEN": "s3cret"}})
    );
    let out = claude("claude mcp add -s user chrome-devtools -- npx other");
    assert_eq!(out.code, Some(1));
    assert!(out
        .stderr
        .contains("MCP server chrome-devtools already exists in user config"));
    let out = claude("claude mcp add fetch python -m server");
    assert!(
        out.stderr.contains("error: unknown option '-m'"),
        "{}",
        out.stderr
    );
    // Local scope keys the project directory; project scope writes .mcp.json.
    claude("claude mcp add docs --transport http https://docs.example/mcp").ok();
    claude("claude mcp add -s project tests -- ./run-tests.sh --mcp").ok();
    let project = sim.project.to_str().expect("utf8");
    let cfg: Value = serde_json::from_str(&claude("cat ~/.claude.json").ok().stdout).expect("JSON");
    assert_eq!(
        cfg["projects"][project]["mcpServers"]["docs"],
        serde_json::json!({"type": "http", "url": "https://docs.example/mcp"})
    );
    let mcp_json: Value = serde_json::from_str(
        &fs::read_to_string(sim.project.join(".mcp.json")).expect(".mcp.json"),
    )
    .expect("JSON");
    assert_eq!(mcp_json["mcpServers"]["tests"]["command"], "./run-tests.sh");
    let list = claude("claude mcp list").ok().stdout;
    assert!(
        list.contains("chrome-devtools: npx -y chrome-devtools-mcp@latest --headless - "),
        "{list}"
    );
    assert!(
        list.contains("docs: https://docs.example/mcp (HTTP) - "),
        "{list}"
    );
    assert!(list.contains("tests: ./run-tests.sh --mcp - "), "{list}");
    let get = claude("claude mcp get chrome-devtools").ok().stdout;
    assert!(get.contains("Scope: User config"), "{get}");
    assert!(get.contains("TOKEN=s3cret"), "{get}");
    assert_eq!(claude("claude mcp get nope").code, Some(1));
    claude("claude mcp remove chrome-devtools").ok();
    assert_eq!(claude("claude mcp get chrome-devtools").code, Some(1));
    // Everything else is still the JSON report.
    let report: Value =
        serde_json::from_str(claude("claude -p hi").ok().stdout.trim()).expect("report");
    assert_eq!(report["argv"], serde_json::json!(["-p", "hi"]));
}

#[test]
fn claude_auth_login_needs_a_terminal() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    sim.sh("vm", "curl -fsSL https://claude.ai/install.sh | bash")
        .ok();
    let claude = |args: &[&str]| {
        let mut all = vec![
            "shell",
            "vm",
            "/bin/bash",
            "-lc",
            "exec claude \"$@\"",
            "claude",
        ];
        all.extend_from_slice(args);
        sim.run(&all)
    };
    let status = claude(&["auth", "status"]);
    assert_eq!(status.code, Some(1));
    let doc: Value = serde_json::from_str(&status.stdout).expect("JSON");
    assert_eq!(doc["loggedIn"], false);
    // No terminal: it fails at once instead of waiting for a code.
    let out = claude(&["auth", "login"]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("Raw mode is not supported"),
        "{}",
        out.stderr
    );
    // On a terminal it prints the URL and takes the pasted code.
    let crate::tty::Pair { mut master, slave } = crate::tty::open();
    let child = sim
        .cmd(&["shell", "vm", "/bin/bash", "-lc", "exec claude auth login"])
        .stdin(Stdio::from(slave))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    master
        .write_all(b"the-code#state\n")
        .expect("type the code");
    let out = Out::from(child.wait_with_output().expect("wait")).ok();
    assert!(
        out.stdout.contains("https://claude.ai/oauth/authorize?"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.ends_with("Login successful.\n"),
        "{}",
        out.stdout
    );
    drop(master);
    let creds = sim
        .sh(
            "vm",
            "stat -c %a ~/.claude/.credentials.json && cat ~/.claude/.credentials.json",
        )
        .ok()
        .stdout;
    let (mode, json) = creds.split_once('\n').expect("two parts");
    assert_eq!(mode, "600");
    let creds: Value = serde_json::from_str(json).expect("JSON");
    assert!(creds["claudeAiOauth"]["accessToken"]
        .as_str()
        .is_some_and(|t| t.starts_with("sk-ant-oat01-")));
    let status = claude(&["auth", "status"]).ok();
    let doc: Value = serde_json::from_str(&status.stdout).expect("JSON");
    assert_eq!(
        (doc["loggedIn"].clone(), doc["authMethod"].clone()),
        (Value::Bool(true), Value::from("claude.ai"))
    );
    claude(&["auth", "logout"]).ok();
    assert_eq!(claude(&["auth", "status"]).code, Some(1));
}
