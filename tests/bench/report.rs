//! Medians, the table, and the targets of issue 6.

use std::collections::BTreeMap;

use crate::measure::Sample;
use crate::model::{self, Model};

/// One row of the report: a kind of run and its samples (None: not measured, and why).
pub struct Row {
    pub name: &'static str,
    pub what: &'static str,
    pub samples: Result<Vec<Sample>, String>,
}

/// Median, minimum and maximum.
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn spread(values: impl Iterator<Item = f64>) -> Spread {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    };
    Spread {
        median,
        min: v.first().copied().unwrap_or(f64::NAN),
        max: v.last().copied().unwrap_or(f64::NAN),
    }
}

fn ms(s: &Spread) -> String {
    format!(
        "{:.1} ms ({:.1} … {:.1})",
        s.median * 1e3,
        s.min * 1e3,
        s.max * 1e3
    )
}

fn secs(s: &Spread) -> String {
    format!("{:.3} s ({:.3} … {:.3})", s.median, s.min, s.max)
}

/// Distinct values with how many runs had each, most frequent first.
fn tally(values: impl Iterator<Item = String>) -> Vec<(usize, String)> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    let mut out: Vec<(usize, String)> = counts.into_iter().map(|(v, n)| (n, v)).collect();
    out.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    out
}

fn joined(calls: &[String]) -> String {
    if calls.is_empty() {
        "none".to_owned()
    } else {
        calls.join(" → ")
    }
}

/// `value` when every run agrees, else each value with its count.
fn agreed(values: Vec<(usize, String)>, runs: usize) -> String {
    match values.as_slice() {
        [(n, v)] if *n == runs => v.clone(),
        _ => values
            .iter()
            .map(|(n, v)| format!("{n}× {v}"))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

pub fn print(rows: &[Row], model: &Model, runs: usize, spawn: &Spread) {
    println!();
    println!("latency model (seconds per limactl call): {model}");
    println!(
        "spawning one limactl outside its logged time (fork, exec, exit; counted as claude-vm's overhead): {}",
        ms(spawn)
    );
    println!();
    println!("limactl calls per run (critical path: until the template is ready / until the agent starts)");
    println!(
        "  {:<7} {:<48} {:<10} background",
        "row", "critical path", "own total"
    );
    for row in rows {
        let samples = match &row.samples {
            Ok(s) => s,
            Err(why) => {
                println!("  {:<7} not available: {why}", row.name);
                continue;
            }
        };
        let n = samples.len();
        let path = agreed(tally(samples.iter().map(|s| joined(s.critical_path()))), n);
        let total = agreed(tally(samples.iter().map(|s| s.own.len().to_string())), n);
        let background = agreed(
            tally(samples.iter().map(|s| match s.background.len() {
                0 => "0".to_owned(),
                k => format!("{k} ({})", s.background.join(", ")),
            })),
            n,
        );
        println!("  {:<7} {:<48} {:<10} {background}", row.name, path, total);
    }
    println!();
    println!("times over {runs} runs each: median (min … max)");
    for row in rows {
        let Ok(samples) = &row.samples else {
            println!("  {}: not available", row.name);
            continue;
        };
        println!("  {} ({}):", row.name, row.what);
        println!(
            "    modelled time-to-agent      {}",
            secs(&spread(samples.iter().map(|s| s.modelled)))
        );
        if samples.iter().any(|s| s.provisioning > 0.0) {
            println!(
                "    of which provisioning work  {}",
                secs(&spread(samples.iter().map(|s| s.provisioning)))
            );
        }
        println!(
            "    claude-vm on critical path  {}",
            ms(&spread(samples.iter().map(|s| s.overhead_to_agent)))
        );
        println!(
            "    claude-vm's own overhead    {}   (wall time minus time inside limactl)",
            ms(&spread(samples.iter().map(Sample::overhead)))
        );
        println!(
            "    wall time (simulator)       {}",
            ms(&spread(samples.iter().map(|s| s.wall)))
        );
        println!(
            "    inside limactl (simulator)  {}",
            ms(&spread(samples.iter().map(|s| s.in_limactl)))
        );
    }
}

/// `part` as a share of `whole` (NaN when `whole` is not positive).
pub fn ratio(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        part / whole
    } else {
        f64::NAN
    }
}

/// The targets of issue 6, point 3, and issue 15's second-project goal. Returns whether all that could be checked were met.
pub fn targets(rows: &[Row], model: &Model) -> bool {
    let find = |name: &str| rows.iter().find(|r| r.name == name).map(|r| &r.samples);
    let mut all_met = true;
    let mut verdict = |met: bool, text: String| {
        all_met &= met;
        println!("  {} {text}", if met { "✓" } else { "✗ MISSED:" });
    };
    println!();
    println!("targets (issues 6 and 15)");

    match find("warm") {
        Some(Ok(samples)) => {
            let shell = model.cost(&["shell".to_owned()]).unwrap_or(f64::NAN);
            let only_shell = samples.iter().all(|s| {
                s.critical_path().len() == 1 && model::verb(&s.critical_path()[..1]) == "shell"
            });
            let m = spread(samples.iter().map(|s| s.modelled));
            verdict(
                only_shell,
                format!(
                    "warm time-to-agent = one `limactl shell` round trip: critical path {} in every run; modelled {:.3} s = {} + {:.1} ms of claude-vm (median)",
                    if only_shell { "is `shell` alone" } else { "is NOT `shell` alone" },
                    m.median,
                    model::seconds(shell),
                    (m.median - shell) * 1e3
                ),
            );
        }
        Some(Err(why)) => println!("  - warm time-to-agent: not measured ({why})"),
        None => {}
    }

    // Issue 15: a second project with the same tools, and a project-script-only rebuild,
    // against a first setup.
    if let Some(Ok(first)) = find("setup") {
        let first_m = spread(first.iter().map(|s| s.modelled)).median;
        for (name, goal) in [("second", Some(0.15)), ("rebuild", None)] {
            let Some(Ok(samples)) = find(name) else {
                continue;
            };
            let m = spread(samples.iter().map(|s| s.modelled)).median;
            let calls = samples.iter().map(|s| s.own.len()).max().unwrap_or(0);
            let first_calls = first.iter().map(|s| s.own.len()).max().unwrap_or(0);
            let text = format!(
                "{name}: {calls} limactl calls vs {first_calls}; modelled {m:.3} s = {:.1}% of a first setup's {first_m:.3} s",
                ratio(m, first_m) * 100.0
            );
            match goal {
                Some(g) => verdict(
                    ratio(m, first_m) < g,
                    format!("{text} (goal: under {:.0}%)", g * 100.0),
                ),
                None => println!("  - {text}"),
            }
        }
    }

    if let Some(Ok(samples)) = find("cold") {
        let most = samples.iter().map(|s| s.own.len()).max().unwrap_or(0);
        verdict(
            most <= 3,
            format!("cold session ≤ 3 limactl calls: at most {most} in any run"),
        );
    }

    for name in ["cold", "warm"] {
        if let Some(Ok(samples)) = find(name) {
            let s = spread(samples.iter().map(Sample::overhead));
            verdict(
                s.median < 0.020,
                format!(
                    "own overhead < 20 ms per session ({name}): median {:.1} ms (max {:.1} ms)",
                    s.median * 1e3,
                    s.max * 1e3
                ),
            );
        }
    }
    all_met
}
