//! lima.yaml's effective configuration: Lima's `FillDefault` (defaults,
//! host and guest templates, merged mounts) over the file's own content.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::gofmt::quote;
use crate::gotmpl;
use crate::host::{self, Host};
use crate::logrus;
use crate::names;
use crate::portfwd::{self, PortForward};
use crate::schema;

#[derive(Clone, Debug, PartialEq)]
pub struct Mount {
    /// Host directory (templates and `~` expanded).
    pub location: String,
    /// Guest directory (defaults to `location`).
    pub mount_point: String,
    pub writable: bool,
}

#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub comment: String,
    pub home: String,
    pub shell: String,
    pub uid: u32,
}

/// The effective configuration of an instance.
#[derive(Clone, Debug)]
pub struct Config {
    pub vm_type: String,
    pub os: String,
    pub arch: String,
    pub cpus: i64,
    pub memory: String,
    pub disk: String,
    pub mount_type: String,
    pub mount_types_unsupported: Vec<String>,
    pub mounts: Vec<Mount>,
    pub user: User,
    pub forward_agent: bool,
    pub ssh_local_port: i64,
    pub env: BTreeMap<String, String>,
    pub message: String,
    pub minimum_lima_version: Option<String>,
    pub image_archs: Vec<String>,
    pub port_forwards: Vec<PortForward>,
    pub provision_modes: Vec<String>,
    /// Configured features the simulator cannot emulate (checked at boot).
    pub unsupported: Vec<String>,
    raw: Value,
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Expands a host-side template (`executeHostTemplate`).
pub fn host_template(
    text: &str,
    inst_dir: &Path,
    lima_home: &Path,
    h: &Host,
) -> Result<String, String> {
    let name = inst_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = std::env::temp_dir().to_string_lossy().into_owned();
    gotmpl::expand(
        text,
        &[
            ("Dir", inst_dir.to_string_lossy().into_owned()),
            ("Name", name.clone()),
            ("UID", h.uid.to_string()),
            ("User", h.login.clone()),
            ("Home", h.home.to_string_lossy().into_owned()),
            ("GlobalTempDir", "/tmp".into()),
            ("TempDir", tmp.trim_end_matches('/').to_string()),
            ("Instance", name),
            ("LimaHome", lima_home.to_string_lossy().into_owned()),
        ],
    )
}

/// Expands a guest-side template (`executeGuestTemplate`).
pub fn guest_template(text: &str, inst_dir: &Path, user: &User) -> Result<String, String> {
    let name = inst_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    gotmpl::expand(
        text,
        &[
            ("Hostname", names::hostname(&name)),
            ("Name", name),
            ("UID", user.uid.to_string()),
            ("User", user.name.clone()),
            ("Home", user.home.clone()),
        ],
    )
}

/// `localpathutil.Expand`: `~` and `~/...` use the host home; `~user` is an error.
pub fn expand_tilde(path: &str, home: &Path) -> Result<String, String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    let expanded = if path == "~" {
        home.to_path_buf()
    } else if let Some(rest) = path.strip_prefix("~/") {
        home.join(rest)
    } else if path.starts_with('~') {
        return Err(format!("unexpandable path {}", quote(path)));
    } else {
        PathBuf::from(path)
    };
    Ok(clean(&absolute(&expanded)))
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Go's `filepath.Clean` on a path string.
pub fn clean(p: &Path) -> String {
    let s = p.to_string_lossy();
    let rooted = s.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in s.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn fill_user(raw: &Value, inst_dir: &Path, h: &Host) -> User {
    let u = raw.get("user").cloned().unwrap_or(Value::Null);
    let mut user = User {
        name: str_at(&u, "name")
            .map(String::from)
            .unwrap_or_else(|| h.guest_user.clone()),
        comment: str_at(&u, "comment")
            .map(String::from)
            .unwrap_or_else(|| h.login.clone()),
        home: str_at(&u, "home")
            .map(String::from)
            .unwrap_or_else(|| "/home/{{.User}}.linux".into()),
        shell: str_at(&u, "shell")
            .map(String::from)
            .unwrap_or_else(|| "/bin/bash".into()),
        uid: u
            .get("uid")
            .and_then(Value::as_u64)
            .map(|n| n as u32)
            .unwrap_or(h.guest_uid),
    };
    match guest_template(&user.home, inst_dir, &user) {
        Ok(home) => user.home = home,
        Err(e) => logrus::warn_err(
            &format!(
                "Couldn't process `user.home` value {} as a template",
                quote(&user.home)
            ),
            &e,
        ),
    }
    user
}

// FillDefault's mount merge: expand templates, default mountPoint, and merge
// entries with the same mountPoint (the later one wins, keeping the location).
fn fill_mounts(
    raw: &Value,
    inst_dir: &Path,
    lima_home: &Path,
    h: &Host,
    user: &User,
) -> Vec<Mount> {
    let mut mounts: Vec<Mount> = Vec::new();
    let Some(Value::Array(list)) = raw.get("mounts") else {
        return mounts;
    };
    for m in list {
        let mut location = str_at(m, "location").unwrap_or_default().to_string();
        match host_template(&location, inst_dir, lima_home, h) {
            Ok(out) => location = clean(Path::new(&out)),
            Err(e) => logrus::warn_err(
                &format!(
                    "Couldn't process mount location {} as a template",
                    quote(&location)
                ),
                &e,
            ),
        }
        if location == "~" || location.starts_with("~/") {
            match expand_tilde(&location, &h.home) {
                Ok(l) => location = l,
                Err(e) => logrus::warn_err(
                    &format!("Couldn't expand location {}", quote(&location)),
                    &e,
                ),
            }
        }
        let mount_point = match str_at(m, "mountPoint") {
            None => location.clone(),
            Some(mp) => guest_template(mp, inst_dir, user).unwrap_or_else(|e| {
                logrus::warn_err(
                    &format!("Couldn't process mount point {} as a template", quote(mp)),
                    &e,
                );
                mp.to_string()
            }),
        };
        let writable = m.get("writable").and_then(Value::as_bool);
        match mounts.iter_mut().find(|x| x.mount_point == mount_point) {
            Some(existing) => {
                if let Some(w) = writable {
                    existing.writable = w;
                }
            }
            None => mounts.push(Mount {
                location,
                mount_point,
                writable: writable.unwrap_or(false),
            }),
        }
    }
    mounts
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().map(scalar_text).collect(),
        _ => Vec::new(),
    }
}

// Keys whose non-empty values would need a real VM.
fn unsupported_features(raw: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let non_empty = |k: &str| match raw.get(k) {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    };
    for key in [
        "provision",
        "probes",
        "networks",
        "additionalDisks",
        "copyToHost",
        "param",
        "dns",
    ] {
        if non_empty(key) {
            out.push(format!("`{key}`"));
        }
    }
    let containerd = raw.get("containerd");
    for mode in ["system", "user"] {
        if containerd
            .and_then(|c| c.get(mode))
            .and_then(Value::as_bool)
            == Some(true)
        {
            out.push(format!("`containerd.{mode}: true`"));
        }
    }
    out
}

/// `limayaml.Load`: unmarshal, then fill defaults (without the driver part).
pub fn load(bytes: &[u8], file_path: &Path, lima_home: &Path, h: &Host) -> Result<Config, String> {
    let raw = schema::unmarshal(
        bytes,
        &format!("main file {}", quote(&file_path.to_string_lossy())),
    )?;
    if raw.get("base").is_some_and(|b| !b.is_null()) {
        return Err("field `base` (template inheritance) is not supported by the simulator".into());
    }
    let inst_dir = file_path.parent().unwrap_or(Path::new("/"));
    let user = fill_user(&raw, inst_dir, h);
    let mounts = fill_mounts(&raw, inst_dir, lima_home, h, &user);
    let plain = raw.get("plain").and_then(Value::as_bool).unwrap_or(false);
    let env = match raw.get("env") {
        Some(Value::Object(o)) => o.iter().map(|(k, v)| (k.clone(), scalar_text(v))).collect(),
        _ => BTreeMap::new(),
    };
    let ssh = raw.get("ssh").cloned().unwrap_or(Value::Null);
    let cpus_default = std::thread::available_parallelism()
        .map(|n| n.get().min(4))
        .unwrap_or(4) as i64;
    let images = match raw.get("images") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|i| str_at(i, "arch").unwrap_or_default().to_string())
            .collect(),
        _ => Vec::new(),
    };
    let mut port_forwards: Vec<PortForward> = match raw.get("portForwards") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|r| portfwd::fill(r, inst_dir, lima_home, h, &user))
            .collect(),
        _ => Vec::new(),
    };
    if plain {
        port_forwards.retain(|p| p.is_static);
    }
    let mut unsupported = unsupported_features(&raw);
    if port_forwards.iter().any(PortForward::is_unsupported_socket) {
        unsupported.push("socket `portForwards` without `reverse: true`".into());
    }
    Ok(Config {
        vm_type: str_at(&raw, "vmType").unwrap_or_default().to_string(),
        os: str_at(&raw, "os").unwrap_or("Linux").to_string(),
        arch: str_at(&raw, "arch").unwrap_or(host::arch()).to_string(),
        cpus: raw
            .get("cpus")
            .and_then(Value::as_i64)
            .unwrap_or(cpus_default),
        memory: str_at(&raw, "memory").unwrap_or("4GiB").to_string(),
        disk: str_at(&raw, "disk").unwrap_or("100GiB").to_string(),
        mount_type: str_at(&raw, "mountType").unwrap_or_default().to_string(),
        mount_types_unsupported: string_list(raw.get("mountTypesUnsupported")),
        mounts: if plain { Vec::new() } else { mounts },
        user,
        forward_agent: ssh
            .get("forwardAgent")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        ssh_local_port: ssh.get("localPort").and_then(Value::as_i64).unwrap_or(0),
        env,
        message: str_at(&raw, "message").unwrap_or_default().to_string(),
        minimum_lima_version: str_at(&raw, "minimumLimaVersion").map(String::from),
        image_archs: images,
        port_forwards,
        provision_modes: match raw.get("provision") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|p| str_at(p, "mode").unwrap_or("system").to_string())
                .collect(),
            _ => Vec::new(),
        },
        unsupported,
        raw,
    })
}

