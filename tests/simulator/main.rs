//! Integration tests of the Lima simulator (`tests/sim/`): they drive the
//! built `limactl` example binary the way claude-vm will, each test with its
//! own `$LIMA_HOME`, `$HOME` and project directory. One file per subject;
//! support.rs is the harness.

#[path = "../common/sandbox.rs"]
mod sandbox;
mod support;
#[path = "../common/pty.rs"]
mod tty;

mod claude;
mod cli;
mod forwards;
mod guest;
mod hooks;
mod instances;
mod isolation;
mod lifecycle;
mod network;
mod terminal;
mod tools;
