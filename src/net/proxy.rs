//! The proxy itself: one tokio runtime of its own, one listener on 127.0.0.1, any number of
//! sessions, each with its own token and rules. CONNECT tunnels (the TLS passes through, its
//! server name checked), plain HTTP forwarding, and the Anthropic route.

use super::anthropic::{self, Credential, Upstream};
use super::body;
use super::http::{self, Head, HeadError};
use super::log::{self, Logger, Record, Verdict};
use super::policy::{self, Decision, Host, Rules};
use super::sni::{self, Hello};
use super::splice;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::{self, pki_types::ServerName, RootCertStore};

const HEAD_TIME: Duration = Duration::from_secs(30);
const HELLO_TIME: Duration = Duration::from_secs(15);
const CONNECT_TIME: Duration = Duration::from_secs(15);
const MAX_CONNECTIONS: usize = 2048;
/// Copy buffers: large enough that a bulk transfer is not bound by system calls.
const BUFFER: usize = 64 * 1024;

/// How names are resolved: the host's resolver, or a fixed table (tests, benchmarks).
#[derive(Debug, Clone)]
pub enum Resolver {
    System,
    // Made by the tests and the benchmark only.
    #[cfg_attr(not(test), allow(dead_code))]
    Fixed(HashMap<String, Vec<IpAddr>>),
}

impl Resolver {
    async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<IpAddr>> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let addrs: Vec<IpAddr> = match self {
            Resolver::System => tokio::net::lookup_host((host, port))
                .await?
                .map(|a| a.ip())
                .collect(),
            Resolver::Fixed(table) => table.get(host).cloned().unwrap_or_default(),
        };
        if addrs.is_empty() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no address"));
        }
        Ok(addrs)
    }
}

pub struct Config {
    /// Where `<session>.jsonl` logs go (created 0700).
    pub log_dir: PathBuf,
    pub resolver: Resolver,
    /// The roots the Anthropic route trusts upstream (the web's, unless a test says otherwise).
    pub upstream_roots: RootCertStore,
    /// How long a client may take to send its request head, and then a tunnel its
    /// ClientHello (a slow client holds a connection no longer).
    pub head_time: Duration,
    pub hello_time: Duration,
}

impl Config {
    pub fn new(log_dir: PathBuf) -> Config {
        Config {
            log_dir,
            resolver: Resolver::System,
            upstream_roots: RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
            head_time: HEAD_TIME,
            hello_time: HELLO_TIME,
        }
    }
}

/// What a session is registered with.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    /// The session (clone) name; also its log file's name.
    pub name: String,
    pub rules: Rules,
    /// The real credential and where it goes; None when nothing was forwarded.
    pub anthropic: Option<(String, Credential)>,
}

/// What the guest is given for a session: secrets of no use outside this proxy.
#[derive(Clone)]
pub struct Access {
    pub token: String,
    /// Stands in for the real credential in the guest's environment.
    pub placeholder: String,
    port: u16,
    name: String,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token and the placeholder stay out of debug output.
        write!(
            f,
            "Access {{ session: {:?}, port: {} }}",
            self.name, self.port
        )
    }
}

impl Access {
    /// `HTTPS_PROXY`/`HTTP_PROXY` for the guest (Basic credentials in the URL, which curl,
    /// git, npm and pip all send as `Proxy-Authorization`).
    pub fn proxy_url(&self, guest_host: &str) -> String {
        format!("http://claude-vm:{}@{guest_host}:{}", self.token, self.port)
    }

    /// `ANTHROPIC_BASE_URL` for the guest.
    pub fn anthropic_base_url(&self, guest_host: &str) -> String {
        format!(
            "http://{guest_host}:{}{}{}",
            self.port,
            anthropic::ROUTE,
            self.name
        )
    }
}

struct Session {
    name: String,
    token: Vec<u8>,
    placeholder: Vec<u8>,
    rules: Rules,
    anthropic: Option<(Upstream, Credential)>,
}

struct Shared {
    sessions: RwLock<Vec<Arc<Session>>>,
    logger: Logger,
    resolver: Resolver,
    tls: tokio_rustls::TlsConnector,
    port: u16,
    head_time: Duration,
    hello_time: Duration,
}

