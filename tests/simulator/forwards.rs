//! Forwards: the ssh agent, port and socket forwards (issue 3), gpg's extra socket.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::support::*;

#[test]
fn agent_forwarding_only_when_configured() {
    let sim = Sim::new();
    let sock = sim.base().join("agent.sock");
    let agent = Command::new("ssh-agent")
        .args(["-D", "-a"])
        .arg(&sock)
        .stdout(Stdio::null())
        .spawn()
        .expect("ssh-agent (openssh-client) is needed for this test");
    assert!(
        wait_until(Duration::from_secs(5), || sock.exists()),
        "ssh-agent did not start"
    );
    let mut with_agent = Sim::new();
    with_agent.lima_home = sim.lima_home.clone();
    with_agent.set_env("SSH_AUTH_SOCK", sock.to_str().expect("utf8"));
    sim.create("plain", &["--mount-none"]);
    sim.create(
        "fwd",
        &["--mount-none", "--set", ".ssh.forwardAgent = true"],
    );
    for name in ["plain", "fwd"] {
        with_agent.run(&["start", name]).ok();
    }
    // ssh-add exits 1 for an empty agent, 2 when it cannot reach one.
    let fwd = with_agent.sh("fwd", "echo $SSH_AUTH_SOCK; ssh-add -l");
    assert_eq!(fwd.code, Some(1), "{}{}", fwd.stdout, fwd.stderr);
    assert!(fwd.stdout.starts_with("/tmp/ssh-"), "{}", fwd.stdout);
    let plain = with_agent.sh("plain", "echo \"[$SSH_AUTH_SOCK]\"; ssh-add -l");
    assert_eq!(plain.code, Some(2), "{}{}", plain.stdout, plain.stderr);
    assert!(plain.stdout.starts_with("[]"));
    let mut agent = agent;
    let _ = agent.kill();
    let _ = agent.wait();
}

/// Sends `hello` from the guest to the unix socket `sock` (shell text, so
/// `"$HOME/x"` works) and prints the reply.
fn guest_echo(sim: &Sim, name: &str, sock: &str) -> Out {
    let client = r#"python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"hello")
s.shutdown(socket.SHUT_WR)
print(s.recv(100).decode())
'"#;
    sim.sh(name, &format!("{client} {sock}"))
}

/// lima.yaml's `user.uid`: the host's, or Lima's fallback uid for a root host.
fn lima_uid() -> u32 {
    // SAFETY: getuid has no side effects.
    match unsafe { libc::getuid() } {
        0 => 1000,
        uid => uid,
    }
}

