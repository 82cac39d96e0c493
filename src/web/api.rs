//! The HTTP side: the embedded page, the JSON API and its SSE streams. Every request must
//! come to the server's own address (`Host`) from no page or the server's own (`Origin`);
//! every `/api` call but the login must carry the token or the login's cookie. Bad input
//! gets a 4xx with `{"error": "..."}`.

// A refusal is the finished Response, made at most once per request: its size costs nothing.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{self, Verdict};
use super::store::{self, Kind, Record, State as JobState};
use super::{review, App};
use crate::workflow::child;

type Shared = Arc<App>;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

pub fn router(app: Shared) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route("/api/login", post(login))
        .route("/api/projects", get(projects))
        .route("/api/projects/{id}/rebuild", post(rebuild))
        .route("/api/sessions", get(sessions).post(start))
        .route("/api/sessions/{id}", get(session))
        .route("/api/sessions/{id}/stop", post(stop_session))
        .route("/api/sessions/{id}/continue", post(continue_session))
        .route("/api/sessions/{id}/events", get(events))
        .route("/api/sessions/{id}/review", get(review_session))
        .route("/api/sessions/{id}/open-folder", post(open_folder))
        .route("/api/stream", get(list_stream))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page or API call") })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "this API call takes another method",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_MAX))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// The largest request body read (a prompt is at most `ARG_MAX`).
const BODY_MAX: usize = 1 << 20;
/// The longest prompt or single claude argument: one argv string is at most 128 KiB on Linux.
const ARG_MAX: usize = 100_000;

pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let mut r = (status, axum_json(&json!({"error": message.into()}))).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn axum_json(v: &Value) -> ([(header::HeaderName, &'static str); 1], String) {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string())
}

fn ok(v: Value) -> Response {
    let mut r = (StatusCode::OK, axum_json(&v)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The page's files, with a policy that runs only them (no inline script, nothing foreign).
fn asset(kind: &'static str, body: &'static str) -> Response {
    let mut r = ([(header::CONTENT_TYPE, kind)], body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Host and Origin for every request; the token or cookie for `/api` (but the login).
async fn guard(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let h = req.headers();
    let host = header_str(h, header::HOST);
    if !auth::host_ok(host, app.port) {
        return error(
            StatusCode::FORBIDDEN,
            format!(
                "wrong Host header: use http://127.0.0.1:{}/ (or localhost)",
                app.port
            ),
        );
    }
    let host = host.unwrap_or_default();
    if !auth::origin_ok(header_str(h, header::ORIGIN), host) {
        return error(
            StatusCode::FORBIDDEN,
            "requests from another web page are refused",
        );
    }
    let path = req.uri().path();
    if !path.starts_with("/api/") {
        return next.run(req).await;
    }
    // A form from elsewhere cannot send JSON without asking first (CORS, never granted).
    if req.method() == Method::POST {
        let json = header_str(h, header::CONTENT_TYPE).is_some_and(|c| {
            c.split(';')
                .next()
                .is_some_and(|t| t.trim() == "application/json")
        });
        if !json {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the request body as JSON (Content-Type: application/json)",
            );
        }
    }
    if path == "/api/login" {
        return as_json(next.run(req).await).await;
    }
    let now = Instant::now();
    let verdict = {
        let mut gate = app
            .gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(t) = header_str(h, header::AUTHORIZATION).and_then(auth::bearer) {
            gate.check_token(t, now)
        } else if let Some(c) =
            header_str(h, header::COOKIE).and_then(|c| auth::cookie(c, auth::COOKIE_NAME))
        {
            gate.check_cookie(c, now)
        } else {
            gate.missing()
        }
    };
    match verdict {
        Verdict::Ok => as_json(next.run(req).await).await,
        Verdict::Refused => error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: open the URL `claude-vm web` printed",
        ),
        Verdict::Limited => error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many wrong tokens in the last minute; try again later",
        ),
    }
}

/// An API error that axum answered itself (a body over the limit, a bad path) in plain text:
/// the same status, as `{"error": ...}` like every other.
async fn as_json(r: Response) -> Response {
    let status = r.status();
    let is_json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return r;
    }
    let text = axum::body::to_bytes(r.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let text = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("the request body is over {BODY_MAX} bytes")
    } else {
        text
    };
    error(status, text)
}

/// A JSON body as `T`, or a 400 saying what is wrong with it.
fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("bad request body: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    token: String,
}

async fn login(State(app): State<Shared>, body: Bytes) -> Response {
    let l: Login = match parse(&body) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let cookie = match auth::random_hex(32) {
        Ok(c) => c,
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("no random bytes: {e}"),
            )
        }
    };
    let now = Instant::now();
    let verdict = {
        let mut gate = app
            .gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let v = gate.check_token(&l.token, now);
        if v == Verdict::Ok {
            gate.new_cookie(cookie.clone(), now);
        }
        v
    };
    match verdict {
        Verdict::Ok => {
            let mut r = ok(json!({"ok": true}));
            let value = format!(
                "{}={cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                auth::COOKIE_NAME,
                auth::COOKIE_TTL.as_secs()
            );
            if let Ok(v) = HeaderValue::from_str(&value) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Verdict::Refused => error(StatusCode::UNAUTHORIZED, "wrong token"),
        Verdict::Limited => error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many wrong tokens in the last minute; try again later",
        ),
    }
}

