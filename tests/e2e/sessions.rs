//! Sessions: the agent and shell paths, byte-exact arguments, mounts, runtime scripts, exit
//! codes, and that the clone is always deleted.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::support::*;

const HOSTILE: &str = "fix \"this\" 'now' \\ $HOME `id` $(date)\nsecond line ✓ ünïcödé * ; | &";

#[test]
fn agent_session_is_clone_shell_delete_with_arguments_byte_exact() {
    let w = World::new();
    w.write_project(
        ".claude-vm.toml",
        "[defaults]\nclaude_args = [\"--model\", \"opus 4\"]\n",
    );
    w.setup();
    let r = w.run(&[
        HOSTILE,
        "--append-system-prompt",
        "be brief",
        "-p",
        "",
        "--",
        "--x",
    ]);
    r.ok();
    assert_eq!(
        r.verbs(),
        ["clone", "shell", "delete"],
        "stderr:\n{}",
        r.stderr
    );
    assert_eq!(
        r.claude_argv(),
        [
            "--dangerously-skip-permissions",
            "--model",
            "opus 4",
            HOSTILE,
            "--append-system-prompt",
            "be brief",
            "-p",
            "",
            "--",
            "--x"
        ]
    );
    assert_eq!(r.claude()["cwd"], w.project.to_str().unwrap());
    // The clone was started in the clone call and deleted with --force.
    assert!(r.call("clone").contains(&"--start".to_string()));
    assert!(r.call("delete").contains(&"--force".to_string()));
    assert_eq!(w.instances(), w.templates());
}

#[test]
fn agent_subcommand_is_the_same_as_the_default() {
    let w = World::new();
    w.setup();
    let r = w.run(&["agent", "hello", "--verbose"]);
    r.ok();
    assert_eq!(
        r.claude_argv(),
        ["--dangerously-skip-permissions", "hello", "--verbose"]
    );
    let r = w.run(&["--", "setup"]);
    r.ok();
    assert_eq!(
        r.claude_argv(),
        ["--dangerously-skip-permissions", "setup"],
        "after -- a subcommand name is a prompt"
    );
}

