//! What a session's claude sees: credentials, proxies, variables from every source, agents
//! and ports — and that no value ever appears on a host command line.

use std::process::Command;

use crate::support::*;

#[track_caller]
fn no_secret_in_any_call(w: &World, secret: &str) {
    let calls = w.logged();
    assert!(!calls.is_empty());
    for call in calls {
        assert!(
            !call.iter().any(|a| a.contains(secret)),
            "secret on a command line: {call:?}"
        );
    }
}

#[test]
fn credentials_and_proxies_are_forwarded_and_never_on_argv() {
    let mut w = World::new();
    w.setup();
    w.set_env("ANTHROPIC_API_KEY", "sk-ant-SECRET-1")
        .set_env("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat-SECRET-2")
        .set_env("ANTHROPIC_BASE_URL", "https://gateway.example")
        .set_env("HTTPS_PROXY", "http://user:pw@127.0.0.1:7890")
        .set_env("no_proxy", "localhost,.corp")
        .set_env("UNRELATED_SECRET", "must-not-pass");
    // `open` forwards the credentials themselves (the default keeps them on the host:
    // network.rs); every policy points the guest's proxies at claude-vm's own.
    let r = w.run(&["--network", "open", "hello"]);
    r.ok();
    let env = &r.claude()["env"];
    assert_eq!(env["ANTHROPIC_API_KEY"], "sk-ant-SECRET-1");
    assert_eq!(env["CLAUDE_CODE_OAUTH_TOKEN"], "sk-ant-oat-SECRET-2");
    assert_eq!(env["ANTHROPIC_BASE_URL"], "https://gateway.example");
    let ours = env["HTTPS_PROXY"].as_str().unwrap();
    assert!(
        ours.starts_with("http://claude-vm:") && ours.contains("@host.lima.internal:"),
        "the session's proxy, not the host's: {ours}"
    );
    assert_eq!(env["no_proxy"], "localhost,127.0.0.1");
    assert!(env.get("UNRELATED_SECRET").is_none());
    no_secret_in_any_call(&w, "SECRET");
    no_secret_in_any_call(&w, "user:pw");
    no_secret_in_any_call(
        &w,
        ours.trim_start_matches("http://claude-vm:")
            .split('@')
            .next()
            .unwrap(),
    );

    // The switch turns credentials off, not the proxy.
    w.write_project(".claude-vm.toml", "[claude]\nforward_credentials = false\n");
    let r = w.run(&["hello"]);
    r.ok();
    let env = &r.claude()["env"];
    assert!(env.get("ANTHROPIC_API_KEY").is_none() && env.get("CLAUDE_CODE_OAUTH_TOKEN").is_none());
    assert!(env["HTTPS_PROXY"]
        .as_str()
        .unwrap()
        .starts_with("http://claude-vm:"));
}

