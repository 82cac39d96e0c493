//! The boundary between the VM and the host, attacked from inside sessions as a hostile agent
//! would: what a session can write (the project, a worktree's main repository) must not decide
//! what the next session mounts or copies from the host.

use std::path::{Path, PathBuf};

use crate::support::*;

/// A worktree of the project, a session already run in it (so claude-vm knows it), and an
/// unrelated repository elsewhere on the host that must never be mounted.
fn worktree_world() -> (World, PathBuf, PathBuf) {
    let w = World::new();
    w.setup();
    let wt = w.root.join("wt");
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
    w.run_in(&["shell", "--", "true"], &wt).ok();
    let victim = w.root.join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    git(&victim, &["init", "-q", "-b", "main"]);
    std::fs::write(victim.join("secret.txt"), "host secret\n").unwrap();
    git(&victim, &["add", "."]);
    git(&victim, &["commit", "-q", "-m", "x"]);
    (w, wt, victim)
}

#[track_caller]
fn assert_refused_without_mounting(w: &World, wt: &Path, victim: &Path, what: &str) {
    let r = w.run_in(&["shell", "--", "cat", "secret.txt"], wt);
    assert_eq!(
        r.code, 2,
        "{what}: the session must be refused\n{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("main repository")
            || r.stderr.contains("not a worktree of")
            || r.stderr.contains("points elsewhere"),
        "{what}: {}",
        r.stderr
    );
    assert!(
        !r.verbs().contains(&"clone"),
        "{what}: nothing may boot: {:?}",
        r.calls
    );
    for call in w.logged() {
        assert!(
            !call.iter().any(|a| a.contains(victim.to_str().unwrap())),
            "{what}: the other repository reached limactl: {call:?}"
        );
    }
}

#[test]
fn a_session_cannot_point_its_worktree_at_another_repository() {
    let (w, wt, victim) = worktree_world();
    let admin = w.project.join(".git/worktrees/wt");
    let victim_git = victim.join(".git");

    // From inside the VM: commondir pointed at the other repository, absolute and relative.
    for commondir in [
        victim_git.display().to_string(),
        "../../../../../victim/.git".to_string(),
    ] {
        w.run_in(
            &[
                "shell",
                "--",
                "sh",
                "-c",
                &format!("printf '%s\\n' \"$1\" > {}/commondir", admin.display()),
                "sh",
                &commondir,
            ],
            &wt,
        )
        .ok();
        assert_refused_without_mounting(&w, &wt, &victim, &format!("commondir {commondir}"));
        // The user repairs it; sessions work again.
        std::fs::write(admin.join("commondir"), "../..\n").unwrap();
        w.run_in(&["shell", "--", "true"], &wt).ok();
    }

    // The worktree's .git file replaced by one naming a worktree entry the other repository
    // really has (one of its own worktrees).
    let victims_wt = w.root.join("victim-wt");
    git(
        &victim,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "v",
            victims_wt.to_str().unwrap(),
        ],
    );
    w.run_in(
        &[
            "shell",
            "--",
            "sh",
            "-c",
            "printf 'gitdir: %s\\n' \"$1\" > .git",
            "sh",
            victim_git.join("worktrees/victim-wt").to_str().unwrap(),
        ],
        &wt,
    )
    .ok();
    assert_refused_without_mounting(&w, &wt, &victim, ".git file pointing elsewhere");

    // A link in place of the .git file, to the other repository's git directory.
    std::fs::remove_file(wt.join(".git")).unwrap();
    std::os::unix::fs::symlink(&victim_git, wt.join(".git")).unwrap();
    assert_refused_without_mounting(&w, &wt, &victim, ".git a link to another repository");
}

#[test]
fn a_main_repository_the_user_moved_is_accepted_with_trust() {
    let (w, wt, _victim) = worktree_world();
    // The user moves the main repository and repairs the worktree, as git documents.
    let moved = w.root.join("moved-main");
    std::fs::rename(&w.project, &moved).unwrap();
    git(&moved, &["worktree", "repair", wt.to_str().unwrap()]);
    let r = w.run_in(&["shell", "--", "true"], &wt);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("claude-vm trust"), "{}", r.stderr);
    let r = w.run_in(&["trust"], &wt);
    r.ok();
    assert!(
        r.stdout.contains(&format!(
            "accepted {} as the main repository",
            moved.display()
        )),
        "{}",
        r.stdout
    );
    let r = w.run_in(
        &["--auto-setup", "shell", "--", "git", "status", "--short"],
        &wt,
    );
    r.ok();
}

