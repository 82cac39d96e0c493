//! The guest's network in namespace mode: Lima's user-mode networking.
//!
//! The host agent unshares a network namespace for the guest and runs
//! slirp4netns (what QEMU's `-netdev user` is) on it: the guest is
//! 192.168.5.15/24, 192.168.5.2 is the host's loopback (`host.lima.internal`)
//! and 192.168.5.3 forwards DNS to the host's resolver, as on Lima. Guest
//! ports reach the host's 127.0.0.1 through the agent (`portForwards`), as
//! Lima's host agent forwards them.
//!
//! The host's side (slirp4netns, host sockets) is in slirp.rs.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;

pub const GUEST_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 5, 15);
/// The gateway: slirp maps it to the host's 127.0.0.1.
pub const HOST_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 5, 2);
pub const DNS_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 5, 3);
pub const CIDR: &str = "192.168.5.0/24";
pub const IFACE: &str = "eth0";
pub const NETWORK_ENV: &str = "LIMA_SIM_NETWORK";
pub const SLIRP: &str = "slirp4netns";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Lima's user-mode network (slirp4netns).
    User,
    /// The host's network, only when asked for (`LIMA_SIM_NETWORK=host`).
    Host,
}

/// The network `LIMA_SIM_NETWORK` asks for; an unknown value is an error.
pub fn mode_from_env() -> Result<Mode, String> {
    match std::env::var(NETWORK_ENV).as_deref() {
        Err(_) | Ok("") | Ok("user") => Ok(Mode::User),
        Ok("host") => Ok(Mode::Host),
        Ok(other) => Err(format!(
            "{NETWORK_ENV}: unknown network {other:?} (\"user\", the default, or \"host\")"
        )),
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| {
                    m.is_file()
                        && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
                })
                .unwrap_or(false)
        })
}

/// The slirp4netns binary, or an error naming the package.
pub fn slirp_binary() -> Result<PathBuf, String> {
    find_in_path(SLIRP).ok_or_else(|| {
        format!(
            "the guest's user-mode network needs slirp4netns, which is not installed \
             (Debian/Ubuntu: apt-get install slirp4netns), or set {NETWORK_ENV}=host \
             to share the host's network"
        )
    })
}

/// One TCP `portForwards` rule as the host agent matches it.
#[derive(Clone, Debug)]
pub struct TcpRule {
    pub guest_ip: IpAddr,
    pub guest_ip_must_be_zero: bool,
    pub guest_ports: [u16; 2],
    pub host_ip: IpAddr,
    pub host_ports: [u16; 2],
    pub ignore: bool,
}

impl TcpRule {
    fn catch_all() -> TcpRule {
        TcpRule {
            guest_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            guest_ip_must_be_zero: false,
            guest_ports: [1, 65535],
            host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            host_ports: [1, 65535],
            ignore: false,
        }
    }

    fn ignoring(port: u16) -> TcpRule {
        TcpRule {
            guest_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            guest_ports: [port, port],
            ignore: true,
            ..TcpRule::catch_all()
        }
    }
}

/// Lima's host agent: ports 22 and sshLocalPort are never forwarded, then
/// the instance's rules, then every other port from 127.0.0.1 to 127.0.0.1.
pub fn rules_like_lima(instance: Vec<TcpRule>, ssh_local_port: u16) -> Vec<TcpRule> {
    let mut rules = vec![TcpRule::ignoring(22)];
    if ssh_local_port != 0 {
        rules.push(TcpRule::ignoring(ssh_local_port));
    }
    rules.extend(instance);
    rules.push(TcpRule::catch_all());
    rules
}

/// Lima's `forwardingAddresses`: the host address a guest listener is
/// forwarded to, if any (the first matching rule decides).
pub fn host_address(rules: &[TcpRule], guest: SocketAddr) -> Option<SocketAddr> {
    let ip = guest.ip();
    let port = guest.port();
    for rule in rules {
        if port < rule.guest_ports[0] || port > rule.guest_ports[1] {
            continue;
        }
        let matches = ip.is_unspecified()
            || ip == rule.guest_ip
            || (ip == IpAddr::V6(Ipv6Addr::LOCALHOST)
                && rule.guest_ip == IpAddr::V4(Ipv4Addr::LOCALHOST))
            || (rule.guest_ip.is_unspecified() && !rule.guest_ip_must_be_zero);
        if !matches {
            continue;
        }
        if rule.ignore {
            if ip.is_unspecified() && !rule.guest_ip.is_unspecified() {
                continue;
            }
            return None;
        }
        let host_port = port - rule.guest_ports[0] + rule.host_ports[0];
        return Some(SocketAddr::new(rule.host_ip, host_port));
    }
    None
}

