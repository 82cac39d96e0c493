//! The network policy as pure data: patterns, their validation, and the decisions the proxy
//! takes on a name and then on the address it resolved to. No sockets here.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a session may reach at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only names matching an `allow` pattern.
    Allowlist,
    /// Any public destination (still logged; deny patterns and address checks still apply).
    Open,
    /// Nothing but the proxy's Anthropic route.
    Offline,
}

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
    fn names(&self, host: &Host, port: u16) -> bool {
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

/// A session's rules, validated.
#[derive(Debug, Clone)]
pub struct Rules {
    pub mode: Mode,
    pub allow: Vec<Pattern>,
    pub deny: Vec<Pattern>,
    /// The only host-loopback ports the session may reach.
    pub host_ports: Vec<u16>,
}

/// The outcome of a check, with the rule that decided it (as the log and the 403 show it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed(String),
    Denied(Denial),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The rule, as logged: `deny *.evil.example`, `not in allow`, `policy offline`, ...
    pub rule: String,
    /// What the user can do about it.
    pub fix: String,
}

impl Rules {
    /// Builds rules from the configuration's strings; the error names the entry.
    pub fn new(
        mode: Mode,
        allow: &[String],
        deny: &[String],
        host_ports: &[u16],
    ) -> Result<Rules, String> {
        let parse = |key: &str, list: &[String]| -> Result<Vec<Pattern>, String> {
            list.iter()
                .map(|p| Pattern::parse(p).map_err(|e| format!("[network] {key}: {e}")))
                .collect()
        };
        if let Some(zero) = host_ports.iter().find(|p| **p == 0) {
            return Err(format!(
                "[network] host_ports: {zero} is not a port; use a number from 1 to 65535"
            ));
        }
        Ok(Rules {
            mode,
            allow: parse("allow", allow)?,
            deny: parse("deny", deny)?,
            host_ports: host_ports.to_vec(),
        })
    }

    /// The decision on a name before it is resolved.
    pub fn decide_name(&self, host: &Host, port: u16) -> Decision {
        let shown = format!("{host}:{port}");
        if let Some(p) = self.deny.iter().find(|p| p.matches(host, port)) {
            return Decision::Denied(Denial {
                rule: format!("deny {p}"),
                fix: format!("remove \"{p}\" from [network] deny in .claude-vm.toml"),
            });
        }
        if self.mode == Mode::Offline {
            return Decision::Denied(Denial {
                rule: "policy offline".into(),
                fix: "set [network] policy = \"allowlist\" in .claude-vm.toml and add it to [network] allow".into(),
            });
        }
        if is_host_loopback_name(host) || is_loopback_literal(host) {
            return self.decide_host_port(port, &shown);
        }
        if let Some(p) = self.allow.iter().find(|p| p.matches(host, port)) {
            return Decision::Allowed(format!("allow {p}"));
        }
        match self.mode {
            Mode::Open => Decision::Allowed("policy open".into()),
            _ => Decision::Denied(Denial {
                rule: "not in allow".into(),
                fix: format!(
                    "add it to [network] allow in .claude-vm.toml (allow = [\"{}\"]), or pass --allow {} for one session",
                    host_for_fix(host, port),
                    host_for_fix(host, port)
                ),
            }),
        }
    }

    fn decide_host_port(&self, port: u16, shown: &str) -> Decision {
        if self.host_ports.contains(&port) {
            Decision::Allowed(format!("host_ports {port}"))
        } else {
            Decision::Denied(Denial {
                rule: format!("host loopback {shown}"),
                fix: format!(
                    "add {port} to [network] host_ports in .claude-vm.toml if the session should reach that host service"
                ),
            })
        }
    }

    /// The decision on an address a name resolved to (the name already passed).
    pub fn decide_address(&self, host: &Host, port: u16, addr: IpAddr) -> Decision {
        let Some(kind) = special_kind(addr) else {
            return Decision::Allowed(String::new());
        };
        if kind == "loopback" && (is_host_loopback_name(host) || is_loopback_literal(host)) {
            // Reaching the host's own loopback is what host_ports is for; decide_name checked.
            return self.decide_host_port(port, &format!("{host}:{port}"));
        }
        if self.allow.iter().any(|p| p.names(host, port)) {
            return Decision::Allowed(String::new());
        }
        if let Host::Ip(_) = host {
            if self.allow.iter().any(|p| p.names(&Host::Ip(addr), port)) {
                return Decision::Allowed(String::new());
            }
        }
        Decision::Denied(Denial {
            rule: format!("{kind} address {addr}"),
            fix: format!(
                "{host} resolves to a {kind} address; only an exact entry in [network] allow in .claude-vm.toml (allow = [\"{}\"]) opens it, or host_ports for the host's own services",
                host_for_fix(host, port)
            ),
        })
    }
}

