//! The schema check of `limayaml.Unmarshal`: lima.yaml is parsed (as JSON,
//! which is valid YAML) and the known keys are type-checked; unknown keys
//! only earn Lima's "Non-strict YAML" warning.

use serde_json::{json, Map, Value};

use crate::gofmt::quote;
use crate::logrus;

#[derive(Clone, Copy, PartialEq)]
enum Ty {
    Str,
    Int,
    /// An int, or a string holding one (Lima's decoder converts it).
    Port,
    Uint,
    Bool,
    Seq,
    Map,
    Any,
}

const TOP_LEVEL: &[(&str, Ty)] = &[
    ("base", Ty::Any),
    ("minimumLimaVersion", Ty::Str),
    ("vmType", Ty::Str),
    ("vmOpts", Ty::Map),
    ("os", Ty::Str),
    ("arch", Ty::Str),
    ("images", Ty::Seq),
    ("cpuType", Ty::Map),
    ("cpus", Ty::Int),
    ("memory", Ty::Str),
    ("disk", Ty::Str),
    ("additionalDisks", Ty::Seq),
    ("mounts", Ty::Seq),
    ("mountTypesUnsupported", Ty::Seq),
    ("mountType", Ty::Str),
    ("mountInotify", Ty::Bool),
    ("ssh", Ty::Map),
    ("firmware", Ty::Map),
    ("audio", Ty::Map),
    ("video", Ty::Map),
    ("provision", Ty::Seq),
    ("upgradePackages", Ty::Bool),
    ("containerd", Ty::Map),
    ("guestInstallPrefix", Ty::Str),
    ("probes", Ty::Seq),
    ("portForwards", Ty::Seq),
    ("copyToHost", Ty::Seq),
    ("message", Ty::Str),
    ("networks", Ty::Seq),
    ("env", Ty::Map),
    ("param", Ty::Map),
    ("dns", Ty::Seq),
    ("hostResolver", Ty::Map),
    ("propagateProxyEnv", Ty::Bool),
    ("caCerts", Ty::Map),
    ("rosetta", Ty::Map),
    ("plain", Ty::Bool),
    ("timezone", Ty::Str),
    ("nestedVirtualization", Ty::Bool),
    ("user", Ty::Map),
];

const MOUNT_KEYS: &[(&str, Ty)] = &[
    ("location", Ty::Str),
    ("mountPoint", Ty::Str),
    ("writable", Ty::Bool),
    ("sshfs", Ty::Map),
    ("9p", Ty::Map),
    ("virtiofs", Ty::Map),
];

const SSH_KEYS: &[(&str, Ty)] = &[
    ("localPort", Ty::Int),
    ("loadDotSSHPubKeys", Ty::Bool),
    ("forwardAgent", Ty::Bool),
    ("forwardX11", Ty::Bool),
    ("forwardX11Trusted", Ty::Bool),
    ("overVsock", Ty::Bool),
];

const PORT_FORWARD_KEYS: &[(&str, Ty)] = &[
    ("guestIPMustBeZero", Ty::Bool),
    ("guestIP", Ty::Str),
    ("guestPort", Ty::Port),
    ("guestPortRange", Ty::Seq),
    ("guestSocket", Ty::Str),
    ("hostIP", Ty::Str),
    ("hostPort", Ty::Port),
    ("hostPortRange", Ty::Seq),
    ("hostSocket", Ty::Str),
    ("proto", Ty::Str),
    ("reverse", Ty::Bool),
    ("ignore", Ty::Bool),
    ("static", Ty::Bool),
];

const USER_KEYS: &[(&str, Ty)] = &[
    ("name", Ty::Str),
    ("comment", Ty::Str),
    ("home", Ty::Str),
    ("shell", Ty::Str),
    ("uid", Ty::Uint),
];

fn type_ok(v: &Value, ty: Ty) -> bool {
    match (ty, v) {
        (_, Value::Null) | (Ty::Any, _) => true,
        (Ty::Str, Value::String(_)) | (Ty::Bool, Value::Bool(_)) => true,
        (Ty::Int | Ty::Port, Value::Number(n)) => n.is_i64() || n.is_u64(),
        (Ty::Port, Value::String(s)) => s.trim().parse::<i64>().is_ok(),
        (Ty::Uint, Value::Number(n)) => n.as_u64().is_some_and(|u| u <= u32::MAX as u64),
        (Ty::Seq, Value::Array(_)) | (Ty::Map, Value::Object(_)) => true,
        _ => false,
    }
}

fn ty_name(ty: Ty) -> &'static str {
    match ty {
        Ty::Str => "string",
        Ty::Int | Ty::Port => "int",
        Ty::Uint => "uint32",
        Ty::Bool => "bool",
        Ty::Seq => "sequence",
        Ty::Map => "mapping",
        Ty::Any => "value",
    }
}

/// Checks the keys of one mapping; returns unknown keys for the strict warning.
fn check_keys(
    obj: &Map<String, Value>,
    schema: &[(&str, Ty)],
    at: &str,
) -> Result<Vec<String>, String> {
    let mut unknown = Vec::new();
    for (key, value) in obj {
        match schema.iter().find(|(k, _)| k == key) {
            Some((_, ty)) if !type_ok(value, *ty) => {
                return Err(format!(
                    "field {}: cannot unmarshal {} into {}",
                    quote(&format!("{at}{key}")),
                    value_kind(value),
                    ty_name(*ty)
                ))
            }
            Some(_) => {}
            None => unknown.push(format!("{at}{key}")),
        }
    }
    Ok(unknown)
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "sequence",
        Value::Object(_) => "mapping",
    }
}

