//! The guest "disk": persistent directories under the instance directory,
//! so that `clone` copies them and files written in a template appear in
//! its clones.
//!
//! ```text
//! simdisk/upper/{etc,usr,var}  overlayfs upper layers over the host's dirs
//! simdisk/{home,root,opt,srv}  plain persistent directories
//! simdisk/tmp                  the guest /tmp, emptied at every boot
//! simdisk.work/                overlayfs work dirs       (not cloned)
//! sim.run/                     runtime state of a boot   (not cloned)
//! ```

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::fail::Res;
use crate::fsutil;

pub const DISK: &str = "simdisk";
pub const WORK: &str = "simdisk.work";
pub const RUN: &str = "sim.run";
/// Where the simulator binary appears inside the guest.
pub const GUEST_EXE: &str = "/.limasim/limactl";
/// Guest tools the simulator fakes (argv[0] dispatch).
pub const FAKE_TOOLS: &[&str] = &["sudo", "apt-get", "curl", "npm"];
/// The fake apt-get's record of installed packages (a guest path).
pub const INSTALLED_LIST: &str = "/var/lib/limasim/installed";
pub const LAYERS: &[&str] = &["etc", "usr", "var"];
pub const PLAIN_DIRS: &[&str] = &["home", "root", "opt", "srv"];

pub fn disk(inst: &Path) -> PathBuf {
    inst.join(DISK)
}

pub fn upper(inst: &Path, layer: &str) -> PathBuf {
    inst.join(DISK).join("upper").join(layer)
}

pub fn guest_tmp(inst: &Path) -> PathBuf {
    inst.join(DISK).join("tmp")
}

pub fn run_dir(inst: &Path) -> PathBuf {
    inst.join(RUN)
}

/// The guest's /usr/local/bin on the host side.
pub fn usr_local_bin(inst: &Path) -> PathBuf {
    upper(inst, "usr").join("local/bin")
}

/// Fallback mode's tool directory (symlinks to the simulator on the host).
pub fn fallback_bin(inst: &Path) -> PathBuf {
    run_dir(inst).join("bin")
}

/// The host directory backing a guest path on one of the plain persistent
/// directories (`/home/...`, `/root/...`), if it is on one.
pub fn host_path_of(inst: &Path, guest: &str) -> Option<PathBuf> {
    let rel = guest.strip_prefix('/')?;
    let top = rel.split('/').next()?;
    PLAIN_DIRS.contains(&top).then(|| inst.join(DISK).join(rel))
}

/// Where a guest path lives on the host in fallback mode (where "/" is the
/// host's): the overlay upper layer for /etc, /usr and /var, else the disk.
pub fn fallback_path(inst: &Path, guest: &str) -> PathBuf {
    let rel = guest.trim_start_matches('/');
    let layer = rel.split('/').next().unwrap_or_default();
    if LAYERS.contains(&layer) {
        inst.join(DISK).join("upper").join(rel)
    } else {
        inst.join(DISK).join(rel)
    }
}

// Debian's ~/.profile PATH lines, for hosts without /etc/skel (macOS).
const MINIMAL_PROFILE: &str = r#"# ~/.profile (lima simulator: the host has no /etc/skel)
if [ -d "$HOME/bin" ] ; then
    PATH="$HOME/bin:$PATH"
fi
if [ -d "$HOME/.local/bin" ] ; then
    PATH="$HOME/.local/bin:$PATH"
fi
"#;

// A fresh home, like cloud-init's: a copy of the host's /etc/skel.
fn seed_home(dir: &Path) -> Res<()> {
    fsutil::mkdir_all(dir)?;
    let skel = Path::new("/etc/skel");
    if skel.is_dir() {
        fsutil::copy_archive(&skel.join("."), dir)?;
    }
    let profile = dir.join(".profile");
    if !profile.exists() {
        std::fs::write(&profile, MINIMAL_PROFILE)
            .map_err(|e| crate::fail::Fail::path("open", &profile, &e))?;
    }
    Ok(())
}

/// Lays out a new guest disk (at `limactl create`).
pub fn create(inst: &Path, config: &Config) -> Res<()> {
    for layer in LAYERS {
        fsutil::mkdir_all(&upper(inst, layer))?;
    }
    fsutil::mkdir_all(&usr_local_bin(inst))?;
    fsutil::mkdir_all(&upper(inst, "var").join("lib/limasim"))?;
    for dir in PLAIN_DIRS {
        fsutil::mkdir_all(&inst.join(DISK).join(dir))?;
    }
    seed_home(&inst.join(DISK).join("root"))?;
    fsutil::chmod(&inst.join(DISK).join("root"), 0o700)?;
    if let Some(home) = host_path_of(inst, &config.user.home) {
        seed_home(&home)?;
    }
    let tmp = guest_tmp(inst);
    fsutil::mkdir_all(&tmp)?;
    fsutil::chmod(&tmp, 0o1777)?;
    for tool in FAKE_TOOLS {
        fsutil::force_symlink(Path::new(GUEST_EXE), &usr_local_bin(inst).join(tool))?;
    }
    Ok(())
}

/// Gets a stopped instance ready to boot: runtime dirs, an empty /tmp, and
/// fallback tools pointing at this simulator binary.
pub fn prepare_boot(inst: &Path, exe: &Path) -> Res<()> {
    let tmp = guest_tmp(inst);
    fsutil::mkdir_all(&tmp)?;
    fsutil::clear_dir(&tmp).map_err(|e| crate::fail::Fail::path("clear", &tmp, &e))?;
    fsutil::chmod(&tmp, 0o1777)?;
    for layer in LAYERS {
        fsutil::mkdir_all(&upper(inst, layer))?;
        fsutil::mkdir_all(&inst.join(WORK).join(layer))?;
    }
    fsutil::mkdir_all(&run_dir(inst).join("root"))?;
    let bin = fallback_bin(inst);
    fsutil::mkdir_all(&bin)?;
    // Fallback mode runs on the host's network: its firewall tools refuse (fakes::firewall).
    for tool in FAKE_TOOLS.iter().chain(crate::fakes::firewall::TOOLS) {
        fsutil::force_symlink(exe, &bin.join(tool))?;
    }
    Ok(())
}

/// Entries of the instance directory that are runtime state, not disk.
pub fn is_runtime(name: &str) -> bool {
    name == WORK || name == RUN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_persistent_guest_paths() {
        let inst = Path::new("/lima/vm");
        assert_eq!(
            host_path_of(inst, "/home/u.linux/x"),
            Some(PathBuf::from("/lima/vm/simdisk/home/u.linux/x"))
        );
        assert_eq!(
            host_path_of(inst, "/root"),
            Some(PathBuf::from("/lima/vm/simdisk/root"))
        );
        assert_eq!(host_path_of(inst, "/work/x"), None);
        assert_eq!(host_path_of(inst, "relative"), None);
        assert_eq!(
            fallback_path(inst, "/etc/apt/x"),
            PathBuf::from("/lima/vm/simdisk/upper/etc/apt/x")
        );
        assert_eq!(
            fallback_path(inst, "/home/u.linux/.gnupg/S.gpg-agent"),
            PathBuf::from("/lima/vm/simdisk/home/u.linux/.gnupg/S.gpg-agent")
        );
    }
}
