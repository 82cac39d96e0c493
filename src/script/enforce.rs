//! The session's root step: the guest's nftables rules, then the agent's drop to a plain user
//! (no sudo, no root-equivalent group, no_new_privs). Pure text; the guest runs it.

use std::fmt::Write as _;

use super::quote;

/// What the session's root step enforces before the agent runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforcement {
    /// The proxy as the guest reaches it: host.lima.internal's address and the port.
    pub proxy: std::net::SocketAddrV4,
    /// Host-loopback ports the session may reach directly at the same address (config `host_ports`).
    pub host_ports: Vec<u16>,
    /// Keep sudo for the user after the rules are in (a `claude-vm shell` option); the agent never keeps it.
    pub keep_sudo: bool,
}

/// claude-vm's own nftables table; nothing else in the guest's ruleset is touched.
pub const TABLE: &str = "claude_vm";

/// The sudoers drop-in that takes the user's rights away. sudo applies the last matching rule,
/// and `@includedir` reads files in name order, so this one comes after Lima's
/// (`90-cloud-init-users`).
pub const SUDOERS_DENY: &str = "/etc/sudoers.d/zz-claude-vm-no-sudo";

/// Groups that give root (or the means to it) without sudo: dropped from the agent's process.
const ROOT_EQUIVALENT_GROUPS: &[&str] = &[
    "root",
    "sudo",
    "wheel",
    "admin",
    "adm",
    "docker",
    "lxd",
    "incus",
    "incus-admin",
    "libvirt",
    "kvm",
    "disk",
    "shadow",
];

/// nftables ruleset text (`nft -f -` input) for the guest.
pub fn ruleset(e: &Enforcement) -> String {
    let ip = e.proxy.ip();
    let mut ports = vec![e.proxy.port()];
    for p in &e.host_ports {
        if !ports.contains(p) {
            ports.push(*p);
        }
    }
    let mut s = String::new();
    // Declaring then deleting the table makes the load idempotent (and atomic: one
    // transaction), and touches no other table.
    let _ = writeln!(s, "table inet {TABLE}");
    let _ = writeln!(s, "delete table inet {TABLE}");
    let _ = writeln!(s, "table inet {TABLE} {{");
    s.push_str("  chain output {\n    type filter hook output priority 0; policy drop;\n");
    s.push_str("    oif \"lo\" accept\n");
    // Before the established rule, so no flow that predates the rules carries DNS or IPv6.
    s.push_str("    meta nfproto ipv6 drop\n");
    s.push_str("    meta l4proto { tcp, udp } th dport 53 drop\n");
    s.push_str("    ct state established,related accept\n");
    for p in ports {
        let _ = writeln!(s, "    ip daddr {ip} tcp dport {p} accept");
    }
    s.push_str("  }\n");
    s.push_str("  chain forward {\n    type filter hook forward priority 0; policy drop;\n  }\n");
    s.push_str("  chain input {\n    type filter hook input priority 0; policy accept;\n");
    s.push_str("    meta nfproto ipv6 iif != \"lo\" drop\n  }\n");
    s.push_str("}\n");
    s
}

/// Shell text, placed in the session script after the runtime scripts have been sourced and before
/// the final command, that (as root through sudo -n) loads the ruleset, removes the user's sudo
/// rights for this VM, and then runs the rest with no root, no extra groups, no_new_privs.
/// `final_command` is the already-quoted command line (e.g. `exec claude --dangerously-skip-permissions ...`),
/// run in the dropped context with the runtime scripts' exported environment preserved (PATH included).
pub fn drop_and_run(e: &Enforcement, final_command: &str) -> String {
    let rules = ruleset(e);
    let mut s = String::from(
        "sudo -n true 2>/dev/null || cvm_fail 'cannot enforce the network policy: sudo -n does not work for the guest user' 126\n",
    );
    if e.keep_sudo {
        // The user keeps root, so there is nothing to drop: only the rules go in.
        let _ = writeln!(
            s,
            "printf '%s' {} | sudo -n nft -f - || cvm_fail 'cannot install the network rules (nft)' 126",
            quote(&rules)
        );
        s.push_str(final_command);
        s.push('\n');
        return s;
    }
    // sudo resets the environment and PATH (env_reset, secure_path): the exported environment
    // goes through a 0600 file of the user's, read back after the drop.
    s.push_str(
        "cvm_envf=$(mktemp) && env -0 >\"$cvm_envf\" || cvm_fail 'cannot save the session environment' 126\n",
    );
    let _ = writeln!(
        s,
        "exec sudo -n -- /bin/sh -c {} sh {} \"$cvm_envf\" {} {} {}",
        quote(ROOT_STEP),
        quote(&rules),
        quote(final_command),
        quote(SUDOERS_DENY),
        quote(&ROOT_EQUIVALENT_GROUPS.join(" "))
    );
    s
}

