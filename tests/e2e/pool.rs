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
        r.stderr.contains("made for other mounts or settings"),
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
}

#[test]
fn a_rebuild_removes_the_old_templates_clones() {
    let w = World::new();
    let _drained = Drained(&w);
    w.write_project(".claude-vm.setup.sh", "echo v1 > \"$HOME/v\"\n");
    w.setup();
    w.run(&["warm", "1"]).ok();
    let old = w.pooled();
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
    let pid: i32 = holder
        .trim()
        .strip_prefix("pid ")
        .and_then(|p| p.parse().ok())
        .expect("keeper pid");
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
