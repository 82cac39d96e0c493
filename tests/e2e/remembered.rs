//! The flags given to `claude-vm setup` are remembered with the template: sessions use its
//! resources, a plain `setup` rebuilds with them, `info` shows them; `--without TOOL` and
//! `--fresh` drop them.

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::support::*;

/// A host `gpgconf` that records each call and fails the way a missing agent does (two lines).
fn failing_gpgconf(w: &World) -> std::path::PathBuf {
    let marker = w.root.join("gpgconf-ran");
    let script = format!(
        "#!/bin/sh\necho \"$@\" >> '{}'\necho 'gpgconf: no agent running' >&2\necho 'gpgconf: fatal error' >&2\nexit 2\n",
        marker.display()
    );
    let path = w.bin.join("gpgconf");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    marker
}

fn manifest(w: &World) -> Value {
    let t = w.templates().remove(0);
    let text = std::fs::read_to_string(w.data_dir().join(format!("templates/{t}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn flag(call: &[String], name: &str) -> Option<String> {
    call.iter()
        .position(|a| a == name)
        .map(|i| call[i + 1].clone())
}

#[test]
fn sessions_use_the_templates_resources_unless_asked_otherwise() {
    let w = World::new();
    w.run(&["setup", "--cpus", "2", "--memory", "3"]).ok();
    let r = w.run(&["shell", "--", "true"]);
    r.ok();
    let clone = r.call("clone");
    assert_eq!(
        flag(clone, "--cpus"),
        None,
        "the template's 2 CPUs: {clone:?}"
    );
    assert_eq!(flag(clone, "--memory"), None, "{clone:?}");
    let r = w.run(&["shell", "--cpus", "3", "--", "true"]);
    r.ok();
    assert_eq!(flag(r.call("clone"), "--cpus").as_deref(), Some("3"));
    // A configuration file's value does not undo the flag the template was built with.
    w.write_project(".claude-vm.toml", "[vm]\ncpus = 6\n");
    w.run(&["trust"]).ok();
    let r = w.run(&["shell", "--", "true"]);
    r.ok();
    assert_eq!(flag(r.call("clone"), "--cpus"), None);
}

#[test]
fn a_plain_setup_rebuilds_with_the_remembered_flags_and_info_shows_them() {
    let w = World::new();
    failing_gpgconf(&w);
    w.run(&["setup", "--cpus", "2", "--gpg"]).ok();
    assert_eq!(manifest(&w)["tools"], serde_json::json!(["gpg"]));
    let r = w.run(&["info"]);
    r.ok();
    assert!(
        r.stdout.contains("tools:        gpg (in the template)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("flags:      --cpus 2 --gpg"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("2 CPUs"), "{}", r.stdout);

    let r = w.run(&["setup"]);
    r.ok();
    assert!(
        r.stderr
            .contains("remembered from the last setup: --cpus 2 --gpg"),
        "{}",
        r.stderr
    );
    // A project-only rebuild: the clone of the shared base takes the resources.
    assert_eq!(flag(r.call("clone"), "--cpus").as_deref(), Some("2"));
    assert_eq!(
        manifest(&w)["tools"],
        serde_json::json!(["gpg"]),
        "still there"
    );
    let r = w.run(&["info"]);
    assert!(r.stdout.contains("up to date: yes"), "{}", r.stdout);

    // Dropping one: --without names a tool (a typo is caught), --fresh forgets them all.
    let r = w.run(&["setup", "--without", "gpgg"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("did you mean `--without gpg`?"),
        "{}",
        r.stderr
    );
    assert!(r.calls.is_empty());
    w.run(&["setup", "--without", "gpg"]).ok();
    assert_eq!(manifest(&w)["tools"], serde_json::json!([]));
    assert_eq!(manifest(&w)["cpus"], 2, "the rest is still remembered");
    let r = w.run(&["setup", "--fresh"]);
    r.ok();
    assert!(!r.stderr.contains("remembered"), "{}", r.stderr);
    assert_eq!(flag(r.call("clone"), "--cpus").as_deref(), Some("4"));
    assert_eq!(manifest(&w)["setup_flags"], serde_json::json!({}));
}

#[test]
fn gpg_is_asked_only_when_a_session_starts_and_its_failure_is_one_line_with_a_fix() {
    let w = World::new();
    let marker = failing_gpgconf(&w);
    w.run(&["--dry-run", "setup", "--gpg"]).ok();
    assert!(!marker.exists(), "a dry run of setup ran gpgconf");
    w.run(&["setup", "--gpg"]).ok();
    assert!(!marker.exists(), "setup itself needs no host gpg");
    let r = w.run(&["--dry-run", "shell"]);
    r.ok();
    assert!(!marker.exists(), "a dry run of a session ran gpgconf");
    assert!(r.stderr.contains("not asked in a dry run"), "{}", r.stderr);

    let r = w.run(&["shell", "--", "true"]);
    r.ok();
    assert!(marker.exists(), "a session asks gpgconf");
    let warning: Vec<&str> = r.stderr.lines().filter(|l| l.contains("gpg")).collect();
    assert_eq!(warning.len(), 1, "one line: {}", r.stderr);
    let line = warning[0];
    assert!(
        line.contains("no agent running")
            && !line.contains("fatal error")
            && line.contains("gpgconf --launch gpg-agent")
            && line.contains("claude-vm setup --without gpg"),
        "{line}"
    );
}

#[test]
fn a_disk_smaller_than_the_templates_says_so() {
    let w = World::new();
    w.run(&["setup", "--disk", "30"]).ok();
    let r = w.run(&["shell", "--disk", "10", "--", "true"]);
    r.ok();
    assert!(
        r.stderr
            .contains("a disk of 10 GB is smaller than the template's 30 GB"),
        "{}",
        r.stderr
    );
    assert_eq!(flag(r.call("clone"), "--disk"), None);
    let r = w.run(&["shell", "--disk", "40", "--", "true"]);
    r.ok();
    assert!(!r.stderr.contains("smaller"), "{}", r.stderr);
    assert_eq!(flag(r.call("clone"), "--disk").as_deref(), Some("40"));
    let r = w.run(&["shell", "--", "true"]);
    assert!(
        !r.stderr.contains("smaller"),
        "the template's own size: {}",
        r.stderr
    );
}
