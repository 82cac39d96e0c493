//! Namespace mode (Linux): the host agent builds the guest's filesystem in a
//! private mount namespace at boot, and `shell` joins that namespace.
//!
//! Only what Lima mounts (and what a VM has of its own) is visible inside:
//! overlays of the host's /etc, /usr and /var with persistent upper layers,
//! persistent /home, /root, /opt, /srv, a boot-scoped /tmp, fresh /proc and
//! /run, the host's /dev, and each lima.yaml mount at its mountPoint (idmapped,
//! when the guest has its own user: see user.rs).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use libc::c_ulong;

use crate::agent::BootPlan;
use crate::config::Mount;
use crate::disk;
use crate::net;
use crate::slirp;
use crate::sys;

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const ST_RELATIME: c_ulong = 4096;
const CAP_SYS_ADMIN: libc::c_ulong = 21;

pub enum BootError {
    /// Namespaces are not available here: use the fallback mode.
    Unavailable(String),
    Failed(String),
}

fn errno(what: String) -> String {
    format!(
        "{what}: {}",
        sys::go_errno_text(&io::Error::last_os_error())
    )
}

fn c(path: &Path) -> Result<CString, String> {
    sys::cpath(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn mount(
    src: &Path,
    target: &Path,
    fstype: Option<&str>,
    flags: c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    let src_c = c(src)?;
    let target_c = c(target)?;
    let fstype_c = fstype.map(|f| CString::new(f).unwrap_or_default());
    let data_c = data.map(|d| CString::new(d).unwrap_or_default());
    // SAFETY: every pointer is a live NUL-terminated string or null.
    let rc = unsafe {
        libc::mount(
            src_c.as_ptr(),
            target_c.as_ptr(),
            fstype_c.as_ref().map_or(std::ptr::null(), |f| f.as_ptr()),
            flags,
            data_c
                .as_ref()
                .map_or(std::ptr::null(), |d| d.as_ptr().cast()),
        )
    };
    if rc != 0 {
        return Err(errno(format!(
            "mount {} on {}",
            src.display(),
            target.display()
        )));
    }
    Ok(())
}

fn bind(src: &Path, target: &Path, recursive: bool) -> Result<(), String> {
    let flags = libc::MS_BIND | if recursive { libc::MS_REC } else { 0 };
    mount(src, target, None, flags, None)
}

// Remounting must repeat the flags the kernel locked on the source mount.
fn locked_flags(target: &Path) -> Result<c_ulong, String> {
    let target_c = c(target)?;
    // SAFETY: st is a valid out-pointer.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(target_c.as_ptr(), &mut st) } != 0 {
        return Err(errno(format!("statvfs {}", target.display())));
    }
    let map = [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (ST_RELATIME, libc::MS_RELATIME),
    ];
    Ok(map
        .iter()
        .filter(|(st_flag, _)| st.f_flag & st_flag != 0)
        .fold(0, |acc, (_, ms)| acc | ms))
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Makes a bind mount read-only, submounts included where the kernel can
/// (mount_setattr, Linux 5.12), else the top mount.
fn make_readonly(target: &Path) -> Result<(), String> {
    let target_c = c(target)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: attr outlives the call; the size matches the struct.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            target_c.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | locked_flags(target)?;
    mount(Path::new("none"), target, None, flags, None)
}

fn mkdir(path: &Path, mode: u32) -> Result<(), String> {
    match std::fs::create_dir(path) {
        Ok(()) => {
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(sys::path_error("mkdir", path, &e)),
    }
}

/// Resolves `guest` inside `root` as the guest would see it (symlinks are
/// followed within `root`, never out to the host), creating missing
/// directories when `create` is set.
pub fn resolve_in_root(root: &Path, guest: &str, create: bool) -> Result<PathBuf, String> {
    if !guest.starts_with('/') {
        return Err(format!("guest path {guest:?} is not absolute"));
    }
    let mut pending: Vec<String> = Path::new(guest)
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut parts: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            parts.pop();
            continue;
        }
        let here: PathBuf = root.join(parts.iter().collect::<PathBuf>()).join(&part);
        match std::fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return Err(format!("too many levels of symbolic links in {guest:?}"));
                }
                let target = std::fs::read_link(&here)
                    .map_err(|e| sys::path_error("readlink", &here, &e))?;
                if target.is_absolute() {
                    parts.clear();
                }
                for comp in target.components().rev() {
                    match comp {
                        Component::Normal(s) => pending.push(s.to_string_lossy().into_owned()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            Ok(_) => parts.push(part),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                mkdir(&here, 0o755)?;
                parts.push(part);
            }
            Err(e) => return Err(sys::path_error("stat", &here, &e)),
        }
    }
    Ok(root.join(parts.iter().collect::<PathBuf>()))
}

fn write_proc(path: &str, data: &str) -> Result<(), BootError> {
    std::fs::write(path, data)
        .map_err(|e| BootError::Unavailable(sys::path_error("write", Path::new(path), &e)))
}

// New mount and UTS namespaces (plus a user namespace mapping uid 0 to us
// when not root, and a network namespace unless the host's network was asked
// for), with nothing propagating back to the host.
fn unshare(network: net::Mode) -> Result<bool, BootError> {
    let (uid, gid) = (sys::geteuid(), sys::getegid());
    let userns = uid != 0;
    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWUTS;
    if network == net::Mode::User {
        flags |= libc::CLONE_NEWNET;
    }
    if userns {
        flags |= libc::CLONE_NEWUSER;
    }
    // SAFETY: unshare has no memory effects.
    if unsafe { libc::unshare(flags) } != 0 {
        return Err(BootError::Unavailable(errno("unshare".into())));
    }
    if userns {
        write_proc("/proc/self/setgroups", "deny")?;
        write_proc("/proc/self/uid_map", &format!("0 {uid} 1\n"))?;
        write_proc("/proc/self/gid_map", &format!("0 {gid} 1\n"))?;
    }
    // Make every mount private FIRST: nothing below may reach the host.
    mount(
        Path::new("none"),
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )
    .map_err(BootError::Unavailable)?;
    Ok(userns)
}

fn sethostname(name: &str) -> Result<(), String> {
    // SAFETY: the buffer is valid for its length.
    if unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) } != 0 {
        return Err(errno(format!("sethostname {name}")));
    }
    Ok(())
}