/// A running proxy. Dropping it without `stop` also stops it, but may lose the last lines.
pub struct Proxy {
    addr: SocketAddr,
    shared: Option<Arc<Shared>>,
    runtime: Option<tokio::runtime::Runtime>,
    flusher: Option<log::Flusher>,
}

impl Proxy {
    /// Binds 127.0.0.1 on an ephemeral port and starts serving. Lima's user-mode network
    /// maps the guest's host.lima.internal to the host's 127.0.0.1, so that is enough.
    pub fn start(config: Config) -> io::Result<Proxy> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("net-proxy")
            .enable_all()
            .build()?;
        let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (logger, flusher) = Logger::start(&config.log_dir)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_root_certificates(config.upstream_roots)
            .with_no_client_auth();
        // The route speaks HTTP/1.1 heads, so that is all it offers.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let shared = Arc::new(Shared {
            sessions: RwLock::new(Vec::new()),
            logger,
            resolver: config.resolver,
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            port: addr.port(),
            head_time: config.head_time,
            hello_time: config.hello_time,
        });
        let listener = {
            let _guard = runtime.enter();
            TcpListener::from_std(std_listener)?
        };
        let accept_shared = shared.clone();
        // A bound on open connections, so that a runaway guest cannot exhaust the host's
        // descriptors; past it, new connections wait in the listen queue.
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        runtime.spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        let shared = accept_shared.clone();
                        tokio::spawn(async move {
                            serve(shared, stream).await;
                            drop(slot);
                        });
                    }
                    // Out of descriptors and the like: wait rather than spin.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        Ok(Proxy {
            addr,
            shared: Some(shared),
            runtime: Some(runtime),
            flusher: Some(flusher),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Adds a session; its name must be new and fit a file name.
    pub fn register(&self, spec: SessionSpec) -> Result<Access, String> {
        if log::file_name(&spec.name).is_none() {
            return Err(format!(
                "{:?} is not a session name (letters, digits, '-', '_', '.')",
                spec.name
            ));
        }
        let anthropic = match spec.anthropic {
            Some((url, cred)) => Some((Upstream::parse(&url)?, cred)),
            None => None,
        };
        let token = random_hex(32).map_err(|e| format!("cannot read random bytes: {e}"))?;
        let placeholder = format!(
            "claude-vm-placeholder-{}",
            random_hex(24).map_err(|e| format!("cannot read random bytes: {e}"))?
        );
        let shared = self.shared.as_ref().ok_or("the proxy is stopped")?;
        let mut sessions = shared
            .sessions
            .write()
            .map_err(|_| "the proxy's session table is poisoned")?;
        if sessions.iter().any(|s| s.name == spec.name) {
            return Err(format!("session {:?} is already registered", spec.name));
        }
        sessions.push(Arc::new(Session {
            name: spec.name.clone(),
            token: token.clone().into_bytes(),
            placeholder: placeholder.clone().into_bytes(),
            rules: spec.rules,
            anthropic,
        }));
        Ok(Access {
            token,
            placeholder,
            port: self.addr.port(),
            name: spec.name,
        })
    }

    /// Removes a session: its token and placeholder stop working at once.
    pub fn unregister(&self, name: &str) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        let Ok(mut sessions) = shared.sessions.write() else {
            return false;
        };
        let before = sessions.len();
        sessions.retain(|s| s.name != name);
        before != sessions.len()
    }

    /// Stops serving and waits until every log line is on disk.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
        self.shared = None;
        if let Some(f) = self.flusher.take() {
            f.finish();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn random_hex(bytes: usize) -> io::Result<String> {
    let mut buf = vec![0u8; bytes];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Equal-length secrets compared without an early exit.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl Shared {
    fn sessions(&self) -> Vec<Arc<Session>> {
        self.sessions.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// The session whose token this is; every token is compared, whichever matches.
    fn by_token(&self, presented: &[u8]) -> Option<Arc<Session>> {
        let mut found = None;
        for s in self.sessions() {
            if ct_eq(&s.token, presented) && found.is_none() {
                found = Some(s);
            }
        }
        found
    }

    fn by_name(&self, name: &str) -> Option<Arc<Session>> {
        self.sessions().into_iter().find(|s| s.name == name)
    }
}

/// The token in `Proxy-Authorization: Basic base64(user:token)` or `Bearer token`.
fn proxy_token(head: &Head) -> Option<Vec<u8>> {
    use base64::Engine;
    if head.count("proxy-authorization") != 1 {
        return None;
    }
    let value = head.header("proxy-authorization")?.trim_ascii();
    let (scheme, rest) = value.split_at(value.iter().position(|b| *b == b' ')?);
    let rest = rest.trim_ascii();
    if scheme.eq_ignore_ascii_case(b"bearer") {
        return Some(rest.to_vec());
    }
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .ok()?;
    let pass = match decoded.iter().position(|b| *b == b':') {
        Some(i) => decoded[i + 1..].to_vec(),
        None => decoded,
    };
    Some(pass)
}

/// One request's log line, filled in as it goes; written when it is dropped, so that a
/// connection cut by the proxy's stop is logged too, with the bytes counted so far.
struct Entry {
    logger: Logger,
    session: String,
    method: String,
    host: String,
    port: u16,
    address: Option<IpAddr>,
    rule: String,
    started: Instant,
    /// None until decided: nothing is logged for a request that never got that far.
    verdict: Option<Verdict>,
    up: AtomicU64,
    down: AtomicU64,
}

impl Entry {
    fn new(
        shared: &Shared,
        session: &str,
        method: &str,
        host: String,
        port: u16,
        started: Instant,
    ) -> Entry {
        Entry {
            logger: shared.logger.clone(),
            session: session.to_string(),
            method: method.to_string(),
            host,
            port,
            address: None,
            rule: String::new(),
            started,
            verdict: None,
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let Some(decision) = self.verdict else {
            return;
        };
        self.logger.log(Record {
            time: log::now_rfc3339(),
            session: std::mem::take(&mut self.session),
            method: std::mem::take(&mut self.method),
            host: std::mem::take(&mut self.host),
            port: self.port,
            address: self.address.map(|a| a.to_string()),
            decision,
            rule: std::mem::take(&mut self.rule),
            bytes_up: self.up.load(Ordering::Relaxed),
            bytes_down: self.down.load(Ordering::Relaxed),
            duration_ms: self.started.elapsed().as_millis() as u64,
        });
    }
}

async fn reply(client: &mut TcpStream, bytes: Vec<u8>) {
    let _ = client.write_all(&bytes).await;
    let _ = client.shutdown().await;
}

async fn serve(shared: Arc<Shared>, mut client: TcpStream) {
    let started = Instant::now();
    let (head, rest) = match http::read_head(&mut client, shared.head_time).await {
        Ok(h) => h,
        Err(HeadError::Gone) => return,
        Err(HeadError::TooLarge) => {
            return reply(
                &mut client,
                http::response(
                    431,
                    "Request Header Fields Too Large",
                    &[],
                    "claude-vm: request head too large\n",
                ),
            )
            .await
        }
        Err(HeadError::Malformed) => {
            return reply(
                &mut client,
                http::response(
                    400,
                    "Bad Request",
                    &[],
                    "claude-vm: not an HTTP/1.1 request\n",
                ),
            )
            .await
        }
    };
    // The route first: it authenticates by the placeholder, not by a proxy token.
    if let Some(path) = route_path(&head, shared.port) {
        return anthropic_route(&shared, client, head, rest, &path, started).await;
    }
    let Some(session) = proxy_token(&head).and_then(|t| shared.by_token(&t)) else {
        let bytes = http::response(
            407,
            "Proxy Authentication Required",
            &[("Proxy-Authenticate", "Basic realm=\"claude-vm\"")],
            "claude-vm: this proxy serves claude-vm sessions only; a session's token is required\n",
        );
        return reply(&mut client, bytes).await;
    };
    if head.method.eq_ignore_ascii_case("CONNECT") {
        connect(&shared, &session, client, head, rest, started).await
    } else {
        forward(&shared, &session, client, head, rest, started).await
    }
}

/// The route's path when this request is for it: origin-form `/anthropic/...`, or an
/// absolute-form request to the proxy itself (a client that sent it through the proxy).
fn route_path(head: &Head, own_port: u16) -> Option<String> {
    if head.target.starts_with(anthropic::ROUTE) {
        return Some(head.target.clone());
    }
    let (authority, path) = http::split_absolute(&head.target)?;
    let (host, port) = http::split_authority(authority, Some(80))?;
    let host = policy::parse_host(host).ok()?;
    let to_self = port == own_port && policy::is_host_loopback(&host);
    (to_self && path.starts_with(anthropic::ROUTE)).then_some(path)
}

fn denied_body(host: &str, port: u16, denial: &policy::Denial) -> String {
    format!(
        "claude-vm: {host}:{port} is not allowed for this session ({}).\nTo allow it, {}.\n",
        denial.rule, denial.fix
    )
}

/// Decides, resolves, checks the addresses and connects; on refusal answers and logs.
async fn open_egress(
    shared: &Shared,
    session: &Session,
    client: &mut TcpStream,
    entry: &mut Entry,
    host: &Host,
) -> Option<TcpStream> {
    let deny = |entry: &mut Entry, denial: policy::Denial| {
        entry.rule = denial.rule.clone();
        entry.verdict = Some(Verdict::Denied);
        http::response(
            403,
            "Forbidden",
            &[],
            &denied_body(&entry.host, entry.port, &denial),
        )
    };
    match session.rules.decide_name(host, entry.port) {
        Decision::Allowed(rule) => entry.rule = rule,
        Decision::Denied(d) => {
            let bytes = deny(entry, d);
            reply(client, bytes).await;
            return None;
        }
    }
    let addrs = match host {
        Host::Ip(ip) => vec![*ip],
        // The guest's name for the host; on the host it is the loopback.
        Host::Name(n) if n == "host.lima.internal" => vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        Host::Name(n) => match shared.resolver.resolve(n, entry.port).await {
            Ok(a) => a,
            Err(e) => {
                entry.rule = format!("{} (unresolved)", entry.rule);
                entry.verdict = Some(Verdict::Denied);
                let body = format!("claude-vm: cannot resolve {}: {e}\n", entry.host);
                reply(client, http::response(502, "Bad Gateway", &[], &body)).await;
                return None;
            }
        },
    };
    // Every address must pass: a name that also resolves to loopback is refused outright.
    if let Err((addr, d)) = session.rules.decide_addresses(host, entry.port, &addrs) {
        entry.address = Some(addr);
        let bytes = deny(entry, d);
        reply(client, bytes).await;
        return None;
    }
    // Connect to the addresses that were checked, never to the name again.
    let mut last_err = None;
    for addr in addrs {
        entry.address = Some(addr);
        match tokio::time::timeout(CONNECT_TIME, TcpStream::connect((addr, entry.port))).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Some(s);
            }
            Ok(Err(e)) => last_err = Some(e.to_string()),
            Err(_) => last_err = Some("timed out".into()),
        }
    }
    entry.verdict = Some(Verdict::Allowed);
    let body = format!(
        "claude-vm: cannot connect to {}:{}: {}\n",
        entry.host,
        entry.port,
        last_err.unwrap_or_default()
    );
    reply(client, http::response(502, "Bad Gateway", &[], &body)).await;
    None
}

fn bad_request(what: &str) -> Vec<u8> {
    http::response(400, "Bad Request", &[], &format!("claude-vm: {what}\n"))
}

async fn connect(
    shared: &Shared,
    session: &Session,
    mut client: TcpStream,
    head: Head,
    rest: Vec<u8>,
    started: Instant,
) {
    let parsed = http::split_authority(&head.target, None)
        .and_then(|(h, p)| policy::parse_host(h).ok().map(|h| (h, p)));
    let Some((host, port)) = parsed else {
        return reply(&mut client, bad_request("CONNECT needs host:port")).await;
    };
    let mut entry = Entry::new(
        shared,
        &session.name,
        "CONNECT",
        host_text(&host),
        port,
        started,
    );
    let Some(mut upstream) = open_egress(shared, session, &mut client, &mut entry, &host).await
    else {
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    // A host service named by host_ports may speak anything; everything else must be TLS
    // to the name it asked for.
    let mut first = rest;
    if !policy::is_host_loopback(&host) {
        let hello = read_hello(&mut client, &mut first, shared.hello_time).await;
        if let Err(why) = sni_matches(&host, &hello) {
            entry.rule = why;
            entry.verdict = Some(Verdict::Denied);
            let _ = client.shutdown().await;
            return;
        }
    }
    entry.verdict = Some(Verdict::Allowed);
    tunnel(&mut client, &mut upstream, &first, &entry).await;
}

fn host_text(host: &Host) -> String {
    match host {
        Host::Name(n) => n.clone(),
        Host::Ip(ip) => ip.to_string(),
    }
}

async fn read_hello(client: &mut TcpStream, buf: &mut Vec<u8>, limit: Duration) -> Hello {
    let read = async {
        loop {
            let verdict = sni::parse(buf);
            if verdict != Hello::NeedMore {
                return verdict;
            }
            if buf.len() > sni::MAX_HELLO + 1024 {
                return Hello::Malformed("the ClientHello is too large");
            }
            let mut chunk = [0u8; 4096];
            match client.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    return Hello::Malformed("the client closed before its ClientHello")
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .unwrap_or(Hello::Malformed("no ClientHello in time"))
}

/// The logged rule when the tunnel's first bytes do not match its CONNECT.
fn sni_matches(host: &Host, hello: &Hello) -> Result<(), String> {
    match (hello, host) {
        (Hello::Sni(Some(sni)), Host::Name(name)) if sni == name => Ok(()),
        (Hello::Sni(None), Host::Ip(_)) => Ok(()),
        (Hello::Sni(Some(sni)), Host::Ip(ip)) if policy::parse_host(sni) == Ok(Host::Ip(*ip)) => {
            Ok(())
        }
        (Hello::Sni(Some(sni)), _) => Err(format!(
            "sni mismatch ({} is not the CONNECT host)",
            printable(sni)
        )),
        (Hello::Sni(None), _) => Err("sni missing (a ClientHello without a server name)".into()),
        (Hello::NotTls, _) => Err("not tls (a tunnel must start with a TLS ClientHello)".into()),
        (Hello::Malformed(why), _) => Err(format!("bad tls ({why})")),
        (Hello::NeedMore, _) => Err("bad tls (incomplete ClientHello)".into()),
    }
}

/// A guest-chosen name, reduced to host-name characters before it is logged.
fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
        .take(253)
        .collect()
}

async fn forward(
    shared: &Shared,
    session: &Session,
    mut client: TcpStream,
    mut head: Head,
    rest: Vec<u8>,
    started: Instant,
) {
    let Some((authority, path)) = http::split_absolute(&head.target) else {
        return reply(
            &mut client,
            bad_request(
                "a proxy request needs an absolute http:// URL (https goes through CONNECT)",
            ),
        )
        .await;
    };
    let parsed = http::split_authority(authority, Some(80))
        .and_then(|(h, p)| policy::parse_host(h).ok().map(|h| (h, p)));
    let Some((host, port)) = parsed else {
        return reply(&mut client, bad_request("not a host[:port] in the URL")).await;
    };
    // One request per connection, and the upstream must see where it ends as we do.
    let framing = match body::framing(&head) {
        Ok(f) => f,
        Err(why) => return reply(&mut client, bad_request(why)).await,
    };
    let authority = authority.to_string();
    let method = printable(&head.method);
    let mut entry = Entry::new(
        shared,
        &session.name,
        &method,
        host_text(&host),
        port,
        started,
    );
    let Some(mut upstream) = open_egress(shared, session, &mut client, &mut entry, &host).await
    else {
        return;
    };
    head.target = path;
    head.prepare_for_upstream();
    head.set("Host", authority.as_bytes());
    entry.verdict = Some(Verdict::Allowed);
    forward_one(
        &mut client,
        &mut upstream,
        &head.to_bytes(),
        rest,
        framing,
        &entry,
    )
    .await;
}

/// The checked request (head, then its body as framed, nothing after it) upstream; the
/// response back until the upstream ends it.
async fn forward_one(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    head: &[u8],
    rest: Vec<u8>,
    framing: body::Framing,
    entry: &Entry,
) {
    if upstream.write_all(head).await.is_err() {
        return;
    }
    entry.up.fetch_add(head.len() as u64, Ordering::Relaxed);
    let (mut cr, cw) = client.split();
    let (ur, mut uw) = upstream.split();
    let request = body::forward(framing, rest, &mut cr, &mut uw, &entry.up);
    let response = splice::copy(ur.as_ref(), cw.as_ref(), &entry.down);
    tokio::pin!(request, response);
    tokio::select! {
        // The response is complete: whatever the client still sends goes nowhere.
        () = &mut response => {}
        sent = &mut request => {
            if sent.is_ok() {
                response.await;
            }
        }
    }
}

async fn anthropic_route(
    shared: &Shared,
    mut client: TcpStream,
    head: Head,
    rest: Vec<u8>,
    path: &str,
    started: Instant,
) {
    let unauthorized = || {
        http::response(
            401,
            "Unauthorized",
            &[],
            "claude-vm: the Anthropic route needs this session's placeholder credential\n",
        )
    };
    let Some((name, upstream_path)) = anthropic::split_route(path) else {
        return reply(&mut client, unauthorized()).await;
    };
    let session = shared.by_name(name);
    let Some((session, (upstream, cred))) = session
        .as_ref()
        .and_then(|s| s.anthropic.as_ref().map(|a| (s, a)))
    else {
        return reply(&mut client, unauthorized()).await;
    };
    let method = printable(&head.method);
    let mut entry = Entry::new(
        shared,
        &session.name,
        &method,
        upstream.host.clone(),
        upstream.port,
        started,
    );
    entry.rule = "anthropic route".into();
    // Every credential the guest sent must be the placeholder, and there must be one.
    let presented = anthropic::presented(&head);
    let ok = !presented.is_empty()
        && presented
            .iter()
            .fold(true, |ok, p| ct_eq(p, &session.placeholder) & ok);
    if !ok {
        entry.rule = "anthropic route: not the session's placeholder".into();
        entry.verdict = Some(Verdict::Denied);
        return reply(&mut client, unauthorized()).await;
    }
    let out = anthropic::upstream_head(head, upstream, &upstream_path, cred);
    let mut first = out.to_bytes();
    first.extend_from_slice(&rest);
    let bad_gateway = |why: String| {
        http::response(
            502,
            "Bad Gateway",
            &[],
            &format!(
                "claude-vm: the Anthropic upstream {}: {why}\n",
                upstream.authority()
            ),
        )
    };
    let addrs = match shared.resolver.resolve(&upstream.host, upstream.port).await {
        Ok(a) => a,
        Err(e) => {
            entry.verdict = Some(Verdict::Allowed);
            return reply(&mut client, bad_gateway(format!("cannot resolve: {e}"))).await;
        }
    };
    let mut tcp = None;
    for addr in addrs {
        entry.address = Some(addr);
        if let Ok(Ok(s)) =
            tokio::time::timeout(CONNECT_TIME, TcpStream::connect((addr, upstream.port))).await
        {
            let _ = s.set_nodelay(true);
            tcp = Some(s);
            break;
        }
    }
    let Some(tcp) = tcp else {
        entry.verdict = Some(Verdict::Allowed);
        return reply(&mut client, bad_gateway("cannot connect".into())).await;
    };
    entry.verdict = Some(Verdict::Allowed);
    if upstream.tls {
        let name = match ServerName::try_from(upstream.host.clone()) {
            Ok(n) => n,
            Err(e) => return reply(&mut client, bad_gateway(e.to_string())).await,
        };
        let mut tls = match tokio::time::timeout(CONNECT_TIME, shared.tls.connect(name, tcp)).await
        {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return reply(&mut client, bad_gateway(format!("TLS: {e}"))).await,
            Err(_) => return reply(&mut client, bad_gateway("TLS timed out".into())).await,
        };
        send_then_pump(&mut client, &mut tls, &first, &entry).await
    } else {
        let mut tcp = tcp;
        tunnel(&mut client, &mut tcp, &first, &entry).await
    }
}

/// TCP to TCP: sends what was already read, then lets the kernel move the rest.
async fn tunnel(client: &mut TcpStream, upstream: &mut TcpStream, first: &[u8], entry: &Entry) {
    if upstream.write_all(first).await.is_err() {
        return;
    }
    entry.up.fetch_add(first.len() as u64, Ordering::Relaxed);
    splice::pump(client, upstream, &entry.up, &entry.down).await;
}

/// Sends what was already read, then copies both ways; the entry counts the bytes.
async fn send_then_pump<U>(client: &mut TcpStream, upstream: &mut U, first: &[u8], entry: &Entry)
where
    U: AsyncRead + AsyncWrite + Unpin,
{
    if upstream.write_all(first).await.is_err() || upstream.flush().await.is_err() {
        return;
    }
    entry.up.fetch_add(first.len() as u64, Ordering::Relaxed);
    let (mut cr, mut cw) = client.split();
    let (mut ur, mut uw) = tokio::io::split(upstream);
    tokio::join!(
        copy_counted(&mut cr, &mut uw, &entry.up),
        copy_counted(&mut ur, &mut cw, &entry.down)
    );
}

/// One direction until EOF (then a half-close, as TCP has it) or an error.
async fn copy_counted<R, W>(r: &mut R, w: &mut W, count: &AtomicU64)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if w.write_all(&buf[..n]).await.is_err() || w.flush().await.is_err() {
            break;
        }
        count.fetch_add(n as u64, Ordering::Relaxed);
    }
    let _ = w.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(!ct_eq(b"", b"a"));
    }

    #[test]
    fn proxy_tokens_from_basic_and_bearer() {
        use base64::Engine;
        let head = |v: &str| Head {
            method: "CONNECT".into(),
            target: "a:443".into(),
            headers: vec![("Proxy-Authorization".into(), v.as_bytes().to_vec())],
        };
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            proxy_token(&head(&format!("Basic {}", b64("claude-vm:tok")))),
            Some(b"tok".to_vec())
        );
        assert_eq!(
            proxy_token(&head(&format!("basic {}", b64("tok")))),
            Some(b"tok".to_vec())
        );
        assert_eq!(proxy_token(&head("Bearer tok")), Some(b"tok".to_vec()));
        assert_eq!(proxy_token(&head("Digest tok")), None);
        assert_eq!(proxy_token(&head("Basic !!!")), None);
        assert_eq!(proxy_token(&head("tok")), None);
        let mut two = head("Bearer tok");
        two.headers
            .push(("proxy-authorization".into(), b"Bearer other".to_vec()));
        assert_eq!(proxy_token(&two), None, "two credentials are ambiguous");
    }

    #[test]
    fn sni_must_name_the_connect_host() {
        let name = Host::Name("a.example".into());
        let ip = Host::Ip("1.2.3.4".parse().unwrap());
        assert!(sni_matches(&name, &Hello::Sni(Some("a.example".into()))).is_ok());
        for bad in [
            Hello::Sni(Some("b.example".into())),
            Hello::Sni(Some("a.example.evil".into())),
            Hello::Sni(None),
            Hello::NotTls,
            Hello::Malformed("x"),
        ] {
            assert!(sni_matches(&name, &bad).is_err(), "{bad:?}");
        }
        assert!(sni_matches(&ip, &Hello::Sni(None)).is_ok());
        assert!(sni_matches(&ip, &Hello::Sni(Some("1.2.3.4".into()))).is_ok());
        assert!(sni_matches(&ip, &Hello::Sni(Some("a.example".into()))).is_err());
        assert_eq!(printable("evil\u{1b}[2J.example\n"), "evil2J.example");
    }
}