/// The TCP sockets listening in this process's network namespace.
pub fn guest_listeners() -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for (file, v6) in [("/proc/self/net/tcp", false), ("/proc/self/net/tcp6", true)] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        out.extend(text.lines().skip(1).filter_map(|l| parse_listener(l, v6)));
    }
    out
}

fn parse_listener(line: &str, v6: bool) -> Option<SocketAddr> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.get(3) != Some(&"0A") {
        return None;
    }
    let (addr, port) = fields.get(1)?.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = if v6 {
        if addr.len() != 32 {
            return None;
        }
        // Four 32-bit words, each in host (little-endian) order.
        let mut bytes = [0u8; 16];
        for i in 0..4 {
            let w = u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok()?;
            bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        IpAddr::V6(Ipv6Addr::from(bytes))
    } else {
        let w = u32::from_str_radix(addr, 16).ok()?;
        IpAddr::V4(Ipv4Addr::from(w.to_le_bytes()))
    };
    Some(SocketAddr::new(ip, port))
}

/// Where the agent connects for a guest listener.
pub fn guest_target(listener: SocketAddr) -> SocketAddr {
    match listener.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listener.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listener.port())
        }
        _ => listener,
    }
}

/// Accepts on the host end and relays each connection to the guest port.
pub fn serve(host: TcpListener, guest: SocketAddr) {
    std::thread::spawn(move || {
        for conn in host.incoming() {
            let Ok(conn) = conn else { continue };
            std::thread::spawn(move || {
                if let Ok(inner) = TcpStream::connect(guest) {
                    relay(conn, inner);
                }
            });
        }
    });
}

fn relay(a: TcpStream, b: TcpStream) {
    let (Ok(mut a_r), Ok(mut b_w)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let _ = io::copy(&mut a_r, &mut b_w);
        let _ = b_w.shutdown(std::net::Shutdown::Write);
    });
    let (mut b_r, mut a_w) = (b, a);
    let _ = io::copy(&mut b_r, &mut a_w);
    let _ = a_w.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_proc_net_tcp_listeners() {
        let v4 = "   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0";
        assert_eq!(parse_listener(v4, false), Some(addr("127.0.0.1:3000")));
        let est = v4.replace(" 0A ", " 01 ");
        assert_eq!(parse_listener(&est, false), None);
        let any6 = "   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 0 0 0";
        assert_eq!(parse_listener(any6, true), Some(addr("[::]:8080")));
        let lo6 = "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 0 0 0";
        assert_eq!(parse_listener(lo6, true), Some(addr("[::1]:8080")));
    }

    #[test]
    fn matches_rules_as_limas_host_agent() {
        let rule = TcpRule {
            guest_ports: [3000, 3000],
            host_ports: [13000, 13000],
            ..TcpRule::catch_all()
        };
        let rules = rules_like_lima(vec![rule], 60022);
        assert_eq!(
            host_address(&rules, addr("127.0.0.1:3000")),
            Some(addr("127.0.0.1:13000"))
        );
        assert_eq!(
            host_address(&rules, addr("0.0.0.0:3000")),
            Some(addr("127.0.0.1:13000"))
        );
        assert_eq!(
            host_address(&rules, addr("[::1]:3000")),
            Some(addr("127.0.0.1:13000"))
        );
        // The default: same port on the host.
        assert_eq!(
            host_address(&rules, addr("127.0.0.1:8080")),
            Some(addr("127.0.0.1:8080"))
        );
        // ssh ports never; a listener on another guest address is not 127.0.0.1's.
        assert_eq!(host_address(&rules, addr("0.0.0.0:22")), None);
        assert_eq!(host_address(&rules, addr("127.0.0.1:60022")), None);
        assert_eq!(host_address(&rules, addr("192.168.5.15:8080")), None);
        let ignored = TcpRule {
            guest_ports: [5000, 5000],
            ignore: true,
            ..TcpRule::catch_all()
        };
        let rules = rules_like_lima(vec![ignored], 0);
        assert_eq!(host_address(&rules, addr("127.0.0.1:5000")), None);
        // An ignore rule on 127.0.0.1 does not stop a 0.0.0.0 listener.
        assert_eq!(
            host_address(&rules, addr("0.0.0.0:5000")),
            Some(addr("127.0.0.1:5000"))
        );
    }
}
