//! The lifecycle: states, clone, rename and edit.

use std::fs;
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn lifecycle_states_follow_lima() {
    let sim = Sim::new();
    sim.create("vm", &[]);
    let out = sim.run(&["start", "vm"]).ok();
    assert!(
        out.stderr
            .contains("READY. Run `limactl shell vm` to open the shell."),
        "{}",
        out.stderr
    );
    let info = sim.list_json("vm");
    assert_eq!(info["status"], "Running");
    assert!(info["sshLocalPort"].as_i64().unwrap_or(0) > 0);
    let pid =
        fs::read_to_string(sim.lima_home.join("vm/ha.pid")).expect("ha.pid exists while Running");
    assert!(pid.trim().parse::<u32>().is_ok());
    let again = sim.run(&["start", "vm"]).ok();
    assert!(
        again
            .stderr
            .contains("The instance \\\"vm\\\" is already running."),
        "{}",
        again.stderr
    );

    sim.run(&["delete", "vm"]).fails_with(1, "failed to delete instance \\\"vm\\\": expected status \\\"Stopped\\\", got \\\"Running\\\"");
    sim.run(&["clone", "vm", "copy"])
        .fails_with(1, "cannot clone a running instance");
    sim.run(&["edit", "vm", "--cpus", "2"])
        .fails_with(1, "cannot edit a running instance");
    sim.run(&["stop", "vm"]).ok();
    assert_eq!(sim.list_json("vm")["status"], "Stopped");
    assert!(!sim.lima_home.join("vm/ha.pid").exists());
    sim.run(&["stop", "vm"]).fails_with(
        1,
        "expected status \\\"Running\\\", got \\\"Stopped\\\" (maybe use `limactl stop -f`?)",
    );
    sim.run(&["stop", "-f", "vm"]).ok();
    sim.run(&["stop", "nope"])
        .fails_with(1, "open ")
        .fails_with(1, "/nope/lima.yaml: no such file or directory");

    sim.run(&["protect", "vm"]).ok();
    assert_eq!(sim.list_json("vm")["protected"], true);
    sim.run(&["delete", "-f", "vm"]).fails_with(
        1,
        "instance is protected to prohibit accidental removal (Hint: use `limactl unprotect`)",
    );
    sim.run(&["unprotect", "vm"]).ok();
    sim.run(&["start", "vm"]).ok();
    let out = sim.run(&["delete", "--force", "vm", "ghost"]).ok();
    assert!(
        out.stderr
            .contains("Ignoring non-existent instance \\\"ghost\\\""),
        "{}",
        out.stderr
    );
    assert!(!sim.lima_home.join("vm").exists());
    assert_eq!(sim.run(&["rm", "ghost"]).ok().code, Some(0));
    let empty = sim.run(&["list"]).ok();
    assert_eq!(empty.stdout, "");
    assert!(
        empty.stderr.contains("No instance found."),
        "{}",
        empty.stderr
    );

    // A directory without a readable lima.yaml is Broken, and delete leaves it alone.
    fs::create_dir_all(sim.lima_home.join("half")).expect("mkdir");
    assert_eq!(sim.list_json("half")["status"], "Broken");
    sim.run(&["delete", "-f", "half"])
        .fails_with(1, "it was NOT deleted");
    fs::write(sim.lima_home.join("half/lima.yaml"), "{not json").expect("write");
    assert_eq!(sim.list_json("half")["status"], "Broken");
}

#[test]
fn clone_rename_and_edit_follow_lima() {
    let sim = Sim::new();
    sim.running_with_project("tmpl");
    sim.sh(
        "tmpl",
        "echo from-template | sudo tee /opt/marker && mkdir -p ~/.cache && echo home > ~/.cache/h",
    )
    .ok();
    sim.run(&["stop", "tmpl"]).ok();
    sim.run(&["protect", "tmpl"]).ok();
    sim.run(&["clone", "nope", "x"])
        .fails_with(1, "instance \\\"nope\\\" not found");
    sim.run(&["clone", "tmpl", "tmpl"]).fails_with(
        1,
        "new instance name \\\"tmpl\\\" must be different from \\\"tmpl\\\"",
    );
    sim.run(&["clone", "tmpl", "bad/name"])
        .fails_with(1, "is not a valid identifier");

    let start = Instant::now();
    sim.run(&[
        "clone",
        "--tty=false",
        "tmpl",
        "c1",
        "--cpus",
        "2",
        "--set",
        ".env.ROLE = \"clone\"",
        "--start",
    ])
    .ok();
    let info = sim.list_json("c1");
    assert_eq!(
        (
            info["status"].as_str(),
            info["cpus"].as_i64(),
            info["protected"].as_bool()
        ),
        (Some("Running"), Some(2), Some(false))
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    let out = sim.sh("c1", "cat /opt/marker ~/.cache/h; echo $ROLE").ok();
    assert_eq!(out.stdout, "from-template\nhome\nclone\n");
    sim.run(&["clone", "tmpl", "c1"])
        .fails_with(1, "instance \\\"c1\\\" already exists");

    // Invalid edit flags fail after the copy, leaving the clone with the old config (as Lima does).
    let cwd = sim.project.join("rejected");
    fs::create_dir_all(&cwd).expect("mkdir");
    let out: Out = sim
        .cmd(&["clone", "tmpl", "c2", "--set", ".memory = \"lots\""])
        .current_dir(&cwd)
        .output()
        .expect("run")
        .into();
    out.fails_with(1, "the YAML is invalid, saved the buffer as \\\"lima.REJECTED.yaml\\\": field `memory` has an invalid value");
    assert!(cwd.join("lima.REJECTED.yaml").exists());
    assert_eq!(sim.list_json("c2")["config"]["memory"], "4GiB");

    sim.run(&["edit", "c2", "--tty=false", "--memory", "3"])
        .ok();
    assert_eq!(sim.list_json("c2")["config"]["memory"], "3GiB");
    sim.run(&["edit", "c2", "--disk", "10"])
        .fails_with(1, "shrinking the disk (100GiB --> 10GiB) is not supported");
    let same = sim.run(&["edit", "c2", "--memory", "3"]).ok();
    assert!(
        same.stderr
            .contains("Aborting, no changes made to the instance"),
        "{}",
        same.stderr
    );
    sim.run(&["rename", "c2", "c3"]).ok();
    assert!(!sim.lima_home.join("c2").exists());
    assert_eq!(sim.list_json("c3")["config"]["memory"], "3GiB");
}
