//! Running one invocation the way cobra does: find the subcommand among
//! leading flags, parse flags strictly, apply Lima's persistent flags,
//! check argument counts with Lima's `WrapArgsError` text, then run.

use std::ffi::OsString;

use crate::commands::{
    commands, help_text, root_help, use_line, ArgRule, Command, GLOBAL, NOT_EMULATED, ROOT_ONLY,
};
use crate::ctx::Ctx;
use crate::fail::{Fail, Res};
use crate::flags::{self, Parsed, Spec};
use crate::gofmt::quote;
use crate::host::Host;
use crate::inject::Injector;
use crate::{editflags, logrus, names, output, sys};

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

/// cobra's "unknown command" with its "Did you mean this?" suggestions.
fn unknown_command(name: &str, cmds: &[Command]) -> Fail {
    let mut suggestions: Vec<&str> = cmds
        .iter()
        .map(|c| c.name)
        .chain(NOT_EMULATED.iter().copied())
        .filter(|c| levenshtein(name, c) <= 2 || c.starts_with(&name.to_lowercase()))
        .collect();
    suggestions.sort();
    let mut msg = format!("unknown command {} for \"limactl\"", quote(name));
    if !suggestions.is_empty() {
        msg.push_str("\n\nDid you mean this?\n");
        for s in suggestions {
            msg.push_str(&format!("\t{s}\n"));
        }
    }
    Fail::fatal(msg)
}

