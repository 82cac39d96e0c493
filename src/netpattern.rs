//! The host patterns of `[network] allow`/`deny` and the hosts of requests: parsing,
//! validation with the fix in the message, and matching. Pure, self-contained and below both
//! `config` (which checks a file's entries) and `net` (whose proxy decides by them).

use std::fmt;
use std::net::IpAddr;

/// The host part of a pattern or a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A lower-case DNS name without a trailing dot.
    Name(String),
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// An `allow`/`deny` entry: `api.github.com`, `*.githubusercontent.com`, either with `:port`,
/// or an IP literal (`10.0.0.5`, `[fd00::1]:8080`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    target: Target,
    port: Option<u16>,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Exact(Host),
    /// `*.suffix`: any name strictly below `suffix` (not `suffix` itself).
    Below(String),
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Pattern {
    /// Parses one pattern; the error says what is wrong and what to write instead.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let raw = text.trim();
        if raw.is_empty() {
            return Err("an empty pattern; write a host name such as \"api.github.com\"".into());
        }
        if raw.contains("://") {
            return Err(format!(
                "{raw:?} has a scheme; write the host only, such as \"{}\"",
                raw.split("://")
                    .nth(1)
                    .unwrap_or("")
                    .split('/')
                    .next()
                    .unwrap_or("")
            ));
        }
        if raw.contains('/') {
            return Err(format!(
                "{raw:?} has a path; patterns name hosts, not URLs: write \"{}\"",
                raw.split('/').next().unwrap_or("")
            ));
        }
        if raw == "*" || raw.starts_with("*:") {
            return Err(format!(
                "{raw:?} would allow every host; use policy = \"open\" if that is what you mean"
            ));
        }
        let (host_text, port) = split_port(raw)?;
        let target = if let Some(suffix) = host_text.strip_prefix("*.") {
            let suffix = parse_name(suffix).map_err(|e| format!("{raw:?}: {e}"))?;
            if !suffix.contains('.') {
                return Err(format!(
                    "{raw:?} covers a whole top-level domain; name the domain, such as \"*.example.{suffix}\""
                ));
            }
            Target::Below(suffix)
        } else if host_text.contains('*') {
            return Err(format!(
                "{raw:?}: a wildcard is allowed only as a leading \"*.\", such as \"*.githubusercontent.com\""
            ));
        } else {
            Target::Exact(parse_host(host_text).map_err(|e| format!("{raw:?}: {e}"))?)
        };
        Ok(Pattern {
            target,
            port,
            text: raw.to_ascii_lowercase(),
        })
    }

    /// Whether the pattern covers `host:port`.
    pub fn matches(&self, host: &Host, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match (&self.target, host) {
            (Target::Exact(want), got) => want == got,
            (Target::Below(suffix), Host::Name(name)) => name
                .strip_suffix(suffix.as_str())
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
            (Target::Below(_), Host::Ip(_)) => false,
        }
    }

    /// An exact pattern names its host; a wildcard names none (it cannot open a private address).
    pub fn names(&self, host: &Host, port: u16) -> bool {
        matches!(self.target, Target::Exact(_)) && self.matches(host, port)
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`; a bare v6 literal has no port.
fn split_port(text: &str) -> Result<(&str, Option<u16>), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{text:?}: an IPv6 literal is missing its closing \"]\""))?;
        return match after {
            "" => Ok((inside, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((inside, Some(parse_port(text, port)?))),
                None => Err(format!("{text:?}: unexpected text after \"]\"")),
            },
        };
    }
    if text.matches(':').count() > 1 {
        return Ok((text, None));
    }
    match text.split_once(':') {
        Some((host, port)) => Ok((host, Some(parse_port(text, port)?))),
        None => Ok((text, None)),
    }
}

fn parse_port(whole: &str, port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(format!(
            "{whole:?}: {port:?} is not a port; use a number from 1 to 65535"
        )),
    }
}

/// A host as the guest wrote it (request target or pattern): an IP literal or a DNS name.
pub fn parse_host(text: &str) -> Result<Host, String> {
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    if let Ok(ip) = inner.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    parse_name(text).map(Host::Name)
}

/// A DNS name: letters, digits, hyphens and underscores in dot-separated labels.
fn parse_name(text: &str) -> Result<String, String> {
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return Err("not a host name".into());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(format!(
                "{text:?} is not a host name (letters, digits and hyphens between dots)"
            ));
        }
    }
    // All-numeric names are IP addresses in disguise (`127.1`, `2130706433`): refuse them
    // rather than let a resolver read them as loopback.
    if name
        .split('.')
        .all(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("{text:?} is neither a host name nor an IP address"));
    }
    Ok(name)
}

/// The names by which the guest means "the host's loopback".
pub fn is_host_loopback_name(host: &Host) -> bool {
    matches!(host, Host::Name(n) if n == "host.lima.internal" || n == "localhost" || n.ends_with(".localhost"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> Host {
        Host::Name(n.into())
    }

    #[test]
    fn patterns_reject_everything_that_is_not_a_host() {
        for (bad, says) in [
            ("*", "every host"),
            ("*:443", "every host"),
            ("", "empty"),
            ("https://api.github.com", "scheme"),
            ("git+ssh://github.com", "scheme"),
            ("github.com/org/repo", "path"),
            ("github.com:", "not a port"),
            ("github.com:0", "not a port"),
            ("github.com:70000", "not a port"),
            ("github.com:+443", "not a port"),
            ("*.com", "top-level"),
            ("api.*.com", "leading"),
            ("*github.com", "leading"),
            ("a..b", "not a host name"),
            ("-bad.example", "not a host name"),
            ("sp ace.example", "not a host name"),
            ("127.1", "neither"),
            ("2130706433", "neither"),
            ("[::1", "closing"),
            ("[::1]x", "unexpected"),
        ] {
            let err = Pattern::parse(bad).expect_err(bad);
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }

    #[test]
    fn scheme_and_path_errors_suggest_the_host() {
        let err = Pattern::parse("https://api.github.com/repos").unwrap_err();
        assert!(err.contains("\"api.github.com\""), "{err}");
        let err = Pattern::parse("github.com/org").unwrap_err();
        assert!(err.contains("\"github.com\""), "{err}");
    }

    #[test]
    fn exact_suffix_and_port_matching() {
        let exact = Pattern::parse("API.GitHub.com.").unwrap();
        assert!(exact.matches(&name("api.github.com"), 443));
        assert!(exact.matches(&name("api.github.com"), 80));
        assert!(!exact.matches(&name("github.com"), 443));
        assert!(!exact.matches(&name("xapi.github.com"), 443));

        let below = Pattern::parse("*.githubusercontent.com").unwrap();
        assert!(below.matches(&name("raw.githubusercontent.com"), 443));
        assert!(below.matches(&name("a.b.githubusercontent.com"), 443));
        assert!(!below.matches(&name("githubusercontent.com"), 443));
        assert!(!below.matches(&name("evilgithubusercontent.com"), 443));
        assert!(!below.matches(&Host::Ip("1.2.3.4".parse().unwrap()), 443));

        let port = Pattern::parse("example.com:8443").unwrap();
        assert!(port.matches(&name("example.com"), 8443));
        assert!(!port.matches(&name("example.com"), 443));

        let v6 = Pattern::parse("[2001:4860::1]:443").unwrap();
        assert!(v6.matches(&Host::Ip("2001:4860::1".parse().unwrap()), 443));
        let bare_v6 = Pattern::parse("2001:4860::1").unwrap();
        assert!(bare_v6.matches(&Host::Ip("2001:4860::1".parse().unwrap()), 22));
    }
}
