//! Built-in templates (`template:NAME`) and template locators. Each template
//! is flattened the way `limactl create` embeds its bases into lima.yaml.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::gofmt::quote;
use crate::host::{self, Host};
use crate::logrus;

struct Builtin {
    name: &'static str,
    /// (x86_64 image, aarch64 image)
    images: (&'static str, &'static str),
    no_9p: bool,
}

const UBUNTU_2204: (&str, &str) = (
    "https://cloud-images.ubuntu.com/releases/jammy/release-20251216/ubuntu-22.04-server-cloudimg-amd64.img",
    "https://cloud-images.ubuntu.com/releases/jammy/release-20251216/ubuntu-22.04-server-cloudimg-arm64.img",
);
const UBUNTU_2404: (&str, &str) = (
    "https://cloud-images.ubuntu.com/releases/noble/release-20251213/ubuntu-24.04-server-cloudimg-amd64.img",
    "https://cloud-images.ubuntu.com/releases/noble/release-20251213/ubuntu-24.04-server-cloudimg-arm64.img",
);
const UBUNTU_2504: (&str, &str) = (
    "https://cloud-images.ubuntu.com/releases/plucky/release-20251122/ubuntu-25.04-server-cloudimg-amd64.img",
    "https://cloud-images.ubuntu.com/releases/plucky/release-20251122/ubuntu-25.04-server-cloudimg-arm64.img",
);
const UBUNTU_2510: (&str, &str) = (
    "https://cloud-images.ubuntu.com/releases/questing/release-20251212/ubuntu-25.10-server-cloudimg-amd64.img",
    "https://cloud-images.ubuntu.com/releases/questing/release-20251212/ubuntu-25.10-server-cloudimg-arm64.img",
);
const DEBIAN_11: (&str, &str) = (
    "https://cloud.debian.org/images/cloud/bullseye/20251015-2266/debian-11-genericcloud-amd64-20251015-2266.qcow2",
    "https://cloud.debian.org/images/cloud/bullseye/20251015-2266/debian-11-genericcloud-arm64-20251015-2266.qcow2",
);
const DEBIAN_12: (&str, &str) = (
    "https://cloud.debian.org/images/cloud/bookworm/20251112-2294/debian-12-genericcloud-amd64-20251112-2294.qcow2",
    "https://cloud.debian.org/images/cloud/bookworm/20251112-2294/debian-12-genericcloud-arm64-20251112-2294.qcow2",
);
const DEBIAN_13: (&str, &str) = (
    "https://cloud.debian.org/images/cloud/trixie/20251117-2299/debian-13-genericcloud-amd64-20251117-2299.qcow2",
    "https://cloud.debian.org/images/cloud/trixie/20251117-2299/debian-13-genericcloud-arm64-20251117-2299.qcow2",
);

const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "debian",
        images: DEBIAN_13,
        no_9p: true,
    },
    Builtin {
        name: "debian-11",
        images: DEBIAN_11,
        no_9p: false,
    },
    Builtin {
        name: "debian-12",
        images: DEBIAN_12,
        no_9p: false,
    },
    Builtin {
        name: "debian-13",
        images: DEBIAN_13,
        no_9p: true,
    },
    Builtin {
        name: "default",
        images: UBUNTU_2510,
        no_9p: false,
    },
    Builtin {
        name: "ubuntu",
        images: UBUNTU_2510,
        no_9p: false,
    },
    Builtin {
        name: "ubuntu-22.04",
        images: UBUNTU_2204,
        no_9p: false,
    },
    Builtin {
        name: "ubuntu-24.04",
        images: UBUNTU_2404,
        no_9p: false,
    },
    Builtin {
        name: "ubuntu-25.04",
        images: UBUNTU_2504,
        no_9p: false,
    },
    Builtin {
        name: "ubuntu-25.10",
        images: UBUNTU_2510,
        no_9p: false,
    },
    Builtin {
        name: "ubuntu-lts",
        images: UBUNTU_2404,
        no_9p: false,
    },
];

/// Template names, as `limactl create --list-templates` prints them.
pub fn names() -> Vec<&'static str> {
    BUILTINS.iter().map(|b| b.name).collect()
}

fn config(b: &Builtin, h: &Host) -> Value {
    let vm_type = host::default_vm_type();
    let mount_type = match (vm_type, b.no_9p) {
        ("vz", _) => "virtiofs",
        (_, true) => "reverse-sshfs",
        _ => "9p",
    };
    let mut c = json!({
        "minimumLimaVersion": "2.0.0",
        "vmType": vm_type,
        "images": [
            {"location": b.images.0, "arch": "x86_64"},
            {"location": b.images.1, "arch": "aarch64"},
        ],
        "cpus": 4,
        "memory": "4GiB",
        "disk": "100GiB",
        "mountType": mount_type,
        // Lima's `_default/mounts`: the host home, read-only.
        "mounts": [{"location": "~"}],
        "ssh": {"forwardAgent": false},
        "portForwards": [],
        "env": {},
        "user": {
            "name": h.guest_user,
            "home": format!("/home/{}.linux", h.guest_user),
            "uid": h.guest_uid,
        },
    });
    if b.no_9p {
        c["mountTypesUnsupported"] = json!(["9p"]);
    }
    c
}

