//! lima.yaml validation: Lima's `limayaml.Validate`, the driver checks of
//! `ResolveVMType`, and the "disk must not shrink" rule, with Lima's texts.

use std::path::Path;

use crate::config::{self, Config, Mount};
use crate::gofmt::{self, quote};
use crate::host::{self, Host};
use crate::logrus;

pub const ARCH_TYPES: &[&str] = &["x86_64", "aarch64", "armv7l", "ppc64le", "riscv64", "s390x"];

/// `driverutil.ResolveVMType` with the driver's `FillConfig`/`Validate`.
pub fn resolve_vm_type(c: &mut Config) -> Result<(), String> {
    if c.vm_type.is_empty() {
        c.vm_type = host::default_vm_type().into();
    }
    if !host::registered_vm_types().contains(&c.vm_type.as_str()) {
        return Err(format!(
            "vmType {} is not a registered driver",
            quote(&c.vm_type)
        ));
    }
    let unsupported = |c: &Config, t: &str| c.mount_types_unsupported.iter().any(|u| u == t);
    if c.vm_type == "qemu" {
        if c.mount_type.is_empty() || c.mount_type == "default" {
            c.mount_type = if unsupported(c, "9p") {
                "reverse-sshfs".into()
            } else {
                "9p".into()
            };
        }
        if unsupported(c, &c.mount_type) {
            return Err(format!(
                "mount type {} is explicitly unsupported",
                quote(&c.mount_type)
            ));
        }
        if c.mount_type == "virtiofs" && !cfg!(target_os = "linux") {
            return Err(format!(
                "field `mountType` must be \"reverse-sshfs\" or \"9p\" for QEMU driver on non-Linux, got {}",
                quote(&c.mount_type)
            ));
        }
    } else {
        if c.mount_type.is_empty() {
            c.mount_type = "virtiofs".into();
        }
        if c.mount_type == "9p" {
            return Err(format!(
                "field `mountType` must be \"reverse-sshfs\" or \"virtiofs\" for VZ driver , got {}",
                quote(&c.mount_type)
            ));
        }
    }
    Ok(())
}

fn version_tuple(v: &str) -> Option<(u64, u64, u64)> {
    let v = v.trim_start_matches('v');
    let core = v.split(['-', '+']).next()?;
    let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((
        it.next()??,
        it.next().flatten().unwrap_or(0),
        it.next().flatten().unwrap_or(0),
    ))
}

/// `limayaml.Validate`: all problems, joined by newlines like `errors.Join`.
pub fn validate(c: &Config, version: &str, warn: bool) -> Result<(), String> {
    let mut errs: Vec<String> = Vec::new();
    if let Some(min) = &c.minimum_lima_version {
        match (version_tuple(min), version_tuple(version)) {
            (None, _) => errs.push(format!(
                "field `minimumLimaVersion` must be a semvar value, got {}: invalid semantic version",
                quote(min)
            )),
            (Some(m), Some(v)) if v < m => errs.push(format!(
                "template requires Lima version {}; this is only {}",
                quote(min),
                quote(version)
            )),
            _ => {}
        }
    }
    if c.os != "Linux" {
        errs.push(format!(
            "field `os` must be \"Linux\"; got {}",
            quote(&c.os)
        ));
    }
    let arch_list = format!("[{}]", ARCH_TYPES.join(" "));
    if !ARCH_TYPES.contains(&c.arch.as_str()) {
        errs.push(format!(
            "field `arch` must be one of {arch_list}; got {}",
            quote(&c.arch)
        ));
    }
    if c.image_archs.is_empty() {
        errs.push("field `images` must be set".into());
    }
    for arch in &c.image_archs {
        if !ARCH_TYPES.contains(&arch.as_str()) {
            errs.push(format!(
                "field `arch` must be one of {arch_list}; got {}",
                quote(arch)
            ));
        }
    }
    if c.cpus == 0 {
        errs.push("field `cpus` must be set".into());
    }
    if let Err(e) = gofmt::ram_in_bytes(&c.memory) {
        errs.push(format!("field `memory` has an invalid value: {e}"));
    }
    if let Err(e) = gofmt::ram_in_bytes(&c.disk) {
        errs.push(format!("field `disk` has an invalid value: {e}"));
    }
    for (i, m) in c.mounts.iter().enumerate() {
        validate_mount(i, m, &c.user.home, warn, &mut errs);
    }
    if c.ssh_local_port != 0 {
        errs.extend(crate::portfwd::validate_port(
            "ssh.localPort",
            c.ssh_local_port,
        ));
    }
    if !c.mount_type.is_empty() {
        if !["reverse-sshfs", "9p", "virtiofs", "wsl2"].contains(&c.mount_type.as_str()) {
            errs.push(format!(
                "field `mountType` must be \"reverse-sshfs\" or \"9p\" or \"virtiofs\", or \"wsl2\", got {}",
                quote(&c.mount_type)
            ));
        }
        if c.mount_types_unsupported.contains(&c.mount_type) {
            errs.push(format!(
                "field `mountType` must not be one of [{}] (`mountTypesUnsupported`), got {}",
                c.mount_types_unsupported.join(" "),
                quote(&c.mount_type)
            ));
        }
    }
    for (i, mode) in c.provision_modes.iter().enumerate() {
        if ![
            "system",
            "user",
            "boot",
            "data",
            "dependency",
            "ansible",
            "yq",
        ]
        .contains(&mode.as_str())
        {
            errs.push(format!(
                "field `provision[{i}].mode` must one of \"system\", \"user\", \"boot\", \"data\", \"dependency\", \"ansible\", or \"yq\""
            ));
        }
    }
    crate::portfwd::validate(&c.port_forwards, &mut errs);
    if warn && c.mount_type == "virtiofs" && cfg!(target_os = "linux") {
        logrus::warn("`mountType: virtiofs` on Linux is experimental");
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("\n"))
    }
}

