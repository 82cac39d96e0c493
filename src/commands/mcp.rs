//! `claude-vm mcp`: an MCP server on stdio, so an agent on the host can hand work to a
//! sandboxed sub-agent. Each tool runs this same claude-vm binary with `--json` in the
//! project's directory (exactly what a person would run), and answers from claude's stdout
//! and the event stream (`crate::mcp`). Runs are child processes (`workflow::child`: each
//! deletes its VM even when the server is SIGKILLed) awaited asynchronously, so a long run
//! never blocks other requests.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{schemars, tool, tool_handler, tool_router, ErrorData, ServerHandler, ServiceExt};
use serde::Deserialize;

use crate::error::{Error, IoContext, Result};
use crate::mcp::{self as core, Refusal};
use crate::workflow::child::{self, Children};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RunAgent {
    /// What the sub-agent should do (claude's prompt).
    pub prompt: String,
    /// The project's directory (absolute, or relative to the server's working directory);
    /// its template must have been built with `claude-vm setup`.
    pub project: String,
    /// More arguments for claude, e.g. ["--model", "opus"].
    #[serde(default)]
    pub claude_args: Vec<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Exec {
    /// The project's directory (absolute, or relative to the server's working directory).
    pub project: String,
    /// The command and its arguments, e.g. ["make", "test"]; run without a shell.
    pub argv: Vec<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SessionLog {
    /// A session's VM name (from list_sessions or a run's claude_vm.vm); part of one matches
    /// every session whose name contains it.
    pub name: String,
}

#[derive(Clone)]
pub struct Server {
    exe: PathBuf,
    cwd: PathBuf,
    data_dir: PathBuf,
    children: Children,
    #[allow(dead_code)] // read by the tool_handler macro
    tool_router: ToolRouter<Server>,
}

/// What a child printed and how it ended.
struct Ran {
    exit: i32,
    stdout: String,
    events: Vec<serde_json::Value>,
}

/// Ends a child that is still running when its request is dropped (cancelled, or the
/// server stops): SIGTERM, so claude-vm deletes the VM itself.
struct Guard {
    pid: u32,
    children: Children,
    done: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Not after the answer: the pid may belong to another child by then.
        if !self.done {
            self.children.terminate(self.pid);
        }
    }
}

/// The most of a child's stderr (its events) kept.
const STDERR_MAX: usize = 16 << 20;

/// A child's output collected whole (bounded), handed over with its exit.
struct Collect {
    stdout: Mutex<Vec<u8>>,
    stderr: Mutex<Vec<u8>>,
    done: Mutex<Option<tokio::sync::oneshot::Sender<Ran>>>,
}

fn take<T: Default>(m: &Mutex<T>) -> T {
    std::mem::take(&mut *m.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
}

impl child::Sink for Collect {
    fn read(&self, stream: child::Stream, r: &mut dyn std::io::Read) {
        let (max, into) = match stream {
            child::Stream::Stdout => (core::STDOUT_MAX, &self.stdout),
            child::Stream::Stderr => (STDERR_MAX, &self.stderr),
        };
        let kept = child::read_bounded(r, max);
        *into
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = kept;
    }

    fn exited(&self, exit: i32) {
        let stdout = String::from_utf8_lossy(&take(&self.stdout)).into_owned();
        let stderr = take(&self.stderr);
        let ran = Ran {
            exit,
            stdout,
            events: core::events(&String::from_utf8_lossy(&stderr)),
        };
        if let Some(tx) = take(&self.done) {
            let _ = tx.send(ran);
        }
    }
}

fn answer(text: String, structured: serde_json::Value, is_error: bool) -> CallToolResult {
    let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
    r.structured_content = Some(structured);
    r.is_error = Some(is_error);
    r
}

fn refused(r: Refusal) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!(
        "claude-vm: error: {}",
        r.0
    ))])
}

#[tool_router]
impl Server {
    fn new(exe: PathBuf, cwd: PathBuf, data_dir: PathBuf, children: Children) -> Server {
        Server {
            exe,
            cwd,
            data_dir,
            children,
            tool_router: Self::tool_router(),
        }
    }

    /// Runs `claude-vm --json ARGS` in `dir` to the end.
    /// A request the client cancels ends its child (SIGTERM: claude-vm deletes the VM) and
    /// still waits for it, so nothing is left running unseen.
    async fn claude_vm(
        &self,
        args: &[String],
        dir: &Path,
        cancelled: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<Ran> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sink = Arc::new(Collect {
            stdout: Mutex::default(),
            stderr: Mutex::default(),
            done: Mutex::new(Some(tx)),
        });
        // Spawned by the shared long-lived thread (the death signal is tied to the spawning
        // thread, and the runtime's workers come and go); collected whole, to the end.
        let opts = child::Options {
            children: self.children.clone(),
            linger: None,
        };
        let (exe, args, dir) = (self.exe.clone(), args.to_vec(), dir.to_path_buf());
        let pid = tokio::task::spawn_blocking(move || child::spawn(&exe, &args, &dir, sink, opts))
            .await
            .map_err(std::io::Error::other)??;
        let mut guard = Guard {
            pid,
            children: self.children.clone(),
            done: false,
        };
        tokio::pin!(rx);
        let ran = tokio::select! {
            r = &mut rx => r,
            () = cancelled => {
                self.children.terminate(pid);
                rx.await
            }
        };
        guard.done = true;
        ran.map_err(|_| std::io::Error::other("the child's reader is gone"))
    }

