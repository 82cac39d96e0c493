//! `claude-vm update` against a releases API on 127.0.0.1: a copy of the real binary
//! replaces itself, and keeps itself when the checksum does not match.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::release_server::*;
use crate::support::CLAUDE_VM;

const CURRENT: &str = env!("CARGO_PKG_VERSION");

/// A copy of claude-vm installed in a directory of its own, with its own HOME.
struct Installed {
    tmp: tempfile::TempDir,
    exe: PathBuf,
    original: Vec<u8>,
    server: ReleaseServer,
}

impl Installed {
    fn new() -> Installed {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(tmp.path().join("home")).unwrap();
        let exe = bin.join("claude-vm");
        std::fs::copy(CLAUDE_VM, &exe).unwrap();
        let original = std::fs::read(&exe).unwrap();
        Installed {
            tmp,
            exe,
            original,
            server: ReleaseServer::start(),
        }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.args(args)
            .current_dir(self.dir())
            .env_clear()
            .env("HOME", self.dir().join("home"))
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("CLAUDE_VM_UPDATE_API", &self.server.base)
            .env("CLAUDE_VM_UPDATE_REPO", REPO)
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .expect("run the installed claude-vm")
    }

    fn version(&self) -> String {
        let out = Command::new(&self.exe).arg("--version").output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn unchanged(&self) -> bool {
        std::fs::read(&self.exe).unwrap() == self.original
    }

    /// Nothing but the binary in its directory: no temporary files left by an update.
    fn bin_dir_is_clean(&self) -> bool {
        let names: Vec<_> = std::fs::read_dir(self.exe.parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names == ["claude-vm"]
    }
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

#[test]
fn update_replaces_the_binary_with_the_verified_latest_release() {
    let i = Installed::new();
    publish_build(&i.server, i.dir(), "v9.9.9", "9.9.9", true);
    assert_eq!(i.version(), format!("claude-vm {CURRENT}"));

    let out = i.run(&["update", "-y"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("claude-vm {CURRENT} -> 9.9.9")),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(std::fs::read(&i.exe).unwrap(), new_binary("9.9.9"));
    assert_eq!(i.version(), "claude-vm 9.9.9");
    assert!(i.bin_dir_is_clean());
    let asset = asset_name();
    let reqs = i.server.requests();
    for path in [
        format!("/repos/{REPO}/releases/latest"),
        format!("/repos/{REPO}/releases/tags/v9.9.9"),
        format!("/assets/v9.9.9/{asset}.sha256"),
        format!("/assets/v9.9.9/{asset}"),
    ] {
        assert!(reqs.contains(&path), "{path} not requested: {reqs:#?}");
    }
    let sum_at = reqs.iter().position(|p| p.ends_with(".sha256")).unwrap();
    let asset_at = reqs.iter().position(|p| p.ends_with(".tar.gz")).unwrap();
    assert!(
        sum_at < asset_at,
        "the checksum is known before the download"
    );
}

#[test]
fn a_checksum_mismatch_leaves_the_old_binary_in_place() {
    let i = Installed::new();
    let name = asset_name();
    let bytes = archive(i.dir(), "9.9.9");
    let wrong = sha256_line(b"something else", &name);
    i.server.publish(
        "v9.9.9",
        &[(name.clone(), bytes), (format!("{name}.sha256"), wrong)],
        true,
    );
    let out = i.run(&["update", "-y"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    eprintln!("MISMATCH>>{err}<<");
    assert!(err.contains("checksum"), "{err}");
    assert!(err.contains("was not changed"), "{err}");
    assert!(
        i.unchanged(),
        "the binary was replaced despite the mismatch"
    );
    assert_eq!(i.version(), format!("claude-vm {CURRENT}"));
    assert!(i.bin_dir_is_clean());
}

#[test]
fn a_release_without_a_checksum_file_is_refused() {
    let i = Installed::new();
    let name = asset_name();
    let bytes = archive(i.dir(), "9.9.9");
    i.server.publish("v9.9.9", &[(name, bytes)], true);
    let out = i.run(&["update", "-y"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("checksum"),
        "{}",
        text(&out.stderr)
    );
    assert!(i.unchanged());
}

#[test]
fn check_only_reports() {
    let i = Installed::new();
    publish_build(&i.server, i.dir(), "v9.9.9", "9.9.9", true);
    let out = i.run(&["update", "--check"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("claude-vm 9.9.9 is available (this is {CURRENT}): run `claude-vm update`\n")
    );
    assert!(i.unchanged());
    assert!(
        !i.server
            .requests()
            .iter()
            .any(|p| p.starts_with("/assets/")),
        "--check downloads nothing"
    );

    let i = Installed::new();
    publish_build(&i.server, i.dir(), &format!("v{CURRENT}"), CURRENT, true);
    let out = i.run(&["update", "--check"]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("is up to date"),
        "{}",
        text(&out.stdout)
    );
    let out = i.run(&["update", "-y"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("is up to date"));
    assert!(i.unchanged());
}

#[test]
fn a_pinned_version_with_or_without_v_and_either_tag_style() {
    let i = Installed::new();
    publish_build(&i.server, i.dir(), "v9.9.9", "9.9.9", true);
    publish_build(&i.server, i.dir(), "v0.0.5", "0.0.5", false);
    publish_build(&i.server, i.dir(), "0.0.7", "0.0.7", false);

    let out = i.run(&["update", "--version", "0.0.5", "-y"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        i.version(),
        "claude-vm 0.0.5",
        "an older pinned release installs"
    );

    // The replaced "binary" is a script now; start again from the real one.
    let i2 = Installed::new();
    publish_build(&i2.server, i2.dir(), "0.0.7", "0.0.7", false);
    let out = i2.run(&["update", "--version", "v0.0.7", "-y"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(i2.version(), "claude-vm 0.0.7");
    let reqs = i2.server.requests();
    assert!(reqs.contains(&format!("/repos/{REPO}/releases/tags/v0.0.7")));
    assert!(reqs.contains(&format!("/repos/{REPO}/releases/tags/0.0.7")));
}

#[test]
fn refusals_and_bad_input_change_nothing() {
    let i = Installed::new();
    publish_build(&i.server, i.dir(), "v9.9.9", "9.9.9", true);

    let out = i.run(&["update"]);
    assert_eq!(out.status.code(), Some(2), "no terminal, no -y");
    assert!(text(&out.stderr).contains("-y"), "{}", text(&out.stderr));

    let out = i.run(&["update", "--version", "8.8.8", "-y"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("has no release 8.8.8"),
        "{}",
        text(&out.stderr)
    );

    let out = i.run(&["update", "--version", "latest"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--version"),
        "{}",
        text(&out.stderr)
    );

    let out = i
        .command(&["update", "--check"])
        .env("CLAUDE_VM_UPDATE_REPO", "not-a-repo")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("CLAUDE_VM_UPDATE_REPO"),
        "{}",
        text(&out.stderr)
    );

    let out = i.run(&["--dry-run", "update"]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).starts_with("would replace"),
        "{}",
        text(&out.stdout)
    );

    // A release without a build for this machine.
    i.server.publish(
        "v9.9.10",
        &[("claude-vm-sparc-sun-solaris.tar.gz".into(), vec![1])],
        true,
    );
    let out = i.run(&["update", "-y"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no build for this machine"),
        "{}",
        text(&out.stderr)
    );

    assert!(i.unchanged());
    assert!(i.bin_dir_is_clean());
}

#[test]
fn an_unreachable_api_is_a_clear_failure() {
    let i = Installed::new();
    let out = i
        .command(&["update", "--check"])
        .env("CLAUDE_VM_UPDATE_API", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    eprintln!("UNREACH>>{err}<<");
    assert!(
        err.contains("acme/claude-vm at http://127.0.0.1:9"),
        "{err}"
    );
    assert!(err.contains("CLAUDE_VM_UPDATE_API"), "{err}");
}

/// An archive whose `claude-vm` entry is built by `make` in a fresh stage directory.
fn crafted_archive(
    dir: &Path,
    name: &str,
    make: impl FnOnce(&Path) -> Vec<&'static str>,
) -> Vec<u8> {
    let stage = dir.join(format!("stage-{name}"));
    std::fs::create_dir_all(&stage).unwrap();
    let members = make(&stage);
    let tarball = dir.join(format!("{name}.tar.gz"));
    let status = Command::new("tar")
        .arg("czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&stage)
        .args(&members)
        .status()
        .expect("run tar");
    assert!(status.success());
    std::fs::read(&tarball).unwrap()
}

#[test]
fn a_release_whose_binary_is_a_link_or_not_a_file_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let i = Installed::new();
    // What a link would point at: a program that passes the version check.
    let elsewhere = i.dir().join("elsewhere.sh");
    std::fs::write(&elsewhere, new_binary("9.9.9")).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o755)).unwrap();
    let target = elsewhere.clone();
    let variants: Vec<(&str, Vec<u8>)> = vec![
        (
            "symbolic link",
            crafted_archive(i.dir(), "symlink", |s| {
                std::os::unix::fs::symlink(&target, s.join("claude-vm")).unwrap();
                vec!["claude-vm"]
            }),
        ),
        (
            "hard link",
            crafted_archive(i.dir(), "hardlink", |s| {
                std::fs::write(s.join("a"), new_binary("9.9.9")).unwrap();
                std::fs::set_permissions(s.join("a"), std::fs::Permissions::from_mode(0o755))
                    .unwrap();
                std::fs::hard_link(s.join("a"), s.join("claude-vm")).unwrap();
                vec!["a", "claude-vm"]
            }),
        ),
        (
            "directory",
            crafted_archive(i.dir(), "dir", |s| {
                std::fs::create_dir(s.join("claude-vm")).unwrap();
                vec!["claude-vm"]
            }),
        ),
    ];
    let name = asset_name();
    for (kind, bytes) in variants {
        let sum = sha256_line(&bytes, &name);
        i.server.publish(
            "v9.9.9",
            &[(name.clone(), bytes), (format!("{name}.sha256"), sum)],
            true,
        );
        let out = i.run(&["update", "-y"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{kind}: {err}");
        assert!(
            err.contains(&format!("as a {kind} instead of a regular file")),
            "{kind}: {err}"
        );
        assert!(i.unchanged(), "{kind}: the binary was replaced");
        assert!(
            std::fs::symlink_metadata(&i.exe)
                .unwrap()
                .file_type()
                .is_file(),
            "{kind}"
        );
        assert!(i.bin_dir_is_clean(), "{kind}");
    }
}
