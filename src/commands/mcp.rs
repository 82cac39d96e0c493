//! `claude-vm mcp`: an MCP server on stdio, so an agent on the host can hand work to a
//! sandboxed sub-agent. Each tool runs this same claude-vm binary with `--json` in the
//! project's directory (exactly what a person would run), and answers from claude's stdout
//! and the event stream (`crate::mcp`). Runs are child processes awaited asynchronously, so
//! a long run never blocks other requests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{schemars, tool, tool_handler, tool_router, ErrorData, ServerHandler, ServiceExt};
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use crate::error::{Error, IoContext, Result};
use crate::mcp::{self as core, Refusal};

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

/// The child claude-vm processes running now (and whether they were sent SIGTERM already),
/// ended when the server stops; each deletes its VM. One signal only: a second one would cut
/// a clean-up short.
type Children = Arc<Mutex<HashMap<u32, bool>>>;

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
    pid: Option<u32>,
    children: Children,
    done: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let Some(pid) = self.pid else { return };
        let mut children = lock(&self.children);
        if self.done {
            children.remove(&pid);
        } else if children.insert(pid, true) != Some(true) {
            terminate(pid);
        }
    }
}

fn lock(c: &Children) -> std::sync::MutexGuard<'_, HashMap<u32, bool>> {
    c.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn terminate(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: a plain signal to a child this server started and has not reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

/// The most of a child's stderr (its events) kept.
const STDERR_MAX: usize = 16 << 20;

/// Everything `r` gives (the child must never block on a full pipe), the first `max` bytes
/// kept.
async fn read_bounded<R: tokio::io::AsyncRead + Unpin>(r: Option<R>, max: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut r) = r else { return kept };
    let mut buf = [0u8; 8192];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = max.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    kept
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
        let mut child = tokio::process::Command::new(&self.exe)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut guard = Guard {
            pid: child.id(),
            children: self.children.clone(),
            done: false,
        };
        if let Some(pid) = guard.pid {
            lock(&self.children).insert(pid, false);
        }
        let (out, err) = (child.stdout.take(), child.stderr.take());
        let ran = async {
            tokio::join!(
                read_bounded(out, core::STDOUT_MAX),
                read_bounded(err, STDERR_MAX),
                child.wait()
            )
        };
        tokio::pin!(ran);
        let (stdout, stderr, status) = tokio::select! {
            r = &mut ran => r,
            () = cancelled => {
                if let Some(pid) = guard.pid {
                    if lock(&self.children).insert(pid, true) != Some(true) {
                        terminate(pid);
                    }
                }
                ran.await
            }
        };
        let status = status?;
        guard.done = true;
        let stdout = String::from_utf8_lossy(&stdout).into_owned();
        let stderr = String::from_utf8_lossy(&stderr);
        use std::os::unix::process::ExitStatusExt;
        let exit = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        Ok(Ran {
            exit,
            stdout,
            events: core::events(&stderr),
        })
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
        let mut args: Vec<String> = ["--json", "--", "-p", p.prompt.as_str()]
            .map(str::to_owned)
            .to_vec();
        args.extend(["--output-format".to_owned(), "json".to_owned()]);
        args.extend(p.claude_args);
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
        description = "List claude-vm's templates and running sessions ({\"templates\": [...], \"sessions\": [...]}, as `claude-vm --json list`)."
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
    let children: Children = Arc::default();
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
    let left: Vec<(u32, bool)> = lock(&children).drain().collect();
    for (pid, signalled) in left {
        if !signalled {
            terminate(pid);
        }
        if let Ok(pid) = libc::pid_t::try_from(pid) {
            let mut status = 0;
            // SAFETY: waiting for our own child; the runtime that watched it is gone.
            unsafe { libc::waitpid(pid, &mut status, 0) };
        }
    }
    served.map(|()| 0)
}
