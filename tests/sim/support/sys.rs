//! Thin, checked wrappers over the libc calls the simulator needs on every
//! Unix. Linux-only namespace calls live in `ns.rs`.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub fn isatty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

pub fn getuid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

pub fn geteuid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

pub fn getegid() -> u32 {
    // SAFETY: getegid cannot fail.
    unsafe { libc::getegid() }
}

pub fn getpid() -> i32 {
    std::process::id() as i32
}

pub fn getppid() -> i32 {
    // SAFETY: getppid cannot fail.
    unsafe { libc::getppid() }
}

pub fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in string"))
}

pub fn cpath(path: &Path) -> io::Result<CString> {
    cstring(path.as_os_str().as_bytes())
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The login name of the current user (`user.Current()` in Go).
pub fn current_user_name() -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: passwd is plain data; getpwuid_r fills it from buf.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the duration of the call.
    let rc =
        unsafe { libc::getpwuid_r(getuid(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return std::env::var("USER").ok();
    }
    // SAFETY: pw_name points into buf and is NUL-terminated.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// Exclusive advisory lock held until the guard is dropped (declare the
/// guard after the file, so it is released first).
pub struct FileLock {
    fd: RawFd,
}

impl FileLock {
    pub fn exclusive(file: &File) -> io::Result<Self> {
        let fd = file.as_raw_fd();
        loop {
            // SAFETY: flock on an open descriptor.
            let rc = unsafe { libc::flock(fd, libc::LOCK_EX) };
            if rc == 0 {
                return Ok(FileLock { fd });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: unlocking our own descriptor; closing would also unlock.
        unsafe { libc::flock(self.fd, libc::LOCK_UN) };
    }
}

/// Sends a signal; `Ok(false)` when the process does not exist.
pub fn kill(pid: i32, sig: libc::c_int) -> io::Result<bool> {
    // SAFETY: kill has no memory effects.
    if unsafe { libc::kill(pid, sig) } == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ESRCH) => Ok(false),
        _ => Err(err),
    }
}

/// Like Lima's `ReadPIDFile` liveness test, but a zombie counts as dead:
/// an exited host agent may linger unreaped under a lazy init.
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    let alive = match kill(pid, 0) {
        Ok(alive) => alive,
        Err(e) => e.raw_os_error() == Some(libc::EPERM),
    };
    alive && !is_zombie(pid)
}

#[cfg(target_os = "linux")]
fn is_zombie(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may hold spaces.
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
        .unwrap_or(false)
}

#[cfg(not(target_os = "linux"))]
fn is_zombie(_pid: i32) -> bool {
    false
}

pub enum Fork {
    Child,
    Parent(i32),
}

/// fork(2). Safe here because the simulator is single-threaded whenever it
/// forks (threads start only afterwards, in the parent).
pub fn fork() -> io::Result<Fork> {
    // SAFETY: see above; the child only runs code that this process owns.
    let pid = check(unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        Fork::Child
    } else {
        Fork::Parent(pid)
    })
}

/// Leaves the process without running destructors or atexit handlers (used
/// by forked children, which must not flush the parent's state twice).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns.
    unsafe { libc::_exit(code) }
}

pub enum WaitStatus {
    Exited(i32),
    Signaled,
}

pub fn waitpid(pid: i32) -> io::Result<WaitStatus> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: status is a valid out-pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc >= 0 {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    if libc::WIFSIGNALED(status) {
        Ok(WaitStatus::Signaled)
    } else {
        Ok(WaitStatus::Exited(libc::WEXITSTATUS(status)))
    }
}

/// A pipe whose ends close on exec (so a successful exec reads as EOF).
pub fn pipe_cloexec() -> io::Result<(File, File)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a valid two-element array.
    check(unsafe { libc::pipe(fds.as_mut_ptr()) })?;
    for fd in fds {
        // SAFETY: setting a flag on a descriptor we own.
        check(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })?;
    }
    // SAFETY: both descriptors were just created and are owned here.
    unsafe { Ok((File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1]))) }
}

pub fn dup2(from: RawFd, to: RawFd) -> io::Result<()> {
    // SAFETY: plain descriptor duplication.
    check(unsafe { libc::dup2(from, to) }).map(|_| ())
}

pub fn setsid() -> io::Result<()> {
    // SAFETY: no memory effects.
    check(unsafe { libc::setsid() }).map(|_| ())
}

/// Closes every descriptor above stderr except `keep` (forked daemons must
/// not hold their caller's pipes open).
pub fn close_fds_except(keep: &[RawFd]) {
    let mut open: Vec<RawFd> = Vec::new();
    if let Ok(entries) =
        std::fs::read_dir("/proc/self/fd").or_else(|_| std::fs::read_dir("/dev/fd"))
    {
        for entry in entries.flatten() {
            if let Ok(fd) = entry.file_name().to_string_lossy().parse::<RawFd>() {
                open.push(fd);
            }
        }
    } else {
        open.extend(3..1024);
    }
    for fd in open {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: closing descriptors nobody else in this process uses.
            unsafe { libc::close(fd) };
        }
    }
}

