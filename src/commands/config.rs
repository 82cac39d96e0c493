//! `claude-vm config show|validate`.

use super::{overrides, Context};
use crate::cli::{ConfigCommand, SessionOpts};
use crate::config::{self, Config};
use crate::error::{Error, Result};
use crate::names::Role;
use crate::plan::{plan_session, plan_setup, GuestInputs, SessionInputs, SetupInputs};
use crate::project::claude_project_folder;
use crate::script::Final;
use crate::template::Manifest;

pub fn run(ctx: &Context, cmd: ConfigCommand, opts: &SessionOpts) -> Result<i32> {
    match cmd {
        ConfigCommand::Show => {
            let loaded = ctx.load_config(&overrides(opts))?;
            crate::outln!(
                "# effective configuration for {}",
                ctx.project.root.display()
            );
            let files = loaded.files_display();
            crate::outln!(
                "# files (lowest precedence first): {files}
"
            );
            crate::out!("{}", config::show::render(&loaded.entries()));
            Ok(0)
        }
        ConfigCommand::Validate { file: Some(file) } => {
            let file = ctx.cwd.join(file);
            config::validate_file(&file, &ctx.paths.home)?;
            crate::outln!("{} is valid", file.display());
            Ok(0)
        }
        ConfigCommand::Validate { file: None } => {
            let loaded = ctx.load_config(&overrides(opts))?;
            check_plans(ctx, &loaded.config)?;
            // What a session or setup would refuse: project files that widen the sandbox
            // without an approval (never approved here, never with --yes).
            let mut scripts = crate::workflow::build::setup_script_review(ctx);
            scripts.extend(crate::trust::project_script(
                &ctx.project.runtime_script(),
                &ctx.project,
            ));
            ctx.enforce_trust(&loaded, &scripts, false)?;
            for f in &loaded.files {
                crate::outln!("{} is valid", f.display());
            }
            for (var, _) in config::ENV_VARS {
                if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
                    crate::outln!("environment variable {var} is valid");
                }
            }
            if loaded.files.is_empty() {
                crate::outln!("no configuration files; the defaults are valid");
            } else {
                crate::outln!("the merged configuration is valid for setup and sessions");
            }
            Ok(0)
        }
    }
}

/// What setup and a session would reject after merging (a mount over claude-vm's own, a
/// reserved guest path) is found here too, by making their plans; nothing runs.
fn check_plans(ctx: &Context, config: &Config) -> Result<()> {
    let template = ctx.template()?;
    let handover = ctx.paths.handover_root();
    plan_setup(SetupInputs {
        template: &template,
        build: template.to_string(),
        config,
        scripts: Vec::new(),
        agent_writable: ctx.agent_writable(config),
        login: false,
        base: None,
    })
    .map_err(Error::from)?;
    let instance = template.instance(Role::Run);
    let root = crate::error::utf8_path(&ctx.project.root, "the project path")?;
    let conversations = claude_project_folder(root).map(|folder| {
        (
            ctx.paths.claude_dir().join("projects").join(&folder),
            folder,
        )
    });
    plan_session(SessionInputs {
        template: &template,
        handover_dir: handover.join(&instance),
        instance,
        project: &ctx.project,
        config,
        last: Final::Shell,
        runtime_scripts: Vec::new(),
        conversations,
        template_resources: Manifest::new(
            &template,
            ctx.project.identity(),
            config,
            None,
            crate::template::SetupFlags::default(),
        )
        .resources(),
        workdir: ctx.project.root.clone(),
        guest: GuestInputs {
            ports: config.ports.clone(),
            forward_agent: config.ssh.forward_agent,
            ..GuestInputs::default()
        },
    })
    .map_err(Error::from)?;
    Ok(())
}
