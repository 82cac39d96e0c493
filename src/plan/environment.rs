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

pub fn session_env(
    config: &Config,
    host: &dyn Fn(&str) -> Option<String>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for name in PROXIES {
        if let Some(v) = host(name).filter(|v| !v.is_empty()) {
            let v = if name.eq_ignore_ascii_case("no_proxy") {
                v
            } else {
                proxy_for_guest(&v)
            };
            env.insert(name.to_owned(), v);
        }
    }
    if config.claude.forward_credentials {
        for name in CREDENTIALS {
            if let Some(v) = host(name).filter(|v| !v.is_empty()) {
                env.insert(name.to_owned(), v);
            }
        }
    }
    for name in &config.inherit.env {
        if let Some(v) = host(name) {
            env.insert(name.clone(), v);
        }
    }
    env.extend(config.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// A proxy on the host's loopback is the host seen from the guest: `localhost`, `127.x` and
/// `::1` become `host.lima.internal`, everything else stays as it is.
pub fn proxy_for_guest(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => authority.split_at(i + 1),
        None => ("", authority),
    };
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => match v6.find(']') {
            Some(i) => (&v6[..i], &v6[i + 1..]),
            None => return url.to_owned(),
        },
        None => hostport.split_at(hostport.find(':').unwrap_or(hostport.len())),
    };
    let loopback =
        host.eq_ignore_ascii_case("localhost") || host.starts_with("127.") || host == "::1";
    if loopback {
        format!("{scheme}{userinfo}{HOST_FROM_GUEST}{port}{path}")
    } else {
        url.to_owned()
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
    fn loopback_proxies_point_at_the_host() {
        assert_eq!(
            proxy_for_guest("http://127.0.0.1:7890"),
            "http://host.lima.internal:7890"
        );
        assert_eq!(
            proxy_for_guest("http://user:p%40ss@localhost:3128/"),
            "http://user:p%40ss@host.lima.internal:3128/"
        );
        assert_eq!(
            proxy_for_guest("http://[::1]:8080"),
            "http://host.lima.internal:8080"
        );
        assert_eq!(proxy_for_guest("localhost:8080"), "host.lima.internal:8080");
        assert_eq!(
            proxy_for_guest("http://proxy.corp:3128"),
            "http://proxy.corp:3128"
        );
        assert_eq!(
            proxy_for_guest("http://localhost.example.com:1"),
            "http://localhost.example.com:1"
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
        let env = session_env(&c, &h);
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
        let env = session_env(&c, &h);
        assert!(
            !env.contains_key("ANTHROPIC_API_KEY") && !env.contains_key("CLAUDE_CODE_OAUTH_TOKEN")
        );
        assert!(
            env.contains_key("https_proxy"),
            "proxies are not credentials"
        );
    }
}