    #[tool(
        description = "Run Claude Code as a sandboxed sub-agent: `claude -p PROMPT --output-format json CLAUDE_ARGS` in a fresh, disposable VM cloned from the project's template (deleted afterwards). Returns claude's result text, its exit status, cost and session id, and what claude-vm saw: the VM, audit findings (changes to what the host runs), warnings and errors."
    )]
    async fn run_agent(
        &self,
        Parameters(p): Parameters<RunAgent>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let dir = match core::project_dir(&p.project, &self.cwd)
            .and_then(|d| core::check_claude_args(&p.claude_args, &p.prompt).map(|()| d))
        {
            Ok(d) => d,
            Err(r) => return Ok(refused(r)),
        };
        let mut claude = vec!["--output-format".to_owned(), "json".to_owned()];
        claude.extend(p.claude_args);
        let args = child::agent_argv(None, &p.prompt, &claude);
        Ok(
            match self.claude_vm(&args, &dir, ctx.ct.cancelled()).await {
                Ok(r) => {
                    let (text, s, e) = core::agent_answer(r.exit, &r.stdout, &r.events);
                    answer(text, s, e)
                }
                Err(e) => refused(Refusal(format!("cannot run {}: {e}", self.exe.display()))),
            },
        )
    }

    #[tool(
        description = "Run a command in a fresh, disposable VM of the project (`claude-vm shell -- ARGV`), without a shell. Returns its exit status, stdout and stderr lines."
    )]
    async fn exec(
        &self,
        Parameters(p): Parameters<Exec>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let dir = match core::project_dir(&p.project, &self.cwd)
            .and_then(|d| core::check_argv(&p.argv).map(|()| d))
        {
            Ok(d) => d,
            Err(r) => return Ok(refused(r)),
        };
        let mut args: Vec<String> = ["--json", "shell", "--"].map(str::to_owned).to_vec();
        args.extend(p.argv);
        Ok(
            match self.claude_vm(&args, &dir, ctx.ct.cancelled()).await {
                Ok(r) => {
                    let (text, s, e) = core::exec_answer(r.exit, &r.stdout, &r.events);
                    answer(text, s, e)
                }
                Err(e) => refused(Refusal(format!("cannot run {}: {e}", self.exe.display()))),
            },
        )
    }

    #[tool(
        description = "List claude-vm's templates, running sessions and shared base VMs ({\"templates\": [...], \"sessions\": [...], \"bases\": [...]}, as `claude-vm --json list`; a base's used_by lists the projects whose templates are cloned from it)."
    )]
    async fn list_sessions(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let args = ["--json", "list"].map(str::to_owned);
        Ok(
            match self
                .claude_vm(&args, &self.cwd.clone(), ctx.ct.cancelled())
                .await
            {
                Ok(r) => match serde_json::from_str::<serde_json::Value>(&r.stdout) {
                    Ok(v) if r.exit == 0 => answer(v.to_string(), v, false),
                    _ => {
                        let (text, s, _) = core::exec_answer(r.exit, &r.stdout, &r.events);
                        answer(text, s, true)
                    }
                },
                Err(e) => refused(Refusal(format!("cannot run {}: {e}", self.exe.display()))),
            },
        )
    }

    #[tool(
        description = "What claude-vm kept about a session: its audit reports and, when there is one, its network log. `name` is a VM name from list_sessions or a run's claude_vm.vm."
    )]
    async fn session_log(
        &self,
        Parameters(p): Parameters<SessionLog>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        if let Err(r) = core::check_name(&p.name) {
            return Ok(refused(r));
        }
        let v = core::session_log(&self.data_dir, &p.name);
        Ok(answer(v.to_string(), v, false))
    }
}

#[tool_handler]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("claude-vm", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Hand risky work to a sandboxed sub-agent: run_agent runs Claude Code in a disposable VM of a project (built once with `claude-vm setup` there), exec runs one command in such a VM.",
            )
    }
}

/// Serves MCP on stdin/stdout until the client closes it; then ends the runs still going
/// and waits for them (each deletes its VM).
pub fn run(data_dir: PathBuf) -> Result<i32> {
    let exe = std::env::current_exe().io_context("find claude-vm's own executable", ".")?;
    let cwd = std::env::current_dir().io_context("read the current directory", ".")?;
    let children = Children::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::failure(format!("cannot start the MCP server: {e}")))?;
    let server = Server::new(exe, cwd, data_dir, children.clone());
    use tokio::signal::unix::{signal, SignalKind};
    let signal =
        |k| signal(k).map_err(|e| Error::failure(format!("cannot watch for signals: {e}")));
    let served = rt.block_on(async move {
        let service = server
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| Error::failure(format!("MCP initialization failed: {e}")))?;
        // A client that stops the server with a signal still gets its VMs deleted (below).
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        tokio::select! {
            r = service.waiting() => r
                .map(|_| ())
                .map_err(|e| Error::failure(format!("the MCP server stopped: {e}"))),
            _ = term.recv() => Ok(()),
            _ = int.recv() => Ok(()),
            _ = hup.recv() => Ok(()),
        }
    });
    // stdin cannot be cancelled: do not wait for it.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    children.terminate_all();
    children.wait_all(None);
    served.map(|()| 0)
}
