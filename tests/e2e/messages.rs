//! claude-vm's own words: errors with one prefix, plain type names, singular and plural,
//! and help that keeps global and session flags apart.

use crate::support::*;

#[test]
fn clap_errors_carry_the_same_prefix_as_ours() {
    let w = World::new();
    for args in [
        &["setup", "--cpus", "lots"][..],
        &["setup", "--memory", "65"],
        &["list", "--bogus"],
        &["warm", "x"],
        &["completions", "tcsh"],
        &["-v", "-q", "list"],
    ] {
        let r = w.run(args);
        assert_eq!(r.code, 2, "{args:?}");
        assert!(
            r.stderr.starts_with("claude-vm: error: "),
            "{args:?}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("error: error"), "{}", r.stderr);
        assert!(r.calls.is_empty());
    }
    // Help and version are no errors.
    let r = w.run(&["setup", "--help"]);
    r.ok();
    assert!(
        r.stdout.contains("Usage:") && r.stderr.is_empty(),
        "{}",
        r.stderr
    );
}

#[test]
fn type_errors_in_files_use_plain_words() {
    let w = World::new();
    for (text, plain, serde) in [
        ("[vm]\ncpus = \"four\"\n", "expected a whole number", "u32"),
        ("[vm]\ndisk = -3\n", "expected a whole number", "u32"),
        (
            "[packages]\nsystem = \"jq\"\n",
            "expected a list",
            "sequence",
        ),
        (
            "[defaults]\nclaude_args = \"--model\"\n",
            "expected a list",
            "sequence",
        ),
    ] {
        w.write_project(".claude-vm.toml", text);
        let r = w.run(&["config", "validate"]);
        assert_eq!(r.code, 2, "{text}");
        assert!(
            r.stderr.contains(plain) && !r.stderr.contains(serde),
            "{text}: {}",
            r.stderr
        );
    }
}

#[test]
fn counts_are_singular_or_plural_and_nothing_to_clean_says_so() {
    let w = World::new();
    let r = w.run(&["gc"]);
    r.ok();
    assert!(
        r.stderr
            .contains("nothing to clean up: no claude-vm VM is left without a running owner"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("every claude-vm VM has"), "{}", r.stderr);
    w.setup();
    let r = w.run(&["warm", "1"]);
    let _ = w.command(&["warm", "0"], &w.project).output();
    r.ok();
    assert!(
        r.stderr.contains("booting 1 pre-booted VM for")
            && r.stderr.contains("1 pre-booted VM ready:"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("(s)"), "{}", r.stderr);
}

#[test]
fn subcommand_help_keeps_global_and_session_flags_apart() {
    let w = World::new();
    for cmd in ["shell", "agent"] {
        let r = w.run(&[cmd, "--help"]);
        r.ok();
        let help = &r.stdout;
        let session = help.find("Session options:").expect(help);
        let global = help.find("Global options:").expect(help);
        let section = |name: usize, other: usize| {
            if name < other {
                &help[name..other]
            } else {
                &help[name..]
            }
        };
        let (s, g) = (section(session, global), section(global, session));
        assert!(s.contains("--mount") && !s.contains("--dry-run"), "{s}");
        assert!(g.contains("--dry-run") && !g.contains("--mount"), "{g}");
        for flag in [
            "--mount",
            "--env ",
            "--env-file",
            "--runtime-script",
            "--inherit-env",
            "--host-url",
        ] {
            let text = &s[s.find(flag).unwrap()..];
            let entry = &text[..text[2..].find("\n      --").map_or(text.len(), |i| i + 2)];
            assert!(entry.contains("Repeatable"), "{flag}: {entry}");
        }
    }
    let r = w.run(&["shell", "--help"]);
    let words = r.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(!words.contains("before claude starts"), "{words}");
    assert!(
        words.contains("before claude, the shell or the command"),
        "{words}"
    );
}
