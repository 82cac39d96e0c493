//! The one clock of the state files: seconds since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in whole seconds since the epoch (0 on a clock set before 1970).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
