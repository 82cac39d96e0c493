//! Test hooks: `LIMA_SIM_DELAY` (slow commands) and `LIMA_SIM_FAIL`
//! (failing commands), applied at each command's effect point. Both take `CMD` (every call)
//! or `CMD@N` (only the N-th call of CMD, counted across processes), so a test can stop or
//! fail one particular step of a sequence (the second `rename` of a template swap).

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::fail::{Fail, Res};
use crate::sys;

/// Operations that can be delayed or failed.
pub const OPS: &[&str] = &[
    "create",
    "start",
    "stop",
    "delete",
    "clone",
    "rename",
    "edit",
    "shell",
    "list",
    "protect",
    "unprotect",
    "copy",
];

pub fn sleep(secs: f64) {
    if secs > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(secs));
    }
}

#[derive(Debug, PartialEq)]
enum Rule {
    Always(String),
    Nth(String, u64),
}

#[derive(Debug)]
pub struct Injector {
    /// By command; `None` applies to every call, `Some(n)` to the n-th only.
    delays: HashMap<(String, Option<u64>), f64>,
    rules: Vec<Rule>,
    counters: PathBuf,
}

fn known(op: &str, var: &str) -> Result<(), String> {
    if OPS.contains(&op) {
        Ok(())
    } else {
        Err(format!(
            "{var}: unknown command {op:?} (known: {})",
            OPS.join(", ")
        ))
    }
}

fn parse_delays(spec: &str) -> Result<HashMap<(String, Option<u64>), f64>, String> {
    let mut delays = HashMap::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (target, secs) = item.split_once('=').ok_or_else(|| {
            format!("LIMA_SIM_DELAY: expected CMD=SECONDS or CMD@N=SECONDS, got {item:?}")
        })?;
        let (op, nth) = match target.split_once('@') {
            None => (target, None),
            Some((op, n)) => {
                let n: u64 = n.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    format!("LIMA_SIM_DELAY: invalid call number {n:?} for {op:?}")
                })?;
                (op, Some(n))
            }
        };
        known(op, "LIMA_SIM_DELAY")?;
        let secs: f64 = secs
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| format!("LIMA_SIM_DELAY: invalid seconds {secs:?} for {op:?}"))?;
        delays.insert((op.to_string(), nth), secs);
    }
    Ok(delays)
}

fn parse_rules(spec: &str) -> Result<Vec<Rule>, String> {
    let mut rules = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.split_once('@') {
            None => {
                known(item, "LIMA_SIM_FAIL")?;
                rules.push(Rule::Always(item.to_string()));
            }
            Some((op, n)) => {
                known(op, "LIMA_SIM_FAIL")?;
                let n: u64 = n.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    format!("LIMA_SIM_FAIL: invalid call number {n:?} for {op:?}")
                })?;
                rules.push(Rule::Nth(op.to_string(), n));
            }
        }
    }
    Ok(rules)
}

