//! The journal of live VMs: `list` shows live sessions apart from templates, a SIGKILLed
//! session or setup is reaped by the next command, `gc` and `clean` remove what nobody owns
//! and leave running sessions alone.

use serde_json::Value;

use crate::support::*;

const CLAUDE_RUNNING: &str = "\"fake\":\"claude\"";

fn clones(w: &World) -> Vec<String> {
    w.instances()
        .into_iter()
        .filter(|n| n.contains('.'))
        .collect()
}

#[test]
fn list_shows_live_sessions_apart_and_sigkilled_ones_are_reaped_in_one_call() {
    let w = World::new();
    w.setup();
    let template = w.templates().remove(0);
    let mut a = w.spawn(&["--sim-sleep", "60", "a"]);
    let mut b = w.spawn(&["--sim-sleep", "60", "b"]);
    a.await_stdout(CLAUDE_RUNNING);
    b.await_stdout(CLAUDE_RUNNING);

    let r = w.run_unchecked(&["list", "--json"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.verbs(), ["list"], "no reaping: both owners are alive");
    let doc: Value = serde_json::from_str(&r.stdout).expect("one JSON document");
    assert_eq!(doc["templates"].as_array().unwrap().len(), 1, "{doc}");
    assert_eq!(doc["templates"][0]["name"], template.as_str());
    assert_eq!(doc["templates"][0]["complete"], true);
    let sessions = doc["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{doc}");
    let mut owners: Vec<u64> = sessions
        .iter()
        .map(|s| s["owner_pid"].as_u64().unwrap())
        .collect();
    owners.sort();
    let mut want = vec![u64::from(a.pid()), u64::from(b.pid())];
    want.sort();
    assert_eq!(owners, want);
    for s in sessions {
        assert_eq!(s["role"], "run");
        assert_eq!(s["status"], "Running");
        assert_eq!(s["template"], template.as_str());
        assert_eq!(s["project"], w.project.to_str().unwrap());
    }
    let r = w.run_unchecked(&["list"], &[]);
    let (templates, sessions) = r.stdout.split_once("\nSESSION").expect("two tables");
    assert!(templates.starts_with("TEMPLATE") && templates.contains(&template));
    assert!(
        sessions.contains(&format!("pid {}", a.pid())),
        "{}",
        r.stdout
    );

    // kill -9: no cleanup at all. The VMs stay...
    a.signal(libc::SIGKILL);
    b.signal(libc::SIGKILL);
    assert_eq!(a.finish(), 137);
    assert_eq!(b.finish(), 137);
    assert_eq!(clones(&w).len(), 2);
    // ...until the next command, which deletes both in one call and says so.
    let r = w.run(&["list"]);
    r.ok();
    assert_eq!(r.verbs(), ["delete", "list"], "{}", r.stderr);
    let delete = &r.calls[0];
    assert_eq!(&delete[..3], ["delete", "--tty=false", "--force"]);
    assert_eq!(delete.len(), 5, "both VMs in one call: {delete:?}");
    for pid in [a.pid(), b.pid()] {
        assert!(r.stderr.contains(&format!("pid {pid}")), "{}", r.stderr);
    }
    assert!(r.stderr.contains("left behind"), "{}", r.stderr);
    assert!(!r.stdout.contains("SESSION"), "{}", r.stdout);

    // Nothing to reap: no extra call on the session path.
    let r = w.run(&["hello"]);
    assert_eq!(r.verbs(), ["clone", "shell", "delete"]);
}

#[test]
fn a_sigkilled_setup_is_reaped_and_a_finished_one_is_kept() {
    let w = World::new();
    let mut s = w.spawn_with(&["setup"], &[("LIMA_SIM_DELAY", "shell=60")]);
    w.await_call(s.pid(), "shell");
    s.signal_group(libc::SIGKILL);
    s.finish();
    // The first shell provisions the shared base: it is what is half-built.
    assert_eq!(w.bases().len(), 1, "the half-built base is there");
    let r = w.run(&["list"]);
    r.ok();
    assert_eq!(r.verbs(), ["delete", "list"], "{}", r.stderr);
    assert!(r.stderr.contains("shared base build"), "{}", r.stderr);
    assert!(w.all_instances().is_empty(), "{:?}", w.all_instances());

    // Killed while its template is provisioned (the base is complete): the template goes.
    w.write_project(".claude-vm.setup.sh", "true\n");
    w.setup();
    w.run(&["clean", "--yes"]).ok();
    let mut s = w.spawn_with(&["setup"], &[("LIMA_SIM_DELAY", "shell=60")]);
    w.await_call(s.pid(), "shell");
    s.signal_group(libc::SIGKILL);
    s.finish();
    assert_eq!(w.instances().len(), 1, "the half-built template is there");
    let r = w.run(&["list"]);
    r.ok();
    assert_eq!(r.verbs(), ["delete", "list"], "{}", r.stderr);
    assert!(r.stderr.contains("template build"), "{}", r.stderr);
    assert!(w.instances().is_empty(), "{:?}", w.instances());
    assert_eq!(w.bases().len(), 1, "the complete base stays");

    // A rebuild killed the same way: its build goes, the old template stays.
    w.setup();
    let template = w.templates();
    let mut s = w.spawn_with(&["setup"], &[("LIMA_SIM_DELAY", "shell=60")]);
    w.await_call(s.pid(), "shell");
    s.signal_group(libc::SIGKILL);
    s.finish();
    assert_eq!(w.instances().len(), 2);
    let r = w.run(&["shell", "--", "true"]);
    r.ok();
    assert_eq!(r.verbs(), ["delete", "clone", "shell", "delete"]);
    assert_eq!(w.instances(), template);
}

#[test]
fn gc_removes_vms_nobody_owns_and_leaves_running_sessions_alone() {
    let w = World::new();
    w.setup();
    let template = w.templates().remove(0);
    // A clone with no journal entry at all (say, from an older claude-vm).
    let stray = format!("{template}.run-zzz999");
    let out = std::process::Command::new(w.bin.join("limactl"))
        .args(["clone", "--tty=false", &template, &stray])
        .env("HOME", &w.home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut live = w.spawn(&["--sim-sleep", "60", "busy"]);
    live.await_stdout(CLAUDE_RUNNING);

    let r = w.run_unchecked(&["list"], &[]);
    assert!(r.stdout.contains("none (orphan)"), "{}", r.stdout);
    let r = w.run_unchecked(&["gc"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.verbs(), ["list", "delete"]);
    assert_eq!(
        r.calls[1].last(),
        Some(&stray),
        "only the stray: {:?}",
        r.calls[1]
    );
    assert_eq!(clones(&w).len(), 1, "the running session keeps its VM");
    live.signal_group(libc::SIGINT);
    assert_eq!(live.finish(), 130);
    let r = w.run(&["gc"]);
    r.ok();
    assert!(r.stderr.contains("nothing to clean up"), "{}", r.stderr);
}

#[test]
fn clean_removes_the_template_and_its_orphans_but_not_running_sessions() {
    let w = World::new();
    w.setup();
    let mut killed = w.spawn(&["--sim-sleep", "60", "killed"]);
    let mut live = w.spawn(&["--sim-sleep", "60", "running"]);
    killed.await_stdout(CLAUDE_RUNNING);
    live.await_stdout(CLAUDE_RUNNING);
    killed.signal(libc::SIGKILL);
    killed.finish();
    assert_eq!(clones(&w).len(), 2);

    let r = w.run_unchecked(&["clean", "--yes"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The killed session's VM goes first (reaped), then the template; the running one stays.
    assert_eq!(r.verbs(), ["delete", "list", "delete"], "{}", r.stderr);
    assert!(
        r.stderr.contains("leaving 1 VM of running claude-vm"),
        "{}",
        r.stderr
    );
    assert!(w.templates().is_empty());
    assert_eq!(clones(&w).len(), 1);
    // The session still ends cleanly on its own.
    live.signal(libc::SIGTERM);
    assert_eq!(live.finish(), 143);
    w.assert_nothing_left(&live.stderr());
}
