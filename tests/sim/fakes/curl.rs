//! Fake `curl`: serves the URLs in `urls.rs`; every other host fails to
//! resolve, as it would in a guest without network.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use crate::fakes::complain;
use crate::urls;

#[derive(Debug, Default, PartialEq)]
struct Opts {
    urls: Vec<String>,
    output: Option<PathBuf>,
    remote_name: bool,
    fail: bool,
    silent: bool,
    show_error: bool,
}

// Options that take a value (long and short forms).
const WITH_VALUE: &[&str] = &[
    "--output",
    "--header",
    "--request",
    "--data",
    "--data-raw",
    "--data-binary",
    "--user-agent",
    "--proto",
    "--proto-redir",
    "--retry",
    "--retry-delay",
    "--retry-max-time",
    "--connect-timeout",
    "--max-time",
    "--write-out",
    "--user",
    "--cacert",
    "--cert",
    "--key",
    "--referer",
    "--cookie",
    "--form",
    "--upload-file",
    "--range",
    "--continue-at",
    "--config",
    "--resolve",
    "--url",
];
const SHORT_WITH_VALUE: &str = "oHXdAmwueETCrKbF";
const FLAGS: &[&str] = &[
    "--fail",
    "--silent",
    "--show-error",
    "--location",
    "--insecure",
    "--compressed",
    "--create-dirs",
    "--progress-bar",
    "--remote-name",
    "--tlsv1.2",
    "--tlsv1.3",
    "--tlsv1",
    "--http1.1",
    "--http2",
    "--verbose",
    "--include",
    "--head",
    "--globoff",
    "--no-progress-meter",
    "--fail-with-body",
    "--ipv4",
    "--ipv6",
    "--retry-all-errors",
    "--retry-connrefused",
    "--netrc",
];
const SHORT_FLAGS: &str = "fsSLkO#vIign46";

fn unknown(opt: &str) -> String {
    format!(
        "option {opt}: is unknown\ncurl: try 'curl --help' or 'curl --manual' for more information"
    )
}

fn take_value(name: &str, value: String, o: &mut Opts) {
    match name {
        "--output" | "-o" => o.output = Some(PathBuf::from(value)),
        "--url" => o.urls.push(value),
        _ => {}
    }
}

fn flag(name: &str, o: &mut Opts) {
    match name {
        "--fail" | "--fail-with-body" | "-f" => o.fail = true,
        "--silent" | "-s" => o.silent = true,
        "--show-error" | "-S" => o.show_error = true,
        "--remote-name" | "-O" => o.remote_name = true,
        _ => {}
    }
}

fn parse(args: &[OsString]) -> Result<Opts, String> {
    let mut o = Opts::default();
    let mut it = args.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(a) = it.next() {
        if a == "--" {
            o.urls.extend(it.by_ref());
        } else if a.starts_with("--") {
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (a.clone(), None),
            };
            if WITH_VALUE.contains(&name.as_str()) {
                let value = inline
                    .or_else(|| it.next())
                    .ok_or_else(|| format!("option {name}: requires parameter"))?;
                take_value(&name, value, &mut o);
            } else if FLAGS.contains(&name.as_str()) {
                flag(&name, &mut o);
            } else {
                return Err(unknown(&name));
            }
        } else if a.starts_with('-') && a.len() > 1 {
            let chars: Vec<char> = a[1..].chars().collect();
            for (i, c) in chars.iter().enumerate() {
                let short = format!("-{c}");
                if SHORT_WITH_VALUE.contains(*c) {
                    let rest: String = chars[i + 1..].iter().collect();
                    let value = if rest.is_empty() {
                        it.next()
                            .ok_or_else(|| format!("option {short}: requires parameter"))?
                    } else {
                        rest
                    };
                    take_value(&short, value, &mut o);
                    break;
                } else if SHORT_FLAGS.contains(*c) {
                    flag(&short, &mut o);
                } else {
                    return Err(unknown(&short));
                }
            }
        } else {
            o.urls.push(a);
        }
    }
    Ok(o)
}

fn fetch(o: &Opts, url: &str) -> Result<Vec<u8>, (i32, String)> {
    let host = urls::url_host(url).unwrap_or_default();
    if let Some(known) = urls::lookup(url) {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from(crate::disk::GUEST_EXE));
        return Ok((known.body)(&exe));
    }
    if !urls::host_known(host) {
        return Err((6, format!("(6) Could not resolve host: {host}")));
    }
    if o.fail {
        return Err((22, "(22) The requested URL returned error: 404".into()));
    }
    Ok(b"<html><body>404 Not Found</body></html>\n".to_vec())
}

pub fn main(args: &[OsString]) -> i32 {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            complain("curl", &e);
            return 2;
        }
    };
    if o.urls.is_empty() {
        complain(
            "curl",
            "no URL specified\ncurl: try 'curl --help' or 'curl --manual' for more information",
        );
        return 2;
    }
    for url in &o.urls {
        let body = match fetch(&o, url) {
            Ok(b) => b,
            Err((code, msg)) => {
                if !o.silent || o.show_error {
                    complain("curl", &msg);
                }
                return code;
            }
        };
        let target = match (&o.output, o.remote_name) {
            (Some(p), _) => Some(p.clone()),
            (None, true) => Some(PathBuf::from(
                url.rsplit('/').next().unwrap_or("index.html"),
            )),
            _ => None,
        };
        let written = match &target {
            Some(p) if p.as_os_str() != "-" => std::fs::write(p, &body),
            _ => std::io::stdout().write_all(&body),
        };
        if let Err(e) = written {
            complain(
                "curl",
                &format!("(23) Failure writing output to destination: {e}"),
            );
            return 23;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_installer_command_lines() {
        let o = parse(&os(&[
            "--proto",
            "=https",
            "--tlsv1.2",
            "-fsSL",
            "https://claude.ai/install.sh",
        ]))
        .unwrap();
        assert_eq!(o.urls, vec!["https://claude.ai/install.sh"]);
        assert!(o.fail && o.silent && o.show_error);
        let o = parse(&os(&["-fsSLo", "/tmp/k.gpg", "https://x/k"])).unwrap();
        assert_eq!(o.output, Some(PathBuf::from("/tmp/k.gpg")));
        let o = parse(&os(&["--output=/o", "--retry", "3", "u"])).unwrap();
        assert_eq!(
            (o.output, o.urls),
            (Some(PathBuf::from("/o")), vec!["u".to_string()])
        );
        assert!(parse(&os(&["--bogus", "u"]))
            .unwrap_err()
            .contains("is unknown"));
    }

    #[test]
    fn unknown_hosts_do_not_resolve() {
        let o = Opts {
            fail: true,
            ..Opts::default()
        };
        assert_eq!(fetch(&o, "https://example.com/x").unwrap_err().0, 6);
        assert_eq!(fetch(&o, "https://claude.ai/nope").unwrap_err().0, 22);
        assert!(fetch(&o, "https://claude.ai/install.sh").is_ok());
    }
}
