//! Releases of claude-vm on GitHub (or GitHub Enterprise): finding one and installing it over
//! the running binary, with self_update doing the HTTP, the archive and the replacement.
//!
//! A release carries `claude-vm-<target triple>.tar.gz` (the binary at the archive root) and
//! `<that name>.sha256`; the archive is checked against the checksum before anything is
//! extracted, so a mismatch leaves the installed binary as it was.

pub mod notice;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use self_update::backends::github;
use semver::Version;

use crate::error::{Error, Result};

pub const API_VAR: &str = "CLAUDE_VM_UPDATE_API";
pub const REPO_VAR: &str = "CLAUDE_VM_UPDATE_REPO";
const DEFAULT_API: &str = "https://api.github.com";
const BIN: &str = "claude-vm";
/// No request may hang a command for long.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The running version.
pub fn current_version() -> Version {
    // CARGO_PKG_VERSION is semver by Cargo's own rules.
    Version::parse(env!("CARGO_PKG_VERSION")).unwrap_or_else(|_| Version::new(0, 0, 0))
}

/// The Rust target triple this binary was built for; release assets are named after it.
pub fn target() -> &'static str {
    self_update::get_target()
}

pub fn asset_name() -> String {
    format!("{BIN}-{}.tar.gz", target())
}

/// Where releases come from: a releases API and a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub api: String,
    pub owner: String,
    pub repo: String,
}

impl Source {
    /// `CLAUDE_VM_UPDATE_API` and `CLAUDE_VM_UPDATE_REPO`, defaulting to api.github.com and
    /// the repository in Cargo.toml.
    pub fn from_env(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Source> {
        let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let api = match set(API_VAR) {
            Some(url) => {
                let url = url.trim().trim_end_matches('/').to_owned();
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(Error::usage(format!(
                        "environment variable {API_VAR} is `{url}`, which is not an http(s) URL"
                    ))
                    .with_hint(format!(
                        "set {API_VAR} to the releases API base, e.g. https://github.example.com/api/v3, or unset it"
                    )));
                }
                url
            }
            None => DEFAULT_API.to_owned(),
        };
        let (owner, repo) = match set(REPO_VAR) {
            Some(value) => parse_repo(value.trim()).ok_or_else(|| {
                Error::usage(format!(
                    "environment variable {REPO_VAR} is `{value}`, which is not OWNER/NAME"
                ))
                .with_hint(format!(
                    "set {REPO_VAR} to e.g. claude-vm/claude-vm, or unset it"
                ))
            })?,
            None => default_repo(),
        };
        Ok(Source { api, owner, repo })
    }

    pub fn describe(&self) -> String {
        if self.api == DEFAULT_API {
            format!("{}/{}", self.owner, self.repo)
        } else {
            format!("{}/{} at {}", self.owner, self.repo, self.api)
        }
    }

    fn builder(&self) -> github::UpdateBuilder {
        let asset = asset_name();
        let wanted = asset.clone();
        let mut b = github::Update::configure();
        b.repo_owner(self.owner.clone())
            .repo_name(self.repo.clone())
            .api_base_url(self.api.clone())
            .bin_name(BIN)
            .target(target())
            .current_version(current_version().to_string())
            // Exactly our asset: a substring match would also take the `.sha256` file.
            .asset_matcher(move |assets| assets.iter().find(|a| a.name() == wanted).cloned())
            .checksum_from_asset(format!("{asset}.sha256"))
            .unattended()
            .show_download_progress(false)
            .timeout(TIMEOUT)
            .auth_token_from_env();
        b
    }

    /// The version of the newest published release.
    pub fn latest(&self) -> Result<Version> {
        let releases = self
            .builder()
            .build()
            .and_then(|u| u.get_latest_release())
            .map_err(|e| self.error("find the latest release", e))?;
        let release = releases.latest().ok_or_else(|| {
            Error::failure(format!("{} has no releases", self.describe()))
                .with_hint(format!("check {REPO_VAR} and {API_VAR}"))
        })?;
        release_version(release)
    }

