//! The remote command `limactl shell` sends over ssh, built exactly as
//! Lima's shell.go builds it, plus `--preserve-env`'s variable filter.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::config::Mount;
use crate::gofmt::shell_quote;

fn canonical_or_raw(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// `mountsContainPath`: is `path` at or under a mount's (host) location?
pub fn mounts_contain_path(mounts: &[Mount], path: &Path) -> bool {
    let path = canonical_or_raw(path);
    mounts.iter().any(|m| {
        let loc = canonical_or_raw(Path::new(&m.location));
        loc == Path::new("/") || path == loc || path.starts_with(&loc)
    })
}

fn join(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The `cd` part: `--workdir` (must succeed), else the host's current
/// directory or home when a mount holds them, else `false` (stay in the
/// guest home).
pub fn change_dir_cmd(
    workdir: &str,
    mounts: &[Mount],
    cwd: Option<&Path>,
    home: Option<&Path>,
) -> Vec<u8> {
    if !workdir.is_empty() {
        return join(&[b"cd ", &shell_quote(workdir.as_bytes()), b" || exit 1"]);
    }
    if let Some(cwd) = cwd.filter(|c| mounts_contain_path(mounts, c)) {
        let mut cmd = join(&[b"cd ", &shell_quote(cwd.as_os_str().as_bytes())]);
        if let Some(home) = home {
            cmd = join(&[&cmd, b" || cd ", &shell_quote(home.as_os_str().as_bytes())]);
        }
        return cmd;
    }
    if let Some(home) = home.filter(|h| mounts_contain_path(mounts, h)) {
        return join(&[b"cd ", &shell_quote(home.as_os_str().as_bytes())]);
    }
    b"false".to_vec()
}

fn is_env(arg: &[u8]) -> bool {
    arg.contains(&b'=')
}

fn quote_env(arg: &[u8]) -> Vec<u8> {
    let eq = arg.iter().position(|b| *b == b'=').unwrap_or(arg.len());
    let value = arg.get(eq + 1..).unwrap_or_default();
    join(&[&arg[..eq], b"=", &shell_quote(value)])
}

/// `CD ; exec [env K=V ...] SHELL -l [-c 'ARGS']`, where leading `K=V`
/// arguments stay assignments and the rest are quoted words.
pub fn remote_script(
    change_dir: &[u8],
    env_prefix: &[u8],
    shell: &[u8],
    args: &[OsString],
) -> Vec<u8> {
    let mut script = join(&[change_dir, b" ; exec ", env_prefix, shell, b" -l"]);
    if !args.is_empty() {
        let mut parsing_env = true;
        let words: Vec<Vec<u8>> = args
            .iter()
            .map(|a| {
                let a = a.as_bytes();
                if parsing_env && is_env(a) {
                    quote_env(a)
                } else {
                    parsing_env = false;
                    shell_quote(a)
                }
            })
            .collect();
        script = join(&[&script, b" -c ", &shell_quote(&words.join(&b' '))]);
    }
    script
}

/// The `env K=V ... ` prefix for `--preserve-env`.
pub fn env_prefix(vars: &[String]) -> Vec<u8> {
    if vars.is_empty() {
        return Vec::new();
    }
    let mut out = b"env ".to_vec();
    for v in vars {
        out.extend(shell_quote(v.as_bytes()));
        out.push(b' ');
    }
    out
}

const DEFAULT_BLOCK: &[&str] = &[
    "BASH*",
    "DISPLAY",
    "DYLD_*",
    "EUID",
    "FPATH",
    "GID",
    "GROUP",
    "HOME",
    "HOSTNAME",
    "LD_*",
    "LOGNAME",
    "OLDPWD",
    "PATH",
    "PWD",
    "SHELL",
    "SHLVL",
    "SSH_*",
    "TERM",
    "TERMINFO",
    "TMPDIR",
    "UID",
    "USER",
    "XAUTHORITY",
    "XDG_*",
    "ZDOTDIR",
    "ZSH*",
    "_*",
];

fn matches(name: &str, pattern: &str) -> bool {
    match pattern.split_once('*') {
        None => name == pattern,
        Some((prefix, rest)) => {
            if !name.starts_with(prefix) {
                return false;
            }
            let tail = &name[prefix.len()..];
            rest.is_empty()
                || (0..=tail.len()).any(|i| tail.is_char_boundary(i) && matches(&tail[i..], rest))
        }
    }
}

fn pattern_list(var: &str, value: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for p in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((pos, ch)) = p
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '*'))
        {
            return Err(format!(
                "Invalid {var} pattern: pattern {} contains invalid character {} at position {pos}",
                crate::gofmt::quote(p),
                crate::gofmt::quote(&ch.to_string())
            ));
        }
        out.push(p.to_string());
    }
    Ok(out)
}