#[test]
fn variables_from_every_source_with_explicit_values_winning() {
    let mut w = World::new();
    w.setup();
    std::fs::write(
        w.home.join(".claude-vm.toml"),
        "[env]\nFROM_GLOBAL = \"g\"\nOVERRIDDEN = \"global\"\n",
    )
    .unwrap();
    w.write_project(
        ".claude-vm.toml",
        "[env]\nOVERRIDDEN = \"project\"\nTRICKY = \"a'b\\\"c $d `e` \\\\ \\n f ✓\"\n[inherit]\nenv = [\"FROM_HOST\", \"NOT_SET_ANYWHERE\"]\n",
    );
    let dotenv = w.write(
        "vars.env",
        "# comment\nexport FROM_FILE='file value'\nQUOTED=\"multi\nline\"\nOVERRIDDEN=file\n",
    );
    w.set_env("FROM_HOST", "host-value")
        .set_env("ALSO_HOST", "also");
    // Inheriting host variables reaches beyond the project: the project file needs approval.
    let refused = w.run(&["hello"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("FROM_HOST, NOT_SET_ANYWHERE"),
        "{}",
        refused.stderr
    );
    w.run(&["trust"]).ok();
    let r = w.run(&[
        "--env-file",
        dotenv.to_str().unwrap(),
        "--inherit-env",
        "ALSO_HOST",
        "--env",
        "OVERRIDDEN=flag",
        "hello",
    ]);
    r.ok();
    let env = &r.claude()["env"];
    assert_eq!(env["FROM_GLOBAL"], "g");
    assert_eq!(env["TRICKY"], "a'b\"c $d `e` \\ \n f ✓");
    assert_eq!(env["FROM_HOST"], "host-value");
    assert_eq!(env["ALSO_HOST"], "also");
    assert_eq!(env["FROM_FILE"], "file value");
    assert_eq!(env["QUOTED"], "multi\nline");
    assert_eq!(
        env["OVERRIDDEN"], "flag",
        "--env > --env-file > project > global"
    );
    assert!(env.get("NOT_SET_ANYWHERE").is_none());
    no_secret_in_any_call(&w, "host-value");
    no_secret_in_any_call(&w, "file value");
}

#[test]
fn bad_variable_names_are_refused_with_their_source() {
    let w = World::new();
    w.setup();
    // Setup clones the shared base; what follows must start nothing.
    let after_setup = w.logged().len();
    w.write_project(".claude-vm.toml", "[env]\n\"BAD-NAME\" = \"x\"\n");
    let r = w.run(&["hello"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("`env.BAD-NAME`") && r.stderr.contains(".claude-vm.toml"),
        "{}",
        r.stderr
    );
    w.write_project(".claude-vm.toml", "[inherit]\nenv = [\"9LIVES\"]\n");
    let r = w.run(&["hello"]);
    assert!(r.stderr.contains("`inherit.env[0]`"), "{}", r.stderr);
    std::fs::remove_file(w.project.join(".claude-vm.toml")).unwrap();
    let dotenv = w.write("bad.env", "GOOD=1\nBAD NAME=2\n");
    let r = w.run(&["--env-file", dotenv.to_str().unwrap(), "hello"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("--env-file") && r.stderr.contains("bad.env"),
        "{}",
        r.stderr
    );
    let r = w.run(&["--inherit-env", "BAD-NAME", "hello"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--inherit-env"), "{}", r.stderr);
    let r = w.run(&["--host-url", "NO SPACES", "hello"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--host-url"), "{}", r.stderr);
    w.write_project(
        ".claude-vm.toml",
        "[inherit]\nhost_urls = [\"A\", \"-x\"]\n",
    );
    let r = w.run(&["hello"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("`inherit.host_urls[1]`"), "{}", r.stderr);
    std::fs::remove_file(w.project.join(".claude-vm.toml")).unwrap();
    assert!(
        w.logged()[after_setup..].iter().all(|c| c[0] != "clone"),
        "nothing was started"
    );
}

#[test]
fn ssh_agent_forwarding_reaches_a_real_agent_only_when_asked() {
    let mut w = World::new();
    w.setup();
    let sock = w.root.join("agent.sock");
    let agent = Command::new("ssh-agent")
        .arg("-a")
        .arg(&sock)
        .output()
        .expect("ssh-agent");
    assert!(agent.status.success());
    let pid = String::from_utf8_lossy(&agent.stdout)
        .split("SSH_AGENT_PID=")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .and_then(|s| s.parse::<i32>().ok())
        .expect("agent pid");
    let key = w.root.join("id_ed25519");
    let kg = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "e2e-key", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(kg.success());
    let add = Command::new("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    w.set_env("SSH_AUTH_SOCK", sock.to_str().unwrap());

    let with = w.run(&["-A", "shell", "--", "ssh-add", "-l"]);
    let without = w.run(&["shell", "--", "sh", "-c", "ssh-add -l; echo status=$?"]);
    // SAFETY: signalling the agent we started.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    with.ok();
    assert!(
        with.stdout.contains("e2e-key"),
        "the guest sees the host's key: {}",
        with.stdout
    );
    assert!(
        with.call("clone")
            .contains(&".ssh.forwardAgent = true".to_string()),
        "{:?}",
        with.call("clone")
    );
    assert!(
        !without.stdout.contains("e2e-key"),
        "no agent unless asked: {}",
        without.stdout
    );
    assert!(!without
        .call("clone")
        .iter()
        .any(|a| a.contains("forwardAgent")));

    // The config switch does the same as -A.
    w.write_project(".claude-vm.toml", "[ssh]\nforward_agent = true\n");
    let refused = w.run(&["shell", "--", "true"]);
    assert_eq!(
        refused.code, 2,
        "a project file may not hand out the agent unapproved"
    );
    assert!(refused.stderr.contains("SSH agent"), "{}", refused.stderr);
    w.run(&["trust"]).ok();
    let r = w.run(&["shell", "--", "true"]);
    assert!(r
        .call("clone")
        .contains(&".ssh.forwardAgent = true".to_string()));
}

#[test]
fn ports_become_lima_port_forwards_on_the_clone() {
    let w = World::new();
    w.write_project(
        ".claude-vm.toml",
        "[[ports]]\nguest = 3000\nhost = 13000\n\n[[ports]]\nguest = 5432\n",
    );
    // Host ports and resources beyond the user's own configuration need approval.
    w.run(&["trust"]).ok();
    w.setup();
    let r = w.run(&["shell", "--", "true"]);
    r.ok();
    let clone = r.call("clone");
    let set = clone
        .iter()
        .find(|a| a.starts_with(".portForwards = "))
        .expect("portForwards set");
    let rules: serde_json::Value =
        serde_json::from_str(set.strip_prefix(".portForwards = ").unwrap()).unwrap();
    assert_eq!(
        rules,
        serde_json::json!([{"guestPort": 3000, "hostPort": 13000}, {"guestPort": 5432, "hostPort": 5432}])
    );
    w.write_project(".claude-vm.toml", "[[ports]]\nguest = 80\nhost = 80\n");
    let r = w.run(&["shell", "--", "true"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("`ports[0].host`") && r.stderr.contains("1024"),
        "{}",
        r.stderr
    );
}

#[test]
fn git_identity_of_the_host_applies_in_the_guest() {
    let mut w = World::new();
    // In git's syntax `\"` is a literal quote: the name is `Ann O'Neil "$x" \ é`.
    std::fs::write(
        w.home.join(".gitconfig"),
        "[user]\n\tname = Ann O'Neil \\\"$x\\\" \\\\ é\n\temail = ann@example.com\n",
    )
    .unwrap();
    w.set_env("GIT_CONFIG_NOSYSTEM", "1");
    w.run(&["setup", "--git"]).ok();
    let r = w.run(&[
        "shell",
        "--",
        "sh",
        "-c",
        "git config --global user.name; git config --global user.email",
    ]);
    r.ok();
    assert_eq!(r.stdout, "Ann O'Neil \"$x\" \\ é\nann@example.com\n");
}

#[test]
fn gpg_signing_in_the_guest_uses_the_host_agent() {
    let mut w = World::new();
    let gnupg = w.root.join("gnupg");
    std::fs::create_dir(&gnupg).unwrap();
    let gpg = |args: &[&str]| {
        let out = Command::new("gpg")
            .args(args)
            .env("GNUPGHOME", &gnupg)
            .output()
            .expect("gpg");
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    gpg(&[
        "--batch",
        "--passphrase",
        "",
        "--quick-gen-key",
        "E2E <e2e@example.com>",
        "ed25519",
        "sign",
        "never",
    ]);
    let fpr = gpg(&["--list-keys", "--with-colons"])
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .expect("fingerprint")
        .to_owned();
    std::fs::write(
        w.home.join(".gitconfig"),
        format!("[user]\n\tname = E2E\n\temail = e2e@example.com\n\tsigningkey = {fpr}\n[commit]\n\tgpgsign = true\n"),
    )
    .unwrap();
    w.set_env("GNUPGHOME", gnupg.to_str().unwrap())
        .set_env("GIT_CONFIG_NOSYSTEM", "1");
    w.run(&["setup", "--gpg", "--git"]).ok();
    let r = w.run(&[
        "shell",
        "--",
        "git",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "signed in the vm",
    ]);
    let verify = Command::new("git")
        .args(["verify-commit", "HEAD"])
        .current_dir(&w.project)
        .env("GNUPGHOME", &gnupg)
        .output()
        .unwrap();
    let _ = Command::new("gpgconf")
        .args(["--kill", "gpg-agent"])
        .env("GNUPGHOME", &gnupg)
        .status();
    r.ok();
    let clone = r.call("clone");
    assert!(
        clone
            .iter()
            .any(|a| a.contains("\"reverse\":true") && a.contains("S.gpg-agent.extra")),
        "{clone:?}"
    );
    assert!(
        verify.status.success(),
        "the commit made in the VM carries a good signature: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn the_running_clone_carries_agent_and_port_settings_in_its_lima_yaml() {
    let mut w = World::new();
    w.write_project(".claude-vm.toml", "[[ports]]\nguest = 8080\nhost = 18080\n");
    // Host ports and resources beyond the user's own configuration need approval.
    w.run(&["trust"]).ok();
    w.setup();
    w.set_env("SSH_AUTH_SOCK", "/nonexistent/agent.sock");
    // A session that waits until the test has looked at its clone.
    let flag = w.project.join("looked");
    let script = format!("while [ ! -e '{}' ]; do sleep 0.05; done", flag.display());
    let child = w
        .command(&["-A", "shell", "--", "sh", "-c", &script], &w.project)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let yaml = loop {
        let running = w.instances().into_iter().find(|n| n.contains(".run-"));
        if let Some(name) = running {
            if w.lima_home.join(&name).join("ha.pid").exists() {
                break w.lima_yaml(&name);
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the session's clone never came up"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    std::fs::write(&flag, "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(yaml["ssh"]["forwardAgent"], true, "{yaml}");
    let forwards = yaml["portForwards"].as_array().expect("portForwards");
    assert!(
        forwards
            .iter()
            .any(|r| r["guestPort"] == 8080 && r["hostPort"] == 18080),
        "{forwards:?}"
    );
    assert!(
        w.instances().iter().all(|n| !n.contains(".run-")),
        "the clone is gone afterwards"
    );
}

#[test]
fn loopback_urls_reach_the_host_and_are_shown_in_dry_run_and_info() {
    let mut w = World::new();
    w.setup();
    w.set_env("ANTHROPIC_BASE_URL", "http://127.0.0.1:4000")
        .set_env("ANTHROPIC_API_KEY", "sk-ant-SECRET-3")
        .set_env("DATABASE_URL", "postgres://app:SECRETPW@localhost:5432/db")
        .set_env("MY_GATEWAY", "http://[::1]:8080/v1");
    w.write(
        "home/.claude-vm.toml",
        "[inherit]\nenv = [\"DATABASE_URL\", \"MY_GATEWAY\"]\nhost_urls = [\"MY_GATEWAY\"]\n",
    );
    let args = [
        "--env",
        "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost.:4318",
        "--env",
        "PLAIN=http://localhost:1",
        "--env",
        "MARKED=http://127.1:9",
        "--host-url",
        "MARKED",
    ];
    // `open`: the forwarded base URL itself reaches the VM (the default routes it through
    // the proxy, which forwards to the host's loopback URL: network.rs).
    let mut session = vec!["--network", "open"];
    session.extend(args);
    session.push("hello");
    let r = w.run(&session);
    r.ok();
    let env = &r.claude()["env"];
    assert_eq!(env["ANTHROPIC_BASE_URL"], "http://host.lima.internal:4000");
    assert_eq!(
        env["DATABASE_URL"],
        "postgres://app:SECRETPW@host.lima.internal:5432/db"
    );
    assert_eq!(env["MY_GATEWAY"], "http://host.lima.internal:8080/v1");
    assert_eq!(
        env["OTEL_EXPORTER_OTLP_ENDPOINT"],
        "http://host.lima.internal:4318"
    );
    assert_eq!(env["MARKED"], "http://host.lima.internal:9");
    assert_eq!(
        env["PLAIN"], "http://localhost:1",
        "not a URL variable, not marked"
    );
    no_secret_in_any_call(&w, "SECRET");

    let mut dry = vec!["--dry-run"];
    dry.extend(session.iter().copied());
    let r = w.run(&dry);
    r.ok();
    for line in [
        "  ANTHROPIC_BASE_URL: http://127.0.0.1:4000 -> http://host.lima.internal:4000",
        "  DATABASE_URL: postgres://***@localhost:5432/db -> postgres://***@host.lima.internal:5432/db",
        "  MARKED: http://127.1:9 -> http://host.lima.internal:9",
        "  MY_GATEWAY: http://[::1]:8080/v1 -> http://host.lima.internal:8080/v1",
    ] {
        assert!(r.stdout.lines().any(|l| l == line), "{line}\n{}", r.stdout);
    }
    assert!(!r.stdout.contains("SECRETPW"), "no password in the dry run");
    assert!(!r.stdout.contains("PLAIN:"));
    assert!(r.calls.is_empty(), "a dry run calls nothing");

    let mut info = args.to_vec();
    info.push("info");
    let r = w.run(&info);
    r.ok();
    assert!(
        r.stdout
            .contains("host urls:    ANTHROPIC_BASE_URL: http://127.0.0.1:4000 -> http://host.lima.internal:4000"),
        "{}",
        r.stdout
    );
    assert!(r
        .stdout
        .contains("MARKED: http://127.1:9 -> http://host.lima.internal:9"));
    assert!(!r.stdout.contains("SECRETPW"));
}

#[test]
fn the_guest_path_has_each_entry_once() {
    let w = World::new();
    w.setup();
    let r = w.run(&["shell", "--", "printenv", "PATH"]);
    r.ok();
    let path = r.stdout.trim_end();
    let entries: Vec<&str> = path.split(':').collect();
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.ends_with("/.local/bin"))
            .count(),
        1,
        "{path}"
    );
    let mut seen = std::collections::HashSet::new();
    assert!(
        entries.iter().all(|e| !e.is_empty() && seen.insert(*e)),
        "{path}"
    );
}

#[test]
fn an_invalid_env_line_never_echoes_its_value() {
    let w = World::new();
    w.setup();
    // Setup clones the shared base; what follows must start nothing.
    let after_setup = w.logged().len();
    const SECRET: &str = "sk-live-4f9a0c";
    let bad_args = [
        SECRET.to_owned(),
        format!("{SECRET}=x"),
        format!("BAD NAME={SECRET}"),
        format!("1X={SECRET}"),
    ];
    for arg in &bad_args {
        let r = w.run(&["--env", arg, "hello"]);
        assert_eq!(r.code, 2, "{arg}: {}", r.stderr);
        assert!(r.stderr.contains("--env"), "{}", r.stderr);
        assert!(!r.stderr.contains("sk-live"), "{arg}: {}", r.stderr);
    }
    for text in [
        format!("GOOD=1\n{SECRET}\n"),
        format!("GOOD=1\nBAD NAME={SECRET}\n"),
        format!("GOOD=1\nX='{SECRET}\n"),
        format!("{SECRET}=1\n"),
    ] {
        let dotenv = w.write("bad.env", &text);
        let r = w.run(&["--env-file", dotenv.to_str().unwrap(), "hello"]);
        assert_eq!(r.code, 2, "{text}: {}", r.stderr);
        assert!(r.stderr.contains("bad.env"), "{}", r.stderr);
        assert!(r.stderr.contains("line "), "{}", r.stderr);
        assert!(!r.stderr.contains("sk-live"), "{text:?}: {}", r.stderr);
    }
    assert!(
        w.logged()[after_setup..].iter().all(|c| c[0] != "clone"),
        "nothing was started"
    );
}