impl Config {
    /// The filled-in configuration as `limactl list --format json` shows it.
    pub fn filled(&self) -> Value {
        let mut out = self.raw.clone();
        let Value::Object(obj) = &mut out else {
            return out;
        };
        obj.insert("vmType".into(), json!(self.vm_type));
        obj.insert("os".into(), json!(self.os));
        obj.insert("arch".into(), json!(self.arch));
        obj.insert("cpus".into(), json!(self.cpus));
        obj.insert("memory".into(), json!(self.memory));
        obj.insert("disk".into(), json!(self.disk));
        obj.insert("mountType".into(), json!(self.mount_type));
        let mounts: Vec<Value> = self
            .mounts
            .iter()
            .map(|m| json!({"location": m.location, "mountPoint": m.mount_point, "writable": m.writable}))
            .collect();
        obj.insert("mounts".into(), Value::Array(mounts));
        obj.insert(
            "user".into(),
            json!({
                "name": self.user.name, "comment": self.user.comment, "home": self.user.home,
                "shell": self.user.shell, "uid": self.user.uid,
            }),
        );
        let mut ssh = match obj.get("ssh") {
            Some(Value::Object(s)) => s.clone(),
            _ => Map::new(),
        };
        ssh.insert("localPort".into(), json!(self.ssh_local_port));
        ssh.insert("forwardAgent".into(), json!(self.forward_agent));
        for key in ["loadDotSSHPubKeys", "forwardX11", "forwardX11Trusted"] {
            ssh.entry(key).or_insert(json!(false));
        }
        obj.insert("ssh".into(), Value::Object(ssh));
        obj.insert("env".into(), json!(self.env));
        let rules: Vec<Value> = self
            .port_forwards
            .iter()
            .map(PortForward::to_json)
            .collect();
        obj.insert("portForwards".into(), Value::Array(rules));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Host {
        Host {
            login: "alice".into(),
            guest_user: "alice".into(),
            uid: 501,
            guest_uid: 501,
            home: PathBuf::from("/home/alice"),
        }
    }

    #[test]
    fn fills_user_and_sizes() {
        let c = load(
            b"{}",
            Path::new("/lima/vm1/lima.yaml"),
            Path::new("/lima"),
            &alice(),
        )
        .unwrap();
        assert_eq!(c.user.name, "alice");
        assert_eq!(c.user.home, "/home/alice.linux");
        assert_eq!(c.user.uid, 501);
        assert_eq!((c.memory.as_str(), c.disk.as_str()), ("4GiB", "100GiB"));
        assert!(c.mounts.is_empty());
    }

    #[test]
    fn mounts_expand_and_merge() {
        let doc = json!({"mounts": [
            {"location": "~"},
            {"location": "{{.Dir}}/share", "mountPoint": "/mnt/{{.Name}}"},
            {"location": "/other", "mountPoint": "/home/alice", "writable": true},
            {"location": "{{.Home", "mountPoint": "/literal"},
        ]});
        let bytes = serde_json::to_vec(&doc).unwrap();
        let c = load(
            &bytes,
            Path::new("/lima/vm1/lima.yaml"),
            Path::new("/lima"),
            &alice(),
        )
        .unwrap();
        let mount = |l: &str, m: &str, w: bool| Mount {
            location: l.into(),
            mount_point: m.into(),
            writable: w,
        };
        assert_eq!(
            c.mounts,
            vec![
                mount("/home/alice", "/home/alice", true),
                mount("/lima/vm1/share", "/mnt/vm1", false),
                mount("{{.Home", "/literal", false),
            ]
        );
        let filled = c.filled();
        assert_eq!(filled["mounts"][0]["mountPoint"], "/home/alice");
        assert_eq!(filled["user"]["shell"], "/bin/bash");
    }

    #[test]
    fn plain_mode_drops_mounts() {
        let doc = br#"{"plain": true, "mounts": [{"location": "/x"}]}"#;
        let c = load(doc, Path::new("/l/v/lima.yaml"), Path::new("/l"), &alice()).unwrap();
        assert!(c.mounts.is_empty());
    }

    #[test]
    fn clean_matches_go() {
        assert_eq!(clean(Path::new("/a/./b/../c/")), "/a/c");
        assert_eq!(clean(Path::new("a/../../b")), "../b");
        assert_eq!(clean(Path::new("")), ".");
    }
}