fn validate_mount(i: usize, m: &Mount, home: &str, warn: bool, errs: &mut Vec<String>) {
    if !m.location.starts_with('/') && !m.location.starts_with('~') {
        errs.push(format!(
            "field `mounts[{i}].location` must be an absolute path, got {}",
            quote(&m.location)
        ));
    }
    if m.location.starts_with('~') && !(m.location == "~" || m.location.starts_with("~/")) {
        errs.push(format!(
            "field `mounts[{i}].location` refers to an unexpandable path: {}: unexpandable path {}",
            quote(&m.location),
            quote(&m.location)
        ));
    } else {
        match std::fs::metadata(&m.location) {
            Ok(st) if !st.is_dir() => errs.push(format!(
                "field `mounts[{i}].location` refers to a non-directory path: {}: %!w(<nil>)",
                quote(&m.location)
            )),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if warn {
                    logrus::warn(&format!(
                        "field `mounts[{i}].location` refers to a non-existent directory: {}:",
                        quote(&m.location)
                    ));
                }
            }
            Err(e) => errs.push(format!(
                "field `mounts[{i}].location` refers to an inaccessible path: {}: {}",
                quote(&m.location),
                crate::sys::path_error("stat", Path::new(&m.location), &e)
            )),
        }
    }
    let mp = m.mount_point.as_str();
    if [
        "/", "/bin", "/dev", "/etc", "/home", "/opt", "/sbin", "/tmp", "/usr", "/var",
    ]
    .contains(&mp)
    {
        errs.push(format!(
            "field `mounts[{i}].mountPoint` must not be a system path such as /etc or /usr"
        ));
    } else if mp == home {
        errs.push(format!(
            "field `mounts[{i}].mountPoint` is the reserved internal home directory {}",
            quote(home)
        ));
    }
    if mp.starts_with('~') {
        errs.push(format!(
            "field `mounts[{i}].mountPoint` must not start with \"~\""
        ));
    }
}

/// Lima's load → resolve vmType → validate sequence, with its error wrapping.
pub fn load_validated(
    bytes: &[u8],
    file_path: &Path,
    lima_home: &Path,
    h: &Host,
    version: &str,
    warn: bool,
) -> Result<Config, String> {
    let mut c = config::load(bytes, file_path, lima_home, h)?;
    resolve_vm_type(&mut c).map_err(|e| {
        format!(
            "failed to resolve vm for {}: {e}",
            quote(&file_path.to_string_lossy())
        )
    })?;
    validate(&c, version, warn)?;
    Ok(c)
}

