//! Fake `npm` (the guest's /usr/local/bin/npm). The guest has no network,
//! so the registry serves one package, Claude Code:
//! `npm install -g @anthropic-ai/claude-code[@VERSION]` installs it under the
//! global prefix /usr/local (Debian's npm prefix) with `claude` in
//! /usr/local/bin, as npm links a package's bin. Every other package, and
//! every other command that needs the registry, fails as npm does without
//! network.
//!
//! npm exists only once Node.js does: until apt-get has installed `nodejs`
//! (NodeSource's package bundles npm) or `npm`, the fake answers as a
//! missing command would.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::claude_install::{self, NPM_PACKAGE};
use crate::fakes::guest_path;

pub const NPM_VERSION: &str = "10.9.3";
const PREFIX: &str = "/usr/local";
const REGISTRY: &str = "registry.npmjs.org";
/// Options whose value is the next word.
const WITH_VALUE: &[&str] = &[
    "--loglevel",
    "--registry",
    "--cache",
    "--userconfig",
    "--location",
];

fn node_installed() -> bool {
    std::fs::read_to_string(guest_path(crate::disk::INSTALLED_LIST))
        .map(|s| s.lines().any(|p| p == "nodejs" || p == "npm"))
        .unwrap_or(false)
}

fn say(s: &str) {
    crate::output::stdout_lossy(&format!("{s}\n"));
}

fn error_lines(lines: &[String]) -> i32 {
    let text: String = lines.iter().map(|l| format!("npm error {l}\n")).collect();
    crate::output::stderr(&text);
    1
}

/// npm's answer when the registry cannot be reached.
fn offline(what: &str) -> i32 {
    error_lines(&[
        "code ENOTFOUND".into(),
        "syscall getaddrinfo".into(),
        "errno ENOTFOUND".into(),
        format!("network request to https://{REGISTRY}/{what} failed, reason: getaddrinfo ENOTFOUND {REGISTRY}"),
        "network This is a problem related to network connectivity.".into(),
        "network In most cases you are behind a proxy or have bad network settings.".into(),
    ])
}

/// `@scope/name@version` or `name@version` into (name, version).
fn split_spec(spec: &str) -> (&str, &str) {
    let search_from = usize::from(spec.starts_with('@'));
    match spec[search_from..].find('@') {
        Some(i) => (&spec[..search_from + i], &spec[search_from + i + 1..]),
        None => (spec, ""),
    }
}

fn package_dir(prefix: &Path) -> PathBuf {
    prefix.join("lib/node_modules").join(NPM_PACKAGE)
}

fn install_claude(prefix: &Path, version: &str) -> Result<(), String> {
    if claude_install::real_version().as_deref() == Some(version) {
        return install_real_claude(prefix);
    }
    let dir = package_dir(prefix);
    let _ = crate::fsutil::remove_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let manifest = serde_json::json!({
        "name": NPM_PACKAGE,
        "version": version,
        "bin": {"claude": "cli.js"},
    });
    std::fs::write(dir.join("package.json"), manifest.to_string())
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from(crate::disk::GUEST_EXE));
    let bin = prefix.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    for (target, link) in [
        (exe, dir.join("cli.js")),
        (
            PathBuf::from("../lib/node_modules")
                .join(NPM_PACKAGE)
                .join("cli.js"),
            bin.join("claude"),
        ),
    ] {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link)
            .map_err(|e| format!("{}: {e}", link.display()))?;
    }
    Ok(())
}

/// The real package's native `claude`, linked where npm links its bin.
fn install_real_claude(prefix: &Path) -> Result<(), String> {
    let dir = package_dir(prefix);
    let _ = crate::fsutil::remove_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let real = Path::new(claude_install::REAL_DIR);
    std::fs::copy(
        crate::fakes::guest_path(claude_install::REAL_DIR).join("package.json"),
        dir.join("package.json"),
    )
    .map_err(|e| format!("{}: {e}", dir.display()))?;
    let bin = prefix.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    let link = bin.join("claude");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(real.join("claude"), &link)
        .map_err(|e| format!("{}: {e}", link.display()))
}

fn install(specs: &[String], global: bool) -> i32 {
    if !global {
        crate::fakes::complain(
            "npm",
            "only global installs (npm install -g) are supported by the simulator",
        );
        return 1;
    }
    if specs.is_empty() {
        crate::fakes::complain(
            "npm",
            "npm install -g needs a package (the simulator has no package.json to read)",
        );
        return 1;
    }
    let mut versions = Vec::new();
    for spec in specs {
        let (name, wanted) = split_spec(spec);
        if name != NPM_PACKAGE {
            return offline(&name.replace('/', "%2f"));
        }
        let real = claude_install::real_version();
        let version = match wanted {
            "" | "latest" | "stable" => real.unwrap_or_else(|| claude_install::LATEST.to_string()),
            v if real.is_some() && real.as_deref() != Some(v) => {
                return error_lines(&[
                    "code ETARGET".to_string(),
                    format!("notarget No matching version found for {NPM_PACKAGE}@{v} (this simulator's registry holds the real {NPM_PACKAGE}@{})", real.unwrap_or_default()),
                ])
            }
            v if claude_install::valid_target(v) => v.to_string(),
            v => {
                return error_lines(&[
                    "code ETARGET".to_string(),
                    format!("notarget No matching version found for {NPM_PACKAGE}@{v} (the simulator knows exact versions and the latest/stable tags)."),
                ])
            }
        };
        versions.push(version);
    }
    let prefix = guest_path(PREFIX);
    if crate::fakes::unprivileged() {
        return not_writable(&package_dir(&prefix));
    }
    for version in &versions {
        if let Err(e) = install_claude(&prefix, version) {
            return error_lines(&["code EACCES".to_string(), e]);
        }
    }
    say(&format!(
        "\nadded {} package{} in 1s",
        versions.len(),
        if versions.len() == 1 { "" } else { "s" }
    ));
    0
}

