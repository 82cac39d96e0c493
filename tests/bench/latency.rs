//! The latency benchmark of issue 6: the real claude-vm binary against the Lima simulator,
//! for setup, a cold session and a warm session. Reports the limactl calls on the critical
//! path, a modelled time-to-agent (a latency model of real Lima per call, plus claude-vm's
//! measured own time) and claude-vm's own overhead, as medians over repeated runs; exits 1
//! when a target is missed.
//!
//! Run it with `cargo bench --bench latency` (`CLAUDE_VM_BENCH_RUNS=N`, default 20;
//! `CLAUDE_VM_BENCH_MODEL="start=20,shell=0.5"` to change the model;
//! `CLAUDE_VM_BENCH_BIN=PATH` to measure another claude-vm binary). It is a benchmark,
//! never a test: under `cargo test --all-targets` (no `--bench` argument) it does nothing.

mod calllog;
mod measure;
mod model;
mod report;
#[path = "../common/sandbox.rs"]
mod sandbox;
mod world;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use measure::{Sample, Until};
use model::Model;
use report::Row;
use world::World;

const CLAUDE_VM: &str = env!("CARGO_BIN_EXE_claude-vm");
const DEFAULT_RUNS: usize = 20;

fn main() -> ExitCode {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs bench targets without it.
    if !std::env::args().any(|a| a == "--bench") {
        println!("latency: a benchmark, not a test; run it with `cargo bench --bench latency`");
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            println!("\nlatency: a target was missed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("latency: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<bool, String> {
    let runs = runs()?;
    let model = Model::with_overrides(std::env::var("CLAUDE_VM_BENCH_MODEL").ok().as_deref())?;
    let built = PathBuf::from(CLAUDE_VM);
    let simulator = build_simulator(&built)?;
    // Another claude-vm binary (an installed release, another branch's build) against the
    // same simulator and model.
    let claude_vm = match std::env::var_os("CLAUDE_VM_BENCH_BIN") {
        Some(other) => std::fs::canonicalize(&other)
            .map_err(|e| format!("CLAUDE_VM_BENCH_BIN: {}: {e}", Path::new(&other).display()))?,
        None => built,
    };
    println!(
        "latency: {runs} runs per row; claude-vm {}; Lima simulator {} (LIMA_SIM_DELAY unset); {} CPUs",
        claude_vm.display(),
        simulator.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let setup = measure_setup(&claude_vm, &simulator, runs, &model, Setup::First)?;
    let second = measure_setup(&claude_vm, &simulator, runs, &model, Setup::Second)?;
    let rebuild = measure_rebuild(&claude_vm, &simulator, runs, &model)?;
    let world = World::new(&claude_vm, &simulator)?;
    let project = world.project("app")?;
    world.must(&["setup"], &project)?;
    world.settle(&[])?;
    let cold = measure_cold(&world, &project, runs, &model)?;
    let warm = if warm_pool_exists(&world, &project)? {
        Ok(measure_warm(&world, &project, runs, &model)?)
    } else {
        Err("this claude-vm has no `warm` command (the warm pool has not landed)".to_owned())
    };

    let rows = [
        Row {
            name: "setup",
            what: "`claude-vm setup` of a first project (no shared base yet) until its template is ready, provisioning work modelled per step",
            samples: Ok(setup),
        },
        Row {
            name: "second",
            what: "`claude-vm setup` of another project with the same tools (the shared base exists)",
            samples: Ok(second),
        },
        Row {
            name: "rebuild",
            what: "`claude-vm setup` after the project's setup script changed (the base is reused)",
            samples: Ok(rebuild),
        },
        Row {
            name: "cold",
            what: "`claude-vm \"prompt\"` without a warm pool, until the fake claude starts",
            samples: Ok(cold),
        },
        Row {
            name: "warm",
            what: "`claude-vm \"prompt\"` taking a clone from the pool (`claude-vm warm 1`)",
            samples: warm,
        },
    ];
    let spawn = (0..runs)
        .map(|_| world.spawn_cost())
        .collect::<Result<Vec<f64>, String>>()?;
    report::print(&rows, &model, runs, &report::spread(spawn.into_iter()));
    Ok(report::targets(&rows, &model))
}

fn runs() -> Result<usize, String> {
    match std::env::var("CLAUDE_VM_BENCH_RUNS") {
        Err(_) => Ok(DEFAULT_RUNS),
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("CLAUDE_VM_BENCH_RUNS: `{v}` is not a positive number")),
    }
}

/// Builds the simulator with the profile claude-vm was built with (release under
/// `cargo bench`) into the same target directory, and returns its path.
fn build_simulator(claude_vm: &Path) -> Result<PathBuf, String> {
    let profile_dir = claude_vm
        .parent()
        .ok_or("claude-vm has no parent directory")?;
    sandbox::build_simulator(profile_dir)
}

/// Which setup row.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// No shared base yet: `clean-all` after each run removes the base with the template.
    First,
    /// The base exists (built by the unmeasured first run): `clean` after each run leaves it.
    Second,
}

/// Setup of a fresh project each run (after one unmeasured warm-up, so the once-per-binary
/// `limactl --version` check is behind us, as for any user's second project); each template
/// (and for `First` the shared base) is removed afterwards, outside the measurement, so every
/// run starts from the same state.
fn measure_setup(
    claude_vm: &Path,
    simulator: &Path,
    runs: usize,
    model: &Model,
    which: Setup,
) -> Result<Vec<Sample>, String> {
    let world = World::new(claude_vm, simulator)?;
    let mut samples = Vec::new();
    for i in 0..=runs {
        let project = world.project(&format!("app{i}"))?;
        let mut run = world.must(&["setup"], &project)?;
        world.settle(&[])?;
        world.read_steps(&mut run)?;
        let all = world.calls_since(run.log_from)?;
        if i > 0 {
            samples.push(measure::sample(&run, &all, Until::Exit, model)?);
        }
        match which {
            Setup::First => world.must(&["clean-all", "--yes"], &project)?,
            Setup::Second => world.must(&["clean", "--yes"], &project)?,
        };
        world.settle(&[])?;
    }
    Ok(samples)
}

/// A project with a setup script, set up once (unmeasured); each run changes the script and
/// runs `claude-vm setup`: only the project layer is rebuilt (clone of the base, the script,
/// stop, the swap).
fn measure_rebuild(
    claude_vm: &Path,
    simulator: &Path,
    runs: usize,
    model: &Model,
) -> Result<Vec<Sample>, String> {
    let world = World::new(claude_vm, simulator)?;
    let project = world.project("app")?;
    let script = project.join(".claude-vm.setup.sh");
    let write = |i: usize| {
        std::fs::write(&script, format!("echo {i} > \"$HOME/version\"\n"))
            .map_err(|e| format!("cannot write {}: {e}", script.display()))
    };
    write(0)?;
    world.must(&["setup"], &project)?;
    world.settle(&[])?;
    let mut samples = Vec::new();
    for i in 1..=runs + 1 {
        write(i)?;
        let mut run = world.must(&["setup"], &project)?;
        world.settle(&[])?;
        world.read_steps(&mut run)?;
        let all = world.calls_since(run.log_from)?;
        // The first rebuild warms caches; it is not counted.
        if i > 1 {
            samples.push(measure::sample(&run, &all, Until::Exit, model)?);
        }
    }
    Ok(samples)
}

/// Sessions of one project: `claude-vm "benchmark"` runs the simulator's fake claude, which
/// prints one JSON line when it starts.
fn measure_cold(
    world: &World,
    project: &Path,
    runs: usize,
    model: &Model,
) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    for i in 0..=runs {
        let run = session(world, project)?;
        world.settle(&[])?;
        let all = world.calls_since(run.log_from)?;
        // The first run warms caches; it is not counted.
        if i > 0 {
            samples.push(measure::sample(&run, &all, Until::AgentShell, model)?);
        }
    }
    Ok(samples)
}

/// The same sessions with a warm pool of one: `claude-vm warm 1` fills it (and leaves its
/// keeper running, a resident of the background); after each session `warm 1` again waits
/// for the replacement, so each run starts with one ready clone and the session's background
/// calls (the refill) are all in its sample.
fn measure_warm(
    world: &World,
    project: &Path,
    runs: usize,
    model: &Model,
) -> Result<Vec<Sample>, String> {
    world.must(&["warm", "1"], project)?;
    let residents = world.claude_vm_processes();
    world.settle(&residents)?;
    let mut samples = Vec::new();
    for i in 0..=runs {
        let run = session(world, project)?;
        let refill = world.must(&["warm", "1"], project)?;
        world.settle(&residents)?;
        // Not the calls of the `warm 1` we ran to wait for the refill.
        let all: Vec<_> = world
            .calls_since(run.log_from)?
            .into_iter()
            .filter(|c| c.ppid != refill.pid)
            .collect();
        if i > 0 {
            samples.push(measure::sample(&run, &all, Until::AgentShell, model)?);
        }
    }
    world.must(&["warm", "0"], project)?;
    world.settle(&[])?;
    Ok(samples)
}

fn session(world: &World, project: &Path) -> Result<world::Timed, String> {
    let run = world.must(&["benchmark"], project)?;
    if run.stdout.contains("\"fake\":\"claude\"") {
        Ok(run)
    } else {
        Err(format!("the fake claude did not start: {}", run.describe()))
    }
}

/// Whether this claude-vm has the warm pool's command (`help warm` is a usage error, exit
/// 2, when it has not).
fn warm_pool_exists(world: &World, project: &Path) -> Result<bool, String> {
    let run = world.run(&["help", "warm"], project)?;
    Ok(run.code == 0)
}
