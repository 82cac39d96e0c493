//! lima.yaml's `portForwards`: Lima's `FillPortForwardDefaults` and the
//! port-forward part of `limayaml.Validate`, with Lima's texts.
//!
//! TCP rules need nothing at run time (the guest's network is the host's);
//! reverse unix-socket rules are served by the host agent (`forward.rs`).

use std::net::IpAddr;
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::config::{clean, guest_template, host_template, User};
use crate::host::Host;
use crate::logrus;

/// `limatype.PortForward` after `FillPortForwardDefaults`.
#[derive(Clone, Debug, PartialEq)]
pub struct PortForward {
    pub guest_ip_must_be_zero: bool,
    pub guest_ip: String,
    pub guest_port: i64,
    pub guest_port_range: [i64; 2],
    pub guest_socket: String,
    pub host_ip: String,
    pub host_port: i64,
    pub host_port_range: [i64; 2],
    pub host_socket: String,
    pub proto: String,
    pub reverse: bool,
    pub ignore: bool,
    pub is_static: bool,
}

/// Lima's `osutil.UnixPathMax`.
pub const UNIX_PATH_MAX: usize = if cfg!(target_os = "linux") { 108 } else { 104 };
/// `filenames.SocketDir`: where a relative `hostSocket` lands.
const SOCKET_DIR: &str = "sock";
const LOOPBACK: &str = "127.0.0.1";

/// A port number as Lima's YAML decoder takes it: an integer, or a string
/// holding one (what `--port-forward` writes).
pub fn port_number(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

fn range(v: Option<&Value>) -> [i64; 2] {
    let mut out = [0, 0];
    if let Some(Value::Array(a)) = v {
        for (slot, item) in out.iter_mut().zip(a) {
            *slot = port_number(Some(item));
        }
    }
    out
}

fn is_ipv4_zero(ip: &str) -> bool {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_unspecified(),
        Ok(IpAddr::V6(v6)) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_unspecified()),
        Err(_) => false,
    }
}

/// `FillPortForwardDefaults` for one rule of the file.
pub fn fill(raw: &Value, inst_dir: &Path, lima_home: &Path, h: &Host, user: &User) -> PortForward {
    let text = |k: &str| raw.get(k).and_then(Value::as_str).unwrap_or_default();
    let flag = |k: &str| raw.get(k).and_then(Value::as_bool);
    let guest_port = port_number(raw.get("guestPort"));
    let host_port = port_number(raw.get("hostPort"));
    let must_be_zero = flag("guestIPMustBeZero");
    let guest_ip = match text("guestIP") {
        "" if must_be_zero == Some(true) => "0.0.0.0".to_string(),
        "" => LOOPBACK.to_string(),
        ip => ip.to_string(),
    };
    let mut guest_port_range = range(raw.get("guestPortRange"));
    if guest_port_range == [0, 0] {
        guest_port_range = if guest_port == 0 {
            [1, 65535]
        } else {
            [guest_port, guest_port]
        };
    }
    let mut guest_socket = text("guestSocket").to_string();
    if !guest_socket.is_empty() {
        match guest_template(&guest_socket, inst_dir, user) {
            Ok(out) => guest_socket = out,
            Err(e) => logrus::warn_err(
                &format!(
                    "Couldn't process guestSocket {} as a template",
                    crate::gofmt::quote(&guest_socket)
                ),
                &e,
            ),
        }
    }
    let mut host_socket = text("hostSocket").to_string();
    let mut host_port_range = range(raw.get("hostPortRange"));
    if !host_socket.is_empty() {
        match host_template(&host_socket, inst_dir, lima_home, h) {
            Ok(out) => host_socket = out,
            Err(e) => logrus::warn_err(
                &format!(
                    "Couldn't process hostSocket {} as a template",
                    crate::gofmt::quote(&host_socket)
                ),
                &e,
            ),
        }
        if !host_socket.starts_with('/') {
            host_socket = clean(&inst_dir.join(SOCKET_DIR).join(&host_socket));
        }
    } else if host_port_range == [0, 0] {
        host_port_range = if host_port == 0 {
            guest_port_range
        } else {
            [host_port, host_port]
        };
    }
    PortForward {
        guest_ip_must_be_zero: must_be_zero.unwrap_or_else(|| is_ipv4_zero(&guest_ip)),
        guest_ip,
        guest_port,
        guest_port_range,
        guest_socket,
        host_ip: match text("hostIP") {
            "" => LOOPBACK.to_string(),
            ip => ip.to_string(),
        },
        host_port,
        host_port_range,
        host_socket,
        proto: match text("proto") {
            "" => "any".to_string(),
            p => p.to_string(),
        },
        reverse: flag("reverse").unwrap_or(false),
        ignore: flag("ignore").unwrap_or(false),
        is_static: flag("static").unwrap_or(false),
    }
}