/// npm's answer when a non-root user installs into the root-owned global prefix.
fn not_writable(dir: &Path) -> i32 {
    let parent = dir.parent().unwrap_or(dir).display().to_string();
    error_lines(&[
        "code EACCES".into(),
        "syscall mkdir".into(),
        format!("path {parent}"),
        "errno -13".into(),
        format!("Error: EACCES: permission denied, mkdir '{parent}'"),
        "The operation was rejected by your operating system.".into(),
        "It is likely you do not have the permissions to access this file as the current user"
            .into(),
    ]);
    243
}

fn installed_claude(prefix: &Path) -> Option<String> {
    let manifest = std::fs::read(package_dir(prefix).join("package.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&manifest).ok()?;
    v["version"].as_str().map(String::from)
}

fn uninstall(specs: &[String]) -> i32 {
    let prefix = guest_path(PREFIX);
    if crate::fakes::unprivileged() && installed_claude(&prefix).is_some() {
        return not_writable(&package_dir(&prefix));
    }
    let mut removed = 0;
    for spec in specs {
        if split_spec(spec).0 == NPM_PACKAGE && installed_claude(&prefix).is_some() {
            let _ = crate::fsutil::remove_all(&package_dir(&prefix));
            let _ = std::fs::remove_file(prefix.join("bin/claude"));
            removed += 1;
        }
    }
    say(&format!(
        "\nremoved {removed} package{} in 1s",
        if removed == 1 { "" } else { "s" }
    ));
    0
}

pub fn main(args: &[OsString]) -> i32 {
    if !node_installed() {
        crate::fakes::complain(
            "npm",
            "command not found (the simulator's npm appears once apt-get has installed nodejs or npm)",
        );
        return 127;
    }
    let argv: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let global = argv
        .iter()
        .any(|a| a == "-g" || a == "--global" || a == "--location=global");
    if argv
        .iter()
        .any(|a| a == "--prefix" || a.starts_with("--prefix="))
    {
        crate::fakes::complain(
            "npm",
            "--prefix is not supported by the simulator (the global prefix is /usr/local)",
        );
        return 1;
    }
    // Words that are not options nor the values of options.
    let mut words: Vec<String> = Vec::new();
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            it.next();
        } else if !a.starts_with('-') {
            words.push(a.clone());
        }
    }
    if words.is_empty() && argv.iter().any(|a| a == "--version" || a == "-v") {
        say(NPM_VERSION);
        return 0;
    }
    let Some((command, rest)) = words.split_first() else {
        crate::output::stderr("npm <command>\n\nUsage:\n\nnpm install        install all the dependencies in your project\n");
        return 1;
    };
    let prefix = guest_path(PREFIX);
    match command.as_str() {
        "install" | "i" | "add" | "in" | "ins" | "inst" | "insta" | "instal" | "isnt"
        | "isntall" => install(rest, global),
        "uninstall" | "remove" | "rm" | "r" | "un" | "unlink" if global => uninstall(rest),
        "prefix" if global => {
            say(PREFIX);
            0
        }
        "root" if global => {
            say(&format!("{PREFIX}/lib/node_modules"));
            0
        }
        "config"
            if rest.first().map(String::as_str) == Some("get")
                && rest.get(1).map(String::as_str) == Some("prefix") =>
        {
            say(PREFIX);
            0
        }
        "ls" | "list" if global => {
            say(&format!("{PREFIX}/lib"));
            match installed_claude(&prefix) {
                Some(v) => say(&format!("└── {NPM_PACKAGE}@{v}")),
                None => say("└── (empty)"),
            }
            0
        }
        "version" if rest.is_empty() && !global => {
            say(&format!("{{ npm: '{NPM_VERSION}' }}"));
            0
        }
        other => offline(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_package_specs() {
        assert_eq!(
            split_spec("@anthropic-ai/claude-code@2.1.3"),
            ("@anthropic-ai/claude-code", "2.1.3")
        );
        assert_eq!(
            split_spec("@anthropic-ai/claude-code"),
            ("@anthropic-ai/claude-code", "")
        );
        assert_eq!(split_spec("left-pad@1.0.0"), ("left-pad", "1.0.0"));
        assert_eq!(split_spec("left-pad"), ("left-pad", ""));
    }

    #[test]
    fn installs_like_npm_links_bins() {
        let tmp = tempfile::tempdir().unwrap();
        install_claude(tmp.path(), "1.2.3").unwrap();
        assert_eq!(installed_claude(tmp.path()).as_deref(), Some("1.2.3"));
        let link = std::fs::read_link(tmp.path().join("bin/claude")).unwrap();
        assert_eq!(
            link,
            Path::new("../lib/node_modules/@anthropic-ai/claude-code/cli.js")
        );
        assert_eq!(
            claude_install::installed_version(&tmp.path().join("bin/claude")).as_deref(),
            Some("1.2.3")
        );
    }
}
