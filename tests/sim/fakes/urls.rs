//! What the fake `curl` can download: the guest has no network, so every
//! URL a provisioning script may fetch is listed here. Add a row to support
//! another tool's installer (docker's apt key, nodesource, rustup, ...).

use std::path::Path;

pub struct Known {
    pub url: &'static str,
    /// Builds the body; gets the simulator's path as the guest sees it.
    pub body: fn(exe: &Path) -> Vec<u8>,
}

/// Claude Code's installer: links `~/.local/bin/claude` to the simulator,
/// whose `claude` personality is the fake Claude Code.
fn claude_installer(exe: &Path) -> Vec<u8> {
    let exe = String::from_utf8_lossy(&crate::gofmt::shell_quote(
        exe.as_os_str().as_encoded_bytes(),
    ))
    .into_owned();
    format!(
        r#"#!/bin/bash
# Claude Code installer (Lima simulator stand-in).
set -e
mkdir -p "$HOME/.local/bin"
ln -sf {exe} "$HOME/.local/bin/claude"
echo "Claude Code successfully installed!"
"#
    )
    .into_bytes()
}

pub const KNOWN: &[Known] = &[Known {
    url: "https://claude.ai/install.sh",
    body: claude_installer,
}];

pub fn lookup(url: &str) -> Option<&'static Known> {
    KNOWN.iter().find(|k| k.url == url)
}

/// Hosts that resolve (their other paths answer 404).
pub fn host_known(host: &str) -> bool {
    KNOWN.iter().any(|k| url_host(k.url) == Some(host))
}

/// The host part of `scheme://host[:port]/path`.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    Some(host.split(':').next().unwrap_or(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_bodies() {
        assert_eq!(url_host("https://claude.ai/install.sh"), Some("claude.ai"));
        assert_eq!(url_host("http://u@example.com:8080/x"), Some("example.com"));
        assert!(host_known("claude.ai"));
        assert!(!host_known("example.com"));
        let body =
            (lookup("https://claude.ai/install.sh").unwrap().body)(Path::new("/.limasim/limactl"));
        let body = String::from_utf8(body).unwrap();
        assert!(body.contains("ln -sf /.limasim/limactl \"$HOME/.local/bin/claude\""));
    }
}
