//! A forwarded plain-HTTP request's body, framed as its head says, so that exactly one checked
//! request reaches the upstream: bytes the guest sends after it (a pipelined or smuggled
//! second request, perhaps for another name on the same address) never leave the proxy.

use super::http::Head;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How the body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length: N` (no length and no `Transfer-Encoding`: 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`: up to the last chunk and its trailers.
    Chunked,
}

/// The framing of `head`'s body; an error (for a 400) on anything ambiguous, where a proxy
/// and a server could disagree about where the request ends.
pub fn framing(head: &Head) -> Result<Framing, &'static str> {
    let te: Vec<&[u8]> = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .map(|(_, v)| v.as_slice())
        .collect();
    let cl: Vec<&[u8]> = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.as_slice())
        .collect();
    match (te.as_slice(), cl.as_slice()) {
        ([], []) => Ok(Framing::Length(0)),
        ([], [one]) => {
            let text = one.trim_ascii();
            if text.is_empty() || !text.iter().all(u8::is_ascii_digit) || text.len() > 18 {
                return Err("a Content-Length that is not a number");
            }
            Ok(Framing::Length(
                std::str::from_utf8(text)
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .ok_or("a Content-Length that is not a number")?,
            ))
        }
        ([], _) => Err("more than one Content-Length"),
        ([one], []) if one.trim_ascii().eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
        ([_], []) => Err("a Transfer-Encoding other than chunked"),
        (_, []) => Err("more than one Transfer-Encoding"),
        (_, _) => Err("both Transfer-Encoding and Content-Length"),
    }
}

const LINE: usize = 8 * 1024;

/// Reads from what followed the head, then from the client.
struct Source<'a, R> {
    buf: Vec<u8>,
    pos: usize,
    r: &'a mut R,
}

impl<R: AsyncRead + Unpin> Source<'_, R> {
    /// At least one byte buffered, or false at EOF.
    async fn fill(&mut self) -> std::io::Result<bool> {
        if self.pos < self.buf.len() {
            return Ok(true);
        }
        self.buf.resize(64 * 1024, 0);
        self.pos = 0;
        let n = self.r.read(&mut self.buf).await?;
        self.buf.truncate(n);
        Ok(n > 0)
    }

    /// One line with its CRLF, bounded.
    async fn line(&mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            if !self.fill().await? {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let avail = &self.buf[self.pos..];
            match avail.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    out.extend_from_slice(&avail[..=i]);
                    self.pos += i + 1;
                    return Ok(out);
                }
                None => {
                    out.extend_from_slice(avail);
                    self.pos = self.buf.len();
                }
            }
            if out.len() > LINE {
                return Err(std::io::ErrorKind::InvalidData.into());
            }
        }
    }

    /// Copies exactly `n` bytes to `w`.
    async fn copy<W: AsyncWrite + Unpin>(
        &mut self,
        mut n: u64,
        w: &mut W,
        count: &AtomicU64,
    ) -> std::io::Result<()> {
        while n > 0 {
            if !self.fill().await? {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let avail = &self.buf[self.pos..];
            let take = avail.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            w.write_all(&avail[..take]).await?;
            self.pos += take;
            n -= take as u64;
            count.fetch_add(take as u64, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Sends the one body (`rest`, then the client's bytes) to `w` as framed; nothing after it.
pub async fn forward<R, W>(
    framing: Framing,
    rest: Vec<u8>,
    client: &mut R,
    w: &mut W,
    count: &AtomicU64,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut src = Source {
        buf: rest,
        pos: 0,
        r: client,
    };
    match framing {
        Framing::Length(n) => src.copy(n, w, count).await?,
        Framing::Chunked => loop {
            let line = src.line().await?;
            let size_text = line
                .split(|b| *b == b';' || *b == b'\r' || *b == b'\n')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            let size = std::str::from_utf8(size_text)
                .ok()
                .filter(|t| !t.is_empty() && t.len() <= 15)
                .and_then(|t| u64::from_str_radix(t, 16).ok())
                .ok_or(std::io::ErrorKind::InvalidData)?;
            w.write_all(&line).await?;
            count.fetch_add(line.len() as u64, Ordering::Relaxed);
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let t = src.line().await?;
                    w.write_all(&t).await?;
                    count.fetch_add(t.len() as u64, Ordering::Relaxed);
                    if t == b"\r\n" || t == b"\n" {
                        break;
                    }
                }
                break;
            }
            // The data and its CRLF.
            src.copy(size + 2, w, count).await?;
        },
    }
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(headers: &[(&str, &str)]) -> Head {
        Head {
            method: "POST".into(),
            target: "/".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    #[test]
    fn framing_refuses_what_two_parsers_could_read_differently() {
        assert_eq!(framing(&head(&[])), Ok(Framing::Length(0)));
        assert_eq!(
            framing(&head(&[("Content-Length", " 12 ")])),
            Ok(Framing::Length(12))
        );
        assert_eq!(
            framing(&head(&[("transfer-encoding", "Chunked")])),
            Ok(Framing::Chunked)
        );
        for bad in [
            &[("Content-Length", "1"), ("content-length", "2")][..],
            &[("Content-Length", "-1")],
            &[("Content-Length", "0x10")],
            &[("Content-Length", "")],
            &[("Content-Length", "1, 1")],
            &[("Transfer-Encoding", "gzip, chunked")],
            &[
                ("Transfer-Encoding", "chunked"),
                ("Transfer-Encoding", "chunked"),
            ],
            &[("Transfer-Encoding", "chunked"), ("Content-Length", "5")],
        ] {
            assert!(framing(&head(bad)).is_err(), "{bad:?}");
        }
    }

    async fn run(framing: Framing, rest: &[u8], more: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut client: &[u8] = more;
        let mut out = Vec::new();
        let count = AtomicU64::new(0);
        forward(framing, rest.to_vec(), &mut client, &mut out, &count).await?;
        assert_eq!(count.load(Ordering::Relaxed), out.len() as u64);
        Ok(out)
    }

    #[tokio::test]
    async fn exactly_one_body_goes_upstream() {
        let second = b"GET / HTTP/1.1\r\nHost: other.example\r\n\r\n";
        let mut after = b"body".to_vec();
        after.extend_from_slice(second);
        assert_eq!(
            run(Framing::Length(4), b"bo", &after[2..]).await.unwrap(),
            b"body"
        );
        assert_eq!(run(Framing::Length(0), second, b"").await.unwrap(), b"");
        let chunked = b"4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\n";
        let mut with_more = chunked.to_vec();
        with_more.extend_from_slice(second);
        assert_eq!(
            run(Framing::Chunked, &with_more[..7], &with_more[7..])
                .await
                .unwrap(),
            chunked
        );
        // Cut short, or a size that is not hex: an error, and nothing past what was read.
        assert!(run(Framing::Length(10), b"abc", b"").await.is_err());
        assert!(run(Framing::Chunked, b"zz\r\n", b"").await.is_err());
        assert!(run(Framing::Chunked, &[b'1'; LINE + 10], b"")
            .await
            .is_err());
    }
}
