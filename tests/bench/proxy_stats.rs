//! The proxy benchmark's arithmetic and its table; pure, tested by `--test bench_proxy`.

/// The median of the samples (the mean of the middle two for an even count); NaN when empty.
pub fn median(samples: &[f64]) -> f64 {
    percentile(samples, 50.0)
}

/// Linear interpolation between the closest ranks (p in 0..=100); NaN when empty.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = (p.clamp(0.0, 100.0) / 100.0) * (v.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (rank - lo as f64)
}

/// Events per second; 0 for no time.
pub fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        0.0
    } else {
        count as f64 / seconds
    }
}

/// Proxy as a percentage of direct.
pub fn percent_of(proxy: f64, direct: f64) -> f64 {
    if direct <= 0.0 {
        0.0
    } else {
        100.0 * proxy / direct
    }
}

/// Bytes per process-memory delta, per item: the growth in KiB divided over `items`.
pub fn kib_each(before_kib: u64, after_kib: u64, items: u64) -> f64 {
    if items == 0 {
        return 0.0;
    }
    after_kib.saturating_sub(before_kib) as f64 / items as f64
}

/// `VmRSS` from the text of /proc/self/status, in KiB.
pub fn rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// One line of the table: what, direct, proxied, the difference, the goal and whether met.
pub struct Row {
    pub what: String,
    pub direct: String,
    pub proxy: String,
    pub delta: String,
    pub goal: String,
    /// None when the row has no goal.
    pub met: Option<bool>,
}

pub fn table(rows: &[Row]) -> String {
    let head = ["", "direct", "proxy", "difference", "goal", ""];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.what.clone(),
                r.direct.clone(),
                r.proxy.clone(),
                r.delta.clone(),
                r.goal.clone(),
                match r.met {
                    Some(true) => "met".into(),
                    Some(false) => "MISSED".into(),
                    None => String::new(),
                },
            ]
        })
        .collect();
    let mut width = head.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: [&str; 6]| {
        let mut out = String::new();
        for (i, (c, w)) in cols.iter().zip(width).enumerate() {
            let pad = w - c.chars().count();
            if i == 0 {
                out.push_str(c);
                out.push_str(&" ".repeat(pad));
            } else {
                out.push_str("  ");
                out.push_str(&" ".repeat(pad));
                out.push_str(c);
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(head);
    for row in &cells {
        out.push_str(&line([
            &row[0], &row[1], &row[2], &row[3], &row[4], &row[5],
        ]));
    }
    out
}

/// Microseconds with a unit, as the table shows them.
pub fn micros(us: f64) -> String {
    if us.abs() >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}
