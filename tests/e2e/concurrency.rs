//! Many claude-vm processes on one project: parallel sessions, sessions during a rebuild or
//! a first build, two setups at once.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::live::*;
use crate::support::*;

#[test]
fn eight_sessions_of_one_project_at_once_all_succeed_and_leave_nothing() {
    let w = World::new();
    w.setup();
    let template = w.templates().remove(0);
    let mut runs: Vec<Spawned> = (0..8)
        .map(|i| {
            w.spawn(&[
                "shell",
                "--",
                "sh",
                "-c",
                &format!("echo session-{i}; hostname"),
            ])
        })
        .collect();
    let mut hosts = BTreeSet::new();
    for (i, s) in runs.iter_mut().enumerate() {
        assert_eq!(s.finish(), 0, "session {i}: {}", s.stderr());
        let out = s.stdout();
        assert!(out.starts_with(&format!("session-{i}\n")), "{out}");
        hosts.insert(out.lines().nth(1).unwrap_or_default().to_owned());
    }
    let clones: BTreeSet<String> = w
        .logged()
        .iter()
        // The sessions' clones of the template (setup's own is of the shared base).
        .filter(|c| c[0] == "clone" && c[c.len() - 2] == template)
        .map(|c| c.last().unwrap().clone())
        .collect();
    assert_eq!(clones.len(), 8, "eight distinct clones: {clones:?}");
    if isolated() {
        assert_eq!(hosts.len(), 8, "each ran in its own VM: {hosts:?}");
    }
    w.assert_nothing_left("");
}

/// Index in the call log of the first record matching `pred`.
fn log_index(w: &World, pred: impl Fn(&Value) -> bool) -> usize {
    let text = std::fs::read_to_string(&w.log).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .position(|v| pred(&v))
        .expect("record in the call log")
}

#[test]
fn a_session_during_a_rebuild_uses_the_old_template_or_waits_for_the_new_one() {
    let w = World::new();
    w.write_project(".claude-vm.setup.sh", "echo v1 > \"$HOME/version\"\n");
    w.setup();
    w.write_project(".claude-vm.setup.sh", "echo v2 > \"$HOME/version\"\n");
    let read = ["shell", "--", "sh", "-c", "cat \"$HOME/version\""];

    // The rebuild clones the shared base (a project-only rebuild).
    let mut setup = w.spawn_with(&["setup"], &[("LIMA_SIM_DELAY", "clone=3,rename=4")]);
    // While the new template is being built, sessions use the old one.
    w.await_call(setup.pid(), "clone");
    let mut during_build = w.spawn(&read);
    assert_eq!(during_build.finish(), 0, "{}", during_build.stderr());
    assert_eq!(during_build.stdout(), "v1\n");

    // Between deleting the old template and renaming the new one, sessions wait.
    let rename = w.await_call(setup.pid(), "rename");
    let mut during_swap = w.spawn(&read);
    during_swap.await_stderr("waiting for a rebuild");
    assert_eq!(during_swap.finish(), 0, "{}", during_swap.stderr());
    assert_eq!(during_swap.stdout(), "v2\n");
    assert_eq!(setup.finish(), 0, "{}", setup.stderr());
    let renamed = log_index(&w, |v| v["event"] == "end" && v["pid"] == rename);
    let cloned = log_index(&w, |v| {
        v["event"] == "start" && v["ppid"] == during_swap.pid() && v["argv"][0] == "clone"
    });
    assert!(renamed < cloned, "the clone started only after the swap");
    w.assert_nothing_left("");
}

#[test]
fn a_session_during_the_first_build_waits_for_it() {
    let w = World::new();
    let mut setup = w.spawn_with(&["setup"], &[("LIMA_SIM_DELAY", "create=3")]);
    w.await_call(setup.pid(), "create");
    // No terminal and no --auto-setup: without a build running this would be refused.
    let mut session = w.spawn(&["hello"]);
    session.await_stderr("is being built");
    assert_eq!(session.finish(), 0, "{}", session.stderr());
    assert!(session.stdout().contains("\"fake\":\"claude\""));
    assert_eq!(setup.finish(), 0, "{}", setup.stderr());
    assert_eq!(
        w.calls_by(session.pid(), |a| a[0] == "create"),
        0,
        "the session did not build a second template"
    );
    w.assert_nothing_left("");
}

#[test]
fn two_setups_of_one_project_run_one_after_the_other() {
    let w = World::new();
    let mut first = w.spawn_with(&["setup"], &[("LIMA_SIM_DELAY", "create=3")]);
    w.await_call(first.pid(), "create");
    let mut second = w.spawn(&["setup"]);
    second.await_stderr("another claude-vm is building the template");
    assert_eq!(first.finish(), 0, "{}", first.stderr());
    assert_eq!(second.finish(), 0, "{}", second.stderr());
    let first_stop = w.await_call(first.pid(), "stop");
    let first_done = log_index(&w, |v| v["event"] == "end" && v["pid"] == first_stop);
    let second_start = log_index(&w, |v| v["event"] == "start" && v["ppid"] == second.pid());
    assert!(
        first_done < second_start,
        "the second setup waited for the first"
    );
    // The second one rebuilt: one template, nothing else.
    assert_eq!(w.instances().len(), 1, "{:?}", w.instances());
    w.assert_nothing_left("");
}