// Overlays of the host's /etc, /usr, /var. Relative upper/work paths (from
// the instance dir) keep commas or colons in $LIMA_HOME out of the options.
fn mount_overlays(root: &Path, inst: &Path, userns: bool) -> Result<(), String> {
    let canonical = std::fs::canonicalize(inst).unwrap_or_else(|_| inst.to_path_buf());
    if let Some(layer) = disk::LAYERS
        .iter()
        .find(|l| canonical.starts_with(format!("/{l}")))
    {
        return Err(format!(
            "the instance directory is inside the lower layer /{layer}"
        ));
    }
    std::env::set_current_dir(inst).map_err(|e| sys::path_error("chdir", inst, &e))?;
    let mut done: Vec<PathBuf> = Vec::new();
    for layer in disk::LAYERS {
        let target = root.join(layer);
        mkdir(&target, 0o755)?;
        let mut opts = format!(
            "lowerdir=/{layer},upperdir={}/upper/{layer},workdir={}/{layer}",
            disk::DISK,
            disk::WORK
        );
        if userns {
            opts.push_str(",userxattr");
        }
        if let Err(e) = mount(
            Path::new("overlay"),
            &target,
            Some("overlay"),
            0,
            Some(&opts),
        ) {
            for d in done {
                // SAFETY: detaching a mount we just made.
                unsafe { libc::umount2(c(&d)?.as_ptr(), libc::MNT_DETACH) };
            }
            return Err(e);
        }
        done.push(target);
    }
    Ok(())
}

