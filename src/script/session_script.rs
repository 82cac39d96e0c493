//! The session script: environment, runtime scripts and the final command, in one shell.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{quote, quote_words, GuestScript};

/// What the session ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Final {
    /// `claude` with these arguments (defaults first, then the user's).
    Claude(Vec<String>),
    /// `claude` speaking to a program over stdin and stdout (`agent --stdio`): nothing
    /// before it may write to stdout or read stdin (those go to stderr and /dev/null).
    ClaudeStdio(Vec<String>),
    /// The user's interactive shell.
    Shell,
    /// A command and its arguments, run as they are (no shell parsing).
    Command(Vec<String>),
}

pub struct SessionInput<'a> {
    /// A file of `export` lines to source first.
    pub env_file: Option<&'a str>,
    pub runtime: &'a [GuestScript],
    /// Folders shown at a second guest path by a link (target, link), made before anything
    /// else runs. Paths may start with `{{.Home}}`, the guest home.
    pub links: &'a [(String, String)],
    /// Claude Code's per-session answers, given just before the final command.
    pub claude_state: Option<ClaudeState<'a>>,
    pub last: &'a Final,
    /// The network rules and the privilege drop, around the final command (None: neither).
    pub enforcement: Option<&'a super::Enforcement>,
}

/// The per-session part of Claude Code's state: these directories trusted, and the
/// forwarded API key (read from the environment in the guest) approved.
pub struct ClaudeState<'a> {
    /// The guest path of [`super::CLAUDE_STATE_PROGRAM`].
    pub program: &'a str,
    pub trusted_dirs: &'a [String],
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
    if matches!(input.last, Final::ClaudeStdio(_)) {
        // The program's pipes are set aside on 3 and 4 until claude gets them.
        s.push_str("exec 3>&1 4<&0 >&2 </dev/null\n");
    }
    s.push_str(DEDUP_PATH);
    if let Some(env) = input.env_file {
        let _ = writeln!(
            s,
            ". {} || cvm_fail 'cannot read the session environment'",
            quote(env)
        );
    }
    s.push_str(&link_lines(input.links));
    if input.enforcement.is_some() {
        s.push_str(&super::session_proxy_config());
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
    if let Some(state) = &input.claude_state {
        let _ = writeln!(
            s,
            "if command -v python3 >/dev/null 2>&1; then\n\
             \x20 python3 {} session {} || echo 'claude-vm: warning: could not record the first-run answers: Claude Code may ask its first-run questions' >&2\n\
             else\n\
             \x20 echo 'claude-vm: warning: python3 is missing in this VM, so Claude Code may ask its first-run questions; rebuild the template with: claude-vm setup' >&2\n\
             fi",
            quote(state.program),
            quote_words(state.trusted_dirs)
        );
    }
    match input.last {
        Final::Claude(args) | Final::ClaudeStdio(args) => {
            if matches!(input.last, Final::ClaudeStdio(_)) {
                s.push_str("exec >&3 <&4 3>&- 4<&-\n");
            }
            s.push_str(
                "command -v claude >/dev/null 2>&1 || cvm_fail 'claude is not installed in this VM; rebuild the template with: claude-vm setup' 127\n",
            );
            final_line(&mut s, input, &format!("exec claude {}", quote_words(args)));
        }
        // Not a login shell: /etc/profile would reset the PATH the runtime scripts set.
        Final::Shell => final_line(&mut s, input, "exec \"${SHELL:-/bin/bash}\" -i"),
        Final::Command(argv) => {
            final_line(&mut s, input, &format!("exec {}", quote_words(argv)));
        }
    }
    s
}

/// The final command, behind the root step and the drop when the session enforces a policy.
fn final_line(s: &mut String, input: &SessionInput, command: &str) {
    match input.enforcement {
        Some(e) => s.push_str(&super::drop_and_run(e, command)),
        None => {
            s.push_str(command);
            s.push('\n');
        }
    }
}

/// Shell lines that link each (target, link) pair, with sudo where the guest user cannot
/// (before the agent runs; ordinary Lima guests allow it). Empty for no links.
pub(super) fn link_lines(links: &[(String, String)]) -> String {
    if links.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "cvm_link() {\n\
         \x20 if [ -e \"$2\" ] && [ ! -L \"$2\" ]; then rmdir \"$2\" 2>/dev/null || sudo -n rmdir \"$2\" 2>/dev/null || cvm_fail \"cannot show $1 at $2: something else is there\"; fi\n\
         \x20 cvm_up=${2%/*}; cvm_up=${cvm_up:-/}\n\
         \x20 mkdir -p \"$cvm_up\" 2>/dev/null || sudo -n mkdir -p \"$cvm_up\" || cvm_fail \"cannot make $cvm_up\"\n\
         \x20 ln -sfn \"$1\" \"$2\" 2>/dev/null || sudo -n ln -sfn \"$1\" \"$2\" || cvm_fail \"cannot show $1 at $2\"\n\
         }\n",
    );
    for (target, at) in links {
        let _ = writeln!(s, "cvm_link {} {}", guest_word(target), guest_word(at));
    }
    s
}

/// A guest path as one shell word: `{{.Home}}` (Lima's guest home) becomes `"$HOME"`.
fn guest_word(path: &str) -> String {
    match path.strip_prefix(crate::config::mounts::GUEST_HOME) {
        Some(rest) => format!("\"$HOME\"{}", quote(rest)),
        None => quote(path).into_owned(),
    }
}