/// cobra's `stripFlags` + `Find`: the first word that is not a flag (or a
/// flag's value) names the command; it is removed from the arguments.
fn find_command(args: &[OsString], root_specs: &[Spec]) -> Option<usize> {
    let mut i = 0;
    while i < args.len() {
        let s = args[i].to_string_lossy();
        if s == "--" {
            return None;
        }
        if let Some(name) = s.strip_prefix("--") {
            if !s.contains('=') && !flags::is_bool(root_specs, name) {
                i += 1;
            }
        } else if s.starts_with('-') && s.len() == 2 {
            if !flags::is_bool(root_specs, &s[1..]) {
                i += 1;
            }
        } else if !s.starts_with('-') && !s.is_empty() {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn check_args(c: &Command, n: usize) -> Res<()> {
    let problem = match c.args {
        ArgRule::Exact(k) if n != k => format!("accepts {k} arg(s), received {n}"),
        ArgRule::Min(k) if n < k => format!("requires at least {k} arg(s), only received {n}"),
        ArgRule::Max(k) if n > k => format!("accepts at most {k} arg(s), received {n}"),
        _ => return Ok(()),
    };
    let path = format!("limactl {}", c.name);
    Err(Fail::fatal(format!(
        "{} {problem}.\nSee '{path} --help'.\n\nUsage:  {}\n\n{}",
        quote(&path),
        use_line(c),
        c.short
    )))
}

// Lima's PersistentPreRunE: logging flags, and --tty vs --yes.
fn process_global_flags(c: &Command, p: &mut Parsed) -> Res<bool> {
    if p.bool("debug") {
        logrus::set_level(logrus::Level::Debug);
    }
    let level = p.str("log-level");
    if !level.is_empty() {
        logrus::set_level(logrus::parse_level(&level)?);
    }
    match p.str("log-format").as_str() {
        "text" => {}
        "json" => logrus::set_json(true),
        other => {
            return Err(Fail::fatal(format!(
                "unsupported log-format: {}",
                quote(other)
            )))
        }
    }
    if p.changed("yes") && p.changed("tty") {
        return Err(Fail::fatal(
            "cannot use both --tty and --yes flags at the same time",
        ));
    }
    let mut tty = if p.changed("tty") {
        p.bool("tty")
    } else {
        sys::isatty(1)
    };
    if p.changed("yes") {
        if ["clone", "edit", "rename"].contains(&c.name) {
            logrus::warn("--yes flag is deprecated (--tty=false is still supported and works in the same way. Also consider using --start)");
        }
        if p.bool("yes") {
            tty = false;
        }
    }
    p.set_bool("tty", tty);
    Ok(tty)
}

fn run(args: Vec<OsString>, isolation: &mut Option<&'static str>) -> Res<()> {
    let cmds = commands();
    let root_specs: Vec<Spec> = GLOBAL.iter().chain(ROOT_ONLY).copied().collect();
    let Some(at) = find_command(&args, &root_specs) else {
        let p = flags::parse(&root_specs, &args, true)?;
        if p.bool("version") {
            return output::stdout(&format!("limactl version {}\n", crate::version()));
        }
        return output::stdout(&root_help(&cmds));
    };
    let name = args[at].to_string_lossy().into_owned();
    let mut rest = args.clone();
    rest.remove(at);
    if name == "help" {
        let topic = rest.first().map(|a| a.to_string_lossy().into_owned());
        return match topic.and_then(|t| {
            cmds.iter()
                .find(|c| c.name == t || c.aliases.contains(&t.as_str()))
        }) {
            Some(c) => output::stdout(&help_text(c)),
            None => output::stdout(&root_help(&cmds)),
        };
    }
    let Some(c) = cmds
        .iter()
        .find(|c| c.name == name || c.aliases.contains(&name.as_str()))
    else {
        if NOT_EMULATED.contains(&name.as_str()) {
            return Err(Fail::fatal(format!(
                "command {} is not supported by the simulator",
                quote(&name)
            )));
        }
        return Err(unknown_command(&name, &cmds));
    };
    let specs: Vec<Spec> = c.flags.iter().chain(GLOBAL).copied().collect();
    let mut p = flags::parse(&specs, &rest, c.interspersed)?;
    if p.bool("help") {
        return output::stdout(&help_text(c));
    }
    // cobra validates arguments before the persistent pre-run hook.
    check_args(c, p.args.len())?;
    if matches!(c.args, ArgRule::None) && !p.args.is_empty() {
        return Err(Fail::fatal(format!(
            "unknown command {} for {}",
            quote(&p.args[0].to_string_lossy()),
            quote(&format!("limactl {}", c.name))
        )));
    }
    let tty = process_global_flags(c, &mut p)?;
    editflags::reject_unsupported(&p)?;
    let lima_home = names::lima_dir()?;
    let mut ctx = Ctx {
        inject: Injector::from_env(&lima_home)?,
        lima_home,
        host: Host::current()?,
        version: crate::version(),
        tty,
        exe: std::env::current_exe()
            .map_err(|e| Fail::fatal(format!("cannot find the simulator binary: {e}")))?,
        isolation: None,
    };
    let result = (c.run)(&mut ctx, &p);
    *isolation = ctx.isolation;
    result
}

/// Runs one `limactl` invocation; returns the exit status and, for `shell`,
/// the guest isolation mode.
pub fn main(args: Vec<OsString>) -> (i32, Option<&'static str>) {
    let mut isolation = None;
    let code = match run(args, &mut isolation) {
        Ok(()) => 0,
        Err(f) => {
            if let Some(msg) = f.msg {
                logrus::fatal(&msg);
            }
            f.code
        }
    };
    (code, isolation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn finds_the_command_after_global_flags() {
        let specs: Vec<Spec> = GLOBAL.iter().chain(ROOT_ONLY).copied().collect();
        assert_eq!(
            find_command(&os(&["--debug", "--log-level", "info", "list"]), &specs),
            Some(3)
        );
        assert_eq!(
            find_command(&os(&["--tty=false", "start", "x"]), &specs),
            Some(1)
        );
        assert_eq!(find_command(&os(&["--version"]), &specs), None);
    }

    #[test]
    fn argument_errors_match_lima() {
        let cmds = commands();
        let clone = cmds.iter().find(|c| c.name == "clone").unwrap();
        let msg = check_args(clone, 1).unwrap_err().msg.unwrap();
        assert_eq!(
            msg,
            "\"limactl clone\" accepts 2 arg(s), received 1.\nSee 'limactl clone --help'.\n\nUsage:  limactl clone OLDINST NEWINST [flags]\n\nClone an instance of Lima"
        );
        let shell = cmds.iter().find(|c| c.name == "shell").unwrap();
        assert!(check_args(shell, 0)
            .unwrap_err()
            .msg
            .unwrap()
            .contains("requires at least 1 arg(s), only received 0.\nSee 'limactl shell --help'.\n\nUsage:  limactl shell [flags] INSTANCE [COMMAND...]\n"));
    }

    #[test]
    fn suggests_like_cobra() {
        let msg = unknown_command("strat", &commands()).msg.unwrap();
        assert_eq!(
            msg,
            "unknown command \"strat\" for \"limactl\"\n\nDid you mean this?\n\tstart\n"
        );
        assert_eq!(
            unknown_command("frobnicate", &commands()).msg.unwrap(),
            "unknown command \"frobnicate\" for \"limactl\""
        );
    }
}
