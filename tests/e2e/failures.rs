//! Failure injection: each limactl step of a session and of a setup fails in turn. Nothing
//! is left behind, the exit status is the failure's (or the command's own), and the error
//! shows what limactl said and what to do.

use crate::support::*;

#[test]
fn each_failing_session_step_leaves_nothing_and_says_what_happened() {
    let w = World::new();
    w.setup();
    // (step to fail, exit status, calls made)
    let cases: [(&str, i32, &[&str]); 3] = [
        ("clone", 1, &["clone", "delete"]),
        // `clone --start` boots in the same call: a failed boot fails the clone.
        ("start", 1, &["clone", "delete"]),
        // A failed `limactl shell` is ssh's 255, passed on as the command's status.
        ("shell", 255, &["clone", "shell", "delete"]),
    ];
    for (step, code, verbs) in cases {
        let r = w.run_with(&["shell", "--", "true"], &[("LIMA_SIM_FAIL", step)]);
        assert_eq!(r.code, code, "{step}: {}", r.stderr);
        assert_eq!(r.verbs(), verbs, "{step}");
        // Lima's own message: quoted by us for clone and start, printed by limactl itself
        // (a logrus line) for the attached shell.
        let said = [
            format!("simulated failure of \"{step}\""),
            format!("simulated failure of \\\"{step}\\\""),
        ];
        assert!(
            said.iter().any(|s| r.stderr.contains(s.as_str())),
            "{step}: Lima's own message is shown:\n{}",
            r.stderr
        );
        assert!(r.stderr.contains("hint:"), "{step}: {}", r.stderr);
        if step == "shell" {
            assert!(r.stderr.contains("status 255"), "{}", r.stderr);
            // After the cleanup's lines: the last thing the user reads.
            let last = r.stderr.trim_end().lines().last().unwrap_or_default();
            assert!(
                last.contains("hint:") && last.contains("--verbose"),
                "{}",
                r.stderr
            );
        }
    }
}

#[test]
fn a_session_command_that_is_missing_or_not_executable_gets_a_hint() {
    let w = World::new();
    w.setup();
    w.write_project("script.sh", "echo hi\n");
    for (args, code, says) in [
        (
            &["shell", "--", "no-such-command-xyz"][..],
            127,
            "not found in the VM",
        ),
        (
            &["shell", "--", "./script.sh"][..],
            126,
            "not executable in the VM",
        ),
    ] {
        let r = w.run(args);
        assert_eq!(r.code, code, "{}", r.stderr);
        assert!(r.stderr.contains(says), "{}", r.stderr);
        assert!(r.stderr.contains("hint:"), "{}", r.stderr);
    }
    // An ordinary failure of the command is its own business.
    let r = w.run(&["shell", "--", "sh", "-c", "exit 3"]);
    assert_eq!(r.code, 3);
    assert!(!r.stderr.contains("hint:"), "{}", r.stderr);
}

#[test]
fn a_failed_delete_is_reported_and_the_next_command_removes_the_vm() {
    let w = World::new();
    w.setup();
    let r = w.run_unchecked(&["shell", "--", "true"], &[("LIMA_SIM_FAIL", "delete")]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("could not be deleted and may still be running")
            && r.stderr.contains("simulated failure of \"delete\"")
            && r.stderr.contains("next claude-vm command retries"),
        "{}",
        r.stderr
    );
    let left: Vec<String> = w
        .instances()
        .into_iter()
        .filter(|n| n.contains(".run-"))
        .collect();
    assert_eq!(left.len(), 1, "{:?}", w.instances());
    assert_eq!(w.journal().len(), 1, "the VM stays in the journal");

    // The owner is gone now: the next command, whatever it is, deletes the VM and says so.
    let r = w.run(&["shell", "--", "true"]);
    r.ok();
    assert_eq!(r.verbs(), ["delete", "clone", "shell", "delete"]);
    assert_eq!(r.calls[0].last(), left.last());
    assert!(r.stderr.contains("left behind"), "{}", r.stderr);

    // A command that exits non-zero keeps its own status when the delete also fails.
    let r = w.run_unchecked(
        &["shell", "--", "sh", "-c", "exit 9"],
        &[("LIMA_SIM_FAIL", "delete")],
    );
    assert_eq!(r.code, 9, "{}", r.stderr);
    assert!(r.stderr.contains("could not be deleted"), "{}", r.stderr);
    w.run(&["list"]).ok();
}

