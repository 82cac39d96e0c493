//! The proxy against real sockets, all on 127.0.0.1: test servers (plain, TLS with a test CA
//! from rcgen), clients that really try to get past it, and the log it leaves.

use super::log::{self, Record, Verdict};
use super::policy::{Mode, Rules};
use super::proxy::{Access, Config, Proxy, Resolver, SessionSpec};
use super::Credential;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::{self, pki_types::CertificateDer, pki_types::ServerName};

const WAIT: Duration = Duration::from_secs(10);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A test CA and the server configs it signs.
struct Ca {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "claude-vm test CA");
        let key = rcgen::KeyPair::generate().expect("key");
        Ca {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).expect("ca"),
        }
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der()).expect("root");
        roots
    }

    fn server(&self, name: &str) -> tokio_rustls::TlsAcceptor {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .expect("params")
            .signed_by(&key, &self.issuer)
            .expect("leaf");
        let key_der = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key_der.into())
            .expect("server config");
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    fn client(&self) -> tokio_rustls::TlsConnector {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(self.roots())
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// The names the proxy resolves in these tests: all of them to this machine's loopback.
fn resolver() -> Resolver {
    let lo: IpAddr = "127.0.0.1".parse().expect("ip");
    let lo6: IpAddr = "::1".parse().expect("ip");
    let mut table = HashMap::new();
    for n in [
        "allowed.test",
        "rebind.lab.test",
        "web.test",
        "api.test",
        "evil.lab.test",
        "other.test",
    ] {
        table.insert(n.to_string(), vec![lo]);
    }
    table.insert("rebind6.lab.test".into(), vec![lo6]);
    Resolver::Fixed(table)
}

fn rules(mode: Mode, allow: &[String], deny: &[&str], ports: &[u16]) -> Rules {
    let deny: Vec<String> = deny.iter().map(|s| s.to_string()).collect();
    Rules::new(mode, allow, &deny, ports).expect("rules")
}

struct World {
    proxy: Proxy,
    logs: tempfile::TempDir,
    ca: Ca,
}

impl World {
    fn new() -> World {
        let logs = tempfile::tempdir().expect("tempdir");
        let ca = Ca::new();
        let mut config = Config::new(logs.path().join("network"));
        config.resolver = resolver();
        config.upstream_roots = ca.roots();
        let proxy = Proxy::start(config).expect("proxy");
        World { proxy, logs, ca }
    }

    fn session(&self, name: &str, rules: Rules) -> Access {
        self.proxy
            .register(SessionSpec {
                name: name.into(),
                rules,
                anthropic: None,
            })
            .expect("register")
    }

    /// Stops the proxy (flushing its log) and returns the session's log.
    fn finish(self, session: &str) -> Vec<Record> {
        self.proxy.stop();
        let read = log::read(&self.logs.path().join("network"), Some(session)).expect("log");
        assert_eq!(read.unreadable_lines, 0);
        read.records
    }
}

fn basic(token: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("claude-vm:{token}"))
    )
}

/// Sends a request head to the proxy; returns the stream, the status and (unless 200) the rest.
async fn ask(port: u16, head: &str) -> (TcpStream, u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(head.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, s.read(&mut byte))
            .await
            .expect("in time")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        got.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&got).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    if status != 200 {
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut rest)).await;
        return (s, status, text + &String::from_utf8_lossy(&rest));
    }
    (s, status, text)
}

async fn connect_via(port: u16, target: &str, auth: Option<&str>) -> (TcpStream, u16, String) {
    let auth = auth
        .map(|a| format!("Proxy-Authorization: {a}\r\n"))
        .unwrap_or_default();
    ask(
        port,
        &format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{auth}\r\n"),
    )
    .await
}

/// A TLS echo server for `name`; counts completed handshakes.
async fn tls_echo(ca: &Ca, name: &str) -> (u16, Arc<AtomicUsize>) {
    let acceptor = ca.server(name);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counter = handshakes.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let (mut r, mut w) = tokio::io::split(tls);
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    let _ = w.shutdown().await;
                }
            });
        }
    });
    (port, handshakes)
}

async fn tcp_echo() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    port
}

/// Writes `data` and reads back as much, concurrently.
async fn echo_round<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static>(
    s: S,
    data: &[u8],
) -> Vec<u8> {
    let (mut r, mut w) = tokio::io::split(s);
    let payload = data.to_vec();
    let writer = tokio::spawn(async move {
        w.write_all(&payload).await.expect("write");
        w.flush().await.expect("flush");
        w
    });
    let mut back = vec![0u8; data.len()];
    tokio::time::timeout(WAIT, r.read_exact(&mut back))
        .await
        .expect("in time")
        .expect("read back");
    drop(writer.await);
    back
}