async fn projects(State(app): State<Shared>) -> Response {
    let a = app.clone();
    match tokio::task::spawn_blocking(move || (a.projects)(&a.paths)).await {
        Ok(p) => ok(json!({"projects": p})),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot list the projects: {e}"),
        ),
    }
}

/// A project's directory from its id (a template name claude-vm built).
fn project_dir(app: &App, id: &str) -> Result<PathBuf, Response> {
    crate::template::all_manifests(&app.paths)
        .into_iter()
        .find(|m| m.template == id)
        .map(|m| m.project)
        .ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                format!("no project with template {id:?}: build one with `claude-vm setup` in it"),
            )
        })
}

/// An id of ours: digits, lowercase hex and '-' only (it names files).
fn check_id(id: &str) -> Result<(), Response> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(error(StatusCode::NOT_FOUND, "no such session"))
    }
}

fn found(app: &App, id: &str) -> Result<Record, Response> {
    check_id(id)?;
    app.store
        .get(id)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "no such session"))
}

fn new_id() -> Result<String, Response> {
    auth::random_hex(4)
        .map(|r| format!("{:013}-{r}", store::now_ms()))
        .map_err(|e| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("no random bytes: {e}"),
            )
        })
}

async fn rebuild(State(app): State<Shared>, Path(id): Path<String>) -> Response {
    let dir = match project_dir(&app, &id) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let busy = app
        .store
        .records()
        .into_iter()
        .any(|r| r.kind == Kind::Rebuild && r.template == id && r.is_live());
    if busy {
        return error(
            StatusCode::CONFLICT,
            "this template is being rebuilt already",
        );
    }
    let job = match new_id() {
        Ok(j) => j,
        Err(r) => return r,
    };
    let record = blank(job, Kind::Rebuild, id, dir);
    let args = ["--json", "setup"].map(str::to_owned).to_vec();
    launch(&app, record, args).await
}

/// What the page asks to start.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    project: String,
    prompt: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    claude_args: Vec<String>,
    #[serde(default)]
    network: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContinueBody {
    prompt: String,
}

