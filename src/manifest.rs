//! The template's manifest: the record of a complete build (what built it, with which flags),
//! in `templates/<template>.json`. A template counts as ready only once it exists.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::lima::Resources;
use crate::names::TemplateName;
use crate::paths::HostPaths;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub template: String,
    /// The main repository the template belongs to.
    pub project: PathBuf,
    /// Seconds since the epoch.
    pub built_at: u64,
    pub claude_vm_version: String,
    pub image: String,
    pub disk: u32,
    pub memory: u32,
    pub cpus: u32,
    #[serde(default)]
    pub tools: Vec<String>,
    /// What built it (`fingerprint.rs`); none from claude-vm versions before fingerprints.
    #[serde(default)]
    pub fingerprint: Option<Fingerprint>,
    /// The `claude-vm setup` flags it was built with, so a session can tell whether it is
    /// out of date and rebuild it the same way.
    #[serde(default)]
    pub setup_flags: SetupFlags,
    /// The shared base it was cloned from; none for a template built in one layer (or
    /// imported: its base stayed on the machine that built it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseRef>,
}

/// Which shared base a template was cloned from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseRef {
    pub name: String,
    /// Its fingerprint's digest (the template's own fingerprint holds its parts).
    pub digest: String,
}

/// The record of a complete shared base, in `templates/bases/<name>.json`: written once it is
/// provisioned and stopped, so a base without one is unfinished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseRecord {
    pub name: String,
    pub fingerprint: Fingerprint,
    /// Seconds since the epoch.
    pub created: u64,
    pub claude_vm_version: String,
    pub image: String,
    pub tools: Vec<String>,
    /// The Claude Code version its build reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claude_code: Option<String>,
}

fn base_path(paths: &HostPaths, base: &str) -> PathBuf {
    paths.bases_dir().join(crate::filenames::base_record(base))
}

pub fn read_base(paths: &HostPaths, base: &str) -> Result<Option<BaseRecord>> {
    let path = base_path(paths, base);
    match fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::failure(format!(
                "the shared base record {} is damaged: {e}",
                path.display()
            ))
            .with_hint("remove it; the next `claude-vm setup` builds the base again")
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", &path, e)),
    }
}

pub fn write_base(paths: &HostPaths, record: &BaseRecord) -> Result<()> {
    let text = serde_json::to_string_pretty(record)
        .map_err(|e| Error::failure(format!("cannot encode the base record: {e}")))?;
    let name = crate::filenames::base_record(&record.name);
    crate::atomic::write(&paths.bases_dir(), &name, text.as_bytes())
}

pub fn remove_base(paths: &HostPaths, base: &str) -> Result<()> {
    let path = base_path(paths, base);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", &path, e)),
        _ => Ok(()),
    }
}

/// Every shared base's record, by name.
pub fn all_bases(paths: &HostPaths) -> Vec<BaseRecord> {
    let mut out: Vec<BaseRecord> = crate::atomic::written(&paths.bases_dir(), "json")
        .into_iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The projects whose templates were cloned from `base`, from their manifests.
pub fn users_of<'a>(manifests: &'a [Manifest], base: &str) -> Vec<&'a Manifest> {
    manifests
        .iter()
        .filter(|m| m.base.as_ref().is_some_and(|b| b.name == base))
        .collect()
}

/// Flags given to `claude-vm setup` (paths absolute).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupFlags {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup_scripts: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup_mounts: Vec<String>,
    /// `--docker`, `--node`, ... (`--all` recorded as every tool).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
}

impl Manifest {
    /// The digest of what built the template (None: built by a claude-vm that recorded none):
    /// what pre-booted clones are matched against.
    pub fn fingerprint_digest(&self) -> Option<String> {
        self.fingerprint.as_ref().map(|f| f.digest.clone())
    }

    pub fn new(
        template: &TemplateName,
        project: &Path,
        config: &Config,
        fingerprint: Option<Fingerprint>,
        setup_flags: SetupFlags,
    ) -> Manifest {
        Manifest {
            template: template.to_string(),
            project: project.to_path_buf(),
            built_at: crate::clock::now(),
            claude_vm_version: env!("CARGO_PKG_VERSION").to_owned(),
            image: config.vm.image.clone(),
            disk: config.vm.disk,
            memory: config.vm.memory,
            cpus: config.vm.cpus,
            // What the template contains: the enabled tools and what they brought along.
            tools: crate::plan::template_tools(config)
                .iter()
                .map(|t| t.name.clone())
                .collect(),
            fingerprint,
            setup_flags,
            base: None,
        }
    }

    pub fn resources(&self) -> Resources {
        Resources {
            cpus: Some(self.cpus),
            memory_gib: Some(self.memory),
            disk_gib: Some(self.disk),
        }
    }
}

pub fn manifest_path(paths: &HostPaths, template: &str) -> PathBuf {
    paths
        .templates_dir()
        .join(crate::filenames::manifest(template))
}

pub fn read_manifest(paths: &HostPaths, template: &str) -> Result<Option<Manifest>> {
    let path = manifest_path(paths, template);
    match fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::failure(format!(
                "the template record {} is damaged: {e}",
                path.display()
            ))
            .with_hint("rebuild the template with `claude-vm setup`")
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", &path, e)),
    }
}

/// Every template record, for `list` and `clean-all`.
pub fn all_manifests(paths: &HostPaths) -> Vec<Manifest> {
    let mut out: Vec<Manifest> = crate::atomic::written(&paths.templates_dir(), "json")
        .into_iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect();
    out.sort_by(|a, b| a.template.cmp(&b.template));
    out
}

pub fn write_manifest(paths: &HostPaths, manifest: &Manifest) -> Result<()> {
    let text = serde_json::to_string_pretty(manifest)
        .map_err(|e| Error::failure(format!("cannot encode the template record: {e}")))?;
    // Write then rename: a reader sees the old record or the new one, never half of one.
    let name = crate::filenames::manifest(&manifest.template);
    crate::atomic::write(&paths.templates_dir(), &name, text.as_bytes())
}

pub fn remove_manifest(paths: &HostPaths, template: &str) -> Result<()> {
    let path = manifest_path(paths, template);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", &path, e)),
        _ => Ok(()),
    }
}
