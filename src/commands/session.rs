//! `claude-vm [PROMPT] [CLAUDE ARGS...]`, `agent` and `shell`.

use std::ffi::OsString;

use super::{overrides, setup, utf8_args, Context};
use crate::cli::SessionOpts;
use crate::error::{Error, Result};
use crate::names::Role;
use crate::plan::{self, plan_session, HostScript, SessionInputs};
use crate::project::claude_project_folder;
use crate::script::Final;
use crate::template::{self, Manifest};

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
            plan::render(&title, &plan.calls(), &plan.files, &plan.handover_dir)
        );
        return Ok(0);
    }
    crate::session::run(&ctx.lima, &ctx.ui, &plan)
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
    setup::build_template(ctx, config, template)?;
    template::read_manifest(&ctx.paths, template.as_str())?.ok_or_else(|| {
        Error::failure("the template was built but its record is missing")
            .with_hint("run `claude-vm setup` again")
    })
}
