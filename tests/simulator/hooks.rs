//! Test-only hooks: failure injection, delays and the call log.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

#[test]
fn failure_injection() {
    let mut sim = Sim::new();
    sim.create("tmpl", &["--mount-none"]);
    sim.set_env("LIMA_SIM_FAIL", "clone,shell@2,start@1");
    let out = sim
        .run(&["clone", "tmpl", "c"])
        .fails_with(1, "level=fatal");
    assert_eq!(
        out.fatal_msg(),
        "simulated failure of \"clone\" (LIMA_SIM_FAIL)"
    );
    assert!(!sim.lima_home.join("c").exists());
    sim.run(&["start", "tmpl"])
        .fails_with(1, "simulated failure of \\\"start\\\"");
    assert_eq!(sim.list_json("tmpl")["status"], "Stopped");
    sim.run(&["start", "tmpl"]).ok();
    sim.sh("tmpl", "echo 1 >> ~/calls").ok();
    let out = sim.sh("tmpl", "echo 2 >> ~/calls");
    assert_eq!(out.code, Some(255));
    assert!(
        out.stderr
            .contains("simulated failure of \\\"shell\\\" (LIMA_SIM_FAIL)"),
        "{}",
        out.stderr
    );
    sim.sh("tmpl", "echo 3 >> ~/calls").ok();
    assert_eq!(sim.sh("tmpl", "cat ~/calls").ok().stdout, "1\n3\n");
    let mut bad = Sim::new();
    bad.set_env("LIMA_SIM_FAIL", "strat");
    bad.run(&["list"])
        .fails_with(1, "LIMA_SIM_FAIL: unknown command");
}

#[test]
fn delays_and_the_call_log() {
    let mut sim = Sim::new();
    sim.create("vm", &["--mount-none"]);
    sim.run(&["start", "vm"]).ok();
    sim.set_env("LIMA_SIM_DELAY", "shell=0.3");
    let start = Instant::now();
    sim.run(&["shell", "vm", "true"]).ok();
    assert!(start.elapsed() >= Duration::from_millis(300));

    let calls = sim.calls();
    let starts: Vec<&Value> = calls.iter().filter(|c| c["event"] == "start").collect();
    let ends: Vec<&Value> = calls.iter().filter(|c| c["event"] == "end").collect();
    assert_eq!(starts.len(), 3);
    assert_eq!(ends.len(), 3);
    assert_eq!(
        starts[2]["argv"],
        serde_json::json!(["shell", "vm", "true"])
    );
    assert_eq!(starts[2]["pid"], ends[2]["pid"]);
    assert_eq!(ends[2]["exit"], 0);
    assert!(ends[2]["time"].as_f64() >= starts[2]["time"].as_f64());
    assert!(ends[2]["isolation"].is_string());
    assert!(ends[0].get("isolation").is_none());

    // Concurrent writers never interleave lines.
    let children: Vec<Child> = (0..8)
        .map(|_| {
            sim.cmd(&["list", "-q"])
                .stdout(Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for mut c in children {
        c.wait().expect("wait");
    }
    assert_eq!(sim.calls().len(), 22);
}
