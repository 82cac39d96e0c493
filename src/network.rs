//! A session's network, between the configuration and the host proxy (`net`): the rules a
//! session or a build runs under, the proxy started for it, the guest's proxy and
//! credential variables, the in-guest enforcement, and the line and events at its end.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

use crate::config::presets;
use crate::config::{Config, Policy};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::net::{self, Credential, Mode, Rules};
use crate::paths::HostPaths;
use crate::plan::environment::{HostUrl, HOST_FROM_GUEST};
use crate::script::Enforcement;
use crate::ui::{self, Ui};

/// `host.lima.internal` as the guest's kernel sees it (Lima's user-mode network, and the
/// simulator's): the address the in-guest rules let through to the proxy.
pub const HOST_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 168, 5, 2);

/// What tools in the guest must not send through the proxy.
pub const NO_PROXY: &str = "localhost,127.0.0.1";

type MakeCredential = fn(String) -> Credential;

/// The variables that carry a credential for Claude Code, in the order one is chosen for
/// the proxy to put in (an API key first).
const CREDENTIALS: [(&str, MakeCredential); 3] = [
    ("ANTHROPIC_API_KEY", Credential::ApiKey),
    ("ANTHROPIC_AUTH_TOKEN", Credential::Bearer),
    ("CLAUDE_CODE_OAUTH_TOKEN", Credential::Bearer),
];

pub fn log_dir(paths: &HostPaths) -> PathBuf {
    paths.data_dir.join("network")
}

pub fn mode(p: Policy) -> Mode {
    match p {
        Policy::Allowlist => Mode::Allowlist,
        Policy::Open => Mode::Open,
        Policy::Offline => Mode::Offline,
    }
}

/// A session's rules: the policy, the presets of the template's `tools` (for `allowlist`),
/// `[network] allow`, `deny` and `host_ports`.
pub fn rules(config: &Config, tools: &[String]) -> Result<Rules> {
    let n = &config.network;
    let tools: Vec<&str> = tools.iter().map(String::as_str).collect();
    let mut allow = presets::hosts(&presets::session(&tools));
    allow.extend(n.allow.iter().cloned());
    Rules::new(mode(n.policy), &allow, &n.deny, &n.host_ports).map_err(|m| {
        Error::usage(format!("invalid network configuration: {m}"))
            .with_hint("fix the entry in .claude-vm.toml or on the command line")
    })
}

/// The proxy serving one session (or build), and what it gave the guest.
pub struct Running {
    proxy: net::Proxy,
    name: String,
    policy: Policy,
    host_ports: Vec<u16>,
    dir: PathBuf,
}

fn start_proxy(paths: &HostPaths) -> Result<(net::Proxy, PathBuf)> {
    let dir = log_dir(paths);
    let proxy = net::Proxy::start(net::Config::new(dir.clone())).map_err(|e| {
        Error::failure(format!("cannot start the network proxy: {e}"))
            .with_hint(format!("check that {} is writable", dir.display()))
    })?;
    Ok((proxy, dir))
}

/// Starts the proxy for `name`, registers it, and rewrites the guest's environment: the
/// proxy variables, and (unless `open`) the Anthropic route and a placeholder in place of a
/// forwarded credential, which stays on the host.
pub fn start(
    paths: &HostPaths,
    policy: Policy,
    rules: Rules,
    name: &str,
    env: &mut BTreeMap<String, String>,
    host_urls: &mut Vec<HostUrl>,
) -> Result<Running> {
    let (proxy, dir) = start_proxy(paths)?;
    let host_ports = rules.host_ports.clone();
    let anthropic = if policy == Policy::Open {
        None
    } else {
        credential(env, host_urls)
    };
    let swap = anthropic.is_some();
    let access = proxy
        .register(net::SessionSpec {
            name: name.to_owned(),
            rules,
            anthropic,
        })
        .map_err(|m| {
            Error::usage(format!(
                "cannot route the Anthropic API through the proxy: {m}"
            ))
            .with_hint(
                "check ANTHROPIC_BASE_URL (an https URL, or http on this machine's loopback)",
            )
        })?;
    guest_env(env, host_urls, &access, swap);
    Ok(Running {
        proxy,
        name: name.to_owned(),
        policy,
        host_ports,
        dir,
    })
}

/// The credential to keep on the host and where it goes: the host's own base URL (before
/// its loopback was pointed at host.lima.internal), else Anthropic's.
fn credential(
    env: &BTreeMap<String, String>,
    host_urls: &[HostUrl],
) -> Option<(String, Credential)> {
    let cred = CREDENTIALS
        .iter()
        .find_map(|(name, make)| env.get(*name).map(|v| make(v.clone())))?;
    let base = host_urls
        .iter()
        .find(|u| u.name == "ANTHROPIC_BASE_URL")
        .map(|u| u.host_value.clone())
        .or_else(|| env.get("ANTHROPIC_BASE_URL").cloned())
        .unwrap_or_else(|| net::anthropic::DEFAULT_BASE_URL.to_owned());
    Some((base, cred))
}

