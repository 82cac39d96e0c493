//! `claude-vm setup`: build or rebuild the repository's template VM.

use super::Context;
use crate::cli::{ResourceOpts, SetupArgs};
use crate::error::{Error, Result};
use crate::template::{self, SetupFlags};
use crate::workflow::build;

pub fn run(ctx: &Context, args: &SetupArgs, before: &ResourceOpts) -> Result<i32> {
    let resources = args.resources.or(before);
    let given = SetupFlags {
        disk: resources.disk,
        memory: resources.memory,
        cpus: resources.cpus,
        setup_scripts: args.setup_scripts.iter().map(|p| ctx.cwd.join(p)).collect(),
        setup_mounts: args.mounts.clone(),
        tools: args.tools.names(),
    };
    for name in &args.without {
        if !crate::tools::names().contains(&name.as_str()) {
            let hint = match crate::config::suggest::closest(name, crate::tools::names()) {
                Some(s) => format!("did you mean `--without {s}`?"),
                None => format!("the tools are: {}", crate::tools::names().join(", ")),
            };
            return Err(
                Error::usage(format!("--without {name}: there is no such tool")).with_hint(hint),
            );
        }
    }
    let template = ctx.template()?;
    if args.base && !args.rebuild {
        return Err(Error::usage("--base needs --rebuild: `claude-vm setup --rebuild --base` builds the shared base again")
            .with_hint("a plain `claude-vm setup` reuses the shared base when it is up to date"));
    }
    let remembered = if args.fresh {
        SetupFlags::default()
    } else {
        template::read_manifest(&ctx.paths, template.as_str())?
            .map(|m| build::recorded_flags(ctx, &m.setup_flags))
            .unwrap_or_default()
    };
    let flags = build::remember(&remembered, &given, &args.without);
    let kept = build::describe_flags(&build::remember(
        &remembered,
        &SetupFlags::default(),
        &args.without,
    ));
    if !kept.is_empty() {
        ctx.ui.info(&format!(
            "remembered from the last setup: {kept} (`--without TOOL` drops a tool, `--fresh` forgets them all)"
        ));
    }
    let loaded = ctx.load_config(&build::overrides(&flags))?;
    if args.base && !loaded.config.vm.shared_base {
        return Err(Error::usage(
            "--rebuild --base: this project's template is built in one layer (`[vm] shared_base = false`), there is no shared base",
        )
        .with_hint("`claude-vm setup --rebuild` rebuilds it"));
    }
    ctx.enforce_trust(&loaded, &build::setup_script_review(ctx), args.yes)?;
    if args.login && !ctx.dry_run {
        super::login::require_terminal()?;
    }
    ctx.prepare_lima()?;
    let how = build::Build {
        flags: &flags,
        when: build::When::Always,
        yes: args.yes,
        login: args.login,
        fresh_base: args.base,
    };
    build::build_template(ctx, &loaded.config, &template, &how)?;
    Ok(0)
}
