//! HTTP/1.1 request heads: read one (bounded in size and time), change its headers, write it
//! back out; and the proxy's own short responses. Bodies are never parsed: they stream.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// A head larger than this is refused (431).
pub const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;

#[derive(Debug, Clone)]
pub struct Head {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, Vec<u8>)>,
}

#[derive(Debug)]
pub enum HeadError {
    /// The peer closed or stalled before a whole head arrived; nothing to answer.
    Gone,
    TooLarge,
    Malformed,
}

/// Reads up to the end of the head; returns it and whatever bytes followed it.
pub async fn read_head<R: AsyncRead + Unpin>(
    r: &mut R,
    limit: Duration,
) -> Result<(Head, Vec<u8>), HeadError> {
    let mut buf = Vec::with_capacity(4096);
    let read = async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = r.read(&mut chunk).await.map_err(|_| HeadError::Gone)?;
            if n == 0 {
                return Err(HeadError::Gone);
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = find_end(&buf) {
                let head = parse(&buf[..end])?;
                return Ok((head, buf[end..].to_vec()));
            }
            if buf.len() > MAX_HEAD {
                return Err(HeadError::TooLarge);
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .unwrap_or(Err(HeadError::Gone))
}

fn find_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn parse(bytes: &[u8]) -> Result<Head, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        _ => return Err(HeadError::Malformed),
    }
    if req.version != Some(1) && req.version != Some(0) {
        return Err(HeadError::Malformed);
    }
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Err(HeadError::Malformed);
    };
    Ok(Head {
        method: method.to_string(),
        target: target.to_string(),
        headers: req
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect(),
    })
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    pub fn count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    pub fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    pub fn set(&mut self, name: &str, value: &[u8]) {
        self.remove(name);
        self.headers.push((name.to_string(), value.to_vec()));
    }

    /// Drops the hop-by-hop headers (and those `Connection` names) and asks for one request
    /// per connection, so that every request on it is the one that was checked.
    pub fn prepare_for_upstream(&mut self) {
        let named: Vec<String> = self
            .header("connection")
            .map(|v| {
                String::from_utf8_lossy(v)
                    .split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        for h in named {
            // Never let `Connection: host` or the like remove what we set below.
            if !matches!(h.as_str(), "host" | "content-length" | "transfer-encoding") {
                self.remove(&h);
            }
        }
        for h in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authorization",
            "proxy-authenticate",
            "upgrade",
        ] {
            self.remove(h);
        }
        self.set("Connection", b"close");
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target).into_bytes();
        for (n, v) in &self.headers {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// A complete short response of the proxy's own, closing the connection.
pub fn response(status: u16, reason: &str, extra: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (n, v) in extra {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.into_bytes()
}

/// `http://host[:port]/path` split into (authority, path-and-query).
pub fn split_absolute(target: &str) -> Option<(&str, String)> {
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("HTTP://"))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some((authority, path))
}

/// `host:port` (or `[v6]:port`, or `host` with the default port).
pub fn split_authority(authority: &str, default_port: Option<u16>) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        match after.strip_prefix(':') {
            Some(p) => (inside, p),
            None if after.is_empty() => (inside, ""),
            None => return None,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, p),
            Some(_) => return None,
            None => (authority, ""),
        }
    };
    let port = if port.is_empty() {
        default_port?
    } else if port.bytes().all(|b| b.is_ascii_digit()) {
        port.parse().ok().filter(|p| *p > 0)?
    } else {
        return None;
    };
    if host.is_empty() {
        return None;
    }
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_a_head_and_keeps_what_follows() {
        let mut input: &[u8] =
            b"POST http://a.example/x HTTP/1.1\r\nHost: a.example\r\nContent-Length: 4\r\n\r\nbody";
        let (head, rest) = read_head(&mut input, Duration::from_secs(1)).await.unwrap();
        assert_eq!(head.method, "POST");
        assert_eq!(head.target, "http://a.example/x");
        assert_eq!(head.header("content-length"), Some(&b"4"[..]));
        assert_eq!(rest, b"body");
    }

    #[tokio::test]
    async fn refuses_oversized_truncated_and_garbled_heads() {
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        while big.len() <= MAX_HEAD {
            big.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let mut r: &[u8] = &big;
        assert!(matches!(
            read_head(&mut r, Duration::from_secs(1)).await,
            Err(HeadError::TooLarge)
        ));
        let mut r: &[u8] = b"GET / HTTP/1.1\r\nHost: x";
        assert!(matches!(
            read_head(&mut r, Duration::from_secs(1)).await,
            Err(HeadError::Gone)
        ));
        let mut r: &[u8] = b"GET / HTTP/1.1\r\nBad Header\r\n\r\n";
        assert!(matches!(
            read_head(&mut r, Duration::from_secs(1)).await,
            Err(HeadError::Malformed)
        ));
    }

    #[test]
    fn upstream_heads_lose_hop_by_hop_headers() {
        let mut head = Head {
            method: "GET".into(),
            target: "/".into(),
            headers: vec![
                ("Host".into(), b"a".to_vec()),
                ("Connection".into(), b"keep-alive, X-Secret, host".to_vec()),
                ("X-Secret".into(), b"1".to_vec()),
                ("Proxy-Authorization".into(), b"Basic x".to_vec()),
                ("Keep-Alive".into(), b"5".to_vec()),
            ],
        };
        head.prepare_for_upstream();
        let text = String::from_utf8(head.to_bytes()).unwrap();
        assert_eq!(
            text,
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn absolute_targets_and_authorities() {
        assert_eq!(
            split_absolute("http://a.example:8080/p?q=1"),
            Some(("a.example:8080", "/p?q=1".into()))
        );
        assert_eq!(
            split_absolute("http://a.example"),
            Some(("a.example", "/".into()))
        );
        assert_eq!(
            split_absolute("http://a.example?x"),
            Some(("a.example", "/?x".into()))
        );
        assert_eq!(split_absolute("http://user@a.example/"), None);
        assert_eq!(split_absolute("https://a.example/"), None);
        assert_eq!(split_absolute("/relative"), None);
        assert_eq!(
            split_authority("a.example:443", None),
            Some(("a.example", 443))
        );
        assert_eq!(
            split_authority("a.example", Some(80)),
            Some(("a.example", 80))
        );
        assert_eq!(split_authority("a.example", None), None);
        assert_eq!(split_authority("[::1]:5432", None), Some(("::1", 5432)));
        assert_eq!(split_authority("a.example:0", None), None);
        assert_eq!(split_authority("a.example:+1", None), None);
        assert_eq!(split_authority("::1:80", None), None);
        assert_eq!(split_authority(":80", None), None);
    }
}
