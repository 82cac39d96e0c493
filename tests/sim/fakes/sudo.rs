//! Fake `sudo`: the guest user may run anything as root without a
//! password. In namespace mode commands already run as root, so this only
//! reproduces sudo's command line and environment handling.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::fakes::complain;

const SECURE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const USAGE: &str = "usage: sudo [-EHnS] [-u user] [VAR=value] [--] command [arg ...]";

#[derive(Debug, Default, PartialEq)]
struct Opts {
    preserve_env: bool,
    set_home: bool,
    user: Option<String>,
    assignments: Vec<(String, String)>,
    command: Vec<OsString>,
}

fn parse(args: &[OsString]) -> Result<Opts, String> {
    let mut o = Opts::default();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].to_string_lossy().into_owned();
        i += 1;
        match a.as_str() {
            "--" => break,
            "--preserve-env" => o.preserve_env = true,
            "--set-home" => o.set_home = true,
            "--non-interactive" | "--stdin" | "--reset-timestamp" => {}
            "--user" => {
                o.user = Some(
                    args.get(i)
                        .ok_or("option requires an argument -- 'u'")?
                        .to_string_lossy()
                        .into(),
                );
                i += 1;
            }
            s if s.starts_with("--user=") => o.user = Some(s["--user=".len()..].into()),
            s if s.starts_with("--preserve-env=") => o.preserve_env = true,
            s if s.starts_with("--") => return Err(format!("unrecognized option '{s}'")),
            s if s.starts_with('-') && s.len() > 1 => {
                let flags: Vec<char> = s[1..].chars().collect();
                for (j, c) in flags.iter().enumerate() {
                    match c {
                        'E' => o.preserve_env = true,
                        'H' => o.set_home = true,
                        'n' | 'S' | 'k' => {}
                        'u' => {
                            let rest: String = flags[j + 1..].iter().collect();
                            if rest.is_empty() {
                                o.user = Some(
                                    args.get(i)
                                        .ok_or("option requires an argument -- 'u'")?
                                        .to_string_lossy()
                                        .into(),
                                );
                                i += 1;
                            } else {
                                o.user = Some(rest);
                            }
                            break;
                        }
                        c => return Err(format!("invalid option -- '{c}'")),
                    }
                }
            }
            _ => {
                i -= 1;
                break;
            }
        }
    }
    while let Some(a) = args.get(i) {
        let text = a.to_string_lossy();
        match text.split_once('=') {
            Some((k, v)) if !k.is_empty() && !k.contains('/') => {
                o.assignments.push((k.to_string(), v.to_string()));
                i += 1;
            }
            _ => break,
        }
    }
    if args.get(i).is_some_and(|a| a == "--") {
        i += 1;
    }
    o.command = args[i..].to_vec();
    Ok(o)
}

// The target user's home: root's, or the caller's own for the guest user.
fn home_of(user: &str) -> Option<String> {
    if user == "root" {
        return Some("/root".into());
    }
    if std::env::var("USER").ok().as_deref() == Some(user) {
        return std::env::var("HOME").ok();
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 5 && f[0] == user)
        .map(|f| f[5].to_string())
}

pub fn main(args: &[OsString]) -> i32 {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            complain("sudo", &e);
            crate::output::stderr(&format!("{USAGE}\n"));
            return 1;
        }
    };
    if o.command.is_empty() {
        crate::output::stderr(&format!("{USAGE}\n"));
        return 1;
    }
    let user = o.user.clone().unwrap_or_else(|| "root".into());
    let Some(home) = home_of(&user) else {
        complain("sudo", &format!("unknown user {user}"));
        return 1;
    };
    let mut cmd = Command::new(&o.command[0]);
    cmd.args(&o.command[1..]);
    let caller = std::env::var("USER").unwrap_or_else(|_| "root".into());
    if !o.preserve_env {
        // env_reset: a minimal environment for the target user.
        cmd.env_clear();
        for keep in ["TERM", "LANG", "LC_ALL", "DISPLAY", "COLORTERM"] {
            if let Some(v) = std::env::var_os(keep) {
                cmd.env(keep, v);
            }
        }
        for keep in [crate::agent::FALLBACK_MARKER] {
            if let Some(v) = std::env::var_os(keep) {
                cmd.env(keep, v);
            }
        }
        cmd.env("HOME", &home)
            .env("USER", &user)
            .env("LOGNAME", &user)
            .env("SHELL", "/bin/bash");
    } else if o.set_home {
        cmd.env("HOME", &home);
    }
    cmd.env("PATH", SECURE_PATH)
        .env("SUDO_USER", &caller)
        .env("SUDO_UID", crate::sys::getuid().to_string())
        .env(
            "SUDO_COMMAND",
            o.command
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
        );
    if std::env::var_os(crate::agent::FALLBACK_MARKER).is_some() {
        // Fallback mode: keep the simulator's tools in front.
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{path}:{SECURE_PATH}"));
    }
    for (k, v) in &o.assignments {
        cmd.env(k, v);
    }
    let err = cmd.exec();
    complain(
        "sudo",
        &format!(
            "{}: command not found ({err})",
            o.command[0].to_string_lossy()
        ),
    );
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_sudo_command_lines() {
        let o = parse(&os(&[
            "-E", "-H", "-n", "-u", "bob", "A=1", "--", "apt-get", "-y",
        ]))
        .unwrap();
        assert!(o.preserve_env && o.set_home);
        assert_eq!(o.user.as_deref(), Some("bob"));
        assert_eq!(o.assignments, vec![("A".into(), "1".into())]);
        assert_eq!(o.command, os(&["apt-get", "-y"]));
        let o = parse(&os(&[
            "-EHubob",
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "install",
        ]))
        .unwrap();
        assert_eq!(o.user.as_deref(), Some("bob"));
        assert_eq!(o.command, os(&["apt-get", "install"]));
        let o = parse(&os(&["--", "ls", "-l"])).unwrap();
        assert_eq!(o.command, os(&["ls", "-l"]));
        assert!(parse(&os(&["-Z", "ls"])).is_err());
    }
}
