//! Typed `limactl` invocations. Building a call is pure; `Limactl` runs them.
//!
//! Every call passes `--tty=false` (never prompt, never open an editor) right after the
//! subcommand; `limactl shell` stops parsing flags at the instance name, so flags go first.

use std::fmt;

use serde::Serialize;

/// Which limactl subcommand a call is, for errors, hints and counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Create,
    Start,
    Stop,
    Clone,
    Shell,
    Delete,
    Rename,
    List,
    Version,
    Edit,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Clone => "clone",
            Verb::Shell => "shell",
            Verb::Delete => "delete",
            Verb::Rename => "rename",
            Verb::List => "list",
            Verb::Version => "--version",
            Verb::Edit => "edit",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub verb: Verb,
    /// Arguments after `limactl`.
    pub args: Vec<String>,
}

impl Call {
    fn new(verb: Verb) -> Call {
        let mut args = vec![verb.as_str().to_owned()];
        if verb != Verb::Version {
            args.push("--tty=false".to_owned());
        }
        Call { verb, args }
    }

    fn arg(mut self, a: impl Into<String>) -> Call {
        self.args.push(a.into());
        self
    }

    fn flag(self, name: &str, value: impl Into<String>) -> Call {
        self.arg(name).arg(value)
    }

    fn resources(mut self, r: &Resources) -> Call {
        if let Some(c) = r.cpus {
            self = self.flag("--cpus", c.to_string());
        }
        if let Some(m) = r.memory_gib {
            self = self.flag("--memory", m.to_string());
        }
        if let Some(d) = r.disk_gib {
            self = self.flag("--disk", d.to_string());
        }
        self
    }

    fn sets(mut self, sets: &[SetExpr]) -> Call {
        for s in sets {
            self = self.flag("--set", s.0.clone());
        }
        self
    }
}

impl fmt::Display for Call {
    /// The command as a user could paste it into a shell.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("limactl")?;
        for a in &self.args {
            write!(f, " {}", shell_escape::unix::escape(a.as_str().into()))?;
        }
        Ok(())
    }
}

/// A directory shared with the guest, as Lima's `mounts:` entries spell it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LimaMount {
    pub location: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_point: Option<String>,
    pub writable: bool,
}

/// A `--set` yq expression whose value side is JSON from serde_json, never pasted text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetExpr(String);

impl SetExpr {
    /// `del(.path)`: the key goes, so Lima fills its default.
    pub fn delete(path: &str) -> SetExpr {
        SetExpr(format!("del({path})"))
    }

    /// `.path = <value as JSON>`.
    pub fn assign(path: &str, value: &impl Serialize) -> SetExpr {
        // Serializing plain data (strings, numbers, vectors of them) cannot fail.
        let json = serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned());
        SetExpr(format!("{path} = {json}"))
    }

    pub fn mounts(mounts: &[LimaMount]) -> SetExpr {
        SetExpr::assign(".mounts", &mounts)
    }

    #[cfg(test)]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// CPU, memory and disk to request; `None` leaves the instance's value alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpus: Option<u32>,
    pub memory_gib: Option<u32>,
    pub disk_gib: Option<u32>,
}

/// The VM type for this host, and the mount type to pin, if any: vz with virtiofs on macOS
/// (fast, and what vz supports); qemu elsewhere, leaving the mount type to Lima, which picks
/// 9p or reverse-sshfs from what the image supports (debian-13 declares 9p unsupported, so
/// forcing 9p would make `create` fail).
pub fn host_vm_type() -> (&'static str, Option<&'static str>) {
    if cfg!(target_os = "macos") {
        ("vz", Some("virtiofs"))
    } else {
        ("qemu", None)
    }
}

pub struct CreateSpec<'a> {
    pub name: &'a str,
    pub image: &'a str,
    pub resources: Resources,
    pub mounts: &'a [LimaMount],
    pub extra: &'a [SetExpr],
}

pub fn create(spec: &CreateSpec) -> Call {
    let (vm_type, mount_type) = host_vm_type();
    let mut c = Call::new(Verb::Create)
        .flag("--name", spec.name)
        .resources(&spec.resources)
        .flag("--vm-type", vm_type);
    if let Some(mount_type) = mount_type {
        c = c.flag("--mount-type", mount_type);
    }
    c
        // containerd is Lima's default extra; nothing here uses it and it slows every boot.
        .flag("--containerd", "none")
        .sets(&[SetExpr::mounts(spec.mounts)])
        .sets(spec.extra)
        .arg(spec.image)
}