/// `envutil.FilterEnvironment` with LIMA_SHELLENV_ALLOW / LIMA_SHELLENV_BLOCK.
pub fn filter_environment(
    env: &[(String, String)],
    allow: &str,
    block: &str,
) -> Result<Vec<String>, String> {
    let allow = pattern_list("LIMA_SHELLENV_ALLOW", allow)?;
    let mut blocks: Vec<String> = DEFAULT_BLOCK.iter().map(|s| s.to_string()).collect();
    if !block.is_empty() {
        let extra = pattern_list("LIMA_SHELLENV_BLOCK", block.trim_start_matches('+'))?;
        if !block.starts_with('+') {
            blocks.clear();
        }
        blocks.extend(extra);
    }
    Ok(env
        .iter()
        .filter(|(k, _)| {
            allow.iter().any(|p| matches(k, p)) || !blocks.iter().any(|p| matches(k, p))
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn script_matches_lima() {
        let s = remote_script(b"false", b"", b"\"$SHELL\"", &[]);
        assert_eq!(s, b"false ; exec \"$SHELL\" -l");
        let s = remote_script(
            b"cd /p",
            b"",
            b"\"$SHELL\"",
            &os(&["FOO=a b", "echo", "it's", "$HOME"]),
        );
        assert_eq!(
            String::from_utf8(s).unwrap(),
            "cd /p ; exec \"$SHELL\" -l -c 'FOO='\"'\"'a b'\"'\"' echo '\"'\"'it'\"'\"'\"'\"'\"'\"'\"'\"'s'\"'\"' '\"'\"'$HOME'\"'\"''"
        );
        let s = remote_script(b"false", b"", b"/bin/zsh", &os(&["ls", "A=1"]));
        assert_eq!(s, b"false ; exec /bin/zsh -l -c 'ls A=1'");
    }

    #[test]
    fn change_dir_rules() {
        let tmp = tempfile::tempdir().unwrap();
        let proj = tmp.path().join("proj");
        std::fs::create_dir(&proj).unwrap();
        let mounts = vec![Mount {
            location: proj.to_string_lossy().into(),
            mount_point: "/x".into(),
            writable: true,
        }];
        assert_eq!(
            change_dir_cmd("/w d", &mounts, None, None),
            b"cd '/w d' || exit 1"
        );
        let cmd = change_dir_cmd(
            "",
            &mounts,
            Some(&proj.join("sub")),
            Some(Path::new("/home/u")),
        );
        assert_eq!(
            cmd,
            format!("cd {} || cd /home/u", proj.join("sub").display()).into_bytes()
        );
        assert_eq!(
            change_dir_cmd("", &mounts, Some(tmp.path()), Some(Path::new("/home/u"))),
            b"false"
        );
        assert_eq!(change_dir_cmd("", &[], Some(&proj), None), b"false");
    }

    #[test]
    fn preserve_env_filter() {
        let env: Vec<(String, String)> = [
            ("HOME", "/h"),
            ("FOO", "1"),
            ("SSH_AUTH_SOCK", "/s"),
            ("_X", "y"),
            ("BAR", "2"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            filter_environment(&env, "", "").unwrap(),
            vec!["FOO=1", "BAR=2"]
        );
        assert_eq!(
            filter_environment(&env, "HOME", "+BAR").unwrap(),
            vec!["HOME=/h", "FOO=1"]
        );
        assert_eq!(
            filter_environment(&env, "", "FOO").unwrap(),
            vec!["HOME=/h", "SSH_AUTH_SOCK=/s", "_X=y", "BAR=2"]
        );
        assert!(filter_environment(&env, "A-B", "").is_err());
        assert_eq!(env_prefix(&["A=1 2".into()]), b"env 'A=1 2' ");
    }
}
