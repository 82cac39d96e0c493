//! The in-guest enforcement (src/script/enforce.rs) run for real in the simulator's guest:
//! real nftables in the guest's own network namespace, Debian's real sudo and setpriv, the
//! slirp4netns user-mode network. The guest user is the simulator's, as Lima's cloud-init makes
//! it (a normal user, a NOPASSWD:ALL sudoers entry); it is put in the docker group here, the
//! session script's root step and drop run as that user, and the agent side tries to get out.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::support::{simulator, World};

/// What enforce.rs uses from its parent module in the crate.
fn quote(s: &str) -> Cow<'_, str> {
    shell_escape::unix::escape(Cow::Borrowed(s))
}

#[path = "../../src/script/enforce.rs"]
#[allow(dead_code)]
mod enforce_script;

use enforce_script::{drop_and_run, Enforcement, SUDOERS_DENY};

/// A listener on the host's 127.0.0.1 that counts the connections it accepts.
fn listener() -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            c.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    (port, count)
}

fn limactl(w: &World, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(simulator())
        .args(args)
        .env_clear()
        .env("HOME", &w.home)
        .env("LIMA_HOME", &w.lima_home)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("LANG", "C.UTF-8")
        .current_dir(&w.home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run limactl");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read");
    let status = child.wait().expect("wait");
    (status.code().unwrap_or(-1), out, err)
}

/// A network namespace's identity (`net:[INODE]`), of the process `pid` or of this one.
fn netns_of(pid: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/ns/net: {e}"))
        .display()
        .to_string()
}

/// `program args...` run inside the network namespace of the guest's agent process `pid`.
fn in_guest_netns(pid: &str, program: &str, args: &[&str]) -> std::process::Output {
    Command::new("nsenter")
        .args(["-t", pid, "-n", program])
        .args(args)
        .output()
        .expect("run nsenter into the guest's network namespace")
}

/// `name=ok` when COMMAND succeeds, `name=no` when it fails, one line per probe.
fn guest_probe(name: &str, command: &str) -> String {
    format!("if ( {command} ) >/dev/null 2>&1; then echo {name}=ok; else echo {name}=no; fi\n")
}

/// Network attempts from the guest (bash's /dev/tcp and /dev/udp; a UDP probe sends a byte).
fn attempts(p: &Ports) -> String {
    let tcp = |host: &str, port: u16| format!("timeout 5 bash -c 'exec 3<>/dev/tcp/{host}/{port}'");
    let udp = |host: &str, port: u16| {
        format!("timeout 5 bash -c 'exec 3<>/dev/udp/{host}/{port} && printf x >&3'")
    };
    [
        guest_probe("proxy", &tcp("192.168.5.2", p.proxy)),
        guest_probe("host_port", &tcp("192.168.5.2", p.allowed)),
        guest_probe("host_loopback", &tcp("192.168.5.2", p.service)),
        guest_probe("dns_lima", &udp("192.168.5.3", 53)),
        guest_probe("dns_public", &udp("1.1.1.1", 53)),
        guest_probe("dns_tcp", &tcp("1.1.1.1", 53)),
        guest_probe("ipv6", &udp("fd00:1::2", 9)),
    ]
    .concat()
}

