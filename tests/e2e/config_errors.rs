//! Bad input: each error names the file, key, flag or variable and the fix, exits 2, and
//! touches no VM.

use crate::support::*;

#[track_caller]
fn refused(r: &Run, needles: &[&str]) {
    assert_eq!(r.code, 2, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    for n in needles {
        assert!(r.stderr.contains(n), "missing {n:?} in:\n{}", r.stderr);
    }
    assert!(r.calls.is_empty(), "limactl was called: {:?}", r.calls);
    assert!(
        !r.stderr.contains("panicked") && !r.stderr.contains("RUST_BACKTRACE"),
        "{}",
        r.stderr
    );
}

#[test]
fn bad_config_files_name_the_file_the_key_and_the_fix() {
    let w = World::new();
    let file = w.project.join(".claude-vm.toml");
    let file = file.to_str().unwrap();
    let cases: &[(&str, &[&str])] = &[
        ("[vm]\ndsk = 30\n", &[file, "dsk", "did you mean `disk`?"]),
        ("[vm]\ndisk = \"thirty\"\n", &[file, "disk", "invalid type"]),
        (
            "[vm]\nmemory = 128\n",
            &[file, "`vm.memory` is 128, outside 1-64 GB"],
        ),
        (
            "[tools]\ndokcer = true\n",
            &[
                file,
                "`tools.dokcer` is not a known tool",
                "did you mean `docker`?",
            ],
        ),
        (
            "[[mounts]]\nlocation = \"rel/dir\"\n",
            &[file, "`mounts[0]`", "relative"],
        ),
        (
            "[[mounts]]\nlocation = \"/no/such/dir\"\n",
            &[file, "`mounts[0]`", "/no/such/dir"],
        ),
        (
            "[runtime]\nscripts = [\"missing.sh\"]\n",
            &[file, "`runtime.scripts[0]`", "missing.sh"],
        ),
        ("[vm\n", &[file, "TOML parse error"]),
    ];
    for (text, needles) in cases {
        std::fs::write(w.project.join(".claude-vm.toml"), text).unwrap();
        for args in [&["setup"][..], &["hello"][..], &["config", "validate"][..]] {
            let r = w.run(args);
            refused(&r, needles);
        }
    }
    assert!(w.instances().is_empty());
}

#[test]
fn the_global_file_is_named_too() {
    let w = World::new();
    std::fs::write(
        w.home.join(".claude-vm.toml"),
        "[defaults]\nclaude_arg = []\n",
    )
    .unwrap();
    let r = w.run(&["setup"]);
    refused(
        &r,
        &[
            w.home.join(".claude-vm.toml").to_str().unwrap(),
            "did you mean `claude_args`?",
        ],
    );
}

#[test]
fn bad_flags_name_the_flag() {
    let w = World::new();
    w.setup();
    let cases: &[(&[&str], &[&str])] = &[
        (&["--mount", "relative/dir", "hi"], &["--mount", "relative"]),
        (&["--mount", "/a:/b:/c:ro", "hi"], &["--mount", "too many"]),
        (
            &["--mount", "/nonexistent-dir-xyz", "hi"],
            &["--mount", "/nonexistent-dir-xyz"],
        ),
        (
            &["--runtime-script", "nope.sh", "hi"],
            &["--runtime-script", "nope.sh"],
        ),
        (
            &["--env", "1BAD=x", "hi"],
            &["--env", "not a valid variable name"],
        ),
        (&["--env", "NOEQUALS", "hi"], &["--env", "NAME=VALUE"]),
        (&["--memory", "0", "hi"], &["--memory", "outside 1-64"]),
        (&["setup", "--disk", "2000"], &["--disk", "outside 1-1000"]),
        (&["--mount", "/tmp", "list"], &["do not apply"]),
    ];
    for (args, needles) in cases {
        refused(&w.run(args), needles);
    }
}

#[test]
fn bad_environment_variables_name_the_variable() {
    let mut w = World::new();
    w.set_env("CLAUDE_VM_DISK", "thirty");
    refused(
        &w.run(&["setup"]),
        &["CLAUDE_VM_DISK", "thirty", "fix or unset CLAUDE_VM_DISK"],
    );
}

#[test]
fn precedence_cli_over_env_over_project_over_global() {
    let mut w = World::new();
    std::fs::write(
        w.home.join(".claude-vm.toml"),
        "[vm]\ndisk = 21\nmemory = 9\ncpus = 3\n",
    )
    .unwrap();
    w.write_project(".claude-vm.toml", "[vm]\ndisk = 31\nmemory = 10\n");
    // Host ports and resources beyond the user's own configuration need approval.
    w.run(&["trust"]).ok();
    w.set_env("CLAUDE_VM_MEMORY", "11");
    let r = w.run(&["setup", "--disk", "41"]);
    r.ok();
    let create = r.call("create");
    let val = |f: &str| create[create.iter().position(|a| a == f).unwrap() + 1].clone();
    assert_eq!(
        (val("--disk"), val("--memory"), val("--cpus")),
        ("41".into(), "11".into(), "3".into())
    );
    let shown = w.run(&["config", "show"]);
    shown.ok();
    let memory = shown
        .stdout
        .lines()
        .find(|l| l.starts_with("vm.memory = 11 "))
        .unwrap_or_else(|| panic!("{}", shown.stdout));
    assert!(
        memory.ends_with("# environment (CLAUDE_VM_MEMORY)"),
        "{memory}"
    );
}

#[test]
fn no_template_without_a_terminal_says_what_to_do_and_never_waits() {
    let w = World::new();
    let r = w.run(&["hello"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    for n in ["no template VM", "claude-vm setup", "--auto-setup"] {
        assert!(r.stderr.contains(n), "missing {n:?} in:\n{}", r.stderr);
    }
    assert_eq!(r.verbs(), ["--version"], "Lima is checked, nothing else");
    let r = w.run(&["--auto-setup", "hello"]);
    r.ok();
    assert_eq!(
        r.verbs(),
        // The shared base, the template (only a clone of it: no setup script), the session.
        ["list", "create", "start", "shell", "stop", "clone", "clone", "shell", "delete"]
    );
    assert_eq!(r.claude_argv(), ["--dangerously-skip-permissions", "hello"]);
}

#[test]
fn missing_limactl_is_a_clear_error() {
    let w = World::new();
    std::fs::remove_file(w.bin.join("limactl")).unwrap();
    let r = w.run(&["setup"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("`limactl` was not found"), "{}", r.stderr);
    assert!(r.stderr.contains("https://lima-vm.io"), "{}", r.stderr);
}

#[test]
fn a_lima_home_too_long_for_socket_paths_is_refused_up_front() {
    let mut w = World::new();
    let long = w.root.join("l".repeat(90));
    w.set_env("LIMA_HOME", long.to_str().unwrap());
    let r = w.run(&["setup"]);
    refused(&r, &["LIMA_HOME", "socket"]);
}

#[test]
fn a_long_lima_home_still_gets_names_that_fit() {
    let mut w = World::new();
    // Room for a name, but not for a full slug: the name shrinks, the socket path fits.
    let budget_home = w
        .root
        .join("x".repeat(40usize.saturating_sub(w.root.as_os_str().len()).max(1)));
    std::fs::create_dir_all(&budget_home).unwrap();
    w.set_env("LIMA_HOME", budget_home.to_str().unwrap());
    w.lima_home = budget_home.clone();
    w.setup();
    w.run(&["shell", "--", "true"]).ok();
    for name in w
        .logged()
        .iter()
        .filter(|c| c[0] == "clone")
        .map(|c| c.last().unwrap().clone())
    {
        assert!(
            budget_home.as_os_str().len() + name.len() + 27 < 104,
            "{name}"
        );
    }
}

#[test]
fn errors_quoting_a_name_escape_its_control_characters() {
    let w = World::new();
    w.setup();
    // A mount path is echoed in the error; its escape sequences must not reach the terminal.
    let r = w.run(&["--mount", "/nonexistent\u{1b}[2K\u{1b}[1A\r", "hi"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        !r.stderr.contains('\u{1b}') && !r.stderr.contains('\r'),
        "{:?}",
        r.stderr
    );
    assert!(
        r.stderr.contains("/nonexistent\\x1b[2K\\x1b[1A\\r"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_dry_run_plan_escapes_what_it_quotes() {
    let w = World::new();
    w.setup();
    let r = w.run(&[
        "--dry-run",
        "shell",
        "--",
        "echo",
        "\u{1b}[2K\u{1b}[1Ahidden",
    ]);
    r.ok();
    assert!(!r.stdout.contains('\u{1b}'), "{:?}", r.stdout);
    assert!(r.stdout.contains("\\x1b[2K\\x1b[1Ahidden"), "{}", r.stdout);
}

#[test]
fn lima_and_guest_output_streamed_with_verbose_is_escaped() {
    let w = World::new();
    w.write_project(
        ".claude-vm.setup.sh",
        "printf 'before\\033[2K\\033[1Aprovisioned\\n'\n",
    );
    let r = w.run(&["-v", "setup"]);
    r.ok();
    assert!(
        r.stderr.contains("before\\x1b[2K\\x1b[1Aprovisioned"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains('\u{1b}'), "{:?}", r.stderr);
}

/// Replaces `rel` in the project with a FIFO (nobody ever writes to it).
fn fifo(w: &World, rel: &str) {
    let path = w.project.join(rel);
    let _ = std::fs::remove_file(&path);
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

#[test]
fn project_files_that_are_fifos_devices_or_huge_are_refused_without_being_read() {
    let w = World::new();
    w.setup();
    let template = w.templates();
    let refused = |args: &[&str], rel: &str, why: &str| {
        let mut s = w.spawn(args);
        // A read of the FIFO would block forever: `finish` would time out.
        let code = s.finish();
        let err = s.stderr();
        assert_eq!(code, 2, "{rel}: {err}");
        assert!(err.contains(rel) && err.contains(why), "{rel}: {err}");
        assert_eq!(w.instances(), template, "{rel}: nothing was started");
    };
    // --yes: a link out of the project would otherwise be refused earlier, for trust.
    let session = ["--yes", "shell", "--", "true"];
    for rel in [".claude-vm.toml", ".claude-vm.runtime.sh"] {
        fifo(&w, rel);
        refused(&session, rel, "not a regular file");
        std::fs::remove_file(w.project.join(rel)).unwrap();
        std::os::unix::fs::symlink("/dev/zero", w.project.join(rel)).unwrap();
        refused(&session, rel, "not a regular file");
        std::fs::remove_file(w.project.join(rel)).unwrap();
        // Huge (sparse: it costs no disk).
        let f = std::fs::File::create(w.project.join(rel)).unwrap();
        f.set_len(64 << 20).unwrap();
        refused(&session, rel, "more than");
        std::fs::remove_file(w.project.join(rel)).unwrap();
    }
    fifo(&w, ".claude-vm.setup.sh");
    refused(&["setup"], ".claude-vm.setup.sh", "not a regular file");
    std::fs::remove_file(w.project.join(".claude-vm.setup.sh")).unwrap();
    w.run(&["shell", "--", "true"]).ok();
}

#[test]
fn resources_a_project_asks_beyond_the_users_own_configuration_need_approval() {
    let w = World::new();
    w.setup();
    // Each key alone: refused until approved, naming the key and the user's limit.
    for (toml, key) in [
        ("[vm]\ncpus = 64\n", "vm.cpus = 64"),
        ("[vm]\nmemory = 64\n", "vm.memory = 64"),
        ("[vm]\ndisk = 1000\n", "vm.disk = 1000"),
        ("[pool]\nsize = 8\n", "pool.size = 8"),
        (
            "[pool]\nidle_minutes = 10080\n",
            "pool.idle_minutes = 10080",
        ),
        ("[[ports]]\nguest = 22\nhost = 2222\n", "2222 (guest 22)"),
    ] {
        w.write_project(".claude-vm.toml", toml);
        let r = w.run(&["shell", "--", "true"]);
        refused(&r, &[key, "widens the sandbox", "claude-vm trust"]);
    }
    // Within the user's own limits: no approval needed.
    w.write_project(".claude-vm.toml", "[vm]\ncpus = 2\nmemory = 4\n");
    w.run(&["shell", "--", "true"]).ok();
    // The user's own global file raises the limit.
    std::fs::write(w.home.join(".claude-vm.toml"), "[vm]\ncpus = 64\n").unwrap();
    w.write_project(".claude-vm.toml", "[vm]\ncpus = 64\n");
    w.run(&["shell", "--", "true"]).ok();
    // Approved: used.
    w.write_project(".claude-vm.toml", "[vm]\nmemory = 12\n");
    w.run(&["trust"]).ok();
    let r = w.run(&["shell", "--", "true"]);
    r.ok();
    let clone = r.call("clone");
    assert_eq!(
        clone[clone.iter().position(|a| a == "--memory").unwrap() + 1],
        "12"
    );
}
