//! Templates as files: `claude-vm export` writes a stopped template's Lima instance directory
//! (its disk and configuration, nothing of one machine) with a manifest; `claude-vm import`
//! checks one and unpacks it into a fresh instance directory. The format is `format.rs`;
//! `write.rs` and `read.rs` do the file work, sparse-aware (`sparse.rs`); `guest.rs` holds
//! what runs in the guest (credentials out, the home handed to the importer's user).

pub mod format;
pub mod guest;
pub mod read;
pub mod sparse;
pub mod write;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::Error;
use crate::ui::Ui;

/// The file name suffix `export` uses by default.
pub const SUFFIX: &str = ".cvm-template";

/// Prefix of the folders an import unpacks into under $LIMA_HOME: Lima skips names starting
/// with "." (pkg/store), so a half-unpacked template is never an instance.
pub const UNPACK_PREFIX: &str = ".claude-vm-import-";

/// Lima's name for this host's architecture (what `limactl list` reports as `arch`).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "arm" => "armv7l",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// A bad archive: the file, what is wrong, and that nothing was written.
pub fn refused(file: &Path, why: &str) -> Error {
    Error::usage(format!("cannot import {}: {why}", file.display())).with_hint(
        "nothing was written; export the template again with `claude-vm export` and copy the whole file",
    )
}

/// Whether this host can run the archive's template.
pub fn check_compatible(
    m: &format::Manifest,
    arch: &str,
    vm_type: &str,
) -> std::result::Result<(), String> {
    if m.arch != arch {
        return Err(format!(
            "it holds a template for {} and this host runs {arch} VMs (a disk image runs only on its own architecture)",
            m.arch
        ));
    }
    // The home is handed over by a script in the guest: it must be a plain home folder.
    let home = &m.guest_user.home;
    let parts: Vec<&str> = home.split('/').skip(1).collect();
    if !home.starts_with('/')
        || parts.len() < 2
        || parts
            .iter()
            .any(|c| c.is_empty() || *c == "." || *c == "..")
    {
        return Err(format!(
            "its guest user's home {home:?} is not a home folder (like /home/NAME.linux)"
        ));
    }
    if m.vm_type != vm_type {
        return Err(format!(
            "it holds a template for Lima's {} VM type and this host uses {vm_type}",
            m.vm_type
        ));
    }
    Ok(())
}

/// Byte progress on a terminal; a step (plain line, or `--json` events) elsewhere.
pub struct Progress {
    bar: Option<ProgressBar>,
    step: Option<crate::ui::Step>,
}

impl Progress {
    pub fn start(ui: &Ui, what: &str, total: u64) -> Progress {
        let live = !ui.quiet && !ui.is_json() && std::io::stderr().is_terminal();
        if !live {
            return Progress {
                bar: None,
                step: Some(ui.step(what)),
            };
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30.cyan/dim}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(crate::ui::escape(what));
        Progress {
            bar: Some(bar),
            step: None,
        }
    }

    /// Data bytes done; false once a termination signal came (the caller stops).
    pub fn set(&self, done: u64) -> bool {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
        crate::signals::received().is_none()
    }

    pub fn done(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
        if let Some(step) = self.step {
            step.done();
        }
    }
}

/// Where `export` writes without `-o`.
pub fn default_output(cwd: &Path, template: &str) -> PathBuf {
    cwd.join(format!("{template}{SUFFIX}"))
}

