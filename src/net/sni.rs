//! Reading the server name out of a TLS ClientHello, so the proxy can hold a `CONNECT` to the
//! name it was asked for. Pure: bytes in, a verdict out; the bytes are forwarded untouched.

/// What the first bytes of a tunnel say.
#[derive(Debug, PartialEq, Eq)]
pub enum Hello {
    /// Not enough bytes yet for a whole ClientHello.
    NeedMore,
    /// The stream does not start with a TLS handshake.
    NotTls,
    /// A TLS handshake that is not a well-formed ClientHello.
    Malformed(&'static str),
    /// A ClientHello, with its server name if it has one (lower case, no trailing dot).
    Sni(Option<String>),
}

/// Past this, a ClientHello is refused rather than buffered.
pub const MAX_HELLO: usize = 64 * 1024;

pub fn parse(buf: &[u8]) -> Hello {
    // Gather the handshake bytes from as many records as the ClientHello spans.
    let mut handshake = Vec::new();
    let mut at = 0;
    loop {
        if handshake.len() >= 4 {
            if handshake[0] != 1 {
                return Hello::Malformed("the first handshake message is not a ClientHello");
            }
            let len = u24(&handshake[1..4]);
            if len + 4 > MAX_HELLO {
                return Hello::Malformed("the ClientHello is too large");
            }
            if handshake.len() >= len + 4 {
                return client_hello(&handshake[4..4 + len]);
            }
        }
        let Some(header) = buf.get(at..at + 5) else {
            if at == 0 && !buf.is_empty() && buf[0] != 0x16 {
                return Hello::NotTls;
            }
            return Hello::NeedMore;
        };
        if header[0] != 0x16 {
            return if at == 0 {
                Hello::NotTls
            } else {
                Hello::Malformed("a ClientHello record is followed by a non-handshake record")
            };
        }
        if header[1] != 3 {
            return Hello::NotTls;
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > 16_384 + 2048 {
            return Hello::Malformed("a TLS record of impossible length");
        }
        let Some(fragment) = buf.get(at + 5..at + 5 + len) else {
            return Hello::NeedMore;
        };
        handshake.extend_from_slice(fragment);
        at += 5 + len;
    }
}

fn u24(b: &[u8]) -> usize {
    (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2])
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
}

fn client_hello(body: &[u8]) -> Hello {
    match client_hello_sni(body) {
        Ok(sni) => Hello::Sni(sni),
        Err(why) => Hello::Malformed(why),
    }
}

fn client_hello_sni(body: &[u8]) -> Result<Option<String>, &'static str> {
    const SHORT: &str = "a truncated ClientHello";
    let mut r = Reader { buf: body };
    r.take(2 + 32).ok_or(SHORT)?; // legacy version, random
    r.vec8().ok_or(SHORT)?; // session id
    r.vec16().ok_or(SHORT)?; // cipher suites
    r.vec8().ok_or(SHORT)?; // compression methods
    if r.buf.is_empty() {
        return Ok(None); // no extensions at all
    }
    let mut ext = Reader {
        buf: r.vec16().ok_or(SHORT)?,
    };
    let mut sni = None;
    let mut seen = false;
    while !ext.buf.is_empty() {
        let kind = ext.u16().ok_or(SHORT)?;
        let data = ext.vec16().ok_or(SHORT)?;
        if kind != 0 {
            continue;
        }
        if seen {
            return Err("two server_name extensions");
        }
        seen = true;
        let mut list = Reader {
            buf: Reader { buf: data }.vec16().ok_or(SHORT)?,
        };
        while !list.buf.is_empty() {
            let name_type = list.u8().ok_or(SHORT)?;
            let name = list.vec16().ok_or(SHORT)?;
            if name_type != 0 {
                continue;
            }
            if sni.is_some() {
                return Err("two host names in server_name");
            }
            let text = std::str::from_utf8(name).map_err(|_| "a server name that is not text")?;
            if text.is_empty() || !text.is_ascii() {
                return Err("a server name that is not an ASCII host name");
            }
            let text = text.strip_suffix('.').unwrap_or(text);
            sni = Some(text.to_ascii_lowercase());
        }
    }
    Ok(sni)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A minimal ClientHello with the given server names, split into records of `chunk` bytes.
    pub fn hello(names: &[&str], chunk: usize) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(0); // session id
        body.extend([0, 2, 0x13, 0x01]); // one cipher suite
        body.extend([1, 0]); // null compression
        let mut exts = Vec::new();
        // An unrelated extension first (supported_versions).
        exts.extend([0, 43, 0, 3, 2, 3, 4]);
        if !names.is_empty() {
            let mut list = Vec::new();
            for n in names {
                list.push(0);
                list.extend((n.len() as u16).to_be_bytes());
                list.extend(n.as_bytes());
            }
            let mut data = (list.len() as u16).to_be_bytes().to_vec();
            data.extend(list);
            exts.extend([0, 0]);
            exts.extend((data.len() as u16).to_be_bytes());
            exts.extend(data);
        }
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut hs = vec![1];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        let mut out = Vec::new();
        for part in hs.chunks(chunk) {
            out.extend([0x16, 3, 1]);
            out.extend((part.len() as u16).to_be_bytes());
            out.extend(part);
        }
        out
    }

    #[test]
    fn reads_the_server_name_from_one_or_many_records() {
        for chunk in [1, 7, 50, 16_000] {
            let h = hello(&["Api.Example.COM."], chunk);
            assert_eq!(
                parse(&h),
                Hello::Sni(Some("api.example.com".into())),
                "chunk {chunk}"
            );
            // Every proper prefix needs more.
            for cut in [0, 1, 4, 5, h.len() / 2, h.len() - 1] {
                assert_eq!(parse(&h[..cut]), Hello::NeedMore, "chunk {chunk} cut {cut}");
            }
        }
        assert_eq!(parse(&hello(&[], 16_000)), Hello::Sni(None));
    }

    #[test]
    fn refuses_what_is_not_one_clear_name() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), Hello::NotTls);
        assert_eq!(parse(b"S"), Hello::NotTls);
        assert_eq!(parse(b"SSH-2.0-OpenSSH\r\n"), Hello::NotTls);
        assert!(matches!(
            parse(&hello(&["a.example", "b.example"], 16_000)),
            Hello::Malformed(_)
        ));
        // A server-hello-typed message.
        let mut h = hello(&["a.example"], 16_000);
        h[5] = 2;
        assert!(matches!(parse(&h), Hello::Malformed(_)));
        // Lengths that run past the message.
        let mut h = hello(&["a.example"], 16_000);
        let last = h.len() - 1;
        h.truncate(last);
        h[4] -= 1;
        h[8] -= 1;
        assert!(matches!(parse(&h), Hello::Malformed(_)));
        // A handshake record followed by application data before the hello is complete.
        let mut h = hello(&["a.example"], 20);
        h.truncate(25);
        h.extend([0x17, 3, 3, 0, 1, 0]);
        assert!(matches!(parse(&h), Hello::Malformed(_)));
    }
}