/// Login shells add `~/.local/bin` more than once (the image's profile, the installer's
/// lines, ours): keep each PATH entry once, in first-seen order, and drop empty ones (an
/// empty entry would mean the current directory).
const DEDUP_PATH: &str = "cvm_path=; cvm_rest=\"$PATH:\"\n\
while [ -n \"$cvm_rest\" ]; do\n\
\x20 cvm_dir=${cvm_rest%%:*}; cvm_rest=${cvm_rest#*:}\n\
\x20 case \":$cvm_path:\" in *\":$cvm_dir:\"*) ;; *) [ -n \"$cvm_dir\" ] && cvm_path=${cvm_path:+$cvm_path:}$cvm_dir ;; esac\n\
done\n\
PATH=$cvm_path; export PATH; unset cvm_path cvm_rest cvm_dir\n";

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
            links: &[],
            claude_state: None,
            enforcement: None,
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
            links: &[],
            claude_state: None,
            enforcement: None,
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
            links: &[],
            claude_state: None,
            enforcement: None,
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
    fn in_stdio_mode_only_claude_has_stdin_and_stdout() {
        use std::io::Write;
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let claude = write(&bin, "claude", "#!/bin/sh\necho \"claude: $*\"\ncat\n");
        std::fs::set_permissions(&claude, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        // A runtime script that talks on stdout and would eat the program's first line.
        let rt = write(
            tmp.path(),
            "rt.sh",
            "echo noise\nread -r got || got=nothing\necho \"rt read: $got\" >&2\nexport PATH\n",
        );
        let runtime = [GuestScript {
            label: "rt".into(),
            guest_path: rt,
        }];
        let script = session(&SessionInput {
            env_file: None,
            runtime: &runtime,
            links: &[],
            claude_state: None,
            enforcement: None,
            last: &Final::ClaudeStdio(vec!["--input-format".into(), "stream-json".into()]),
        });
        let mut child = std::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"{\"type\":\"user\"}\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{stderr}");
        assert_eq!(
            stdout,
            "claude: --input-format stream-json\n{\"type\":\"user\"}\n"
        );
        assert!(
            stderr.contains("noise") && stderr.contains("rt read: nothing"),
            "{stderr}"
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
            links: &[],
            claude_state: None,
            enforcement: None,
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
            links: &[],
            claude_state: None,
            enforcement: None,
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
            links: &[],
            claude_state: None,
            enforcement: None,
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

    #[test]
    fn path_entries_are_kept_once_in_order() {
        let script = session(&SessionInput {
            env_file: None,
            runtime: &[],
            links: &[],
            claude_state: None,
            enforcement: None,
            last: &Final::Command(vec!["printenv".into(), "PATH".into()]),
        });
        let (code, out, err) = run_bash(
            &format!(
                "PATH=/h/.local/bin:/usr/bin::/h/.local/bin:/bin:/usr/bin:/h/.local/bin\n{script}"
            ),
            &[],
        );
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.trim_end(), "/h/.local/bin:/usr/bin:/bin");
    }

    #[test]
    fn the_first_run_answers_come_before_the_command_and_never_stop_it() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("log");
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        // A python3 that records its arguments and fails: the session still runs.
        let fake = write(
            &bin,
            "python3",
            &format!(
                "#!/bin/sh\nprintf '<%s>' \"$@\" > {}\nexit 3\n",
                log.display()
            ),
        );
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let dirs = ["/src/my app".to_string(), "/src/main's".to_string()];
        let script = session(&SessionInput {
            env_file: None,
            runtime: &[],
            links: &[],
            claude_state: Some(ClaudeState {
                program: "/mnt/claude-vm/claude-state.py",
                trusted_dirs: &dirs,
            }),
            enforcement: None,
            last: &Final::Command(vec!["echo".into(), "ran".into()]),
        });
        let (code, out, err) = run_bash(
            &format!("PATH={}:/usr/bin:/bin\n{script}", bin.display()),
            &[],
        );
        assert_eq!((code, out.as_str()), (0, "ran\n"), "{err}");
        assert!(
            err.contains("could not record the first-run answers"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "</mnt/claude-vm/claude-state.py><session></src/my app></src/main's>"
        );
        let (code, out, err) = run_bash(
            &format!(
                "PATH=/nonexistent\n{}",
                script.replace("exec echo", "exec /bin/echo")
            ),
            &[],
        );
        assert_eq!((code, out.as_str()), (0, "ran\n"), "{err}");
        assert!(err.contains("python3 is missing"), "{err}");
    }

    #[test]
    fn an_enforced_session_drops_privileges_around_the_final_command_only() {
        let e = crate::script::Enforcement {
            proxy: "192.168.5.2:3128".parse().unwrap(),
            host_ports: vec![],
            keep_sudo: false,
        };
        let last = Final::ClaudeStdio(vec!["--input-format".into(), "stream-json".into()]);
        let input = |enforcement| SessionInput {
            env_file: None,
            runtime: &[],
            links: &[],
            claude_state: None,
            enforcement,
            last: &last,
        };
        let plain = session(&input(None));
        let enforced = session(&input(Some(&e)));
        let command = "exec claude --input-format stream-json";
        assert!(plain.ends_with(&format!("{command}\n")));
        assert!(!plain.contains("sudo -n"));
        let drop = crate::script::drop_and_run(&e, command);
        let proxied = crate::script::session_proxy_config();
        assert_eq!(
            enforced.replacen(&proxied, "", 1),
            plain.replace(&format!("{command}\n"), &drop)
        );
        // apt and sudo learn the proxy before the runtime scripts (which may use sudo).
        assert!(enforced.find(&proxied).unwrap() < enforced.rfind("cvm_script=''\n").unwrap());
        // After the program's pipes are back on 0 and 1 (sudo closes every other descriptor).
        assert!(enforced.find("exec >&3 <&4 3>&- 4<&-").unwrap() < enforced.find(&drop).unwrap());
    }
}
