//! The session network (issue 12): a host-side proxy that enforces each session's policy,
//! logs every request, and holds the Anthropic credential so that it never enters the VM.
//!
//! Self-contained but for `crate::netpattern` (the patterns, in the core layer), so the
//! benchmark can include both by path.
//!
//! - `policy`: decisions on names and resolved addresses (pure)
//! - `sni`: the server name in a TLS ClientHello (pure)
//! - `http`: request heads, read bounded and rewritten
//! - `body`: a forwarded request's body, framed, so nothing follows it upstream
//! - `anthropic`: the route's upstream URL and credential swap (pure)
//! - `log`: the JSON-lines log, its writer thread and the reader behind `network log`
//! - `splice`: socket-to-socket copying (in the kernel on Linux)
//! - `proxy`: the tokio server

pub mod anthropic;
pub mod body;
pub mod http;
pub mod log;
pub mod policy;
pub mod proxy;
pub mod sni;
pub mod splice;

#[cfg(test)]
mod tests;

pub use anthropic::Credential;
pub use policy::{Mode, Rules};
pub use proxy::{Access, Config, Proxy, SessionSpec};
