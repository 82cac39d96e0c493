//! The guest user, as Lima's cloud-init makes it (namespace mode as root): an
//! entry in the guest's passwd, group and shadow (locked password), the
//! sudoers entry `NAME ALL=(ALL) NOPASSWD:ALL`, a home from /etc/skel owned
//! by the user; `limactl shell` switches to it as sshd does for the login.

use std::io;
use std::os::unix::fs::{lchown, PermissionsExt};
use std::path::Path;

use crate::config::User;
use crate::disk;
use crate::sys;

/// cloud-init's sudoers drop-in for Lima's user.
pub const SUDOERS: &str = "/etc/sudoers.d/90-cloud-init-users";
/// `sim.run/guest-user`: the name `shell` switches to; absent when the guest runs as uid 0.
pub const RUN_FILE: &str = "guest-user";

fn err(what: &str, path: &Path, e: &io::Error) -> String {
    sys::path_error(what, path, e)
}

/// Puts `line` in the file, first removing any other entry of the same name or id: the
/// guest's /etc starts as the host's, whose users a fresh image does not have (cloud-init
/// finds the uid free). Idempotent.
fn set_entry(
    path: &Path,
    line: &str,
    clashes: &dyn Fn(&[&str]) -> bool,
    mode: u32,
) -> Result<(), String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    if text.lines().any(|l| l == line)
        && text
            .lines()
            .filter(|l| clashes(&l.split(':').collect::<Vec<_>>()))
            .count()
            == 1
    {
        return Ok(());
    }
    let mut out: String = text
        .lines()
        .filter(|l| !clashes(&l.split(':').collect::<Vec<_>>()))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(line);
    out.push('\n');
    std::fs::write(path, out).map_err(|e| err("write", path, &e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| err("chmod", path, &e))
}

fn mode_of(path: &Path, default: u32) -> u32 {
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(default)
}

/// The user's gid: its group's if it has one, else the uid (useradd's user group).
pub fn gid_of(etc: &Path, user: &User) -> u32 {
    let groups = std::fs::read_to_string(etc.join("group")).unwrap_or_default();
    groups
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[0] == user.name)
        .and_then(|f| f[2].parse().ok())
        .unwrap_or(user.uid)
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), String> {
    lchown(path, Some(uid), Some(gid)).map_err(|e| err("chown", path, &e))?;
    let meta = std::fs::symlink_metadata(path).map_err(|e| err("stat", path, &e))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(|e| err("open", path, &e))? {
            let entry = entry.map_err(|e| err("readdir", path, &e))?;
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Adds the user to the guest's /etc under `root` (idempotent: a clone already has it) and
/// gives it its home. Returns (uid, gid).
pub fn provision(root: &Path, user: &User) -> Result<(u32, u32), String> {
    let etc = root.join("etc");
    let gid = gid_of(&etc, user);
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0);
    let (uid, name) = (user.uid.to_string(), user.name.as_str());
    let gid_text = gid.to_string();
    let passwd = etc.join("passwd");
    let taken: Vec<String> = std::fs::read_to_string(&passwd)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() > 2 && (f[0] == name || f[2] == uid))
        .map(|f| f[0].to_string())
        .collect();
    let line = format!(
        "{name}:x:{uid}:{gid}:{}:{}:{}",
        user.comment, user.home, user.shell
    );
    let same_user = |f: &[&str]| f.len() > 2 && (f[0] == name || f[2] == uid);
    set_entry(&passwd, &line, &same_user, mode_of(&passwd, 0o644))?;
    let group = etc.join("group");
    let same_group = |f: &[&str]| f.len() > 2 && (f[0] == name || f[2] == gid_text);
    set_entry(
        &group,
        &format!("{name}:x:{gid}:"),
        &same_group,
        mode_of(&group, 0o644),
    )?;
    let shadow = etc.join("shadow");
    let same_shadow =
        |f: &[&str]| !f.is_empty() && (f[0] == name || taken.iter().any(|t| t == f[0]));
    set_entry(
        &shadow,
        &format!("{name}:!:{days}:0:99999:7:::"),
        &same_shadow,
        mode_of(&shadow, 0o640),
    )?;
    let sudoers = root.join(SUDOERS.trim_start_matches('/'));
    if let Some(dir) = sudoers.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err("mkdir", dir, &e))?;
    }
    if !sudoers.exists() {
        let text = format!("# Created by cloud-init v. 24.1 (simulated)\n\n# User rules for {0}\n{0} ALL=(ALL) NOPASSWD:ALL\n", user.name);
        std::fs::write(&sudoers, text).map_err(|e| err("write", &sudoers, &e))?;
        std::fs::set_permissions(&sudoers, std::fs::Permissions::from_mode(0o440))
            .map_err(|e| err("chmod", &sudoers, &e))?;
    }
    let home = crate::ns::resolve_in_root(root, &user.home, true)?;
    let owned = std::fs::metadata(&home)
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid() == user.uid
        })
        .unwrap_or(false);
    if !owned {
        if std::fs::read_dir(&home)
            .map(|mut d| d.next().is_none())
            .unwrap_or(true)
        {
            let skel = root.join("etc/skel");
            if skel.is_dir() {
                crate::fsutil::copy_archive(&skel.join("."), &home)
                    .map_err(|e| e.msg.unwrap_or_default())?;
            }
        }
        chown_tree(&home, user.uid, gid)?;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o750))
            .map_err(|e| err("chmod", &home, &e))?;
    }
    Ok((user.uid, gid))
}

