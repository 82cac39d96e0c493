//! One module per subcommand, each thin: load, plan, execute, report.

mod clean;
mod completions;
mod config;
mod doctor;
mod gc;
mod info;
mod list;
mod login;
mod mcp;
mod network;
pub mod session;
mod setup;
mod trust;
mod update;
pub mod warm;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Mutex;

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
    fn new(global: &GlobalOpts, accept_main_repo: bool) -> Result<Context> {
        let paths = HostPaths::from_env()?;
        let cwd = std::env::current_dir().io_context("read the current directory", ".")?;
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
            ),
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
        crate::reap::orphans(&self.lima, &self.ui, &self.paths)
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

/// Runs the command line and returns the exit code.
pub fn run(cli: Cli) -> Result<i32> {
    // Commands that need no project (and work outside one).
    match &cli.command {
        Some(Command::Completions { shell }) => return completions::run(*shell),
        Some(Command::Mcp) => {
            if !cli.session.is_empty() {
                return Err(
                    Error::usage("session flags given before `mcp` do not apply to it").with_hint(
                        "run `claude-vm mcp`; each tool runs claude-vm in the project it names",
                    ),
                );
            }
            return mcp::run(HostPaths::from_env()?.data_dir);
        }
        Some(Command::Update(u)) => {
            let ui = Ui::new(cli.global.quiet, cli.global.verbose, cli.global.json);
            let data_dir = HostPaths::from_env().ok().map(|p| p.data_dir);
            return update::run(&ui, u, cli.global.dry_run, data_dir.as_deref());
        }
        _ => {}
    }
    let trusting = matches!(cli.command, Some(Command::Trust(_)));
    let ctx = Context::new(&cli.global, trusting)?;
    if !ctx.dry_run {
        crate::audit::point_at_unseen(&ctx.ui, &ctx.paths);
    }
    let notice = update_notice(&ctx);
    let code = dispatch(&ctx, cli)?;
    if let Some(text) = notice {
        ctx.ui.info(&text);
    }
    Ok(code)
}

/// The "new version available" notice, for a person at a terminal, unless turned off.
fn update_notice(ctx: &Context) -> Option<String> {
    use crate::update::notice;
    let env = |name: &str| std::env::var(name).ok();
    if ctx.ui.quiet
        || ctx.dry_run
        || !notice::allowed_by_env(&env)
        || !std::io::IsTerminal::is_terminal(&std::io::stderr())
    {
        return None;
    }
    // An invalid configuration is the command's to report; here it only means "not off".
    let enabled = ctx
        .load_config(&Overrides::default())
        .map_or(true, |l| l.config.update.check);
    if !enabled {
        return None;
    }
    notice::prepare(&ctx.paths.data_dir)
}

fn dispatch(ctx: &Context, cli: Cli) -> Result<i32> {
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
        None => session::agent(ctx, top, cli.claude_args),
        Some(Command::Agent(a)) if a.stdio => {
            session::agent_stdio(ctx, top.merge(&a.session), a.claude_args)
        }
        Some(Command::Agent(a)) => session::agent(ctx, top.merge(&a.session), a.claude_args),
        Some(Command::Shell(s)) => session::shell(ctx, top.merge(&s.session), s.command),
        Some(Command::Setup(s)) => {
            let only_resources = SessionOpts {
                resources: Default::default(),
                ..top.clone()
            };
            if !only_resources.is_empty() {
                only_session("setup")?;
            }
            setup::run(ctx, &s, &top.resources)
        }
        Some(Command::List) => {
            only_session("list")?;
            list::run(ctx, ctx.ui.is_json())
        }
        Some(Command::Clean(c)) => {
            only_session("clean")?;
            clean::clean(ctx, c.yes)
        }
        Some(Command::CleanAll(c)) => {
            only_session("clean-all")?;
            clean::clean_all(ctx, c.yes)
        }
        Some(Command::Warm { count }) => {
            only_session("warm")?;
            warm::run(ctx, count)
        }
        Some(Command::Login) => {
            only_session("login")?;
            login::run(ctx)
        }
        Some(Command::Info) => info::run(ctx, &top),
        Some(Command::Config(c)) => config::run(ctx, c, &top),
        Some(Command::Doctor) => {
            only_session("doctor")?;
            doctor::run(ctx)
        }
        Some(Command::Completions { shell }) => completions::run(shell),
        Some(Command::Mcp) => Err(Error::failure(
            "internal error: `mcp` runs before the project is read",
        )),
        Some(Command::Update(_)) => Err(Error::failure(
            "internal error: `update` runs before the project is read",
        )),
        Some(Command::Gc(g)) => {
            only_session("gc")?;
            gc::run(ctx, &g.force)
        }
        Some(Command::Trust(t)) => {
            only_session("trust")?;
            trust::run(ctx, t.revoke)
        }
        Some(Command::Network(crate::cli::NetworkCommand::Log { session, follow })) => {
            only_session("network log")?;
            network::log(ctx, session.as_deref(), follow, ctx.ui.is_json())
        }
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
        env_files: opts.env_files.clone(),
        inherit_env: opts.inherit_env.clone(),
        host_urls: opts.host_urls.clone(),
        forward_agent: opts.forward_agent,
        network: opts.network.clone(),
        allow: opts.allow.clone(),
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