fn pattern_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn allowed_connect_is_byte_exact_for_tls_and_host_ports() {
    let world = World::new();
    let rt = runtime();
    let proxy_port = world.proxy.port();
    let (allow_port, raw_port) =
        rt.block_on(async { (tls_echo(&world.ca, "allowed.test").await, tcp_echo().await) });
    let (tls_port, handshakes) = allow_port;
    let access = world.session(
        "s1",
        rules(Mode::Allowlist, &["allowed.test".into()], &[], &[raw_port]),
    );
    let sent = pattern_bytes(300_000);
    rt.block_on(async {
        // TLS end to end: the proxy sees only ciphertext and forwards it untouched.
        let target = format!("allowed.test:{tls_port}");
        let (tcp, status, text) =
            connect_via(proxy_port, &target, Some(&basic(&access.token))).await;
        assert_eq!(status, 200, "{text}");
        let name = ServerName::try_from("allowed.test").expect("name");
        let tls = world
            .ca
            .client()
            .connect(name, tcp)
            .await
            .expect("TLS through the tunnel");
        assert_eq!(echo_round(tls, &sent).await, sent);
        assert_eq!(handshakes.load(Ordering::SeqCst), 1);

        // A host service named by host_ports: raw bytes, every value, both spellings.
        for target in [
            format!("host.lima.internal:{raw_port}"),
            format!("127.0.0.1:{raw_port}"),
        ] {
            let (tcp, status, text) = connect_via(
                proxy_port,
                &target,
                Some(&format!("Bearer {}", access.token)),
            )
            .await;
            assert_eq!(status, 200, "{target}: {text}");
            let all: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
            assert_eq!(echo_round(tcp, &all).await, all, "{target}");
        }
    });
    drop(rt);
    let records = world.finish("s1");
    let tls = records
        .iter()
        .find(|r| r.host == "allowed.test")
        .expect("tls line");
    assert_eq!(tls.decision, Verdict::Allowed);
    assert_eq!(tls.rule, "allow allowed.test");
    assert_eq!((tls.method.as_str(), tls.port), ("CONNECT", tls_port));
    assert_eq!(tls.address.as_deref(), Some("127.0.0.1"));
    assert!(
        tls.bytes_up > sent.len() as u64 && tls.bytes_down > sent.len() as u64,
        "{tls:?}"
    );
    let raw: Vec<&Record> = records.iter().filter(|r| r.port == raw_port).collect();
    assert_eq!(raw.len(), 2);
    for r in raw {
        assert_eq!(r.rule, format!("host_ports {raw_port}"));
        assert_eq!((r.bytes_up, r.bytes_down), (70_000, 70_000));
    }
}

#[test]
fn denied_names_get_a_403_that_names_the_rule_and_the_fix_and_a_denied_line() {
    let world = World::new();
    let rt = runtime();
    let port = world.proxy.port();
    let access = world.session(
        "s1",
        rules(
            Mode::Allowlist,
            &["*.lab.test".into()],
            &["evil.lab.test"],
            &[],
        ),
    );
    let auth = basic(&access.token);
    rt.block_on(async {
        let (_, status, text) = connect_via(port, "unlisted.example:443", Some(&auth)).await;
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("unlisted.example:443 is not allowed"), "{text}");
        assert!(text.contains("(not in allow)"), "{text}");
        assert!(text.contains("add it to [network] allow in .claude-vm.toml"), "{text}");
        assert!(text.contains("--allow unlisted.example"), "{text}");
        // Deny wins over the wildcard that allows it, for CONNECT and plain HTTP alike.
        let (_, status, text) = connect_via(port, "evil.lab.test:443", Some(&auth)).await;
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("(deny evil.lab.test)"), "{text}");
        let (_, status, text) = ask(port, &format!("GET http://EVIL.lab.test./x HTTP/1.1\r\nHost: evil.lab.test\r\nProxy-Authorization: {auth}\r\n\r\n")).await;
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("(deny evil.lab.test)"), "{text}");
        // Names that are not names never reach a resolver.
        for bad in ["127.1:443", "evil.lab.test@other.test:443", "evil.lab.test:0", "evil_test :443"] {
            let (_, status, text) = connect_via(port, bad, Some(&auth)).await;
            assert!(status == 400 || status == 403, "{bad}: {text}");
        }
    });
    drop(rt);
    let records = world.finish("s1");
    let denied: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r.decision == Verdict::Denied)
        .map(|r| (r.host.as_str(), r.rule.as_str()))
        .collect();
    assert_eq!(
        denied,
        [
            ("unlisted.example", "not in allow"),
            ("evil.lab.test", "deny evil.lab.test"),
            ("evil.lab.test", "deny evil.lab.test")
        ]
    );
    assert!(
        records.iter().all(|r| r.address.is_none()),
        "denied names are not resolved"
    );
    let summary = log::summarize(&records);
    assert_eq!(summary[0].host, "evil.lab.test");
    assert_eq!((summary[0].count, summary[0].denied), (2, 2));
}

