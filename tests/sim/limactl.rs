//! A strict stand-in for Lima's `limactl`, used by claude-vm's tests (see
//! README.md next to this file). Invoked as `sudo`, `apt-get`, `curl`,
//! `npm` or `claude` it plays that guest tool instead.

mod cli;
mod cmd;
// fakes.rs is the folder's module file (named so before the folders were modules).
#[path = "fakes/fakes.rs"]
mod fakes;
mod guest;
mod lima;
mod support;

// The parts name each other by these short names (`crate::sys`, `crate::config`, ...).
use cli::{cobra, commands, ctx, flags};
use cmd::{cmd_clone, cmd_copy, cmd_create, cmd_list, cmd_shell, cmd_stop};
use fakes::{
    apt_sources, claude_auth, claude_install, claude_mcp, claude_stream, commander, installers,
    urls,
};
use guest::{agent, disk, exec, forward, net, pty, script};
#[cfg(target_os = "linux")]
use guest::{ns, relay, slirp, user};
use lima::{
    config, editflags, gotmpl, host, names, portfwd, schema, store, templates, validate, yq,
};
use support::{calllog, fail, fsutil, gofmt, inject, logrus, output, sys};

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

/// The Lima version the simulator claims to be (`LIMA_SIM_VERSION`).
pub fn version() -> String {
    std::env::var("LIMA_SIM_VERSION")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "2.0.3".into())
        .trim_start_matches('v')
        .to_string()
}

fn exit(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

fn main() {
    // Like a Go program, die quietly when stdout is a closed pipe.
    sys::set_default(libc::SIGPIPE);
    let mut argv = std::env::args_os();
    let argv0 = PathBuf::from(argv.next().unwrap_or_default());
    let args: Vec<OsString> = argv.collect();
    if let Some(code) = fakes::dispatch(&argv0, &args) {
        exit(code);
    }
    logrus::init();
    if let Err(e) = calllog::start(&args) {
        logrus::fatal(&format!("LIMA_SIM_LOG: {e}"));
        exit(1);
    }
    let (code, isolation) = cobra::main(args);
    if let Err(e) = calllog::end(code, isolation) {
        logrus::warn(&format!("LIMA_SIM_LOG: {e}"));
    }
    exit(code);
}