impl Injector {
    pub fn from_env(lima_home: &Path) -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        Ok(Injector {
            delays: parse_delays(&var("LIMA_SIM_DELAY"))?,
            rules: parse_rules(&var("LIMA_SIM_FAIL"))?,
            counters: lima_home.join("_sim").join("counters.json"),
        })
    }

    /// Seconds every call of `op` is slowed down by (not counting `CMD@N` delays).
    pub fn delay_secs(&self, op: &str) -> f64 {
        self.delays
            .get(&(op.to_string(), None))
            .copied()
            .unwrap_or(0.0)
    }

    fn counts(&self) -> bool {
        !self.rules.is_empty() || self.delays.keys().any(|(_, n)| n.is_some())
    }

    /// The effect point of `op`: count the call, delay, fail if told to.
    /// Sleeps keep the default signal actions (a signal ends the process).
    pub fn checkpoint(&self, op: &str) -> Res<()> {
        let call = self.call_number(op)?;
        let nth = call.and_then(|n| self.delays.get(&(op.to_string(), Some(n))).copied());
        sleep(nth.unwrap_or_else(|| self.delay_secs(op)));
        self.fail(op, call)
    }

    /// Counts a call of `op` and fails it if `LIMA_SIM_FAIL` says so.
    pub fn fail_point(&self, op: &str) -> Res<()> {
        let call = self.call_number(op)?;
        self.fail(op, call)
    }

    fn call_number(&self, op: &str) -> Res<Option<u64>> {
        if !self.counts() {
            return Ok(None);
        }
        self.count(op).map(Some).map_err(Fail::fatal)
    }

    fn fail(&self, op: &str, call: Option<u64>) -> Res<()> {
        let Some(call) = call else {
            return Ok(());
        };
        let hit = self.rules.iter().any(|rule| match rule {
            Rule::Always(o) => o == op,
            Rule::Nth(o, n) => o == op && *n == call,
        });
        if hit {
            let code = if op == "shell" { 255 } else { 1 };
            return Err(Fail::with_code(
                format!("simulated failure of {op:?} (LIMA_SIM_FAIL)"),
                code,
            ));
        }
        Ok(())
    }

    // Counts calls across processes in $LIMA_HOME/_sim/counters.json.
    fn count(&self, op: &str) -> Result<u64, String> {
        let path = &self.counters;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| sys::path_error("mkdir", dir, &e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| sys::path_error("open", path, &e))?;
        let _lock =
            sys::FileLock::exclusive(&file).map_err(|e| sys::path_error("flock", path, &e))?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| sys::path_error("read", path, &e))?;
        let mut counts: BTreeMap<String, u64> = if text.trim().is_empty() {
            BTreeMap::new()
        } else {
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        };
        let n = counts.entry(op.to_string()).or_insert(0);
        *n += 1;
        let call = *n;
        let out = serde_json::to_string(&counts).map_err(|e| e.to_string())?;
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(out.as_bytes()))
            .map_err(|e| sys::path_error("write", path, &e))?;
        Ok(call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs_and_rejects_typos() {
        let delays = parse_delays("start=15, clone=0.5,rename@2=9").unwrap();
        assert_eq!(delays.get(&("start".into(), None)), Some(&15.0));
        assert_eq!(delays.get(&("clone".into(), None)), Some(&0.5));
        assert_eq!(delays.get(&("rename".into(), Some(2))), Some(&9.0));
        assert!(parse_delays("rename@0=1").is_err());
        assert!(parse_delays("strat=1")
            .unwrap_err()
            .contains("unknown command"));
        assert!(parse_delays("start=-1").is_err());
        assert!(parse_delays("start").is_err());
        let rules = parse_rules("clone,shell@2").unwrap();
        assert_eq!(
            rules,
            vec![Rule::Always("clone".into()), Rule::Nth("shell".into(), 2)]
        );
        assert!(parse_rules("shell@0").is_err());
        assert!(parse_rules("shel").is_err());
    }

    #[test]
    fn nth_call_fails_once_across_instances() {
        let home = tempfile::tempdir().unwrap();
        let make = || Injector {
            delays: HashMap::new(),
            rules: parse_rules("shell@2").unwrap(),
            counters: home.path().join("_sim").join("counters.json"),
        };
        assert!(make().checkpoint("shell").is_ok());
        let err = make().checkpoint("shell").unwrap_err();
        assert_eq!(err.code, 255);
        assert_eq!(
            err.msg.as_deref(),
            Some("simulated failure of \"shell\" (LIMA_SIM_FAIL)")
        );
        assert!(make().checkpoint("shell").is_ok());
        assert!(make().checkpoint("start").is_ok());
    }

    #[test]
    fn an_nth_delay_holds_only_that_call() {
        let home = tempfile::tempdir().unwrap();
        let make = || Injector {
            delays: parse_delays("rename@2=0.4").unwrap(),
            rules: Vec::new(),
            counters: home.path().join("_sim").join("counters.json"),
        };
        let timed = || {
            let t = std::time::Instant::now();
            make().checkpoint("rename").unwrap();
            t.elapsed()
        };
        assert!(timed() < Duration::from_millis(300));
        assert!(timed() >= Duration::from_millis(400));
        assert!(timed() < Duration::from_millis(300));
        assert_eq!(make().delay_secs("rename"), 0.0);
    }
}
