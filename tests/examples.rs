//! Every configuration file in examples/ is valid: `claude-vm config validate` accepts it,
//! with a HOME holding the directories the examples mount.

use std::path::Path;
use std::process::Command;

#[test]
fn every_example_validates() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let home = tempfile::tempdir().unwrap();
    for dir in ["datasets", "shared"] {
        std::fs::create_dir(home.path().join(dir)).unwrap();
    }
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let out = Command::new(env!("CARGO_BIN_EXE_claude-vm"))
            .args(["config", "validate"])
            .arg(&path)
            .current_dir(home.path())
            .env_clear()
            .env("HOME", home.path())
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} does not validate:\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(
        checked >= 1,
        "no example configuration found in {}",
        examples.display()
    );
}

#[test]
fn a_broken_example_would_be_caught() {
    let home = tempfile::tempdir().unwrap();
    let bad = home.path().join("bad.toml");
    std::fs::write(&bad, "[vm]\ncpu = 4\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_claude-vm"))
        .args(["config", "validate"])
        .arg(&bad)
        .current_dir(home.path())
        .env_clear()
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `cpus`?"));
}