fn bad(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

fn check_prompt(prompt: &str) -> Result<(), Response> {
    child::check_prompt(prompt).map_err(bad)?;
    if prompt.len() > ARG_MAX {
        return Err(bad(format!(
            "prompt is too long ({} bytes; at most {ARG_MAX}): put the details in a file in the project and point the agent at it",
            prompt.len()
        )));
    }
    if prompt.starts_with('-') {
        return Err(bad(
            "prompt starts with '-', which claude would read as a flag: reword it",
        ));
    }
    Ok(())
}

/// `claude-vm --json [--network MODE] -- -p PROMPT --output-format stream-json --verbose
/// [--model M] ARGS [--resume ID]`: an argv, never a shell line.
pub fn session_argv(
    prompt: &str,
    model: Option<&str>,
    claude_args: &[String],
    network: Option<&str>,
    resume: Option<&str>,
) -> Vec<String> {
    let mut a: Vec<String> = ["--output-format", "stream-json", "--verbose"]
        .map(str::to_owned)
        .to_vec();
    if let Some(m) = model {
        a.extend(["--model".to_owned(), m.to_owned()]);
    }
    a.extend(claude_args.iter().cloned());
    if let Some(r) = resume {
        a.extend(["--resume".to_owned(), r.to_owned()]);
    }
    child::agent_argv(network, prompt, &a)
}

fn blank(id: String, kind: Kind, template: String, project: PathBuf) -> Record {
    Record {
        id,
        kind,
        template,
        project,
        prompt: String::new(),
        model: None,
        claude_args: Vec::new(),
        network: None,
        continues: None,
        started_at: store::now_ms(),
        ended_at: None,
        state: JobState::Starting,
        stop_requested: false,
        exit_status: None,
        owner_pid: None,
        vm: None,
        policy: None,
        warm: None,
        vm_deleted: None,
        claude_session_id: None,
        num_turns: None,
        total_cost_usd: None,
        result_subtype: None,
        snapshot_start: None,
        snapshot_end: None,
        snapshot_note: None,
        error: None,
        messages: 0,
    }
}

fn checked_session(body: StartBody, app: &App) -> Result<Record, Response> {
    check_prompt(&body.prompt)?;
    let dir = project_dir(app, &body.project)?;
    let model = body.model.filter(|m| !m.trim().is_empty());
    if let Some(m) = &model {
        if m.starts_with('-') || m.contains('\0') || m.len() > 200 {
            return Err(bad(format!("model {m:?} is not a model name")));
        }
    }
    child::check_claude_args(&body.claude_args).map_err(bad)?;
    if let Some(i) = body.claude_args.iter().position(|a| a.len() > ARG_MAX) {
        return Err(bad(format!(
            "claude_args[{i}] is too long (at most {ARG_MAX} bytes)"
        )));
    }
    let network = body.network.filter(|n| !n.trim().is_empty());
    if let Some(n) = &network {
        let ok = n.len() <= 64
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if !ok {
            return Err(bad(format!(
                "network {n:?} is not a policy name (letters, digits, '-', '_', '.', ':')"
            )));
        }
    }
    let mut r = blank(new_id()?, Kind::Session, body.project, dir);
    r.prompt = body.prompt;
    r.model = model;
    r.claude_args = body.claude_args;
    r.network = network;
    Ok(r)
}

async fn start(State(app): State<Shared>, body: Bytes) -> Response {
    let r = match parse::<StartBody>(&body).and_then(|b| checked_session(b, &app)) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let args = session_argv(
        &r.prompt,
        r.model.as_deref(),
        &r.claude_args,
        r.network.as_deref(),
        None,
    );
    launch(&app, r, args).await
}

async fn continue_session(
    State(app): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let before = match found(&app, &id) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let c: ContinueBody = match parse(&body) {
        Ok(c) => c,
        Err(e) => return e,
    };
    if let Err(e) = check_prompt(&c.prompt) {
        return e;
    }
    if before.kind != Kind::Session || before.is_live() {
        return error(
            StatusCode::CONFLICT,
            "only a finished session can be continued",
        );
    }
    let Some(sid) = before.claude_session_id.clone() else {
        return error(
            StatusCode::CONFLICT,
            "this session has no claude session id to resume (claude never started)",
        );
    };
    let dir = match project_dir(&app, &before.template) {
        Ok(d) => d,
        Err(e) => return e,
    };
    let mut r = match new_id() {
        Ok(n) => blank(n, Kind::Session, before.template.clone(), dir),
        Err(e) => return e,
    };
    r.prompt = c.prompt;
    r.model = before.model.clone();
    r.claude_args = before.claude_args.clone();
    r.network = before.network.clone();
    r.continues = Some(before.id.clone());
    let args = session_argv(
        &r.prompt,
        r.model.as_deref(),
        &r.claude_args,
        r.network.as_deref(),
        Some(&sid),
    );
    launch(&app, r, args).await
}

/// Records the job, snapshots the project (sessions), starts the child; answers 202.
async fn launch(app: &Shared, record: Record, args: Vec<String>) -> Response {
    if app.stopping.load(std::sync::atomic::Ordering::SeqCst) {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping");
    }
    let id = record.id.clone();
    let kind = record.kind;
    let dir = record.project.clone();
    app.store.insert(record);
    let a = app.clone();
    let started = tokio::task::spawn_blocking(move || {
        if kind == Kind::Session {
            let snap = review::snapshot(&dir);
            a.store.update(&id, |r| match snap {
                Ok(t) => r.snapshot_start = Some(t),
                Err(e) => r.snapshot_note = Some(e),
            });
        }
        let sink = Arc::new(store::JobSink {
            store: a.store.clone(),
            id: id.clone(),
            on_exit: Box::new(finished),
        });
        let opts = child::Options {
            children: a.children.clone(),
            linger: Some(std::time::Duration::from_secs(2)),
        };
        match child::spawn(&a.exe, &args, &dir, sink, opts) {
            Ok(pid) => {
                let r = a.store.update(&id, |r| {
                    r.owner_pid = Some(pid);
                    r.state = JobState::Running;
                });
                // Stopped while it was starting.
                if r.is_some_and(|r| r.stop_requested) {
                    a.children.terminate(pid);
                }
            }
            Err(e) => {
                a.store.update(&id, |r| {
                    r.state = JobState::Failed;
                    r.ended_at = Some(store::now_ms());
                    r.error = Some(format!("cannot start {}: {e}", a.exe.display()));
                });
            }
        }
        a.store.get(&id)
    })
    .await;
    match started {
        Ok(Some(r)) => {
            let mut resp = ok(json!(r));
            *resp.status_mut() = StatusCode::ACCEPTED;
            resp
        }
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the session could not be started",
        ),
    }
}