fn results(out: &str, phase: &str) -> BTreeMap<String, String> {
    let start = out
        .find(&format!("== {phase}\n"))
        .unwrap_or_else(|| panic!("no {phase} section in:\n{out}"));
    out[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("== "))
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Host listeners: the proxy, a host port the session lists, a service it does not.
struct Ports {
    proxy: u16,
    allowed: u16,
    service: u16,
}

struct Outcome {
    /// The guest user's name.
    user: String,
    out: String,
    err: String,
    before: BTreeMap<String, String>,
    after: BTreeMap<String, String>,
    root: BTreeMap<String, String>,
    /// Connections each host listener accepted (proxy, allowed, service).
    hits: [usize; 3],
}

const HOSTILE: &str = "it's \"$x\" `id`\nline é";

/// Boots a guest, puts its user in the docker group, runs a session script built with `e` (the
/// runtime part, then `drop_and_run`) as that user, and reads what each probe got.
fn run_enforced(keep_sudo: bool) -> Outcome {
    let w = World::new();
    let (proxy, proxy_hits) = listener();
    let (allowed, allowed_hits) = listener();
    let (service, service_hits) = listener();
    let ports = Ports {
        proxy,
        allowed,
        service,
    };
    let e = Enforcement {
        proxy: SocketAddrV4::new(Ipv4Addr::new(192, 168, 5, 2), proxy),
        host_ports: vec![allowed],
        keep_sudo,
    };
    let probes = [
        guest_probe("sudo", "sudo -n true"),
        guest_probe("nft_list", "nft list ruleset"),
        guest_probe("nft_flush", "nft flush ruleset"),
        guest_probe("nft_via_sudo", "sudo -n nft list ruleset"),
        guest_probe("unshare_net", "unshare -n true"),
        guest_probe("sg_docker", "sg docker -c 'id -Gn' | grep -qw docker"),
        guest_probe(
            "newgrp_docker",
            "echo 'id -Gn' | newgrp docker | grep -qw docker",
        ),
        attempts(&ports),
        "echo groups=$(id -Gn | tr ' ' ,)\n".into(),
        "echo uid=$(id -u)\n".into(),
        "echo nnp=$(awk '/^NoNewPrivs/ {print $2}' /proc/self/status)\n".into(),
        "echo capeff=$(awk '/^CapEff/ {print $2}' /proc/self/status)\n".into(),
        "echo capbnd=$(awk '/^CapBnd/ {print $2}' /proc/self/status)\n".into(),
        "echo var_kept=$([ \"$CVM_PROBE\" = \"$CVM_WANT\" ] && echo yes)\n".into(),
        "echo path_kept=$(case :$PATH: in *:/opt/runtime-bin:*) echo yes;; esac)\n".into(),
    ]
    .concat();
    // The session script: the runtime part (exports, sudo still works), then the drop.
    let session = format!(
        "cvm_fail() {{ echo \"claude-vm: $1\" >&2; exit \"${{2:-1}}\"; }}\n\
         export CVM_PROBE={h} CVM_WANT={h}\n\
         export PATH=$PATH:/opt/runtime-bin\n\
         echo '== before'\n\
         echo netns=$(readlink /proc/self/ns/net)\n\
         {pre}{sudo_pre}echo groups=$(id -Gn | tr ' ' ,)\n\
         {drop}",
        h = quote(HOSTILE),
        pre = attempts(&ports),
        sudo_pre = guest_probe("sudo", "sudo -n true"),
        drop = drop_and_run(&e, "echo '== after'; exec bash /tmp/probe.sh"),
    );
    // As root (through Debian's sudo): docker's packages make the group and its install
    // instructions add the user; an IPv6 address to try.
    let root_part = "set -e\n\
         echo user=$(id -un)\n\
         sudo -n groupadd -f docker\n\
         sudo -n usermod -aG docker \"$USER\"\n\
         sudo -n ip -6 addr add fd00:1::15/64 dev eth0 nodad\n";
    // A new login (so the docker group applies), then the session as the user.
    let setup = format!(
        "set -e\n\
         printf '%s' {session} >/tmp/session.sh\n\
         printf '%s' {probes} >/tmp/probe.sh\n\
         set +e\n\
         env -i HOME=\"$HOME\" USER=\"$USER\" LOGNAME=\"$USER\" SHELL=/bin/bash \
         PATH=/usr/local/bin:/usr/bin:/bin bash /tmp/session.sh\n\
         echo \"== status $?\"\n\
         echo '== root'\n\
         test -e {deny} && echo deny=present\n\
         {fresh}",
        session = quote(&session),
        probes = quote(&probes),
        deny = quote(SUDOERS_DENY),
        // This login shell is a process of the user's without no_new_privs.
        fresh = guest_probe("sudo_fresh", "sudo -n true"),
    );
    let name = "enforce1";
    let (code, _, err) = limactl(
        &w,
        &[
            "create",
            "--tty=false",
            "--name",
            name,
            "--set",
            ".mounts=[]",
            "template:debian-13",
        ],
        "",
    );
    assert_eq!(code, 0, "create: {err}");
    let (code, _, err) = limactl(&w, &["start", "--tty=false", name], "");
    assert_eq!(code, 0, "start: {err}");
    let (code, first, err) = limactl(&w, &["shell", name, "bash", "-s"], root_part);
    assert_eq!(code, 0, "{first}\n{err}");
    let user = first
        .lines()
        .find_map(|l| l.strip_prefix("user="))
        .unwrap_or_default()
        .to_string();
    assert!(!user.is_empty() && user != "root", "{first}");
    let (code, mut out, err) = limactl(&w, &["shell", name, "bash", "-s"], &setup);
    // The guest's ruleset as root sees it, from the host (the user can no longer ask sudo).
    let agent = std::fs::read_to_string(w.lima_home.join(name).join("ha.pid")).unwrap_or_default();
    let agent = agent.trim();
    let table = in_guest_netns(agent, "nft", &["list", "table", "inet", "claude_vm"]);
    // Rules are per network namespace: the shell that installed them ran in the guest's,
    // which is not this test's (the host's), so the host's firewall was never in reach.
    let guest_netns = netns_of(agent);
    assert_ne!(
        guest_netns,
        netns_of("self"),
        "the guest shares the host's network"
    );
    assert!(
        out.contains(&format!("netns={guest_netns}\n")),
        "the session ran outside the guest's network namespace ({guest_netns}):\n{out}"
    );
    if table.status.success() {
        out.push_str("table=present\n");
    }
    let (deleted, _, derr) = limactl(&w, &["delete", "--force", name], "");
    assert_eq!(deleted, 0, "delete: {derr}");
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("== status 0"), "{out}\n{err}");
    Outcome {
        user,
        before: results(&out, "before"),
        after: results(&out, "after"),
        root: results(&out, "root"),
        hits: [&proxy_hits, &allowed_hits, &service_hits].map(|h| h.load(Ordering::SeqCst)),
        out,
        err,
    }
}

