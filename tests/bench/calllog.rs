//! The simulator's call log (`LIMA_SIM_LOG`): one start and one end record per `limactl`
//! invocation, with the caller's pid, so a run's own calls can be told from a background
//! process's, and the time spent inside limactl can be taken out of claude-vm's wall time.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

/// One `limactl` invocation.
#[derive(Clone, Debug)]
pub struct Call {
    pub pid: i64,
    pub ppid: i64,
    /// Arguments after `limactl`.
    pub argv: Vec<String>,
    /// Seconds since the epoch, as the simulator's clock read them.
    pub start: f64,
    /// None when the invocation died of a signal (no end record).
    pub end: Option<f64>,
}

/// Every call in the log, in the order they started.
pub fn read(path: &Path) -> Result<Vec<Call>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut calls: Vec<Call> = Vec::new();
    // A pid can be reused across the log, never while its invocation runs: an end record
    // belongs to the latest start of that pid.
    let mut open: HashMap<i64, usize> = HashMap::new();
    for line in text.lines() {
        let record: Value = serde_json::from_str(line)
            .map_err(|e| format!("{}: a line that is not JSON ({e}): {line}", path.display()))?;
        let number = |key: &str| {
            record[key]
                .as_f64()
                .ok_or_else(|| format!("{}: no `{key}` in {line}", path.display()))
        };
        let pid = number("pid")? as i64;
        match record["event"].as_str() {
            Some("start") => {
                let argv = record["argv"]
                    .as_array()
                    .ok_or_else(|| format!("{}: no argv in {line}", path.display()))?
                    .iter()
                    .map(|a| a.as_str().unwrap_or_default().to_owned())
                    .collect();
                open.insert(pid, calls.len());
                calls.push(Call {
                    pid,
                    ppid: number("ppid")? as i64,
                    argv,
                    start: number("time")?,
                    end: None,
                });
            }
            Some("end") => {
                if let Some(i) = open.remove(&pid) {
                    calls[i].end = Some(number("time")?);
                }
            }
            _ => return Err(format!("{}: unknown record {line}", path.display())),
        }
    }
    Ok(calls)
}

/// The total length of the union of `intervals`, each clipped to `[from, to]`: the time at
/// least one of them was running.
pub fn covered(intervals: &[(f64, f64)], from: f64, to: f64) -> f64 {
    let mut clipped: Vec<(f64, f64)> = intervals
        .iter()
        .map(|&(a, b)| (a.max(from), b.min(to)))
        .filter(|(a, b)| b > a)
        .collect();
    clipped.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut total = 0.0;
    let mut current: Option<(f64, f64)> = None;
    for (a, b) in clipped {
        current = match current {
            Some((ca, cb)) if a <= cb => Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                total += cb - ca;
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    if let Some((ca, cb)) = current {
        total += cb - ca;
    }
    total
}