/// A child ended: its end snapshot (sessions), a note in its transcript, then its state
/// (an SSE reader ends its stream once the state says so: the note is sent before).
fn finished(store: &store::Store, id: &str, status: i32) {
    let Some(r) = store.get(id) else { return };
    let end = (r.kind == Kind::Session && r.snapshot_start.is_some())
        .then(|| review::snapshot(&r.project));
    let Some(r) = store.update(id, |r| {
        r.exit_status = Some(status);
        r.ended_at = Some(store::now_ms());
        match end {
            Some(Ok(t)) => r.snapshot_end = Some(t),
            Some(Err(e)) => r.snapshot_note = Some(e),
            None => {}
        }
    }) else {
        return;
    };
    let state = if r.stop_requested {
        JobState::Stopped
    } else {
        JobState::Finished
    };
    let vm = match (r.vm.as_deref(), r.vm_deleted) {
        (Some(vm), Some(true)) => format!("; its VM {vm} was deleted"),
        (Some(vm), _) => format!("; its VM {vm} was not reported deleted"),
        (None, _) => String::new(),
    };
    let (what, how) = match (r.kind, state) {
        (Kind::Rebuild, JobState::Stopped) => ("the rebuild", "was stopped"),
        (Kind::Rebuild, _) => ("the rebuild", "ended"),
        (_, JobState::Stopped) => ("the session", "was stopped"),
        _ => ("the session", "ended"),
    };
    let note = json!({"type": "server.ended", "state": state, "exit_status": status,
        "vm_deleted": r.vm_deleted,
        "message": format!("{what} {how} (exit status {status}){vm}")});
    store.push(id, "server", note.to_string());
    store.update(id, |r| r.state = state);
}

/// Asks a running job's child to end (once): SIGTERM, so it deletes its VM.
pub fn stop(app: &App, id: &str) -> Option<Record> {
    let mut signal = None;
    let r = app.store.update(id, |r| {
        if r.is_live() && !r.stop_requested {
            r.stop_requested = true;
            signal = r.owner_pid;
        }
    })?;
    if let Some(pid) = signal {
        app.children.terminate(pid);
    }
    Some(r)
}

async fn stop_session(State(app): State<Shared>, Path(id): Path<String>) -> Response {
    let r = match found(&app, &id) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if !r.is_live() {
        return error(StatusCode::CONFLICT, "this session has ended already");
    }
    match stop(&app, &id) {
        Some(r) => {
            let mut resp = ok(json!(r));
            *resp.status_mut() = StatusCode::ACCEPTED;
            resp
        }
        None => error(StatusCode::NOT_FOUND, "no such session"),
    }
}

