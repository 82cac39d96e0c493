//! The environment a session's claude (or shell) starts with, from the host's variables and
//! the configuration. Lowest precedence first: proxies, Claude credentials, inherited
//! variables, then values set explicitly (`[env]`, `--env-file`, `--env`), which always win.

use std::collections::BTreeMap;

use crate::config::Config;

/// Claude Code's credentials and endpoint, forwarded unless `[claude] forward_credentials`
/// is off.
pub const CREDENTIALS: [&str; 4] = [
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "CLAUDE_CODE_OAUTH_TOKEN",
];

/// Proxy settings, in both spellings tools read.
pub const PROXIES: [&str; 6] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

/// How the guest reaches the host (Lima's built-in name for it).
pub const HOST_FROM_GUEST: &str = "host.lima.internal";

/// A variable whose value pointed at the host's loopback and now points at the host as the
/// guest reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostUrl {
    pub name: String,
    pub host_value: String,
    pub guest_value: String,
}

impl HostUrl {
    /// `NAME: http://127.0.0.1:4000 -> http://host.lima.internal:4000`, with any password in
    /// the URL left out (the line is printed).
    pub fn describe(&self) -> String {
        format!(
            "{}: {} -> {}",
            self.name,
            redact_userinfo(&self.host_value),
            redact_userinfo(&self.guest_value)
        )
    }
}

/// The guest's variables, and which of them were pointed at the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestEnv {
    pub vars: BTreeMap<String, String>,
    pub host_urls: Vec<HostUrl>,
}

pub fn session_env(config: &Config, host: &dyn Fn(&str) -> Option<String>) -> GuestEnv {
    let mut vars = BTreeMap::new();
    for name in PROXIES {
        if let Some(v) = host(name).filter(|v| !v.is_empty()) {
            vars.insert(name.to_owned(), v);
        }
    }
    if config.claude.forward_credentials {
        for name in CREDENTIALS {
            if let Some(v) = host(name).filter(|v| !v.is_empty()) {
                vars.insert(name.to_owned(), v);
            }
        }
    }
    for name in &config.inherit.env {
        if let Some(v) = host(name) {
            vars.insert(name.clone(), v);
        }
    }
    vars.extend(config.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    // Whatever the source, a URL on the host's loopback means the host: the guest's own
    // loopback has nothing listening there.
    let mut host_urls = Vec::new();
    for (name, value) in vars.iter_mut() {
        if !holds_url(name, &config.inherit.host_urls) {
            continue;
        }
        if let Some(guest) = loopback_for_guest(value) {
            host_urls.push(HostUrl {
                name: name.clone(),
                host_value: std::mem::replace(value, guest.clone()),
                guest_value: guest,
            });
        }
    }
    GuestEnv { vars, host_urls }
}

/// Proxies, `*_URL`, `*_URI` and `*_ENDPOINT` (any case), and the names the user marked.
fn holds_url(name: &str, marked: &[String]) -> bool {
    if name.eq_ignore_ascii_case("no_proxy") {
        return false;
    }
    let upper = name.to_ascii_uppercase();
    PROXIES.iter().any(|p| p.eq_ignore_ascii_case(name))
        || ["_URL", "_URI", "_ENDPOINT", "_PROXY"]
            .iter()
            .any(|s| upper.ends_with(s))
        || marked.iter().any(|m| m == name)
}

/// The same URL with a host on the host's loopback replaced by `host.lima.internal`; `None`
/// when the host is anything else. `localhost` (and names under it), every `127.x` spelling
/// a URL parser accepts (`127.1`, `0x7f.0.0.1`, `2130706433`), `0.0.0.0`, `[::1]`, `[::]`
/// and `[::ffff:127.0.0.1]` all count.
pub fn loopback_for_guest(url: &str) -> Option<String> {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => authority.split_at(i + 1),
        None => ("", authority),
    };
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => {
            let i = v6.find(']')?;
            (&v6[..i], &v6[i + 1..])
        }
        None => hostport.split_at(hostport.find(':').unwrap_or(hostport.len())),
    };
    if !port.is_empty() && !port.starts_with(':') {
        return None;
    }
    is_loopback_host(host).then(|| format!("{scheme}{userinfo}{HOST_FROM_GUEST}{port}{path}"))
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    if let Ok(v6) = host.parse::<std::net::Ipv6Addr>() {
        return v6.is_loopback()
            || v6.is_unspecified()
            || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback());
    }
    parse_ipv4(&host).is_some_and(|v4| v4.is_loopback() || v4.is_unspecified())
}

/// An IPv4 address as URL parsers read it (inet_aton's forms: 1 to 4 parts, each decimal,
/// `0x` hex or leading-zero octal; the last part fills the remaining bytes).
fn parse_ipv4(host: &str) -> Option<std::net::Ipv4Addr> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(parts.len());
    for p in &parts {
        let n = if let Some(hex) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            if hex.is_empty() {
                0
            } else {
                u64::from_str_radix(hex, 16).ok()?
            }
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()?
        } else {
            p.parse::<u64>().ok()?
        };
        nums.push(n);
    }
    let (last, head) = nums.split_last()?;
    if head.iter().any(|&n| n > 255) {
        return None;
    }
    let rest_bits = 8 * (4 - head.len() as u32);
    if *last >= 1u64 << rest_bits {
        return None;
    }
    let mut value: u64 = 0;
    for (i, &n) in head.iter().enumerate() {
        value |= n << (24 - 8 * i as u32);
    }
    value |= last;
    Some(std::net::Ipv4Addr::from(value as u32))
}

