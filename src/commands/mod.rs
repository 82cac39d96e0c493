//! One module per subcommand, each thin: load, plan, execute, report.

mod clean;
mod config;
mod gc;
mod info;
mod list;
mod session;
mod setup;
mod trust;

use std::cell::RefCell;
use std::ffi::OsString;
use std::path::PathBuf;

use crate::cli::{Cli, Command, GlobalOpts, SessionOpts};
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
    /// Files already allowed by --yes (warned about once).
    allowed: RefCell<Vec<PathBuf>>,
}

impl Context {
    fn new(global: &GlobalOpts) -> Result<Context> {
        let paths = HostPaths::from_env()?;
        let cwd = std::env::current_dir().io_context("read the current directory", ".")?;
        let project = Project::discover(&cwd)?;
        Ok(Context {
            paths,
            cwd,
            project,
            ui: Ui {
                quiet: global.quiet,
            },
            lima: Limactl::new(global.verbose),
            dry_run: global.dry_run,
            allowed: RefCell::new(Vec::new()),
        })
    }

    /// Before a command drives Lima (after its input is validated: bad input touches no VM):
    /// Lima is there and new enough (cached), and VMs left by dead claude-vm processes are
    /// reaped (no limactl call when there are none).
    pub fn prepare_lima(&self) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        lima::detect::ensure(&self.lima, &self.paths.lima_version_cache())?;
        crate::reap::orphans(&self.lima, &self.ui, &self.paths)
    }

    /// Refuses project files that widen the sandbox without approval (unless `yes`).
    pub fn enforce_trust(&self, loaded: &Loaded, extra: &[Review], yes: bool) -> Result<()> {
        let all: Vec<Review> = loaded.reviews.iter().chain(extra).cloned().collect();
        self.enforce_reviews(&all, yes)
    }

    pub fn enforce_reviews(&self, reviews: &[Review], yes: bool) -> Result<()> {
        let store = crate::trust::Store::new(&self.paths);
        let pending = crate::trust::unapproved(&store, reviews);
        if pending.is_empty() {
            return Ok(());
        }
        if !yes {
            return Err(crate::trust::refusal(&pending));
        }
        let mut allowed = self.allowed.borrow_mut();
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

    pub fn template(&self) -> Result<TemplateName> {
        names::template_name(self.project.identity(), &self.paths.lima_home)
    }
}

/// Runs the command line and returns the exit code.
pub fn run(cli: Cli) -> Result<i32> {
    let ctx = Context::new(&cli.global)?;
    let top = cli.session;
    let only_session = |name: &str| -> Result<()> {
        if top.is_empty() {
            Ok(())
        } else {
            Err(Error::usage(format!(
                "session flags given before `{name}` do not apply to it"
            ))
            .with_hint(format!(
                "put them after the subcommand, e.g. `claude-vm {name} --help` lists its flags"
            )))
        }
    };
    match cli.command {
        None => session::agent(&ctx, top, cli.claude_args),
        Some(Command::Agent(a)) => session::agent(&ctx, top.merge(&a.session), a.claude_args),
        Some(Command::Shell(s)) => session::shell(&ctx, top.merge(&s.session), s.command),
        Some(Command::Setup(s)) => {
            let only_resources = SessionOpts {
                resources: Default::default(),
                ..top.clone()
            };
            if !only_resources.is_empty() {
                only_session("setup")?;
            }
            setup::run(&ctx, &s, &top.resources)
        }
        Some(Command::List(l)) => {
            only_session("list")?;
            list::run(&ctx, l.json)
        }
        Some(Command::Clean(c)) => {
            only_session("clean")?;
            clean::clean(&ctx, c.yes)
        }
        Some(Command::CleanAll(c)) => {
            only_session("clean-all")?;
            clean::clean_all(&ctx, c.yes)
        }
        Some(Command::Gc) => {
            only_session("gc")?;
            gc::run(&ctx)
        }
        Some(Command::Trust(t)) => {
            only_session("trust")?;
            trust::run(&ctx, t.revoke)
        }
        Some(Command::Info) => info::run(&ctx, &top),
        Some(Command::Config(c)) => config::run(&ctx, c, &top),
    }
}

/// Session flags as configuration overrides.
fn overrides(opts: &SessionOpts) -> Overrides {
    Overrides {
        disk: opts.resources.disk,
        memory: opts.resources.memory,
        cpus: opts.resources.cpus,
        mounts: opts.mounts.clone(),
        runtime_scripts: opts.runtime_scripts.clone(),
        env: opts.env.clone(),
        ..Overrides::default()
    }
}

/// Arguments travel through JSON and shell scripts, so they must be UTF-8.
fn utf8_args(args: Vec<OsString>, what: &str) -> Result<Vec<String>> {
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            a.into_string().map_err(|a| {
                Error::usage(format!(
                    "{what} {} ({}) is not valid UTF-8",
                    i + 1,
                    a.to_string_lossy()
                ))
                .with_hint("pass text arguments; claude-vm cannot carry raw bytes into the VM")
            })
        })
        .collect()
}
