//! From one timed run and its calls to the figures the report shows.

use crate::calllog::{covered, Call};
use crate::model::{self, Model};
use crate::world::Timed;

/// Where a run's critical path ends.
#[derive(Clone, Copy)]
pub enum Until {
    /// Setup: the template is ready when the command exits, so every call counts.
    Exit,
    /// A session: the agent starts inside its (last) `limactl shell`.
    AgentShell,
}

/// The figures of one run.
pub struct Sample {
    /// The run's own calls (made by claude-vm's children), in order, as report labels.
    pub own: Vec<String>,
    /// How many of `own`, from the first, are on the critical path.
    pub critical: usize,
    /// Calls made meanwhile or afterwards by other processes (a detached helper's).
    pub background: Vec<String>,
    /// Spawn to exit, seconds.
    pub wall: f64,
    /// Time at least one own call was running, seconds.
    pub in_limactl: f64,
    /// claude-vm's own time up to the end of the critical path, seconds.
    pub overhead_to_agent: f64,
    /// The latency model's sum over the critical path (provisioning work included) plus
    /// `overhead_to_agent`.
    pub modelled: f64,
    /// Of `modelled`: the provisioning work inside the provisioning shells.
    pub provisioning: f64,
}

impl Sample {
    /// claude-vm's own time: wall time minus time inside its limactl calls.
    pub fn overhead(&self) -> f64 {
        self.wall - self.in_limactl
    }

    pub fn critical_path(&self) -> &[String] {
        &self.own[..self.critical]
    }
}

/// Splits a run's calls into its own (ppid = the claude-vm process) and the rest, and
/// computes the sample. `background_calls` are the other processes' calls made from the
/// run's start until its background work settled.
pub fn sample(
    run: &Timed,
    background_calls: &[Call],
    until: Until,
    model: &Model,
) -> Result<Sample, String> {
    let own: Vec<&Call> = run.calls.iter().filter(|c| c.ppid == run.pid).collect();
    let mut intervals = Vec::new();
    for c in &own {
        let end = c
            .end
            .ok_or_else(|| format!("`limactl {}` has no end record (killed?)", c.argv.join(" ")))?;
        intervals.push((c.start, end));
    }
    let in_limactl = covered(&intervals, run.spawned, run.exited);
    let (critical, agent_at) = match until {
        Until::Exit => (own.len(), run.exited),
        Until::AgentShell => {
            let i = own
                .iter()
                .rposition(|c| model::verb(&c.argv) == "shell")
                .ok_or_else(|| {
                    format!(
                        "the session made no `limactl shell` call: {:?}",
                        labels(&own)
                    )
                })?;
            (i + 1, own[i].start)
        }
    };
    // Up to the agent: everything but the time inside the calls before the agent's shell
    // (the shell itself is modelled as its round trip).
    let before: Vec<(f64, f64)> = intervals[..critical]
        .iter()
        .copied()
        .filter(|&(start, _)| start < agent_at)
        .collect();
    let overhead_to_agent = (agent_at - run.spawned) - covered(&before, run.spawned, agent_at);
    let mut modelled = overhead_to_agent;
    let mut provisioning = 0.0;
    for c in &own[..critical] {
        modelled += model.cost(&c.argv)?;
        if model::is_provisioning(&c.argv) {
            let instance = model::shell_instance(&c.argv).unwrap_or_default();
            let steps = run
                .steps
                .iter()
                .find(|(i, _)| i == instance)
                .map(|(_, s)| s)
                .ok_or_else(|| {
                    format!("no steps known for the provisioning shell of {instance}")
                })?;
            provisioning += model.provisioning(steps)?;
        }
    }
    modelled += provisioning;
    Ok(Sample {
        own: labels(&own),
        critical,
        background: background_calls
            .iter()
            .filter(|c| c.ppid != run.pid)
            .map(|c| model::label(&c.argv))
            .collect(),
        wall: run.exited - run.spawned,
        in_limactl,
        overhead_to_agent,
        modelled,
        provisioning,
    })
}

fn labels(calls: &[&Call]) -> Vec<String> {
    calls.iter().map(|c| model::label(&c.argv)).collect()
}
