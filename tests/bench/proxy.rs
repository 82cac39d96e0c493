//! The network proxy's benchmark (issue 12 item 7): `cargo bench --bench proxy`.
//!
//! Everything on 127.0.0.1: a keep-alive HTTP server and a bulk sender, reached directly and
//! through the proxy (a CONNECT tunnel to a host_ports service, the same copy path as TLS,
//! and plain HTTP forwarding). Every loop is bounded in count.

#[allow(dead_code, unused_imports)]
#[path = "../../src/net/mod.rs"]
mod net;
// What `net` takes from the core layer (`crate::netpattern`), at this crate's root too.
#[allow(dead_code)]
#[path = "../../src/netpattern.rs"]
mod netpattern;
#[allow(dead_code)]
mod proxy_stats;

use net::proxy::Resolver;
use net::{Config, Mode, Proxy, Rules, SessionSpec};
use proxy_stats::{
    kib_each, median, micros, per_second, percent_of, percentile, rss_kib, table, Row,
};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LATENCY_REQUESTS: usize = 2000;
const RPS_CONNECTIONS: usize = 8;
const RPS_REQUESTS_EACH: usize = 500;
const NEW_CONNECTIONS: usize = 300;
const BULK: u64 = 100 * 1024 * 1024;
const BULK_RUNS: usize = 7;
const SESSIONS: u64 = 1000;
/// Link speeds (MB/s) for the paced transfers: 1 and 5 Gbit/s.
const PACED_MB_S: [f64; 2] = [125.0, 625.0];
const TUNNELS: u64 = 200;
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        println!("proxy: a benchmark, not a test; run it with `cargo bench --bench proxy`");
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            println!("\nproxy: a goal was missed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("proxy: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn rss() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    rss_kib(&status).ok_or_else(|| "no VmRSS in /proc/self/status".into())
}