#[test]
fn shell_command_exit_code_is_ours_and_the_clone_is_deleted() {
    let w = World::new();
    w.setup();
    let r = w.run(&["shell", "--", "sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert_eq!(r.stdout, "out\n");
    assert!(r.stderr.contains("err"));
    assert_eq!(r.verbs(), ["clone", "shell", "delete"]);
    let r = w.run(&["--sim-exit", "5"]);
    assert_eq!(r.code, 5, "claude's own exit code: {}", r.stderr);
}

#[test]
fn hostile_project_paths_work_end_to_end() {
    let names: [&[u8]; 3] = [
        b"my project \"q\" 'a' $HOME `x` \\b",
        b"line\nbreak \xc3\xa9t\xc3\xa9 \xe2\x9c\x93",
        b"-dash;semi&amp|pipe*",
    ];
    for name in names {
        let w = World::with_project_name(OsStr::from_bytes(name));
        w.setup();
        let r = w.run(&[HOSTILE]);
        r.ok();
        assert_eq!(
            r.claude()["cwd"].as_str().map(str::as_bytes),
            Some(w.project.as_os_str().as_bytes())
        );
        assert_eq!(r.claude_argv()[1], HOSTILE);
        let s = w.run(&["shell", "--", "sh", "-c", "pwd; ls"]);
        s.ok();
        assert!(s.stdout.contains("README.md"), "{}", s.stdout);
        let t = &w.templates()[0];
        assert!(t.len() < 60 && t.starts_with("claude-vm-"), "{t}");
    }
}

#[test]
fn project_is_writable_and_other_host_files_are_invisible() {
    let w = World::new();
    w.setup();
    let sibling = w.root.join("src/secret-sibling");
    std::fs::create_dir_all(&sibling).unwrap();
    let script = format!(
        "echo made-in-vm > from-vm.txt; if [ -e {} ]; then echo sibling-visible; else echo sibling-hidden; fi",
        sibling.display()
    );
    let r = w.run(&["shell", "--", "sh", "-c", &script]);
    r.ok();
    assert_eq!(
        std::fs::read_to_string(w.project.join("from-vm.txt")).unwrap(),
        "made-in-vm\n"
    );
    if isolated() {
        assert_eq!(r.stdout, "sibling-hidden\n");
    }
}

#[test]
fn mounts_from_config_and_flags_with_read_only_enforced() {
    let w = World::new();
    let data = w.root.join("data set");
    let out = w.root.join("out");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(data.join("f"), "data\n").unwrap();
    w.write_project(
        ".claude-vm.toml",
        &format!(
            "[[mounts]]\nlocation = \"{}\"\nmount_point = \"/data\"\n",
            data.display()
        ),
    );
    // A project file that mounts a directory outside the project needs approval.
    let r = w.run(&["setup"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("claude-vm trust"), "{}", r.stderr);
    w.run(&["trust"]).ok();
    w.setup();
    let spec = format!("{}:/out", out.display());
    let r = w.run(&["shell", "--mount", &spec, "--", "sh", "-c", "cat /data/f; echo w > /out/w; echo x > /data/x 2>/dev/null && echo data-writable || echo data-read-only"]);
    r.ok();
    assert!(r.stdout.starts_with("data\n"), "{}", r.stdout);
    assert_eq!(std::fs::read_to_string(out.join("w")).unwrap(), "w\n");
    let clone = r.call("clone");
    let set = &clone[clone.iter().position(|a| a == "--set").unwrap() + 1];
    let mounts: serde_json::Value =
        serde_json::from_str(set.strip_prefix(".mounts = ").unwrap()).unwrap();
    let data_mount = mounts
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPoint"] == "/data")
        .expect("data mount");
    assert_eq!(
        data_mount["writable"], false,
        "TOML mounts default to read-only"
    );
    if isolated() {
        assert!(r.stdout.ends_with("data-read-only\n"), "{}", r.stdout);
        assert!(!data.join("x").exists());
    }
}

#[test]
fn conversation_folder_is_shared_unless_disabled() {
    let w = World::new();
    w.setup();
    let folder: String = w
        .project
        .to_str()
        .unwrap()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let host = w.home.join(".claude/projects").join(&folder);
    let write = format!("echo hi > \"$HOME/.claude/projects/{folder}/note\"");
    w.run(&["shell", "--", "sh", "-c", &write]).ok();
    assert_eq!(std::fs::read_to_string(host.join("note")).unwrap(), "hi\n");

    let r = w.run(&[
        "--no-conversations",
        "shell",
        "--",
        "sh",
        "-c",
        &format!("test -e \"$HOME/.claude/projects/{folder}/note\" && echo shared || echo private"),
    ]);
    r.ok();
    let clone = r.call("clone");
    assert!(
        !clone.iter().any(|a| a.contains(".claude/projects")),
        "{clone:?}"
    );
    if isolated() {
        assert_eq!(r.stdout, "private\n");
    }
}

#[test]
fn runtime_scripts_share_one_shell_with_claude_and_fail_fast() {
    let w = World::new();
    w.write_project(".claude-vm.runtime.sh", "export FROM_PROJECT=1\n");
    w.write_project("rt/config.sh", "export FROM_CONFIG=\"$FROM_PROJECT-2\"\n");
    w.write_project(
        ".claude-vm.toml",
        "[runtime]\nscripts = [\"rt/config.sh\"]\n",
    );
    let cli = w.write("cli.sh", "export FROM_CLI=\"$FROM_CONFIG-3\"\n");
    w.setup();
    let r = w.run(&["--runtime-script", cli.to_str().unwrap(), "hello"]);
    r.ok();
    assert_eq!(r.claude()["env"]["FROM_CLI"], "1-2-3");

    std::fs::write(&cli, "echo failing; false\n").unwrap();
    let r = w.run(&["--runtime-script", cli.to_str().unwrap(), "hello"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        !r.stdout.contains("\"fake\":\"claude\""),
        "claude must not start"
    );
    assert!(
        r.stderr.contains("cli.sh failed with status 1"),
        "{}",
        r.stderr
    );
    assert_eq!(r.verbs(), ["clone", "shell", "delete"]);
}

#[test]
fn env_values_reach_the_guest_and_never_a_command_line() {
    let w = World::new();
    w.setup();
    let secret = "sk-test-\"quoted\" $dollar `tick` \\ 'single'\nnewline";
    let assignment = format!("API_TOKEN={secret}");
    let r = w.run(&["--env", &assignment, "hi"]);
    r.ok();
    assert_eq!(r.claude()["env"]["API_TOKEN"], secret);
    for call in w.logged() {
        assert!(
            !call.iter().any(|a| a.contains("sk-test")),
            "secret on a command line: {call:?}"
        );
    }
}

#[test]
fn resources_flags_reach_the_clone_only_when_they_differ() {
    let w = World::new();
    w.setup();
    let r = w.run(&["--cpus", "2", "--memory", "6", "shell", "--", "true"]);
    r.ok();
    let clone = r.call("clone");
    let val = |f: &str| {
        clone
            .iter()
            .position(|a| a == f)
            .map(|i| clone[i + 1].clone())
    };
    assert_eq!(
        (val("--cpus"), val("--memory"), val("--disk")),
        (Some("2".into()), Some("6".into()), None)
    );
    let r = w.run(&["shell", "--", "true"]);
    assert!(!r.call("clone").contains(&"--cpus".to_string()));
}

#[test]
fn worktree_sessions_mount_the_main_repository_so_git_works() {
    let w = World::new();
    w.setup();
    let wt = w.root.join("wt feature");
    git(
        &w.project,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "feature",
            wt.to_str().unwrap(),
        ],
    );
    let r = w.run_in(
        &[
            "shell",
            "--",
            "git",
            "-c",
            "user.name=vm",
            "-c",
            "user.email=vm@x",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "from the vm",
        ],
        &wt,
    );
    r.ok();
    assert!(git(&wt, &["log", "-1", "--format=%s"]).contains("from the vm"));
    // Same template as the main checkout.
    assert_eq!(w.templates().len(), 1);
    assert!(r.call("clone").contains(&w.templates()[0]));
}

#[test]
fn a_failed_clone_shows_what_limactl_said_and_leaves_nothing() {
    let mut w = World::new();
    w.setup();
    w.set_env("LIMA_SIM_FAIL", "clone");
    let r = w.run(&["hello"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("`limactl clone` exited with status 1: simulated failure of \"clone\""),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("limactl said:") && r.stderr.contains("hint:"),
        "{}",
        r.stderr
    );
    assert_eq!(
        r.verbs(),
        ["clone", "delete"],
        "cleanup runs even when the clone failed"
    );
}

#[test]
fn a_clone_that_fails_to_boot_is_deleted() {
    let mut w = World::new();
    w.setup();
    w.set_env("LIMA_SIM_FAIL", "start");
    let r = w.run(&["shell", "--", "true"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("simulated failure of \"start\""),
        "{}",
        r.stderr
    );
    assert_eq!(r.verbs(), ["clone", "delete"]);
}

#[test]
fn verbose_streams_limas_output() {
    let w = World::new();
    let r = w.run(&["--verbose", "setup"]);
    r.ok();
    assert!(
        r.stderr.contains("level=info"),
        "Lima's log lines are shown live:\n{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("==> [2/2] installing Claude Code"),
        "the guest's output too:\n{}",
        r.stderr
    );
    let quiet = w.run(&["setup"]);
    quiet.ok();
    assert!(!quiet.stderr.contains("level=info"), "{}", quiet.stderr);
}

#[test]
fn conversation_folders_claude_vm_creates_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new();
    w.setup();
    let projects = w.home.join(".claude/projects");
    assert!(!projects.exists(), "setup made no conversation folder");
    w.run(&["shell", "--", "true"]).ok();
    let folder = std::fs::read_dir(&projects)
        .unwrap()
        .next()
        .expect("the project's conversation folder")
        .unwrap()
        .path();
    for dir in [w.home.join(".claude"), projects.clone(), folder] {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
    }
}
