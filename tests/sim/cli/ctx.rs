//! What every command gets: where Lima's home is, who the host user is,
//! the test hooks, and the resolved global flags.

use std::path::PathBuf;

use crate::host::Host;
use crate::inject::Injector;
use crate::store::Store;

/// State shared by every command.
pub struct Ctx {
    pub lima_home: PathBuf,
    pub host: Host,
    /// Lima's version without the `v` (`limactl --version`).
    pub version: String,
    pub inject: Injector,
    /// `--tty` after `--yes` and its TTY default.
    pub tty: bool,
    /// This simulator binary (fallback-mode tools link to it).
    pub exe: PathBuf,
    /// Set by `shell` for the call log's end record.
    pub isolation: Option<&'static str>,
}

impl Ctx {
    /// `version.Version` (with the `v`), as written to lima-version.
    pub fn lima_version(&self) -> String {
        format!("v{}", self.version.trim_start_matches('v'))
    }

    pub fn store(&self) -> Store<'_> {
        Store {
            lima_home: &self.lima_home,
            host: &self.host,
            version: &self.version,
        }
    }
}
