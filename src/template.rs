//! Templates: building one from a setup plan, and the manifest that records a complete build.
//!
//! A template counts as ready only once its manifest exists: setup writes it after the VM
//! is provisioned and stopped, so a session never clones a half-built template.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, IoContext, Result};
use crate::lima::{Limactl, Resources};
use crate::names::TemplateName;
use crate::paths::HostPaths;
use crate::plan::{FileSource, SetupPlan};
use crate::signals;
use crate::ui::Ui;

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
}

impl Manifest {
    pub fn new(template: &TemplateName, project: &Path, config: &Config) -> Manifest {
        Manifest {
            template: template.to_string(),
            project: project.to_path_buf(),
            built_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
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
    paths.templates_dir().join(format!("{template}.json"))
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
    let Ok(dir) = fs::read_dir(paths.templates_dir()) else {
        return Vec::new();
    };
    let mut out: Vec<Manifest> = dir
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| fs::read_to_string(e.path()).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect();
    out.sort_by(|a, b| a.template.cmp(&b.template));
    out
}

pub fn write_manifest(paths: &HostPaths, manifest: &Manifest) -> Result<()> {
    let path = manifest_path(paths, &manifest.template);
    let dir = paths.templates_dir();
    fs::create_dir_all(&dir).io_context("create", &dir)?;
    let text = serde_json::to_string_pretty(manifest)
        .map_err(|e| Error::failure(format!("cannot encode the template record: {e}")))?;
    // Write then rename: a reader sees the old record or the new one, never half of one.
    let tmp = dir.join(format!(".{}.tmp", manifest.template));
    fs::write(&tmp, text).io_context("write", &tmp)?;
    fs::rename(&tmp, &path).io_context("write", &path)
}

pub fn remove_manifest(paths: &HostPaths, template: &str) -> Result<()> {
    let path = manifest_path(paths, template);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", &path, e)),
        _ => Ok(()),
    }
}

/// Runs a setup plan. On any failure (or a termination signal) the instance being built is
/// deleted, so a failed setup leaves nothing behind and an old template keeps working.
pub fn build(
    lima: &Limactl,
    ui: &Ui,
    paths: &HostPaths,
    plan: &SetupPlan,
    log_path: &Path,
) -> Result<Option<i32>> {
    let bundle = provisioning_bundle(plan)?;
    if let Some(dir) = log_path.parent() {
        fs::create_dir_all(dir).io_context("create", dir)?;
    }
    let log = File::create(log_path).io_context("create", log_path)?;
    let result = run_steps(lima, ui, paths, plan, &log, bundle);
    if let Err(err) = result {
        let _cleaning = signals::CleaningUp::begin();
        let step = ui.step(format!("removing the unfinished VM {}", plan.build));
        match lima.cleanup(&plan.cleanup, Some(&plan.build)) {
            Ok(()) => {
                step.done();
            }
            Err(e) => ui.warn(&format!(
                "could not remove {}: {e}\n  {}",
                plan.build,
                e.hint()
            )),
        }
        let hint = match err.hint() {
            Some(h) => format!("{h}\nfull output of the build: {}", log_path.display()),
            None => format!("full output of the build: {}", log_path.display()),
        };
        return Err(Error::failure(err.message().to_owned()).with_hint(hint));
    }
    result
}

fn run_steps(
    lima: &Limactl,
    ui: &Ui,
    paths: &HostPaths,
    plan: &SetupPlan,
    log: &File,
    bundle: String,
) -> Result<Option<i32>> {
    let total = 4 + usize::from(plan.is_rebuild());
    let steps = [
        ("creating the VM", &plan.create),
        ("booting the VM", &plan.start),
        (
            "provisioning: packages, tools, Claude Code, setup scripts",
            &plan.provision,
        ),
        ("stopping the VM", &plan.stop),
    ];
    let mut login = None;
    for (n, (what, call)) in steps.into_iter().enumerate() {
        check_signal()?;
        if call == &plan.stop {
            if let Some(call) = &plan.login {
                ui.info(
                    "logging in to Claude Code in the template (follow the instructions below)",
                );
                let status = lima.run_attached(call, Some(&plan.build))?;
                login = Some(crate::lima::exit_code(status));
                check_signal()?;
            }
        }
        let step = ui.step(format!("[{}/{total}] {what}", n + 1));
        if call == &plan.provision {
            lima.run_with_input(
                call,
                Some(&plan.build),
                log.try_clone().ok(),
                bundle.clone().into_bytes(),
            )?;
        } else {
            lima.run(call, Some(&plan.build), log.try_clone().ok())?;
        }
        step.done();
    }
    if plan.is_rebuild() {
        check_signal()?;
        let step = ui.step(format!("[{total}/{total}] replacing the old template"));
        for call in &plan.swap {
            lima.run(call, Some(plan.template.as_str()), log.try_clone().ok())?;
            if call.verb == crate::lima::Verb::Delete {
                // The old template is gone: its record must go too, whatever happens next.
                remove_manifest(paths, plan.template.as_str())?;
            }
        }
        step.done();
    }
    Ok(login)
}

/// The plan's files (the provisioning script last) as one script for `bash -s`.
fn provisioning_bundle(plan: &SetupPlan) -> Result<String> {
    let mut files = Vec::new();
    for f in &plan.files {
        let bytes = match &f.source {
            FileSource::Text(t) => t.clone().into_bytes(),
            FileSource::Copy(path) => fs::read(path).io_context("read", path)?,
        };
        files.push((f.name.clone(), bytes));
    }
    let entry = plan
        .files
        .last()
        .map(|f| f.name.as_str())
        .unwrap_or("provision.sh");
    Ok(crate::script::bundle(&files, entry))
}

fn check_signal() -> Result<()> {
    match signals::received() {
        Some(sig) => Err(Error::failure(format!(
            "interrupted by {}",
            signals::name(sig)
        ))),
        None => Ok(()),
    }
}