    /// The release of `version` (tag `vX.Y.Z`, or `X.Y.Z` as a fallback).
    pub fn release(&self, version: &Version) -> Result<Release> {
        let update = self
            .builder()
            .build()
            .map_err(|e| self.error("prepare the update", e))?;
        let mut last = None;
        for tag in [format!("v{version}"), version.to_string()] {
            match update.get_release_version(&tag) {
                Ok(r) => {
                    let asset = asset_name();
                    return Ok(Release {
                        version: release_version(&r)?,
                        tag,
                        has_asset: r.assets().iter().any(|a| a.name() == asset),
                    });
                }
                Err(e @ self_update::Error::NotFound { .. }) => last = Some(e),
                Err(e) => return Err(self.error(&format!("find release {tag}"), e)),
            }
        }
        let detail = last.map(|e| format!(": {e}")).unwrap_or_default();
        Err(Error::usage(format!(
            "{} has no release {version}{detail}",
            self.describe()
        ))
        .with_hint("`claude-vm update --check` shows the latest release"))
    }

    /// Downloads `release`, checks it against its checksum and replaces the running binary.
    pub fn install(&self, release: &Release) -> Result<PathBuf> {
        let exe = std::env::current_exe()
            .map_err(|e| Error::failure(format!("cannot locate the running claude-vm: {e}")))?;
        let expected = release.version.clone();
        self.builder()
            .release_tag(release.tag.clone())
            .bin_install_path(&exe)
            .verify_archive(check_archive)
            .verify_binary(move |new| check_binary(new, &expected))
            .build()
            .and_then(|u| u.update())
            .map_err(|e| self.error(&format!("install claude-vm {}", release.version), e))?;
        Ok(exe)
    }

    fn error(&self, action: &str, err: self_update::Error) -> Error {
        use self_update::Error as E;
        let source = self.describe();
        match err {
            E::ChecksumMismatch {
                ref expected,
                ref computed,
                ..
            } => Error::failure(format!(
                "cannot {action}: {} does not match its published checksum (expected {expected}, got {computed}); the installed binary was not changed",
                asset_name()
            ))
            .with_hint("try again later; if it persists, report it: the release may be damaged"),
            E::ChecksumSourceInvalid { ref reason, .. } => Error::failure(format!(
                "cannot {action}: no checksum to verify {} against ({reason}); the installed binary was not changed",
                asset_name()
            ))
            .with_hint("the release must carry `<asset>.sha256`; report it to the release's maintainers"),
            E::NoReleaseFound { .. } => Error::failure(format!(
                "cannot {action}: the release has no {} for this machine",
                asset_name()
            ))
            .with_hint("build from source with ./install.sh in a checkout"),
            E::InstallPathNotWritable { .. } => Error::failure(format!("cannot {action}: {err}"))
                .with_hint("run the update as the user who owns the binary, or reinstall with install.sh --dir DIR"),
            E::ArchiveVerificationRejected { .. } => Error::failure(format!("cannot {action}: {err}"))
                .with_hint("the release is malformed or tampered with; report it to the release's maintainers"),
            E::VerificationRejected { .. } => Error::failure(format!(
                "cannot {action}: {err}; the installed binary was not changed"
            ))
            .with_hint("the release's binary does not run on this machine; build from source with ./install.sh"),
            other => Error::failure(format!("cannot {action} from {source}: {other}")).with_hint(
                format!("check the network; for GitHub Enterprise set {API_VAR} (and {REPO_VAR})"),
            ),
        }
    }
}

/// A release as claude-vm needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub version: Version,
    /// The git tag it was found under, which `install` asks for again.
    pub tag: String,
    /// Whether it has a build for this machine.
    pub has_asset: bool,
}

fn release_version(r: &self_update::Release) -> Result<Version> {
    Version::parse(r.version()).map_err(|e| {
        Error::failure(format!(
            "the release `{}` does not have a version number: {e}",
            r.version()
        ))
    })
}

/// `1.2.3` or `v1.2.3`, as `--version` takes it.
pub fn parse_version(raw: &str) -> Result<Version> {
    let bare = raw.trim().strip_prefix('v').unwrap_or(raw.trim());
    Version::parse(bare).map_err(|e| {
        Error::usage(format!("invalid --version `{raw}`: {e}"))
            .with_hint("give a release number such as 0.2.0 or v0.2.0")
    })
}

fn parse_repo(value: &str) -> Option<(String, String)> {
    let (owner, repo) = value.split_once('/')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    (ok(owner) && ok(repo)).then(|| (owner.to_owned(), repo.to_owned()))
}

