//! One module per subcommand, each thin: load, plan, execute, report.

mod clean;
mod config;
mod info;
mod list;
mod login;
mod session;
mod setup;

use std::ffi::OsString;
use std::path::PathBuf;

use crate::cli::{Cli, Command, GlobalOpts, SessionOpts};
use crate::config::{self as cfg, Loaded, Overrides};
use crate::error::{Error, IoContext, Result};
use crate::lima::Limactl;
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
        })
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
        Some(Command::List) => {
            only_session("list")?;
            list::run(&ctx)
        }
        Some(Command::Clean(c)) => {
            only_session("clean")?;
            clean::clean(&ctx, c.yes)
        }
        Some(Command::CleanAll(c)) => {
            only_session("clean-all")?;
            clean::clean_all(&ctx, c.yes)
        }
        Some(Command::Login) => {
            only_session("login")?;
            login::run(&ctx)
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
        env_files: opts.env_files.clone(),
        inherit_env: opts.inherit_env.clone(),
        forward_agent: opts.forward_agent,
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
