//! How long each limactl verb may take before it counts as hung and is killed. A boot may
//! take minutes (the first one downloads the image); a `list` that takes a minute is stuck.
//! `CLAUDE_VM_LIMA_TIMEOUTS="start=1800,list=120"` overrides them (seconds; 0 = no limit).
//! A `shell` attached to the terminal (a session) is never timed: it lasts as long as claude.

use std::time::Duration;

use super::call::Verb;

pub const ENV: &str = "CLAUDE_VM_LIMA_TIMEOUTS";

/// The defaults, in seconds.
const DEFAULTS: [(Verb, u64); 10] = [
    (Verb::Create, 600),
    // Boots: the first one downloads the image.
    (Verb::Start, 1800),
    (Verb::Clone, 900),
    // The provisioning shell installs packages and tools.
    (Verb::Shell, 3600),
    (Verb::Stop, 300),
    (Verb::Delete, 300),
    (Verb::Rename, 120),
    (Verb::Edit, 120),
    (Verb::List, 60),
    (Verb::Version, 30),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    limits: Vec<(Verb, Option<Duration>)>,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            limits: DEFAULTS
                .iter()
                .map(|(v, s)| (*v, Some(Duration::from_secs(*s))))
                .collect(),
        }
    }
}

impl Timeouts {
    /// The defaults with `spec`'s overrides (`VERB=SECONDS,...`).
    pub fn parse(spec: &str) -> Result<Timeouts, String> {
        let mut t = Timeouts::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (verb, secs) = item
                .split_once('=')
                .ok_or_else(|| format!("expected VERB=SECONDS, got {item:?}"))?;
            let verb = DEFAULTS
                .iter()
                .map(|(v, _)| *v)
                .find(|v| v.as_str().trim_start_matches('-') == verb.trim())
                .ok_or_else(|| {
                    format!(
                        "unknown limactl verb {verb:?} (known: {})",
                        DEFAULTS
                            .iter()
                            .map(|(v, _)| v.as_str().trim_start_matches('-'))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            let secs: u64 = secs.trim().parse().map_err(|_| {
                format!(
                    "invalid number of seconds {secs:?} for {verb:?}",
                    verb = verb.as_str()
                )
            })?;
            let limit = (secs > 0).then(|| Duration::from_secs(secs));
            for (v, l) in &mut t.limits {
                if *v == verb {
                    *l = limit;
                }
            }
        }
        Ok(t)
    }

    pub fn from_env() -> Result<Timeouts, String> {
        match std::env::var(ENV) {
            Ok(spec) => Timeouts::parse(&spec).map_err(|e| format!("{ENV}: {e}")),
            Err(_) => Ok(Timeouts::default()),
        }
    }

    pub fn limit(&self, verb: Verb) -> Option<Duration> {
        self.limits
            .iter()
            .find(|(v, _)| *v == verb)
            .and_then(|(_, l)| *l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boot_may_take_longer_than_a_list_and_both_are_configurable() {
        let d = Timeouts::default();
        assert!(d.limit(Verb::Start) > d.limit(Verb::List));
        assert!(d.limit(Verb::List).is_some());
        let t = Timeouts::parse("start=5, list=0,version=2").unwrap();
        assert_eq!(t.limit(Verb::Start), Some(Duration::from_secs(5)));
        assert_eq!(t.limit(Verb::List), None);
        assert_eq!(t.limit(Verb::Version), Some(Duration::from_secs(2)));
        assert_eq!(t.limit(Verb::Clone), d.limit(Verb::Clone));
        assert!(Timeouts::parse("strat=5")
            .unwrap_err()
            .contains("unknown limactl verb"));
        assert!(Timeouts::parse("start=-1").is_err());
        assert!(Timeouts::parse("start").is_err());
    }
}
