//! A mistyped claude-vm flag before the prompt (`--dry-rn`, `--mout`) would go to claude and
//! boot a VM. An argument close to one of our flags and not one of Claude Code's is caught.

/// Claude Code's own long flags: never taken for a typo of ours.
const CLAUDE_FLAGS: &[&str] = &[
    "add-dir",
    "agent",
    "agents",
    "allow-dangerously-skip-permissions",
    "allowed-tools",
    "allowedTools",
    "append-system-prompt",
    "betas",
    "chrome",
    "continue",
    "dangerously-skip-permissions",
    "debug",
    "debug-file",
    "disable-slash-commands",
    "disallowed-tools",
    "disallowedTools",
    "fallback-model",
    "fork-session",
    "help",
    "ide",
    "include-partial-messages",
    "input-format",
    "json-schema",
    "max-budget-usd",
    "max-turns",
    "mcp-config",
    "mcp-debug",
    "model",
    "no-chrome",
    "no-session-persistence",
    "output-format",
    "permission-mode",
    "permission-prompt-tool",
    "plugin-dir",
    "print",
    "replay-user-messages",
    "resume",
    "session-id",
    "setting-sources",
    "settings",
    "strict-mcp-config",
    "system-prompt",
    "tools",
    "verbose",
    "version",
];

/// The first of the leading flags of `args` (those before the prompt) that looks like a
/// mistyped one of `ours`: (what was typed, what was meant).
pub fn mistyped<'a>(args: &[String], ours: &[&'a str]) -> Option<(String, &'a str)> {
    for arg in args.iter().take_while(|a| a.starts_with('-')) {
        let Some(name) = arg.strip_prefix("--") else {
            continue;
        };
        let name = name.split_once('=').map_or(name, |(n, _)| n);
        if name.is_empty() || CLAUDE_FLAGS.contains(&name) || ours.contains(&name) {
            continue;
        }
        let near = ours
            .iter()
            .map(|o| (strsim::osa_distance(name, o), *o))
            .filter(|(d, o)| *d <= if o.len() <= 4 { 1 } else { 2 })
            .min_by_key(|(d, _)| *d);
        if let Some((_, meant)) = near {
            return Some((arg.clone(), meant));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &[&str] = &["dry-run", "mount", "disk", "env", "rebuild", "yes", "cpus"];

    fn check(args: &[&str]) -> Option<(String, &'static str)> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        mistyped(&args, OURS)
    }

    #[test]
    fn near_misses_of_our_flags_are_caught() {
        for (typed, meant) in [
            ("--dry-rn", "dry-run"),
            ("--dryrun", "dry-run"),
            ("--mout", "mount"),
            ("--mout=/x", "mount"),
            ("--rebuidl", "rebuild"),
            ("--dsk", "disk"),
            ("--cpu", "cpus"),
        ] {
            assert_eq!(check(&[typed, "fix it"]), Some((typed.to_owned(), meant)));
            // Behind other leading flags of claude's, still before the prompt.
            assert_eq!(
                check(&["-p", typed, "fix it"]),
                Some((typed.to_owned(), meant))
            );
        }
    }

    #[test]
    fn claudes_flags_prompts_and_far_words_pass() {
        for args in [
            &["--model", "opus", "fix it"][..],
            &["--print", "x"],
            &["--ide"],
            &["--resume"],
            &["--debug"],
            &["--settings", "s.json"],
            &["fix the --mout flag"],
            &["hello", "--mout"],
            &["--completely-different"],
            &["-m"],
            &["--"],
            &["--tools", "x"],
        ] {
            assert_eq!(check(args), None, "{args:?}");
        }
    }
}