/// The guest's variables for the proxy (replacing any forwarded from the host: the guest
/// reaches nothing but this proxy) and, with `swap`, the route and the placeholder.
fn guest_env(
    env: &mut BTreeMap<String, String>,
    host_urls: &mut Vec<HostUrl>,
    access: &net::Access,
    swap: bool,
) {
    let url = access.proxy_url(HOST_FROM_GUEST);
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        env.insert(name.to_owned(), url.clone());
    }
    for name in ["NO_PROXY", "no_proxy"] {
        env.insert(name.to_owned(), NO_PROXY.to_owned());
    }
    let mut replaced: Vec<&str> = vec!["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"];
    if swap {
        env.insert(
            "ANTHROPIC_BASE_URL".to_owned(),
            access.anthropic_base_url(HOST_FROM_GUEST),
        );
        replaced.push("ANTHROPIC_BASE_URL");
        for (name, _) in CREDENTIALS {
            if let Some(v) = env.get_mut(name) {
                *v = access.placeholder.clone();
            }
        }
    }
    host_urls.retain(|u| !replaced.contains(&u.name.as_str()));
}

impl Running {
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// What the guest's root step enforces: nothing for `open` (today's network, logged
    /// where tools honour the proxy variables).
    // The seam for `script::enforce`: sessions set it once the simulator's guest user can
    // drop its privileges (wip-simuser); until then the policy is enforced by the proxy only.
    pub fn enforcement(&self, keep_sudo: bool) -> Option<Enforcement> {
        enforcement(self.policy, self.proxy.port(), &self.host_ports, keep_sudo)
    }

    /// Stops the proxy (every log line on disk), then says what was denied: one line, and
    /// a `network.denied` event per denied request.
    pub fn finish(self, ui: &Ui) {
        let Running {
            proxy, name, dir, ..
        } = self;
        proxy.unregister(&name);
        proxy.stop();
        report(ui, &dir, &name);
    }
}

/// The in-guest rules for a policy: the proxy's port at host.lima.internal's address, and
/// the host ports the configuration opens. None for `open`.
pub fn enforcement(
    policy: Policy,
    port: u16,
    host_ports: &[u16],
    keep_sudo: bool,
) -> Option<Enforcement> {
    (policy != Policy::Open).then(|| Enforcement {
        proxy: SocketAddrV4::new(HOST_ADDRESS, port),
        host_ports: if policy == Policy::Offline {
            Vec::new()
        } else {
            host_ports.to_vec()
        },
        keep_sudo,
    })
}

/// The name a template's builds log under (`claude-vm network log setup-<template>`).
pub fn setup_session(template: &str) -> String {
    format!("setup-{template}")
}

/// A build's rules: setup's presets (the session's, plus apt mirrors and installers) for the
/// template's `tools`, `[network] allow`, `deny` and `host_ports`. None for `open`: the build
/// has the whole network, as before. `offline` is for sessions: a build that installs
/// packages runs under setup's list.
pub fn setup_rules(config: &Config, tools: &[&str]) -> Result<Option<Rules>> {
    let n = &config.network;
    if n.policy == Policy::Open {
        return Ok(None);
    }
    let mut allow = presets::hosts(&presets::setup(tools));
    allow.extend(n.allow.iter().cloned());
    Rules::new(Mode::Allowlist, &allow, &n.deny, &n.host_ports)
        .map(Some)
        .map_err(|m| {
            Error::usage(format!("invalid network configuration: {m}"))
                .with_hint("fix the entry in .claude-vm.toml or on the command line")
        })
}

/// Puts a build behind the proxy: starts it under [`setup_session`], and appends to `files`
/// (the setup plan's bundle, after its fingerprint was taken) the wrapper that configures
/// apt, sudo, curl, git, npm and pip for it, loads the in-guest rules, runs the provisioning
/// script and leaves nothing of it in the template. The wrapper becomes the bundle's entry.
/// None (and `files` untouched) for `open`.
pub fn start_setup(
    paths: &HostPaths,
    config: &Config,
    tools: &[&str],
    template: &str,
    files: &mut Vec<crate::plan::HandoverFile>,
) -> Result<Option<Running>> {
    let Some(rules) = setup_rules(config, tools)? else {
        return Ok(None);
    };
    let Some(entry) = files.last().map(|f| f.name.clone()) else {
        return Ok(None);
    };
    let (proxy, dir) = start_proxy(paths)?;
    let host_ports = rules.host_ports.clone();
    let name = setup_session(template);
    let access = proxy
        .register(net::SessionSpec {
            name: name.clone(),
            rules,
            anthropic: None,
        })
        .map_err(|m| Error::failure(format!("cannot register the build with the proxy: {m}")))?;
    let rules = enforcement(Policy::Allowlist, proxy.port(), &host_ports, true)
        .ok_or_else(|| Error::failure("no network rules for the build"))?;
    let text = crate::script::build_network(&crate::script::BuildNetwork {
        proxy_url: &access.proxy_url(HOST_FROM_GUEST),
        no_proxy: NO_PROXY,
        rules: &rules,
        entry: &format!("{}/{entry}", crate::script::BUNDLE_DIR),
    });
    files.push(crate::plan::HandoverFile {
        name: SETUP_WRAPPER.to_owned(),
        source: crate::plan::FileSource::Text(text),
        // It carries the build's token.
        printable: false,
    });
    Ok(Some(Running {
        proxy,
        name,
        policy: config.network.policy,
        host_ports,
        dir,
    }))
}

