//! `claude-vm completions bash|zsh|fish`: scripts the shells accept and that complete our
//! subcommands and flags. bash is always there; zsh and fish are checked where installed and
//! must be installed in CI (`.ci/run` installs them).

use std::path::Path;
use std::process::Command;

use crate::support::CLAUDE_VM;

const SUBCOMMANDS: &[&str] = &[
    "agent",
    "shell",
    "setup",
    "list",
    "clean",
    "clean-all",
    "info",
    "config",
    "update",
    "doctor",
    "completions",
];

fn script(shell: &str) -> String {
    let out = Command::new(CLAUDE_VM)
        .args(["completions", shell])
        .env_clear()
        .output()
        .expect("run claude-vm completions");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    for sub in SUBCOMMANDS {
        assert!(text.contains(sub), "{shell}: `{sub}` is not completed");
    }
    assert!(
        !text.contains("update-check"),
        "internals stay out of completions"
    );
    text
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The shell, if installed; in CI it must be.
fn shell(name: &str) -> Option<&'static str> {
    let found = Command::new(name).arg("-c").arg("exit 0").status().is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} must be installed in CI to check its completion script"
        );
        return None;
    }
    Some(match name {
        "zsh" => "zsh",
        "fish" => "fish",
        _ => "bash",
    })
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run shell");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bash_completes_subcommands_and_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "claude-vm.bash", &script("bash"));
    run(Command::new("bash").arg("-n").arg(&file));
    // Complete as bash would on TAB: COMP_WORDS/COMP_CWORD, then the registered function.
    let complete = |line: &str| {
        run(Command::new("bash").arg("-c").arg(format!(
            r#"source "$1"
               COMP_LINE="{line}"; COMP_WORDS=({line}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
               [[ "$COMP_LINE" == *" " ]] && {{ COMP_WORDS+=(""); COMP_CWORD=$(( COMP_CWORD + 1 )); }}
               COMP_POINT=${{#COMP_LINE}}
               fn=$(complete -p claude-vm | sed -E 's/.*-F ([^ ]+).*/\1/')
               "$fn" claude-vm "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
               printf '%s\n' "${{COMPREPLY[@]}}""#
        ))
        .arg("bash")
        .arg(&file))
    };
    let words = complete("claude-vm do");
    assert_eq!(words.trim(), "doctor", "{words}");
    let words = complete("claude-vm update --");
    for flag in ["--check", "--version", "--yes"] {
        assert!(words.lines().any(|w| w == flag), "{flag} in {words}");
    }
    let words = complete("claude-vm clean-all --");
    assert!(words.lines().any(|w| w == "--yes"), "{words}");
    let words = complete("claude-vm completions ");
    for sh in ["bash", "zsh", "fish"] {
        assert!(words.lines().any(|w| w == sh), "{sh} in {words}");
    }
}

#[test]
fn zsh_accepts_its_script() {
    let text = script("zsh");
    assert!(text.starts_with("#compdef claude-vm"), "{}", &text[..40]);
    let Some(zsh) = shell("zsh") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "_claude-vm", &text);
    run(Command::new(zsh).arg("-n").arg(&file));
}

#[test]
fn fish_completes_subcommands() {
    let text = script("fish");
    assert!(text.contains("complete -c claude-vm"), "{text}");
    let Some(fish) = shell("fish") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "claude-vm.fish", &text);
    run(Command::new(fish).arg("--no-execute").arg(&file));
    let out = run(Command::new(fish)
        .arg("-c")
        .arg("source $argv[1]; complete -C 'claude-vm do'")
        .arg(&file)
        .env("HOME", tmp.path())
        .env("XDG_CONFIG_HOME", tmp.path()));
    assert!(out.lines().any(|l| l.starts_with("doctor")), "{out}");
}

#[test]
fn an_unknown_shell_names_the_choices() {
    let out = Command::new(CLAUDE_VM)
        .args(["completions", "tcsh"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bash") && err.contains("fish") && err.contains("zsh"),
        "{err}"
    );
}
