//! The Anthropic route's pure parts: the upstream base URL, the guest-side URL, and the head
//! rewrite that takes the placeholder credential out and puts the real one in.

use super::http::{split_authority, Head};
use super::policy::{parse_host, special_kind, Host};

/// Where the route's requests go: the real API, or the user's own `ANTHROPIC_BASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing slash ("" for the API itself).
    pub prefix: String,
}

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// The path under which the proxy serves the route: `/anthropic/<session>/...`.
pub const ROUTE: &str = "/anthropic/";

impl Upstream {
    /// Parses a base URL; plain http only to this host's loopback (a local gateway).
    pub fn parse(url: &str) -> Result<Upstream, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!(
                "ANTHROPIC_BASE_URL {url:?} must start with https:// (or http:// on this host's loopback)"
            ));
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) || authority.contains('@') {
            return Err(format!(
                "ANTHROPIC_BASE_URL {url:?}: use scheme://host[:port][/path], without credentials, query or fragment"
            ));
        }
        let (host, port) = split_authority(authority, Some(if tls { 443 } else { 80 }))
            .ok_or_else(|| format!("ANTHROPIC_BASE_URL {url:?}: not a host[:port]"))?;
        let parsed = parse_host(host).map_err(|e| format!("ANTHROPIC_BASE_URL {url:?}: {e}"))?;
        let loopback = match &parsed {
            Host::Name(n) => n == "localhost",
            Host::Ip(ip) => special_kind(*ip) == Some("loopback"),
        };
        if !tls && !loopback {
            return Err(format!(
                "ANTHROPIC_BASE_URL {url:?} is plain http to another machine; the key would cross the network in clear: use https://"
            ));
        }
        Ok(Upstream {
            tls,
            host: host.to_ascii_lowercase(),
            port,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }

    /// The `Host` header value.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match (self.tls, self.port) {
            (true, 443) | (false, 80) => host,
            _ => format!("{host}:{}", self.port),
        }
    }
}

/// The real credential, and the header it travels in.
#[derive(Clone)]
pub enum Credential {
    /// `ANTHROPIC_API_KEY`: `x-api-key`.
    ApiKey(String),
    /// `ANTHROPIC_AUTH_TOKEN` or `CLAUDE_CODE_OAUTH_TOKEN`: `Authorization: Bearer`.
    Bearer(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret, whatever debug output asks.
        match self {
            Credential::ApiKey(_) => f.write_str("ApiKey(<hidden>)"),
            Credential::Bearer(_) => f.write_str("Bearer(<hidden>)"),
        }
    }
}

/// Splits `/anthropic/<session>/<rest>` into the session and the upstream path.
pub fn split_route(path: &str) -> Option<(&str, String)> {
    let rest = path.strip_prefix(ROUTE)?;
    let (session, tail) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if session.is_empty() {
        return None;
    }
    let tail = if tail.is_empty() || tail.starts_with('?') {
        format!("/{tail}")
    } else {
        tail.to_string()
    };
    Some((session, tail))
}

/// The credentials the guest sent (every `x-api-key`, every `Authorization: Bearer`).
pub fn presented(head: &Head) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (name, value) in &head.headers {
        if name.eq_ignore_ascii_case("x-api-key") {
            out.push(value.clone());
        } else if name.eq_ignore_ascii_case("authorization") {
            let v = value.as_slice();
            match v.get(..7) {
                Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => {
                    out.push(v[7..].trim_ascii().to_vec())
                }
                _ => out.push(v.to_vec()),
            }
        }
    }
    out
}

/// The head the upstream gets: its own path and host, the real credential, nothing of the
/// guest's credentials.
pub fn upstream_head(mut head: Head, upstream: &Upstream, path: &str, cred: &Credential) -> Head {
    head.target = format!("{}{}", upstream.prefix, path);
    head.remove("x-api-key");
    head.remove("authorization");
    head.prepare_for_upstream();
    head.set("Host", upstream.authority().as_bytes());
    match cred {
        Credential::ApiKey(k) => head.set("x-api-key", k.as_bytes()),
        Credential::Bearer(t) => head.set("Authorization", format!("Bearer {t}").as_bytes()),
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            Upstream::parse(DEFAULT_BASE_URL).unwrap(),
            Upstream {
                tls: true,
                host: "api.anthropic.com".into(),
                port: 443,
                prefix: "".into()
            }
        );
        let u = Upstream::parse("https://gw.example:8443/v2/anthropic/").unwrap();
        assert_eq!(
            (u.port, u.prefix.as_str(), u.authority()),
            (8443, "/v2/anthropic", "gw.example:8443".into())
        );
        let u = Upstream::parse("http://127.0.0.1:4000").unwrap();
        assert!(!u.tls);
        assert_eq!(u.authority(), "127.0.0.1:4000");
        assert!(Upstream::parse("http://localhost/x").is_ok());
        assert!(Upstream::parse("http://[::1]:9/").is_ok());
        for (bad, says) in [
            ("http://gw.example", "plain http"),
            ("http://10.0.0.1", "plain http"),
            ("ftp://x.example", "must start"),
            ("api.anthropic.com", "must start"),
            ("https://u:p@gw.example", "without credentials"),
            ("https://gw.example/?a=1", "without credentials"),
            ("https://gw.example:0", "host[:port]"),
            ("https://", "host[:port]"),
        ] {
            let err = Upstream::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn routes() {
        assert_eq!(
            split_route("/anthropic/s1/v1/messages"),
            Some(("s1", "/v1/messages".into()))
        );
        assert_eq!(split_route("/anthropic/s1"), Some(("s1", "/".into())));
        assert_eq!(
            split_route("/anthropic/s1?beta=1"),
            Some(("s1", "/?beta=1".into()))
        );
        assert_eq!(split_route("/anthropic//v1"), None);
        assert_eq!(split_route("/other/s1/v1"), None);
    }

    #[test]
    fn the_guest_credentials_never_reach_the_upstream() {
        let head = Head {
            method: "POST".into(),
            target: "/anthropic/s1/v1/messages?beta=true".into(),
            headers: vec![
                ("Host".into(), b"host.lima.internal:1234".to_vec()),
                ("X-Api-Key".into(), b"placeholder".to_vec()),
                ("authorization".into(), b"Bearer placeholder".to_vec()),
                ("Connection".into(), b"keep-alive".to_vec()),
                ("anthropic-version".into(), b"2023-06-01".to_vec()),
            ],
        };
        assert_eq!(
            presented(&head),
            vec![b"placeholder".to_vec(), b"placeholder".to_vec()]
        );
        let up = Upstream::parse("https://gw.example/base").unwrap();
        for cred in [
            Credential::ApiKey("sk-real".into()),
            Credential::Bearer("sk-real".into()),
        ] {
            let out = upstream_head(head.clone(), &up, "/v1/messages?beta=true", &cred);
            let text = String::from_utf8(out.to_bytes()).unwrap();
            assert!(
                text.starts_with("POST /base/v1/messages?beta=true HTTP/1.1\r\n"),
                "{text}"
            );
            assert!(!text.contains("placeholder"), "{text}");
            assert!(text.contains("Host: gw.example\r\n"), "{text}");
            assert!(text.contains("anthropic-version: 2023-06-01\r\n"), "{text}");
            assert!(text.contains("Connection: close\r\n"), "{text}");
            assert_eq!(text.matches("sk-real").count(), 1, "{text}");
        }
        assert_eq!(
            format!("{:?}", Credential::ApiKey("sk-real".into())),
            "ApiKey(<hidden>)"
        );
    }
}