#[test]
fn claudes_own_exit_status_passes_through() {
    let w = World::new();
    w.setup();
    for code in [0, 1, 3, 42] {
        let n = code.to_string();
        let r = w.run(&["--sim-exit", &n, "hello"]);
        assert_eq!(r.code, code, "{}", r.stderr);
        assert_eq!(r.verbs(), ["clone", "shell", "delete"]);
    }
}

#[test]
fn each_failing_setup_step_leaves_no_template_and_a_rebuild_keeps_the_old_one() {
    let w = World::new();
    for step in ["create", "start", "shell", "stop"] {
        let r = w.run_with(&["setup"], &[("LIMA_SIM_FAIL", step)]);
        assert_eq!(r.code, 1, "{step}: {}", r.stderr);
        assert!(
            r.stderr
                .contains(&format!("simulated failure of \"{step}\"")),
            "{step}: {}",
            r.stderr
        );
        // The first build fails in the shared base: neither it nor a template stays.
        assert!(
            w.all_instances().is_empty(),
            "{step}: {:?}",
            w.all_instances()
        );
        assert!(
            r.stderr.contains("full output of the build:"),
            "{}",
            r.stderr
        );
        // The build VM was removed: no hint may send the user to it.
        let removed = r
            .stderr
            .lines()
            .find_map(|l| l.strip_prefix("claude-vm: removing the unfinished VM "))
            .and_then(|l| l.strip_suffix("..."))
            .unwrap_or_else(|| panic!("{step}: no removal in {}", r.stderr));
        let hint = r.stderr.split_once("hint:").map_or("", |(_, h)| h);
        let advice: Vec<&str> = hint
            .lines()
            .filter(|l| !l.contains("full output of the build:"))
            .collect();
        assert!(
            !advice.iter().any(|l| l.contains(removed)),
            "{step}: {}",
            r.stderr
        );
    }
    w.write_project(".claude-vm.setup.sh", "true\n");
    w.setup();
    let template = w.templates();
    // A project-only rebuild (clone of the base, script, stop, swap) failing at each step.
    for step in ["clone", "shell", "stop", "rename"] {
        let r = w.run_with(&["setup"], &[("LIMA_SIM_FAIL", step)]);
        assert_eq!(r.code, 1, "{step}: {}", r.stderr);
        assert!(
            r.calls.iter().all(|c| c[0] != "create"),
            "{step}: the base is reused"
        );
        // Even a failing swap (`swap.rs`) puts the old template back.
        assert_eq!(w.templates(), template, "{step}: the old template survives");
        assert_eq!(w.instances(), template, "{step}: nothing half-built stays");
        w.run(&["shell", "--", "true"]).ok();
    }
    // A rebuild of the shared base failing at each of its steps: the template survives.
    for step in ["create", "start", "shell", "stop"] {
        let r = w.run_with(
            &["setup", "--rebuild", "--base"],
            &[("LIMA_SIM_FAIL", step)],
        );
        assert_eq!(r.code, 1, "{step}: {}", r.stderr);
        assert_eq!(w.instances(), template, "{step}: nothing half-built stays");
        assert!(w.bases().is_empty(), "{step}: {:?}", w.bases());
        w.run(&["shell", "--", "true"]).ok();
    }
}

/// Runs claude-vm as if the disk were full: every write to a file fails (EFBIG), creating
/// an empty file still works, which is what a full disk leaves behind.
fn run_on_a_full_disk(w: &World, args: &[&str]) -> std::process::Output {
    let template = w.command(args, &w.project);
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("trap '' XFSZ; ulimit -f 0; exec \"$0\" \"$@\"")
        .arg(CLAUDE_VM)
        .args(args)
        .current_dir(&w.project)
        .env_clear()
        .stdin(std::process::Stdio::null());
    for (k, v) in template.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.output().expect("run claude-vm")
}