#[test]
fn loopback_is_refused_by_every_name_and_address_unless_host_ports_names_the_port() {
    let world = World::new();
    let rt = runtime();
    let port = world.proxy.port();
    let svc = rt.block_on(tcp_echo());
    let closed = world.session(
        "closed",
        rules(Mode::Open, &["*.lab.test".into()], &[], &[]),
    );
    let opened = world.session("opened", rules(Mode::Allowlist, &[], &[], &[svc]));
    rt.block_on(async {
        let auth = basic(&closed.token);
        for target in [
            format!("rebind.lab.test:{svc}"),
            format!("rebind6.lab.test:{svc}"),
            format!("localhost:{svc}"),
            format!("host.lima.internal:{svc}"),
            format!("127.0.0.1:{svc}"),
            format!("127.0.0.2:{svc}"),
            format!("[::1]:{svc}"),
            format!("[::ffff:127.0.0.1]:{svc}"),
            format!("0.0.0.0:{svc}"),
            format!("[::]:{svc}"),
        ] {
            let (_, status, text) = connect_via(port, &target, Some(&auth)).await;
            assert_eq!(status, 403, "{target} must be refused under open: {text}");
            let (_, status, text) = ask(
                port,
                &format!("GET http://{target}/ HTTP/1.1\r\nProxy-Authorization: {auth}\r\n\r\n"),
            )
            .await;
            assert_eq!(status, 403, "plain http to {target}: {text}");
        }
        // The session whose host_ports names the port gets there, and only there.
        let auth = basic(&opened.token);
        let (tcp, status, text) =
            connect_via(port, &format!("host.lima.internal:{svc}"), Some(&auth)).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(echo_round(tcp, b"ping").await, b"ping");
        let (_, status, text) = connect_via(
            port,
            &format!("host.lima.internal:{}", svc.wrapping_add(1).max(1)),
            Some(&auth),
        )
        .await;
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("host_ports"), "{text}");
        // A rebinding name is not the host loopback, whatever its address.
        let (_, status, _) =
            connect_via(port, &format!("rebind.lab.test:{svc}"), Some(&auth)).await;
        assert_eq!(status, 403);
    });
    drop(rt);
    let records = world.finish("closed");
    let rebind = records
        .iter()
        .find(|r| r.host == "rebind.lab.test")
        .expect("rebind line");
    assert_eq!(rebind.decision, Verdict::Denied);
    assert_eq!(rebind.rule, "loopback address 127.0.0.1");
    assert_eq!(rebind.address.as_deref(), Some("127.0.0.1"));
    assert!(
        records.iter().all(|r| r.decision == Verdict::Denied),
        "{records:?}"
    );
}

#[test]
fn no_or_wrong_token_gets_407() {
    let world = World::new();
    let rt = runtime();
    let port = world.proxy.port();
    let access = world.session("s1", rules(Mode::Open, &[], &[], &[]));
    let gone = world.session("s2", rules(Mode::Open, &[], &[], &[]));
    assert!(world.proxy.unregister("s2"));
    let mut wrong = access.token.clone();
    wrong.replace_range(0..1, if wrong.starts_with('0') { "1" } else { "0" });
    rt.block_on(async {
        for auth in [
            None,
            Some(basic(&wrong)),
            Some(basic(&gone.token)),
            Some(format!(
                "Bearer {}",
                &access.token[..access.token.len() - 1]
            )),
            Some(format!("Bearer {}x", access.token)),
            Some(format!("Digest {}", access.token)),
            Some(access.placeholder.clone()),
        ] {
            let (_, status, text) = connect_via(port, "allowed.test:443", auth.as_deref()).await;
            assert_eq!(status, 407, "{auth:?}: {text}");
            assert!(
                text.contains("Proxy-Authenticate: Basic realm=\"claude-vm\""),
                "{text}"
            );
            let extra = auth
                .map(|a| format!("Proxy-Authorization: {a}\r\n"))
                .unwrap_or_default();
            let (_, status, _) = ask(
                port,
                &format!("GET http://allowed.test/ HTTP/1.1\r\n{extra}\r\n"),
            )
            .await;
            assert_eq!(status, 407);
        }
    });
    drop(rt);
    assert!(
        world.finish("s1").is_empty(),
        "unauthenticated requests are no session's"
    );
}

