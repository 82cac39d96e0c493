//! A releases API on 127.0.0.1, as GitHub serves it to self_update: release objects at
//! `/repos/OWNER/NAME/releases/latest` and `/releases/tags/TAG`, assets (and their `.sha256`)
//! at the `url` each asset names. Every request is recorded; a route can be held back until
//! the test releases it.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const REPO: &str = "acme/claude-vm";

#[derive(Default)]
struct Shared {
    routes: Mutex<HashMap<String, (u16, Vec<u8>)>>,
    requests: Mutex<Vec<String>>,
    /// Paths whose answer waits until `release_held`.
    held: Mutex<Vec<String>>,
    gate: (Mutex<bool>, Condvar),
}

pub struct ReleaseServer {
    pub base: String,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
}

impl ReleaseServer {
    pub fn start() -> ReleaseServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&shared), Arc::clone(&stop));
        thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = Arc::clone(&s);
                thread::spawn(move || serve(conn, &s));
            }
        });
        ReleaseServer { base, shared, stop }
    }

    pub fn route(&self, path: &str, status: u16, body: impl Into<Vec<u8>>) {
        self.shared
            .routes
            .lock()
            .unwrap()
            .insert(path.to_owned(), (status, body.into()));
    }

    pub fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn hold(&self, path: &str) {
        self.shared.held.lock().unwrap().push(path.to_owned());
    }

    pub fn release_held(&self) {
        let (lock, cv) = &self.shared.gate;
        *lock.lock().unwrap() = true;
        cv.notify_all();
    }

    /// Publishes release `tag` with the given assets (name, bytes) under `/releases/tags/TAG`,
    /// and as the latest release when `latest`.
    pub fn publish(&self, tag: &str, assets: &[(String, Vec<u8>)], latest: bool) {
        let listed: Vec<Value> = assets
            .iter()
            .enumerate()
            .map(|(i, (name, _))| {
                json!({
                    "id": i,
                    "name": name,
                    "url": format!("{}/assets/{tag}/{name}", self.base),
                    "browser_download_url": format!("{}/download/{tag}/{name}", self.base),
                    "size": 1,
                })
            })
            .collect();
        let release = json!({
            "tag_name": tag,
            "name": format!("claude-vm {tag}"),
            "created_at": "2025-06-01T00:00:00Z",
            "body": "notes",
            "html_url": format!("{}/releases/{tag}", self.base),
            "assets": listed,
        });
        let body = serde_json::to_vec(&release).unwrap();
        self.route(
            &format!("/repos/{REPO}/releases/tags/{tag}"),
            200,
            body.clone(),
        );
        if latest {
            self.route(&format!("/repos/{REPO}/releases/latest"), 200, body);
        }
        for (name, bytes) in assets {
            self.route(&format!("/assets/{tag}/{name}"), 200, bytes.clone());
        }
    }
}

impl Drop for ReleaseServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.release_held();
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.base.trim_start_matches("http://"));
    }
}

fn serve(mut conn: TcpStream, s: &Shared) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header == "\r\n" || header == "\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split('?')
        .next()
        .unwrap_or("")
        .to_owned();
    s.requests.lock().unwrap().push(path.clone());
    if s.held.lock().unwrap().contains(&path) {
        let (lock, cv) = &s.gate;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
    }
    let (status, body) = s
        .routes
        .lock()
        .unwrap()
        .get(&path)
        .cloned()
        .unwrap_or((404, br#"{"message":"Not Found"}"#.to_vec()));
    let reason = if status == 200 { "OK" } else { "Not Found" };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(&body);
    let _ = conn.flush();
}

/// The target triple the test binaries (and so claude-vm) were built for.
pub fn target_triple() -> String {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("host line")
        .trim()
        .to_owned()
}

pub fn asset_name() -> String {
    format!("claude-vm-{}.tar.gz", target_triple())
}

/// A release archive: a `claude-vm` at its root that claims to be `version`.
pub fn archive(dir: &Path, version: &str) -> Vec<u8> {
    let stage = dir.join(format!("stage-{version}"));
    std::fs::create_dir_all(&stage).unwrap();
    let bin = stage.join("claude-vm");
    std::fs::write(&bin, new_binary(version)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let tarball = dir.join(format!("claude-vm-{version}.tar.gz"));
    let status = Command::new("tar")
        .arg("czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&stage)
        .arg("claude-vm")
        .status()
        .expect("run tar");
    assert!(status.success());
    std::fs::read(&tarball).unwrap()
}

/// What the released "binary" is: a script that answers `--version` like claude-vm.
pub fn new_binary(version: &str) -> Vec<u8> {
    format!("#!/bin/sh\necho \"claude-vm {version}\"\n").into_bytes()
}

/// `sha256sum` output for `bytes` named `name`.
pub fn sha256_line(bytes: &[u8], name: &str) -> Vec<u8> {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{hex}  {name}\n").into_bytes()
}

/// Publishes `tag` with an archive claiming `version` and its checksum file.
pub fn publish_build(server: &ReleaseServer, dir: &Path, tag: &str, version: &str, latest: bool) {
    let name = asset_name();
    let bytes = archive(dir, version);
    let sum = sha256_line(&bytes, &name);
    server.publish(
        tag,
        &[(name.clone(), bytes), (format!("{name}.sha256"), sum)],
        latest,
    );
}
