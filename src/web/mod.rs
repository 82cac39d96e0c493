//! `claude-vm web`: a web app on 127.0.0.1 to start, watch, stop and review sessions.
//!
//! - `auth`: the token, cookie, Host/Origin checks and failure limit (pure)
//! - the child claude-vm processes (one per session or rebuild): `workflow::child`
//! - `store`: the records and messages, in memory and under `DATA_DIR/web/`
//! - `review`: git snapshots of the project's working state and their diff
//! - `api`: the HTTP routes (axum), the SSE streams, the embedded page
//!
//! The command itself (`commands::web`) only gathers the projects' template states.

mod api;
mod auth;
mod review;
mod store;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::paths::HostPaths;

/// A project with a template, as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectInfo {
    /// The template's name: the project's id in the API.
    pub id: String,
    pub path: PathBuf,
    pub up_to_date: Option<bool>,
    /// Why it is out of date, or why that could not be told.
    pub reasons: Vec<String>,
    pub tools: Vec<String>,
    pub disk_gb: u32,
    pub memory_gb: u32,
    pub cpus: u32,
    pub built_at: u64,
    pub claude_vm_version: String,
    /// Bytes the template's Lima instance takes on disk.
    pub size_bytes: Option<u64>,
}

pub type Projects = Arc<dyn Fn(&HostPaths) -> Vec<ProjectInfo> + Send + Sync>;

pub struct Options {
    pub paths: HostPaths,
    pub port: u16,
    pub open: bool,
    pub projects: Projects,
}

/// Everything the handlers share.
pub struct App {
    pub port: u16,
    pub gate: Mutex<auth::Gate>,
    pub store: store::Store,
    pub exe: PathBuf,
    pub paths: HostPaths,
    pub projects: Projects,
    pub stopping: std::sync::atomic::AtomicBool,
    /// The running children's pids (each sent SIGTERM once).
    pub children: crate::workflow::child::Children,
}

/// Serves until SIGINT, SIGTERM or SIGHUP; then ends the sessions still running (each
/// deletes its VM) and waits for them.
pub fn run(opts: Options) -> Result<i32> {
    let exe = std::env::current_exe().io_context("find claude-vm's own executable", ".")?;
    let store = store::Store::open(&opts.paths.data_dir.join("web"))
        .io_context("open the web UI's records", opts.paths.data_dir.join("web"))?;
    let token = auth::random_hex(32).io_context("read random bytes", "/dev/urandom")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::failure(format!("cannot start the web server: {e}")))?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", opts.port)))
        .map_err(|e| {
            Error::failure(format!("cannot listen on 127.0.0.1:{}: {e}", opts.port))
                .with_hint("pick another port with --port N (or leave it out for a free one)")
        })?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::failure(format!("cannot read the server's address: {e}")))?
        .port();
    let mut gate = auth::Gate::new(token.clone());
    let launch = if opts.open {
        let code = auth::random_hex(16).io_context("read random bytes", "/dev/urandom")?;
        gate.set_launch(code.clone(), Instant::now());
        Some(code)
    } else {
        None
    };
    let app = Arc::new(App {
        port,
        gate: Mutex::new(gate),
        store,
        exe,
        paths: opts.paths,
        projects: opts.projects,
        stopping: false.into(),
        children: Default::default(),
    });
    crate::outln!("http://127.0.0.1:{port}/#token={token}");
    crate::ui::raw_stderr(&format!(
        "claude-vm: serving the web UI on 127.0.0.1:{port} (open the URL above; anyone with it can start agents in your projects). Ctrl-C stops it and the sessions it started.\n"
    ));
    if let Some(code) = launch {
        open_browser(&format!("http://127.0.0.1:{port}/#launch={code}"));
    }
    use tokio::signal::unix::{signal, SignalKind};
    let served = rt.block_on({
        let app = app.clone();
        async move {
            let mut term = signal(SignalKind::terminate())?;
            let mut int = signal(SignalKind::interrupt())?;
            let mut hup = signal(SignalKind::hangup())?;
            let serve = axum::serve(listener, api::router(app));
            tokio::select! {
                r = serve => r,
                _ = term.recv() => Ok(()),
                _ = int.recv() => Ok(()),
                _ = hup.recv() => Ok(()),
            }
        }
    });
    stop_all(&app);
    rt.shutdown_timeout(Duration::from_secs(1));
    app.store.flush();
    served
        .map(|()| 0)
        .map_err(|e| Error::failure(format!("the web server stopped: {e}")))
}

/// One SIGTERM to every child still running, then waits for them to end.
fn stop_all(app: &App) {
    app.stopping
        .store(true, std::sync::atomic::Ordering::SeqCst);
    for (id, _) in app.store.live() {
        api::stop(app, &id);
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    app.children.wait_all(Some(deadline));
    // Then each exit's record (its end snapshot and state).
    while !app.store.live().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The desktop's opener, with the one-use launch code (never the token) in the URL.
fn open_browser(url: &str) {
    if let Err(e) = open_with_desktop(std::ffi::OsStr::new(url)) {
        crate::ui::raw_stderr(&format!(
            "claude-vm: warning: {e}; open the URL above yourself\n"
        ));
    }
}

/// Hands `target` (a URL, a folder) to the desktop's opener (`xdg-open`, macOS `open`): an
/// argument of its own, never a shell line.
pub fn open_with_desktop(target: &std::ffi::OsStr) -> std::result::Result<(), String> {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let started = std::process::Command::new(opener)
        .arg(target)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match started {
        // Reaped when it exits (it normally hands the target over and exits at once).
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
            Ok(())
        }
        Err(e) => Err(format!("cannot run {opener} ({e})")),
    }
}
