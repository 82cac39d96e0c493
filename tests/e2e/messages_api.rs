//! A stand-in for Anthropic's Messages API on the host's loopback, for the real Claude Code in
//! the guest: `POST /v1/messages` answers with one text block (streamed as server-sent events
//! when the request asks for a stream), `count_tokens` with a count, anything else 404. Every
//! request is recorded (method, path, headers, body), so a test can see what claude sent.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn is_messages(&self) -> bool {
        self.method == "POST" && self.path.split('?').next() == Some("/v1/messages")
    }

    /// Every text of the conversation the request carries (system prompt left out).
    pub fn conversation_text(&self) -> String {
        let mut out = String::new();
        for m in self.json()["messages"].as_array().into_iter().flatten() {
            match &m["content"] {
                Value::String(s) => out.push_str(s),
                Value::Array(blocks) => {
                    for b in blocks {
                        if let Some(t) = b["text"].as_str() {
                            out.push_str(t);
                        }
                        out.push('\n');
                    }
                }
                _ => {}
            }
            out.push('\n');
        }
        out
    }
}

pub struct MessagesApi {
    pub port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    answer: Arc<Mutex<String>>,
}

impl MessagesApi {
    /// Serves on 127.0.0.1 with an ephemeral port; answers `answer` to every prompt.
    pub fn start(answer: &str) -> MessagesApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stand-in API");
        let port = listener.local_addr().expect("local addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new(answer.to_owned()));
        let (r, a) = (requests.clone(), answer.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (r, a) = (r.clone(), a.clone());
                std::thread::spawn(move || serve(stream, &r, &a));
            }
        });
        MessagesApi {
            port,
            requests,
            answer,
        }
    }

    /// The base URL as a user on the host writes it.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_answer(&self, text: &str) {
        *self.answer.lock().expect("answer") = text.to_owned();
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("requests").clone()
    }

    pub fn messages_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(Request::is_messages)
            .collect()
    }

    /// Waits until a Messages request satisfies `pred`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Request) -> bool) -> Option<Request> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.messages_requests().into_iter().find(|r| pred(r)) {
                return Some(r);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn serve(stream: TcpStream, requests: &Mutex<Vec<Request>>, answer: &Mutex<String>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut out = write_half;
    // Keep-alive: one request after another on the same connection.
    while let Some(req) = read_request(&mut reader) {
        requests.lock().expect("requests").push(req.clone());
        let text = answer.lock().expect("answer").clone();
        let ok = respond(&mut out, &req, &text);
        if !ok {
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let mut body = Vec::new();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = headers.get("content-length").and_then(|v| v.parse().ok()) {
        body = vec![0; n];
        reader.read_exact(&mut body).ok()?;
    }
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn respond(out: &mut TcpStream, req: &Request, text: &str) -> bool {
    let path = req.path.split('?').next().unwrap_or("");
    let body = req.json();
    let model = body["model"]
        .as_str()
        .unwrap_or("claude-stand-in")
        .to_owned();
    match (req.method.as_str(), path) {
        ("POST", "/v1/messages") if body["stream"] == true => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nrequest-id: req_standin\r\nconnection: close\r\n\r\n";
            let mut s = String::from(head);
            for (event, data) in stream_events(&model, text) {
                s.push_str(&format!("event: {event}\ndata: {data}\n\n"));
            }
            let _ = out.write_all(s.as_bytes());
            false
        }
        ("POST", "/v1/messages") => send_json(out, 200, &message(&model, text)),
        ("POST", "/v1/messages/count_tokens") => send_json(out, 200, &json!({"input_tokens": 12})),
        _ => send_json(
            out,
            404,
            &json!({"type": "error", "error": {"type": "not_found_error", "message": "the stand-in serves /v1/messages only"}}),
        ),
    }
}

fn send_json(out: &mut TcpStream, status: u16, v: &Value) -> bool {
    let body = v.to_string();
    let reason = if status == 200 { "OK" } else { "Not Found" };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nrequest-id: req_standin\r\n\r\n",
        body.len()
    );
    out.write_all(head.as_bytes()).is_ok() && out.write_all(body.as_bytes()).is_ok()
}

fn usage() -> Value {
    json!({"input_tokens": 12, "output_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
}

fn message(model: &str, text: &str) -> Value {
    json!({
        "id": "msg_standin",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": usage(),
    })
}

fn stream_events(model: &str, text: &str) -> Vec<(&'static str, String)> {
    let mut start = message(model, "");
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    vec![
        (
            "message_start",
            json!({"type": "message_start", "message": start}).to_string(),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}).to_string(),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}).to_string(),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}).to_string(),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 7}}).to_string(),
        ),
        ("message_stop", json!({"type": "message_stop"}).to_string()),
    ]
}