/// Runs as root: $1 the ruleset, $2 the environment file, $3 the final command, $4
/// [`SUDOERS_DENY`], $5 the root-equivalent group names. Who to drop to comes from sudo
/// (`SUDO_USER`, `SUDO_UID`, `SUDO_GID`, from the real uid), not from the user's PATH.
const ROOT_STEP: &str = "\
[ -n \"$SUDO_USER\" ] && [ \"${SUDO_UID:-0}\" != 0 ] && [ \"${SUDO_GID:-0}\" != 0 ] \
|| { echo 'claude-vm: cannot enforce the network policy: the guest user is root' >&2; exit 126; }
printf '%s' \"$1\" | nft -f - || { echo 'claude-vm: cannot install the network rules (nft)' >&2; exit 126; }
(umask 0227 && printf '%s ALL=(ALL:ALL) !ALL\\n' \"$SUDO_USER\" | tee \"$4\" >/dev/null) \
|| { echo 'claude-vm: cannot remove the guest user'\"'\"'s sudo rights' >&2; exit 126; }
cvm_keep=
for cvm_g in $(id -G -- \"$SUDO_USER\"); do
  cvm_n=$(getent group \"$cvm_g\" | cut -d: -f1)
  case \" $5 \" in *\" $cvm_n \"*) continue ;; esac
  [ \"$cvm_g\" = 0 ] || cvm_keep=${cvm_keep:+$cvm_keep,}$cvm_g
done
if [ -n \"$cvm_keep\" ]; then cvm_keep=\"--groups=$cvm_keep\"; else cvm_keep=--clear-groups; fi
exec setpriv --reuid=\"$SUDO_UID\" --regid=\"$SUDO_GID\" \"$cvm_keep\" --no-new-privs --bounding-set=-all --inh-caps=-all \
-- /bin/bash -c 'mapfile -d \"\" -t cvm_e <\"$1\" && rm -f -- \"$1\" && exec env -i \"${cvm_e[@]}\" /bin/bash -c \"$2\"' bash \"$2\" \"$3\"
";

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    // Local, not crate::script::testing: tests/e2e/enforce.rs includes this file by #[path].
    fn run_bash(script: &str) -> (i32, String, String) {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn enforcement(host_ports: Vec<u16>, keep_sudo: bool) -> Enforcement {
        Enforcement {
            proxy: SocketAddrV4::new(Ipv4Addr::new(192, 168, 5, 2), 41234),
            host_ports,
            keep_sudo,
        }
    }

    fn output_chain(rules: &str) -> Vec<String> {
        let start = rules.find("chain output {").unwrap();
        let end = start + rules[start..].find("\n  }").unwrap();
        rules[start..end]
            .lines()
            .skip(1)
            .map(|l| l.trim().to_string())
            .collect()
    }

    #[test]
    fn output_allows_only_loopback_established_the_proxy_and_host_ports() {
        let rules = ruleset(&enforcement(vec![5432, 41234, 8080], false));
        assert_eq!(
            output_chain(&rules),
            [
                "type filter hook output priority 0; policy drop;",
                "oif \"lo\" accept",
                "meta nfproto ipv6 drop",
                "meta l4proto { tcp, udp } th dport 53 drop",
                "ct state established,related accept",
                "ip daddr 192.168.5.2 tcp dport 41234 accept",
                "ip daddr 192.168.5.2 tcp dport 5432 accept",
                "ip daddr 192.168.5.2 tcp dport 8080 accept",
            ]
        );
        assert!(rules.contains(
            "chain forward {\n    type filter hook forward priority 0; policy drop;\n  }"
        ));
        assert!(rules.contains("meta nfproto ipv6 iif != \"lo\" drop"));
    }

    #[test]
    fn only_claude_vms_table_is_replaced() {
        let rules = ruleset(&enforcement(vec![], false));
        assert!(rules.starts_with(
            "table inet claude_vm\ndelete table inet claude_vm\ntable inet claude_vm {\n"
        ));
        assert!(!rules.contains("flush ruleset"));
        assert_eq!(rules.matches("table ").count(), 3);
        // Nothing accepts port 53, and no accept rule but the proxy's without host ports.
        assert_eq!(rules.matches("accept").count(), 4, "{rules}");
    }

    #[test]
    fn the_ruleset_goes_to_nft_in_one_root_step_and_the_agent_drops_everything() {
        let e = enforcement(vec![5432], false);
        let text = drop_and_run(&e, "exec claude --x");
        assert_eq!(text.matches("exec sudo -n -- /bin/sh -c").count(), 1);
        assert!(text.contains(&*quote(&ruleset(&e))));
        for flag in [
            "--no-new-privs",
            "--bounding-set=-all",
            "--inh-caps=-all",
            "--clear-groups",
            "--groups=",
        ] {
            assert!(text.contains(flag), "{flag}");
        }
        assert!(text.contains(" docker lxd "));
        assert!(text.contains(SUDOERS_DENY));
        assert!(text.contains(&*quote("exec claude --x")));
    }

    #[test]
    fn keep_sudo_loads_the_rules_and_drops_nothing() {
        let text = drop_and_run(&enforcement(vec![], true), "exec bash -i");
        assert!(text.contains("| sudo -n nft -f -"));
        assert!(!text.contains("setpriv"));
        assert!(!text.contains(SUDOERS_DENY));
        assert!(text.ends_with("exec bash -i\n"));
    }

    /// Stand-ins for sudo, nft, setpriv and tee record what the root step does; the final
    /// command's environment and arguments must arrive byte-exact.
    #[test]
    fn the_dropped_command_keeps_the_exported_environment() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let rec = tmp.path().join("rec");
        std::fs::create_dir(&rec).unwrap();
        let stub = |name: &str, body: &str| {
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/bash\n{body}\n")).unwrap();
            let mut perm = std::fs::metadata(&p).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
            std::fs::set_permissions(&p, perm).unwrap();
        };
        let r = rec.to_str().unwrap();
        // sudo: env_reset and secure_path, as Debian's sudoers has them.
        stub(
            "sudo",
            &format!(
                "[ \"$1\" = -n ] || exit 9; shift; [ \"$1\" = -- ] && shift; \
                 [ \"$1\" = true ] && exit 0; echo \"$@\" >>{r}/sudo; \
                 exec env -i PATH={}:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
                 SUDO_USER=alice SUDO_UID=1000 SUDO_GID=1000 \"$@\"",
                bin.display()
            ),
        );
        stub(
            "id",
            "case \"$*\" in '-G -- alice') echo 1000 27 999 0;; *) exit 1;; esac",
        );
        stub(
            "getent",
            "case \"$2\" in 27) echo sudo:x:27:;; 999) echo docker:x:999:;; 0) echo root:x:0:;; 1000) echo alice:x:1000:;; esac",
        );
        stub(
            "nft",
            &format!("echo \"$@\" >{r}/nft.args; cat >{r}/nft.in"),
        );
        stub(
            "tee",
            &format!("cat >{r}/tee.in; echo \"$@\" >{r}/tee.args"),
        );
        stub(
            "setpriv",
            &format!(
                "while [ \"$1\" != -- ]; do echo \"$1\" >>{r}/setpriv; shift; done; shift; exec \"$@\""
            ),
        );
        let tmpdir = tmp.path().join("t");
        std::fs::create_dir(&tmpdir).unwrap();
        let e = enforcement(vec![5432], false);
        let hostile = "it's \"$x\" `id`\nnew line é";
        let script = format!(
            "cvm_fail() {{ echo \"FAIL $1\" >&2; exit 1; }}\n\
             export PATH={}:/usr/bin:/bin\n\
             export TMPDIR={}\n\
             export CVM_TEST={}\n\
             {}",
            bin.display(),
            tmpdir.display(),
            quote(hostile),
            drop_and_run(
                &e,
                "exec printf '<%s>' \"$CVM_TEST\" \"$PATH\" \"${SUDO_USER-unset}\" a\\ b"
            )
        );
        let (code, out, err) = run_bash(&script);
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            out,
            format!("<{hostile}><{}:/usr/bin:/bin><unset><a b>", bin.display())
        );
        let read = |f: &str| std::fs::read_to_string(rec.join(f)).unwrap();
        assert_eq!(read("nft.args"), "-f -\n");
        assert_eq!(read("nft.in"), ruleset(&e));
        assert_eq!(read("tee.args"), format!("{SUDOERS_DENY}\n"));
        assert_eq!(read("tee.in"), "alice ALL=(ALL:ALL) !ALL\n");
        // docker, sudo and root are dropped; the user's own group stays.
        assert_eq!(
            read("setpriv"),
            "--reuid=1000\n--regid=1000\n--groups=1000\n--no-new-privs\n--bounding-set=-all\n--inh-caps=-all\n"
        );
        // The environment file is gone once read.
        assert_eq!(std::fs::read_dir(&tmpdir).unwrap().count(), 0);
    }
}