#[test]
fn a_full_disk_leaves_no_empty_temporary_files() {
    let w = World::new();
    w.setup();
    for args in [&["shell", "--", "true"][..], &["setup"][..], &["trust"][..]] {
        if args == ["trust"] {
            let data = w.root.join("data");
            std::fs::create_dir_all(&data).unwrap();
            let toml = format!("[[mounts]]\nlocation = \"{}\"\n", data.display());
            w.write_project(".claude-vm.toml", &toml);
        }
        let out = run_on_a_full_disk(&w, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(
            out.status.code(),
            Some(0),
            "{args:?} cannot succeed on a full disk"
        );
        assert!(
            err.to_lowercase().contains("file too large"),
            "{args:?} failed writing: {err}"
        );
        let mut left = Vec::new();
        let mut stack = vec![w.data_dir()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let p = e.path();
                let meta = std::fs::symlink_metadata(&p).unwrap();
                if meta.is_dir() {
                    stack.push(p);
                } else {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let is_lock = name.ends_with(".lock");
                    let is_log = name.ends_with(".log");
                    if name.contains(".tmp") || (meta.len() == 0 && !is_lock && !is_log) {
                        left.push(p);
                    }
                }
            }
        }
        assert!(left.is_empty(), "{args:?} left {left:?}");
        assert!(w.journal().is_empty(), "{args:?}: {:?}", w.journal());
    }
}

#[test]
fn a_hung_limactl_call_is_killed_and_the_error_says_which_step_hung() {
    let w = World::new();
    // A boot that never ends, during setup: killed after its limit, the build removed.
    for verb in ["create", "start", "shell", "stop"] {
        let started = std::time::Instant::now();
        let r = w.run_with(
            &["setup"],
            &[
                ("LIMA_SIM_DELAY", &format!("{verb}=300")),
                ("CLAUDE_VM_LIMA_TIMEOUTS", &format!("{verb}=1")),
            ],
        );
        assert_eq!(r.code, 1, "{verb}: {}", r.stderr);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{verb}: took {:?}",
            started.elapsed()
        );
        assert!(
            r.stderr.contains(&format!(
                "`limactl {verb}` hung: it did not finish within 1s"
            )),
            "{verb}: {}",
            r.stderr
        );
        assert!(r.stderr.contains("CLAUDE_VM_LIMA_TIMEOUTS"), "{}", r.stderr);
        assert!(w.instances().is_empty(), "{verb}: {:?}", w.instances());
    }
    w.setup();
    // A clone that hangs: the session fails, its clone is deleted, the template stays.
    let template = w.templates();
    let r = w.run_with(
        &["hello"],
        &[
            ("LIMA_SIM_DELAY", "clone=300"),
            ("CLAUDE_VM_LIMA_TIMEOUTS", "clone=1"),
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("`limactl clone` hung"), "{}", r.stderr);
    assert_eq!(w.instances(), template);
    // A hanging list.
    let r = w.run_with(
        &["list"],
        &[
            ("LIMA_SIM_DELAY", "list=300"),
            ("CLAUDE_VM_LIMA_TIMEOUTS", "list=1"),
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("`limactl list` hung"), "{}", r.stderr);
    // A bad setting is refused before anything runs.
    let r = w.run_with(&["list"], &[("CLAUDE_VM_LIMA_TIMEOUTS", "boot=1")]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("unknown limactl verb"), "{}", r.stderr);
    assert!(r.calls.is_empty());
}

#[test]
fn journal_entries_that_are_not_regular_files_are_skipped() {
    let w = World::new();
    w.setup();
    let journal = w.data_dir().join("journal");
    std::fs::create_dir_all(&journal).unwrap();
    let template = w.templates().remove(0);
    let fifo = journal.join(format!("{template}.run-fifo00.json"));
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    std::fs::create_dir(journal.join(format!("{template}.run-dir000.json"))).unwrap();
    std::os::unix::fs::symlink(
        "/dev/zero",
        journal.join(format!("{template}.run-zero00.json")),
    )
    .unwrap();
    // A read of any of them would block or never end: `finish` would time out.
    let mut s = w.spawn(&["list"]);
    assert_eq!(s.finish(), 0, "{}", s.stderr());
    let mut s = w.spawn(&["gc"]);
    assert_eq!(s.finish(), 0, "{}", s.stderr());
    let mut s = w.spawn(&["shell", "--", "true"]);
    assert_eq!(s.finish(), 0, "{}", s.stderr());
    // (The harness's own journal check would read them: gone before it runs.)
    for e in std::fs::read_dir(&journal).unwrap().flatten() {
        if e.file_name().to_string_lossy().contains(".run-") {
            let p = e.path();
            let _ = std::fs::remove_file(&p).or_else(|_| std::fs::remove_dir(&p));
        }
    }
    w.run(&["shell", "--", "true"]).ok();
}