/// Opens the session's project folder on the desktop (the record's, never a path from the
/// request).
async fn open_folder(State(app): State<Shared>, Path(id): Path<String>) -> Response {
    let r = match found(&app, &id) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if !r.project.is_dir() {
        return error(
            StatusCode::CONFLICT,
            format!("{} is not a folder any more", r.project.display()),
        );
    }
    match super::open_with_desktop(r.project.as_os_str()) {
        Ok(()) => ok(json!({"opened": r.project})),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn sessions(State(app): State<Shared>) -> Response {
    let records = app.store.records();
    let a = app.clone();
    let mine: Vec<u32> = records
        .iter()
        .filter(|r| r.is_live())
        .filter_map(|r| r.owner_pid)
        .collect();
    let others = tokio::task::spawn_blocking(move || elsewhere(&a, &mine))
        .await
        .unwrap_or_default();
    ok(json!({"sessions": records, "elsewhere": others}))
}

/// The live sessions claude-vm's journal knows that this server did not start (a terminal's
/// `claude-vm`, an MCP server's runs): shown, not stopped or reviewed from here.
fn elsewhere(app: &App, mine: &[u32]) -> Vec<Value> {
    use crate::names::{Ours, Role};
    crate::journal::Journal::new(&app.paths)
        .entries()
        .into_iter()
        .filter(|e| e.role == Role::Run && !mine.contains(&e.owner.pid))
        .filter(|e| e.owner_may_be_alive())
        .map(|e| {
            let warm = matches!(
                crate::names::parse(&e.instance),
                Some(Ours::Clone {
                    role: Role::Warm,
                    ..
                })
            );
            json!({
                "vm": e.instance,
                "template": e.template,
                "project": e.project,
                "started_at": e.started_at.saturating_mul(1000),
                "owner_pid": e.owner.pid,
                "warm": warm,
                "policy": e.policy,
            })
        })
        .collect()
}

async fn session(State(app): State<Shared>, Path(id): Path<String>) -> Response {
    match found(&app, &id) {
        Ok(r) => ok(json!(r)),
        Err(e) => e,
    }
}

async fn review_session(State(app): State<Shared>, Path(id): Path<String>) -> Response {
    let r = match found(&app, &id) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let a = app.clone();
    let answer = tokio::task::spawn_blocking(move || review_of(&a, &r)).await;
    match answer {
        Ok(v) => ok(v),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot review: {e}"),
        ),
    }
}

fn review_of(app: &App, r: &Record) -> Value {
    // A running session is compared with the working state now.
    let end = match (&r.snapshot_end, r.is_live()) {
        (Some(e), _) => Ok(e.clone()),
        (None, true) => review::snapshot(&r.project),
        (None, false) => Err(r
            .snapshot_note
            .clone()
            .unwrap_or_else(|| "no snapshot was taken at the end".into())),
    };
    let files = match (&r.snapshot_start, end) {
        (Some(s), Ok(e)) => review::diff(&r.project, s, &e).map_err(|e| e.to_string()),
        (None, _) => Err(r
            .snapshot_note
            .clone()
            .unwrap_or_else(|| "no snapshot was taken at the start".into())),
        (_, Err(e)) => Err(e),
    };
    let findings: Vec<Value> = app
        .store
        .messages_from(&r.id, 0)
        .map(|(m, _, _)| m)
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.contains("\"audit.finding\""))
        .filter_map(|m| serde_json::from_str::<Value>(&m).ok())
        .filter(|m| m["source"] == "claude-vm" && m["data"]["type"] == "audit.finding")
        .map(|m| m["data"].clone())
        .collect();
    let network = match r.vm.as_deref() {
        None => json!({"note": "no VM was started, so there is no network log"}),
        Some(vm) => match crate::net::log::read(&app.paths.data_dir.join("network"), Some(vm)) {
            Ok(read) if !read.records.is_empty() => json!({
                "hosts": crate::net::log::summarize(&read.records),
                "unreadable_lines": read.unreadable_lines,
            }),
            Ok(_) => {
                json!({"note": format!("no network log for {vm} (none was written for this session)")})
            }
            Err(e) => json!({"note": format!("the network log of {vm} cannot be read: {e}")}),
        },
    };
    let (files, files_note) = match files {
        Ok(f) => (json!(f), Value::Null),
        Err(e) => (json!([]), json!(e)),
    };
    json!({
        "id": r.id,
        "project": r.project,
        "live": r.is_live(),
        "files": files,
        "files_note": files_note,
        "audit_findings": findings,
        "network": network,
    })
}

