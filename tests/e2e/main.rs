//! End-to-end tests: the real claude-vm binary against the Lima simulator, as a new user
//! would run it (fresh HOME, a git project, no terminal).

mod live;
mod support;

mod audit;
mod concurrency;
mod config_errors;
mod failures;
mod housekeeping;
mod journal;
mod lima;
mod sessions;
mod setup;
mod signals;
mod stale;
mod terminal;
mod trust;