// Without overlayfs: the host's /etc and /usr read-only, with a persistent
// writable /usr/local, and /var as a plain persistent directory.
fn mount_layers_fallback(root: &Path, inst: &Path) -> Result<(), String> {
    for layer in ["etc", "usr"] {
        let target = root.join(layer);
        mkdir(&target, 0o755)?;
        bind(&Path::new("/").join(layer), &target, true)?;
        make_readonly(&target)?;
    }
    let local = root.join("usr/local");
    if local.is_dir() {
        bind(&disk::upper(inst, "usr").join("local"), &local, true)?;
    }
    let var = root.join("var");
    mkdir(&var, 0o755)?;
    bind(&disk::upper(inst, "var"), &var, true)
}

/// Packages whose systemd user units create /run/user/UID/gnupg at login.
const GNUPG_PACKAGES: &[&str] = &["gnupg", "gnupg2", "gpg-agent"];

// The guest user's runtime directory, as logind makes it for the ssh login
// of the host agent. Where guest commands run as uid 0 standing for that user,
// /run/user/0 is the same directory (the guest user's boot removes the link). With GnuPG installed (by apt-get),
// its socket units have made /run/user/UID/gnupg as well.
fn make_runtime_dir(run: &Path, uid: u32) -> Result<(), String> {
    let user_dir = run.join("user");
    mkdir(&user_dir, 0o755)?;
    let mine = user_dir.join(uid.to_string());
    mkdir(&mine, 0o700)?;
    if uid != 0 {
        let zero = user_dir.join("0");
        symlink(uid.to_string(), &zero).map_err(|e| sys::path_error("symlink", &zero, &e))?;
    }
    let installed = run
        .parent()
        .map(|root| root.join(crate::disk::INSTALLED_LIST.trim_start_matches('/')))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    if installed
        .lines()
        .any(|p| GNUPG_PACKAGES.contains(&p.trim()))
    {
        mkdir(&mine.join("gnupg"), 0o700)?;
    }
    Ok(())
}

fn mount_system(
    root: &Path,
    inst: &Path,
    exe_src: &Path,
    claude_code: Option<&Path>,
    uid: u32,
) -> Result<Vec<String>, String> {
    let mut notes = Vec::new();
    for dir in disk::PLAIN_DIRS {
        let target = root.join(dir);
        mkdir(&target, 0o755)?;
        bind(&inst.join(disk::DISK).join(dir), &target, true)?;
    }
    // /bin, /lib...: symlinks on merged-/usr hosts, read-only binds otherwise.
    for name in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        let host = Path::new("/").join(name);
        let target = root.join(name);
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = std::fs::read_link(&host)
                    .map_err(|e| sys::path_error("readlink", &host, &e))?;
                symlink(&link, &target).map_err(|e| sys::path_error("symlink", &target, &e))?;
            }
            Ok(m) if m.is_dir() => {
                mkdir(&target, 0o755)?;
                bind(&host, &target, true)?;
                make_readonly(&target)?;
            }
            _ => {}
        }
    }
    let dev = root.join("dev");
    mkdir(&dev, 0o755)?;
    bind(Path::new("/dev"), &dev, true)?;
    let proc_dir = root.join("proc");
    mkdir(&proc_dir, 0o555)?;
    let nosuid = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    if mount(Path::new("proc"), &proc_dir, Some("proc"), nosuid, None).is_err() {
        bind(Path::new("/proc"), &proc_dir, true)?;
        notes.push("/proc is a bind of the host's (no fresh proc mount allowed)".to_string());
    }
    let sys_dir = root.join("sys");
    mkdir(&sys_dir, 0o555)?;
    if bind(Path::new("/sys"), &sys_dir, true)
        .and_then(|_| make_readonly(&sys_dir))
        .is_err()
    {
        notes.push("/sys is not available in the guest".to_string());
    }
    let run = root.join("run");
    mkdir(&run, 0o755)?;
    mount(
        Path::new("tmpfs"),
        &run,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755"),
    )?;
    make_runtime_dir(&run, uid)?;
    let tmp = root.join("tmp");
    mkdir(&tmp, 0o1777)?;
    bind(&disk::guest_tmp(inst), &tmp, false)?;
    // The simulator itself, for the guest's fake tools.
    let exe_dir = root.join(".limasim");
    mkdir(&exe_dir, 0o755)?;
    let exe = exe_dir.join("limactl");
    File::create(&exe).map_err(|e| sys::path_error("open", &exe, &e))?;
    bind(exe_src, &exe, false)?;
    make_readonly(&exe)?;
    if let Some(real) = claude_code {
        let dir = root.join(crate::claude_install::REAL_DIR.trim_start_matches('/'));
        mkdir(&dir, 0o755)?;
        bind(real, &dir, false)?;
        make_readonly(&dir)?;
    }
    Ok(notes)
}

