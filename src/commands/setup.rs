//! `claude-vm setup`: build or rebuild the repository's template VM.

use super::Context;
use crate::cli::{ResourceOpts, SetupArgs};
use crate::config::{Config, Overrides};
use crate::error::{Error, Result};
use crate::names::{self, Ours, Role, TemplateName};
use crate::plan::{self, plan_setup, HostScript, SetupInputs};
use crate::signals;
use crate::template::{self, Manifest};

pub fn run(ctx: &Context, args: &SetupArgs, before: &ResourceOpts) -> Result<i32> {
    let resources = args.resources.or(before);
    let overrides = Overrides {
        disk: resources.disk,
        memory: resources.memory,
        cpus: resources.cpus,
        setup_scripts: args.setup_scripts.clone(),
        setup_mounts: args.mounts.clone(),
        tools: args.tools.names(),
        ..Overrides::default()
    };
    let loaded = ctx.load_config(&overrides)?;
    let template = ctx.template()?;
    if args.login && !ctx.dry_run {
        super::login::require_terminal()?;
    }
    build_template(ctx, &loaded.config, &template, args.login)?;
    Ok(0)
}

/// Builds `template` from `config`. An existing template keeps serving sessions until the
/// new one is complete.
pub fn build_template(
    ctx: &Context,
    config: &Config,
    template: &TemplateName,
    login: bool,
) -> Result<()> {
    let scripts = setup_scripts(ctx, config);

    if ctx.dry_run {
        let exists = template::read_manifest(&ctx.paths, template.as_str())?.is_some();
        let build = if exists {
            template.instance(Role::Build)
        } else {
            template.to_string()
        };
        let plan = plan_setup(SetupInputs {
            template,
            build,
            config,
            scripts,
            login,
        })
        .map_err(|m| Error::usage(m).with_hint("fix [[setup.mounts]] or setup --mount"))?;
        let title = format!(
            "setup of template {template} for {}",
            ctx.project.identity().display()
        );
        let calls = plan.calls();
        print!(
            "{}",
            plan::render(
                &title,
                &calls,
                &plan.files,
                &format!(
                    "sent on the provisioning shell's stdin, unpacked in {}",
                    crate::script::BUNDLE_DIR
                ),
            )
        );
        return Ok(());
    }

    signals::install();
    let instances = ctx.lima.list()?;
    let exists = instances.iter().any(|i| i.name == template.as_str());
    // Builds that a killed setup left behind are useless: remove them first.
    let leftovers: Vec<String> = instances
        .iter()
        .filter(|i| matches!(names::parse(&i.name), Some(Ours::Clone { template: t, role: Role::Build, .. }) if &t == template))
        .map(|i| i.name.clone())
        .collect();
    if !leftovers.is_empty() {
        let step = ctx.ui.step(format!(
            "removing unfinished builds: {}",
            leftovers.join(", ")
        ));
        ctx.lima.cleanup(&crate::lima::delete(&leftovers), None)?;
        step.done();
    }

    let build = if exists {
        template.instance(Role::Build)
    } else {
        template.to_string()
    };
    let plan = plan_setup(SetupInputs {
        template,
        build,
        config,
        scripts,
        login,
    })
    .map_err(|m| Error::usage(m).with_hint("fix [[setup.mounts]] or setup --mount"))?;
    let log = ctx
        .paths
        .data_dir
        .join("logs")
        .join(format!("{template}.setup.log"));
    ctx.ui.info(&format!(
        "{} template {template} for {}",
        if exists { "rebuilding" } else { "building" },
        ctx.project.identity().display()
    ));
    let login = template::build(&ctx.lima, &ctx.ui, &ctx.paths, &plan, &log)?;
    template::write_manifest(
        &ctx.paths,
        &Manifest::new(template, ctx.project.identity(), config),
    )?;
    if let Some(code) = login.filter(|c| *c != 0) {
        return Err(Error::failure(format!(
            "template {template} is ready, but the login did not complete (exit status {code})"
        ))
        .with_hint("run `claude-vm login` to try again"));
    }
    ctx.ui.info(&format!(
        "template {template} is ready: run `claude-vm \"your prompt\"` or `claude-vm shell`"
    ));
    Ok(())
}

/// `~/.claude-vm.setup.sh`, `./.claude-vm.setup.sh`, `[setup] scripts`, `--setup-script`:
/// in that order, each once.
fn setup_scripts(ctx: &Context, config: &Config) -> Vec<HostScript> {
    let mut out: Vec<HostScript> = Vec::new();
    let mut add = |label: String, path: std::path::PathBuf| {
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        if !out.iter().any(|s| s.path == path) {
            out.push(HostScript { label, path });
        }
    };
    let global = ctx.paths.global_setup_script();
    if global.is_file() {
        add("~/.claude-vm.setup.sh".into(), global);
    }
    let project = ctx.project.setup_script();
    if project.is_file() {
        add("./.claude-vm.setup.sh".into(), project);
    }
    for p in &config.setup.scripts {
        add(
            plan::script_label(p, &ctx.project.root, &ctx.paths.home),
            p.clone(),
        );
    }
    out
}