/// The bundle file of [`start_setup`].
pub const SETUP_WRAPPER: &str = "build-network.sh";

/// Lines for `setup --dry-run`: the build's policy and what it lets through, with origins.
pub fn describe_setup(config: &Config, tools: &[&str]) -> Vec<String> {
    let n = &config.network;
    if n.policy == Policy::Open {
        return vec![
            "build network: open (the whole network, as `[network] policy = \"open\"` says)"
                .to_owned(),
        ];
    }
    let mut out = vec![
        "build network: setup's list, through the proxy on the host (logged as `claude-vm network log setup-<template>`); in-guest rules refuse the rest".to_owned(),
    ];
    allow_lines(&presets::setup(tools), &n.allow, &mut out);
    if !n.deny.is_empty() {
        out.push(format!("  deny {}", n.deny.join(", ")));
    }
    if !n.host_ports.is_empty() {
        let ports: Vec<String> = n.host_ports.iter().map(u16::to_string).collect();
        out.push(format!("  host ports {}", ports.join(", ")));
    }
    out
}

/// One `allow` line per preset, with its origin, and one for the user's own allows.
fn allow_lines(presets: &[presets::Preset], allow: &[String], out: &mut Vec<String>) {
    for p in presets {
        out.push(format!(
            "  allow {} (preset: {})",
            p.hosts.join(", "),
            p.origin
        ));
    }
    if !allow.is_empty() {
        out.push(format!(
            "  allow {} ([network] allow, --allow)",
            allow.join(", ")
        ));
    }
}

/// The end-of-session line and events from the session's log.
fn report(ui: &Ui, dir: &Path, name: &str) {
    let Ok(read) = net::log::read(dir, Some(name)) else {
        return;
    };
    for r in &read.records {
        if r.decision == net::log::Verdict::Denied {
            ui.event(Event::NetworkDenied {
                host: r.host.clone(),
                port: r.port,
                method: r.method.clone(),
                rule: r.rule.clone(),
                time: r.time.clone(),
            });
        }
    }
    if let Some(line) = net::log::denied_line(&read.records, name) {
        // The hosts came from the guest: escaped like everything else it can influence.
        ui.warn(&ui::escape(&line));
    }
}

