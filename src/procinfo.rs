//! Who owns a VM: a process identity that survives pid reuse and reboots.
//!
//! A pid alone is not enough: after the owner dies its pid may be reused, and after a reboot
//! every pid is new. The identity is the pid, the process's start time and the boot it
//! started in; a process is the owner only if all three still match.
//! Linux: `/proc/<pid>/stat` field 22 (start time in clock ticks since boot) and
//! `/proc/sys/kernel/random/boot_id`. macOS: `proc_pidinfo(PROC_PIDTBSDINFO)` and
//! `sysctl kern.boottime`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    pub pid: u32,
    /// When the process started, in the platform's unit (only compared for equality).
    pub start: u64,
    /// Identifies the boot the process started in.
    pub boot: String,
}

/// What can be said about a recorded owner now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// Exited, killed, or the machine rebooted since.
    Gone,
    /// The platform would not tell; treated as alive (never reap what may be in use).
    Unknown,
}

/// One process as the system sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcState {
    pub start: u64,
    /// Exited but not yet waited for: as good as gone.
    pub zombie: bool,
}

impl ProcessIdentity {
    /// This process.
    pub fn current() -> Option<ProcessIdentity> {
        let pid = std::process::id();
        let state = sys::state(pid).ok().flatten()?;
        Some(ProcessIdentity {
            pid,
            start: state.start,
            boot: sys::boot_id()?,
        })
    }

    pub fn liveness(&self) -> Liveness {
        match sys::boot_id() {
            Some(boot) if boot != self.boot => return Liveness::Gone,
            Some(_) => {}
            None => return Liveness::Unknown,
        }
        judge(self, sys::state(self.pid))
    }

    /// Alive or unknown: not to be reaped.
    pub fn may_be_alive(&self) -> bool {
        self.liveness() != Liveness::Gone
    }
}

/// The decision, given what the system said about the pid (same boot).
fn judge(owner: &ProcessIdentity, now: std::io::Result<Option<ProcState>>) -> Liveness {
    match now {
        Ok(None) => Liveness::Gone,
        Ok(Some(s)) if s.zombie || s.start != owner.start => Liveness::Gone,
        Ok(Some(_)) => Liveness::Alive,
        Err(_) => Liveness::Unknown,
    }
}

#[cfg(target_os = "linux")]
mod sys {
    use super::ProcState;
    use std::io;

    /// `Ok(None)` when there is no such process.
    pub fn state(pid: u32) -> io::Result<Option<ProcState>> {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(text) => parse_stat(&text)
                .map(Some)
                .ok_or_else(|| io::Error::other("unreadable /proc stat")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Fields after the parenthesised command name (which may contain spaces and `)`):
    /// state is field 3, starttime field 22.
    pub fn parse_stat(text: &str) -> Option<ProcState> {
        let (_, rest) = text.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let state = fields.first()?;
        let start = fields.get(22 - 3)?.parse().ok()?;
        Some(ProcState {
            start,
            zombie: matches!(*state, "Z" | "X" | "x"),
        })
    }

    pub fn boot_id() -> Option<String> {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    }
}

#[cfg(target_os = "macos")]
mod sys {
    use super::ProcState;
    use std::io;

    pub fn state(pid: u32) -> io::Result<Option<ProcState>> {
        let Ok(pid) = libc::c_int::try_from(pid) else {
            return Ok(None);
        };
        // SAFETY: proc_bsdinfo is plain data; proc_pidinfo writes at most `size` bytes.
        let mut info: libc::proc_bsdinfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
        // SAFETY: a valid out-pointer of `size` bytes.
        let n = unsafe {
            libc::proc_pidinfo(
                pid,
                libc::PROC_PIDTBSDINFO,
                0,
                (&mut info as *mut libc::proc_bsdinfo).cast(),
                size,
            )
        };
        if n <= 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::ESRCH) => Ok(None),
                _ => Err(err),
            };
        }
        if n < size {
            return Err(io::Error::other("short proc_pidinfo"));
        }
        Ok(Some(ProcState {
            start: info
                .pbi_start_tvsec
                .saturating_mul(1_000_000)
                .saturating_add(info.pbi_start_tvusec),
            zombie: info.pbi_status == libc::SZOMB,
        }))
    }

    pub fn boot_id() -> Option<String> {
        let mut mib = [libc::CTL_KERN, libc::KERN_BOOTTIME];
        // SAFETY: timeval is plain data; sysctl writes at most `len` bytes into it.
        let mut tv: libc::timeval = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::timeval>();
        // SAFETY: valid pointers and lengths for a read-only sysctl.
        let rc = unsafe {
            libc::sysctl(
                mib.as_mut_ptr(),
                2,
                (&mut tv as *mut libc::timeval).cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        (rc == 0).then(|| format!("{}.{:06}", tv.tv_sec, tv.tv_usec))
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod sys {
    use super::ProcState;
    use std::io;

    pub fn state(_pid: u32) -> io::Result<Option<ProcState>> {
        Err(io::Error::other(
            "process start times are not supported here",
        ))
    }

    pub fn boot_id() -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_dead_child_is_gone() {
        let me = ProcessIdentity::current().expect("identity of this process");
        assert_eq!(me.liveness(), Liveness::Alive);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let gone = ProcessIdentity {
            pid,
            start: me.start,
            boot: me.boot.clone(),
        };
        assert_eq!(gone.liveness(), Liveness::Gone);
    }

    #[test]
    fn a_reused_pid_or_a_reboot_is_not_the_owner() {
        let me = ProcessIdentity::current().unwrap();
        let reused = ProcessIdentity {
            start: me.start + 1,
            ..me.clone()
        };
        assert_eq!(reused.liveness(), Liveness::Gone);
        let rebooted = ProcessIdentity {
            boot: format!("{}-before", me.boot),
            ..me.clone()
        };
        assert_eq!(rebooted.liveness(), Liveness::Gone);
    }

    #[test]
    fn a_zombie_is_gone_and_an_unreadable_state_is_unknown() {
        let owner = ProcessIdentity {
            pid: 1,
            start: 5,
            boot: "b".into(),
        };
        let zombie = ProcState {
            start: 5,
            zombie: true,
        };
        assert_eq!(judge(&owner, Ok(Some(zombie))), Liveness::Gone);
        assert_eq!(
            judge(&owner, Err(std::io::Error::other("EPERM"))),
            Liveness::Unknown
        );
        assert_eq!(judge(&owner, Ok(None)), Liveness::Gone);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let line = "42 (a) b (c) R 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615";
        let s = sys::parse_stat(line).unwrap();
        assert_eq!(s.start, 987654);
        assert!(!s.zombie);
        let z = line.replace(") R ", ") Z ");
        assert!(sys::parse_stat(&z).unwrap().zombie);
        assert!(sys::parse_stat("garbage").is_none());
    }
}
