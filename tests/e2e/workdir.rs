//! Sessions mount their project writable, so claude-vm refuses to start one whose "project"
//! is the home directory, `/`, a parent of home or a system directory, unless
//! `--allow-any-dir` says it is meant.

use crate::support::*;

#[track_caller]
fn refused_in(w: &World, dir: &std::path::Path, args: &[&str], why: &str) {
    let r = w.run_in(args, dir);
    assert_eq!(r.code, 2, "{}: {}", dir.display(), r.stderr);
    assert!(r.calls.is_empty(), "no limactl call: {:?}", r.calls);
    let err = &r.stderr;
    assert!(err.contains("refusing to start a session in"), "{err}");
    assert!(err.contains(why), "{}: {err}", dir.display());
    assert!(err.contains("mounts its project writable"), "{err}");
    assert!(
        err.contains("cd into a project") && err.contains("--allow-any-dir"),
        "{err}"
    );
}

#[test]
fn home_root_parents_of_home_and_system_directories_are_refused() {
    let w = World::new();
    w.setup();
    let sessions: [&[&str]; 3] = [&["hello"], &["shell", "--", "true"], &["agent", "-p", "x"]];
    for args in sessions {
        refused_in(&w, &w.home, args, "it is your home directory");
        refused_in(&w, &w.root, args, "it contains your home directory");
        refused_in(
            &w,
            std::path::Path::new("/"),
            args,
            "root of the file system",
        );
        for sys in ["/usr", "/etc"] {
            refused_in(&w, std::path::Path::new(sys), args, "system directory");
        }
    }
    // A subdirectory of home that is not a repository is a project like any other.
    let work = w.home.join("work");
    std::fs::create_dir_all(&work).unwrap();
    w.run_in(&["setup"], &work).ok();
    w.run_in(&["shell", "--", "true"], &work).ok();
}

#[test]
fn a_dotfiles_repository_at_home_is_refused_from_any_folder_inside_it() {
    let w = World::new();
    git(&w.home, &["init", "-q"]);
    let docs = w.home.join("Documents");
    std::fs::create_dir_all(&docs).unwrap();
    // The repository's root is $HOME: that is what would be mounted.
    refused_in(
        &w,
        &docs,
        &["shell", "--", "true"],
        "it is your home directory",
    );
}

#[test]
fn allow_any_dir_runs_there_on_purpose() {
    let w = World::new();
    w.run_in(&["setup"], &w.home).ok();
    // `--network open`: this project (the test's HOME) holds $LIMA_HOME, and the simulator
    // cannot idmap a folder holding its own instance, so that guest runs as uid 0, where the
    // network rules refuse to start (status 126, "the guest user is root"), as they should.
    let r = w.run_in(
        &[
            "shell",
            "--allow-any-dir",
            "--network",
            "open",
            "--",
            "true",
        ],
        &w.home,
    );
    r.ok();
    let clone = r.call("clone").join(" ");
    assert!(clone.contains(w.home.to_str().unwrap()), "{clone}");
    // Also before the subcommand, and in --help.
    w.run_in(
        &[
            "--allow-any-dir",
            "shell",
            "--network",
            "open",
            "--",
            "true",
        ],
        &w.home,
    )
    .ok();
    let help = w.run(&["shell", "--help"]);
    assert!(help.stdout.contains("--allow-any-dir"), "{}", help.stdout);
}

#[test]
fn the_warm_pool_is_refused_there_without_offering_a_flag_it_lacks() {
    let w = World::new();
    w.run_in(&["setup"], &w.home).ok();
    let r = w.run_in(&["warm", "1"], &w.home);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("it is your home directory"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("warm pool is not available"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("--allow-any-dir"), "{}", r.stderr);
    assert!(r.calls.iter().all(|c| c[0] != "clone"), "{:?}", r.calls);
}