#[test]
fn reverse_socket_forwards_reach_the_host() {
    let sim = Sim::new();
    let host_sock = sim.base().join("host/echo.sock");
    fs::create_dir_all(host_sock.parent().expect("parent")).expect("mkdir");
    echo_server(&host_sock);
    let rules = serde_json::json!([
        {"guestSocket": "{{.Home}}/fwd/echo.sock", "hostSocket": host_sock, "reverse": true},
        {"guestSocket": "/run/user/{{.UID}}/echo.sock", "hostSocket": host_sock, "reverse": true},
        {"guestPort": 8080, "hostPort": 18080},
        {"guestPortRange": [3000, 3009], "hostPortRange": [13000, 13009], "proto": "tcp"},
    ]);
    sim.create(
        "vm",
        &["--mount-none", "--set", &format!(".portForwards = {rules}")],
    );
    sim.run(&["start", "vm"]).ok();
    let home = format!("/home/{}.linux", whoami());
    // sshd does not create the guest directory: the first forward fails at
    // boot (a warning in ha.stderr.log), the boot goes on.
    let log = fs::read_to_string(sim.lima_home.join("vm/ha.stderr.log")).expect("ha log");
    assert!(
        log.contains(&format!(
            "level=warning msg=\"Failed to set up forward from \\\"{}\\\" (host) to \\\"{home}/fwd/echo.sock\\\" (guest)\"",
            host_sock.display()
        )),
        "{log}"
    );
    // /run/user/UID exists as logind makes it; that forward works at once.
    let run_sock = format!("/run/user/{}/echo.sock", lima_uid());
    assert_eq!(
        guest_echo(&sim, "vm", &run_sock).ok().stdout,
        "echo:hello\n"
    );
    assert_namespace_mode(&sim);
    let out = guest_echo(&sim, "vm", &format!("{home}/fwd/echo.sock"));
    assert_ne!(out.code, Some(0), "the failed forward has no socket");
    // With the directory made, the next boot binds it (mode 0600, as sshd).
    sim.sh("vm", "mkdir ~/fwd").ok();
    sim.run(&["stop", "vm"]).ok();
    sim.run(&["start", "vm"]).ok();
    let out = guest_echo(&sim, "vm", "\"$HOME/fwd/echo.sock\"").ok();
    assert_eq!(out.stdout, "echo:hello\n");
    assert_eq!(
        sim.sh("vm", "stat -c %a ~/fwd/echo.sock").ok().stdout,
        "600\n"
    );
    // The filled rules are in the instance's config, TCP ones included.
    let cfg = &sim.list_json("vm")["config"]["portForwards"];
    assert_eq!(cfg[0]["guestSocket"], format!("{home}/fwd/echo.sock"));
    assert_eq!(cfg[0]["reverse"], true);
    assert_eq!(cfg[2]["guestPortRange"], serde_json::json!([8080, 8080]));
    assert_eq!(cfg[2]["hostPortRange"], serde_json::json!([18080, 18080]));
    assert_eq!(cfg[3]["proto"], "tcp");
    assert_eq!(cfg[3]["guestIP"], "127.0.0.1");
    // A graceful stop removes the guest socket, a forced one leaves it.
    let guest_sock = sim
        .lima_home
        .join(format!("vm/simdisk{home}/fwd/echo.sock"));
    assert!(guest_sock.exists());
    sim.run(&["stop", "vm"]).ok();
    assert!(!guest_sock.exists(), "graceful stop runs `rm -f` on it");
    let log = fs::read_to_string(sim.lima_home.join("vm/ha.stderr.log")).expect("ha log");
    assert!(log.contains("Stopping forwarding"), "{log}");
    sim.run(&["start", "vm"]).ok();
    sim.run(&["stop", "--force", "vm"]).ok();
    assert!(guest_sock.exists(), "a forced stop leaves it behind");
    // ...and the next boot replaces the stale socket.
    sim.run(&["start", "vm"]).ok();
    assert_eq!(
        guest_echo(&sim, "vm", "\"$HOME/fwd/echo.sock\"")
            .ok()
            .stdout,
        "echo:hello\n"
    );
    sim.run(&["delete", "--force", "vm"]).ok();
}

#[test]
fn forwards_find_a_host_socket_that_appears_later() {
    let sim = Sim::new();
    let host_sock = sim.base().join("late/echo.sock");
    let rules = serde_json::json!([
        {"guestSocket": "/tmp/echo.sock", "hostSocket": host_sock, "reverse": true},
    ]);
    sim.create(
        "vm",
        &["--mount-none", "--set", &format!(".portForwards = {rules}")],
    );
    sim.run(&["start", "vm"]).ok();
    // Lima creates the host socket's directory (0750).
    let mode = fs::metadata(host_sock.parent().expect("parent"))
        .expect("host dir made")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750);
    let out = guest_echo(&sim, "vm", "/tmp/echo.sock");
    assert_ne!(out.code, Some(0), "no host server yet");
    echo_server(&host_sock);
    assert_eq!(
        guest_echo(&sim, "vm", "/tmp/echo.sock").ok().stdout,
        "echo:hello\n"
    );
}

