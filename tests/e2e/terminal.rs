//! With a terminal, claude-vm asks; the answer decides, and nothing starts unasked.

use crate::support::*;

#[test]
fn no_template_on_a_terminal_offers_setup_and_respects_no() {
    let w = World::new();
    let r = w.run_tty(&["hello"], "n\n");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("Build it now"),
        "the question was asked: {}",
        r.stderr
    );
    assert_eq!(
        r.verbs(),
        ["--version"],
        "only Lima's version is checked (before asking); nothing may start after a no"
    );
    assert!(w.instances().is_empty());
}

#[test]
fn no_template_on_a_terminal_builds_it_after_yes_and_runs_the_session() {
    let w = World::new();
    let r = w.run_tty(&["hello"], "y\n");
    r.ok();
    // The first setup, then the session: a clone, its one shell, the delete.
    assert_eq!(
        r.verbs(),
        [&FIRST_SETUP[..], &["clone", "shell", "delete"]].concat()
    );
    assert_eq!(r.claude_argv(), ["--dangerously-skip-permissions", "hello"]);
}

#[test]
fn clean_on_a_terminal_deletes_only_after_yes() {
    let w = World::new();
    w.setup();
    let r = w.run_tty(&["clean"], "\n");
    assert_eq!(r.code, 2, "the default answer is no: {}", r.stderr);
    assert_eq!(w.templates().len(), 1);
    let r = w.run_tty(&["clean"], "yes\n");
    r.ok();
    assert!(w.instances().is_empty());
}
