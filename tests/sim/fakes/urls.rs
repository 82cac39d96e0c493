//! What the fake `curl` can download: the guest has no network, so every
//! URL a provisioning script may fetch is listed here. Add a row to support
//! another tool's installer; its body goes in `installers.rs`.

use std::path::Path;

use crate::installers;

pub struct Known {
    pub url: &'static str,
    /// Builds the body; gets the simulator's path as the guest sees it.
    pub body: fn(exe: &Path) -> Vec<u8>,
}

pub const KNOWN: &[Known] = &[
    Known {
        url: "https://claude.ai/install.sh",
        body: installers::claude,
    },
    Known {
        url: "https://sh.rustup.rs",
        body: installers::rustup,
    },
    Known {
        url: "https://download.docker.com/linux/debian/gpg",
        body: installers::docker_key,
    },
    Known {
        url: "https://download.docker.com/linux/ubuntu/gpg",
        body: installers::docker_key,
    },
    Known {
        url: "https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key",
        body: installers::nodesource_key,
    },
    Known {
        url: "https://cli.github.com/packages/githubcli-archive-keyring.gpg",
        body: installers::github_keyring,
    },
];

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
        assert!(host_known("sh.rustup.rs") && host_known("download.docker.com"));
        let body =
            (lookup("https://claude.ai/install.sh").unwrap().body)(Path::new("/.limasim/limactl"));
        let body = String::from_utf8(body).unwrap();
        assert!(
            body.contains("EXE=/.limasim/limactl\n")
                && body.contains("ln -sf \"$EXE\" \"$versions/$VERSION\"")
        );
    }
}
