//! Starting claude-vm itself as a detached background process (the update check, the warm
//! pool's keeper): no terminal, its own process group (a Ctrl-C meant for us does not reach
//! it), none of our descriptors, never waited for.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs this binary again with `var=1` set, in `dir`, its output appended to `log`.
pub fn spawn_self(var: &str, dir: &Path, log: File) -> std::io::Result<()> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    let (out, err) = (Stdio::from(log.try_clone()?), Stdio::from(log));
    cmd.env(var, "1")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    // Descriptors we inherited without close-on-exec (a terminal, a caller's pipe) must not
    // stay open in the child: whoever waits for them to close would wait for it.
    let max_fd = open_file_limit();
    // SAFETY: between fork and exec only fcntl, which is async-signal-safe, runs.
    unsafe {
        cmd.pre_exec(move || {
            for fd in 3..max_fd {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
            Ok(())
        });
    }
    cmd.spawn().map(drop)
}

fn open_file_limit() -> libc::c_int {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills a struct we own.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    if ok {
        libc::c_int::try_from(lim.rlim_cur.min(65_536)).unwrap_or(1024)
    } else {
        1024
    }
}
