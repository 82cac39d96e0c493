//! End-to-end tests: the real claude-vm binary against the Lima simulator, as a new user
//! would run it (fresh HOME, a git project, no terminal).

mod live;
mod support;

mod config_errors;
mod housekeeping;
mod sessions;
mod setup;
mod signals;
mod terminal;
