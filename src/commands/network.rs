//! `claude-vm network log [SESSION] [--json] [--follow]`: the proxy's log, per host.

use std::io::{BufRead, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::Context;
use crate::error::{Error, Result};
use crate::net::log::{self, HostSummary, Record, Verdict};
use crate::ui::escape;

pub fn log(ctx: &Context, session: Option<&str>, follow: bool, json: bool) -> Result<i32> {
    let dir = crate::network::log_dir(&ctx.paths);
    if let Some(s) = session {
        if log::file_name(s).is_none() {
            return Err(
                Error::usage(format!("`{}` is not a session name", escape(s))).with_hint(
                    "pass a VM name as `claude-vm list` or the session's last line shows it",
                ),
            );
        }
    }
    if follow {
        return follow_log(&ctx.ui, &dir, session, json);
    }
    let read = log::read(&dir, session).map_err(|e| {
        Error::failure(format!(
            "cannot read the network log in {}: {e}",
            dir.display()
        ))
    })?;
    let hosts = log::summarize(&read.records);
    if json {
        let doc = serde_json::json!({
            "hosts": hosts,
            "requests": read.records,
            "unreadable_lines": read.unreadable_lines,
        });
        crate::outln!("{doc:#}");
        return Ok(0);
    }
    if hosts.is_empty() {
        crate::outln!(
            "no requests logged{} (sessions log to {})",
            session.map(|s| format!(" for {s}")).unwrap_or_default(),
            dir.display()
        );
        return Ok(0);
    }
    crate::out!("{}", render(&hosts));
    if read.unreadable_lines > 0 {
        ctx.ui.warn(&format!(
            "{} lines of the log could not be read",
            read.unreadable_lines
        ));
    }
    Ok(0)
}

/// One row per host: `HOST COUNT DECISION FIRST LAST RULE`, hosts escaped (they came from
/// the guest).
fn render(hosts: &[HostSummary]) -> String {
    let mut rows = vec![[
        "HOST".to_owned(),
        "REQUESTS".to_owned(),
        "DECISION".to_owned(),
        "FIRST SEEN".to_owned(),
        "LAST SEEN".to_owned(),
        "DENIED BY".to_owned(),
    ]];
    for h in hosts {
        let decision = match (h.allowed, h.denied) {
            (_, 0) => "allowed".to_owned(),
            (0, _) => "denied".to_owned(),
            (a, d) => format!("{a} allowed, {d} denied"),
        };
        rows.push([
            escape(&h.host),
            h.count.to_string(),
            decision,
            h.first_seen.clone(),
            h.last_seen.clone(),
            escape(&h.denied_by.join("; ")),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `time session METHOD host:port allowed|denied rule`.
fn line(r: &Record) -> String {
    let verdict = match r.decision {
        Verdict::Allowed => "allowed",
        Verdict::Denied => "denied",
    };
    escape(&format!(
        "{} {} {} {}:{} {verdict} {}",
        r.time, r.session, r.method, r.host, r.port, r.rule
    ))
}

/// Prints what is logged from now on, polling the files (new sessions' too), until SIGINT,
/// SIGTERM or SIGHUP, which end it with 128 + the signal (every whole line printed first).
fn follow_log(ui: &crate::ui::Ui, dir: &Path, session: Option<&str>, json: bool) -> Result<i32> {
    crate::signals::install();
    let mut offsets: Vec<(PathBuf, u64)> = Vec::new();
    let mut first = true;
    loop {
        // One more pass after a signal: what was logged before it is printed.
        let stop = crate::signals::received();
        for path in files(dir, session) {
            let known = offsets.iter().position(|(p, _)| *p == path);
            let Ok(mut file) = std::fs::File::open(&path) else {
                continue;
            };
            let end = file.metadata().map(|m| m.len()).unwrap_or(0);
            let start = match known {
                Some(i) => offsets[i].1,
                // Files there when following began: from their end; later ones: whole.
                None if first => end,
                None => 0,
            };
            if end < start || file.seek(SeekFrom::Start(start)).is_err() {
                continue;
            }
            let mut reader = std::io::BufReader::new(file);
            let mut pos = start;
            let mut buf = String::new();
            while let Ok(n) = reader.read_line(&mut buf) {
                if n == 0 || !buf.ends_with('\n') {
                    break; // a line still being written: read it next time
                }
                pos += n as u64;
                if let Ok(r) = serde_json::from_str::<Record>(buf.trim_end()) {
                    if json {
                        crate::outln!("{}", serde_json::to_string(&r).unwrap_or_default());
                    } else {
                        crate::outln!("{}", line(&r));
                    }
                }
                buf.clear();
            }
            match known {
                Some(i) => offsets[i].1 = pos,
                None => offsets.push((path, pos)),
            }
        }
        if let Some(sig) = stop {
            return Ok(crate::signals::exit_code(sig));
        }
        if first {
            ui.info(&format!(
                "following {} (new lines as they are logged; Ctrl-C ends)",
                dir.display()
            ));
        }
        first = false;
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

fn files(dir: &Path, session: Option<&str>) -> Vec<PathBuf> {
    if let Some(name) = session.and_then(log::file_name) {
        return vec![dir.join(name)];
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_escape_what_the_guest_chose() {
        let h = HostSummary {
            host: "evil\u{1b}[2J.example".into(),
            count: 3,
            allowed: 1,
            denied: 2,
            first_seen: "t1".into(),
            last_seen: "t2".into(),
            denied_by: vec!["not in allow".into()],
            bytes_up: 0,
            bytes_down: 0,
        };
        let text = render(&[h]);
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(text.contains("1 allowed, 2 denied"), "{text}");
        assert!(text.lines().next().unwrap().starts_with("HOST"));
    }
}
