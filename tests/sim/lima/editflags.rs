//! Lima's edit/create flags (`editflags.RegisterEdit` / `RegisterCreate`) and
//! their translation into yq expressions, in Lima's order.

use serde_json::json;

use crate::config;
use crate::fail::{Fail, Res};
use crate::flags::{flag, Kind, Parsed, Spec};
use crate::gofmt::quote;
use crate::logrus;
use crate::validate;

pub const EDIT: &[Spec] = &[
    flag("cpus", Kind::Int),
    flag("dns", Kind::IpSlice),
    flag("memory", Kind::Float32),
    flag("mount", Kind::StrSlice),
    flag("mount-only", Kind::StrSlice),
    flag("mount-none", Kind::Bool),
    flag("mount-type", Kind::Str),
    flag("mount-writable", Kind::Bool),
    flag("mount-inotify", Kind::Bool),
    flag("network", Kind::StrSlice),
    flag("rosetta", Kind::Bool),
    flag("set", Kind::StrArray),
    flag("ssh-port", Kind::Uint16),
    flag("video", Kind::Bool),
    flag("disk", Kind::Float32),
    flag("vm-type", Kind::Str),
];

pub const CREATE_ONLY: &[Spec] = &[
    flag("arch", Kind::Str),
    flag("containerd", Kind::Str),
    flag("plain", Kind::Bool),
    flag("port-forward", Kind::StrArray),
];

/// Flags the simulator accepts (so they are not "unknown") but cannot
/// emulate: using them must fail loudly instead of being ignored.
pub fn reject_unsupported(p: &Parsed) -> Res<()> {
    let mut bad: Vec<String> = Vec::new();
    for name in ["dns", "network", "foreground", "sync"] {
        if p.changed(name) {
            bad.push(format!("--{name}"));
        }
    }
    if p.changed("video") && p.bool("video") {
        bad.push("--video".into());
    }
    if p.changed("arch")
        && p.str("arch") != crate::host::arch()
        && validate::ARCH_TYPES.contains(&p.str("arch").as_str())
    {
        bad.push(format!(
            "--arch={} (the host is {})",
            p.str("arch"),
            crate::host::arch()
        ));
    }
    if bad.is_empty() {
        return Ok(());
    }
    Err(Fail::fatal(format!(
        "flag {} is not supported by the simulator",
        bad.join(", ")
    )))
}

fn string_lit(s: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar.
    json!(s).to_string()
}

fn mount_list(items: &[String], home: &std::path::Path) -> Result<String, String> {
    let mut out = Vec::new();
    for item in items {
        let writable = item.ends_with(":w");
        let loc = config::expand_tilde(item.strip_suffix(":w").unwrap_or(item), home)?;
        out.push(json!({"location": loc, "mountPoint": loc, "writable": writable}).to_string());
    }
    Ok(format!("[{}]", out.join(",")))
}

/// `ParsePortForward` + `BuildPortForwardExpression`.
fn port_forwards(specs: &[String]) -> Result<String, String> {
    let mut ports = Vec::new();
    for spec in specs {
        let parts: Vec<&str> = spec.split(',').collect();
        if parts.len() > 2 {
            return Err(format!(
                "invalid port forward format {}, expected HOST:GUEST or HOST:GUEST,static=true",
                quote(spec)
            ));
        }
        let hp: Vec<&str> = parts[0].trim().split(':').collect();
        if hp.len() != 2 {
            return Err(format!(
                "invalid port forward format {}, expected HOST:GUEST",
                quote(parts[0])
            ));
        }
        let mut is_static = false;
        if let Some(extra) = parts.get(1).map(|s| s.trim()) {
            let value = extra.strip_prefix("static=").ok_or_else(|| {
                format!(
                    "invalid parameter {}, expected 'static=' followed by a boolean value",
                    quote(extra)
                )
            })?;
            is_static = crate::gofmt::parse_bool(value)
                .map_err(|_| format!("invalid value for static parameter: {}", quote(value)))?;
        }
        ports.push(
            json!({"guestPort": hp[1].trim(), "hostPort": hp[0].trim(), "static": is_static})
                .to_string(),
        );
    }
    Ok(format!(".portForwards += [{}]", ports.join(",")))
}