#[test]
fn a_tunnel_whose_client_hello_names_another_host_is_cut_before_the_server_sees_it() {
    let world = World::new();
    let rt = runtime();
    let port = world.proxy.port();
    let (tls_port, handshakes) = rt.block_on(tls_echo(&world.ca, "other.test"));
    let access = world.session(
        "s1",
        rules(Mode::Allowlist, &["allowed.test".into()], &[], &[]),
    );
    let auth = basic(&access.token);
    rt.block_on(async {
        // CONNECT to the allowed name, then TLS for another one.
        let (tcp, status, text) =
            connect_via(port, &format!("allowed.test:{tls_port}"), Some(&auth)).await;
        assert_eq!(status, 200, "{text}");
        let name = ServerName::try_from("other.test").expect("name");
        assert!(world.ca.client().connect(name, tcp).await.is_err());
        // Not TLS at all.
        let (mut tcp, status, _) =
            connect_via(port, &format!("allowed.test:{tls_port}"), Some(&auth)).await;
        assert_eq!(status, 200);
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: other.test\r\n\r\n")
            .await
            .expect("write");
        let mut buf = Vec::new();
        let n = tokio::time::timeout(WAIT, tcp.read_to_end(&mut buf))
            .await
            .expect("closed in time")
            .unwrap_or(0);
        assert_eq!(n, 0);
        // A ClientHello without a server name.
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(world.ca.roots())
            .with_no_client_auth();
        let mut config = config;
        config.enable_sni = false;
        let (tcp, status, _) =
            connect_via(port, &format!("allowed.test:{tls_port}"), Some(&auth)).await;
        assert_eq!(status, 200);
        let name = ServerName::try_from("allowed.test").expect("name");
        assert!(tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .is_err());
        tokio::time::sleep(Duration::from_millis(100)).await;
    });
    assert_eq!(
        handshakes.load(Ordering::SeqCst),
        0,
        "no handshake reached the server"
    );
    drop(rt);
    let rules: Vec<String> = world
        .finish("s1")
        .into_iter()
        .map(|r| {
            assert_eq!(r.decision, Verdict::Denied);
            assert_eq!(r.bytes_up, 0);
            r.rule
        })
        .collect();
    assert_eq!(rules.len(), 3, "{rules:?}");
    assert!(
        rules[0].starts_with("sni mismatch (other.test"),
        "{rules:?}"
    );
    assert!(rules[1].starts_with("not tls"), "{rules:?}");
    assert!(rules[2].starts_with("sni missing"), "{rules:?}");
}

/// A plain HTTP server that keeps every head it receives and answers `hello`.
async fn http_server(heads: Arc<Mutex<Vec<String>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = tcp.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&chunk[..n]);
                    if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                heads
                    .lock()
                    .expect("lock")
                    .push(String::from_utf8_lossy(&got).to_string());
                let _ = tcp
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                    )
                    .await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    port
}

#[test]
fn plain_http_is_forwarded_in_origin_form_without_the_proxy_credential() {
    let world = World::new();
    let rt = runtime();
    let port = world.proxy.port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let web = rt.block_on(http_server(heads.clone()));
    let access = world.session(
        "s1",
        rules(Mode::Allowlist, &[format!("web.test:{web}")], &[], &[]),
    );
    let auth = basic(&access.token);
    rt.block_on(async {
        let (mut s, status, text) = ask(port, &format!(
            "POST http://web.test:{web}/path?q=1 HTTP/1.1\r\nHost: spoofed.example\r\nProxy-Authorization: {auth}\r\nProxy-Connection: keep-alive\r\nContent-Length: 4\r\n\r\nbody"
        )).await;
        assert_eq!(status, 200, "{text}");
        let mut body = Vec::new();
        tokio::time::timeout(WAIT, s.read_to_end(&mut body)).await.expect("in time").expect("read");
        assert_eq!(body, b"hello");
    });
    drop(rt);
    let heads = heads.lock().expect("lock").clone();
    assert_eq!(heads.len(), 1);
    let head = &heads[0];
    assert!(head.starts_with("POST /path?q=1 HTTP/1.1\r\n"), "{head}");
    assert!(
        head.contains(&format!("Host: web.test:{web}\r\n")),
        "{head}"
    );
    assert!(!head.contains("spoofed"), "{head}");
    assert!(!head.to_lowercase().contains("proxy-"), "{head}");
    assert!(!head.contains(&access.token), "{head}");
    assert!(head.ends_with("\r\n\r\nbody"), "{head}");
    let records = world.finish("s1");
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(
        (r.method.as_str(), r.host.as_str(), r.port, r.decision),
        ("POST", "web.test", web, Verdict::Allowed)
    );
    assert_eq!(
        r.bytes_down,
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".len() as u64
    );
    assert_eq!(r.bytes_up, head.len() as u64);
}

/// An SSE upstream that sends one event, waits to be told, then sends the second; it keeps
/// the heads it received.
async fn sse_upstream(
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    heads: Arc<Mutex<Vec<String>>>,
    go: Arc<tokio::sync::Notify>,
) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (heads, go, acceptor) = (heads.clone(), go.clone(), acceptor.clone());
            tokio::spawn(async move {
                match acceptor {
                    Some(a) => {
                        if let Ok(tls) = a.accept(tcp).await {
                            sse_answer(tls, heads, go).await
                        }
                    }
                    None => sse_answer(tcp, heads, go).await,
                }
            });
        }
    });
    port
}

async fn sse_answer<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    heads: Arc<Mutex<Vec<String>>>,
    go: Arc<tokio::sync::Notify>,
) {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    heads
        .lock()
        .expect("lock")
        .push(String::from_utf8_lossy(&got).to_string());
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\nevent: one\ndata: 1\n\n").await;
    let _ = s.flush().await;
    go.notified().await;
    let _ = s.write_all(b"event: two\ndata: 2\n\n").await;
    let _ = s.shutdown().await;
}

