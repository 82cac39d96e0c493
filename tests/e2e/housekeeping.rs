//! list, clean, clean-all, info, config.

use crate::support::*;

#[test]
fn list_shows_templates_and_clean_needs_confirmation() {
    let w = World::new();
    w.setup();
    let t = w.templates().remove(0);
    let r = w.run(&["list"]);
    r.ok();
    assert!(
        r.stdout.contains(&t) && r.stdout.contains(w.project.to_str().unwrap()),
        "{}",
        r.stdout
    );
    assert_eq!(r.verbs(), ["list"]);

    let r = w.run(&["clean"]);
    assert_eq!(r.code, 2, "no terminal and no --yes: refuse");
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
    assert_eq!(w.templates(), std::slice::from_ref(&t));

    let r = w.run(&["clean", "--yes"]);
    r.ok();
    assert_eq!(r.verbs(), ["list", "delete"]);
    assert!(w.instances().is_empty());
    assert!(!w.data_dir().join(format!("templates/{t}.json")).exists());
    let r = w.run(&["clean", "-y"]);
    r.ok();
    assert!(r.stderr.contains("nothing to clean"), "{}", r.stderr);
}

#[test]
fn clean_all_removes_every_claude_vm_instance_and_nothing_else() {
    let w = World::new();
    w.setup();
    // Another project's template, and an unrelated Lima instance.
    let other = w.root.join("src/other");
    std::fs::create_dir_all(&other).unwrap();
    git(&other, &["init", "-q"]);
    w.run_in(&["setup"], &other).ok();
    std::fs::create_dir_all(w.lima_home.join("_keep")).ok();
    let unrelated = std::process::Command::new(w.bin.join("limactl"))
        .args([
            "create",
            "--tty=false",
            "--name",
            "mine",
            "template:debian-13",
        ])
        .env("HOME", &w.home)
        .output()
        .unwrap();
    assert!(
        unrelated.status.success(),
        "{}",
        String::from_utf8_lossy(&unrelated.stderr)
    );
    assert_eq!(w.templates().len(), 2);

    assert_eq!(w.run(&["clean-all"]).code, 2);
    let r = w.run(&["clean-all", "--yes"]);
    r.ok();
    assert_eq!(
        r.verbs(),
        ["list", "delete"],
        "one delete call for all of them"
    );
    assert_eq!(w.instances(), ["mine"]);
}

#[test]
fn info_and_config_describe_the_project() {
    let w = World::new();
    w.write_project(".claude-vm.toml", "[vm]\ncpus = 6\n[tools]\nnode = true\n");
    let r = w.run(&["info"]);
    r.ok();
    for part in [
        w.project.to_str().unwrap(),
        "claude-vm-app-",
        "not built",
        "6 CPUs",
        "node",
    ] {
        let part = if part == "not built" {
            "no (run `claude-vm setup`)"
        } else {
            part
        };
        assert!(
            r.stdout.contains(part),
            "{part:?} missing in:\n{}",
            r.stdout
        );
    }
    assert!(r.calls.is_empty());
    let r = w.run(&["config", "validate"]);
    r.ok();
    assert!(r.stdout.contains("is valid"));
    let r = w.run(&["config", "validate", "/nonexistent.toml"]);
    assert_eq!(r.code, 2);
}

#[test]
fn version_and_help() {
    let w = World::new();
    let r = w.run(&["--version"]);
    r.ok();
    assert_eq!(
        r.stdout.trim(),
        format!("claude-vm {}", env!("CARGO_PKG_VERSION"))
    );
    let r = w.run(&["--help"]);
    r.ok();
    for cmd in [
        "setup",
        "shell",
        "list",
        "clean",
        "clean-all",
        "info",
        "config",
        "--dry-run",
        "--verbose",
    ] {
        assert!(r.stdout.contains(cmd), "{cmd} missing from --help");
    }
}