impl PortForward {
    /// A unix-socket rule the host agent serves: guest socket to host socket.
    /// Lima sets up socket forwards only for non-static rules.
    pub fn is_reverse_socket(&self) -> bool {
        self.reverse && !self.is_static && !self.guest_socket.is_empty()
    }

    /// A socket rule in the other direction, which the simulator cannot serve.
    pub fn is_unsupported_socket(&self) -> bool {
        !self.reverse
            && !self.is_static
            && (!self.guest_socket.is_empty() || !self.host_socket.is_empty())
    }

    /// The rule as Lima's JSON shows it (`omitempty` fields dropped).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "guestIPMustBeZero".into(),
            json!(self.guest_ip_must_be_zero),
        );
        m.insert("guestIP".into(), json!(self.guest_ip));
        if self.guest_port != 0 {
            m.insert("guestPort".into(), json!(self.guest_port));
        }
        m.insert("guestPortRange".into(), json!(self.guest_port_range));
        if !self.guest_socket.is_empty() {
            m.insert("guestSocket".into(), json!(self.guest_socket));
        }
        m.insert("hostIP".into(), json!(self.host_ip));
        if self.host_port != 0 {
            m.insert("hostPort".into(), json!(self.host_port));
        }
        m.insert("hostPortRange".into(), json!(self.host_port_range));
        if !self.host_socket.is_empty() {
            m.insert("hostSocket".into(), json!(self.host_socket));
        }
        m.insert("proto".into(), json!(self.proto));
        for (key, on) in [
            ("reverse", self.reverse),
            ("ignore", self.ignore),
            ("static", self.is_static),
        ] {
            if on {
                m.insert(key.into(), json!(true));
            }
        }
        Value::Object(m)
    }
}

/// Lima's `validatePort`.
pub fn validate_port(field: &str, port: i64) -> Option<String> {
    match port {
        p if p < 0 => Some(format!("field `{field}` must be > 0")),
        0 => Some(format!("field `{field}` must be set")),
        22 => Some(format!("field `{field}` must not be 22")),
        p if p > 65535 => Some(format!("field `{field}` must be < 65536")),
        _ => None,
    }
}