pub fn start(name: &str) -> Call {
    Call::new(Verb::Start).arg(name)
}

pub fn stop(name: &str) -> Call {
    Call::new(Verb::Stop).arg(name)
}

pub struct CloneSpec<'a> {
    pub source: &'a str,
    pub name: &'a str,
    pub start: bool,
    pub resources: Resources,
    pub mounts: &'a [LimaMount],
    pub extra: &'a [SetExpr],
}

pub fn clone(spec: &CloneSpec) -> Call {
    let mut c = Call::new(Verb::Clone);
    if spec.start {
        c = c.arg("--start");
    }
    c.resources(&spec.resources)
        .sets(&[SetExpr::mounts(spec.mounts)])
        .sets(spec.extra)
        .arg(spec.source)
        .arg(spec.name)
}

pub struct ShellSpec<'a> {
    pub name: &'a str,
    pub workdir: Option<&'a str>,
    pub command: &'a [String],
}

pub fn shell(spec: &ShellSpec) -> Call {
    let mut c = Call::new(Verb::Shell);
    if let Some(w) = spec.workdir {
        c = c.flag("--workdir", w);
    }
    c = c.arg(spec.name);
    for a in spec.command {
        c = c.arg(a.clone());
    }
    c
}

/// `delete --force` stops a running instance first: one call instead of stop + delete.
pub fn delete(names: &[String]) -> Call {
    names
        .iter()
        .fold(Call::new(Verb::Delete).arg("--force"), |c, n| {
            c.arg(n.clone())
        })
}

pub fn rename(old: &str, new: &str) -> Call {
    Call::new(Verb::Rename).arg(old).arg(new)
}

/// `limactl --version`: prints `limactl version X.Y.Z`.
pub fn version() -> Call {
    Call::new(Verb::Version)
}

/// `limactl edit --set EXPR NAME`: rewrites a stopped instance's lima.yaml.
pub fn edit(name: &str, sets: &[SetExpr]) -> Call {
    Call::new(Verb::Edit).sets(sets).arg(name)
}

pub fn list() -> Call {
    Call::new(Verb::List).flag("--format", "json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_but_version_is_non_interactive() {
        for c in [
            start("a"),
            stop("a"),
            delete(&["a".into()]),
            rename("a", "b"),
            list(),
        ] {
            assert_eq!(c.args[1], "--tty=false", "{c}");
        }
    }

    #[test]
    fn mounts_are_json_even_for_hostile_paths() {
        let m = LimaMount {
            location: "/p/a \"b\" $c `d` \\e\nf é".into(),
            mount_point: Some("{{.Home}}/x".into()),
            writable: true,
        };
        let s = SetExpr::mounts(&[m]);
        let json = s.as_str().strip_prefix(".mounts = ").unwrap();
        let back: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(back[0]["location"], "/p/a \"b\" $c `d` \\e\nf é");
        assert_eq!(back[0]["mountPoint"], "{{.Home}}/x");
        assert_eq!(back[0]["writable"], true);
        assert_eq!(SetExpr::mounts(&[]).as_str(), ".mounts = []");
    }

    #[test]
    fn shell_flags_come_before_the_instance() {
        let cmd = vec!["bash".to_string(), "-c".into(), "x".into()];
        let c = shell(&ShellSpec {
            name: "i",
            workdir: Some("/w d"),
            command: &cmd,
        });
        assert_eq!(
            c.args,
            [
                "shell",
                "--tty=false",
                "--workdir",
                "/w d",
                "i",
                "bash",
                "-c",
                "x"
            ]
        );
    }

    #[test]
    fn clone_starts_in_the_same_call() {
        let c = clone(&CloneSpec {
            source: "t",
            name: "t.run-abcdef",
            start: true,
            resources: Resources {
                cpus: Some(2),
                memory_gib: None,
                disk_gib: None,
            },
            mounts: &[],
            extra: &[],
        });
        assert_eq!(
            c.args,
            [
                "clone",
                "--tty=false",
                "--start",
                "--cpus",
                "2",
                "--set",
                ".mounts = []",
                "t",
                "t.run-abcdef"
            ]
        );
        assert_eq!(
            c.to_string(),
            "limactl clone --tty=false --start --cpus 2 --set '.mounts = []' t t.run-abcdef"
        );
    }
}