/// Sends a Messages request on the route; returns the whole streamed answer, checking that
/// the first event arrived before the upstream was allowed to send the second.
async fn stream_messages(port: u16, request: String, go: &tokio::sync::Notify) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let first = async {
        while !String::from_utf8_lossy(&got).contains("data: 1\n\n") {
            let n = s.read(&mut chunk).await.expect("read");
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(WAIT, first)
        .await
        .expect("the first event streams before the second is sent");
    assert!(!String::from_utf8_lossy(&got).contains("data: 2"));
    go.notify_one();
    tokio::time::timeout(WAIT, s.read_to_end(&mut got))
        .await
        .expect("in time")
        .expect("read");
    String::from_utf8_lossy(&got).to_string()
}

fn messages(target: &str, headers: &str) -> String {
    format!("POST {target} HTTP/1.1\r\nHost: host.lima.internal\r\ncontent-type: application/json\r\n{headers}content-length: 2\r\n\r\n{{}}")
}

#[test]
fn the_anthropic_route_swaps_the_placeholder_for_the_real_key_and_streams() {
    let world = World::new();
    let rt = runtime();
    let port = world.proxy.port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let go = Arc::new(tokio::sync::Notify::new());
    let up = rt.block_on(sse_upstream(
        Some(world.ca.server("api.test")),
        heads.clone(),
        go.clone(),
    ));
    let key = "sk-ant-real-key-for-the-test";
    let register = |name: &str, cred: Credential, mode: Mode| {
        world
            .proxy
            .register(SessionSpec {
                name: name.into(),
                rules: rules(mode, &[], &[], &[]),
                anthropic: Some((format!("https://api.test:{up}/base/"), cred)),
            })
            .expect("register")
    };
    let api = register("s1", Credential::ApiKey(key.into()), Mode::Allowlist);
    let oauth = register("s2", Credential::Bearer(key.into()), Mode::Offline);
    let base = api.anthropic_base_url("host.lima.internal");
    assert_eq!(
        base,
        format!("http://host.lima.internal:{port}/anthropic/s1")
    );
    rt.block_on(async {
        let out = stream_messages(
            port,
            messages(
                "/anthropic/s1/v1/messages?beta=true",
                &format!("x-api-key: {}\r\n", api.placeholder),
            ),
            &go,
        )
        .await;
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(
            out.ends_with("event: one\ndata: 1\n\nevent: two\ndata: 2\n\n"),
            "{out}"
        );
        // The bearer kind, from an offline session, sent through the proxy in absolute form.
        let out = stream_messages(
            port,
            messages(
                &format!("http://host.lima.internal:{port}/anthropic/s2/v1/messages"),
                &format!(
                    "Authorization: Bearer {}\r\nProxy-Authorization: {}\r\n",
                    oauth.placeholder,
                    basic(&oauth.token)
                ),
            ),
            &go,
        )
        .await;
        assert!(out.ends_with("data: 2\n\n"), "{out}");
        // Refused: no credential, the real key itself, another session's placeholder, a
        // placeholder beside another value, an unknown session.
        for (target, header) in [
            ("/anthropic/s1/v1/messages", String::new()),
            ("/anthropic/s1/v1/messages", format!("x-api-key: {key}\r\n")),
            (
                "/anthropic/s1/v1/messages",
                format!("x-api-key: {}\r\n", oauth.placeholder),
            ),
            (
                "/anthropic/s1/v1/messages",
                format!(
                    "x-api-key: {}\r\nAuthorization: Bearer other\r\n",
                    api.placeholder
                ),
            ),
            (
                "/anthropic/nobody/v1/messages",
                format!("x-api-key: {}\r\n", api.placeholder),
            ),
        ] {
            let (_, status, text) = ask(port, &messages(target, &header)).await;
            assert_eq!(status, 401, "{header}: {text}");
        }
    });
    drop(rt);
    let heads = heads.lock().expect("lock").clone();
    assert_eq!(
        heads.len(),
        2,
        "refused requests never reached the upstream"
    );
    assert!(
        heads[0].starts_with("POST /base/v1/messages?beta=true HTTP/1.1\r\n"),
        "{}",
        heads[0]
    );
    assert!(
        heads[0].contains(&format!("x-api-key: {key}\r\n")),
        "{}",
        heads[0]
    );
    assert!(
        heads[0].contains(&format!("Host: api.test:{up}\r\n")),
        "{}",
        heads[0]
    );
    assert!(
        heads[1].starts_with("POST /base/v1/messages HTTP/1.1\r\n"),
        "{}",
        heads[1]
    );
    assert!(
        heads[1].contains(&format!("Authorization: Bearer {key}\r\n")),
        "{}",
        heads[1]
    );
    for h in &heads {
        assert!(!h.contains("placeholder"), "{h}");
        assert!(!h.contains(&oauth.token), "{h}");
        assert!(!h.to_lowercase().contains("proxy-authorization"), "{h}");
    }
    let records = world.finish("s1");
    assert_eq!(records[0].rule, "anthropic route");
    assert_eq!(
        (
            records[0].host.as_str(),
            records[0].port,
            records[0].decision
        ),
        ("api.test", up, Verdict::Allowed)
    );
    assert!(
        records[1..].iter().all(|r| r.decision == Verdict::Denied),
        "{records:?}"
    );
}

#[test]
fn offline_allows_nothing_but_the_anthropic_route_over_plain_http_on_loopback() {
    let world = World::new();
    let rt = runtime();
    let port = world.proxy.port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let go = Arc::new(tokio::sync::Notify::new());
    let (up, web_heads) = (
        rt.block_on(sse_upstream(None, heads.clone(), go.clone())),
        Arc::new(Mutex::new(Vec::new())),
    );
    let web = rt.block_on(http_server(web_heads.clone()));
    let access = world
        .proxy
        .register(SessionSpec {
            name: "s1".into(),
            rules: rules(
                Mode::Offline,
                &["allowed.test".into(), format!("web.test:{web}")],
                &[],
                &[web],
            ),
            anthropic: Some((
                format!("http://127.0.0.1:{up}"),
                Credential::ApiKey("sk-real".into()),
            )),
        })
        .expect("register");
    let auth = basic(&access.token);
    rt.block_on(async {
        for target in [
            "allowed.test:443".to_string(),
            format!("web.test:{web}"),
            format!("host.lima.internal:{web}"),
        ] {
            let (_, status, text) = connect_via(port, &target, Some(&auth)).await;
            assert_eq!(status, 403, "{target}: {text}");
            assert!(text.contains("(policy offline)"), "{text}");
        }
        let (_, status, _) = ask(
            port,
            &format!("GET http://web.test:{web}/ HTTP/1.1\r\nProxy-Authorization: {auth}\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 403);
        let out = stream_messages(
            port,
            messages(
                "/anthropic/s1/v1/messages",
                &format!("x-api-key: {}\r\n", access.placeholder),
            ),
            &go,
        )
        .await;
        assert!(out.ends_with("data: 2\n\n"), "{out}");
    });
    drop(rt);
    assert!(web_heads.lock().expect("lock").is_empty());
    assert!(heads.lock().expect("lock")[0].contains("x-api-key: sk-real\r\n"));
    let records = world.finish("s1");
    let allowed: Vec<&Record> = records
        .iter()
        .filter(|r| r.decision == Verdict::Allowed)
        .collect();
    assert_eq!(allowed.len(), 1);
    assert_eq!(allowed[0].rule, "anthropic route");
    assert_eq!(records.len(), 5);
}

#[test]
fn registration_refuses_bad_names_duplicates_and_clear_text_keys() {
    let world = World::new();
    let spec = |name: &str, url: Option<&str>| SessionSpec {
        name: name.into(),
        rules: rules(Mode::Allowlist, &[], &[], &[]),
        anthropic: url.map(|u| (u.to_string(), Credential::ApiKey("k".into()))),
    };
    let a = world.proxy.register(spec("s1", None)).expect("first");
    let b = world.proxy.register(spec("s3", None)).expect("second");
    assert_ne!(a.token, b.token);
    assert_ne!(a.placeholder, b.placeholder);
    assert_eq!(a.token.len(), 64);
    assert!(a
        .proxy_url("host.lima.internal")
        .starts_with("http://claude-vm:"));
    assert!(world
        .proxy
        .register(spec("s1", None))
        .unwrap_err()
        .contains("already registered"));
    for bad in ["", "../x", ".hidden", "a/b", "a b"] {
        assert!(
            world
                .proxy
                .register(spec(bad, None))
                .unwrap_err()
                .contains("not a session name"),
            "{bad:?}"
        );
    }
    let err = world
        .proxy
        .register(spec("s2", Some("http://gw.example")))
        .unwrap_err();
    assert!(err.contains("use https://"), "{err}");
    world.proxy.stop();
}

#[test]
fn a_tunnel_still_open_when_the_proxy_stops_is_logged_with_its_bytes() {
    let world = World::new();
    let rt = runtime();
    let port = world.proxy.port();
    let svc = rt.block_on(tcp_echo());
    let access = world.session("s1", rules(Mode::Allowlist, &[], &[], &[svc]));
    let held = rt.block_on(async {
        let target = format!("host.lima.internal:{svc}");
        let (mut tcp, status, text) = connect_via(port, &target, Some(&basic(&access.token))).await;
        assert_eq!(status, 200, "{text}");
        tcp.write_all(b"ping").await.expect("write");
        let mut back = [0u8; 4];
        tokio::time::timeout(WAIT, tcp.read_exact(&mut back))
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(&back, b"ping");
        tcp
    });
    let records = world.finish("s1");
    drop(held);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!((records[0].bytes_up, records[0].bytes_down), (4, 4));
    assert_eq!(records[0].decision, Verdict::Allowed);
}

/// Addresses an attacker writes instead of a name: private ranges, the metadata services,
/// the slirp host's address, IPv6 forms that carry them, and numeric names in disguise.
/// None gets past the proxy even under `open`; none of them is ever connected to.
#[test]
fn ip_literals_of_special_ranges_are_refused_under_every_policy() {
    let world = World::new();
    let rt = runtime();
    let port = world.proxy.port();
    let open = world.session("open", rules(Mode::Open, &[], &[], &[]));
    let listed = world.session(
        "listed",
        rules(Mode::Allowlist, &["*.lab.test".into()], &[], &[]),
    );
    rt.block_on(async {
        for access in [&open, &listed] {
            let auth = basic(&access.token);
            for target in [
                "10.0.0.1:443",
                "172.16.0.1:443",
                "192.168.5.2:22",
                "192.168.5.3:53",
                "169.254.169.254:80",
                "100.100.100.200:80",
                "[fd00:ec2::254]:80",
                "[fe80::1]:443",
                "[::ffff:10.0.0.1]:443",
                "[::ffff:169.254.169.254]:80",
                "[64:ff9b::a9fe:a9fe]:80",
                "[2002:a9fe:a9fe::1]:80",
                "[::10.0.0.1]:443",
                "0.0.0.0:443",
                "255.255.255.255:443",
            ] {
                let (_, status, text) = connect_via(port, target, Some(&auth)).await;
                assert_eq!(status, 403, "CONNECT {target}: {text}");
                let (_, status, text) = ask(
                    port,
                    &format!(
                        "GET http://{target}/ HTTP/1.1\r\nProxy-Authorization: {auth}\r\n\r\n"
                    ),
                )
                .await;
                assert_eq!(status, 403, "GET {target}: {text}");
            }
            // Numbers that a resolver would read as 127.0.0.1 are not host names at all.
            for target in ["127.1:80", "2130706433:80", "017700000001:80"] {
                let (_, status, text) = connect_via(port, target, Some(&auth)).await;
                assert!(status == 400 || status == 403, "CONNECT {target}: {text}");
            }
        }
    });
    drop(rt);
    let open_log = world.finish("open");
    assert!(open_log.iter().all(|r| r.decision == Verdict::Denied));
    let meta = open_log
        .iter()
        .find(|r| r.host == "169.254.169.254")
        .expect("logged");
    assert_eq!(meta.rule, "link-local address 169.254.169.254");
}

/// `host:port` as an attacker bends it: a port the pattern does not name, no port, port 0,
/// out of range, two ports, a user part.
#[test]
fn a_port_the_rule_does_not_name_is_refused_and_bent_authorities_are_bad_requests() {
    let world = World::new();
    let rt = runtime();
    let port = world.proxy.port();
    let access = world.session(
        "s1",
        rules(Mode::Allowlist, &["allowed.test:443".into()], &[], &[]),
    );
    let auth = basic(&access.token);
    rt.block_on(async {
        for target in ["allowed.test:8443", "allowed.test:22", "allowed.test:80"] {
            let (_, status, text) = connect_via(port, target, Some(&auth)).await;
            assert_eq!(status, 403, "{target}: {text}");
            assert!(text.contains("not in allow"), "{text}");
        }
        for target in [
            "allowed.test",
            "allowed.test:0",
            "allowed.test:65536",
            "allowed.test:443:80",
            "allowed.test:+443",
            "user@allowed.test:443",
            "[::1",
        ] {
            let (_, status, text) = connect_via(port, target, Some(&auth)).await;
            assert_eq!(status, 400, "{target}: {text}");
        }
        for url in [
            "http://allowed.test:443@evil.test/",
            "http://allowed.test:80.evil.test/",
            "http://evil.test#@allowed.test:443/",
        ] {
            let (_, status, text) = ask(
                port,
                &format!("GET {url} HTTP/1.1\r\nProxy-Authorization: {auth}\r\n\r\n"),
            )
            .await;
            assert!(status == 400 || status == 403, "{url}: {text}");
        }
    });
}

/// An upstream that keeps the connection open whatever the request says, and records every
/// request head it reads: what a lenient virtual-hosting server does.
async fn keep_alive_server(heads: Arc<Mutex<Vec<String>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&got[..end]).to_string();
                        got.drain(..end + 4);
                        // A chunked body's end looks like a head's to this naive server.
                        if !head
                            .lines()
                            .next()
                            .is_some_and(|l| l.ends_with(" HTTP/1.1"))
                        {
                            continue;
                        }
                        heads.lock().expect("lock").push(head);
                        let _ = tcp
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                            .await;
                    }
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    port
}

/// One checked request per connection, even towards an upstream that would read more: a
/// pipelined second request (another Host, the same address), a body that hides one, or
/// framing two parsers could read differently never reach it.
#[test]
fn a_second_or_smuggled_request_never_reaches_the_upstream() {
    let world = World::new();
    let rt = runtime();
    let port = world.proxy.port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let web = rt.block_on(keep_alive_server(heads.clone()));
    let access = world.session(
        "s1",
        rules(Mode::Allowlist, &[format!("web.test:{web}")], &[], &[]),
    );
    let auth = basic(&access.token);
    let hidden = "GET /second HTTP/1.1\r\nHost: evil.test\r\n\r\n";
    rt.block_on(async {
        let send = |text: String| async move {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
            s.write_all(text.as_bytes()).await.expect("write");
            let mut back = vec![0u8; 4096];
            let mut got = Vec::new();
            // The answer to the first request (the upstream keeps the connection open).
            while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
                match tokio::time::timeout(WAIT, s.read(&mut back)).await {
                    Ok(Ok(n)) if n > 0 => got.extend_from_slice(&back[..n]),
                    _ => break,
                }
            }
            // Time for anything else to reach the upstream, if it could.
            tokio::time::sleep(Duration::from_millis(300)).await;
            String::from_utf8_lossy(&got).to_string()
        };
        let first = format!("GET http://web.test:{web}/a HTTP/1.1\r\nProxy-Authorization: {auth}");
        for (text, status) in [
            (format!("{first}\r\n\r\n{hidden}"), "200"),
            (format!("{first}\r\nContent-Length: 3\r\n\r\nabc{hidden}"), "200"),
            (
                format!("{first}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n{hidden}"),
                "200",
            ),
            (
                format!("{first}\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n{hidden}"),
                "400",
            ),
            (
                format!("{first}\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc{hidden}"),
                "400",
            ),
        ] {
            let answer = send(text.clone()).await;
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status}")),
                "{text:?}: {answer}"
            );
        }
    });
    drop(rt);
    let heads = heads.lock().expect("lock").clone();
    assert_eq!(heads.len(), 3, "{heads:#?}");
    assert!(heads.iter().all(|h| h.starts_with("GET /a ")), "{heads:#?}");
    assert!(!heads.iter().any(|h| h.contains("evil.test")), "{heads:#?}");
}

