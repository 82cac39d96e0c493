//! The warm pool: pre-booted clones taken by sessions (one `limactl shell` to the agent),
//! refilled in the background, matched on mounts and settings, expired, reaped, removed by
//! clean and never surviving a rebuild.

use std::time::{Duration, Instant};

use crate::live::*;
use crate::support::*;

/// Waits for `cond`, up to 30 s (the simulator boots in milliseconds; this is slack for a
/// loaded machine, not a timing assertion).
#[track_caller]
fn wait_for(w: &World, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; keeper log:\n{}",
            keeper_log(w)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn keeper_log(w: &World) -> String {
    std::fs::read_dir(w.data_dir().join("logs"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".pool.log"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

fn running_warm(w: &World) -> Vec<String> {
    w.instances()
        .into_iter()
        .filter(|n| n.contains(".warm-"))
        .collect()
}

/// Empties the pool when the test ends, so no keeper outlives it.
struct Drained<'a>(&'a World);

impl Drop for Drained<'_> {
    fn drop(&mut self) {
        let _ = self.0.command(&["warm", "0"], &self.0.project).output();
    }
}

#[test]
fn a_session_takes_a_booted_clone_with_one_shell_call_and_the_pool_refills() {
    let w = World::new();
    let _drained = Drained(&w);
    w.setup();
    let r = w.run(&["warm", "2"]);
    r.ok();
    assert!(r.stderr.contains("2 pre-booted VMs ready"), "{}", r.stderr);
    let pooled = w.pooled();
    assert_eq!(pooled.len(), 2, "{pooled:?}");
    assert_eq!(
        running_warm(&w),
        pooled,
        "booted clones, journaled like sessions"
    );
    for name in &pooled {
        assert!(
            w.lima_home.join(name).join("ha.pid").exists(),
            "{name} is running"
        );
    }

    let r = w.run(&["hello", "--model", "x"]);
    r.ok();
    assert_eq!(
        r.verbs(),
        ["shell", "delete"],
        "to the agent: one limactl shell; stderr:\n{}",
        r.stderr
    );
    let used = r
        .call("shell")
        .iter()
        .find(|a| a.contains(".warm-"))
        .expect("shell on a warm clone")
        .clone();
    assert!(pooled.contains(&used));
    assert_eq!(
        r.claude_argv(),
        ["--dangerously-skip-permissions", "hello", "--model", "x"]
    );
    assert_eq!(
        r.claude()["cwd"],
        w.project.to_str().unwrap(),
        "the project is mounted in the warm clone"
    );
    assert!(!w.instances().contains(&used), "the used clone is deleted");

    // Replaced in the background; the session did not wait for it.
    wait_for(&w, "the pool to refill", || {
        w.pooled().len() == 2 && !w.pooled().contains(&used)
    });
    let listed = w.run(&["list"]);
    listed.ok();
    assert!(
        listed.stdout.contains(".warm-") && listed.stdout.contains("warm"),
        "{}",
        listed.stdout
    );

    let r = w.run(&["warm", "0"]);
    r.ok();
    assert!(
        w.pooled().is_empty() && running_warm(&w).is_empty(),
        "{:?}",
        w.instances()
    );
    assert_eq!(w.journal(), Vec::<serde_json::Value>::new());
}

#[test]
fn two_sessions_never_take_the_same_clone() {
    let w = World::new();
    let _drained = Drained(&w);
    w.setup();
    // Slow clones (the keeper inherits this): its refill cannot serve a second session in time.
    let slow = [("LIMA_SIM_DELAY", "clone=2")];
    w.run_with(&["warm", "1"], &slow).ok();
    let mut runs: Vec<Spawned> = (0..4)
        .map(|_| w.spawn_with(&["shell", "--", "true"], &slow))
        .collect();
    let mut used: Vec<String> = Vec::new();
    let mut warm = 0;
    for s in &mut runs {
        assert_eq!(s.finish(), 0, "{}", s.stderr());
        let calls = w.logged_since(0, Some(s.pid()));
        let verbs: Vec<&str> = calls.iter().map(|c| c[0].as_str()).collect();
        if verbs == ["shell", "delete"] {
            warm += 1;
        }
        let shell = calls
            .iter()
            .find(|c| c[0] == "shell")
            .expect("a shell call");
        used.push(
            shell
                .iter()
                .find(|a| a.starts_with("claude-vm-"))
                .unwrap()
                .clone(),
        );
    }
    assert_eq!(warm, 1, "one clone in the pool, one session got it");
    used.sort();
    used.dedup();
    assert_eq!(used.len(), 4, "every session had its own VM");
    // Once the keeper's refill is in the pool, nothing else is left.
    wait_for(&w, "the refill", || w.pooled().len() == 1);
    w.assert_nothing_left("");
}

#[test]
fn a_session_with_other_mounts_goes_cold_and_says_why() {
    let w = World::new();
    let _drained = Drained(&w);
    w.setup();
    w.run(&["warm", "1"]).ok();
    let pooled = w.pooled();
    let extra = w.root.join("extra");
    std::fs::create_dir(&extra).unwrap();
    let r = w.run(&["--mount", extra.to_str().unwrap(), "shell", "--", "true"]);
    r.ok();
    assert_eq!(r.verbs(), ["clone", "shell", "delete"]);
    assert!(
        r.stderr
            .contains("made with other settings (.mounts differ)"),
        "{}",
        r.stderr
    );
    assert_eq!(w.pooled(), pooled, "the pool is left for sessions it fits");
    let r = w.run(&["--no-conversations", "shell", "--", "true"]);
    assert_eq!(
        r.verbs(),
        ["clone", "shell", "delete"],
        "another mount set: cold too"
    );
    let r = w.run(&["--cpus", "3", "shell", "--", "true"]);
    assert_eq!(r.verbs(), ["clone", "shell", "delete"]);
    assert!(
        r.stderr
            .contains("made with other settings (--cpus differ)"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_rebuild_removes_the_old_templates_clones() {
    let w = World::new();
    let _drained = Drained(&w);
    w.write_project(".claude-vm.setup.sh", "echo v1 > \"$HOME/v\"\n");
    w.setup();
    let warm = w.run(&["warm", "1"]);
    warm.ok();
    // `warm` returns once the clone can be claimed, not while its record is being written.
    let old = w.pooled();
    assert_eq!(old.len(), 1, "{old:?}\n{}", warm.stderr);
    w.write_project(".claude-vm.setup.sh", "echo v2 > \"$HOME/v\"\n");
    let r = w.run(&["setup"]);
    r.ok();
    // Gone by the time setup returns (the paused keeper removed it on its way out).
    assert!(!w.instances().contains(&old[0]), "{:?}", w.instances());
    assert!(keeper_log(&w).contains("started"), "{}", keeper_log(&w));
    // The pool resumes with clones of the new template; a warm session sees v2.
    wait_for(&w, "a clone of the new template", || {
        w.pooled().len() == 1 && w.pooled() != old
    });
    let s = w.run(&["shell", "--", "sh", "-c", "cat \"$HOME/v\""]);
    assert_eq!(s.ok().stdout, "v2\n");
    assert_eq!(
        s.verbs(),
        ["shell", "delete"],
        "the new pool serves the session"
    );
}

#[test]
fn the_pool_empties_itself_when_unused() {
    let w = World::new();
    let _drained = Drained(&w);
    w.setup();
    w.run(&["warm", "1"]).ok();
    assert_eq!(running_warm(&w).len(), 1);
    // As if the pool had last been used two hours ago (the default idle time is 30 minutes).
    let state = std::fs::read_dir(w.data_dir().join("pool"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
        .join("state.json");
    let mut s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    s["last_used"] = serde_json::json!(s["last_used"].as_u64().unwrap() - 7200);
    std::fs::write(&state, s.to_string()).unwrap();
    wait_for(&w, "the idle pool to empty", || {
        running_warm(&w).is_empty() && w.pooled().is_empty() && w.journal().is_empty()
    });
    assert!(
        keeper_log(&w).contains("unused for 30 minutes"),
        "{}",
        keeper_log(&w)
    );
    assert_eq!(w.journal(), Vec::<serde_json::Value>::new());
}

#[test]
fn a_killed_keepers_clones_are_reaped_by_the_next_command() {
    let w = World::new();
    w.setup();
    w.run(&["warm", "1"]).ok();
    let pooled = w.pooled();
    let lock = std::fs::read_dir(w.data_dir().join("pool"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
        .join("keeper.lock");
    let holder = std::fs::read_to_string(lock).unwrap();
    // The keeper's process identity (pid, start time, boot).
    let identity: serde_json::Value = serde_json::from_str(&holder).expect("keeper identity");
    let pid = identity["pid"].as_i64().expect("keeper pid") as i32;
    assert!(
        identity["start"].is_u64() && identity["boot"].is_string(),
        "{identity}"
    );
    // SAFETY: killing the keeper this test started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    wait_for(
        &w,
        "the keeper to die",
        || unsafe { libc::kill(pid, 0) } != 0,
    );
    let r = w.run(&["gc"]);
    r.ok();
    assert!(
        r.calls
            .iter()
            .any(|c| c[0] == "delete" && c.contains(&pooled[0])),
        "{:?}",
        r.calls
    );
    assert!(
        running_warm(&w).is_empty() && w.pooled().is_empty(),
        "{:?} {:?}",
        w.instances(),
        w.pooled()
    );
}

#[test]
fn clean_removes_the_pool_with_the_template() {
    let w = World::new();
    w.setup();
    w.run(&["warm", "2"]).ok();
    let r = w.run(&["clean", "--yes"]);
    r.ok();
    assert!(w.instances().is_empty(), "{:?}", w.instances());
    assert!(w.pooled().is_empty());
    assert!(
        !r.stderr.contains("leaving"),
        "pool clones are not 'running sessions': {}",
        r.stderr
    );
}

#[test]
fn pool_size_in_the_config_keeps_clones_ready() {
    let w = World::new();
    let _drained = Drained(&w);
    w.write_project(".claude-vm.toml", "[pool]\nsize = 1\n");
    // Host ports and resources beyond the user's own configuration need approval.
    w.run(&["trust"]).ok();
    w.setup();
    let first = w.run(&["shell", "--", "true"]);
    first.ok();
    assert_eq!(
        first.verbs(),
        ["clone", "shell", "delete"],
        "nothing was warm yet"
    );
    wait_for(&w, "the configured pool to fill", || w.pooled().len() == 1);
    let second = w.run(&["shell", "--", "true"]);
    second.ok();
    assert_eq!(second.verbs(), ["shell", "delete"]);
    let bad = w.write_project(".claude-vm.toml", "[pool]\nsize = 99\n");
    let r = w.run(&["shell", "--", "true"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("`pool.size` is 99"),
        "{} ({})",
        r.stderr,
        bad.display()
    );
    let r = w.run(&["warm", "99"]);
    assert_eq!(r.code, 2);
}

#[test]
fn warm_returns_with_the_error_when_clones_fail_instead_of_waiting() {
    let w = World::new();
    let _drained = Drained(&w);
    w.setup();
    // The keeper inherits the failure: every clone it tries fails.
    let mut s = w.spawn_with(&["warm", "2"], &[("LIMA_SIM_FAIL", "clone")]);
    // `finish` would time out if `warm` waited for clones that never come.
    assert_eq!(s.finish(), 1, "{}", s.stderr());
    let err = s.stderr();
    assert!(err.contains("could not be booted"), "{err}");
    assert!(err.contains("simulated failure of \"clone\""), "{err}");
    assert!(err.contains("pool.log"), "{err}");
    assert!(running_warm(&w).is_empty(), "{:?}", w.instances());
}

#[test]
fn a_pid_in_the_keeper_lock_that_is_no_longer_the_keeper_is_never_signalled() {
    use std::io::BufRead;
    let w = World::new();
    w.setup();
    let t = w.templates().remove(0);
    let lock = w.data_dir().join(format!("pool/{t}/keeper.lock"));
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    // An innocent process that now has the pid a dead keeper left in its lock: named as the
    // old format did, and by an identity whose start time is not this process's.
    let mut innocent = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let pid = innocent.id();
    for text in [
        format!("pid {pid}"),
        format!("{{\"pid\":{pid},\"start\":1,\"boot\":\"earlier\"}}"),
    ] {
        std::fs::write(&lock, &text).unwrap();
        // Someone else holds the lock meanwhile (another setup pausing the pool).
        let mut holder = std::process::Command::new("perl")
            .args([
                "-e",
                r#"use Fcntl ":flock"; open(F, ">>", $ARGV[0]) or die; flock(F, LOCK_EX) or die; $| = 1; print "locked\n"; sleep 30"#,
                lock.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "locked\n");
        let mut setup = w
            .command(&["setup"], &w.project)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The rebuild waits for the pool to stop, having asked whoever the lock names.
        let mut err = std::io::BufReader::new(setup.stderr.take().unwrap());
        let mut seen = String::new();
        while !seen.contains("waiting for the warm pool") {
            let mut l = String::new();
            assert!(err.read_line(&mut l).unwrap() > 0, "setup ended: {seen}");
            seen.push_str(&l);
        }
        // A signal sent before that message would have ended it by now.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            innocent.try_wait().unwrap().is_none(),
            "{text}: the innocent process was signalled"
        );
        holder.kill().unwrap();
        holder.wait().unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
        assert!(setup.wait().unwrap().success(), "{seen}{rest}");
        // The pause left no name behind for the next one.
        assert_eq!(std::fs::read_to_string(&lock).unwrap_or_default(), "");
    }
    innocent.kill().unwrap();
    innocent.wait().unwrap();
}
