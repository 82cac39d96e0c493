//! Can this host run the VMs claude-vm asks Lima for? vz on macOS 13 or later; QEMU with KVM
//! on Linux (see `lima::host_vm_type`).

use std::path::{Path, PathBuf};

use super::lima::find_in_path;
use super::Finding;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    MacOs {
        /// `sw_vers -productVersion`, major and minor.
        version: Option<(u32, u32)>,
    },
    Linux {
        kvm: Kvm,
        /// `qemu-system-<arch>` on PATH.
        qemu: Option<PathBuf>,
        arch: String,
    },
    Other(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kvm {
    Missing,
    NoAccess,
    Usable,
}

/// Looks at this machine.
pub fn gather() -> Host {
    let arch = std::env::consts::ARCH.to_owned();
    if cfg!(target_os = "macos") {
        let version = std::process::Command::new("sw_vers")
            .arg("-productVersion")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|v| macos_version(&v));
        Host::MacOs { version }
    } else if cfg!(target_os = "linux") {
        Host::Linux {
            kvm: kvm(Path::new("/dev/kvm")),
            qemu: find_in_path(&qemu_binary(&arch)),
            arch,
        }
    } else {
        Host::Other(std::env::consts::OS.to_owned())
    }
}

fn kvm(dev: &Path) -> Kvm {
    if !dev.exists() {
        Kvm::Missing
    } else if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev)
        .is_ok()
    {
        Kvm::Usable
    } else {
        Kvm::NoAccess
    }
}

fn qemu_binary(arch: &str) -> String {
    format!("qemu-system-{arch}")
}

fn macos_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

pub fn vm_support(host: &Host) -> Vec<Finding> {
    match host {
        Host::MacOs { version: Some((major, minor)) } if *major >= 13 => vec![Finding::ok(
            format!("VM type: vz (macOS {major}.{minor} has Apple's Virtualization framework)"),
        )],
        Host::MacOs { version: Some((major, minor)) } => vec![Finding::fail(
            format!("VM type: claude-vm uses Lima's vz VMs, which need macOS 13 or later; this is macOS {major}.{minor}"),
            "upgrade macOS to 13 (Ventura) or later",
        )],
        Host::MacOs { version: None } => vec![Finding::warn(
            "VM type: vz needs macOS 13 or later, and `sw_vers` did not say which macOS this is",
            "check with `sw_vers -productVersion`; upgrade to macOS 13 or later if it is older",
        )],
        Host::Linux { kvm, qemu, arch } => {
            let package = if arch == "aarch64" {
                "qemu-system-arm"
            } else {
                "qemu-system-x86"
            };
            let mut out = vec![match qemu {
                Some(path) => Finding::ok(format!("VM type: qemu ({})", path.display())),
                None => Finding::fail(
                    format!("VM type: Lima runs VMs with QEMU on Linux, and {} is not on PATH", qemu_binary(arch)),
                    format!("install QEMU: `sudo apt-get install {package} qemu-utils` (Debian, Ubuntu), `sudo dnf install qemu-kvm` (Fedora), or `brew install qemu`"),
                ),
            }];
            out.push(match kvm {
                Kvm::Usable => Finding::ok("KVM: /dev/kvm is usable, so VMs run at native speed"),
                Kvm::NoAccess => Finding::warn(
                    "KVM: /dev/kvm exists but this user cannot open it, so VMs would be emulated (very slow)",
                    "`sudo usermod -aG kvm $USER`, then log out and in again",
                ),
                Kvm::Missing => Finding::warn(
                    "KVM: /dev/kvm does not exist, so VMs would be emulated (very slow)",
                    "enable hardware virtualization (VT-x or AMD-V) in the firmware settings; inside a VM, enable nested virtualization; then `sudo modprobe kvm`",
                ),
            });
            out
        }
        Host::Other(os) => vec![Finding::fail(
            format!("VM type: Lima runs on macOS and Linux, not on {os}"),
            "run claude-vm on macOS or Linux (on Windows, inside WSL2)",
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Level;

    fn levels(h: &Host) -> Vec<Level> {
        vm_support(h).iter().map(|f| f.level).collect()
    }

    #[test]
    fn macos_needs_13() {
        assert_eq!(macos_version("14.6.1\n"), Some((14, 6)));
        assert_eq!(macos_version("13"), Some((13, 0)));
        assert_eq!(
            levels(&Host::MacOs {
                version: Some((13, 0))
            }),
            [Level::Ok]
        );
        assert_eq!(
            levels(&Host::MacOs {
                version: Some((12, 7))
            }),
            [Level::Fail]
        );
        assert_eq!(levels(&Host::MacOs { version: None }), [Level::Warn]);
    }

    #[test]
    fn linux_needs_qemu_and_wants_kvm() {
        let linux = |kvm, qemu: Option<&str>| Host::Linux {
            kvm,
            qemu: qemu.map(PathBuf::from),
            arch: "x86_64".into(),
        };
        let q = Some("/usr/bin/qemu-system-x86_64");
        assert_eq!(levels(&linux(Kvm::Usable, q)), [Level::Ok, Level::Ok]);
        assert_eq!(levels(&linux(Kvm::Missing, q)), [Level::Ok, Level::Warn]);
        assert_eq!(
            levels(&linux(Kvm::NoAccess, None)),
            [Level::Fail, Level::Warn]
        );
        let f = &vm_support(&linux(Kvm::NoAccess, None));
        assert!(f[0].fix.as_deref().unwrap().contains("qemu-system-x86"));
        assert!(f[1].fix.as_deref().unwrap().contains("usermod -aG kvm"));
        assert_eq!(levels(&Host::Other("freebsd".into())), [Level::Fail]);
    }

    #[test]
    fn kvm_states_come_from_the_device() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(kvm(&tmp.path().join("kvm")), Kvm::Missing);
        let dev = tmp.path().join("dev");
        std::fs::write(&dev, "").unwrap();
        assert_eq!(kvm(&dev), Kvm::Usable);
    }
}