/// `ValidateAgainstLatestConfig`: the disk may grow but never shrink.
pub fn check_disk_not_shrunk(old: &Config, new: &Config) -> Result<(), String> {
    let (Ok(o), Ok(n)) = (
        gofmt::ram_in_bytes(&old.disk),
        gofmt::ram_in_bytes(&new.disk),
    ) else {
        return Ok(());
    };
    if n < o {
        return Err(format!(
            "field `disk`: shrinking the disk ({} --> {}) is not supported",
            old.disk, new.disk
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::path::PathBuf;

    fn load_json(v: Value) -> Result<Config, String> {
        let alice = Host {
            login: "alice".into(),
            guest_user: "alice".into(),
            uid: 501,
            guest_uid: 501,
            home: PathBuf::from("/home/alice"),
        };
        let bytes = serde_json::to_vec(&v).unwrap();
        load_validated(
            &bytes,
            Path::new("/lima/vm1/lima.yaml"),
            Path::new("/lima"),
            &alice,
            "v2.0.3",
            false,
        )
    }

    fn base() -> Value {
        json!({"images": [{"location": "https://x/img.qcow2", "arch": host::arch()}]})
    }

    #[test]
    fn driver_defaults() {
        let c = load_json(base()).unwrap();
        assert_eq!(c.vm_type, host::default_vm_type());
        if cfg!(target_os = "linux") {
            assert_eq!(c.mount_type, "9p");
        }
        let mut v = base();
        v["mountTypesUnsupported"] = json!(["9p"]);
        v["vmType"] = json!("qemu");
        assert_eq!(load_json(v).unwrap().mount_type, "reverse-sshfs");
    }

    #[test]
    fn rejects_bad_mounts_with_lima_texts() {
        let mut v = base();
        v["mounts"] = json!([{"location": "rel"}, {"location": "/x", "mountPoint": "/etc"}, {"location": "/y", "mountPoint": "~/y"}]);
        let err = load_json(v).unwrap_err();
        assert!(
            err.contains("field `mounts[0].location` must be an absolute path, got \"rel\""),
            "{err}"
        );
        assert!(
            err.contains(
                "field `mounts[1].mountPoint` must not be a system path such as /etc or /usr"
            ),
            "{err}"
        );
        assert!(
            err.contains("field `mounts[2].mountPoint` must not start with \"~\""),
            "{err}"
        );
        let mut v = base();
        v["mounts"] = json!([{"location": "/x", "mountPoint": "/home/alice.linux"}]);
        assert!(load_json(v)
            .unwrap_err()
            .contains("reserved internal home directory"));
    }

    #[test]
    fn lima_error_texts() {
        let mut v = base();
        v["vmType"] = json!("nope");
        assert_eq!(
            load_json(v).unwrap_err(),
            "failed to resolve vm for \"/lima/vm1/lima.yaml\": vmType \"nope\" is not a registered driver"
        );
        let mut v = base();
        v["memory"] = json!("lots");
        assert_eq!(
            load_json(v).unwrap_err(),
            "field `memory` has an invalid value: invalid size: 'lots'"
        );
        assert_eq!(
            load_json(json!({})).unwrap_err(),
            "field `images` must be set"
        );
        let mut v = base();
        v["minimumLimaVersion"] = json!("9.0.0");
        assert!(load_json(v)
            .unwrap_err()
            .contains("template requires Lima version \"9.0.0\""));
        let mut v = base();
        v["ssh"] = json!({"localPort": 22});
        assert_eq!(
            load_json(v).unwrap_err(),
            "field `ssh.localPort` must not be 22"
        );
    }

    #[test]
    fn unsupported_features_are_listed() {
        let mut v = base();
        v["provision"] = json!([{"mode": "system", "script": "true"}]);
        v["containerd"] = json!({"user": true});
        assert_eq!(
            load_json(v).unwrap().unsupported,
            vec!["`provision`", "`containerd.user: true`"]
        );
    }

    #[test]
    fn disk_may_grow_but_not_shrink() {
        let mut v = base();
        v["disk"] = json!("50GiB");
        let small = load_json(v).unwrap();
        let big = load_json(base()).unwrap();
        assert!(check_disk_not_shrunk(&small, &big).is_ok());
        assert_eq!(
            check_disk_not_shrunk(&big, &small).unwrap_err(),
            "field `disk`: shrinking the disk (100GiB --> 50GiB) is not supported"
        );
    }
}
