//! End-to-end tests: the real claude-vm binary against the Lima simulator, as a new user
//! would run it (fresh HOME, a git project, no terminal).

mod support;

mod completions;
mod config_errors;
mod config_show;
mod doctor;
mod environment;
mod housekeeping;
mod install;
mod notice;
mod progress;
mod pty;
mod release_server;
mod sessions;
mod setup;
mod terminal;
mod tools;
mod update;