/// Lines for `--dry-run` and `info`: a session's policy and what it lets through, with
/// origins.
pub fn describe(config: &Config, tools: &[String]) -> Vec<String> {
    let n = &config.network;
    let t: Vec<&str> = tools.iter().map(String::as_str).collect();
    let presets = presets::session(&t);
    let policy = n.policy;
    let mut out = vec![format!(
        "network policy: {}{}",
        policy.as_str(),
        match policy {
            Policy::Allowlist => " (only the hosts below, through the proxy on the host)",
            Policy::Open =>
                " (any public host, logged; the host's loopback only through host_ports)",
            Policy::Offline => " (nothing but the Anthropic API, through the proxy on the host)",
        }
    )];
    if policy == Policy::Allowlist {
        allow_lines(&presets, &n.allow, &mut out);
    }
    if !n.deny.is_empty() {
        out.push(format!("  deny {}", n.deny.join(", ")));
    }
    if !n.host_ports.is_empty() && policy != Policy::Offline {
        let ports: Vec<String> = n.host_ports.iter().map(u16::to_string).collect();
        out.push(format!("  host ports {}", ports.join(", ")));
    }
    if policy != Policy::Open {
        out.push(
            "  a forwarded Anthropic credential stays on the host: the VM gets a placeholder and the proxy's route".to_owned(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access_env(
        policy: Policy,
        env: &[(&str, &str)],
    ) -> (BTreeMap<String, String>, Vec<HostUrl>, Running) {
        let tmp = tempfile::tempdir().unwrap();
        let paths = HostPaths {
            home: tmp.path().to_path_buf(),
            data_dir: tmp.path().join("data"),
            lima_home: tmp.path().join("lima"),
        };
        let mut c = Config::default();
        c.network.policy = policy;
        c.network.host_ports = vec![5432];
        let mut vars: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut urls = vec![HostUrl {
            name: "ANTHROPIC_BASE_URL".into(),
            host_value: "http://127.0.0.1:4000".into(),
            guest_value: "http://host.lima.internal:4000".into(),
        }];
        let r = rules(&c, &[]).unwrap();
        let running = start(&paths, policy, r, "s-1", &mut vars, &mut urls).unwrap();
        std::mem::forget(tmp);
        (vars, urls, running)
    }

    #[test]
    fn the_key_stays_on_the_host_unless_open() {
        for policy in [Policy::Allowlist, Policy::Offline] {
            let (env, urls, running) = access_env(
                policy,
                &[
                    ("ANTHROPIC_API_KEY", "sk-real"),
                    ("CLAUDE_CODE_OAUTH_TOKEN", "oauth-real"),
                    ("ANTHROPIC_BASE_URL", "http://host.lima.internal:4000"),
                ],
            );
            let all: String = env.values().cloned().collect();
            assert!(
                !all.contains("sk-real") && !all.contains("oauth-real"),
                "{policy:?}"
            );
            assert!(env["ANTHROPIC_API_KEY"].starts_with("claude-vm-placeholder-"));
            assert_eq!(env["ANTHROPIC_API_KEY"], env["CLAUDE_CODE_OAUTH_TOKEN"]);
            let port = running.proxy.port();
            assert_eq!(
                env["ANTHROPIC_BASE_URL"],
                format!("http://host.lima.internal:{port}/anthropic/s-1")
            );
            assert!(urls.is_empty(), "the rewrite no longer applies: {urls:?}");
            for v in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
                assert!(env[v].starts_with("http://claude-vm:"), "{v}");
                assert!(
                    env[v].ends_with(&format!("@host.lima.internal:{port}")),
                    "{v}"
                );
            }
            assert_eq!(env["NO_PROXY"], "localhost,127.0.0.1");
            let e = running.enforcement(false).unwrap();
            assert_eq!(e.proxy, SocketAddrV4::new(HOST_ADDRESS, port));
            let want: Vec<u16> = if policy == Policy::Offline {
                vec![]
            } else {
                vec![5432]
            };
            assert_eq!(e.host_ports, want);
            running.proxy.stop();
        }
        let (env, _, running) = access_env(Policy::Open, &[("ANTHROPIC_API_KEY", "sk-real")]);
        assert_eq!(
            env["ANTHROPIC_API_KEY"], "sk-real",
            "open keeps today's behaviour"
        );
        assert!(
            env["HTTPS_PROXY"].contains("@host.lima.internal:"),
            "still logged"
        );
        assert!(running.enforcement(false).is_none());
        running.proxy.stop();
    }

    #[test]
    fn without_a_credential_nothing_is_swapped() {
        let (env, _, running) = access_env(Policy::Allowlist, &[]);
        assert!(!env.contains_key("ANTHROPIC_BASE_URL"));
        assert!(!env.contains_key("ANTHROPIC_API_KEY"));
        running.proxy.stop();
    }

    #[test]
    fn rules_carry_the_presets_and_deny_wins() {
        use crate::net::policy::{parse_host, Decision};
        let mut c = Config::default();
        c.network.allow = vec!["api.example.com".into()];
        c.network.deny = vec!["registry.npmjs.org".into()];
        let tools = vec!["node".to_owned(), "rust".to_owned()];
        let r = rules(&c, &tools).unwrap();
        let d = |r: &Rules, h: &str| r.decide_name(&parse_host(h).unwrap(), 443);
        assert!(matches!(d(&r, "api.anthropic.com"), Decision::Allowed(_)));
        assert!(matches!(d(&r, "crates.io"), Decision::Allowed(_)));
        assert!(matches!(d(&r, "api.example.com"), Decision::Allowed(_)));
        assert!(
            matches!(d(&r, "registry.npmjs.org"), Decision::Denied(_)),
            "deny wins"
        );
        assert!(
            matches!(d(&r, "sh.rustup.rs"), Decision::Denied(_)),
            "setup only"
        );
        assert!(matches!(d(&r, "evil.example"), Decision::Denied(_)));
        let lines = describe(&c, &tools);
        assert!(lines[0].contains("allowlist"), "{lines:?}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("crates.io (preset: tool rust)")
                    || l.contains("preset: tool rust")),
            "{lines:?}"
        );
        c.network.policy = Policy::Offline;
        let lines = describe(&c, &tools);
        assert!(lines[0].contains("offline"), "{lines:?}");
        assert!(
            !lines.iter().any(|l| l.contains("preset")),
            "offline opens no preset: {lines:?}"
        );
    }
}
