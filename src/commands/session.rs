//! `claude-vm [PROMPT] [CLAUDE ARGS...]`, `agent` and `shell`.

use std::ffi::OsString;

use super::{overrides, setup, utf8_args, Context};
use crate::cli::SessionOpts;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::integrations;
use crate::names::Role;
use crate::plan::{self, environment, plan_session, GuestInputs, HostScript, SessionInputs};
use crate::project::claude_project_folder;
use crate::script::Final;
use crate::template::{self, Manifest};
use crate::tools::{self, Integration};

/// Always passed to claude: the VM is the sandbox, so claude need not ask.
pub const SKIP_PERMISSIONS: &str = "--dangerously-skip-permissions";

pub fn agent(ctx: &Context, opts: SessionOpts, args: Vec<OsString>) -> Result<i32> {
    let user_args = utf8_args(args, "argument")?;
    run(ctx, &opts, |config| {
        let mut args = vec![SKIP_PERMISSIONS.to_owned()];
        args.extend(config.defaults.claude_args.iter().cloned());
        args.extend(user_args);
        Final::Claude(args)
    })
}

pub fn shell(ctx: &Context, opts: SessionOpts, command: Vec<OsString>) -> Result<i32> {
    let command = utf8_args(command, "command argument")?;
    run(ctx, &opts, |_| {
        if command.is_empty() {
            Final::Shell
        } else {
            Final::Command(command)
        }
    })
}

fn run(
    ctx: &Context,
    opts: &SessionOpts,
    last: impl FnOnce(&crate::config::Config) -> Final,
) -> Result<i32> {
    let loaded = ctx.load_config(&overrides(opts))?;
    let config = &loaded.config;
    let template = ctx.template()?;
    let manifest = match template::read_manifest(&ctx.paths, template.as_str())? {
        Some(m) => m,
        None if ctx.dry_run => {
            ctx.ui.warn(&format!(
                "no template VM yet for {}; showing the plan as if `claude-vm setup` had run",
                ctx.project.identity().display()
            ));
            Manifest::new(&template, ctx.project.identity(), config)
        }
        None => offer_setup(ctx, opts, config, &template)?,
    };

    let mut runtime_scripts = Vec::new();
    let project_script = ctx.project.runtime_script();
    if project_script.is_file() {
        let path = std::fs::canonicalize(&project_script).unwrap_or(project_script);
        runtime_scripts.push(HostScript {
            label: "./.claude-vm.runtime.sh".into(),
            path,
        });
    }
    for p in &config.runtime.scripts {
        if !runtime_scripts.iter().any(|s| &s.path == p) {
            let label = plan::script_label(p, &ctx.project.root, &ctx.paths.home);
            runtime_scripts.push(HostScript {
                label,
                path: p.clone(),
            });
        }
    }

    let root = crate::error::utf8_path(&ctx.project.root, "the project path")?;
    let conversations = if opts.no_conversations {
        None
    } else {
        match claude_project_folder(root) {
            Some(folder) => Some((
                ctx.paths.claude_dir().join("projects").join(&folder),
                folder,
            )),
            None => {
                ctx.ui.warn("the project path is too long to locate its Claude conversation folder; conversations are not shared");
                None
            }
        }
    };

    let instance = template.instance(Role::Run);
    let plan = plan_session(SessionInputs {
        template: &template,
        handover_dir: ctx.paths.handover_root().join(&instance),
        instance,
        project: &ctx.project,
        config,
        last: last(config),
        runtime_scripts,
        conversations,
        template_resources: manifest.resources(),
        guest: guest_inputs(ctx, opts, config, &manifest),
    })
    .map_err(|m| {
        Error::usage(m).with_hint("fix the mount in .claude-vm.toml or on the command line")
    })?;

    if ctx.dry_run {
        let title = format!(
            "session in a clone of {template} (project {})",
            ctx.project.root.display()
        );
        print!(
            "{}",
            plan::render(
                &title,
                &plan.calls(),
                &plan.files,
                &format!(
                    "hand-over directory {} (read-only in the VM at {})",
                    plan.handover_dir.display(),
                    crate::script::HANDOVER_MOUNT
                ),
            )
        );
        return Ok(0);
    }
    crate::session::run(&ctx.lima, &ctx.ui, &plan)
}

/// Environment, tools and agents for the guest, gathered from the host.
fn guest_inputs(
    ctx: &Context,
    opts: &SessionOpts,
    config: &Config,
    manifest: &Manifest,
) -> GuestInputs {
    let host = |name: &str| std::env::var(name).ok();
    for name in &opts.inherit_env {
        if host(name).is_none() {
            ctx.ui.warn(&format!(
                "--inherit-env {name}: {name} is not set here, so the VM does not get it"
            ));
        }
    }
    let tools = tools::resolve(&manifest.tools);
    let uses = |i: Integration| tools.iter().any(|t| t.integrations.contains(&i));
    let git = uses(Integration::GitIdentity).then(|| integrations::git_identity(&ctx.paths.home));
    let gpg = if uses(Integration::GpgAgent) {
        match integrations::gpg_forward() {
            Ok(g) => Some(g),
            Err(why) => {
                ctx.ui.warn(&format!(
                    "the gpg tool is on, but the host's gpg-agent cannot be forwarded: {why}"
                ));
                None
            }
        }
    } else {
        None
    };
    if config.ssh.forward_agent && host("SSH_AUTH_SOCK").is_none() {
        ctx.ui.warn("SSH agent forwarding is on, but SSH_AUTH_SOCK is not set: there is no agent to forward");
    }
    GuestInputs {
        env: environment::session_env(config, &host),
        tools,
        git,
        gpg,
        forward_agent: config.ssh.forward_agent,
        ports: config.ports.clone(),
    }
}

/// No template yet: build it when asked to (`--auto-setup`) or when the user says so on a
/// terminal; without a terminal, say what to do instead of waiting for an answer.
fn offer_setup(
    ctx: &Context,
    opts: &SessionOpts,
    config: &crate::config::Config,
    template: &crate::names::TemplateName,
) -> Result<Manifest> {
    let project = ctx.project.identity().display().to_string();
    let build = if opts.auto_setup {
        true
    } else {
        match ctx.ui.confirm(&format!("There is no template VM for {project} yet. Build it now (this takes a few minutes)?"), true) {
            Some(answer) => answer,
            None => {
                return Err(Error::usage(format!("there is no template VM for {project} yet"))
                    .with_hint("build it first with `claude-vm setup` (or pass --auto-setup to build it on the way)"));
            }
        }
    };
    if !build {
        return Err(Error::usage("no template VM, and none was built")
            .with_hint("run `claude-vm setup` when you are ready"));
    }
    setup::build_template(ctx, config, template, false)?;
    template::read_manifest(&ctx.paths, template.as_str())?.ok_or_else(|| {
        Error::failure("the template was built but its record is missing")
            .with_hint("run `claude-vm setup` again")
    })
}
