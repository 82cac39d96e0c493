//! The guest's network: Lima's user-mode network (slirp4netns).

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

fn host_command(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} on the host: {e} (the tests need it installed)"));
    assert!(
        out.status.success(),
        "{program} {args:?} on the host failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_guest_has_limas_user_mode_network() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    let out = sim
        .sh(
            "vm",
            "ip -4 -o addr show dev eth0 | awk '{print $4}'; ip route show default; \
             ip -o link | awk -F': ' '{print $2}' | sort | tr '\\n' ' '; echo; \
             cat /etc/resolv.conf; getent hosts host.lima.internal; readlink /proc/self/ns/net",
        )
        .ok();
    assert_namespace_mode(&sim);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "192.168.5.15/24", "{}", out.stdout);
    assert!(
        lines[1].starts_with("default via 192.168.5.2 dev eth0"),
        "{}",
        out.stdout
    );
    // Nothing of the host's interfaces: the guest's own loopback and its NIC.
    assert_eq!(lines[2].trim(), "eth0 lo", "{}", out.stdout);
    assert_eq!(lines[3], "nameserver 192.168.5.3");
    assert_eq!(lines[4], "192.168.5.2     host.lima.internal");
    let host_ns = fs::read_link("/proc/self/ns/net").expect("host netns");
    assert_ne!(
        lines[5],
        host_ns.to_string_lossy(),
        "the guest shares the host's network"
    );
    let log = fs::read_to_string(sim.lima_home.join("vm/ha.stderr.log")).unwrap_or_default();
    assert!(log.contains("user-mode network (slirp4netns)"), "{log}");
}

/// The slirp4netns attached to the host agent `agent` (by its command line).
fn slirp_of(agent: &str) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.first().is_some_and(|a| a.ends_with(b"slirp4netns"))
                && args.contains(&agent.as_bytes())
                && !fs::read_to_string(format!("/proc/{pid}/stat"))
                    .unwrap_or_default()
                    .contains(") Z ")
        })
        .collect()
}

#[test]
fn slirp4netns_lives_and_ends_with_the_host_agent() {
    let sim = Sim::new();
    sim.create("vm", &["--mount-none"]);
    for force in [false, true] {
        sim.run(&["start", "vm"]).ok();
        let agent = fs::read_to_string(sim.lima_home.join("vm/ha.pid")).expect("ha.pid");
        let agent = agent.trim().to_string();
        assert_eq!(
            slirp_of(&agent).len(),
            1,
            "one slirp4netns for agent {agent}"
        );
        let mut stop = vec!["stop"];
        if force {
            stop.push("--force");
        }
        stop.push("vm");
        sim.run(&stop).ok();
        assert!(
            wait_until(Duration::from_secs(3), || slirp_of(&agent).is_empty()),
            "slirp4netns outlived the host agent (stop force={force})"
        );
    }
}

#[test]
fn the_guest_reaches_the_hosts_loopback_through_host_lima_internal() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    let server = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = server.local_addr().expect("addr").port();
    let serving = std::thread::spawn(move || {
        let (mut conn, peer) = server.accept().expect("accept");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&conn), &mut line).expect("read");
        conn.write_all(format!("host saw {} from {}\n", line.trim(), peer.ip()).as_bytes())
            .expect("write");
    });
    let out = sim.sh(
        "vm",
        &format!(
            "exec 3<>/dev/tcp/host.lima.internal/{port} && echo hello >&3 && head -n1 <&3; \
             (exec 4<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo guest-loopback-is-the-host || echo guest-loopback-is-its-own"
        ),
    )
    .ok();
    serving.join().expect("server thread");
    assert_namespace_mode(&sim);
    // slirp turns the gateway into the host's 127.0.0.1, as Lima's usernet does.
    assert_eq!(
        out.stdout,
        "host saw hello from 127.0.0.1\nguest-loopback-is-its-own\n"
    );
}

