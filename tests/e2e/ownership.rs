//! claude-vm deletes only what it provably owns: a VM it made carries a mark naming the data
//! directory that made it (`$LIMA_HOME/<name>/claude-vm.owner`). Another data directory's
//! gc, a journal entry naming somebody else's VM, or an unmarked VM with a claude-vm name
//! never lead to a delete, unless the user names the VM with `gc --force`.

use crate::live::wait_until;
use crate::support::*;

const CLAUDE_RUNNING: &str = "\"fake\":\"claude\"";

/// Runs the simulator's limactl directly, as a user (or another tool) would.
fn limactl(w: &World, args: &[&str]) {
    let out = std::process::Command::new(w.bin.join("limactl"))
        .args(args)
        .env("HOME", &w.home)
        .env("LIMA_HOME", &w.lima_home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running VM that claude-vm did not make.
fn foreign(w: &World, name: &str) {
    limactl(
        w,
        &[
            "create",
            "--tty=false",
            "--name",
            name,
            "template:debian-13",
        ],
    );
    limactl(w, &["start", "--tty=false", name]);
}

fn deletes(r: &Run) -> Vec<String> {
    r.calls
        .iter()
        .filter(|c| c[0] == "delete")
        .flat_map(|c| c[3..].to_vec())
        .collect()
}

#[test]
fn every_vm_claude_vm_makes_is_marked_with_its_data_directory() {
    let w = World::new();
    w.setup();
    let template = w.templates().remove(0);
    let mark = |name: &str| {
        let text = std::fs::read_to_string(w.lima_home.join(name).join("claude-vm.owner"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };
    let data = std::fs::canonicalize(w.data_dir()).unwrap();
    assert_eq!(mark(&template)["data_dir"], data.to_str().unwrap());
    let mut s = w.spawn(&["--sim-sleep", "60", "busy"]);
    s.await_stdout(CLAUDE_RUNNING);
    let clone = w
        .instances()
        .into_iter()
        .find(|n| n.contains(".run-"))
        .unwrap();
    assert_eq!(mark(&clone)["created_as"], clone.as_str());
    s.signal_group(libc::SIGINT);
    assert_eq!(s.finish(), 130);
    // A rebuild's template keeps the mark through its renames.
    w.write_project(".claude-vm.setup.sh", "true\n");
    w.setup();
    assert_eq!(mark(&template)["data_dir"], data.to_str().unwrap());
}

#[test]
fn gc_and_clean_all_under_another_data_directory_delete_nothing_of_the_first() {
    let w = World::new();
    w.setup();
    let mut s = w.spawn(&["--sim-sleep", "60", "busy"]);
    s.await_stdout(CLAUDE_RUNNING);
    let before = w.instances();
    assert_eq!(before.len(), 2, "{before:?}");
    let other = w.root.join("other-data");
    let other = other.to_str().unwrap();
    let r = w.run_unchecked(&["gc"], &[("XDG_DATA_HOME", other)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(deletes(&r).is_empty(), "{:?}", r.calls);
    assert!(
        r.stderr
            .contains("belongs to another claude-vm data directory"),
        "{}",
        r.stderr
    );
    let r = w.run_unchecked(&["clean-all", "--yes"], &[("XDG_DATA_HOME", other)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(deletes(&r).is_empty(), "{:?}", r.calls);
    assert_eq!(w.instances(), before);
    // The first data directory's session and template still work.
    s.signal_group(libc::SIGINT);
    assert_eq!(s.finish(), 130);
    w.run(&["shell", "--", "true"]).ok();
}

#[test]
fn a_journal_entry_naming_an_unrelated_instance_does_not_get_it_deleted() {
    let w = World::new();
    w.setup();
    let template = w.templates().remove(0);
    // A dead owner's entry, taken from a SIGKILLed session (whose clone is ours to reap).
    let mut s = w.spawn(&["--sim-sleep", "60", "killed"]);
    s.await_stdout(CLAUDE_RUNNING);
    s.signal_group(libc::SIGKILL);
    s.finish();
    let clone = w
        .instances()
        .into_iter()
        .find(|n| n.contains(".run-"))
        .unwrap();
    let journal = w.data_dir().join("journal");
    let entry = std::fs::read_to_string(journal.join(format!("{clone}.json"))).unwrap();
    // Somebody else's running VMs, one with a name like claude-vm's, one unlike it; an
    // entry for each, with the same dead owner.
    let lookalike = format!("{template}.run-abc123");
    for name in ["default", lookalike.as_str()] {
        foreign(&w, name);
        std::fs::write(
            journal.join(format!("{name}.json")),
            entry.replace(&clone, name),
        )
        .unwrap();
    }
    let r = w.run_unchecked(&["list"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        deletes(&r),
        std::slice::from_ref(&clone),
        "only our clone: {:?}",
        r.calls
    );
    let left = w.instances();
    assert!(left.contains(&"default".to_owned()), "{left:?}");
    assert!(left.contains(&lookalike), "{left:?}");
    assert!(!left.contains(&clone), "{left:?}");
    assert!(r.stderr.contains("not deleting"), "{}", r.stderr);
    // The entries are dropped: the next command says nothing and deletes nothing.
    assert!(w.journal().is_empty(), "{:?}", w.journal());
    let r = w.run_unchecked(&["list"], &[]);
    assert_eq!(r.verbs(), ["list"]);
    assert!(!r.stderr.contains("not deleting"), "{}", r.stderr);
}

#[test]
fn unmarked_vms_survive_gc_unless_named_with_force() {
    let w = World::new();
    w.setup();
    let template = w.templates().remove(0);
    // Claude-vm-like names, no mark: made by hand (or an older claude-vm).
    let clone = format!("{template}.run-zzz999");
    let bare = "claude-vm-stray-0badc0de".to_owned();
    foreign(&w, &clone);
    foreign(&w, &bare);
    for _ in 0..2 {
        let r = w.run_unchecked(&["gc"], &[]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(deletes(&r).is_empty(), "{:?}", r.calls);
        assert!(
            r.stderr.contains(&format!("claude-vm gc --force {clone}")),
            "{}",
            r.stderr
        );
    }
    // Named explicitly: deleted (only that one).
    let r = w.run_unchecked(&["gc", "--force", &clone], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(deletes(&r), std::slice::from_ref(&clone));
    assert!(w.instances().contains(&bare));
    // --force names something that exists and nobody is using.
    let r = w.run_unchecked(&["gc", "--force", "no-such-vm"], &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("no instance of that name"),
        "{}",
        r.stderr
    );
    let mut s = w.spawn(&["--sim-sleep", "60", "busy"]);
    s.await_stdout(CLAUDE_RUNNING);
    let live = w
        .instances()
        .into_iter()
        .find(|n| n.contains(".run-") && n != &clone)
        .unwrap();
    let r = w.run_unchecked(&["gc", "--force", &live], &[]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(w.instances().contains(&live));
    s.signal_group(libc::SIGINT);
    assert_eq!(s.finish(), 130);
    wait_until("the session's clone to go", || {
        !w.instances().contains(&live)
    });
    // `clean` deletes the template, and still not the unmarked VM.
    let r = w.run_unchecked(&["clean", "--yes"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        deletes(&r),
        std::slice::from_ref(&template),
        "{:?}",
        r.calls
    );
    assert_eq!(w.instances(), [bare]);
}