/// Folders of imports that died before they finished (their pid is gone): removed.
pub fn remove_dead_unpacks(lima_home: &Path) {
    let Ok(dir) = std::fs::read_dir(lima_home) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(UNPACK_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: kill with signal 0 only asks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone && e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Human sizes for messages: `3.2 MB`.
pub fn human(bytes: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::format::*;

    fn manifest(arch: &str, vm: &str) -> Manifest {
        Manifest {
            format: FORMAT,
            claude_vm_version: "0".into(),
            lima_version: "2.0.3".into(),
            arch: arch.into(),
            vm_type: vm.into(),
            exported_at: 0,
            guest_user: GuestUser {
                name: "a".into(),
                uid: 1,
                home: "/home/a.linux".into(),
            },
            template: serde_json::from_value(serde_json::json!({
                "template": "t", "project": "/p", "built_at": 0, "claude_vm_version": "0",
                "image": "i", "disk": 1, "memory": 1, "cpus": 1
            }))
            .unwrap(),
            credentials: Credentials {
                included: false,
                found: vec![],
            },
            sizes: Sizes::default(),
            payload_sha256: String::new(),
        }
    }

    #[test]
    fn another_architecture_or_vm_type_is_refused() {
        assert!(check_compatible(&manifest("x86_64", "qemu"), "x86_64", "qemu").is_ok());
        assert!(
            check_compatible(&manifest("aarch64", "qemu"), "x86_64", "qemu")
                .unwrap_err()
                .contains("aarch64")
        );
        assert!(
            check_compatible(&manifest("x86_64", "vz"), "x86_64", "qemu")
                .unwrap_err()
                .contains("vz")
        );
        for home in [
            "/",
            "/etc",
            "home/a",
            "/home/../etc",
            "/home/a/",
            "/home//a",
        ] {
            let mut m = manifest("x86_64", "qemu");
            m.guest_user.home = home.into();
            assert!(check_compatible(&m, "x86_64", "qemu").is_err(), "{home}");
        }
    }

    #[test]
    fn an_instance_folder_packs_and_unpacks_with_its_holes_links_and_modes() {
        use std::io::{Seek, SeekFrom, Write};
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let tmp = tempfile::tempdir().unwrap();
        let inst = tmp.path().join("inst");
        let home = inst.join("simdisk/home/u.linux");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(inst.join("simdisk/tmp")).unwrap();
        std::fs::write(inst.join("simdisk/tmp/junk"), b"x").unwrap();
        std::fs::write(inst.join("lima.yaml"), b"{}").unwrap();
        std::fs::write(inst.join("ha.pid"), b"1").unwrap();
        std::fs::write(inst.join("claude-vm.owner"), b"{}").unwrap();
        std::fs::write(home.join(".profile"), b"PATH=x\n").unwrap();
        std::fs::set_permissions(
            home.join(".profile"),
            std::fs::Permissions::from_mode(0o4640),
        )
        .unwrap();
        std::os::unix::fs::symlink("/home/u.linux/.profile", home.join("p")).unwrap();
        let mut big = std::fs::File::create(inst.join("diffdisk")).unwrap();
        big.set_len(4 << 30).unwrap();
        big.seek(SeekFrom::Start(3 << 30)).unwrap();
        big.write_all(&[9u8; 5000]).unwrap();
        drop(big);

        let records = write::scan(&inst).unwrap();
        let paths: Vec<&str> = records.iter().filter_map(|r| r.path()).collect();
        assert!(
            !paths
                .iter()
                .any(|p| p.contains("ha.pid") || p.contains("owner") || p.contains("junk")),
            "{paths:?}"
        );
        let file = tmp.path().join("a.cvm");
        let mut out = std::fs::File::create(&file).unwrap();
        let (sizes, sha) = write::payload(&inst, &records, &mut out, &|_| true).unwrap();
        assert!(sizes.data_bytes < 1 << 20, "{sizes:?}");
        assert!(sizes.nominal_bytes >= 4 << 30);
        let mut m = manifest("x86_64", "qemu");
        m.sizes = sizes;
        m.payload_sha256 = sha;
        write::finish(&mut out, &m).unwrap();
        assert!(std::fs::metadata(&file).unwrap().len() < 1 << 20);

        let opened = read::open(&file).unwrap();
        assert_eq!(opened.manifest, m);
        let summary = opened.verify().unwrap();
        assert!(summary.has_config);
        let dest = tmp.path().join("dest");
        std::fs::create_dir(&dest).unwrap();
        opened.unpack(&dest, &|_| true).unwrap();
        let disk = std::fs::metadata(dest.join("diffdisk")).unwrap();
        assert_eq!(disk.len(), 4 << 30);
        assert!(disk.blocks() * 512 < 1 << 20, "holes stay holes");
        let mut back = vec![0u8; 5000];
        std::os::unix::fs::FileExt::read_exact_at(
            &std::fs::File::open(dest.join("diffdisk")).unwrap(),
            &mut back,
            3 << 30,
        )
        .unwrap();
        assert_eq!(back, vec![9u8; 5000]);
        let profile = dest.join("simdisk/home/u.linux/.profile");
        assert_eq!(std::fs::read(&profile).unwrap(), b"PATH=x\n");
        assert_eq!(
            std::fs::metadata(&profile).unwrap().permissions().mode() & 0o7777,
            0o640
        );
        assert_eq!(
            std::fs::read_link(dest.join("simdisk/home/u.linux/p")).unwrap(),
            std::path::Path::new("/home/u.linux/.profile")
        );
        assert!(dest.join("simdisk/tmp").is_dir());
        assert!(!dest.join("ha.pid").exists());
    }

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(human(12), "12 B");
        assert_eq!(human(3_200_000), "3.2 MB");
        assert_eq!(human(21_474_836_480), "21.5 GB");
    }
}