/// `templatestore.Read`: `NAME` or `NAME.yaml`, never `..`.
pub fn read(name: &str, h: &Host) -> Result<Value, String> {
    if name.contains("..") {
        return Err(format!(
            "template name {} must not contain \"..\"",
            quote(name)
        ));
    }
    let ext_ok = name
        .rsplit_once('.')
        .map(|(_, ext)| !ext.is_empty() && !ext.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or(false);
    let file = if ext_ok {
        name.to_string()
    } else {
        format!("{name}.yaml")
    };
    let stem = file.strip_suffix(".yaml").unwrap_or(&file);
    BUILTINS
        .iter()
        .find(|b| b.name == stem)
        .map(|b| config(b, h))
        .ok_or_else(|| format!("template {} not found", quote(&file)))
}

#[derive(Debug, PartialEq)]
pub enum Locator {
    Template(String),
    Stdin,
    File(PathBuf),
}

/// Classifies a `create`/`start` argument like `limatmpl.Read` does.
pub fn parse_locator(arg: &str) -> Result<Locator, String> {
    if let Some(rest) = arg.strip_prefix("template:") {
        if let Some(legacy) = rest.strip_prefix("//") {
            let name = legacy.trim_matches('/').to_string();
            logrus::warn(&format!(
                "Template locator {} should be written {} since Lima v2.0",
                quote(arg),
                quote(&format!("template:{name}"))
            ));
            return Ok(Locator::Template(name));
        }
        return Ok(Locator::Template(rest.to_string()));
    }
    if arg == "-" {
        return Ok(Locator::Stdin);
    }
    if let Some(path) = arg.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(format!("file URL {} is not an absolute path", quote(arg)));
        }
        return Ok(Locator::File(PathBuf::from(path)));
    }
    let scheme = arg.split_once(':').map(|(s, _)| s).filter(|s| {
        s.len() > 1
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if let Some(scheme) = scheme {
        return Err(format!(
            "{scheme}: locators ({}) are not supported by the simulator (it has no network)",
            quote(arg)
        ));
    }
    let lower = arg.to_lowercase();
    if [".img", ".qcow2", ".raw", ".iso"]
        .iter()
        .any(|e| lower.ends_with(e))
    {
        return Err(format!(
            "image locators ({}) are not supported by the simulator",
            quote(arg)
        ));
    }
    Ok(Locator::File(PathBuf::from(arg)))
}

/// `InstNameFromYAMLPath`.
pub fn instance_name_from_path(path: &str) -> Result<String, String> {
    let base = path.rsplit('/').next().unwrap_or(path).to_lowercase();
    let name = base
        .strip_suffix(".yml")
        .or_else(|| base.strip_suffix(".yaml"))
        .unwrap_or(&base)
        .to_string();
    crate::names::validate_identifier(&name)
        .map_err(|e| format!("filename {} is invalid: {e}", quote(path)))?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h() -> Host {
        Host {
            login: "bob".into(),
            guest_user: "bob".into(),
            uid: 1000,
            guest_uid: 1000,
            home: "/home/bob".into(),
        }
    }

    #[test]
    fn reads_builtins() {
        let c = read("debian-13", &h()).unwrap();
        assert_eq!(c["mounts"], json!([{"location": "~"}]));
        assert_eq!(c["user"]["home"], json!("/home/bob.linux"));
        assert_eq!(c["mountTypesUnsupported"], json!(["9p"]));
        assert!(read("ubuntu-24.04", &h()).is_ok());
        assert!(read("default.yaml", &h()).is_ok());
        assert_eq!(
            read("nope", &h()).unwrap_err(),
            "template \"nope.yaml\" not found"
        );
        assert!(read("../x", &h()).unwrap_err().contains("must not contain"));
    }

    #[test]
    fn locators() {
        assert_eq!(
            parse_locator("template:debian-12").unwrap(),
            Locator::Template("debian-12".into())
        );
        assert_eq!(
            parse_locator("template://debian-12").unwrap(),
            Locator::Template("debian-12".into())
        );
        assert_eq!(parse_locator("-").unwrap(), Locator::Stdin);
        assert_eq!(
            parse_locator("./x.yaml").unwrap(),
            Locator::File("./x.yaml".into())
        );
        assert!(parse_locator("https://example.com/x.yaml").is_err());
        assert_eq!(instance_name_from_path("/t/My-VM.yaml").unwrap(), "my-vm");
        assert!(instance_name_from_path("/t/bad name.yaml").is_err());
    }
}