/// The `portForwards` part of `limayaml.Validate`, in Lima's order.
pub fn validate(rules: &[PortForward], errs: &mut Vec<String>) {
    for (i, r) in rules.iter().enumerate() {
        let f = format!("portForwards[{i}]");
        if r.guest_ip_must_be_zero && !is_ipv4_zero(&r.guest_ip) {
            errs.push(format!(
                "field `{f}.guestIPMustBeZero` can only be true when field `{f}.guestIP` is 0.0.0.0"
            ));
        }
        if r.guest_port != 0 {
            if !r.guest_socket.is_empty() {
                errs.push(format!(
                    "field `{f}.guestPort` must be 0 when field `{f}.guestSocket` is set"
                ));
            }
            if r.guest_port != r.guest_port_range[0] {
                errs.push(format!(
                    "field `{f}.guestPort` must match field `{f}.guestPortRange[0]`"
                ));
            }
            errs.extend(validate_port(&format!("{f}.guestPort"), r.guest_port));
        }
        if r.host_port != 0 {
            if !r.host_socket.is_empty() {
                errs.push(format!(
                    "field `{f}.hostPort` must be 0 when field `{f}.hostSocket` is set"
                ));
            }
            if r.host_port != r.host_port_range[0] {
                errs.push(format!(
                    "field `{f}.hostPort` must match field `{f}.hostPortRange[0]`"
                ));
            }
            errs.extend(validate_port(&format!("{f}.hostPort"), r.host_port));
        }
        for j in 0..2 {
            errs.extend(validate_port(
                &format!("{f}.guestPortRange[{j}]"),
                r.guest_port_range[j],
            ));
            if r.host_socket.is_empty() {
                errs.extend(validate_port(
                    &format!("{f}.hostPortRange[{j}]"),
                    r.host_port_range[j],
                ));
            }
        }
        if r.guest_port_range[0] > r.guest_port_range[1] {
            errs.push(format!(
                "field `{f}.guestPortRange[1]` must be greater than or equal to field `{f}.guestPortRange[0]`"
            ));
        }
        if r.host_port_range[0] > r.host_port_range[1] {
            errs.push(format!(
                "field `{f}.hostPortRange[1]` must be greater than or equal to field `{f}.hostPortRange[0]`"
            ));
        }
        let guest_span = r.guest_port_range[1] - r.guest_port_range[0];
        let host_span = r.host_port_range[1] - r.host_port_range[0];
        if !r.guest_socket.is_empty() {
            if !r.guest_socket.starts_with('/') {
                errs.push(format!(
                    "field `{f}.guestSocket` must be an absolute path, but is {}",
                    crate::gofmt::quote(&r.guest_socket)
                ));
            }
            if r.host_socket.is_empty() && host_span > 0 {
                errs.push(format!(
                    "field `{f}.guestSocket` can only be mapped to a single port or socket. not a range"
                ));
            }
        }
        if !r.host_socket.is_empty() {
            if !r.host_socket.starts_with('/') {
                errs.push(format!(
                    "field `{f}.hostSocket` must be an absolute path, but is {}",
                    crate::gofmt::quote(&r.host_socket)
                ));
            }
            if r.guest_socket.is_empty() && guest_span > 0 {
                errs.push(format!(
                    "field `{f}.hostSocket` can only be mapped from a single port or socket. not a range"
                ));
            }
        } else if guest_span != host_span {
            errs.push(format!(
                "field `{f}.hostPortRange` must specify the same number of ports as field `{f}.guestPortRange`"
            ));
        }
        if r.host_socket.len() >= UNIX_PATH_MAX {
            errs.push(format!(
                "field `{f}.hostSocket` must be less than UNIX_PATH_MAX={UNIX_PATH_MAX} characters, but is {}",
                r.host_socket.len()
            ));
        }
        if !["tcp", "udp", "any"].contains(&r.proto.as_str()) {
            errs.push(format!(
                "field `{f}.proto` must be \"tcp\", \"udp\", or \"any\""
            ));
        }
        if r.reverse && r.guest_socket.is_empty() {
            errs.push(format!("field `{f}.reverse` must be false"));
        }
        if r.reverse && r.host_socket.is_empty() {
            errs.push(format!("field `{f}.reverse` must be false"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn alice() -> (Host, User) {
        let host = Host {
            login: "alice".into(),
            guest_user: "alice".into(),
            uid: 501,
            guest_uid: 501,
            home: PathBuf::from("/Users/alice"),
        };
        let user = User {
            name: "alice".into(),
            comment: "alice".into(),
            home: "/home/alice.linux".into(),
            shell: "/bin/bash".into(),
            uid: 501,
        };
        (host, user)
    }

    fn filled(v: Value) -> PortForward {
        let (h, u) = alice();
        fill(&v, Path::new("/lima/vm1"), Path::new("/lima"), &h, &u)
    }

    fn errors(v: Value) -> Vec<String> {
        let mut errs = Vec::new();
        validate(&[filled(v)], &mut errs);
        errs
    }

    #[test]
    fn fills_defaults_like_lima() {
        let r = filled(json!({"guestPort": 8080}));
        assert_eq!(r.guest_port_range, [8080, 8080]);
        assert_eq!(r.host_port_range, [8080, 8080]);
        assert_eq!(
            (r.guest_ip.as_str(), r.host_ip.as_str()),
            (LOOPBACK, LOOPBACK)
        );
        assert_eq!(r.proto, "any");
        assert!(!r.guest_ip_must_be_zero);
        let r = filled(json!({"guestPort": "80", "hostPort": "8080"}));
        assert_eq!(
            (r.guest_port_range, r.host_port_range),
            ([80, 80], [8080, 8080])
        );
        let r = filled(
            json!({"guestIP": "0.0.0.0", "guestPortRange": [3000, 3009], "hostPortRange": [4000, 4009]}),
        );
        assert!(r.guest_ip_must_be_zero);
        assert_eq!(r.host_port_range, [4000, 4009]);
        let r = filled(json!({
            "guestSocket": "{{.Home}}/.gnupg/S.gpg-agent-{{.UID}}-{{.User}}-{{.Name}}",
            "hostSocket": "gpg.sock",
            "reverse": true
        }));
        assert_eq!(
            r.guest_socket,
            "/home/alice.linux/.gnupg/S.gpg-agent-501-alice-vm1"
        );
        assert_eq!(r.host_socket, "/lima/vm1/sock/gpg.sock");
        assert_eq!(r.host_port_range, [0, 0]);
        assert!(r.is_reverse_socket());
        let r = filled(json!({"guestSocket": "/run/x.sock", "hostSocket": "{{.Home}}/x.sock"}));
        assert_eq!(r.host_socket, "/Users/alice/x.sock");
        assert!(r.is_unsupported_socket() && !r.is_reverse_socket());
        let json = filled(json!({"guestPort": 80, "hostPort": 8080, "static": true})).to_json();
        assert_eq!(
            json,
            json!({"guestIPMustBeZero": false, "guestIP": "127.0.0.1", "guestPort": 80,
                   "guestPortRange": [80, 80], "hostIP": "127.0.0.1", "hostPort": 8080,
                   "hostPortRange": [8080, 8080], "proto": "any", "static": true})
        );
    }

    #[test]
    fn validates_with_lima_texts() {
        assert!(errors(json!({"guestPort": 8080, "hostPort": 18080})).is_empty());
        assert!(
            errors(json!({"guestSocket": "/s", "hostSocket": "/h", "reverse": true})).is_empty()
        );
        assert_eq!(
            errors(json!({"guestPort": 22})),
            vec![
                "field `portForwards[0].guestPort` must not be 22",
                "field `portForwards[0].guestPortRange[0]` must not be 22",
                "field `portForwards[0].hostPortRange[0]` must not be 22",
                "field `portForwards[0].guestPortRange[1]` must not be 22",
                "field `portForwards[0].hostPortRange[1]` must not be 22",
            ]
        );
        assert_eq!(
            errors(json!({"guestPortRange": [3000, 3001], "hostPortRange": [4000, 4009]})),
            vec!["field `portForwards[0].hostPortRange` must specify the same number of ports as field `portForwards[0].guestPortRange`"]
        );
        assert_eq!(
            errors(json!({"guestPortRange": [3009, 3000], "hostPortRange": [3009, 3000]})),
            vec![
                "field `portForwards[0].guestPortRange[1]` must be greater than or equal to field `portForwards[0].guestPortRange[0]`",
                "field `portForwards[0].hostPortRange[1]` must be greater than or equal to field `portForwards[0].hostPortRange[0]`",
            ]
        );
        assert_eq!(
            errors(json!({"guestSocket": "/s", "reverse": true})),
            vec![
                "field `portForwards[0].guestSocket` can only be mapped to a single port or socket. not a range",
                "field `portForwards[0].reverse` must be false",
            ]
        );
        assert_eq!(
            errors(json!({"hostSocket": "/h", "reverse": true})),
            vec![
                "field `portForwards[0].hostSocket` can only be mapped from a single port or socket. not a range",
                "field `portForwards[0].reverse` must be false",
            ]
        );
        assert_eq!(
            errors(json!({"guestSocket": "relative", "hostSocket": "/h", "reverse": true})),
            vec![
                "field `portForwards[0].guestSocket` must be an absolute path, but is \"relative\""
            ]
        );
        let long = format!("/{}", "x".repeat(UNIX_PATH_MAX));
        assert_eq!(
            errors(json!({"guestSocket": "/s", "hostSocket": long, "reverse": true})),
            vec![format!(
                "field `portForwards[0].hostSocket` must be less than UNIX_PATH_MAX={UNIX_PATH_MAX} characters, but is {}",
                UNIX_PATH_MAX + 1
            )]
        );
        assert_eq!(
            errors(json!({"guestPort": 80, "guestSocket": "/s", "hostSocket": "/h", "proto": "sctp"})),
            vec![
                "field `portForwards[0].guestPort` must be 0 when field `portForwards[0].guestSocket` is set",
                "field `portForwards[0].proto` must be \"tcp\", \"udp\", or \"any\"",
            ]
        );
        assert_eq!(
            errors(json!({"guestPort": 70000, "guestIPMustBeZero": true, "guestIP": "127.0.0.1"}))[0],
            "field `portForwards[0].guestIPMustBeZero` can only be true when field `portForwards[0].guestIP` is 0.0.0.0"
        );
        assert!(errors(json!({"guestPort": 80, "hostPort": 8080, "hostPortRange": [9000, 9000]}))
            .contains(&"field `portForwards[0].hostPort` must match field `portForwards[0].hostPortRange[0]`".to_string()));
    }
}
