//! The session script: environment, runtime scripts and the final command, in one shell.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{quote, quote_words, GuestScript};

/// What the session ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Final {
    /// `claude` with these arguments (defaults first, then the user's).
    Claude(Vec<String>),
    /// The user's interactive shell.
    Shell,
    /// A command and its arguments, run as they are (no shell parsing).
    Command(Vec<String>),
}

pub struct SessionInput<'a> {
    /// A file of `export` lines to source first.
    pub env_file: Option<&'a str>,
    pub runtime: &'a [GuestScript],
    pub last: &'a Final,
}

/// Runtime scripts are sourced, not run, so what they export reaches the final command; the
/// first one that fails stops the session with its status. `exec` hands the process over, so
/// the command's exit status is the session's.
pub fn session(input: &SessionInput) -> String {
    let mut s = String::from(
        "# claude-vm session script (generated; runs in the VM, in one shell)\n\
         cvm_script=''\n\
         trap 'cvm_status=$?; if [ -n \"$cvm_script\" ]; then printf \"claude-vm: runtime script %s exited with status %s\\n\" \"$cvm_script\" \"$cvm_status\" >&2; fi' EXIT\n\
         cvm_fail() { printf 'claude-vm: %s\\n' \"$1\" >&2; cvm_script=''; exit \"${2:-1}\"; }\n",
    );
    if let Some(env) = input.env_file {
        let _ = writeln!(
            s,
            ". {} || cvm_fail 'cannot read the session environment'",
            quote(env)
        );
    }
    for script in input.runtime {
        let label = quote(&script.label);
        let _ = writeln!(s, "cvm_script={label}");
        let _ = writeln!(
            s,
            ". {} || cvm_fail \"runtime script $cvm_script failed with status $?\" $?",
            quote(&script.guest_path)
        );
    }
    s.push_str("cvm_script=''\n");
    match input.last {
        Final::Claude(args) => {
            s.push_str(
                "command -v claude >/dev/null 2>&1 || cvm_fail 'claude is not installed in this VM; rebuild the template with: claude-vm setup' 127\n",
            );
            let _ = writeln!(s, "exec claude {}", quote_words(args));
        }
        // Not a login shell: /etc/profile would reset the PATH the runtime scripts set.
        Final::Shell => s.push_str("exec \"${SHELL:-/bin/bash}\" -i\n"),
        Final::Command(argv) => {
            let _ = writeln!(s, "exec {}", quote_words(argv));
        }
    }
    s
}

/// `export NAME='value'` lines, sourced by the session script. Names are validated shell
/// identifiers; values keep every byte.
pub fn env_file(env: &BTreeMap<String, String>) -> String {
    env.iter()
        .map(|(k, v)| format!("export {k}={}\n", quote(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::testing::run_bash;

    const HOSTILE: &[&str] = &[
        "a b",
        "\"q\"",
        "'s'",
        "back\\slash",
        "$HOME",
        "`id`",
        "new\nline",
        "é ✓",
        "",
        "-x",
        "*",
    ];

    fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    }

    #[test]
    fn command_arguments_arrive_byte_exact() {
        let mut argv = vec!["printf".to_string(), "<%s>".into()];
        argv.extend(HOSTILE.iter().map(|s| s.to_string()));
        let script = session(&SessionInput {
            env_file: None,
            runtime: &[],
            last: &Final::Command(argv),
        });
        let (code, out, err) = run_bash(&script, &[]);
        assert_eq!(code, 0, "{err}");
        let want: String = HOSTILE.iter().map(|s| format!("<{s}>")).collect();
        assert_eq!(out, want);
    }

    #[test]
    fn runtime_exports_reach_the_command_and_failures_stop_it() {
        let tmp = tempfile::tempdir().unwrap();
        let env = BTreeMap::from([("GREETING".to_string(), "it's \"$x\"\nok".to_string())]);
        let env_path = write(tmp.path(), "env.sh", &env_file(&env));
        let one = write(tmp.path(), "1.sh", "export FROM_ONE=\"$GREETING!\"\n");
        let two = write(tmp.path(), "2.sh", "export FROM_TWO=2\nfalse\n");
        let three = write(tmp.path(), "3.sh", "echo never-runs\n");
        let gs = |label: &str, p: &str| GuestScript {
            label: label.into(),
            guest_path: p.into(),
        };
        let last = Final::Command(vec![
            "sh".into(),
            "-c".into(),
            "printf '%s|%s' \"$FROM_ONE\" \"$FROM_TWO\"".into(),
        ]);

        let ok = [gs("one", &one)];
        let script = session(&SessionInput {
            env_file: Some(&env_path),
            runtime: &ok,
            last: &last,
        });
        let (code, out, _) = run_bash(&script, &[]);
        assert_eq!((code, out.as_str()), (0, "it's \"$x\"\nok!|"));

        let failing = [
            gs("one", &one),
            gs("scripts/two's.sh", &two),
            gs("three", &three),
        ];
        let script = session(&SessionInput {
            env_file: Some(&env_path),
            runtime: &failing,
            last: &last,
        });
        let (code, out, err) = run_bash(&script, &[]);
        assert_eq!(code, 1);
        assert_eq!(out, "", "neither the third script nor the command may run");
        assert!(
            err.contains("runtime script scripts/two's.sh failed with status 1"),
            "{err}"
        );
    }

    #[test]
    fn a_runtime_script_that_exits_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let bad = write(tmp.path(), "bad.sh", "exit 4\n");
        let rt = [GuestScript {
            label: "bad one".into(),
            guest_path: bad,
        }];
        let script = session(&SessionInput {
            env_file: None,
            runtime: &rt,
            last: &Final::Command(vec!["true".into()]),
        });
        let (code, _, err) = run_bash(&script, &[]);
        assert_eq!(code, 4);
        assert!(
            err.contains("runtime script bad one exited with status 4"),
            "{err}"
        );
    }

    #[test]
    fn exit_status_is_the_commands() {
        let last = Final::Command(vec!["sh".into(), "-c".into(), "exit 7".into()]);
        let script = session(&SessionInput {
            env_file: None,
            runtime: &[],
            last: &last,
        });
        assert_eq!(run_bash(&script, &[]).0, 7);
    }

    #[test]
    fn claude_gets_its_arguments_quoted() {
        let args: Vec<String> = ["--dangerously-skip-permissions", "fix `this` & that"]
            .map(String::from)
            .to_vec();
        let script = session(&SessionInput {
            env_file: None,
            runtime: &[],
            last: &Final::Claude(args),
        });
        assert!(
            script.contains("exec claude --dangerously-skip-permissions 'fix `this` & that'\n"),
            "{script}"
        );
        let (code, _, err) = run_bash(&format!("PATH=/nonexistent\n{script}"), &[]);
        assert_eq!(code, 127);
        assert!(err.contains("claude is not installed"), "{err}");
    }
}