#[test]
fn nft_and_routes_in_the_guest_change_only_the_guests_network() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    let host_routes = host_command("ip", &["route"]);
    let server = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = server.local_addr().expect("addr").port();
    let out = sim
        .sh(
            "vm",
            &format!(
                "set -e; : in the guest namespace; readlink /proc/self/ns/net; sudo nft add table inet t; sudo nft add chain inet t out '{{ type filter hook output priority 0; policy drop; }}'; sudo nft add rule inet t out oifname lo accept; sudo nft list ruleset; \
                 timeout 1 bash -c 'exec 3<>/dev/tcp/host.lima.internal/{port}' 2>/dev/null && echo reached || echo dropped"
            ),
        )
        .ok();
    assert_namespace_mode(&sim);
    // Rules live in a network namespace: the one they went into is not the host's.
    let host_netns = fs::read_link("/proc/self/ns/net").expect("host netns");
    let guest_netns = out.stdout.lines().next().unwrap_or_default();
    assert!(guest_netns.starts_with("net:["), "{}", out.stdout);
    assert_ne!(guest_netns, host_netns.display().to_string());
    assert!(out.stdout.contains("table inet t {"), "{}", out.stdout);
    assert!(out.stdout.contains("policy drop"), "{}", out.stdout);
    // The guest's rule holds in the guest...
    assert!(out.stdout.ends_with("dropped\n"), "{}", out.stdout);
    // ...stays for its next command (one "VM"), and never reaches the host.
    let again = sim
        .sh(
            "vm",
            ": guest; sudo nft list tables; sudo ip route del default; ip route",
        )
        .ok();
    assert!(
        again.stdout.starts_with("table inet t\n"),
        "{}",
        again.stdout
    );
    assert!(!again.stdout.contains("default"), "{}", again.stdout);
    assert_eq!(host_command("ip", &["route"]), host_routes);
    let conn = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(conn.is_ok(), "the host's loopback must be untouched");
    // A reboot is a fresh network, as a VM's.
    sim.run(&["stop", "vm"]).ok();
    sim.run(&["start", "vm"]).ok();
    let fresh = sim
        .sh("vm", ": guest; nft list ruleset; ip route show default")
        .ok();
    assert_eq!(fresh.stdout, "default via 192.168.5.2 dev eth0 \n");
}

#[test]
fn a_guest_port_is_forwarded_to_the_hosts_loopback() {
    let sim = Sim::new();
    let (guest_port, host_port) = (free_port(), free_port());
    let rules = serde_json::json!([{"guestPort": guest_port, "hostPort": host_port}]);
    sim.create(
        "vm",
        &["--mount-none", "--set", &format!(".portForwards = {rules}")],
    );
    sim.run(&["start", "vm"]).ok();
    // A one-shot server on the guest's 127.0.0.1, left running in the guest.
    let serve = format!(
        "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('127.0.0.1',{guest_port}))\ns.listen()\nc,a=s.accept()\n\
         c.sendall(('guest saw '+a[0]+'\\n').encode())\nc.close()\n"
    );
    let script = format!("nohup python3 -c {} >/dev/null 2>&1 &", shell_words(&serve));
    sim.sh("vm", &script).ok();
    assert_namespace_mode(&sim);
    let mut reply = String::new();
    let got = wait_until(Duration::from_secs(5), || {
        let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", host_port)) else {
            return false;
        };
        reply.clear();
        std::io::Read::read_to_string(&mut conn, &mut reply).is_ok() && !reply.is_empty()
    });
    assert!(got, "nothing answered on the host's 127.0.0.1:{host_port}");
    // The host agent connects on the guest's own loopback, as Lima's forwarder does.
    assert_eq!(reply, "guest saw 127.0.0.1\n");
    let log = fs::read_to_string(sim.lima_home.join("vm/ha.stderr.log")).unwrap_or_default();
    assert!(
        log.contains(&format!(
            "Forwarding TCP from 127.0.0.1:{guest_port} to 127.0.0.1:{host_port}"
        )),
        "{log}"
    );
    // The rule moved the port: the guest's port number is not the host's.
    assert!(std::net::TcpStream::connect(("127.0.0.1", guest_port)).is_err());
}

