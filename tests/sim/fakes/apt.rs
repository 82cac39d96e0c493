//! Fake `apt-get`: records what a provisioning script asked for, so tests
//! can assert it. Every call is logged to /var/lib/limasim/apt.log and
//! installed package names go to /var/lib/limasim/installed.
//!
//! `update` reads the configured repositories (`apt_sources.rs`): one whose
//! `signed-by` keyring is missing fails as unsigned, one on an unknown host
//! cannot be fetched; the others are recorded in /var/lib/limasim/lists.
//! `install` finds a third-party package (docker-ce, ...) only once its
//! repository has been updated, like apt.

use std::ffi::OsString;
use std::io::Write;

use crate::apt_sources::{self, Repo};
use crate::fakes::{complain, guest_path};

const STATE: &str = "/var/lib/limasim";

#[derive(Debug, PartialEq)]
struct Call {
    command: String,
    packages: Vec<String>,
    quiet: u32,
}

fn bad_option(opt: &str) -> String {
    format!("E: Command line option '{opt}' [from {opt}] is not understood in combination with the other options.")
}

fn parse(args: &[OsString]) -> Result<Call, String> {
    let mut words = Vec::new();
    let mut quiet = 0;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].to_string_lossy().into_owned();
        i += 1;
        match a.as_str() {
            "-o" | "--option" | "-c" | "--config-file" | "-t" | "--target-release" => {
                if i >= args.len() {
                    return Err(format!("E: Option {a} requires an argument."));
                }
                i += 1;
            }
            "-q" | "--quiet" | "--silent" => quiet += 1,
            "-qq" => quiet += 2,
            "-y"
            | "--yes"
            | "--assume-yes"
            | "-f"
            | "--fix-broken"
            | "--no-install-recommends"
            | "--install-recommends"
            | "--no-upgrade"
            | "--only-upgrade"
            | "--reinstall"
            | "-V"
            | "--verbose-versions"
            | "--allow-downgrades"
            | "--allow-remove-essential"
            | "--allow-change-held-packages"
            | "--allow-unauthenticated"
            | "--no-install-suggests"
            | "-d"
            | "--download-only"
            | "--purge"
            | "--auto-remove"
            | "--autoremove"
            | "-m"
            | "--ignore-missing"
            | "--fix-missing" => {}
            s if s.starts_with("-o") || s.starts_with("--option=") || s.starts_with("--quiet=") => {
                if let Some(n) = s.strip_prefix("--quiet=") {
                    quiet = n.parse().unwrap_or(1);
                }
            }
            s if s.starts_with("-q=") => quiet = s[3..].parse().unwrap_or(1),
            s if s.starts_with('-') => return Err(bad_option(s)),
            _ => words.push(a),
        }
    }
    let Some((command, packages)) = words.split_first() else {
        return Err("E: No operation specified".into());
    };
    Ok(Call {
        command: command.clone(),
        packages: packages.to_vec(),
        quiet,
    })
}

fn append(path: &std::path::Path, lines: &[String]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    for line in lines {
        writeln!(f, "{line}")?;
    }
    Ok(())
}

fn installed() -> Vec<String> {
    std::fs::read_to_string(guest_path(&format!("{STATE}/installed")))
        .map(|s| s.lines().map(String::from).collect())
        .unwrap_or_default()
}

fn updated_hosts() -> Vec<String> {
    std::fs::read_to_string(guest_path(&format!("{STATE}/lists")))
        .map(|s| s.lines().map(String::from).collect())
        .unwrap_or_default()
}

// `apt-get update`: fetch what can be fetched, then fail on unsigned ones.
fn update(say: &dyn Fn(&str)) -> Result<(), String> {
    let repos: Vec<Repo> = apt_sources::read_all(&guest_path("/etc/apt"));
    let mut hosts: Vec<String> = Vec::new();
    let mut unsigned = Vec::new();
    let mut failed = false;
    let mut n = 0;
    for repo in &repos {
        for suite in &repo.suites {
            n += 1;
            let release = format!("{} {suite} InRelease", repo.uri);
            let host = apt_sources::host_of(&repo.uri);
            if !apt_sources::host_known(&repo.uri) {
                say(&format!("Err:{n} {release}\n  Could not resolve '{host}'"));
                crate::output::stderr(&format!(
                    "W: Failed to fetch {}/dists/{suite}/InRelease  Could not resolve '{host}'\n",
                    repo.uri.trim_end_matches('/')
                ));
                failed = true;
            } else if repo
                .signed_by
                .as_deref()
                .is_some_and(|k| !guest_path(k).exists())
            {
                say(&format!("Get:{n} {release} (simulated)"));
                unsigned.push(release);
            } else {
                say(&format!("Get:{n} {release} (simulated)"));
                if !hosts.iter().any(|h| h == host) {
                    hosts.push(host.to_string());
                }
            }
        }
    }
    let lists = guest_path(&format!("{STATE}/lists"));
    let text: String = hosts.iter().map(|h| format!("{h}\n")).collect();
    std::fs::write(&lists, text).map_err(|e| format!("E: {e}"))?;
    say("Reading package lists... Done");
    if failed {
        crate::output::stderr(
            "W: Some index files failed to download. They have been ignored, or old ones used instead.\n",
        );
    }
    if !unsigned.is_empty() {
        let errs: Vec<String> = unsigned
            .iter()
            .map(|r| format!("E: The repository '{r}' is not signed."))
            .collect();
        return Err(errs.join("\n"));
    }
    Ok(())
}

