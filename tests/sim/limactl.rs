//! A strict stand-in for Lima's `limactl`, used by claude-vm's tests (see
//! README.md next to this file). Invoked as `sudo`, `apt-get`, `curl`,
//! `npm` or `claude` it plays that guest tool instead.

#[path = "support/calllog.rs"]
mod calllog;
#[path = "support/fail.rs"]
mod fail;
#[path = "support/fsutil.rs"]
mod fsutil;
#[path = "support/gofmt.rs"]
mod gofmt;
#[path = "support/inject.rs"]
mod inject;
#[path = "support/logrus.rs"]
mod logrus;
#[path = "support/output.rs"]
mod output;
#[path = "support/sys.rs"]
mod sys;

#[path = "cli/cobra.rs"]
mod cobra;
#[path = "cli/commands.rs"]
mod commands;
#[path = "cli/ctx.rs"]
mod ctx;
#[path = "cli/flags.rs"]
mod flags;

#[path = "lima/config.rs"]
mod config;
#[path = "lima/editflags.rs"]
mod editflags;
#[path = "lima/gotmpl.rs"]
mod gotmpl;
#[path = "lima/host.rs"]
mod host;
#[path = "lima/names.rs"]
mod names;
#[path = "lima/portfwd.rs"]
mod portfwd;
#[path = "lima/schema.rs"]
mod schema;
#[path = "lima/store.rs"]
mod store;
#[path = "lima/templates.rs"]
mod templates;
#[path = "lima/validate.rs"]
mod validate;
#[path = "lima/yq.rs"]
mod yq;

#[path = "cmd/cmd_clone.rs"]
mod cmd_clone;
#[path = "cmd/cmd_copy.rs"]
mod cmd_copy;
#[path = "cmd/cmd_create.rs"]
mod cmd_create;
#[path = "cmd/cmd_list.rs"]
mod cmd_list;
#[path = "cmd/cmd_shell.rs"]
mod cmd_shell;
#[path = "cmd/cmd_stop.rs"]
mod cmd_stop;

#[path = "guest/agent.rs"]
mod agent;
#[path = "guest/disk.rs"]
mod disk;
#[path = "guest/exec.rs"]
mod exec;
#[path = "guest/forward.rs"]
mod forward;
#[path = "guest/net.rs"]
mod net;
#[cfg(target_os = "linux")]
#[path = "guest/ns.rs"]
mod ns;
#[path = "guest/pty.rs"]
mod pty;
#[cfg(target_os = "linux")]
#[path = "guest/relay.rs"]
mod relay;
#[path = "guest/script.rs"]
mod script;
#[cfg(target_os = "linux")]
#[path = "guest/slirp.rs"]
mod slirp;

#[path = "fakes/apt.rs"]
mod apt;
#[path = "fakes/apt_sources.rs"]
mod apt_sources;
#[path = "fakes/claude.rs"]
mod claude;
#[path = "fakes/claude_auth.rs"]
mod claude_auth;
#[path = "fakes/claude_install.rs"]
mod claude_install;
#[path = "fakes/claude_mcp.rs"]
mod claude_mcp;
#[path = "fakes/claude_stream.rs"]
mod claude_stream;
#[path = "fakes/commander.rs"]
mod commander;
#[path = "fakes/curl.rs"]
mod curl;
#[path = "fakes/fakes.rs"]
mod fakes;
#[path = "fakes/installers.rs"]
mod installers;
#[path = "fakes/npm.rs"]
mod npm;
#[path = "fakes/sudo.rs"]
mod sudo;
#[path = "fakes/urls.rs"]
mod urls;

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