impl Rules {
    /// Every address a name resolved to must pass: a rebinding answer that mixes a public
    /// address with the loopback is refused whole. The first refused address and why.
    pub fn decide_addresses(
        &self,
        host: &Host,
        port: u16,
        addrs: &[IpAddr],
    ) -> Result<(), (IpAddr, Denial)> {
        for addr in addrs {
            if let Decision::Denied(d) = self.decide_address(host, port, *addr) {
                return Err((*addr, d));
            }
        }
        Ok(())
    }
}

/// The host's own loopback, by name or by address: reachable only through host_ports.
pub fn is_host_loopback(host: &Host) -> bool {
    is_host_loopback_name(host) || is_loopback_literal(host)
}

fn is_loopback_literal(host: &Host) -> bool {
    matches!(host, Host::Ip(ip) if special_kind(*ip) == Some("loopback"))
}

fn host_for_fix(host: &Host, port: u16) -> String {
    match port {
        443 | 80 => host.to_string(),
        _ => format!("{host}:{port}"),
    }
}

/// Why an address is not a public destination, or None when it is.
pub fn special_kind(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        // 169.254.169.254 (the cloud metadata service) is here.
        Some("link-local")
    } else if a == 100 && (64..128).contains(&b) {
        // Shared address space; 100.100.100.200 is Alibaba's metadata service.
        Some("shared (CGNAT)")
    } else if a == 192 && b == 0 && c == 0 {
        Some("IETF protocol")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("benchmarking")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("reserved")
    } else {
        None
    }
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    // Addresses that carry an IPv4 address are judged by it.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return special_v4(v4);
    }
    let embedded =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if seg[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_unspecified() && !ip.is_loopback() {
        // IPv4-compatible (deprecated) ::a.b.c.d.
        return special_v4(embedded(seg[6], seg[7])).or(Some("IPv4-compatible"));
    }
    if seg[0] == 0x64 && seg[1] == 0xff9b {
        // NAT64 reaches the IPv4 address it embeds.
        return special_v4(embedded(seg[6], seg[7]));
    }
    if seg[0] == 0x2002 {
        // 6to4 embeds the IPv4 gateway in bits 16..48.
        return special_v4(embedded(seg[1], seg[2]));
    }
    if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if seg[0] & 0xfe00 == 0xfc00 {
        // fd00:ec2::254 (AWS's IPv6 metadata service) is here.
        Some("unique-local")
    } else if seg[0] & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if seg[0] & 0xffc0 == 0xfec0 {
        Some("site-local")
    } else if seg[0] & 0xff00 == 0xff00 {
        Some("multicast")
    } else if seg[0] == 0x2001 && seg[1] == 0x0db8 {
        Some("documentation")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> Host {
        Host::Name(n.into())
    }

    fn rules(mode: Mode, allow: &[&str], deny: &[&str], ports: &[u16]) -> Rules {
        let s = |l: &[&str]| l.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Rules::new(mode, &s(allow), &s(deny), ports).expect("valid rules")
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

    #[test]
    fn deny_wins_over_allow_and_open() {
        for mode in [Mode::Allowlist, Mode::Open] {
            let r = rules(mode, &["*.example.com"], &["evil.example.com"], &[]);
            match r.decide_name(&name("evil.example.com"), 443) {
                Decision::Denied(d) => assert_eq!(d.rule, "deny evil.example.com"),
                other => panic!("{other:?}"),
            }
            assert!(matches!(
                r.decide_name(&name("good.example.com"), 443),
                Decision::Allowed(_)
            ));
        }
    }

    #[test]
    fn allowlist_denies_the_unlisted_with_the_fix() {
        let r = rules(Mode::Allowlist, &["api.github.com"], &[], &[]);
        assert_eq!(
            r.decide_name(&name("api.github.com"), 443),
            Decision::Allowed("allow api.github.com".into())
        );
        match r.decide_name(&name("evil.example"), 443) {
            Decision::Denied(d) => {
                assert_eq!(d.rule, "not in allow");
                assert!(d.fix.contains("add it to [network] allow"), "{}", d.fix);
                assert!(d.fix.contains("\"evil.example\""), "{}", d.fix);
            }
            other => panic!("{other:?}"),
        }
        match r.decide_name(&name("evil.example"), 8080) {
            Decision::Denied(d) => assert!(d.fix.contains("evil.example:8080"), "{}", d.fix),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn offline_denies_everything_even_allowed_names() {
        let r = rules(Mode::Offline, &["api.github.com"], &[], &[5432]);
        for (h, p) in [("api.github.com", 443), ("host.lima.internal", 5432)] {
            match r.decide_name(&name(h), p) {
                Decision::Denied(d) => assert_eq!(d.rule, "policy offline"),
                other => panic!("{h}: {other:?}"),
            }
        }
    }

    #[test]
    fn host_loopback_only_through_host_ports() {
        let r = rules(Mode::Open, &[], &[], &[5432]);
        for h in [
            name("host.lima.internal"),
            name("localhost"),
            name("db.localhost"),
            Host::Ip("127.0.0.1".parse().unwrap()),
            Host::Ip("127.9.9.9".parse().unwrap()),
            Host::Ip("::1".parse().unwrap()),
        ] {
            assert_eq!(
                r.decide_name(&h, 5432),
                Decision::Allowed("host_ports 5432".into()),
                "{h}"
            );
            assert!(
                matches!(r.decide_name(&h, 6379), Decision::Denied(_)),
                "{h} open mode must not open the host's loopback"
            );
        }
    }

    #[test]
    fn special_addresses_are_classified() {
        for (addr, kind) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.1", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.5.2", "private"),
            ("169.254.169.254", "link-local"),
            ("100.100.100.200", "shared (CGNAT)"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("224.0.0.1", "reserved"),
            ("255.255.255.255", "reserved"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fd00:ec2::254", "unique-local"),
            ("fc00::1", "unique-local"),
            ("fe80::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::127.0.0.1", "loopback"),
            ("64:ff9b::10.0.0.1", "private"),
            ("64:ff9b::7f00:1", "loopback"),
            ("2002:7f00:1::", "loopback"),
            ("2002:a9fe:a9fe::", "link-local"),
        ] {
            let ip: IpAddr = addr.parse().unwrap();
            assert_eq!(special_kind(ip), Some(kind), "{addr}");
        }
        for public in [
            "1.1.1.1",
            "140.82.112.3",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            assert_eq!(special_kind(public.parse().unwrap()), None, "{public}");
        }
    }

    #[test]
    fn a_name_resolving_to_a_special_address_needs_an_exact_allow() {
        let r = rules(Mode::Open, &["*.corp.example", "db.corp.example"], &[], &[]);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let meta: IpAddr = "169.254.169.254".parse().unwrap();
        // Rebinding: an allowed (or open) name that resolves to loopback or metadata.
        for host in ["anything.example", "wiki.corp.example"] {
            for addr in [
                lo,
                meta,
                "10.0.0.1".parse().unwrap(),
                "::1".parse().unwrap(),
            ] {
                match r.decide_address(&name(host), 443, addr) {
                    Decision::Denied(d) => {
                        assert!(d.rule.ends_with(&format!("address {addr}")), "{}", d.rule)
                    }
                    other => panic!("{host} -> {addr}: {other:?}"),
                }
            }
        }
        // An exact entry names it: the user said so.
        assert!(matches!(
            r.decide_address(&name("db.corp.example"), 443, "10.0.0.1".parse().unwrap()),
            Decision::Allowed(_)
        ));
        assert!(matches!(
            r.decide_address(
                &name("anything.example"),
                443,
                "140.82.112.3".parse().unwrap()
            ),
            Decision::Allowed(_)
        ));
        // A name that pretends to be the host loopback still needs host_ports.
        assert!(matches!(
            r.decide_address(&name("localhost"), 5432, lo),
            Decision::Denied(_)
        ));
    }

    #[test]
    fn one_special_address_among_public_ones_refuses_the_name() {
        let r = rules(Mode::Open, &["*.corp.example"], &[], &[]);
        let public: IpAddr = "140.82.112.3".parse().unwrap();
        let host = name("mixed.corp.example");
        assert_eq!(r.decide_addresses(&host, 443, &[public, public]), Ok(()));
        for bad in ["127.0.0.1", "::ffff:10.0.0.1", "169.254.169.254"] {
            let bad: IpAddr = bad.parse().unwrap();
            for addrs in [[public, bad], [bad, public]] {
                let (which, denial) = r.decide_addresses(&host, 443, &addrs).unwrap_err();
                assert_eq!(which, bad);
                assert!(denial.rule.ends_with(&bad.to_string()), "{}", denial.rule);
            }
        }
    }

    #[test]
    fn ip_literal_allow_names_the_address() {
        let r = rules(Mode::Allowlist, &["10.0.0.5:8080"], &[], &[]);
        let host = Host::Ip("10.0.0.5".parse().unwrap());
        assert!(matches!(r.decide_name(&host, 8080), Decision::Allowed(_)));
        assert!(matches!(
            r.decide_address(&host, 8080, "10.0.0.5".parse().unwrap()),
            Decision::Allowed(_)
        ));
        assert!(matches!(r.decide_name(&host, 8081), Decision::Denied(_)));
    }

    #[test]
    fn rules_errors_name_the_key() {
        let err = Rules::new(Mode::Allowlist, &["*".into()], &[], &[]).unwrap_err();
        assert!(err.starts_with("[network] allow:"), "{err}");
        let err = Rules::new(Mode::Allowlist, &[], &["http://x.example".into()], &[]).unwrap_err();
        assert!(err.starts_with("[network] deny:"), "{err}");
        let err = Rules::new(Mode::Allowlist, &[], &[], &[0]).unwrap_err();
        assert!(err.starts_with("[network] host_ports:"), "{err}");
    }
}
