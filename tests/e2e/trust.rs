//! Trust: a project file that widens the sandbox runs only once `claude-vm trust` approved
//! its exact content; a change needs approval again; `--yes` allows it once, explicitly.

use crate::support::*;

fn outside(w: &World) -> std::path::PathBuf {
    let dir = w.root.join("host-data");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), "host\n").unwrap();
    dir
}

#[track_caller]
fn refused(r: &Run, needles: &[&str]) {
    assert_eq!(r.code, 2, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    for n in needles {
        assert!(r.stderr.contains(n), "missing {n:?} in:\n{}", r.stderr);
    }
    assert!(
        r.calls.is_empty(),
        "nothing may run before approval: {:?}",
        r.calls
    );
}

#[test]
fn a_widening_project_file_needs_approval_of_its_exact_content() {
    let w = World::new();
    w.setup();
    let data = outside(&w);
    let file = w.write_project(
        ".claude-vm.toml",
        &format!(
            "[[mounts]]\nlocation = \"{}\"\nmount_point = \"/data\"\n",
            data.display()
        ),
    );
    let cat = ["shell", "--", "cat", "/data/f"];
    let r = w.run(&cat);
    refused(
        &r,
        &[
            file.to_str().unwrap(),
            "has not been approved",
            &format!("mounts {}", data.display()),
            "claude-vm trust",
            "--yes",
        ],
    );

    let r = w.run(&["trust"]);
    r.ok();
    assert!(
        r.stdout.contains(&format!("approved {}", file.display())),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&data.display().to_string()),
        "{}",
        r.stdout
    );
    let r = w.run(&cat);
    r.ok();
    assert_eq!(r.stdout, "host\n");

    // Any change, even a comment, needs approval again.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{text}# edited\n")).unwrap();
    refused(&w.run(&cat), &["has changed since you approved it"]);

    // --yes: explicit, this once, not remembered.
    let r = w.run(&["--yes", "shell", "--", "cat", "/data/f"]);
    r.ok();
    assert!(
        r.stderr
            .contains("not approved; used this once because of --yes"),
        "{}",
        r.stderr
    );
    refused(&w.run(&cat), &["has changed since you approved it"]);

    w.run(&["trust"]).ok();
    w.run(&cat).ok();
    let r = w.run(&["trust", "--revoke"]);
    r.ok();
    assert!(r.stdout.contains("revoked"), "{}", r.stdout);
    refused(&w.run(&cat), &["has not been approved"]);
}

#[test]
fn every_kind_of_widening_is_caught_and_setup_is_guarded_too() {
    let w = World::new();
    let data = outside(&w);
    let script = w.write("host-scripts/s.sh", "true\n");
    let cases = [
        format!("[[setup.mounts]]\nlocation = \"{}\"\n", data.display()),
        format!("[setup]\nscripts = [\"{}\"]\n", script.display()),
        format!("[runtime]\nscripts = [\"{}\"]\n", script.display()),
        "[vm]\nimage = \"https://example.com/evil.yaml\"\n".to_owned(),
    ];
    for case in cases {
        w.write_project(".claude-vm.toml", &case);
        refused(
            &w.run(&["setup"]),
            &["widens the sandbox", "claude-vm trust"],
        );
    }
}

#[test]
fn what_stays_inside_the_project_and_the_users_own_file_need_no_approval() {
    let w = World::new();
    let data = outside(&w);
    std::fs::create_dir_all(w.project.join("fixtures")).unwrap();
    w.write_project("scripts/rt.sh", "export FROM_PROJECT=1\n");
    w.write_project(
        ".claude-vm.toml",
        &format!(
            "[vm]\ncpus = 2\n[runtime]\nscripts = [\"scripts/rt.sh\"]\n[[mounts]]\nlocation = \"{}\"\nmount_point = \"/fixtures\"\n",
            w.project.join("fixtures").display()
        ),
    );
    std::fs::write(
        w.home.join(".claude-vm.toml"),
        format!(
            "[[mounts]]\nlocation = \"{}\"\nmount_point = \"/data\"\n",
            data.display()
        ),
    )
    .unwrap();
    w.setup();
    let r = w.run(&["shell", "--", "cat", "/data/f"]);
    r.ok();
    assert_eq!(r.stdout, "host\n");
}

#[test]
fn a_project_script_that_links_out_of_the_project_is_refused() {
    let w = World::new();
    w.setup();
    let secret = w.write("home/.aws/credentials", "aws_secret_access_key = hunter2\n");
    std::os::unix::fs::symlink(&secret, w.project.join(".claude-vm.runtime.sh")).unwrap();
    refused(
        &w.run(&["hello"]),
        &[".claude-vm.runtime.sh", "is a link to", "credentials"],
    );
    std::fs::remove_file(w.project.join(".claude-vm.runtime.sh")).unwrap();
    std::os::unix::fs::symlink(&secret, w.project.join(".claude-vm.setup.sh")).unwrap();
    refused(&w.run(&["setup"]), &[".claude-vm.setup.sh", "is a link to"]);
}

#[test]
fn a_worktrees_main_repository_file_is_checked_too() {
    let w = World::new();
    let data = outside(&w);
    let wt = w.root.join("wt");
    git(
        &w.project,
        &["worktree", "add", "-q", "-b", "f", wt.to_str().unwrap()],
    );
    w.write_project(
        ".claude-vm.toml",
        &format!("[[mounts]]\nlocation = \"{}\"\n", data.display()),
    );
    let r = w.run_in(&["setup"], &wt);
    refused(&r, &[w.project.join(".claude-vm.toml").to_str().unwrap()]);
}

#[test]
fn config_validate_reports_what_a_session_would_refuse_as_unapproved() {
    let w = World::new();
    let data = w.root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    w.write_project(
        ".claude-vm.toml",
        &format!("[[mounts]]\nlocation = \"{}\"\n", data.display()),
    );
    let r = w.run(&["config", "validate"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr
            .contains("widens the sandbox and has not been approved")
            && r.stderr.contains("claude-vm trust"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stdout.contains("valid for setup and sessions"),
        "{}",
        r.stdout
    );
    // A session agrees.
    let s = w.run(&["shell", "--", "true"]);
    assert_eq!(s.code, 2);
    w.run(&["trust"]).ok();
    let r = w.run(&["config", "validate"]);
    r.ok();
    assert!(
        r.stdout.contains("valid for setup and sessions"),
        "{}",
        r.stdout
    );
    // A project setup script leading out of the project counts too.
    let outside = w.write("elsewhere.sh", "true\n");
    std::os::unix::fs::symlink(&outside, w.project.join(".claude-vm.setup.sh")).unwrap();
    let r = w.run(&["config", "validate"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains(".claude-vm.setup.sh"), "{}", r.stderr);
}
