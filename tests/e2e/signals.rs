//! Every way out cleans up: Ctrl-C (SIGINT to the whole process group), SIGTERM and SIGHUP
//! to the process, a terminal that is closed, and the exit status says what happened. Real
//! processes, real signals; readiness comes from the call log or the process's output.

use crate::live::*;
use crate::support::*;

const CLAUDE_RUNNING: &str = "\"fake\":\"claude\"";

#[test]
fn ctrl_c_while_claude_runs_deletes_the_clone_and_exits_130() {
    let w = World::new();
    w.setup();
    let mut s = w.spawn(&["--sim-sleep", "60", "hello"]);
    s.await_stdout(CLAUDE_RUNNING);
    s.signal_group(libc::SIGINT);
    assert_eq!(s.finish(), 130, "{}", s.stderr());
    assert!(
        s.stderr()
            .contains("claude-vm: error: the session was interrupted by SIGINT; its VM"),
        "{}",
        s.stderr()
    );
    assert_eq!(w.calls_by(s.pid(), |a| a[0] == "delete"), 1);
    w.assert_nothing_left(&s.stderr());
}

#[test]
fn ctrl_c_during_the_clone_stops_it_and_deletes_what_it_made() {
    let w = World::new();
    w.setup();
    let mut s = w.spawn_with(&["hello"], &[("LIMA_SIM_DELAY", "clone=60")]);
    w.await_call(s.pid(), "clone");
    s.signal_group(libc::SIGINT);
    assert_eq!(s.finish(), 130, "{}", s.stderr());
    assert!(s.stderr().contains("interrupted"), "{}", s.stderr());
    assert_eq!(
        w.calls_by(s.pid(), |a| a[0] == "shell"),
        0,
        "no shell after Ctrl-C"
    );
    assert_eq!(w.calls_by(s.pid(), |a| a[0] == "delete"), 1);
    w.assert_nothing_left(&s.stderr());
}

#[test]
fn sigterm_and_sighup_to_the_process_are_passed_on_and_exit_143_and_129() {
    let w = World::new();
    w.setup();
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGHUP, 129)] {
        let mut s = w.spawn(&["--sim-sleep", "60", "hello"]);
        s.await_stdout(CLAUDE_RUNNING);
        // Only claude-vm gets it: it must stop limactl shell itself.
        s.signal(sig);
        assert_eq!(s.finish(), code, "{}", s.stderr());
        let name = if sig == libc::SIGTERM {
            "SIGTERM"
        } else {
            "SIGHUP"
        };
        assert!(
            s.stderr()
                .contains(&format!("the session was interrupted by {name}")),
            "{}",
            s.stderr()
        );
        assert_eq!(w.calls_by(s.pid(), |a| a[0] == "delete"), 1);
        w.assert_nothing_left(&s.stderr());
    }
}

#[test]
fn a_second_ctrl_c_during_a_slow_delete_does_not_abandon_it() {
    let w = World::new();
    w.setup();
    let mut s = w.spawn_with(
        &["--sim-sleep", "60", "hello"],
        &[("LIMA_SIM_DELAY", "delete=4")],
    );
    s.await_stdout(CLAUDE_RUNNING);
    s.signal_group(libc::SIGINT);
    let delete = w.await_call(s.pid(), "delete");
    s.signal_group(libc::SIGINT);
    s.await_stderr("still deleting the VM");
    assert_eq!(s.finish(), 130, "{}", s.stderr());
    assert!(w.ended(delete), "claude-vm waited for the delete to finish");
    w.assert_nothing_left(&s.stderr());
}

#[test]
fn a_third_ctrl_c_stops_waiting_loudly_and_the_next_command_finishes_the_job() {
    let w = World::new();
    w.setup();
    let mut s = w.spawn_with(
        &["--sim-sleep", "60", "hello"],
        &[("LIMA_SIM_DELAY", "delete=6")],
    );
    s.await_stdout(CLAUDE_RUNNING);
    s.signal_group(libc::SIGINT);
    let delete = w.await_call(s.pid(), "delete");
    s.signal_group(libc::SIGINT);
    s.await_stderr("press Ctrl-C once more");
    s.signal_group(libc::SIGINT);
    assert_eq!(s.finish(), 130, "{}", s.stderr());
    let err = s.stderr();
    assert!(err.contains("no longer waiting"), "{err}");
    assert!(
        err.contains("could not be deleted") && err.contains("next claude-vm command"),
        "the user is told what is left and what happens to it:\n{err}"
    );
    assert_eq!(w.journal().len(), 1, "the VM stays in the journal");
    // The delete runs on by itself, detached from claude-vm...
    wait_until("the detached delete", || w.ended(delete));
    // ...and the next command clears the journal entry (no delete: the VM is gone).
    let r = w.run(&["list"]);
    r.ok();
    assert_eq!(r.verbs(), ["list"], "{}", r.stderr);
    assert!(w.journal().is_empty());
}

#[test]
fn ctrl_c_during_setup_removes_the_unfinished_template() {
    let w = World::new();
    let mut s = w.spawn_with(&["setup"], &[("LIMA_SIM_DELAY", "shell=60")]);
    w.await_call(s.pid(), "shell");
    s.signal_group(libc::SIGINT);
    assert_eq!(s.finish(), 130, "{}", s.stderr());
    assert!(w.instances().is_empty(), "{:?}", w.instances());
    assert_eq!(w.calls_by(s.pid(), |a| a[0] == "stop"), 0);
    w.assert_nothing_left(&s.stderr());
}

#[test]
fn on_a_terminal_ctrl_c_is_a_keystroke_for_claude() {
    let w = World::new();
    w.setup();
    let mut t = w.spawn_on_terminal(&["--sim-keys", "hello"]);
    t.await_output("reading keys");
    // The terminal is raw while claude runs: Ctrl-C is the byte 0x03, for claude.
    t.type_keys(b"\x03");
    t.type_keys(b"q");
    assert_eq!(
        t.finish(),
        0,
        "claude-vm was not interrupted:\n{}",
        t.output()
    );
    let out = t.output();
    assert!(out.contains(r#""keys":"\u0003q""#), "{out}");
    assert!(out.contains(r#""tty":true"#), "{out}");
    assert!(t.is_cooked(), "the terminal is usable again");
    w.assert_nothing_left(&out);
}

#[test]
fn when_limactl_shell_is_killed_the_terminal_is_put_back() {
    let w = World::new();
    w.setup();
    let mut t = w.spawn_on_terminal(&["--sim-keys", "hello"]);
    t.await_output("reading keys");
    let shell = w.await_call(t.pid(), "shell");
    // ssh (here: the simulator's shell) dies without restoring the terminal's mode.
    signal(shell as i32, libc::SIGKILL);
    assert_eq!(t.finish(), 137, "{}", t.output());
    assert!(t.is_cooked(), "claude-vm restores the mode it saved");
    w.assert_nothing_left(&t.output());
}

#[test]
fn closing_the_terminal_deletes_the_clone_and_exits_129() {
    let w = World::new();
    w.setup();
    let mut t = w.spawn_on_terminal(&["--sim-sleep", "60", "hello"]);
    t.await_output(CLAUDE_RUNNING);
    // After the hangup every write to the terminal fails: cleanup must go on regardless.
    t.hang_up();
    assert_eq!(t.finish(), 129);
    assert_eq!(w.calls_by(t.pid(), |a| a[0] == "delete"), 1);
    w.assert_nothing_left("");
}
