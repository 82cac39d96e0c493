//! Instances on disk: `store.Inspect` (config, status, protection) and the
//! instance list. Status follows Lima: Running while the host agent named in
//! `ha.pid` is alive, Stopped otherwise, Broken when lima.yaml is unusable.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::fail::{Fail, Res};
use crate::host::Host;
use crate::names;
use crate::sys;
use crate::validate;

pub const LIMA_YAML: &str = "lima.yaml";
pub const HA_PID: &str = "ha.pid";
pub const PROTECTED: &str = "protected";
pub const LIMA_VERSION: &str = "lima-version";
pub const SSH_CONFIG: &str = "ssh.config";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Running,
    Stopped,
    Broken,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "Running",
            Status::Stopped => "Stopped",
            Status::Broken => "Broken",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Instance {
    pub name: String,
    pub dir: PathBuf,
    pub status: Status,
    pub config: Option<Config>,
    pub errors: Vec<String>,
    pub protected: bool,
    pub lima_version: String,
    pub ha_pid: i32,
    pub ssh_port: i64,
}

impl Instance {
    pub fn yaml_path(&self) -> PathBuf {
        self.dir.join(LIMA_YAML)
    }

    /// The loaded configuration; Broken instances have none.
    pub fn config(&self) -> Res<&Config> {
        self.config.as_ref().ok_or_else(|| {
            Fail::fatal(format!(
                "instance {} has configuration errors: {}",
                crate::gofmt::quote(&self.name),
                self.errors.join("\n")
            ))
        })
    }
}

/// Everything `inspect` needs to know about the environment.
pub struct Store<'a> {
    pub lima_home: &'a Path,
    pub host: &'a Host,
    pub version: &'a str,
}

pub enum Inspect {
    Found(Box<Instance>),
    /// lima.yaml does not exist (Go's `os.ErrNotExist`); carries Go's error text.
    Missing(String),
}

/// Lima's `ReadPIDFile`: a stale pid file is removed and reads as 0.
pub fn read_pid_file(path: &Path) -> Result<i32, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(sys::path_error("open", path, &e)),
    };
    let pid: i32 = text.trim().parse().map_err(|_| {
        format!(
            "strconv.Atoi: parsing {}: invalid syntax",
            crate::gofmt::quote(text.trim())
        )
    })?;
    if !sys::pid_alive(pid) {
        let _ = std::fs::remove_file(path);
        return Ok(0);
    }
    Ok(pid)
}

fn ssh_port_from_config(dir: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(dir.join(SSH_CONFIG)).ok()?;
    text.lines().find_map(|l| {
        l.trim()
            .strip_prefix("Port ")
            .and_then(|p| p.trim().parse().ok())
    })
}

impl Store<'_> {
    pub fn inspect(&self, name: &str) -> Res<Inspect> {
        let dir = names::instance_dir(self.lima_home, name)?;
        let yaml = dir.join(LIMA_YAML);
        let bytes = match std::fs::read(&yaml) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Ok(Inspect::Missing(sys::path_error("open", &yaml, &e)))
            }
            Err(e) => return Err(Fail::path("open", &yaml, &e)),
        };
        let mut inst = Instance {
            name: name.to_string(),
            dir: dir.clone(),
            status: Status::Stopped,
            config: None,
            errors: Vec::new(),
            protected: std::fs::symlink_metadata(dir.join(PROTECTED)).is_ok(),
            lima_version: std::fs::read_to_string(dir.join(LIMA_VERSION))
                .map(|v| v.trim().to_string())
                .unwrap_or_default(),
            ha_pid: 0,
            ssh_port: 0,
        };
        match validate::load_validated(
            &bytes,
            &yaml,
            self.lima_home,
            self.host,
            self.version,
            false,
        ) {
            Ok(c) => {
                inst.ssh_port = c.ssh_local_port;
                inst.config = Some(c);
            }
            Err(e) => {
                inst.errors.push(e);
                inst.status = Status::Broken;
                return Ok(Inspect::Found(Box::new(inst)));
            }
        }
        match read_pid_file(&dir.join(HA_PID)) {
            Ok(pid) => inst.ha_pid = pid,
            Err(e) => {
                inst.errors.push(e);
                inst.status = Status::Broken;
            }
        }
        if inst.ha_pid > 0 {
            inst.status = Status::Running;
            inst.ssh_port = ssh_port_from_config(&dir).unwrap_or(inst.ssh_port);
        }
        Ok(Inspect::Found(Box::new(inst)))
    }

    /// Inspects an instance that must exist, with the caller's "not found" text.
    pub fn require(&self, name: &str, not_found: impl FnOnce(String) -> String) -> Res<Instance> {
        match self.inspect(name)? {
            Inspect::Found(inst) => Ok(*inst),
            Inspect::Missing(e) => Err(Fail::fatal(not_found(e))),
        }
    }

    /// `store.Instances`: directories not starting with `.` or `_`, sorted.
    pub fn instance_names(&self) -> Res<Vec<String>> {
        let entries = match std::fs::read_dir(self.lima_home) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Fail::path("open", self.lima_home, &e)),
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.') && !n.starts_with('_'))
            .collect();
        names.sort();
        Ok(names)
    }
}
