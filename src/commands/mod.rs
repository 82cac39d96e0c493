//! One module per subcommand, each thin: load, plan, execute, report.

mod agent;
mod clean;
mod completions;
mod config;
mod doctor;
mod export;
mod gc;
mod import;
mod info;
mod list;
mod login;
mod mcp;
mod network;
pub mod setup;
mod trust;
mod update;
mod warm;
mod web;

use std::ffi::OsString;

use crate::cli::{Cli, Command, SessionOpts};
use crate::config::Overrides;
use crate::error::{Error, Result};
use crate::paths::HostPaths;
use crate::ui::Ui;
pub(crate) use crate::workflow::{overrides, Context};

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
        Some(Command::Web(w)) => {
            if !cli.session.is_empty() {
                return Err(
                    Error::usage("session flags given before `web` do not apply to it").with_hint(
                        "run `claude-vm web`; sessions started from the page use each project's configuration",
                    ),
                );
            }
            return web::run(w);
        }
        Some(Command::Update(u)) => {
            let ui = Ui::new(cli.global.quiet, cli.global.verbose, cli.global.json);
            let data_dir = HostPaths::from_env().ok().map(|p| p.data_dir);
            return update::run(&ui, u, cli.global.dry_run, data_dir.as_deref());
        }
        _ => {}
    }
    let mut cli = cli;
    if let Some(Command::Import(i)) = &mut cli.command {
        import::enter_project(i)?;
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
        None => agent::agent(ctx, top, cli.claude_args),
        Some(Command::Agent(a)) if a.stdio => {
            agent::agent_stdio(ctx, top.merge(&a.session), a.claude_args)
        }
        Some(Command::Agent(a)) => agent::agent(ctx, top.merge(&a.session), a.claude_args),
        Some(Command::Shell(s)) => agent::shell(ctx, top.merge(&s.session), s.command),
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
        Some(Command::Web(_)) => Err(Error::failure(
            "internal error: `web` runs before the project is read",
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
        Some(Command::Export(e)) => {
            only_session("export")?;
            export::run(ctx, &e)
        }
        Some(Command::Import(i)) => {
            only_session("import")?;
            import::run(ctx, &i)
        }
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
