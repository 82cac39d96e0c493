//! The build's network in the guest (issue 12, setup behind the proxy): the wrapper that runs
//! the provisioning script with the proxy configured for every tool, the in-guest rules
//! loaded, and nothing of either left in the template afterwards. Pure text.
//!
//! It carries the build's proxy token, so it is a bundle file of its own, outside the
//! template's fingerprint (which hashes the plan's files, `provision.sh` included, made
//! without it).

use std::fmt::Write as _;

use super::enforce::{ruleset, Enforcement, TABLE};
use super::quote;

/// apt reads the proxy from its configuration (sudo's `env_reset` would drop the variables).
pub const APT_PROXY: &str = "/etc/apt/apt.conf.d/99claude-vm-build-proxy";
/// sudo keeps the proxy variables for `sudo curl`, `sudo npm install -g`, `sudo pip` ...
pub const SUDOERS_KEEP: &str = "/etc/sudoers.d/zz-claude-vm-build-proxy";

/// The proxy's variables, as sessions get them.
pub const PROXY_VARIABLES: [&str; 4] = ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"];
pub const NO_PROXY_VARIABLES: [&str; 2] = ["NO_PROXY", "no_proxy"];

/// A session's counterparts of [`APT_PROXY`] and [`SUDOERS_KEEP`]: runtime scripts run
/// before the drop and may `sudo apt-get install`; the clone is thrown away with them.
pub const SESSION_APT_PROXY: &str = "/etc/apt/apt.conf.d/99claude-vm-session-proxy";
pub const SESSION_SUDOERS_KEEP: &str = "/etc/sudoers.d/zz-claude-vm-session-proxy";

/// The sudoers line that keeps the proxy variables through sudo's `env_reset`.
fn env_keep_line() -> String {
    format!(
        "Defaults env_keep += \"{} {}\"\n",
        PROXY_VARIABLES.join(" "),
        NO_PROXY_VARIABLES.join(" ")
    )
}

/// Session lines (before the runtime scripts) that point apt and sudo at the proxy the
/// session's environment names. Best effort: a guest without sudo fails at the root step.
pub fn session_proxy_config() -> String {
    let apt = "printf 'Acquire::http::Proxy \"%s\";\\nAcquire::https::Proxy \"%s\";\\n' \"$HTTPS_PROXY\" \"$HTTPS_PROXY\"";
    format!(
        "if [ -n \"${{HTTPS_PROXY:-}}\" ] && sudo -n true 2>/dev/null; then\n\
         \x20 {apt} | sudo -n tee {} >/dev/null\n\
         \x20 (umask 0227 && printf '%s' {} | sudo -n tee {} >/dev/null)\n\
         fi\n",
        quote(SESSION_APT_PROXY),
        quote(&env_keep_line()),
        quote(SESSION_SUDOERS_KEEP)
    )
}

pub struct BuildNetwork<'a> {
    /// `http://claude-vm:TOKEN@host.lima.internal:PORT`.
    pub proxy_url: &'a str,
    pub no_proxy: &'a str,
    /// The rules loaded for the build (the proxy and the host ports; `keep_sudo` is ignored:
    /// provisioning needs root).
    pub rules: &'a Enforcement,
    /// The guest path of the provisioning script this wrapper runs.
    pub entry: &'a str,
}