/// A session whose agent keeps running `first` and `then` in turn (each swaps a path in the
/// project) until the file `stop` appears in the project.
fn start_swapping_agent(w: &World, first: &str, then: &str) -> std::process::Child {
    let script = format!(
        "i=0; while [ ! -e stop ] && [ $i -lt 200000 ]; do i=$((i+1)); {first}; {then}; done; true"
    );
    let mut cmd = w.command(&["shell", "--", "sh", "-c", &script], &w.project);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let child = cmd.spawn().expect("start the swapping agent");
    w.background.lock().expect("background").push(child.id());
    child
}

/// An agent that swaps the folder `name` and a link to `target` with one atomic exchange
/// (renameat2 RENAME_EXCHANGE, through python3's ctypes) again and again: the path is always
/// there, a folder or a link, never missing.
fn start_exchanging_agent(w: &World, name: &str, target: &Path) -> std::process::Child {
    let program = format!(
        "import ctypes, os\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         os.symlink({target:?}, '.swap-link')\n\
         n = 0\n\
         while not os.path.exists('stop') and n < 2000000:\n\
         \x20   n += 1\n\
         \x20   if libc.renameat2(-100, b'{name}', -100, b'.swap-link', 2) != 0:\n\
         \x20       raise OSError(ctypes.get_errno(), 'renameat2')\n\
         if os.path.islink('{name}'):\n\
         \x20   libc.renameat2(-100, b'{name}', -100, b'.swap-link', 2)\n\
         os.unlink('.swap-link')\n",
        target = target.display().to_string()
    );
    let mut cmd = w.command(&["shell", "--", "python3", "-c", &program], &w.project);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let child = cmd.spawn().expect("start the exchanging agent");
    w.background.lock().expect("background").push(child.id());
    child
}

fn stop_agent(w: &World, mut agent: std::process::Child) {
    std::fs::write(w.project.join("stop"), "").unwrap();
    let status = agent.wait().expect("the agent's session ends");
    w.background
        .lock()
        .expect("background")
        .retain(|p| *p != agent.id());
    assert!(status.success(), "the swapping session failed: {status:?}");
    std::fs::remove_file(w.project.join("stop")).unwrap();
}

/// Waits until the agent has swapped at least once, so the sessions below race it.
fn wait_for_link(path: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("the agent never swapped {}", path.display());
}

#[test]
fn a_runtime_script_swapped_for_a_link_never_copies_a_host_file() {
    let w = World::new();
    w.setup();
    let secret = w.write("host-secret.sh", "echo HOST-SECRET-LEAKED\n");
    w.write_project(".claude-vm.runtime.sh", "echo project-runtime >&2\n");
    // Atomic renames: the file is always there, either a file or a link to the host file.
    let agent = start_swapping_agent(
        &w,
        "printf 'echo project-runtime >&2\\n' > .swap && mv -T .swap .claude-vm.runtime.sh",
        &format!(
            "ln -sfn {} .swap && mv -T .swap .claude-vm.runtime.sh",
            secret.display()
        ),
    );
    wait_for_link(&w.project.join(".claude-vm.runtime.sh"));
    let (mut ran, mut refused) = (0, 0);
    for _ in 0..40 {
        let r = w.run(&["shell", "--", "true"]);
        assert!(
            !r.stdout.contains("HOST-SECRET") && !r.stderr.contains("HOST-SECRET"),
            "a host file reached the VM:\n{}",
            r.stderr
        );
        if r.code == 0 {
            ran += 1;
        } else {
            assert!(
                r.stderr.contains("outside the project") || r.stderr.contains("widens the sandbox"),
                "{}",
                r.stderr
            );
            refused += 1;
        }
    }
    stop_agent(&w, agent);
    assert!(
        ran + refused == 40 && refused > 0,
        "ran {ran}, refused {refused}: the race was not run"
    );
    w.assert_nothing_left("after racing sessions");
}