fn shell_words(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[test]
fn dns_to_a_resolver_that_is_not_there_fails_cleanly() {
    let sim = Sim::new();
    sim.running_with_project("vm");
    let host_resolv = fs::read("/etc/resolv.conf").unwrap_or_default();
    let started = Instant::now();
    // Nothing listens on the guest's own 127.0.0.1:53.
    let out = sim.sh(
        "vm",
        "echo 'nameserver 127.0.0.1' | sudo tee /etc/resolv.conf >/dev/null; getent hosts no-such-host.example; echo \"getent=$?\"",
    );
    assert_namespace_mode(&sim);
    assert_eq!(out.stdout, "getent=2\n", "{}", out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        fs::read("/etc/resolv.conf").unwrap_or_default(),
        host_resolv
    );
    // The next boot has Lima's forwarder again.
    sim.run(&["stop", "vm"]).ok();
    sim.run(&["start", "vm"]).ok();
    assert_eq!(
        sim.sh("vm", "cat /etc/resolv.conf").ok().stdout,
        "nameserver 192.168.5.3\n"
    );
}

#[test]
fn a_linked_resolv_conf_is_followed_inside_the_guest() {
    let sim = Sim::new();
    sim.create("vm", &["--mount-none"]);
    // As systemd-resolved links it; the link must not lead to the host's /run.
    let upper_etc = sim.lima_home.join("vm/simdisk/upper/etc");
    fs::create_dir_all(&upper_etc).expect("mkdir");
    std::os::unix::fs::symlink(
        "../run/systemd/resolve/stub-resolv.conf",
        upper_etc.join("resolv.conf"),
    )
    .expect("symlink");
    sim.run(&["start", "vm"]).ok();
    let out = sim
        .sh(
            "vm",
            "readlink /etc/resolv.conf; cat /etc/resolv.conf; cat /run/systemd/resolve/stub-resolv.conf",
        )
        .ok();
    assert_namespace_mode(&sim);
    assert_eq!(
        out.stdout,
        "../run/systemd/resolve/stub-resolv.conf\nnameserver 192.168.5.3\nnameserver 192.168.5.3\n"
    );
    assert!(
        !Path::new("/run/systemd/resolve/stub-resolv.conf").exists()
            || !fs::read_to_string("/run/systemd/resolve/stub-resolv.conf")
                .unwrap_or_default()
                .contains("192.168.5.3")
    );
}

#[test]
fn the_hosts_network_only_when_asked_for() {
    let mut sim = Sim::new();
    sim.create("vm", &["--mount-none"]);
    // Without slirp4netns the boot fails, naming the package; it never shares silently.
    let bare = sim
        .cmd(&["start", "vm"])
        .env("PATH", "/nonexistent")
        .output()
        .expect("run limactl");
    let bare: Out = bare.into();
    assert_eq!(bare.code, Some(1), "{}", bare.stderr);
    assert!(
        bare.stderr.contains("apt-get install slirp4netns"),
        "{}",
        bare.stderr
    );
    assert!(
        bare.stderr.contains("LIMA_SIM_NETWORK=host"),
        "{}",
        bare.stderr
    );
    assert_eq!(sim.list_json("vm")["status"], "Stopped");
    sim.set_env("LIMA_SIM_NETWORK", "bridged");
    let bad = sim.run(&["start", "vm"]);
    assert_eq!(bad.code, Some(1));
    assert!(
        bad.fatal_msg()
            .contains("LIMA_SIM_NETWORK: unknown network \"bridged\""),
        "{}",
        bad.stderr
    );
    let mut sim = sim;
    sim.env.clear();
    sim.set_env("LIMA_SIM_NETWORK", "host");
    sim.run(&["start", "vm"]).ok();
    let out = sim
        .sh("vm", "getent hosts host.lima.internal; readlink /proc/self/ns/net; test -e /etc/resolv.conf && echo resolv")
        .ok();
    assert_namespace_mode(&sim);
    let host_ns = fs::read_link("/proc/self/ns/net").expect("host netns");
    assert_eq!(
        out.stdout,
        format!(
            "127.0.0.1       host.lima.internal\n{}\nresolv\n",
            host_ns.display()
        )
    );
}

/// A guest on the host's network (`LIMA_SIM_NETWORK=host`, or fallback mode) would change the
/// host's own firewall: its firewall tools refuse, by name, by absolute path and through
/// sudo. Two guards keep a broken refusal from reaching this machine: the guest runs in a
/// network namespace the harness made for it (`unshare --net`), and the guest's attempts only
/// parse a rule, never commit it. A broken refusal shows as a run that was not refused.
#[test]
fn a_guest_on_the_hosts_network_cannot_touch_the_hosts_firewall() {
    // In the guest; iptables and its kin are refused the same way.
    const GUEST_RULE: &str = "nft --check add table inet cvm_t";
    // The guest's network namespace, then "COMMAND: STATUS REFUSALS" for each command.
    let try_in_guest = |commands: &[String]| -> (String, String) {
        let quoted: Vec<String> = commands.iter().map(|c| format!("'{c}'")).collect();
        let script = format!(
            "readlink /proc/self/ns/net; for c in {}; do $c >/dev/null 2>\"$HOME/err\"; \
             echo \"$c: $? $(grep -c 'refused by the Lima simulator' \"$HOME/err\")\"; done",
            quoted.join(" ")
        );
        let want = commands.iter().map(|c| format!("{c}: 1 1\n")).collect();
        (script, want)
    };
    let (attempts, want) = try_in_guest(&[
        format!("/usr/sbin/{GUEST_RULE}"),
        format!("sudo {GUEST_RULE}"),
        format!("sudo /usr/sbin/{GUEST_RULE}"),
    ]);
    let own_netns = fs::read_link("/proc/self/ns/net").expect("this test's netns");
    // The namespace the guest's commands ran in (the first line), and the rest.
    let netns_and_rest = |stdout: &str| -> (String, String) {
        let (first, rest) = stdout.split_once('\n').unwrap_or((stdout, ""));
        assert!(first.starts_with("net:["), "{stdout}");
        assert_ne!(
            first,
            own_netns.display().to_string(),
            "not the harness's namespace"
        );
        (first.to_owned(), rest.to_owned())
    };

    let mut sim = Sim::new();
    sim.set_env("LIMA_SIM_NETWORK", "host");
    sim.create("vm", &["--mount-none"]);
    sim.run_in_own_netns(&["start", "vm"]).ok();
    let out = sim
        .run_in_own_netns(&["shell", "vm", "bash", "-c", &attempts])
        .ok();
    assert_namespace_mode(&sim);
    let (guest_netns, rest) = netns_and_rest(&out.stdout);
    assert_eq!(rest, want, "{}", out.stderr);
    // The guest kept the namespace it booted in: a later shell joins it, wherever it starts.
    let again = sim.sh("vm", "readlink /proc/self/ns/net").ok();
    assert_eq!(again.stdout.trim_end(), guest_netns);

    let mut sim = Sim::new();
    sim.set_env("LIMA_SIM_ISOLATION", "fallback");
    sim.create("vm", &["--mount-none"]);
    sim.run_in_own_netns(&["start", "vm"]).ok();
    // Fallback has no root of its own: the absolute paths are the host's tools, only PATH can
    // guard the guest, so only names are tried here.
    let (by_name, want) = try_in_guest(&[GUEST_RULE.to_owned(), format!("sudo {GUEST_RULE}")]);
    let out = sim
        .run_in_own_netns(&["shell", "vm", "bash", "-c", &by_name])
        .ok();
    assert_eq!(sim.isolation(), "fallback");
    let (_, rest) = netns_and_rest(&out.stdout);
    assert_eq!(rest, want, "{}", out.stderr);
}
