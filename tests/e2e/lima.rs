//! Lima itself: missing or too old is detected up front with the fix; the version check
//! runs once per limactl binary, not once per session.

use crate::support::*;

#[test]
fn lima_older_than_2_is_refused_up_front_with_the_upgrade_hint() {
    let mut w = World::new();
    w.set_env("LIMA_SIM_VERSION", "1.2.1");
    for args in [&["setup"][..], &["hello"], &["list"], &["gc"]] {
        let r = w.run(args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("Lima 1.2.1") && r.stderr.contains("too old"),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("brew upgrade lima"), "{}", r.stderr);
        assert!(
            r.verbs().iter().all(|v| *v == "--version"),
            "nothing but the version check: {:?}",
            r.calls
        );
    }
}

#[test]
fn the_version_is_checked_once_per_limactl_binary() {
    let w = World::new();
    let r = w.setup();
    assert_eq!(r.verbs()[0], "--version");
    let r = w.run(&["hello"]);
    assert_eq!(r.verbs(), ["clone", "shell", "delete"], "cached");
    // Another binary (an upgrade): checked again.
    std::fs::remove_file(w.bin.join("limactl")).unwrap();
    std::fs::copy(simulator(), w.bin.join("limactl")).unwrap();
    let r = w.run(&["hello"]);
    assert_eq!(r.verbs(), ["--version", "clone", "shell", "delete"]);
    let r = w.run(&["hello"]);
    assert_eq!(r.verbs(), ["clone", "shell", "delete"]);
}

#[test]
fn missing_limactl_is_found_before_anything_else() {
    let w = World::new();
    std::fs::remove_file(w.bin.join("limactl")).unwrap();
    for args in [&["hello"][..], &["list"], &["clean", "--yes"]] {
        let r = w.run(args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("`limactl` was not found"), "{}", r.stderr);
        assert!(r.stderr.contains("brew install lima"), "{}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
}