fn run() -> Result<bool, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let logs = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (http_port, bulk_port, paced) = rt.block_on(async {
        let mut paced = Vec::new();
        for rate in PACED_MB_S {
            paced.push((rate, bulk_server(Some(rate * 1e6)).await));
        }
        (http_server().await, bulk_server(None).await, paced)
    });
    let mut host_ports = vec![http_port, bulk_port];
    host_ports.extend(paced.iter().map(|(_, p)| *p));
    let mut config = Config::new(logs.path().join("network"));
    // The forwarded name, resolved to the loopback server (an exact allow names it).
    config.resolver = Resolver::Fixed(
        [(
            "web.example".to_string(),
            vec!["127.0.0.1".parse().map_err(|_| "ip")?],
        )]
        .into(),
    );
    let proxy = Proxy::start(config).map_err(|e| e.to_string())?;
    let rules = Rules::new(
        Mode::Allowlist,
        &[format!("web.example:{http_port}")],
        &[],
        &host_ports,
    )?;
    let access = proxy.register(SessionSpec {
        name: "bench".into(),
        rules: rules.clone(),
        anthropic: None,
    })?;
    let auth = format!("Bearer {}", access.token);
    let pp = proxy.port();
    println!("proxy benchmark: 127.0.0.1 only; the proxy runs on its own 2-thread runtime");

    let result = rt.block_on(async {
        // Latency on one keep-alive connection, direct and inside a tunnel.
        let direct = TcpStream::connect(("127.0.0.1", http_port))
            .await
            .map_err(|e| e.to_string())?;
        let tunneled = tunnel(pp, &auth, http_port).await?;
        let (d_lat, p_lat) = (sequential(direct).await?, sequential(tunneled).await?);

        // Requests per second, several keep-alive connections at once.
        // Each measured in turn, the best of three, so neither side gets the warm-up.
        let (mut d_rps, mut p_rps, mut d_new, mut p_new) = (0f64, 0f64, 0f64, 0f64);
        for _ in 0..3 {
            d_rps = d_rps.max(concurrent(None, http_port).await?);
            p_rps = p_rps.max(concurrent(Some((pp, auth.clone())), http_port).await?);
            // A new connection per request: direct vs the proxy's plain HTTP forwarding.
            d_new = d_new.max(new_connections(None, http_port).await?);
            p_new = p_new.max(new_connections(Some((pp, auth.clone())), http_port).await?);
        }

        // Bulk: 100 MB transfers, direct and through the proxy in turn (so both see the same
        // machine), the median of each, with the CPU time of each (this whole process:
        // sender, proxy, receiver). Same server, same reader, one warm-up of each first.
        let (mut d_runs, mut p_runs, mut d_cpus, mut p_cpus) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for run in 0..=BULK_RUNS {
            let direct = TcpStream::connect(("127.0.0.1", bulk_port))
                .await
                .map_err(|e| e.to_string())?;
            let _ = direct.set_nodelay(true);
            let c = cpu_seconds();
            let d = drain(direct).await?;
            let dc = cpu_seconds() - c;
            let proxied = tunnel(pp, &auth, bulk_port).await?;
            let c = cpu_seconds();
            let p = drain(proxied).await?;
            let pc = cpu_seconds() - c;
            if run > 0 {
                d_runs.push(d);
                p_runs.push(p);
                d_cpus.push(dc);
                p_cpus.push(pc);
            }
        }
        let (d_bulk, p_bulk, d_cpu, p_cpu) = (
            median(&d_runs),
            median(&p_runs),
            median(&d_cpus),
            median(&p_cpus),
        );
        let bulk_spread = (d_runs.clone(), p_runs.clone());
        // At link speeds, paced by the sender: is the proxy ever the bottleneck?
        let mut at_rate = Vec::new();
        for (rate, port) in &paced {
            let direct = TcpStream::connect(("127.0.0.1", *port))
                .await
                .map_err(|e| e.to_string())?;
            let d = drain(direct).await?;
            let p = drain(tunnel(pp, &auth, *port).await?).await?;
            at_rate.push((*rate, d, p));
        }
        Ok::<_, String>((
            d_lat,
            p_lat,
            d_rps,
            p_rps,
            d_new,
            p_new,
            (d_bulk, p_bulk, d_cpu, p_cpu),
            at_rate,
            bulk_spread,
        ))
    })?;
    let (d_lat, p_lat, d_rps, p_rps, d_new, p_new, bulk, at_rate, spread) = result;
    let mbs = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{:.0}", x / 1e6))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "100 MB runs (MB/s), direct: {}; proxy: {}",
        mbs(&spread.0),
        mbs(&spread.1)
    );
    let (d_bulk, p_bulk, d_cpu, p_cpu) = bulk;

    // Memory: registered sessions, then open tunnels (each its own session).
    let before = rss()?;
    let mut tokens = Vec::new();
    for i in 0..SESSIONS {
        let a = proxy.register(SessionSpec {
            name: format!("m{i}"),
            rules: rules.clone(),
            anthropic: None,
        })?;
        tokens.push(a.token);
    }
    let after_sessions = rss()?;
    let held = rt.block_on(async {
        let mut held = Vec::new();
        for t in tokens.iter().take(TUNNELS as usize) {
            let mut s = tunnel(pp, &format!("Bearer {t}"), http_port).await?;
            // One request each, so that both copy directions are running.
            one_request(&mut s).await?;
            held.push(s);
        }
        Ok::<_, String>(held)
    })?;
    std::thread::sleep(Duration::from_millis(200));
    let after_tunnels = rss()?;
    drop(held);

    let added_median = median(&p_lat) - median(&d_lat);
    let bulk_pct = percent_of(p_bulk, d_bulk);
    let rows = vec![
        Row {
            what: "latency per request, median (keep-alive)".into(),
            direct: micros(median(&d_lat)),
            proxy: micros(median(&p_lat)),
            delta: format!("+{}", micros(added_median)),
            goal: "< 1 ms added".into(),
            met: Some(added_median < 1000.0),
        },
        Row {
            what: "latency per request, p99".into(),
            direct: micros(percentile(&d_lat, 99.0)),
            proxy: micros(percentile(&p_lat, 99.0)),
            delta: format!(
                "+{}",
                micros(percentile(&p_lat, 99.0) - percentile(&d_lat, 99.0))
            ),
            goal: String::new(),
            met: None,
        },
        Row {
            what: format!("requests/s ({RPS_CONNECTIONS} keep-alive connections, best of 3)"),
            direct: format!("{d_rps:.0}"),
            proxy: format!("{p_rps:.0}"),
            delta: format!("{:.0}%", percent_of(p_rps, d_rps)),
            goal: String::new(),
            met: None,
        },
        Row {
            what: "requests/s (new connection each, plain HTTP, best of 3)".into(),
            direct: format!("{d_new:.0}"),
            proxy: format!("{p_new:.0}"),
            delta: format!("{:.0}%", percent_of(p_new, d_new)),
            goal: String::new(),
            met: None,
        },
        Row {
            what: format!("100 MB transfer (median of {BULK_RUNS})"),
            direct: format!("{:.0} MB/s", d_bulk / 1e6),
            proxy: format!("{:.0} MB/s", p_bulk / 1e6),
            delta: format!("{bulk_pct:.0}%"),
            goal: ">= 90% of direct".into(),
            met: Some(bulk_pct >= 90.0),
        },
        Row {
            what: format!("CPU time for 100 MB (whole process, median of {BULK_RUNS})"),
            direct: format!("{:.0} ms", d_cpu * 1e3),
            proxy: format!("{:.0} ms", p_cpu * 1e3),
            delta: format!("{:.0}%", percent_of(p_cpu, d_cpu)),
            goal: String::new(),
            met: None,
        },
        Row {
            what: format!("memory per registered session ({SESSIONS})"),
            direct: String::new(),
            proxy: format!("{:.1} KiB", kib_each(before, after_sessions, SESSIONS)),
            delta: String::new(),
            goal: String::new(),
            met: None,
        },
        Row {
            what: format!("memory per open tunnel ({TUNNELS})"),
            direct: String::new(),
            proxy: format!(
                "{:.1} KiB",
                kib_each(after_sessions, after_tunnels, TUNNELS)
            ),
            delta: String::new(),
            goal: String::new(),
            met: None,
        },
    ];
    let mut rows = rows;
    for (i, (rate, d, p)) in at_rate.iter().enumerate() {
        rows.insert(
            6 + i,
            Row {
                what: format!("100 MB, sender paced to {:.0} Gbit/s", rate * 8.0 / 1000.0),
                direct: format!("{:.0} MB/s", d / 1e6),
                proxy: format!("{:.0} MB/s", p / 1e6),
                delta: format!("{:.0}%", percent_of(*p, *d)),
                goal: ">= 90% of direct".into(),
                met: Some(percent_of(*p, *d) >= 90.0),
            },
        );
    }
    print!("{}", table(&rows));
    proxy.stop();
    Ok(rows.iter().all(|r| r.met != Some(false)))
}