fn expr_for(p: &Parsed, name: &str, home: &std::path::Path) -> Result<Vec<String>, String> {
    let v = p.value_string(name);
    Ok(match name {
        "cpus" => {
            if p.int("cpus") < 0 {
                return Err("invalid value for number of cpus, must be >= 0".into());
            }
            vec![format!(".cpus = {}", p.int("cpus"))]
        }
        "memory" => vec![format!(".memory = {}", string_lit(&format!("{v}GiB")))],
        "disk" => vec![format!(".disk= {}", string_lit(&format!("{v}GiB")))],
        "mount" => {
            if !p.list("mount-only").is_empty() {
                return Err("flag `--mount` conflicts with `--mount-only`".into());
            }
            let mut items = p.list("mount");
            items.reverse();
            vec![format!(".mounts = {} + .mounts", mount_list(&items, home)?)]
        }
        "mount-only" => vec![format!(
            ".mounts = {}",
            mount_list(&p.list("mount-only"), home)?
        )],
        "mount-none" => {
            for other in ["mount", "mount-only"] {
                if !p.list(other).is_empty() {
                    return Err(format!("flag `--mount-none` conflicts with `{other}`"));
                }
            }
            vec![".mounts = null".into()]
        }
        "mount-type" => vec![format!(".mountType = {}", string_lit(&v))],
        "vm-type" => vec![format!(".vmType = {}", string_lit(&v))],
        "mount-inotify" => vec![format!(".mountInotify = {v}")],
        "mount-writable" => vec![format!(".mounts[].writable = {v}")],
        "rosetta" => vec![format!(
            ".vmOpts.vz.rosetta.enabled = {v} | .vmOpts.vz.rosetta.binfmt = {v}"
        )],
        "set" => p.list("set"),
        "video" => vec![format!(
            ".video.display = {}",
            if p.bool("video") {
                "\"default\""
            } else {
                "\"none\""
            }
        )],
        "ssh-port" => vec![format!(".ssh.localPort = {v}")],
        "arch" => vec![format!(".arch = {}", string_lit(&v))],
        "containerd" => vec![match v.as_str() {
            "user" => ".containerd.user = true | .containerd.system = false".into(),
            "system" => ".containerd.user = false | .containerd.system = true".into(),
            "user+system" | "system+user" => {
                ".containerd.user = true | .containerd.system = true".into()
            }
            "none" => ".containerd.user = false | .containerd.system = false".into(),
            _ => {
                return Err(format!(
                    "expected one of [\"user\", \"system\", \"user+system\", \"none\"], got {}",
                    quote(&v)
                ))
            }
        }],
        "plain" => vec![format!(".plain = {v}")],
        "port-forward" => vec![port_forwards(&p.list("port-forward"))?],
        _ => Vec::new(),
    })
}

/// `editflags.YQExpressions`: one expression per changed flag, in Lima's order.
pub fn yq_expressions(p: &Parsed, new_instance: bool, home: &std::path::Path) -> Res<Vec<String>> {
    const ORDER: &[(&str, bool)] = &[
        ("cpus", false),
        ("dns", false),
        ("memory", false),
        ("mount", false),
        ("mount-only", false),
        ("mount-none", false),
        ("mount-type", false),
        ("vm-type", false),
        ("mount-inotify", false),
        ("mount-writable", false),
        ("network", false),
        ("rosetta", false),
        ("set", false),
        ("video", false),
        ("ssh-port", false),
        ("arch", true),
        ("containerd", true),
        ("disk", false),
        ("plain", true),
        ("port-forward", false),
    ];
    let mut exprs = Vec::new();
    for (name, only_new) in ORDER {
        if !p.changed(name) {
            continue;
        }
        if *name == "mount-inotify" {
            logrus::warn("`--mount-inotify` is experimental");
        }
        if *only_new && !new_instance {
            logrus::warn(&format!(
                "`--{name}` is not applicable to an existing instance (Hint: create a new instance with `limactl create --{name}={} --name=NAME`)",
                p.value_string(name)
            ));
            continue;
        }
        let more = expr_for(p, name, home).map_err(|e| {
            Fail::fatal(format!("error while processing flag {}: {e}", quote(name)))
        })?;
        exprs.extend(more);
    }
    Ok(exprs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::parse;
    use std::ffi::OsString;
    use std::path::Path;

    fn exprs(args: &[&str]) -> Res<Vec<String>> {
        let specs: Vec<Spec> = EDIT.iter().chain(CREATE_ONLY).copied().collect();
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let p = parse(&specs, &args, true).unwrap();
        yq_expressions(&p, true, Path::new("/home/u"))
    }

    #[test]
    fn builds_lima_expressions_in_order() {
        let e = exprs(&[
            "--disk", "20", "--set", ".x = 1", "--memory", "2.5", "--cpus", "2",
        ])
        .unwrap();
        assert_eq!(
            e,
            vec![
                ".cpus = 2",
                ".memory = \"2.5GiB\"",
                ".x = 1",
                ".disk= \"20GiB\""
            ]
        );
        let e = exprs(&["--mount", "~/a:w,/b"]).unwrap();
        assert_eq!(
            e,
            vec![
                ".mounts = [{\"location\":\"/b\",\"mountPoint\":\"/b\",\"writable\":false},{\"location\":\"/home/u/a\",\"mountPoint\":\"/home/u/a\",\"writable\":true}] + .mounts"
            ]
        );
        assert_eq!(exprs(&["--mount-none"]).unwrap(), vec![".mounts = null"]);
        assert_eq!(
            exprs(&["--port-forward", "8080:80"]).unwrap(),
            vec![
                ".portForwards += [{\"guestPort\":\"80\",\"hostPort\":\"8080\",\"static\":false}]"
            ]
        );
    }

    #[test]
    fn reports_flag_errors_like_lima() {
        let msg = |args: &[&str]| exprs(args).unwrap_err().msg.unwrap();
        assert_eq!(
            msg(&["--cpus", "-1"]),
            "error while processing flag \"cpus\": invalid value for number of cpus, must be >= 0"
        );
        assert!(
            msg(&["--mount", "/a", "--mount-only", "/b"]).contains("conflicts with `--mount-only`")
        );
        assert!(msg(&["--mount-none", "--mount", "/a"])
            .contains("flag `--mount-none` conflicts with `mount`"));
        assert!(msg(&["--containerd", "both"]).contains("expected one of"));
        assert!(msg(&["--port-forward", "80"]).contains("expected HOST:GUEST"));
    }
}
