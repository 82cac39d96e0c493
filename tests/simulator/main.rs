//! Integration tests of the Lima simulator (`tests/sim/`): they drive the
//! built `limactl` example binary the way claude-vm will, each test with its
//! own `$LIMA_HOME`, `$HOME` and project directory.

mod claude;
mod cli;
mod forwards;
mod guest;
mod hooks;
mod instances;
mod isolation;
mod lifecycle;
mod network;
mod support;
mod terminal;
mod tools;