/// Lima's boot scripts add `host.lima.internal` to the guest's /etc/hosts: the gateway of the
/// user-mode network, where the host's loopback is reachable (with `LIMA_SIM_NETWORK=host` the
/// guest shares the host's network, so 127.0.0.1). Binds of files in the run directory: the
/// host's own /etc/hosts and /etc/resolv.conf are never written.
fn host_lima_internal(
    root: &Path,
    inst: &Path,
    network: net::Mode,
    hostname: &str,
) -> Result<(), String> {
    let host = match network {
        net::Mode::User => net::HOST_IP.to_string(),
        net::Mode::Host => "127.0.0.1".to_string(),
    };
    let target = resolve_in_root(root, "/etc", false)?.join("hosts");
    let mut text = std::fs::read_to_string(&target).unwrap_or_default();
    if !text.split_whitespace().any(|w| w == HOST_NAME) {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("{host}\t{HOST_NAME}\n"));
    }
    // A Lima guest resolves its own name (systemd's nss-myhostname); without it sudo warns
    // `unable to resolve host`.
    if !text.split_whitespace().any(|w| w == hostname) {
        text.push_str(&format!("127.0.1.1\t{hostname}\n"));
    }
    bind_run_file(root, inst, "hosts", &text)?;
    if network == net::Mode::User {
        // The host's resolver is the host's; the guest asks slirp's forwarder.
        bind_run_file(
            root,
            inst,
            "resolv.conf",
            &format!("nameserver {}\n", net::DNS_IP),
        )?;
    }
    Ok(())
}

// Binds sim.run/NAME over the guest's /etc/NAME. A symlink there (as
// systemd-resolved's resolv.conf) is followed inside the guest's root, never
// out to the host's.
fn bind_run_file(root: &Path, inst: &Path, name: &str, text: &str) -> Result<(), String> {
    let file = disk::run_dir(inst).join(name);
    std::fs::write(&file, text).map_err(|e| sys::path_error("write", &file, &e))?;
    let mut dir = PathBuf::from("/etc");
    let mut target = resolve_in_root(root, "/etc", false)?.join(name);
    let mut hops = 0;
    while let Ok(link) = std::fs::read_link(&target) {
        hops += 1;
        if hops > 40 {
            return Err(format!("too many levels of symbolic links at /etc/{name}"));
        }
        let guest = dir.join(link);
        let (Some(parent), Some(leaf)) = (guest.parent(), guest.file_name()) else {
            return Err(format!("/etc/{name} is a link to {}", guest.display()));
        };
        dir = parent.to_path_buf();
        target = resolve_in_root(root, &parent.to_string_lossy(), true)?.join(leaf);
    }
    if !target.exists() {
        File::create(&target).map_err(|e| sys::path_error("open", &target, &e))?;
    }
    bind(&file, &target, false)
}

/// With the host's network the guest's firewall is the host's: the simulator is bound over
/// every firewall tool in the guest's root (`fakes::firewall` refuses by argv[0]), so a
/// ruleset meant for the guest never reaches the machine running the tests. Links (Debian's
/// alternatives) end at one of these files.
fn shadow_firewall(root: &Path, exe: &Path) -> Result<(), String> {
    for dir in ["usr/sbin", "usr/bin", "sbin", "bin"] {
        // /sbin and /bin are links into /usr on merged-/usr hosts: those are done already.
        if !std::fs::symlink_metadata(root.join(dir)).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        for tool in crate::fakes::firewall::TOOLS {
            let path = root.join(dir).join(tool);
            let is_file = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
            if is_file {
                bind(exe, &path, false)?;
                make_readonly(&path)?;
            }
        }
    }
    Ok(())
}

