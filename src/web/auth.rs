//! Who may talk to the web server (pure): the per-start token, checked in constant time;
//! the `Host` and `Origin` a request must carry so that another page or a DNS-rebound name
//! cannot drive it; the cookie a page logs in for; and the limit on failed attempts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

/// Failed attempts allowed per window before every token check answers 429.
pub const FAILURES_MAX: usize = 10;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long a page's login cookie lasts.
pub const COOKIE_TTL: Duration = Duration::from_secs(8 * 3600);
/// How long the one-use code `--open` gives the browser lasts.
pub const LAUNCH_TTL: Duration = Duration::from_secs(120);
pub const COOKIE_NAME: &str = "claude_vm_web";

/// `n` random bytes as lowercase hex, from the kernel.
pub fn random_hex(n: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Equal, in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The `Host` header is the server's own address, as the URL printed it or as `localhost`.
pub fn host_ok(host: Option<&str>, port: u16) -> bool {
    host.is_some_and(|h| h == format!("127.0.0.1:{port}") || h == format!("localhost:{port}"))
}

/// No `Origin` (a same-origin GET, a program), or exactly the page's own.
pub fn origin_ok(origin: Option<&str>, host: &str) -> bool {
    origin.is_none_or(|o| o == format!("http://{host}"))
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The token in `Authorization: Bearer TOKEN`.
pub fn bearer(header: &str) -> Option<&str> {
    header.strip_prefix("Bearer ").map(str::trim)
}

/// The server's secrets and the failures seen.
pub struct Gate {
    token: String,
    /// The one-use code `--open` put on the browser's command line, until used or expired.
    launch: Option<(String, Instant)>,
    cookies: HashMap<String, Instant>,
    failures: Vec<Instant>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Refused,
    /// Too many failures lately: not even checked.
    Limited,
}

impl Gate {
    pub fn new(token: String) -> Gate {
        Gate {
            token,
            launch: None,
            cookies: HashMap::new(),
            failures: Vec::new(),
        }
    }

    pub fn set_launch(&mut self, code: String, now: Instant) {
        self.launch = Some((code, now + LAUNCH_TTL));
    }

    fn limited(&mut self, now: Instant) -> bool {
        self.failures
            .retain(|t| now.saturating_duration_since(*t) < FAILURE_WINDOW);
        self.failures.len() >= FAILURES_MAX
    }

    fn fail(&mut self, now: Instant) -> Verdict {
        self.failures.push(now);
        Verdict::Refused
    }

    /// A token (bearer or login): the server's, or the unused launch code (used up now).
    pub fn check_token(&mut self, given: &str, now: Instant) -> Verdict {
        if self.limited(now) {
            return Verdict::Limited;
        }
        if same(given, &self.token) {
            return Verdict::Ok;
        }
        if let Some((code, until)) = &self.launch {
            if now < *until && same(given, code) {
                self.launch = None;
                return Verdict::Ok;
            }
        }
        self.fail(now)
    }

    /// A login cookie. A page already logged in keeps working while guessers are limited.
    pub fn check_cookie(&mut self, given: &str, now: Instant) -> Verdict {
        self.cookies.retain(|_, until| now < *until);
        if self.cookies.keys().any(|c| same(c, given)) {
            return Verdict::Ok;
        }
        if self.limited(now) {
            return Verdict::Limited;
        }
        self.fail(now)
    }

    /// A fresh cookie value for a page that gave the token.
    pub fn new_cookie(&mut self, value: String, now: Instant) {
        self.cookies.insert(value, now + COOKIE_TTL);
    }

    /// No credential at all: refused, and not counted, since it guesses nothing (and any
    /// page may make the browser send such requests, which must not lock the user out).
    pub fn missing(&mut self) -> Verdict {
        Verdict::Refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_must_be_the_servers_own_address() {
        assert!(host_ok(Some("127.0.0.1:8080"), 8080));
        assert!(host_ok(Some("localhost:8080"), 8080));
        for bad in [
            "127.0.0.1:8081",
            "127.0.0.1",
            "localhost",
            "evil.example:8080",
            "127.0.0.1.nip.io:8080",
            "[::1]:8080",
            "LOCALHOST:8080x",
            "",
        ] {
            assert!(!host_ok(Some(bad), 8080), "{bad}");
        }
        assert!(!host_ok(None, 8080));
    }

    #[test]
    fn origin_is_absent_or_the_pages_own() {
        let host = "127.0.0.1:8080";
        assert!(origin_ok(None, host));
        assert!(origin_ok(Some("http://127.0.0.1:8080"), host));
        for bad in [
            "http://localhost:8080",
            "https://127.0.0.1:8080",
            "http://127.0.0.1:8081",
            "http://evil.example",
            "null",
            "http://127.0.0.1:8080.evil.example",
        ] {
            assert!(!origin_ok(Some(bad), host), "{bad}");
        }
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert!(!same("", "a"));
        let t = random_hex(32).unwrap();
        assert_eq!(t.len(), 64);
        assert_ne!(t, random_hex(32).unwrap());
    }

    #[test]
    fn failures_are_limited_but_a_logged_in_page_keeps_working() {
        let now = Instant::now();
        let mut g = Gate::new("secret".into());
        g.new_cookie("c1".into(), now);
        for _ in 0..3 * FAILURES_MAX {
            assert_eq!(g.missing(), Verdict::Refused);
        }
        assert_eq!(g.check_token("secret", now), Verdict::Ok, "not counted");
        for _ in 0..FAILURES_MAX {
            assert_eq!(g.check_token("guess", now), Verdict::Refused);
        }
        assert_eq!(g.check_token("secret", now), Verdict::Limited);
        assert_eq!(g.check_cookie("nope", now), Verdict::Limited);
        assert_eq!(g.missing(), Verdict::Refused);
        assert_eq!(g.check_cookie("c1", now), Verdict::Ok);
        let later = now + FAILURE_WINDOW + Duration::from_secs(1);
        assert_eq!(g.check_token("secret", later), Verdict::Ok);
        // The cookie expires.
        assert_eq!(
            g.check_cookie("c1", now + COOKIE_TTL + Duration::from_secs(1)),
            Verdict::Refused
        );
    }

    #[test]
    fn the_launch_code_works_once_and_not_after_it_expires() {
        let now = Instant::now();
        let mut g = Gate::new("secret".into());
        g.set_launch("code".into(), now);
        assert_eq!(g.check_token("code", now), Verdict::Ok);
        assert_eq!(g.check_token("code", now), Verdict::Refused);
        g.set_launch("code2".into(), now);
        assert_eq!(
            g.check_token("code2", now + LAUNCH_TTL + Duration::from_secs(1)),
            Verdict::Refused
        );
    }

    #[test]
    fn cookie_and_bearer_headers() {
        assert_eq!(
            cookie("a=1; claude_vm_web=xyz; b=2", COOKIE_NAME),
            Some("xyz")
        );
        assert_eq!(cookie("claude_vm_webx=1", COOKIE_NAME), None);
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
    }
}