pub type Handler = extern "C" fn(libc::c_int);

pub fn set_handler(sig: libc::c_int, handler: Handler) {
    // SAFETY: installing a plain handler with an empty mask.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as usize;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(sig, &action, std::ptr::null_mut());
    }
}

pub fn set_default(sig: libc::c_int) {
    // SAFETY: restoring the default disposition.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

/// Gives an exec'd program default signal dispositions and an empty mask
/// (Rust ignores SIGPIPE, and ignored signals survive exec).
pub fn reset_signals_for_exec() {
    for sig in [
        libc::SIGPIPE,
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGCHLD,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
    ] {
        set_default(sig);
    }
    // SAFETY: clearing the blocked-signal mask of this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// execve(2); returns only on failure.
pub fn execve(path: &[u8], argv: &[Vec<u8>], env: &[Vec<u8>]) -> io::Error {
    let build = |items: &[Vec<u8>]| -> io::Result<Vec<CString>> {
        items.iter().map(|i| cstring(i)).collect()
    };
    let (path, argv, env) = match (cstring(path), build(argv), build(env)) {
        (Ok(p), Ok(a), Ok(e)) => (p, a, e),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    // SAFETY: every pointer refers to a live, NUL-terminated CString.
    unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// Opens a directory for later `*at` lookups (survives pivot_root).
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = cpath(path)?;
    // SAFETY: c is NUL-terminated; the new descriptor is owned by the result.
    let fd = check(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: fd was just opened.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Link count of an open directory: 0 once it has been removed.
pub fn nlink(fd: &OwnedFd) -> io::Result<u64> {
    // SAFETY: st is a valid out-pointer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st.st_nlink as u64)
}

/// Reads a small file relative to a directory descriptor.
pub fn read_at(dir: &OwnedFd, name: &str) -> io::Result<Vec<u8>> {
    let c = cstring(name.as_bytes())?;
    // SAFETY: c is NUL-terminated; the descriptor is wrapped immediately.
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: fd was just opened and is owned by the File.
    let mut file = unsafe { File::from_raw_fd(fd) };
    let mut buf = Vec::new();
    io::Read::read_to_end(&mut file, &mut buf)?;
    Ok(buf)
}

/// Creates (O_EXCL) or replaces a small file relative to a directory descriptor.
pub fn write_at(dir: &OwnedFd, name: &str, data: &[u8], exclusive: bool) -> io::Result<()> {
    let c = cstring(name.as_bytes())?;
    let mut flags = libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC;
    flags |= if exclusive {
        libc::O_EXCL
    } else {
        libc::O_TRUNC
    };
    // SAFETY: c is NUL-terminated; the descriptor is wrapped immediately.
    let fd =
        check(unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags, 0o644 as libc::c_uint) })?;
    // SAFETY: fd was just opened and is owned by the File.
    let mut file = unsafe { File::from_raw_fd(fd) };
    io::Write::write_all(&mut file, data)
}

pub fn unlink_at(dir: &OwnedFd, name: &str) -> io::Result<()> {
    let c = cstring(name.as_bytes())?;
    // SAFETY: c is NUL-terminated.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) }).map(|_| ())
}

/// The local time in Go's RFC 3339 form (`2006-01-02T15:04:05Z07:00`).
pub fn local_rfc3339() -> String {
    // SAFETY: time/localtime_r only write into the provided struct.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return "1970-01-01T00:00:00Z".into();
        }
        let off = tm.tm_gmtoff;
        let zone = if off == 0 {
            "Z".to_string()
        } else {
            let sign = if off < 0 { '-' } else { '+' };
            format!("{sign}{:02}:{:02}", off.abs() / 3600, off.abs() % 3600 / 60)
        };
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec,
            zone
        )
    }
}

/// `strerror` text the way Go's syscall errors read ("no such file or directory").
pub fn go_errno_text(err: &io::Error) -> String {
    let Some(code) = err.raw_os_error() else {
        return err.to_string();
    };
    // SAFETY: strerror returns a static or thread-local NUL-terminated string.
    let text = unsafe { std::ffi::CStr::from_ptr(libc::strerror(code)) };
    let text = text.to_string_lossy();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().collect::<String>() + chars.as_str(),
        None => text.into_owned(),
    }
}

/// Go's `*fs.PathError` text: "open /x/lima.yaml: no such file or directory".
pub fn path_error(op: &str, path: &Path, err: &io::Error) -> String {
    format!("{op} {}: {}", path.display(), go_errno_text(err))
}