/// How a Lima guest names the host.
const HOST_NAME: &str = "host.lima.internal";

fn sorted_mounts(mounts: &[Mount]) -> Vec<&Mount> {
    // Shallow first, so a nested mount point lands on top of its parent.
    let mut sorted: Vec<&Mount> = mounts.iter().collect();
    sorted.sort_by_key(|m| Path::new(&m.mount_point).components().count());
    sorted
}

fn mount_lima_mounts(root: &Path, mounts: &[Mount]) -> Result<(), String> {
    for m in sorted_mounts(mounts) {
        let location = Path::new(&m.location);
        std::fs::create_dir_all(location).map_err(|e| sys::path_error("mkdir", location, &e))?;
        let target = resolve_in_root(root, &m.mount_point, true)?;
        bind(location, &target, true)?;
        if !m.writable {
            make_readonly(&target)?;
        }
    }
    Ok(())
}

/// A user namespace whose map sends the host owner's ids to the guest user's: the idmap of
/// the guest's view of host files (as virtiofs, 9p and reverse-sshfs show them on Lima). A
/// child unshares, the maps are written from here, and its namespace is kept open.
fn idmap_userns(host: (u32, u32), guest: (u32, u32)) -> Result<File, String> {
    use std::io::{Read, Write};
    let (mut ready_r, mut ready_w) = sys::pipe_cloexec().map_err(|e| format!("pipe: {e}"))?;
    let (mut done_r, done_w) = sys::pipe_cloexec().map_err(|e| format!("pipe: {e}"))?;
    let child = match sys::fork().map_err(|e| format!("fork: {e}"))? {
        sys::Fork::Child => {
            drop(ready_r);
            drop(done_w);
            // SAFETY: unshare has no memory effects.
            let ok = unsafe { libc::unshare(libc::CLONE_NEWUSER) } == 0;
            let _ = ready_w.write_all(if ok { b"1" } else { b"0" });
            let mut b = [0u8; 1];
            let _ = done_r.read(&mut b);
            sys::exit_now(0)
        }
        sys::Fork::Parent(pid) => pid,
    };
    drop(ready_w);
    drop(done_r);
    let mut b = [0u8; 1];
    let result = match ready_r.read(&mut b) {
        Ok(1) if b[0] == b'1' => (|| {
            let write = |file: &str, text: String| {
                let path = format!("/proc/{child}/{file}");
                std::fs::write(&path, text)
                    .map_err(|e| sys::path_error("write", Path::new(&path), &e))
            };
            write("uid_map", format!("{} {} 1\n", host.0, guest.0))?;
            write("gid_map", format!("{} {} 1\n", host.1, guest.1))?;
            let path = format!("/proc/{child}/ns/user");
            File::open(&path).map_err(|e| sys::path_error("open", Path::new(&path), &e))
        })(),
        _ => Err(errno("unshare(CLONE_NEWUSER)".into())),
    };
    drop(done_w);
    let _ = sys::waitpid(child);
    result
}

/// A recursive bind of `src` at `target` through a detached clone with an idmap
/// (open_tree, mount_setattr with MOUNT_ATTR_IDMAP, move_mount), read-only unless writable.
fn idmapped_bind(src: &Path, target: &Path, userns: &File, writable: bool) -> Result<(), String> {
    let src_c = c(src)?;
    let target_c = c(target)?;
    let empty = CString::default();
    // SAFETY: a path string and flags; the result is a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            src_c.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(errno(format!("open_tree {}", src.display())));
    }
    let fd = fd as libc::c_int;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP | if writable { 0 } else { MOUNT_ATTR_RDONLY },
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: attr outlives the call; fd is ours; empty is a live empty string.
    let set = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            empty.as_ptr(),
            (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    let result = if set != 0 {
        Err(errno(format!(
            "mount_setattr(MOUNT_ATTR_IDMAP) {}",
            src.display()
        )))
    } else {
        // SAFETY: moving the detached tree fd onto a live path.
        let moved = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                fd,
                empty.as_ptr(),
                libc::AT_FDCWD,
                target_c.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            )
        };
        if moved != 0 {
            Err(errno(format!("move_mount on {}", target.display())))
        } else {
            Ok(())
        }
    };
    // SAFETY: closing our descriptor.
    unsafe { libc::close(fd) };
    result
}