type EventStream = std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>>;

fn sse(s: EventStream) -> Response {
    let mut r = Sse::new(s).keep_alive(KeepAlive::default()).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A job's messages from the first (or after `Last-Event-ID`), then live ones as they come;
/// a `record` event after each batch; an `end` event once it is over and all were sent.
async fn events(State(app): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Err(e) = found(&app, &id) {
        return e;
    }
    let from = header_str(&headers, header::HeaderName::from_static("last-event-id"))
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(0, |n| n + 1);
    struct S {
        app: Shared,
        id: String,
        next: usize,
        rx: Option<tokio::sync::watch::Receiver<u64>>,
        done: bool,
    }
    let s = S {
        app,
        id,
        next: from,
        rx: None,
        done: false,
    };
    let stream = stream::unfold(s, |mut s| async move {
        if s.done {
            return None;
        }
        if let Some(rx) = s.rx.as_mut() {
            // Woken by the next change (or the job's channel closing).
            let _ = rx.changed().await;
        }
        let (msgs, live, rx) = s.app.store.messages_from(&s.id, s.next)?;
        s.rx = Some(rx);
        let mut out: Vec<Result<Event, Infallible>> = Vec::new();
        for m in msgs {
            let seq = s.next;
            s.next += 1;
            out.push(Ok(Event::default()
                .event("message")
                .id(seq.to_string())
                .data(&*m)));
        }
        if let Some(r) = s.app.store.get(&s.id) {
            out.push(Ok(Event::default()
                .event("record")
                .data(json!(r).to_string())));
        }
        if !live {
            // Anything that arrived meanwhile was in `msgs`: messages_from read both at once.
            out.push(Ok(Event::default().event("end").data("{}")));
            s.done = true;
        }
        Some((stream::iter(out), s))
    })
    .flatten();
    sse(Box::pin(stream))
}

/// A `changed` event whenever any record changes (the page then reloads its lists).
async fn list_stream(State(app): State<Shared>) -> Response {
    let rx = app.store.changed.subscribe();
    let stream = stream::unfold((rx, true), |(mut rx, first)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        rx.borrow_and_update();
        Some((
            Ok(Event::default().event("changed").data("{}")),
            (rx, false),
        ))
    });
    sse(Box::pin(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_command_line_keeps_every_value_one_argument() {
        let p = "say \"hi\"\n'there' $(x) \u{e9}\u{1f600}";
        let a = session_argv(
            p,
            Some("opus"),
            &["--max-turns".into(), "3".into()],
            Some("strict"),
            Some("sid-1"),
        );
        assert_eq!(
            a,
            [
                "--json",
                "--network",
                "strict",
                "--",
                "-p",
                p,
                "--output-format",
                "stream-json",
                "--verbose",
                "--model",
                "opus",
                "--max-turns",
                "3",
                "--resume",
                "sid-1"
            ]
        );
        let a = session_argv("x", None, &[], None, None);
        assert_eq!(
            a,
            [
                "--json",
                "--",
                "-p",
                "x",
                "--output-format",
                "stream-json",
                "--verbose"
            ]
        );
    }

    #[test]
    fn ids_name_files_only_of_ours() {
        assert!(check_id("0001764633600000-0a1b2c3d").is_ok());
        for bad in ["", "..", "../x", "a/b", "ABC", "x.json", &"1".repeat(65)] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prompts_claude_would_misread_are_refused() {
        assert!(check_prompt("fix it").is_ok());
        for bad in ["", "  \n", "-v", "--help", "a\0b"] {
            assert!(check_prompt(bad).is_err(), "{bad:?}");
        }
    }
}