/// The repository named in Cargo.toml.
fn default_repo() -> (String, String) {
    let url = env!("CARGO_PKG_REPOSITORY");
    url.strip_prefix("https://github.com/")
        .and_then(parse_repo)
        .unwrap_or_else(|| ("claude-vm".to_owned(), "claude-vm".to_owned()))
}

/// The archive's `claude-vm` entry must be a plain file: a link (symbolic or hard), a
/// directory or a device would be extracted as such, run by the version check and installed
/// in place of claude-vm. Checked before anything is extracted.
fn check_archive(path: &Path) -> self_update::Result<()> {
    let reject = |why: String| {
        Err(self_update::Error::archive_verification_rejected(format!(
            "the release archive {why}; nothing was installed"
        )))
    };
    let file = std::fs::File::open(path).map_err(self_update::Error::Io)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let entries = archive.entries().map_err(self_update::Error::Io)?;
    let mut found = false;
    for entry in entries {
        let entry = entry.map_err(self_update::Error::Io)?;
        let Ok(name) = entry.path() else {
            continue;
        };
        if name.strip_prefix(".").unwrap_or(&name) != Path::new(BIN) {
            continue;
        }
        let kind = entry.header().entry_type();
        if kind != tar::EntryType::Regular {
            return reject(format!(
                "holds `{BIN}` as a {} instead of a regular file",
                entry_kind(kind)
            ));
        }
        found = true;
    }
    if found {
        Ok(())
    } else {
        reject(format!("has no `{BIN}` at its root"))
    }
}

fn entry_kind(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Directory => "directory",
        tar::EntryType::Char | tar::EntryType::Block => "device",
        tar::EntryType::Fifo => "FIFO",
        _ => "special entry",
    }
}

/// The new binary must be a regular file, run here and say it is the release it claims to be.
fn check_binary(path: &Path, expected: &Version) -> self_update::Result<()> {
    if !std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file()) {
        return Err(self_update::Error::verification_rejected(
            "the new binary is not a regular file",
        ));
    }
    let out = Command::new(path).arg("--version").output().map_err(|e| {
        self_update::Error::verification_rejected(format!("the new binary does not run: {e}"))
    })?;
    let said = String::from_utf8_lossy(&out.stdout);
    let want = format!("{BIN} {expected}");
    if out.status.success() && said.trim() == want {
        Ok(())
    } else {
        Err(self_update::Error::verification_rejected(format!(
            "the new binary says `{}` instead of `{want}`",
            said.trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn source_defaults_to_github_and_cargo_repository() {
        let s = Source::from_env(&env(&[])).unwrap();
        assert_eq!(s.api, "https://api.github.com");
        assert_eq!(
            (s.owner.as_str(), s.repo.as_str()),
            ("claude-vm", "claude-vm")
        );
    }

    #[test]
    fn source_from_the_environment() {
        let s = Source::from_env(&env(&[
            (API_VAR, "https://ghe.example.com/api/v3/"),
            (REPO_VAR, "me/fork.rs"),
        ]))
        .unwrap();
        assert_eq!(s.api, "https://ghe.example.com/api/v3");
        assert_eq!((s.owner.as_str(), s.repo.as_str()), ("me", "fork.rs"));
        assert!(s.describe().contains("ghe.example.com"));
    }

    #[test]
    fn bad_source_variables_are_named() {
        let e = Source::from_env(&env(&[(API_VAR, "ftp://x")])).unwrap_err();
        assert!(e.message().contains(API_VAR), "{}", e.message());
        assert_eq!(e.exit_code(), 2);
        for bad in ["noslash", "a/b/c", "/x", "a b/c"] {
            let lookup = move |k: &str| (k == REPO_VAR).then(|| bad.to_owned());
            let e = Source::from_env(&lookup).unwrap_err();
            assert!(e.message().contains(REPO_VAR), "{bad}: {}", e.message());
        }
    }

    #[test]
    fn versions_with_or_without_v() {
        assert_eq!(parse_version("v1.2.3").unwrap(), Version::new(1, 2, 3));
        assert_eq!(parse_version("1.2.3").unwrap(), Version::new(1, 2, 3));
        let e = parse_version("latest").unwrap_err();
        assert!(e.message().contains("--version"), "{}", e.message());
    }

    #[test]
    fn asset_is_named_after_the_target_triple() {
        assert_eq!(asset_name(), format!("claude-vm-{}.tar.gz", target()));
        assert!(target().contains('-'), "{}", target());
    }
}