/// A huge head gets 431; a client that sends its head (or, in a tunnel, its ClientHello) a
/// byte at a time is cut when its time is up, and meanwhile others are served.
#[test]
fn huge_heads_get_431_and_slow_clients_are_cut() {
    let logs = tempfile::tempdir().expect("tempdir");
    let mut config = Config::new(logs.path().join("network"));
    config.resolver = resolver();
    config.head_time = Duration::from_secs(1);
    config.hello_time = Duration::from_secs(1);
    let proxy = Proxy::start(config).expect("proxy");
    let port = proxy.port();
    let access = proxy
        .register(SessionSpec {
            name: "s1".into(),
            rules: rules(Mode::Allowlist, &["allowed.test".into()], &[], &[]),
            anthropic: None,
        })
        .expect("register");
    let auth = basic(&access.token);
    let rt = runtime();
    let tls_port = rt.block_on(tcp_echo());
    rt.block_on(async {
        let filler = format!("X-Filler: {}\r\n", "a".repeat(1000));
        let huge = format!(
            "CONNECT allowed.test:443 HTTP/1.1\r\nProxy-Authorization: {auth}\r\n{}\r\n",
            filler.repeat(70)
        );
        let (_, status, text) = ask(port, &huge).await;
        assert_eq!(status, 431, "{text}");

        // Slowloris: one byte of a head every 200 ms.
        let started = std::time::Instant::now();
        let mut slow = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        let cut = async {
            for b in b"GET http://allowed.test/ HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
                if slow.write_all(&[*b]).await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                let mut probe = [0u8; 1];
                if let Ok(Ok(0) | Err(_)) =
                    tokio::time::timeout(Duration::from_millis(1), slow.read(&mut probe)).await
                {
                    return true;
                }
            }
            false
        };
        // Meanwhile another client is served at once.
        let other = async {
            let (_, status, _) =
                connect_via(port, &format!("host.lima.internal:{tls_port}"), Some(&auth)).await;
            status
        };
        let (was_cut, other) = tokio::join!(cut, other);
        assert!(was_cut, "the slow client was never cut");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(other, 403, "served while the slow one waited");

        // A tunnel that never sends its ClientHello.
        let (mut tcp, status, text) =
            connect_via(port, &format!("allowed.test:{tls_port}"), Some(&auth)).await;
        assert_eq!(status, 200, "{text}");
        let mut rest = Vec::new();
        let ended = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest)).await;
        assert!(ended.is_ok(), "the silent tunnel was not cut");
    });
    drop(rt);
    proxy.stop();
    let read = log::read(&logs.path().join("network"), Some("s1")).expect("log");
    assert!(
        read.records
            .iter()
            .any(|r| r.rule == "bad tls (no ClientHello in time)"),
        "{:?}",
        read.records
    );
}
