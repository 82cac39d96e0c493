//! Every name claude-vm gives a file or folder under its data directory, in one place (as
//! Lima's pkg/limatype/filenames does for an instance directory). `paths::HostPaths` joins
//! them onto the data directory; nothing else spells them.
//!
//! ```text
//! <data_dir>/templates/<template>.json     the manifest of a complete build
//!           templates/<template>.swap     a rebuild's swap record, while it runs
//!           templates/bases/<base>.json   the record of a complete shared base
//!           handover/<instance>/          a session's hand-over directory
//!           journal/                      one file per live VM and its owner
//!           locks/<template>.setup.lock   one setup per project
//!           locks/<base>.setup.lock       one build of a shared base (and its clones)
//!           locks/<template>.template.lock  the template swap vs. sessions
//!           trust/                        approvals of project files
//!           pool/<template>/              the warm pool: ready/, claimed/, state.json,
//!                                         failure.json, keeper.lock
//!           logs/<template>.setup.log     the last build's output
//!           logs/<template>.pool.log      the pool keeper's output
//!           logs/update-check.log         the detached update check's output
//!           audit/                        audit reports; audit/unseen/ marks the unread
//!           network/<session>.jsonl       a session's network log
//!           worktrees/<digest>.json       a worktree's main repository, first seen
//!           lima-version.json             what `limactl --version` said, per binary
//!           update-check.json             when releases were last looked at
//! ```

pub const TEMPLATES: &str = "templates";
/// In `templates/`.
pub const BASES: &str = "bases";
pub const HANDOVER: &str = "handover";
pub const JOURNAL: &str = "journal";
pub const LOCKS: &str = "locks";
pub const TRUST: &str = "trust";
pub const POOL: &str = "pool";
pub const LOGS: &str = "logs";
pub const AUDIT: &str = "audit";
/// Inside `audit/`: an empty file per report nobody has been pointed at yet.
pub const AUDIT_UNSEEN: &str = "unseen";
pub const NETWORK: &str = "network";
pub const WORKTREES: &str = "worktrees";
pub const LIMA_VERSION_CACHE: &str = "lima-version.json";
pub const UPDATE_CHECK: &str = "update-check.json";
/// In `logs/`.
pub const UPDATE_CHECK_LOG: &str = "update-check.log";

/// In `pool/<template>/`.
pub const POOL_READY: &str = "ready";
pub const POOL_CLAIMED: &str = "claimed";
pub const POOL_STATE: &str = "state.json";
pub const POOL_FAILURE: &str = "failure.json";
pub const KEEPER_LOCK: &str = "keeper.lock";

/// In `templates/`: the manifest of `template`.
pub fn manifest(template: &str) -> String {
    format!("{template}.json")
}

/// In `templates/bases/`: the record of the shared base `base`.
pub fn base_record(base: &str) -> String {
    format!("{base}.json")
}

/// In `templates/`: the swap record of a rebuild of `template`.
pub fn swap_record(template: &str) -> String {
    format!("{template}.swap")
}

/// In `locks/`.
pub fn setup_lock(template: &str) -> String {
    format!("{template}.setup.lock")
}

/// In `locks/`.
pub fn template_lock(template: &str) -> String {
    format!("{template}.template.lock")
}

/// The logs of a template, in `logs/`: `setup` (its last build) and `pool` (its keeper).
pub const TEMPLATE_LOGS: [&str; 2] = ["setup", "pool"];

/// In `logs/`: `kind` is one of [`TEMPLATE_LOGS`].
pub fn template_log(template: &str, kind: &str) -> String {
    format!("{template}.{kind}.log")
}

/// In `network/`: the network log of a session's VM.
pub fn network_log(instance: &str) -> String {
    format!("{instance}.jsonl")
}
