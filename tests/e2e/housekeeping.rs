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
    // More CPUs than the user's own configuration: approved, as the user would.
    w.run(&["trust"]).ok();
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

/// A second project with its own template.
fn other_project(w: &World) -> std::path::PathBuf {
    let other = w.root.join("src/other");
    std::fs::create_dir_all(&other).unwrap();
    git(&other, &["init", "-q"]);
    w.run_in(&["setup"], &other).ok();
    other
}

#[test]
fn dry_runs_of_clean_count_and_name_the_vms_that_exist() {
    let w = World::new();
    let r = w.run(&["--dry-run", "clean-all"]);
    r.ok();
    assert!(r.stderr.contains("nothing to clean"), "{}", r.stderr);
    w.setup();
    let other = other_project(&w);
    let templates = w.templates();
    assert_eq!(templates.len(), 2);
    let bases = w.bases();
    assert_eq!(bases.len(), 1, "both templates were cloned from one base");
    let r = w.run(&["--dry-run", "clean-all"]);
    r.ok();
    assert!(
        r.stdout.contains("would delete all 3 claude-vm VMs"),
        "{}",
        r.stdout
    );
    for t in templates.iter().chain(&bases) {
        assert!(r.stdout.contains(t.as_str()), "{t} in {}", r.stdout);
    }
    assert_eq!(r.verbs(), ["list"], "a read-only question, nothing else");
    assert_eq!(w.templates(), templates, "nothing deleted");

    // One project's clean names its own template only, and says 1 VM, not "all 1".
    let r = w.run_in(&["--dry-run", "clean"], &other);
    r.ok();
    let mine: Vec<&String> = templates
        .iter()
        .filter(|t| r.stdout.contains(t.as_str()))
        .collect();
    assert_eq!(mine.len(), 1, "{}", r.stdout);
    w.run_in(&["clean", "--yes"], &other).ok();
    let r = w.run(&["--dry-run", "clean-all"]);
    assert!(
        r.stdout.contains("would delete all 2 claude-vm VMs"),
        "the template and the shared base: {}",
        r.stdout
    );
    // `clean` leaves the shared base (other projects may clone it): the only VM left.
    w.run(&["clean", "--yes"]).ok();
    let r = w.run(&["--dry-run", "clean-all"]);
    assert!(
        r.stdout.contains("would delete the only claude-vm VM"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains(&bases[0]), "{}", r.stdout);
    assert!(!r.stdout.contains("VMs"), "{}", r.stdout);
}

#[test]
fn clean_all_lists_what_it_deletes_before_asking() {
    let w = World::new();
    w.setup();
    other_project(&w);
    let templates = w.templates();
    let r = w.run(&["clean-all"]);
    assert_eq!(r.code, 2, "no terminal, no --yes");
    let listed = r
        .stderr
        .lines()
        .find(|l| l.contains("to be deleted:"))
        .unwrap_or_else(|| panic!("no list before the question:\n{}", r.stderr));
    for t in &templates {
        assert!(listed.contains(t.as_str()), "{t} in {listed}");
    }
    assert_eq!(w.templates(), templates);
}

#[test]
fn clean_removes_the_locks_logs_and_pool_of_the_deleted_template_only() {
    let w = World::new();
    w.setup();
    let other = other_project(&w);
    let (mine, theirs): (Vec<String>, Vec<String>) = {
        let all = w.templates();
        let r = w.run(&["info"]);
        all.into_iter().partition(|t| r.stdout.contains(t.as_str()))
    };
    let (mine, theirs) = (&mine[0], &theirs[0]);
    // What a template leaves in the data directory: both locks, a setup log, a pool folder
    // and its log (as `warm` and its keeper write them).
    let data = w.data_dir();
    for t in [mine, theirs] {
        for rel in [
            format!("locks/{t}.setup.lock"),
            format!("locks/{t}.template.lock"),
            format!("logs/{t}.setup.log"),
            format!("logs/{t}.pool.log"),
            format!("pool/{t}/keeper.lock"),
            format!("pool/{t}/state.json"),
        ] {
            let p = data.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            if !p.exists() {
                std::fs::write(&p, "").unwrap();
            }
        }
    }
    let leftovers = |t: &str| -> Vec<String> {
        let mut found = Vec::new();
        for dir in ["locks", "logs", "pool"] {
            for e in std::fs::read_dir(data.join(dir))
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = e.file_name().to_string_lossy().into_owned();
                if name == t || name.starts_with(&format!("{t}.")) {
                    found.push(format!("{dir}/{name}"));
                }
            }
        }
        found
    };
    assert_eq!(leftovers(mine).len(), 5, "{:?}", leftovers(mine));
    w.run(&["clean", "--yes"]).ok();
    assert_eq!(leftovers(mine), Vec::<String>::new());
    assert_eq!(leftovers(theirs).len(), 5, "another project's files stay");
    // clean-all: every deleted template's files go.
    w.run_in(&["clean-all", "--yes"], &other).ok();
    assert_eq!(leftovers(theirs), Vec::<String>::new());
}

#[test]
fn a_lock_that_is_held_is_not_removed() {
    use std::io::BufRead;
    let w = World::new();
    w.setup();
    let t = w.templates().remove(0);
    let setup_lock = w.data_dir().join(format!("locks/{t}.setup.lock"));
    let template_lock = w.data_dir().join(format!("locks/{t}.template.lock"));
    std::fs::write(&template_lock, "").unwrap();
    // A stand-in for a setup that is running: it holds the setup lock (flock(2), like us).
    let mut holder = std::process::Command::new("perl")
        .args([
            "-e",
            r#"use Fcntl ":flock"; open(F, ">>", $ARGV[0]) or die; flock(F, LOCK_EX) or die; $| = 1; print "locked\n"; sleep 30"#,
            setup_lock.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("perl");
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "locked\n");
    let r = w.run(&["clean", "--yes"]);
    holder.kill().unwrap();
    holder.wait().unwrap();
    r.ok();
    assert!(setup_lock.exists(), "a held lock stays");
    assert!(!template_lock.exists(), "a free one goes");
}