/// The guest needs its own user (the simulator has one only in namespace mode as root; a user
/// namespace maps only the caller, as uid 0): elsewhere these tests fail, saying why, rather
/// than pass without having run.
#[track_caller]
fn require_guest_user() {
    assert!(
        crate::support::isolated() && unsafe { libc::geteuid() } == 0,
        "enforce: needs the simulator's namespace mode as root (a guest user apart from root); \
         run the tests as root on Linux, as .ci/run does"
    );
}

fn assert_before_the_rules(o: &Outcome) {
    let (out, err) = (&o.out, &o.err);
    for k in [
        "sudo",
        "proxy",
        "host_port",
        "host_loopback",
        "dns_lima",
        "ipv6",
    ] {
        assert_eq!(o.before[k], "ok", "before the rules, {k}: {out}\n{err}");
    }
    assert!(
        o.before["groups"].split(',').any(|g| g == "docker"),
        "{out}"
    );
}

fn assert_network_closed(o: &Outcome) {
    let (out, err) = (&o.out, &o.err);
    for k in ["host_loopback", "dns_lima", "dns_public", "dns_tcp", "ipv6"] {
        assert_eq!(
            o.after[k], "no",
            "under the rules, {k} must fail: {out}\n{err}"
        );
    }
    for k in ["proxy", "host_port"] {
        assert_eq!(o.after[k], "ok", "under the rules, {k}: {out}\n{err}");
    }
    assert_eq!(o.root["table"], "present");
    // Before and after for the proxy and the listed port; before only for the other service.
    assert_eq!(o.hits, [2, 2, 1], "{out}");
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "needs the simulator's Linux namespaces"
)]
fn after_the_drop_the_agent_cannot_get_out_or_get_root() {
    require_guest_user();
    let o = run_enforced(false);
    let (out, err) = (&o.out, &o.err);
    assert_before_the_rules(&o);
    assert_network_closed(&o);
    for k in [
        "sudo",
        "nft_list",
        "nft_flush",
        "nft_via_sudo",
        "unshare_net",
        "sg_docker",
        "newgrp_docker",
    ] {
        assert_eq!(
            o.after[k], "no",
            "after the drop, {k} must fail: {out}\n{err}"
        );
    }
    let groups: Vec<&str> = o.after["groups"].split(',').collect();
    assert_eq!(groups, [o.user.as_str()], "{out}");
    assert_ne!(o.after["uid"], "0");
    assert_eq!(o.after["nnp"], "1");
    assert_eq!(o.after["capeff"], "0000000000000000");
    assert_eq!(o.after["capbnd"], "0000000000000000");
    assert_eq!(o.after["var_kept"], "yes", "{out}");
    assert_eq!(o.after["path_kept"], "yes", "{out}");
    assert_eq!(o.root["deny"], "present");
    // A new process of the user's (without no_new_privs) is refused by sudoers itself.
    assert_eq!(o.root["sudo_fresh"], "no", "{out}\n{err}");
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "needs the simulator's Linux namespaces"
)]
fn a_shell_that_keeps_sudo_still_has_the_network_rules() {
    require_guest_user();
    let o = run_enforced(true);
    let (out, err) = (&o.out, &o.err);
    assert_before_the_rules(&o);
    assert_network_closed(&o);
    for k in ["sudo", "nft_via_sudo"] {
        assert_eq!(o.after[k], "ok", "keep_sudo: {k}: {out}\n{err}");
    }
    assert_eq!(o.after["nnp"], "0");
    assert_eq!(o.after["var_kept"], "yes", "{out}");
    assert_eq!(o.root.get("deny"), None, "{out}");
    assert_eq!(o.root["sudo_fresh"], "ok", "{out}\n{err}");
}

