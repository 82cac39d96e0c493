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