/// Where the run file lives.
pub fn run_file(inst: &Path) -> std::path::PathBuf {
    disk::run_dir(inst).join(RUN_FILE)
}

/// Who `shell` switches to (name, uid, gid), if the guest has a user of its own.
pub fn recorded(inst: &Path) -> Option<(String, u32, u32)> {
    let text = std::fs::read_to_string(run_file(inst)).ok()?;
    let mut words = text.split_whitespace();
    let name = words.next()?.to_string();
    let uid = words.next()?.parse().ok()?;
    let gid = words.next()?.parse().ok()?;
    Some((name, uid, gid))
}

/// In the guest (after entering it): becomes `name` from the guest's own passwd and group,
/// as sshd does for a login (supplementary groups, gid, uid).
pub fn switch_to(name: &str) -> Result<(), String> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
    let fields: Vec<&str> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 7 && f[0] == name)
        .ok_or_else(|| format!("no user {name:?} in the guest's /etc/passwd"))?;
    let uid: u32 = fields[2]
        .parse()
        .map_err(|_| format!("bad uid for {name}"))?;
    let gid: u32 = fields[3]
        .parse()
        .map_err(|_| format!("bad gid for {name}"))?;
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let mut groups: Vec<libc::gid_t> = vec![gid];
    for f in group.lines().map(|l| l.split(':').collect::<Vec<_>>()) {
        if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
            if let Ok(g) = f[2].parse::<u32>() {
                if !groups.contains(&g) {
                    groups.push(g);
                }
            }
        }
    }
    let os = |what: &str| {
        format!(
            "{what}: {}",
            sys::go_errno_text(&io::Error::last_os_error())
        )
    };
    // SAFETY: the slice outlives the call; the ids are plain integers.
    unsafe {
        if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
            return Err(os("setgroups"));
        }
        if libc::setgid(gid) != 0 {
            return Err(os("setgid"));
        }
        if libc::setuid(uid) != 0 {
            return Err(os("setuid"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisions_like_cloud_init_once() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("etc/skel")).unwrap();
        std::fs::write(root.join("etc/skel/.profile"), "# p\n").unwrap();
        // As root the home can be given away; else the user is the caller.
        let root_caller = sys::geteuid() == 0;
        let uid = if root_caller { 4242 } else { sys::geteuid() };
        // A host user with the same uid (the lower layer's) gives way, as on a fresh image.
        std::fs::write(
            root.join("etc/passwd"),
            format!("root:x:0:0:root:/root:/bin/bash\nhostuser:x:{uid}:{uid}::/home/h:/bin/sh\n"),
        )
        .unwrap();
        std::fs::write(
            root.join("etc/group"),
            format!("root:x:0:\nhostuser:x:{uid}:\n"),
        )
        .unwrap();
        std::fs::write(
            root.join("etc/shadow"),
            "root:*:1:0:99999:7:::\nhostuser:*:1:0:99999:7:::\n",
        )
        .unwrap();
        let user = User {
            name: "lima".into(),
            comment: "root".into(),
            home: "/home/lima.linux".into(),
            shell: "/bin/bash".into(),
            uid,
        };
        for _ in 0..2 {
            assert_eq!(provision(root, &user).unwrap(), (user.uid, user.uid));
        }
        let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
        assert_eq!(
            passwd,
            format!("root:x:0:0:root:/root:/bin/bash\nlima:x:{uid}:{uid}:root:/home/lima.linux:/bin/bash\n")
        );
        let group = std::fs::read_to_string(root.join("etc/group")).unwrap();
        assert_eq!(group, format!("root:x:0:\nlima:x:{uid}:\n"));
        let shadow = std::fs::read_to_string(root.join("etc/shadow")).unwrap();
        assert!(shadow.lines().any(|l| l.starts_with("lima:!:")));
        assert!(!shadow.contains("hostuser"));
        let sudoers =
            std::fs::read_to_string(root.join("etc/sudoers.d/90-cloud-init-users")).unwrap();
        assert!(sudoers.contains("\nlima ALL=(ALL) NOPASSWD:ALL\n"));
        assert_eq!(
            mode_of(&root.join("etc/sudoers.d/90-cloud-init-users"), 0),
            0o440
        );
        if root_caller {
            use std::os::unix::fs::MetadataExt;
            let profile = root.join("home/lima.linux/.profile");
            assert_eq!(std::fs::metadata(&profile).unwrap().uid(), uid);
            assert_eq!(
                std::fs::metadata(root.join("home/lima.linux"))
                    .unwrap()
                    .uid(),
                uid
            );
        }
    }
}