/// Through real sessions: the guest user is Lima's (not root), and a runtime script and the
/// shell's command can still reach root through sudo. `SessionInput.enforcement` is None on
/// this branch, so nothing drops sudo yet: when the network branch wires the drop, the
/// agent's side of this flips (sudo refused after the runtime scripts), the runtime script's
/// stays.
#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "needs the simulator's Linux namespaces"
)]
fn a_session_runs_as_the_guest_user_and_reaches_root_only_through_sudo() {
    require_guest_user();
    let w = World::new();
    let script = w.write(
        "home/runtime.sh",
        "sudo -n true && echo runtime-root-ok\nid -u >/tmp/runtime-uid\n",
    );
    let script = script.to_str().expect("utf-8 path");
    w.setup();
    let r = w.run(&["shell", "--runtime-script", script, "--", "id", "-u"]);
    r.ok();
    let uid: u32 = r
        .stdout
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no uid in: {}", r.stdout));
    assert_ne!(uid, 0, "the session runs as root: {}", r.stdout);
    assert!(
        r.stdout.contains("runtime-root-ok"),
        "a runtime script could not sudo: {}{}",
        r.stdout,
        r.stderr
    );
    let r = w.run(&[
        "shell",
        "--runtime-script",
        script,
        "--",
        "sh",
        "-c",
        "cat /tmp/runtime-uid; id -un; if sudo -n true 2>/dev/null; then echo root-ok; else echo no-root; fi; grep NoNewPrivs /proc/self/status",
    ]);
    r.ok();
    // Runtime scripts run before the drop (they may sudo); the session's command after it.
    assert!(r.stdout.contains("runtime-root-ok"), "{}", r.stdout);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines.ends_with(&[&uid.to_string(), "lima", "no-root", "NoNewPrivs:\t1"]),
        "{}{}",
        r.stdout,
        r.stderr
    );
}
