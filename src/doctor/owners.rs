//! Is a session clone still used by a claude-vm session?
//!
//! This is the seam for the session journal: today the answer comes from the process table
//! (a live session always has a `limactl` process working on its instance: `clone`, `shell`
//! or `delete`); a journal of owner pids answers it exactly, and plugs in as another
//! `Owners`.

use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A process works on it.
    InUse(u32),
    /// Nothing uses it: an orphan.
    Unused,
    /// Cannot tell, and why.
    Unknown(String),
}

pub trait Owners {
    fn owner(&self, instance: &str) -> Owner;
}

/// The processes of this machine, looked at once.
pub struct ProcessScan {
    procs: Result<Vec<(u32, Vec<String>)>, String>,
}

impl ProcessScan {
    pub fn take() -> ProcessScan {
        let proc_dir = Path::new("/proc");
        let procs = if proc_dir.join("self/cmdline").exists() {
            Ok(from_proc(proc_dir))
        } else {
            from_ps()
        };
        ProcessScan { procs }
    }

    #[cfg(test)]
    pub fn of(procs: Vec<(u32, Vec<String>)>) -> ProcessScan {
        ProcessScan { procs: Ok(procs) }
    }
}

impl Owners for ProcessScan {
    fn owner(&self, instance: &str) -> Owner {
        let procs = match &self.procs {
            Ok(p) => p,
            Err(why) => return Owner::Unknown(why.clone()),
        };
        let users: Vec<&(u32, Vec<String>)> = procs
            .iter()
            .filter(|(_, argv)| works_on(argv, instance))
            .collect();
        // The session's own `limactl shell` names it best.
        users
            .iter()
            .find(|(_, argv)| argv.get(1).is_some_and(|v| v == "shell"))
            .or(users.first())
            .map_or(Owner::Unused, |(pid, _)| Owner::InUse(*pid))
    }
}

/// `limactl VERB ... INSTANCE ...`, except Lima's host agent, which lives as long as the VM
/// runs whoever uses it.
fn works_on(argv: &[String], instance: &str) -> bool {
    let is_limactl = argv
        .first()
        .is_some_and(|a| Path::new(a).file_name().is_some_and(|n| n == "limactl"));
    is_limactl
        && argv.get(1).is_some_and(|verb| verb != "hostagent")
        && argv[1..].iter().any(|a| a == instance)
}

/// Linux: every process's exact argv.
fn from_proc(dir: &Path) -> Vec<(u32, Vec<String>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let raw = std::fs::read(e.path().join("cmdline")).ok()?;
            let argv = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Some((pid, argv))
        })
        .collect()
}

/// Elsewhere (macOS): `ps`, whose argv is joined by spaces; instance names have none.
fn from_ps() -> Result<Vec<(u32, Vec<String>)>, String> {
    let out = std::process::Command::new("ps")
        .args(["-axww", "-o", "pid=,args="])
        .output()
        .map_err(|e| format!("cannot run ps: {e}"))?;
    if !out.status.success() {
        return Err("ps failed".into());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let pid = words.next()?.parse().ok()?;
            Some((pid, words.map(str::to_owned).collect()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn a_limactl_call_on_the_instance_is_a_user_the_host_agent_is_not() {
        let name = "claude-vm-app-12345678.run-abc123";
        let scan = ProcessScan::of(vec![
            (
                10,
                argv(&format!(
                    "/opt/lima/bin/limactl hostagent --pidfile x {name}"
                )),
            ),
            (11, argv(&format!("vim {name}"))),
            (
                12,
                argv("limactl shell --tty=false claude-vm-app-12345678.run-zzzzzz bash"),
            ),
        ]);
        assert_eq!(scan.owner(name), Owner::Unused);
        let scan = ProcessScan::of(vec![
            (
                41,
                argv(&format!("limactl clone --tty=false --start t {name}")),
            ),
            (
                42,
                argv(&format!(
                    "limactl shell --tty=false --workdir /p {name} bash /mnt/x"
                )),
            ),
        ]);
        assert_eq!(scan.owner(name), Owner::InUse(42), "the shell is preferred");
        let scan = ProcessScan {
            procs: Err("no ps".into()),
        };
        assert_eq!(scan.owner(name), Owner::Unknown("no ps".into()));
    }

    #[test]
    fn this_process_is_seen() {
        let scan = ProcessScan::take();
        let me = std::process::id();
        let procs = scan.procs.as_ref().unwrap();
        assert!(procs
            .iter()
            .any(|(pid, argv)| *pid == me && !argv.is_empty()));
    }
}