#[test]
fn socket_forwards_in_fallback_mode() {
    let mut sim = Sim::new();
    sim.set_env("LIMA_SIM_ISOLATION", "fallback");
    let host_sock = sim.base().join("echo.sock");
    echo_server(&host_sock);
    let rules = serde_json::json!([
        {"guestSocket": "{{.Home}}/echo.sock", "hostSocket": host_sock, "reverse": true},
    ]);
    sim.create(
        "vm",
        &["--mount-none", "--set", &format!(".portForwards = {rules}")],
    );
    sim.run(&["start", "vm"]).ok();
    // The guest path is bound at its host-side location: $HOME finds it.
    assert_eq!(
        guest_echo(&sim, "vm", "\"$HOME/echo.sock\"").ok().stdout,
        "echo:hello\n"
    );
    assert_eq!(sim.isolation(), "fallback");
    let home = sim
        .lima_home
        .join(format!("vm/simdisk/home/{}.linux", whoami()));
    assert!(home.join("echo.sock").exists());
}

#[test]
fn port_forwards_are_validated_like_lima() {
    let sim = Sim::new();
    let long = format!("/{}", "s".repeat(108));
    let cases: Vec<(String, &str)> = vec![
        (
            r#"[{"guestSocket": "rel.sock", "hostSocket": "/h.sock", "reverse": true}]"#.into(),
            "field `portForwards[0].guestSocket` must be an absolute path, but is \\\"rel.sock\\\"",
        ),
        (
            r#"[{"guestSocket": "/g.sock", "reverse": true}]"#.into(),
            "field `portForwards[0].reverse` must be false",
        ),
        (
            r#"[{"hostSocket": "/h.sock", "reverse": true}]"#.into(),
            "field `portForwards[0].hostSocket` can only be mapped from a single port or socket. not a range",
        ),
        (
            format!(r#"[{{"guestSocket": "/g.sock", "hostSocket": "{long}", "reverse": true}}]"#),
            "field `portForwards[0].hostSocket` must be less than UNIX_PATH_MAX=108 characters, but is 109",
        ),
        (
            r#"[{"guestPort": 22}]"#.into(),
            "field `portForwards[0].guestPort` must not be 22",
        ),
        (
            r#"[{"guestPort": 80}, {"guestPortRange": [3000, 3001], "hostPortRange": [4000, 4009]}]"#.into(),
            "field `portForwards[1].hostPortRange` must specify the same number of ports as field `portForwards[1].guestPortRange`",
        ),
        (
            r#"[{"guestPort": 80, "proto": "sctp"}]"#.into(),
            "field `portForwards[0].proto` must be \\\"tcp\\\", \\\"udp\\\", or \\\"any\\\"",
        ),
        (
            r#"[{"guestPort": "http"}]"#.into(),
            "field \\\"portForwards[0].guestPort\\\": cannot unmarshal string into int",
        ),
    ];
    for (rules, needle) in &cases {
        sim.run(&[
            "create",
            "--tty=false",
            "--name",
            "bad",
            "--set",
            &format!(".portForwards = {rules}"),
            "template:debian-13",
        ])
        .fails_with(1, needle);
        assert!(!sim.lima_home.join("bad").exists(), "{rules}");
    }
    // `--port-forward HOST:GUEST` and relative host sockets (under sock/).
    sim.create(
        "ok",
        &[
            "--mount-none",
            "--port-forward",
            "18080:8080",
            "--set",
            r#".portForwards += [{"guestSocket": "/tmp/a.sock", "hostSocket": "a.sock", "reverse": true}]"#,
        ],
    );
    let cfg = sim.list_json("ok")["config"]["portForwards"].clone();
    let rules = cfg.as_array().expect("rules");
    let tcp = rules
        .iter()
        .find(|r| r["guestPort"] == 8080)
        .expect("tcp rule");
    assert_eq!(tcp["hostPort"], 18080);
    let sock = rules
        .iter()
        .find(|r| r["guestSocket"] == "/tmp/a.sock")
        .expect("socket rule");
    assert_eq!(
        sock["hostSocket"],
        sim.lima_home.join("ok/sock/a.sock").to_str().expect("utf8")
    );
    // A socket forward from the guest to the host is not emulated.
    sim.create(
        "fwd",
        &[
            "--mount-none",
            "--set",
            r#".portForwards = [{"guestSocket": "/run/docker.sock", "hostSocket": "/tmp/d.sock"}]"#,
        ],
    );
    sim.run(&["start", "fwd"]).fails_with(
        1,
        "uses socket `portForwards` without `reverse: true`, which the simulator cannot emulate",
    );
}

/// A host gpg-agent with a throwaway home and a passphrase-less key; killed
/// when dropped.
struct HostGpg {
    home: PathBuf,
}

impl HostGpg {
    fn gpg(&self, args: &[&str]) -> Output {
        Command::new("gpg")
            .env("GNUPGHOME", &self.home)
            .args(["--batch", "--yes"])
            .args(args)
            .output()
            .expect("gpg (GnuPG) is needed for this test")
    }

    fn dir(&self, what: &str) -> String {
        let out = Command::new("gpgconf")
            .env("GNUPGHOME", &self.home)
            .args(["--list-dirs", what])
            .output()
            .expect("gpgconf");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for HostGpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", &self.home)
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

#[test]
fn gpg_signs_in_the_guest_through_the_forwarded_extra_socket() {
    let sim = Sim::new();
    let gpg = HostGpg {
        home: sim.base().join("gnupg"),
    };
    fs::create_dir(&gpg.home).expect("mkdir");
    fs::set_permissions(&gpg.home, fs::Permissions::from_mode(0o700)).expect("chmod");
    let key = gpg.gpg(&[
        "--passphrase",
        "",
        "--quick-gen-key",
        "Sim Test <sim@test.invalid>",
        "ed25519",
        "sign",
        "never",
    ]);
    assert!(key.status.success(), "{key:?}");
    let extra = gpg.dir("agent-extra-socket");
    let public = sim.base().join("pub.asc");
    let export = gpg.gpg(&["--armor", "--export", "sim@test.invalid"]);
    fs::write(&public, &export.stdout).expect("write key");
    let rules = serde_json::json!([
        {"guestSocket": "/run/user/{{.UID}}/gnupg/S.gpg-agent", "hostSocket": extra, "reverse": true},
    ]);
    // A guest uid of its own: the guest's gpg (uid 0) must still find the
    // user's /run/user/UID/gnupg, as the real guest user's gpg does.
    sim.create(
        "vm",
        &[
            "--mount-none",
            "--set",
            &format!(".portForwards = {rules} | .user.uid = 4242"),
        ],
    );
    sim.run(&["start", "vm"]).ok();
    // GnuPG's user units make /run/user/UID/gnupg at login once it is
    // installed; before that the forward has no directory to bind in.
    sim.sh("vm", "sudo apt-get install -y -qq gnupg").ok();
    sim.run(&["stop", "vm"]).ok();
    sim.run(&["start", "vm"]).ok();
    sim.run(&["copy", public.to_str().expect("utf8"), "vm:/tmp/pub.asc"])
        .ok();
    let out = sim
        .sh(
            "vm",
            "install -d -m 700 ~/.gnupg && echo no-autostart > ~/.gnupg/gpg.conf \
             && gpg --batch --quiet --import /tmp/pub.asc \
             && echo 'signed in the guest' | gpg --batch --local-user sim@test.invalid --armor --sign",
        )
        .ok();
    assert!(
        out.stdout.contains("-----BEGIN PGP MESSAGE-----"),
        "{}",
        out.stderr
    );
    // The host checks the guest's signature.
    let sig = sim.base().join("msg.asc");
    fs::write(&sig, &out.stdout).expect("write signature");
    let verify = gpg.gpg(&["--decrypt", sig.to_str().expect("utf8")]);
    assert!(verify.status.success(), "{verify:?}");
    assert_eq!(
        String::from_utf8_lossy(&verify.stdout),
        "signed in the guest\n"
    );
    assert!(String::from_utf8_lossy(&verify.stderr)
        .contains("Good signature from \"Sim Test <sim@test.invalid>\""));
    // Without the forward the guest has no agent: nothing is signed.
    sim.run(&["stop", "vm"]).ok();
    sim.run(&["edit", "--tty=false", "--set", ".portForwards = []", "vm"])
        .ok();
    sim.run(&["start", "vm"]).ok();
    let out = sim.sh(
        "vm",
        "echo x | gpg --batch --local-user sim@test.invalid --sign >/dev/null",
    );
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("no gpg-agent running"),
        "{}",
        out.stderr
    );
}
