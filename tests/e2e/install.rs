//! install.sh, run by /bin/sh: the download path against a release server on 127.0.0.1
//! (checksum checked, PATH and Lima hints); the source path's build runs in `.ci/run`.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::release_server::*;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/install.sh");

/// install.sh copied out of the checkout (so it downloads), with a HOME of its own.
struct Outside {
    tmp: tempfile::TempDir,
    server: ReleaseServer,
}

impl Outside {
    fn new() -> Outside {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::copy(SCRIPT, tmp.path().join("install.sh")).unwrap();
        std::fs::create_dir_all(tmp.path().join("home")).unwrap();
        Outside {
            tmp,
            server: ReleaseServer::start(),
        }
    }

    fn home(&self) -> PathBuf {
        self.tmp.path().join("home")
    }

    fn run(&self, args: &[&str], path: &str) -> Output {
        Command::new("/bin/sh")
            .arg(self.tmp.path().join("install.sh"))
            .args(args)
            .current_dir(self.tmp.path())
            .env_clear()
            .env("HOME", self.home())
            .env("PATH", path)
            .env(
                "CLAUDE_VM_DOWNLOAD_BASE",
                format!("{}/rel", self.server.base),
            )
            .output()
            .expect("run install.sh")
    }

    /// Serves a build claiming `version` at GitHub's download paths for `tag`.
    fn publish(&self, tag: &str, version: &str, latest: bool, good_sum: bool) {
        let name = asset_name();
        let bytes = archive(self.tmp.path(), version);
        let sum = if good_sum {
            sha256_line(&bytes, &name)
        } else {
            sha256_line(b"tampered", &name)
        };
        let mut prefixes = vec![format!("/rel/download/{tag}")];
        if latest {
            prefixes.push("/rel/latest/download".to_owned());
        }
        for p in prefixes {
            self.server
                .route(&format!("{p}/{name}"), 200, bytes.clone());
            self.server
                .route(&format!("{p}/{name}.sha256"), 200, sum.clone());
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const PLAIN_PATH: &str = "/usr/bin:/bin";

#[test]
fn downloads_verifies_and_installs_to_local_bin_with_hints() {
    let o = Outside::new();
    o.publish("v9.9.9", "9.9.9", true, true);
    let out = o.run(&[], PLAIN_PATH);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let installed = o.home().join(".local/bin/claude-vm");
    assert_eq!(std::fs::read(&installed).unwrap(), new_binary("9.9.9"));
    // The drop-in `claude` for the Agent SDKs, a relative link that follows updates.
    let drop_in = o.home().join(".local/bin/claude-vm-claude");
    assert_eq!(
        std::fs::read_link(&drop_in).unwrap(),
        std::path::Path::new("claude-vm")
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "installed claude-vm 9.9.9 to {}",
            installed.display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("is not on your PATH"), "{stdout}");
    assert!(
        stdout.contains("brew install lima"),
        "no limactl here: {stdout}"
    );
    assert!(o
        .server
        .requests()
        .contains(&format!("/rel/latest/download/{}.sha256", asset_name())));
}

#[test]
fn a_version_and_a_dir_and_no_hints_when_all_is_there() {
    let o = Outside::new();
    o.publish("v0.0.5", "0.0.5", false, true);
    let bin = o.tmp.path().join("tools");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("limactl"), "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("limactl"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{PLAIN_PATH}", bin.display());
    // A file of the drop-in's name that is not a link is the user's: left alone.
    std::fs::write(bin.join("claude-vm-claude"), "mine\n").unwrap();
    for v in ["0.0.5", "v0.0.5"] {
        let out = o.run(&["--version", v, "--dir", bin.to_str().unwrap()], &path);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(
            std::fs::read(bin.join("claude-vm")).unwrap(),
            new_binary("0.0.5")
        );
        assert_eq!(
            std::fs::read_to_string(bin.join("claude-vm-claude")).unwrap(),
            "mine\n"
        );
        let stdout = text(&out.stdout);
        assert!(
            !stdout.contains("PATH") && !stdout.contains("Lima"),
            "{stdout}"
        );
    }
}

#[test]
fn a_bad_checksum_or_a_missing_release_installs_nothing() {
    let o = Outside::new();
    o.publish("v9.9.9", "9.9.9", true, false);
    let dir = o.tmp.path().join("bin");
    let out = o.run(&["--dir", dir.to_str().unwrap()], PLAIN_PATH);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("does not match its checksum"), "{err}");
    assert!(err.contains("nothing was installed"), "{err}");
    assert!(!dir.join("claude-vm").exists());

    let out = o.run(
        &["--version", "1.2.3", "--dir", dir.to_str().unwrap()],
        PLAIN_PATH,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot download"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.join("claude-vm").exists());

    let out = o.run(&["--debug"], PLAIN_PATH);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--debug builds from source"));
    let out = o.run(&["--bogus"], PLAIN_PATH);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown argument: --bogus"));
}

/// The source path builds with cargo, which `.ci/run` exercises (`./install.sh --debug
/// --dir ...` right after `cargo test`, so the build is already fresh); here only what it
/// refuses.
#[test]
fn from_a_source_checkout_a_release_version_is_refused() {
    let refused = Command::new("/bin/sh")
        .arg(SCRIPT)
        .args(["--version", "0.0.1"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let err = text(&refused.stderr);
    assert!(err.contains("this is a source checkout"), "{err}");
    assert!(err.contains("git checkout v0.0.1"), "{err}");
}