// One `portForwards` entry: key types, the `[2]int` ranges and `net.IP` text.
fn check_port_forward(i: usize, rule: &Value) -> Result<Vec<String>, String> {
    let at = format!("portForwards[{i}].");
    let Value::Object(r) = rule else {
        return Err(format!(
            "field \"portForwards[{i}]\": cannot unmarshal {} into PortForward",
            value_kind(rule)
        ));
    };
    let unknown = check_keys(r, PORT_FORWARD_KEYS, &at)?;
    for key in ["guestPortRange", "hostPortRange"] {
        if let Some(Value::Array(items)) = r.get(key) {
            if items.len() > 2 || !items.iter().all(|v| type_ok(v, Ty::Port)) {
                return Err(format!(
                    "field {}: cannot unmarshal sequence into [2]int",
                    quote(&format!("{at}{key}"))
                ));
            }
        }
    }
    for key in ["guestIP", "hostIP"] {
        if let Some(Value::String(ip)) = r.get(key) {
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(format!(
                    "field {}: invalid IP address: {}",
                    quote(&format!("{at}{key}")),
                    quote(ip)
                ));
            }
        }
    }
    Ok(unknown)
}

/// `limayaml.Unmarshal`: parses and type-checks, warning about unknown keys.
pub fn unmarshal(bytes: &[u8], comment: &str) -> Result<Value, String> {
    let fail = |e: String| format!("failed to unmarshal YAML ({comment}): {e}");
    let text = String::from_utf8_lossy(bytes);
    let doc: Value = if text.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(&text).map_err(|e| {
            fail(format!(
                "{e} (the simulator reads only JSON-compatible YAML)"
            ))
        })?
    };
    let Value::Object(obj) = &doc else {
        return Err(fail(format!(
            "cannot unmarshal {} into LimaYAML",
            value_kind(&doc)
        )));
    };
    let mut unknown = check_keys(obj, TOP_LEVEL, "").map_err(fail)?;
    let nested: [(&str, &[(&str, Ty)]); 2] = [("ssh", SSH_KEYS), ("user", USER_KEYS)];
    for (key, schema) in nested {
        if let Some(Value::Object(inner)) = obj.get(key) {
            unknown.extend(check_keys(inner, schema, &format!("{key}.")).map_err(fail)?);
        }
    }
    if let Some(Value::Array(mounts)) = obj.get("mounts") {
        for (i, m) in mounts.iter().enumerate() {
            let Value::Object(m) = m else {
                return Err(fail(format!(
                    "field \"mounts[{i}]\": cannot unmarshal {} into Mount",
                    value_kind(m)
                )));
            };
            unknown.extend(check_keys(m, MOUNT_KEYS, &format!("mounts[{i}].")).map_err(fail)?);
        }
    }
    if let Some(Value::Array(rules)) = obj.get("portForwards") {
        for (i, r) in rules.iter().enumerate() {
            unknown.extend(check_port_forward(i, r).map_err(fail)?);
        }
    }
    if let Some(Value::Object(env)) = obj.get("env") {
        for (k, v) in env {
            if matches!(v, Value::Array(_) | Value::Object(_)) {
                return Err(fail(format!(
                    "field \"env.{k}\": cannot unmarshal {} into string",
                    value_kind(v)
                )));
            }
        }
    }
    if !unknown.is_empty() {
        let errors: Vec<String> = unknown
            .iter()
            .map(|k| format!("unknown field {}", quote(k)))
            .collect();
        logrus::log(
            logrus::Level::Warn,
            "Non-strict YAML detected; please check for typos",
            &[
                ("comment", comment.to_string()),
                ("error", errors.join("\n")),
            ],
        );
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_name_the_field() {
        let err = unmarshal(br#"{"cpus": "two"}"#, "main file").unwrap_err();
        assert_eq!(
            err,
            "failed to unmarshal YAML (main file): field \"cpus\": cannot unmarshal string into int"
        );
        let err = unmarshal(br#"{"mounts": [{"location": 1}]}"#, "f").unwrap_err();
        assert!(
            err.contains("field \"mounts[0].location\": cannot unmarshal number into string"),
            "{err}"
        );
        let err = unmarshal(b"cpus: 2", "f").unwrap_err();
        assert!(
            err.contains("the simulator reads only JSON-compatible YAML"),
            "{err}"
        );
        assert_eq!(unmarshal(b"", "f").unwrap(), json!({}));
        assert!(unmarshal(br#"{"typo": 1, "ssh": {"forwardAgent": true}}"#, "f").is_ok());
        let err = unmarshal(br#"{"portForwards": [{"guestPort": "http"}]}"#, "f").unwrap_err();
        assert!(
            err.contains("field \"portForwards[0].guestPort\": cannot unmarshal string into int"),
            "{err}"
        );
        let err = unmarshal(br#"{"portForwards": [{"reverse": "yes"}]}"#, "f").unwrap_err();
        assert!(err.contains("\"portForwards[0].reverse\""), "{err}");
        let err =
            unmarshal(br#"{"portForwards": [{"guestPortRange": [1, 2, 3]}]}"#, "f").unwrap_err();
        assert!(
            err.contains("cannot unmarshal sequence into [2]int"),
            "{err}"
        );
        let err = unmarshal(br#"{"portForwards": [{"guestIP": "localhost"}]}"#, "f").unwrap_err();
        assert!(err.contains("invalid IP address: \"localhost\""), "{err}");
        assert!(unmarshal(
            br#"{"portForwards": [{"guestPort": "80", "hostPort": 8080}]}"#,
            "f"
        )
        .is_ok());
    }
}
