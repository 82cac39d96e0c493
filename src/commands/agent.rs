//! `claude-vm [PROMPT] [CLAUDE ARGS...]`, `agent` and `shell`.

use std::ffi::OsString;

use super::{utf8_args, Context};
use crate::cli::SessionOpts;
use crate::error::{Error, Result};
use crate::names::TemplateName;
use crate::plan::{self, SessionPlan};
use crate::script::Final;
use crate::workflow::prepare;

/// Always passed to claude: the VM is the sandbox, so claude need not ask.
pub const SKIP_PERMISSIONS: &str = "--dangerously-skip-permissions";

pub fn agent(ctx: &Context, opts: SessionOpts, args: Vec<OsString>) -> Result<i32> {
    let user_args = utf8_args(args, "argument")?;
    refuse_mistyped(&user_args)?;
    run(ctx, &opts, |config| {
        let mut args = vec![SKIP_PERMISSIONS.to_owned()];
        args.extend(config.defaults.claude_args.iter().cloned());
        args.extend(user_args);
        Final::Claude(args)
    })
}

/// `--dry-rn` before the prompt is a typo of ours, not a flag for claude: stop before a VM
/// boots. After `--` everything is claude's.
fn refuse_mistyped(args: &[String]) -> Result<()> {
    use clap::CommandFactory;
    let cli = crate::cli::Cli::command();
    let ours: Vec<&str> = cli.get_arguments().filter_map(|a| a.get_long()).collect();
    let Some((typed, meant)) = crate::typos::mistyped(args, &ours) else {
        return Ok(());
    };
    let escaped = std::env::args_os()
        .skip(1)
        .take_while(|a| a.to_str() != Some(typed.as_str()))
        .any(|a| a == "--");
    if escaped {
        return Ok(());
    }
    Err(Error::usage(format!(
        "`{}` is neither a claude-vm flag nor one of Claude Code's: did you mean `--{meant}`?",
        crate::ui::escape(&typed)
    ))
    .with_hint(format!(
        "to pass it to claude as it is, put `--` before it: `claude-vm -- {} ...`",
        crate::ui::escape(&typed)
    )))
}

/// The variables the Agent SDKs set for claude that change what it says on stdout: the VM's
/// claude gets them too (when set; they carry no secrets).
pub const SDK_VARIABLES: &[&str] = &[
    "CLAUDE_CODE_ENTRYPOINT",
    "CLAUDE_AGENT_SDK_VERSION",
    "CLAUDE_CODE_SDK_READS_SESSION_STATE",
    "CLAUDE_CODE_ENABLE_SDK_FILE_CHECKPOINTING",
];

/// `agent --stdio`: claude-vm as the `claude` an Agent SDK spawns. The arguments are the
/// SDK's; the permissions are skipped only when it chose no mode and no prompt tool of its
/// own (the VM is the sandbox, but a program that asks to approve tools must be asked).
pub fn agent_stdio(ctx: &Context, opts: SessionOpts, args: Vec<OsString>) -> Result<i32> {
    let user_args = utf8_args(args, "argument")?;
    let mut opts = opts;
    for name in SDK_VARIABLES {
        if std::env::var_os(name).is_some() && !opts.inherit_env.iter().any(|n| n == name) {
            opts.inherit_env.push((*name).to_owned());
        }
    }
    // `claude --version` (or `-v`, `--help`) exactly as asked: the answer is claude's own.
    let query = matches!(user_args.as_slice(), [a] if ["--version", "-v", "--help", "-h"].contains(&a.as_str()));
    run(ctx, &opts, |config| {
        if query {
            return Final::ClaudeStdio(user_args);
        }
        let mut args = Vec::new();
        if !chooses_permissions(&user_args) {
            args.push(SKIP_PERMISSIONS.to_owned());
        }
        args.extend(config.defaults.claude_args.iter().cloned());
        args.extend(user_args);
        Final::ClaudeStdio(args)
    })
}

/// Whether claude's arguments set how it asks for permission (`--permission-mode X`,
/// `--permission-mode=X`, `--permission-prompt-tool ...`).
fn chooses_permissions(args: &[String]) -> bool {
    const FLAGS: [&str; 2] = ["--permission-mode", "--permission-prompt-tool"];
    args.iter().take_while(|a| *a != "--").any(|a| {
        FLAGS
            .iter()
            .any(|f| a == f || a.strip_prefix(f).is_some_and(|r| r.starts_with('=')))
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
    prepare::session(ctx, opts, last, |template, plan| {
        show_plan(ctx, template, plan)
    })
}

/// A dry run's plan: the limactl calls, the hand-over files and the host URLs.
fn show_plan(ctx: &Context, template: &TemplateName, plan: &SessionPlan) {
    let title = format!(
        "session in a clone of {} (project {})",
        template,
        ctx.project.root.display()
    );
    let heading = format!(
        "hand-over directory {} (read-only in the VM at {})",
        plan.handover_dir.display(),
        crate::script::HANDOVER_MOUNT
    );
    crate::out!(
        "{}",
        plan::render(&title, &plan.calls(), &plan.files, &heading)
    );
    if !plan.host_urls.is_empty() {
        crate::outln!("\nURLs on the host's loopback, as the VM reaches them:");
        for u in &plan.host_urls {
            crate::outln!("  {}", u.describe());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::chooses_permissions;

    #[test]
    fn a_chosen_permission_mode_is_kept() {
        let v = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        for chosen in [
            &["--permission-mode", "default"][..],
            &["--permission-mode=plan"],
            &["--verbose", "--permission-prompt-tool=stdio"],
            &["--permission-prompt-tool", "mcp__x__y"],
        ] {
            assert!(chooses_permissions(&v(chosen)), "{chosen:?}");
        }
        for not in [
            &["--output-format", "stream-json"][..],
            &["--permission-modes"],
            &["-p", "--", "--permission-mode"],
            &[],
        ] {
            assert!(!chooses_permissions(&v(not)), "{not:?}");
        }
    }
}
