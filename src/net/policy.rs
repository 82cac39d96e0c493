//! The network policy as pure data: the decisions the proxy takes on a name and then on the
//! address it resolved to. The patterns themselves are `crate::netpattern` (shared with
//! `config`). No sockets here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use crate::netpattern::{is_host_loopback_name, parse_host, Host, Pattern};

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