/// A home with a marker file and a project whose folder `dir` (holding `file`) is mounted by
/// `table` (`[[mounts]]` or `[[setup.mounts]]`) at `at`.
fn world_with_a_mounted_project_folder(
    dir: &str,
    file: &str,
    text: &str,
    table: &str,
    at: &str,
    writable: bool,
) -> World {
    let w = World::new();
    std::fs::write(w.home.join("HOME-MARKER"), "home\n").unwrap();
    std::fs::create_dir_all(w.project.join(dir)).unwrap();
    std::fs::write(w.project.join(dir).join(file), text).unwrap();
    w.write_project(
        ".claude-vm.toml",
        &format!(
            "{table}\nlocation = \"{}\"\nmount_point = \"{at}\"\n{}",
            w.project.join(dir).display(),
            if writable { "writable = true\n" } else { "" }
        ),
    );
    w
}

/// No `verb` call (clone, create) of this run gave Lima the home directory as a mount.
#[track_caller]
fn assert_home_not_given_to_lima(r: &Run, verb: &str, home: &str) {
    for call in r.calls.iter().filter(|c| c[0] == verb) {
        let mounts = call
            .iter()
            .find(|a| a.starts_with(".mounts"))
            .cloned()
            .unwrap_or_default();
        assert!(
            !mounts.contains(&format!("\"location\":\"{home}\"")),
            "the home directory went to Lima: {mounts}"
        );
    }
}

#[test]
fn a_mounted_folder_swapped_for_a_link_to_home_never_mounts_home() {
    let w = world_with_a_mounted_project_folder(
        "data",
        "inside",
        "project data\n",
        "[[mounts]]",
        "/data",
        true,
    );
    w.setup();
    let r = w.run(&["shell", "--", "cat", "/data/inside"]);
    r.ok();
    assert_eq!(
        r.stdout, "project data\n",
        "the folder is at its mount point"
    );
    let agent = start_exchanging_agent(&w, "data", &w.home);
    wait_for_link(&w.project.join("data"));
    let home = w.home.to_str().unwrap().to_owned();
    let mut booted = 0;
    for _ in 0..40 {
        let r = w.run(&["shell", "--", "sh", "-c", "ls -a /data/ 2>&1; true"]);
        booted += usize::from(r.verbs().contains(&"clone"));
        assert!(
            !r.stdout.contains("HOME-MARKER"),
            "the home directory was mounted:\n{}",
            r.stdout
        );
        assert_home_not_given_to_lima(&r, "clone", &home);
    }
    stop_agent(&w, agent);
    assert!(booted > 0, "no session ran during the race");
}

#[test]
fn a_setup_mount_swapped_for_a_link_to_home_never_reaches_the_build() {
    let w = world_with_a_mounted_project_folder(
        "vendor",
        "dep",
        "vendored\n",
        "[[setup.mounts]]",
        "/vendor",
        false,
    );
    // What the build saw at its mount point is kept in the template.
    w.write_project(
        ".claude-vm.setup.sh",
        "ls -a /vendor/ > \"$HOME/seen-at-setup\" 2>&1 || true\n",
    );
    w.setup();
    let r = w.run(&["shell", "--", "sh", "-c", "cat ~/seen-at-setup"]);
    r.ok();
    assert!(
        r.stdout.contains("dep"),
        "the build sees the folder: {}",
        r.stdout
    );
    let agent = start_exchanging_agent(&w, "vendor", &w.home);
    wait_for_link(&w.project.join("vendor"));
    let home = w.home.to_str().unwrap().to_owned();
    let mut built = 0;
    for _ in 0..30 {
        let r = w.run(&["setup"]);
        built += usize::from(r.code == 0);
        assert_home_not_given_to_lima(&r, "create", &home);
        if r.code == 0 {
            let seen = w.run(&["shell", "--", "sh", "-c", "cat ~/seen-at-setup"]);
            assert!(
                !seen.stdout.contains("HOME-MARKER"),
                "the build saw the home directory:\n{}",
                seen.stdout
            );
        }
    }
    stop_agent(&w, agent);
    assert!(built > 0, "no build ran during the race");
}
