//! Unit tests of the latency benchmark's arithmetic: reading the call log, telling a run's
//! own calls from background ones, the critical path, the overhead and the model. The
//! benchmark itself never runs under `cargo test`; these check what it computes, not speed.

#[allow(dead_code)]
mod calllog;
#[allow(dead_code)]
mod measure;
#[allow(dead_code)]
mod model;
#[allow(dead_code)]
mod report;
#[path = "../common/sandbox.rs"]
mod sandbox;
#[allow(dead_code)]
mod world;

use calllog::{covered, Call};
use measure::Until;
use model::Model;
use world::Timed;

fn argv(words: &str) -> Vec<String> {
    words.split_whitespace().map(str::to_owned).collect()
}

fn call(ppid: i64, words: &str, start: f64, end: f64) -> Call {
    Call {
        pid: 1000 + (start * 1e3) as i64,
        ppid,
        argv: argv(words),
        start,
        end: Some(end),
    }
}

fn timed(pid: i64, spawned: f64, exited: f64, calls: Vec<Call>) -> Timed {
    Timed {
        pid,
        code: 0,
        log_from: 0,
        stdout: String::new(),
        stderr: String::new(),
        spawned,
        exited,
        calls,
        steps: Vec::new(),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn covered_counts_overlaps_once_and_clips() {
    assert!(close(covered(&[(1.0, 2.0), (3.0, 4.0)], 0.0, 10.0), 2.0));
    assert!(close(covered(&[(1.0, 3.0), (2.0, 4.0)], 0.0, 10.0), 3.0));
    assert!(close(
        covered(&[(2.0, 4.0), (1.0, 3.0), (5.0, 5.5)], 0.0, 10.0),
        3.5
    ));
    assert!(close(covered(&[(1.0, 3.0)], 2.0, 10.0), 1.0));
    assert!(close(covered(&[(1.0, 3.0)], 4.0, 10.0), 0.0));
    assert!(close(covered(&[], 0.0, 10.0), 0.0));
}

#[test]
fn spread_takes_the_middle() {
    let odd = report::spread([3.0, 1.0, 2.0].into_iter());
    assert!(close(odd.median, 2.0) && close(odd.min, 1.0) && close(odd.max, 3.0));
    let even = report::spread([4.0, 1.0, 3.0, 2.0].into_iter());
    assert!(close(even.median, 2.5));
}

#[test]
fn the_model_prices_clone_start_as_clone_plus_start() {
    let m = Model::with_overrides(None).unwrap();
    assert!(close(
        m.cost(&argv("clone --tty=false --start t t.run")).unwrap(),
        16.0
    ));
    assert!(close(
        m.cost(&argv("clone --tty=false t t.run")).unwrap(),
        1.0
    ));
    assert!(close(
        m.cost(&argv("shell --tty=false t.run bash")).unwrap(),
        0.3
    ));
    assert!(close(m.cost(&argv("--version")).unwrap(), 0.02));
    assert_eq!(
        model::label(&argv("clone --tty=false --start t n")),
        "clone --start"
    );
    assert_eq!(
        model::label(&argv("delete --tty=false --force n")),
        "delete"
    );
}

#[test]
fn the_model_takes_overrides_and_refuses_what_it_does_not_know() {
    let m = Model::with_overrides(Some("start=20, shell=0.5")).unwrap();
    assert!(close(m.cost(&argv("clone --start a b")).unwrap(), 21.0));
    assert!(close(m.cost(&argv("shell a")).unwrap(), 0.5));
    let unknown = Model::with_overrides(Some("boot=3")).err().unwrap();
    assert!(unknown.contains("no call kind `boot`"), "{unknown}");
    assert!(Model::with_overrides(Some("start")).is_err());
    assert!(Model::with_overrides(Some("start=-1")).is_err());
    let free = m.cost(&argv("snapshot create a")).unwrap_err();
    assert!(free.contains("no figure for `limactl snapshot`"), "{free}");
}

#[test]
fn the_log_pairs_ends_with_the_latest_start_of_a_pid() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    std::fs::write(
        &log,
        concat!(
            r#"{"event":"start","pid":7,"ppid":1,"argv":["list"],"time":1.0}"#,
            "\n",
            r#"{"event":"end","pid":7,"exit":0,"time":1.5}"#,
            "\n",
            r#"{"event":"start","pid":7,"ppid":2,"argv":["shell","x"],"time":2.0}"#,
            "\n",
            r#"{"event":"start","pid":8,"ppid":2,"argv":["delete","x"],"time":2.1}"#,
            "\n",
            r#"{"event":"end","pid":7,"exit":0,"isolation":"namespace","time":3.0}"#,
            "\n",
        ),
    )
    .unwrap();
    let calls = calllog::read(&log).unwrap();
    assert_eq!(calls.len(), 3);
    assert_eq!(
        (calls[0].end, calls[1].end, calls[2].end),
        (Some(1.5), Some(3.0), None)
    );
    assert_eq!(calls[1].ppid, 2);
    assert!(calllog::read(&dir.path().join("missing"))
        .unwrap()
        .is_empty());
}

#[test]
fn a_cold_session_counts_its_own_calls_up_to_the_agent_shell() {
    let model = Model::with_overrides(None).unwrap();
    // Spawned at 0; clone 0.010-0.040, shell 0.045-0.070, delete 0.072-0.080, exit 0.085.
    let calls = vec![
        call(42, "clone --tty=false --start t t.run", 0.010, 0.040),
        call(42, "shell --tty=false t.run bash", 0.045, 0.070),
        call(42, "delete --tty=false --force t.run", 0.072, 0.080),
    ];
    let run = timed(42, 0.0, 0.085, calls.clone());
    let s = measure::sample(&run, &calls, Until::AgentShell, &model).unwrap();
    assert_eq!(s.critical_path(), ["clone --start", "shell"]);
    assert_eq!(s.own.len(), 3);
    assert!(s.background.is_empty());
    assert!(close(s.in_limactl, 0.030 + 0.025 + 0.008));
    assert!(close(s.overhead(), 0.085 - 0.063));
    // Until the shell starts at 0.045, 0.030 of it inside clone.
    assert!(close(s.overhead_to_agent, 0.015));
    assert!(close(s.modelled, 16.0 + 0.3 + 0.015));
}

#[test]
fn a_warm_session_leaves_the_refill_out_of_its_path_and_overhead() {
    let model = Model::with_overrides(None).unwrap();
    let own = vec![
        call(42, "shell --tty=false t.warm bash", 0.006, 0.030),
        call(42, "delete --tty=false --force t.warm", 0.031, 0.039),
    ];
    // The keeper (pid 77) boots a replacement, partly while the session still runs.
    let keeper = call(77, "clone --tty=false --start t t.warm2", 0.035, 0.090);
    let mut all = own.clone();
    all.push(keeper);
    let run = timed(42, 0.0, 0.045, all.clone());
    let s = measure::sample(&run, &all, Until::AgentShell, &model).unwrap();
    assert_eq!(s.critical_path(), ["shell"]);
    assert_eq!(s.own, ["shell", "delete"]);
    assert_eq!(s.background, ["clone --start"]);
    assert!(close(s.overhead(), 0.045 - 0.032));
    assert!(close(s.overhead_to_agent, 0.006));
    assert!(close(s.modelled, 0.306));
}

#[test]
fn setup_counts_every_call_and_a_session_without_shell_is_an_error() {
    let model = Model::with_overrides(None).unwrap();
    let calls = vec![
        call(5, "list --tty=false --format json", 0.001, 0.002),
        call(
            5,
            "create --tty=false --name t template:debian-13",
            0.003,
            0.010,
        ),
        call(5, "start --tty=false t", 0.011, 0.030),
        call(5, "shell --tty=false t bash -s", 0.031, 0.100),
        call(5, "stop --tty=false t", 0.101, 0.110),
    ];
    let mut run = timed(5, 0.0, 0.120, calls.clone());
    assert!(
        measure::sample(&run, &calls, Until::Exit, &model).is_err(),
        "a provisioning shell whose steps are unknown is never free"
    );
    run.steps = vec![("t".into(), vec!["installing packages".into()])];
    let s = measure::sample(&run, &calls, Until::Exit, &model).unwrap();
    assert_eq!(s.critical, 5);
    assert!(close(s.overhead_to_agent, s.overhead()));
    assert!(close(s.provisioning, 30.0));
    assert!(close(
        s.modelled,
        0.05 + 2.0 + 15.0 + 0.3 + 30.0 + 3.0 + s.overhead()
    ));

    let no_shell = vec![call(5, "clone --start t n", 0.0, 0.1)];
    let run = timed(5, 0.0, 0.2, no_shell.clone());
    assert!(measure::sample(&run, &no_shell, Until::AgentShell, &model).is_err());
}

#[test]
fn provisioning_is_priced_per_step_and_overridable() {
    let model = Model::with_overrides(None).unwrap();
    let steps: Vec<String> = [
        "installing packages",
        "setting up rust",
        "setting up docker",
        "installing Claude Code",
        "registering MCP servers",
        "running setup script ./.claude-vm.setup.sh",
    ]
    .map(String::from)
    .to_vec();
    assert!(close(
        model.provisioning(&steps).unwrap(),
        30.0 + 20.0 + 20.0 + 25.0 + 2.0 + 1.0
    ));
    assert!(close(model.provisioning(&[]).unwrap(), 0.0));
    let err = model
        .provisioning(&["compiling the kernel".to_owned()])
        .unwrap_err();
    assert!(err.contains("compiling the kernel"), "{err}");
    let mine = Model::with_overrides(Some("packages=60,claude=40,script=0")).unwrap();
    assert!(close(
        mine.provisioning(&steps).unwrap(),
        60.0 + 40.0 + 40.0 + 2.0
    ));
    // Only a shell with the script on stdin is provisioning; its instance follows the flags.
    assert!(model::is_provisioning(&argv("shell --tty=false b bash -s")));
    assert!(!model::is_provisioning(&argv(
        "shell --tty=false --workdir /w t.run-abcdef bash /mnt/claude-vm/session.sh"
    )));
    assert_eq!(
        model::shell_instance(&argv("shell --tty=false --workdir /w i bash")),
        Some("i")
    );
    assert_eq!(
        world::steps_in("noise\n==> [1/2] installing packages\nx\n==> [2/2] installing Claude Code\n==> template ready\n"),
        ["installing packages", "installing Claude Code"]
    );
}

#[test]
fn a_second_project_is_priced_against_a_first_setup() {
    let model = Model::with_overrides(None).unwrap();
    let b = "claude-vm_base-0123456789ab";
    let first_calls = vec![
        call(5, "list --tty=false --format json", 0.000, 0.001),
        call(
            5,
            &format!("create --tty=false --name {b} template:debian-13"),
            0.002,
            0.010,
        ),
        call(5, &format!("start --tty=false {b}"), 0.011, 0.020),
        call(5, &format!("shell --tty=false {b} bash -s"), 0.021, 0.050),
        call(5, &format!("stop --tty=false {b}"), 0.051, 0.060),
        call(5, &format!("clone --tty=false {b} t"), 0.061, 0.070),
    ];
    let mut first = timed(5, 0.0, 0.080, first_calls.clone());
    first.steps = vec![(
        b.into(),
        vec![
            "installing packages".into(),
            "installing Claude Code".into(),
        ],
    )];
    let first = measure::sample(&first, &first_calls, Until::Exit, &model).unwrap();
    let own = 0.080 - 0.070 + 0.001 * 5.0;
    assert!(close(first.overhead(), own), "{}", first.overhead());
    assert!(close(first.provisioning, 55.0));
    assert!(close(
        first.modelled,
        0.05 + 2.0 + 15.0 + 0.3 + 55.0 + 3.0 + 1.0 + own
    ));
    let second_calls = vec![
        call(6, "list --tty=false --format json", 0.000, 0.001),
        call(6, &format!("clone --tty=false {b} u"), 0.002, 0.010),
    ];
    let second = measure::sample(
        &timed(6, 0.0, 0.012, second_calls.clone()),
        &second_calls,
        Until::Exit,
        &model,
    )
    .unwrap();
    assert!(close(second.provisioning, 0.0));
    assert!(close(second.modelled, 0.05 + 1.0 + 0.003));
    let r = report::ratio(second.modelled, first.modelled);
    assert!(close(r, 1.053 / first.modelled), "{r}");
    assert!(r < 0.15);
    assert!(report::ratio(1.0, 0.0).is_nan());
}