/// The wrapper: configure, load the rules, run `entry`, then check the rules were not lifted
/// and remove every trace (the proxy files and the table) whatever the outcome.
pub fn build_network(n: &BuildNetwork) -> String {
    let url = quote(n.proxy_url);
    let mut s = String::from(
        "# claude-vm: the build's network (generated per build, outside the fingerprint)\n\
         set -u\n\
         cvm_fail() { printf 'claude-vm: %s\\n' \"$1\" >&2; exit 1; }\n",
    );
    for v in PROXY_VARIABLES {
        let _ = writeln!(s, "export {v}={url}");
    }
    for v in NO_PROXY_VARIABLES {
        let _ = writeln!(s, "export {v}={}", quote(n.no_proxy));
    }
    let apt = format!(
        "Acquire::http::Proxy \"{0}\";\nAcquire::https::Proxy \"{0}\";\n",
        n.proxy_url
    );
    let keep = env_keep_line();
    // Run on every way out: the template must keep neither the token nor the rules (a
    // session loads its own, and `policy = "open"` sessions none).
    let _ = writeln!(
        s,
        "cvm_net_off() {{\n  sudo -n rm -f -- {apt} {keep}\n  sudo -n nft delete table inet {TABLE} 2>/dev/null\n  if sudo -n test -e {apt} || sudo -n test -e {keep}; then printf 'claude-vm: %s\\n' 'could not remove the build'\"'\"'s proxy settings from the template' >&2; return 1; fi\n}}\n\
         trap 'cvm_net_off || exit 1' EXIT",
        apt = quote(APT_PROXY),
        keep = quote(SUDOERS_KEEP),
    );
    s.push_str(
        "sudo -n true 2>/dev/null || cvm_fail 'cannot put the build behind the network proxy: sudo -n does not work for the guest user'\n",
    );
    let _ = writeln!(
        s,
        "printf '%s' {} | sudo -n tee {} >/dev/null || cvm_fail 'cannot configure apt for the network proxy'",
        quote(&apt),
        quote(APT_PROXY)
    );
    let _ = writeln!(
        s,
        "(umask 0227 && printf '%s' {} | sudo -n tee {} >/dev/null) || cvm_fail 'cannot let sudo keep the proxy variables'",
        quote(&keep),
        quote(SUDOERS_KEEP)
    );
    let _ = writeln!(
        s,
        "printf '%s' {} | sudo -n nft -f - || cvm_fail 'cannot install the build'\"'\"'s network rules (nft)'",
        quote(&ruleset(n.rules))
    );
    let _ = writeln!(s, "bash {}\ncvm_status=$?", quote(n.entry));
    // Setup scripts run with sudo and could lift the rules: not silently.
    let _ = writeln!(
        s,
        "if ! sudo -n nft list table inet {TABLE} >/dev/null 2>&1; then\n  printf 'claude-vm: %s\\n' 'the build'\"'\"'s network rules were removed during provisioning (by a setup script?); set [network] policy = \"open\" if the build needs the whole network' >&2\n  [ \"$cvm_status\" != 0 ] || cvm_status=1\nfi\nexit $cvm_status"
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};
    use std::os::unix::fs::PermissionsExt;

    fn rules() -> Enforcement {
        Enforcement {
            proxy: SocketAddrV4::new(Ipv4Addr::new(192, 168, 5, 2), 4100),
            host_ports: vec![5432],
            keep_sudo: false,
        }
    }

    /// Runs the wrapper with stand-ins for sudo (runs the command, files under a root
    /// directory) and nft (records what it is given; `list` answers from a state file).
    fn run(entry_body: &str, url: &str) -> (i32, String, String, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap().keep();
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let root = dir.join("root");
        for d in ["etc/apt/apt.conf.d", "etc/sudoers.d"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let stub = |name: &str, body: &str| {
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/bash\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        // Paths under /etc land in the stand-in root.
        stub(
            "sudo",
            &format!(
                "[ \"$1\" = -n ] && shift; a=(); for x in \"$@\"; do case $x in /etc/*) a+=(\"{r}$x\");; *) a+=(\"$x\");; esac; done; \"${{a[@]}}\"",
                r = root.display()
            ),
        );
        stub(
            "nft",
            &format!(
                "s={d}/nft.state; case \"$1\" in -f) cat > {d}/nft.loaded; touch $s;; list) [ -e $s ];; delete) rm -f $s;; esac",
                d = dir.display()
            ),
        );
        let entry = dir.join("provision.sh");
        std::fs::write(&entry, entry_body).unwrap();
        let script = build_network(&BuildNetwork {
            proxy_url: url,
            no_proxy: "localhost,127.0.0.1",
            rules: &rules(),
            entry: entry.to_str().unwrap(),
        });
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("CVM_ROOT", &root)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            dir,
        )
    }

    #[test]
    fn the_build_sees_the_proxy_and_the_template_keeps_nothing() {
        let url = "http://claude-vm:tok'$(x)@host.lima.internal:4100";
        let body = "echo \"proxy=$HTTPS_PROXY no=$NO_PROXY\"\n\
                    cat \"$CVM_ROOT/etc/apt/apt.conf.d/99claude-vm-build-proxy\"\n\
                    cat \"$CVM_ROOT/etc/sudoers.d/zz-claude-vm-build-proxy\"\n\
                    exit 7\n";
        let (code, out, err, dir) = run(body, url);
        assert_eq!(code, 7, "the provisioning's status passes through: {err}");
        assert!(
            out.contains(&format!("proxy={url} no=localhost,127.0.0.1")),
            "{out}"
        );
        assert!(
            out.contains(&format!("Acquire::https::Proxy \"{url}\";")),
            "{out}"
        );
        assert!(
            out.contains("Defaults env_keep += \"HTTP_PROXY HTTPS_PROXY http_proxy https_proxy NO_PROXY no_proxy\""),
            "{out}"
        );
        let loaded = std::fs::read_to_string(dir.join("nft.loaded")).unwrap();
        assert!(
            loaded.contains("ip daddr 192.168.5.2 tcp dport 4100 accept")
                && loaded.contains("tcp dport 5432 accept"),
            "{loaded}"
        );
        let root = dir.join("root");
        assert!(!root
            .join("etc/apt/apt.conf.d/99claude-vm-build-proxy")
            .exists());
        assert!(!root.join("etc/sudoers.d/zz-claude-vm-build-proxy").exists());
        assert!(!dir.join("nft.state").exists(), "the rules are gone");
    }

    #[test]
    fn rules_lifted_by_a_setup_script_fail_the_build_loudly() {
        let (code, _, err, dir) = run("nft delete table inet claude_vm\nexit 0\n", "http://x:1");
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("network rules were removed"), "{err}");
        assert!(!dir
            .join("root/etc/apt/apt.conf.d/99claude-vm-build-proxy")
            .exists());
        let (code, _, err, _) = run("exit 0\n", "http://x:1");
        assert_eq!(code, 0, "{err}");
    }
}