/// A keep-alive server: every request head gets `ok`.
async fn http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut have = Vec::new();
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    have.extend_from_slice(&buf[..n]);
                    while let Some(end) = have.windows(4).position(|w| w == b"\r\n\r\n") {
                        have.drain(..end + 4);
                        if s.write_all(RESPONSE).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

/// User plus system CPU time of this process, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Sends BULK bytes to whoever connects (at `rate` bytes/s, if given), then closes.
async fn bulk_server(rate: Option<f64>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let chunk = vec![0x5au8; 256 * 1024];
                let mut left = BULK;
                let start = Instant::now();
                while left > 0 {
                    let n = left.min(chunk.len() as u64) as usize;
                    if s.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    left -= n as u64;
                    if let Some(rate) = rate {
                        let due = Duration::from_secs_f64((BULK - left) as f64 / rate);
                        if let Some(wait) = due.checked_sub(start.elapsed()) {
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

async fn tunnel(proxy_port: u16, auth: &str, port: u16) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(("127.0.0.1", proxy_port))
        .await
        .map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    let req = format!(
        "CONNECT host.lima.internal:{port} HTTP/1.1\r\nProxy-Authorization: {auth}\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let head = read_head(&mut s).await?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("CONNECT refused: {head}"));
    }
    Ok(s)
}

async fn read_head(s: &mut TcpStream) -> Result<String, String> {
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut b).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed".into());
        }
        got.push(b[0]);
    }
    Ok(String::from_utf8_lossy(&got).to_string())
}

async fn one_request(s: &mut TcpStream) -> Result<(), String> {
    s.write_all(b"GET / HTTP/1.1\r\nHost: web.example\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut back = [0u8; RESPONSE.len()];
    s.read_exact(&mut back).await.map_err(|e| e.to_string())?;
    if back != RESPONSE {
        return Err("unexpected response".into());
    }
    Ok(())
}

/// Per-request round trips in microseconds.
async fn sequential(mut s: TcpStream) -> Result<Vec<f64>, String> {
    for _ in 0..100 {
        one_request(&mut s).await?; // warm-up
    }
    let mut out = Vec::with_capacity(LATENCY_REQUESTS);
    for _ in 0..LATENCY_REQUESTS {
        let t = Instant::now();
        one_request(&mut s).await?;
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(out)
}

async fn concurrent(proxy: Option<(u16, String)>, port: u16) -> Result<f64, String> {
    let mut conns = Vec::new();
    for _ in 0..RPS_CONNECTIONS {
        conns.push(match &proxy {
            Some((pp, auth)) => tunnel(*pp, auth, port).await?,
            None => TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| e.to_string())?,
        });
    }
    let t = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                for _ in 0..RPS_REQUESTS_EACH {
                    one_request(&mut s).await?;
                }
                Ok::<_, String>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(per_second(
        (RPS_CONNECTIONS * RPS_REQUESTS_EACH) as u64,
        t.elapsed().as_secs_f64(),
    ))
}

async fn new_connections(proxy: Option<(u16, String)>, port: u16) -> Result<f64, String> {
    let t = Instant::now();
    for _ in 0..NEW_CONNECTIONS {
        let mut s = match &proxy {
            Some((pp, _)) => TcpStream::connect(("127.0.0.1", *pp)).await,
            None => TcpStream::connect(("127.0.0.1", port)).await,
        }
        .map_err(|e| e.to_string())?;
        let req = match &proxy {
            Some((_, auth)) => format!(
                "GET http://web.example:{port}/ HTTP/1.1\r\nProxy-Authorization: {auth}\r\n\r\n"
            ),
            None => "GET / HTTP/1.1\r\nHost: web.example\r\nConnection: close\r\n\r\n".to_string(),
        };
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut back = [0u8; RESPONSE.len()];
        s.read_exact(&mut back).await.map_err(|e| e.to_string())?;
    }
    Ok(per_second(
        NEW_CONNECTIONS as u64,
        t.elapsed().as_secs_f64(),
    ))
}

/// Reads to the end; bytes per second.
async fn drain(mut s: TcpStream) -> Result<f64, String> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let t = Instant::now();
    loop {
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    if total != BULK {
        return Err(format!("bulk transfer got {total} bytes, not {BULK}"));
    }
    Ok(per_second(total, t.elapsed().as_secs_f64()))
}
