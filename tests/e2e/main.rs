//! End-to-end tests: the real claude-vm binary against the Lima simulator, as a new user
//! would run it (fresh HOME, a git project, no terminal).

mod live;
#[path = "../common/sandbox.rs"]
mod sandbox;
mod support;
#[path = "../common/pty.rs"]
mod tty;

mod artefacts;
mod audit;
mod base;
mod boundary;
mod closed_stdout;
mod completions;
mod concurrency;
mod config_errors;
mod config_show;
mod doctor;
mod enforce;
mod environment;
mod events;
mod failures;
mod housekeeping;
mod install;
mod journal;
mod lima;
mod mcp;
mod messages;
mod messages_api;
mod network;
mod notice;
mod ownership;
mod pool;
mod progress;
mod pty;
mod real_claude;
mod release_server;
mod remembered;
mod sdk;
mod sdk_clients;
mod sessions;
mod setup;
mod signals;
mod stale;
mod subdirectory;
mod swap;
mod terminal;
mod tools;
mod trust;
mod typos;
mod update;
mod web;
mod workdir;
