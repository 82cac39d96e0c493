//! What every command and workflow starts from: the host's paths, the project, the UI, the
//! Lima client, and the trust checks made so far.

use std::path::PathBuf;
use std::sync::Mutex;

use crate::cli::{GlobalOpts, SessionOpts};
use crate::config::{self as cfg, Loaded, Overrides, Review};
use crate::error::{Error, IoContext, Result};
use crate::lima::{self, Limactl};
use crate::names::{self, TemplateName};
use crate::paths::HostPaths;
use crate::project::Project;
use crate::ui::Ui;

/// What every command starts from.
pub struct Context {
    pub paths: HostPaths,
    pub cwd: PathBuf,
    pub project: Project,
    pub ui: Ui,
    pub lima: Limactl,
    pub dry_run: bool,
    /// How the worktree's main repository compared with the one remembered for it.
    pub main_repo: crate::worktrees::Pin,
    /// Files already allowed by --yes (warned about once).
    allowed: Mutex<Vec<PathBuf>>,
    /// Every reviewed file that passed the trust check, with the digest it passed with.
    checked: Mutex<Vec<(PathBuf, String)>>,
}

impl Context {
    /// The host folders a VM of this project can write, where a path may be swapped for a
    /// link at any moment: the project, a worktree's main repository, writable mounts.
    pub fn agent_writable(&self, config: &cfg::Config) -> Vec<PathBuf> {
        std::iter::once(self.project.root.clone())
            .chain(self.project.main_root.clone())
            .chain(
                config
                    .mounts
                    .iter()
                    .filter(|m| m.writable)
                    .map(|m| m.location.clone()),
            )
            .collect()
    }

    /// `accept_main_repo`: a worktree's changed main repository is taken as the new one
    /// (`claude-vm trust`); otherwise it stops the command.
    pub(crate) fn new(global: &GlobalOpts, accept_main_repo: bool) -> Result<Context> {
        let cwd = std::env::current_dir().io_context("read the current directory", ".")?;
        Context::in_dir(global, accept_main_repo, cwd)
    }

    /// As if claude-vm were run in `cwd` (the web server looks at many projects).
    pub(crate) fn in_dir(
        global: &GlobalOpts,
        accept_main_repo: bool,
        cwd: PathBuf,
    ) -> Result<Context> {
        let paths = HostPaths::from_env()?;
        let project = Project::discover(&cwd)?;
        let main_repo = crate::worktrees::pin(&paths, &project, accept_main_repo, !global.dry_run)?;
        Ok(Context {
            main_repo,
            paths,
            cwd,
            project,
            ui: Ui::new(global.quiet, global.verbose, global.json),
            lima: Limactl::new(
                global.verbose,
                lima::Timeouts::from_env().map_err(|e| {
                    Error::usage(e).with_hint(
                        "set it like CLAUDE_VM_LIMA_TIMEOUTS=\"start=1800,list=60\" (seconds, 0 = no limit)",
                    )
                })?,
            )
            .with_terminal(crate::ui::lima_terminal()),
            dry_run: global.dry_run,
            allowed: Mutex::new(Vec::new()),
            checked: Mutex::new(Vec::new()),
        })
    }

    /// Before a command drives Lima (after its input is validated: bad input touches no VM):
    /// Lima is there and new enough (cached), rebuilds interrupted mid-swap are settled, and
    /// VMs left by dead claude-vm processes are reaped (no limactl call when there are none).
    pub fn prepare_lima(&self) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        lima::detect::ensure(&self.lima, &self.paths.lima_version_cache())?;
        // A rebuild stopped mid-swap is settled before anything looks at templates.
        crate::swap::recover_all(&self.lima, &self.ui, &self.paths)?;
        crate::reap::delete_orphans(&self.lima, &self.ui, &self.paths)
    }

    /// Refuses project files that widen the sandbox without approval (unless `yes`).
    pub fn enforce_trust(&self, loaded: &Loaded, extra: &[Review], yes: bool) -> Result<()> {
        let all: Vec<Review> = loaded.reviews.iter().chain(extra).cloned().collect();
        self.enforce_reviews(&all, yes)
    }

    pub fn enforce_reviews(&self, reviews: &[Review], yes: bool) -> Result<()> {
        let store = crate::trust::Store::new(&self.paths);
        {
            let mut checked = self
                .checked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            checked.extend(reviews.iter().map(|r| (r.path.clone(), r.digest.clone())));
        }
        let pending = crate::trust::unapproved(&store, reviews);
        if pending.is_empty() {
            return Ok(());
        }
        if !yes {
            return Err(crate::trust::refusal(&pending));
        }
        let mut allowed = self
            .allowed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (r, _) in pending {
            if !allowed.contains(&r.path) {
                self.ui.warn(&format!(
                    "{} widens the sandbox and is not approved; used this once because of --yes:\n  - it {}",
                    r.path.display(),
                    r.widens.join("\n  - it ")
                ));
                allowed.push(r.path.clone());
            }
        }
        Ok(())
    }

    pub fn load_config(&self, overrides: &Overrides) -> Result<Loaded> {
        let env = |name: &str| std::env::var(name).ok();
        cfg::load(&cfg::Inputs {
            paths: &self.paths,
            project: &self.project,
            cwd: &self.cwd,
            env: &env,
            overrides,
        })
    }

    /// The digest the trust check saw for `path` (a project script leading out of the
    /// project), so a later copy can insist on that same content.
    pub fn checked_digest(&self, path: &std::path::Path) -> Option<String> {
        let checked = self
            .checked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        checked
            .iter()
            .rev()
            .find(|(p, _)| p == path)
            .map(|(_, d)| d.clone())
    }

    pub fn template(&self) -> Result<TemplateName> {
        names::template_name(self.project.identity(), &self.paths.lima_home)
    }
}

/// Session flags as configuration overrides.
pub(crate) fn overrides(opts: &SessionOpts) -> Overrides {
    Overrides {
        disk: opts.resources.disk,
        memory: opts.resources.memory,
        cpus: opts.resources.cpus,
        mounts: opts.mounts.clone(),
        runtime_scripts: opts.runtime_scripts.clone(),
        env: opts.env.clone(),
        env_files: opts.env_files.clone(),
        inherit_env: opts.inherit_env.clone(),
        host_urls: opts.host_urls.clone(),
        forward_agent: opts.forward_agent,
        network: opts.network.clone(),
        allow: opts.allow.clone(),
        ..Overrides::default()
    }
}