/// `scheme://user:secret@host` becomes `scheme://***@host`.
fn redact_userinfo(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn loopback_urls_point_at_the_host() {
        let cases = [
            ("http://127.0.0.1:7890", "http://host.lima.internal:7890"),
            (
                "http://user:p%40ss@localhost:3128/",
                "http://user:p%40ss@host.lima.internal:3128/",
            ),
            ("http://[::1]:8080", "http://host.lima.internal:8080"),
            ("localhost:8080", "host.lima.internal:8080"),
            ("http://LOCALHOST./v1", "http://host.lima.internal/v1"),
            (
                "http://api.localhost:9/x?y",
                "http://host.lima.internal:9/x?y",
            ),
            ("http://127.1:4000", "http://host.lima.internal:4000"),
            ("http://127.255.3.4", "http://host.lima.internal"),
            ("http://0x7f.0.0.1:1", "http://host.lima.internal:1"),
            ("http://2130706433:1", "http://host.lima.internal:1"),
            ("http://0177.0.0.1", "http://host.lima.internal"),
            ("http://0.0.0.0:80", "http://host.lima.internal:80"),
            ("http://[::]:80", "http://host.lima.internal:80"),
            (
                "http://[::ffff:127.0.0.1]:80",
                "http://host.lima.internal:80",
            ),
            ("https://localhost#frag", "https://host.lima.internal#frag"),
        ];
        for (from, to) in cases {
            assert_eq!(loopback_for_guest(from).as_deref(), Some(to), "{from}");
        }
        for other in [
            "http://proxy.corp:3128",
            "http://localhost.example.com:1",
            "http://127.example.com",
            "http://128.0.0.1",
            "http://10.0.0.1",
            "http://[::2]",
            "http://256.0.0.1",
            "https://api.anthropic.com",
            "not a url",
            "http://[::1",
            "http://localhost@evil.example/",
        ] {
            assert_eq!(loopback_for_guest(other), None, "{other}");
        }
    }

    #[test]
    fn every_url_variable_is_rewritten_and_reported() {
        let h = host(&[
            ("ANTHROPIC_BASE_URL", "http://127.0.0.1:4000"),
            ("HTTPS_PROXY", "http://localhost:3128"),
            ("NO_PROXY", "localhost,127.0.0.1"),
            ("DATABASE_URL", "postgres://u:secret@localhost:5432/db"),
        ]);
        let mut c = Config::default();
        c.inherit.env = vec!["DATABASE_URL".into()];
        c.inherit.host_urls = vec!["MY_SERVICE".into()];
        c.env.insert(
            "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
            "http://[::1]:4318".into(),
        );
        c.env
            .insert("MY_SERVICE".into(), "http://localhost:9000".into());
        c.env
            .insert("NOT_A_URL_NAME".into(), "http://localhost:1".into());
        let env = session_env(&c, &h);
        let v = &env.vars;
        assert_eq!(v["ANTHROPIC_BASE_URL"], "http://host.lima.internal:4000");
        assert_eq!(v["HTTPS_PROXY"], "http://host.lima.internal:3128");
        assert_eq!(v["NO_PROXY"], "localhost,127.0.0.1");
        assert_eq!(
            v["DATABASE_URL"],
            "postgres://u:secret@host.lima.internal:5432/db"
        );
        assert_eq!(
            v["OTEL_EXPORTER_OTLP_ENDPOINT"],
            "http://host.lima.internal:4318"
        );
        assert_eq!(v["MY_SERVICE"], "http://host.lima.internal:9000");
        assert_eq!(
            v["NOT_A_URL_NAME"], "http://localhost:1",
            "neither well known nor marked"
        );
        let names: Vec<&str> = env.host_urls.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ANTHROPIC_BASE_URL",
                "DATABASE_URL",
                "HTTPS_PROXY",
                "MY_SERVICE",
                "OTEL_EXPORTER_OTLP_ENDPOINT"
            ]
        );
        let db = env
            .host_urls
            .iter()
            .find(|u| u.name == "DATABASE_URL")
            .unwrap();
        assert_eq!(
            db.describe(),
            "DATABASE_URL: postgres://***@localhost:5432/db -> postgres://***@host.lima.internal:5432/db"
        );
    }

    #[test]
    fn credentials_proxies_inherited_then_explicit() {
        let h = host(&[
            ("ANTHROPIC_API_KEY", "sk-host"),
            ("CLAUDE_CODE_OAUTH_TOKEN", "oat"),
            ("https_proxy", "http://127.0.0.1:7890"),
            ("NO_PROXY", "localhost,.corp"),
            ("AWS_PROFILE", "dev"),
            ("UNRELATED", "x"),
        ]);
        let mut c = Config::default();
        c.inherit.env = vec!["AWS_PROFILE".into(), "NOT_SET".into()];
        c.env.insert("AWS_PROFILE".into(), "explicit".into());
        let env = session_env(&c, &h).vars;
        assert_eq!(env["ANTHROPIC_API_KEY"], "sk-host");
        assert_eq!(env["CLAUDE_CODE_OAUTH_TOKEN"], "oat");
        assert_eq!(env["https_proxy"], "http://host.lima.internal:7890");
        assert_eq!(env["NO_PROXY"], "localhost,.corp");
        assert_eq!(
            env["AWS_PROFILE"], "explicit",
            "explicit values win over inherited ones"
        );
        assert!(!env.contains_key("UNRELATED") && !env.contains_key("NOT_SET"));

        c.claude.forward_credentials = false;
        let env = session_env(&c, &h).vars;
        assert!(
            !env.contains_key("ANTHROPIC_API_KEY") && !env.contains_key("CLAUDE_CODE_OAUTH_TOKEN")
        );
        assert!(
            env.contains_key("https_proxy"),
            "proxies are not credentials"
        );
    }
}