fn run(call: &Call) -> Result<(), String> {
    let say = |s: &str| {
        if call.quiet < 2 {
            crate::output::stdout_lossy(&format!("{s}\n"));
        }
    };
    match call.command.as_str() {
        "update" => update(&say)?,
        "install" => {
            say("Reading package lists... Done");
            let updated = updated_hosts();
            let missing: Vec<String> = call
                .packages
                .iter()
                .filter(|p| {
                    apt_sources::THIRD_PARTY
                        .iter()
                        .any(|(pkg, host)| pkg == p && !updated.iter().any(|h| h == host))
                })
                .map(|p| format!("E: Unable to locate package {p}"))
                .collect();
            if !missing.is_empty() {
                return Err(missing.join("\n"));
            }
            let have = installed();
            let new: Vec<String> = call
                .packages
                .iter()
                .filter(|p| !have.contains(p))
                .cloned()
                .collect();
            append(&guest_path(&format!("{STATE}/installed")), &new)
                .map_err(|e| format!("E: {e}"))?;
            say(&format!(
                "0 upgraded, {} newly installed, 0 to remove and 0 not upgraded.",
                new.len()
            ));
        }
        "remove" | "purge" => {
            say("Reading package lists... Done");
            let keep: Vec<String> = installed()
                .into_iter()
                .filter(|p| !call.packages.contains(p))
                .collect();
            let path = guest_path(&format!("{STATE}/installed"));
            let text: String = keep.iter().map(|p| format!("{p}\n")).collect();
            std::fs::write(&path, text).map_err(|e| format!("E: {e}"))?;
        }
        other => return Err(format!("E: Invalid operation {other}")),
    }
    Ok(())
}

/// What apt-get prints when a non-root user asks for an operation that takes its locks.
fn needs_root(argv: &[String]) -> Option<&'static str> {
    let op = argv.iter().find(|a| !a.starts_with('-'))?;
    match op.as_str() {
        "update" => Some("Reading package lists... Done\nE: Could not open lock file /var/lib/apt/lists/lock - open (13: Permission denied)\nE: Unable to lock directory /var/lib/apt/lists/\n"),
        "install" | "remove" | "purge" => Some("E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)\nE: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?\n"),
        _ => None,
    }
}

pub fn main(args: &[OsString]) -> i32 {
    let argv: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if crate::fakes::unprivileged() {
        if let Some(text) = needs_root(&argv) {
            crate::output::stderr(text);
            return 100;
        }
    }
    let log = serde_json::to_string(&argv).unwrap_or_default();
    if let Err(e) = append(&guest_path(&format!("{STATE}/apt.log")), &[log]) {
        complain(
            "E",
            &format!("Could not open lock file {STATE}/apt.log - open ({e})"),
        );
        return 100;
    }
    match parse(args).and_then(|call| run(&call)) {
        Ok(()) => 0,
        Err(e) => {
            crate::output::stderr(&format!("{e}\n"));
            100
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_common_invocations() {
        let c = parse(&os(&[
            "-y",
            "-qq",
            "-o",
            "Dpkg::Options::=--force-confold",
            "--no-install-recommends",
            "install",
            "git",
            "curl",
        ]))
        .unwrap();
        assert_eq!(
            c,
            Call {
                command: "install".into(),
                packages: vec!["git".into(), "curl".into()],
                quiet: 2
            }
        );
        assert_eq!(parse(&os(&["update", "-q"])).unwrap().command, "update");
        assert!(parse(&os(&["--bogus", "install"]))
            .unwrap_err()
            .contains("is not understood"));
        assert!(parse(&os(&["-y"])).is_err());
        assert!(run(&Call {
            command: "dist-upgrade".into(),
            packages: vec![],
            quiet: 2
        })
        .is_err());
    }
}
