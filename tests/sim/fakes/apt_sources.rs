//! The guest's apt repositories, as the fake `apt-get update` reads them:
//! `/etc/apt/sources.list` and `sources.list.d/*.list` (one-line form) and
//! `sources.list.d/*.sources` (deb822). Only what decides availability is
//! kept: where the repository is, its suites and its `signed-by` keyring.

use std::path::Path;

#[derive(Clone, Debug, PartialEq)]
pub struct Repo {
    pub uri: String,
    pub suites: Vec<String>,
    pub signed_by: Option<String>,
}

/// Hosts whose repositories the fake network answers for.
const KNOWN_HOSTS: &[&str] = &[
    "deb.debian.org",
    "security.debian.org",
    "archive.ubuntu.com",
    "security.ubuntu.com",
    "ports.ubuntu.com",
    "download.docker.com",
    "deb.nodesource.com",
    "cli.github.com",
];

/// Packages that only a third-party repository provides, with its host:
/// `apt-get install` cannot find them before that repository is updated.
pub const THIRD_PARTY: &[(&str, &str)] = &[
    ("docker-ce", "download.docker.com"),
    ("docker-ce-cli", "download.docker.com"),
    ("docker-ce-rootless-extras", "download.docker.com"),
    ("containerd.io", "download.docker.com"),
    ("docker-buildx-plugin", "download.docker.com"),
    ("docker-compose-plugin", "download.docker.com"),
];

pub fn host_of(uri: &str) -> &str {
    crate::urls::url_host(uri).unwrap_or_default()
}

pub fn host_known(uri: &str) -> bool {
    KNOWN_HOSTS.contains(&host_of(uri))
}

/// One-line entries: `deb [opt=val ...] URI SUITE [COMPONENT...]`.
pub fn parse_list(text: &str) -> Vec<Repo> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let Some(rest) = line
            .strip_prefix("deb ")
            .or_else(|| line.strip_prefix("deb\t"))
        else {
            continue;
        };
        let mut rest = rest.trim_start();
        let mut signed_by = None;
        if let Some(opts) = rest.strip_prefix('[') {
            let Some((opts, after)) = opts.split_once(']') else {
                continue;
            };
            for opt in opts.split_whitespace() {
                if let Some(v) = opt.strip_prefix("signed-by=") {
                    signed_by = Some(v.to_string());
                }
            }
            rest = after;
        }
        let mut words = rest.split_whitespace();
        if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
            out.push(Repo {
                uri: uri.to_string(),
                suites: vec![suite.to_string()],
                signed_by,
            });
        }
    }
    out
}

/// deb822 paragraphs with `Types: deb`.
pub fn parse_sources(text: &str) -> Vec<Repo> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in para.lines().filter(|l| !l.trim_start().starts_with('#')) {
            if line.starts_with([' ', '\t']) {
                // A continuation line (an inline key): not a path.
                if let Some(last) = fields.last_mut() {
                    last.1.push('\n');
                }
            } else if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |k: &str| {
            fields
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let enabled = get("enabled").is_none_or(|v| v != "no");
        let is_deb = get("types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
        if !enabled || !is_deb {
            continue;
        }
        let suites: Vec<String> = get("suites")
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect();
        let signed_by = get("signed-by").filter(|v| v.starts_with('/') && !v.contains('\n'));
        for uri in get("uris").unwrap_or_default().split_whitespace() {
            out.push(Repo {
                uri: uri.to_string(),
                suites: suites.clone(),
                signed_by: signed_by.clone(),
            });
        }
    }
    out
}

/// Every repository configured under `etc_apt` (the guest's /etc/apt).
pub fn read_all(etc_apt: &Path) -> Vec<Repo> {
    let mut out = Vec::new();
    if let Ok(text) = std::fs::read_to_string(etc_apt.join("sources.list")) {
        out.extend(parse_list(&text));
    }
    let mut files: Vec<_> = std::fs::read_dir(etc_apt.join("sources.list.d"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        match f.extension().and_then(|e| e.to_str()) {
            Some("list") => out.extend(parse_list(&text)),
            Some("sources") => out.extend(parse_sources(&text)),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_formats() {
        let list = "# comment\ndeb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/debian bookworm stable\ndeb-src http://x/ y main\ndeb http://deb.debian.org/debian bookworm main\n";
        assert_eq!(
            parse_list(list),
            vec![
                Repo {
                    uri: "https://download.docker.com/linux/debian".into(),
                    suites: vec!["bookworm".into()],
                    signed_by: Some("/etc/apt/keyrings/docker.asc".into()),
                },
                Repo {
                    uri: "http://deb.debian.org/debian".into(),
                    suites: vec!["bookworm".into()],
                    signed_by: None,
                },
            ]
        );
        let sources = "Types: deb\n# note\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb-src\nURIs: http://x\nSuites: y\n\nTypes: deb\nURIs: https://cli.github.com/packages\nSuites: stable\nEnabled: no\n";
        let repos = parse_sources(sources);
        assert_eq!(repos.len(), 1);
        assert_eq!(repos[0].suites, vec!["bookworm", "bookworm-updates"]);
        assert_eq!(
            repos[0].signed_by.as_deref(),
            Some("/usr/share/keyrings/debian-archive-keyring.gpg")
        );
        assert!(host_known(&repos[0].uri));
        assert!(!host_known("https://packages.example.com/apt"));
    }
}