/// The lima.yaml mounts with host files shown as the guest user's. Every mount point is made
/// first, through the host side (root cannot create inside an idmapped mount: its uid has no
/// mapping there); on any failure the mounts made so far are taken down again.
fn mount_lima_mounts_idmapped(root: &Path, mounts: &[Mount], userns: &File) -> Result<(), String> {
    let sorted = sorted_mounts(mounts);
    for (i, m) in sorted.iter().enumerate() {
        let location = Path::new(&m.location);
        std::fs::create_dir_all(location).map_err(|e| sys::path_error("mkdir", location, &e))?;
        // The innermost earlier mount that holds this mount point, if any.
        let parent = sorted[..i].iter().rev().find(|p| {
            Path::new(&m.mount_point).starts_with(&p.mount_point) && p.mount_point != m.mount_point
        });
        match parent {
            Some(p) => {
                let rel = Path::new(&m.mount_point)
                    .strip_prefix(&p.mount_point)
                    .unwrap_or(Path::new(""));
                resolve_in_root(Path::new(&p.location), &format!("/{}", rel.display()), true)?;
            }
            None => {
                resolve_in_root(root, &m.mount_point, true)?;
            }
        }
    }
    let mut done: Vec<PathBuf> = Vec::new();
    for m in sorted {
        let step = resolve_in_root(root, &m.mount_point, false).and_then(|target| {
            idmapped_bind(Path::new(&m.location), &target, userns, m.writable).map(|_| target)
        });
        match step {
            Ok(target) => done.push(target),
            Err(e) => {
                for d in done.iter().rev() {
                    // SAFETY: detaching a mount we just made.
                    unsafe { libc::umount2(c(d)?.as_ptr(), libc::MNT_DETACH) };
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The guest as Lima's: its own user (passwd, sudoers, home), Debian's real sudo in place
/// of the fake, and its runtime directory its own.
fn become_lima_guest(root: &Path, plan: &BootPlan, gid: u32) -> Result<(), String> {
    crate::user::provision(root, &plan.user)?;
    let fake = root.join("usr/local/bin/sudo");
    if std::fs::read_link(&fake).is_ok_and(|l| l == Path::new(disk::GUEST_EXE)) {
        std::fs::remove_file(&fake).map_err(|e| sys::path_error("remove", &fake, &e))?;
    }
    let run_user = root.join("run/user");
    let _ = std::fs::remove_file(run_user.join("0"));
    let mine = run_user.join(plan.user.uid.to_string());
    for dir in [mine.clone(), mine.join("gnupg")] {
        if dir.is_dir() {
            std::os::unix::fs::chown(&dir, Some(plan.user.uid), Some(gid))
                .map_err(|e| sys::path_error("chown", &dir, &e))?;
        }
    }
    let file = crate::user::run_file(&plan.inst);
    std::fs::write(
        &file,
        format!("{} {} {gid}\n", plan.user.name, plan.user.uid),
    )
    .map_err(|e| sys::path_error("write", &file, &e))
}

/// A guest that runs as uid 0 keeps the fake sudo (a previous boot as Lima's may have removed it).
fn stay_root_guest(root: &Path, plan: &BootPlan) -> Result<(), String> {
    let _ = std::fs::remove_file(crate::user::run_file(&plan.inst));
    let fake = root.join("usr/local/bin/sudo");
    if std::fs::symlink_metadata(&fake).is_err() {
        symlink(disk::GUEST_EXE, &fake).map_err(|e| sys::path_error("symlink", &fake, &e))?;
    }
    Ok(())
}

/// Mounts lima.yaml's mounts and settles who the guest runs as: as root on the host, the guest
/// user with idmapped mounts; else (a user namespace maps only uid 0, or idmapped mounts
/// fail) uid 0, said in a note. Returns (uid, gid) of the guest user when it has one.
fn mounts_and_user(
    root: &Path,
    plan: &BootPlan,
    userns: bool,
    notes: &mut Vec<String>,
) -> Result<Option<(u32, u32)>, String> {
    if userns {
        mount_lima_mounts(root, &plan.mounts)?;
        stay_root_guest(root, plan)?;
        notes.push("the guest runs as uid 0 (a user namespace maps only the caller)".into());
        return Ok(None);
    }
    let gid = crate::user::gid_of(&root.join("etc"), &plan.user);
    let host = (sys::geteuid(), sys::getegid());
    let idmapped = idmap_userns(host, (plan.user.uid, gid))
        .and_then(|ns| mount_lima_mounts_idmapped(root, &plan.mounts, &ns));
    match idmapped {
        Ok(()) => {
            become_lima_guest(root, plan, gid)?;
            notes.push(format!(
                "the guest user is {} (uid {}), with sudo from /etc/sudoers.d/90-cloud-init-users; mounts are idmapped (host uid {} shows as {})",
                plan.user.name, plan.user.uid, host.0, plan.user.uid
            ));
            Ok(Some((plan.user.uid, gid)))
        }
        Err(e) => {
            mount_lima_mounts(root, &plan.mounts)?;
            stay_root_guest(root, plan)?;
            notes.push(format!(
                "idmapped mounts unavailable ({e}): the guest runs as uid 0 with the simulator's sudo"
            ));
            Ok(None)
        }
    }
}

fn pivot(root: &Path) -> Result<(), String> {
    std::env::set_current_dir(root).map_err(|e| sys::path_error("chdir", root, &e))?;
    let dot = CString::new(".").unwrap_or_default();
    // SAFETY: pivot_root(".", ".") stacks the old root under the new one.
    if unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) } != 0 {
        return Err(errno("pivot_root".into()));
    }
    // SAFETY: detaching the old root, now mounted on ".".
    if unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(errno("umount old root".into()));
    }
    std::env::set_current_dir("/").map_err(|e| sys::path_error("chdir", Path::new("/"), &e))
}

/// Builds and enters the guest filesystem. Runs in the host agent process,
/// which then keeps the namespaces alive. Returns notes for its log.
pub fn boot(plan: &BootPlan) -> Result<(Vec<String>, Option<slirp::Helper>), BootError> {
    let failed = BootError::Failed;
    // The host's end of the network first, while the agent is on the host.
    let helper = match plan.network {
        net::Mode::User => Some(slirp::Helper::spawn().map_err(failed)?),
        net::Mode::Host => None,
    };
    let userns = unshare(plan.network)?;
    if let Some(helper) = &helper {
        helper.attach_begin(sys::getpid()).map_err(failed)?;
    }
    sethostname(&plan.hostname).map_err(failed)?;
    let root = disk::run_dir(&plan.inst).join("root");
    mount(
        Path::new("tmpfs"),
        &root,
        Some("tmpfs"),
        0,
        Some("mode=0755"),
    )
    .map_err(failed)?;
    let mut notes = Vec::new();
    match mount_overlays(&root, &plan.inst, userns) {
        Ok(()) => notes.push("/etc, /usr and /var are overlayfs mounts".to_string()),
        Err(e) => {
            notes.push(format!(
                "overlayfs unavailable ({e}): /etc and /usr are read-only binds, /usr/local and /var persistent dirs"
            ));
            mount_layers_fallback(&root, &plan.inst).map_err(failed)?;
        }
    }
    notes.extend(
        mount_system(
            &root,
            &plan.inst,
            &plan.exe,
            plan.claude_code.as_deref(),
            plan.user.uid,
        )
        .map_err(failed)?,
    );
    host_lima_internal(&root, &plan.inst, plan.network, &plan.hostname).map_err(failed)?;
    if plan.network == net::Mode::Host {
        shadow_firewall(&root, &plan.exe).map_err(failed)?;
        notes.push("firewall tools refuse: the guest shares the host's network".to_string());
    }
    let owner = mounts_and_user(&root, plan, userns, &mut notes).map_err(failed)?;
    if let Some(ids) = owner {
        let _ = crate::agent::GUEST_OWNER.set(ids);
    }
    if let Some(helper) = &helper {
        helper.attach_end().map_err(failed)?;
    }
    pivot(&root).map_err(failed)?;
    notes.push(match plan.network {
        net::Mode::User => format!(
            "user-mode network (slirp4netns): guest {}/24, host {}, DNS {}",
            net::GUEST_IP,
            net::HOST_IP,
            net::DNS_IP
        ),
        net::Mode::Host => format!(
            "the guest shares the host's network ({}=host)",
            net::NETWORK_ENV
        ),
    });
    Ok((notes, helper))
}

fn ns_link(pid: i32, kind: &str) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
}

/// Joins the namespaces of the host agent `agent` (in a forked child, which
/// is single-threaded as setns requires), and keeps the guest from undoing
/// its mounts by dropping CAP_SYS_ADMIN from the bounding set.
pub fn enter(agent: i32) -> Result<(), String> {
    let open = |kind: &str| {
        let path = format!("/proc/{agent}/ns/{kind}");
        File::open(&path).map_err(|e| sys::path_error("open", Path::new(&path), &e))
    };
    let own_user = ns_link(sys::getpid(), "user").map_err(|e| format!("readlink: {e}"))?;
    let agent_user = ns_link(agent, "user").map_err(|e| format!("readlink: {e}"))?;
    let user = if own_user != agent_user {
        Some(open("user")?)
    } else {
        None
    };
    let own_net = ns_link(sys::getpid(), "net").map_err(|e| format!("readlink: {e}"))?;
    let agent_net = ns_link(agent, "net").map_err(|e| format!("readlink: {e}"))?;
    let netns = if own_net != agent_net {
        Some(open("net")?)
    } else {
        None
    };
    let mnt = open("mnt")?;
    let uts = open("uts")?;
    let join = |f: &File, kind: libc::c_int, name: &str| {
        // SAFETY: setns on a namespace descriptor we opened.
        if unsafe { libc::setns(f.as_raw_fd(), kind) } != 0 {
            return Err(errno(format!("setns {name}")));
        }
        Ok(())
    };
    if let Some(user) = &user {
        join(user, libc::CLONE_NEWUSER, "user")?;
    }
    join(&mnt, libc::CLONE_NEWNS, "mnt")?;
    join(&uts, libc::CLONE_NEWUTS, "uts")?;
    if let Some(netns) = &netns {
        join(netns, libc::CLONE_NEWNET, "net")?;
    }
    // SAFETY: prctl with plain integer arguments.
    if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0) } != 0 {
        return Err(errno("prctl(PR_CAPBSET_DROP)".into()));
    }
    Ok(())
}

/// Processes that share the mount namespace of `pid` (the guest's), other
/// than `pid` itself.
pub fn processes_sharing_mount_ns(pid: i32) -> Vec<i32> {
    let Ok(target) = ns_link(pid, "mnt") else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|p| *p != pid && ns_link(*p, "mnt").map(|l| l == target).unwrap_or(false))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_symlinks_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("home/u")).unwrap();
        // An absolute link must resolve inside the root, not on the host.
        symlink("/usr", root.join("home/u/escape")).unwrap();
        assert_eq!(
            resolve_in_root(root, "/bin/x", true).unwrap(),
            root.join("usr/bin/x")
        );
        assert!(root.join("usr/bin/x").is_dir());
        assert_eq!(
            resolve_in_root(root, "/home/u/escape/lib", true).unwrap(),
            root.join("usr/lib")
        );
        assert_eq!(
            resolve_in_root(root, "/usr/../../home", false).unwrap(),
            root.join("home")
        );
        assert!(resolve_in_root(root, "/missing", false).is_err());
        assert!(resolve_in_root(root, "relative", true).is_err());
        symlink("loop", root.join("loop")).unwrap();
        assert!(resolve_in_root(root, "/loop", true)
            .unwrap_err()
            .contains("too many levels"));
    }
}
