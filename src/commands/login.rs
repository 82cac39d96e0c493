//! `claude-vm login`: Claude Code's own login, run once in the template, so every session
//! (a clone) starts logged in.

use super::Context;
use crate::error::{Error, Result};
use crate::lima;
use crate::plan::login_call;
use crate::signals;
use crate::template;
use crate::ui;

pub fn run(ctx: &Context) -> Result<i32> {
    let template = ctx.template()?;
    if template::read_manifest(&ctx.paths, template.as_str())?.is_none() {
        return Err(Error::usage(format!(
            "there is no template VM for {} yet",
            ctx.project.identity().display()
        ))
        .with_hint("build it and log in at once with `claude-vm setup --login`"));
    }
    let calls = [
        lima::start(template.as_str()),
        login_call(template.as_str()),
        lima::stop(template.as_str()),
    ];
    if ctx.dry_run {
        crate::outln!("login in template {template}\n\nlimactl calls, in order:");
        for (i, c) in calls.iter().enumerate() {
            crate::outln!("  {}. {c}", i + 1);
        }
        return Ok(0);
    }
    require_terminal()?;
    signals::install();
    let step = ctx.ui.step(format!("booting the template {template}"));
    ctx.lima.run(&calls[0], Some(template.as_str()), None)?;
    step.done();
    let login = if signals::received().is_none() {
        Some(ctx.lima.run_attached(&calls[1], Some(template.as_str())))
    } else {
        None
    };
    // The template must be stopped again whatever happened, or no session can clone it.
    let _cleaning = signals::CleaningUp::begin();
    let step = ctx.ui.step(format!("stopping the template {template}"));
    ctx.lima.run_shielded(&calls[2], Some(template.as_str()))?;
    step.done();
    match login {
        Some(Ok(status)) if status.success() => {
            ctx.ui
                .info("logged in: every new session starts with this login");
            Ok(0)
        }
        Some(Ok(status)) => Err(Error::failure(format!(
            "the login did not complete (exit status {})",
            lima::exit_code(status)
        ))
        .with_hint("run `claude-vm login` again")),
        Some(Err(e)) => Err(e.into()),
        None => Ok(0),
    }
}

/// The login prints a URL and waits for a code: without a terminal nobody can answer, so
/// refuse at once instead of hanging.
pub fn require_terminal() -> Result<()> {
    if ui::stdin_is_terminal() {
        return Ok(());
    }
    Err(Error::usage("logging in to Claude Code needs a terminal: it shows a URL and waits for a code")
        .with_hint(
            "run it from a terminal, or use a token instead: `claude setup-token` on your machine, then export \
             CLAUDE_CODE_OAUTH_TOKEN (or ANTHROPIC_API_KEY); claude-vm forwards it to every session",
        ))
}
