//! A mistyped claude-vm flag before the prompt stops with "did you mean" instead of going to
//! claude and booting a VM; `--` passes it on anyway, and claude's own flags pass as always.

use crate::support::*;

#[test]
fn a_mistyped_flag_stops_before_any_vm() {
    let w = World::new();
    w.setup();
    for (args, meant) in [
        (&["--dry-rn", "hello"][..], "--dry-run"),
        (&["--mout", "/tmp", "hello"], "--mount"),
        (&["--rebuidl", "hello"], "--rebuild"),
        (&["--dry-run", "--mout", "/tmp", "hello"], "--mount"),
        (&["agent", "--inherit-evn", "X", "hello"], "--inherit-env"),
        (&["-p", "--allow-any-dr", "hello"], "--allow-any-dir"),
    ] {
        let r = w.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(&format!("did you mean `{meant}`?"))
                && r.stderr.contains("claude-vm: error:")
                && r.stderr.contains("put `--` before it"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(r.calls.is_empty(), "{args:?}: {:?}", r.calls);
        assert!(r.stdout.is_empty(), "claude never ran: {}", r.stdout);
    }
}

#[test]
fn after_a_double_dash_and_for_claudes_own_flags_everything_goes_to_claude() {
    let w = World::new();
    w.setup();
    let r = w.run(&["--", "--mout", "hello"]);
    r.ok();
    let argv = r.claude_argv();
    assert!(argv.contains(&"--mout".to_owned()), "{argv:?}");
    for args in [
        &["--model", "opus", "hello"][..],
        &["--resume", "abc"],
        &["--debug", "hello"],
        &["hello", "--mout"],
    ] {
        let r = w.run(args);
        r.ok();
        let argv = r.claude_argv();
        assert!(argv.contains(&args[0].to_owned()), "{args:?}: {argv:?}");
    }
}
