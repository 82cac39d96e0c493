//! The proxy benchmark's arithmetic under `cargo test --test bench_proxy`; the benchmark
//! itself (`cargo bench --bench proxy`) never runs under `cargo test`.

#[allow(dead_code)]
mod proxy_stats;

use proxy_stats::*;

#[test]
fn median_and_percentiles() {
    assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    assert_eq!(median(&[7.0]), 7.0);
    assert!(median(&[]).is_nan());
    let hundred: Vec<f64> = (1..=101).map(f64::from).collect();
    assert_eq!(percentile(&hundred, 99.0), 100.0);
    assert_eq!(percentile(&hundred, 0.0), 1.0);
    assert_eq!(percentile(&hundred, 100.0), 101.0);
    assert_eq!(percentile(&[1.0, 2.0], 75.0), 1.75);
}

#[test]
fn rates_ratios_and_memory() {
    assert_eq!(per_second(500, 0.25), 2000.0);
    assert_eq!(per_second(5, 0.0), 0.0);
    assert_eq!(percent_of(90.0, 100.0), 90.0);
    assert_eq!(percent_of(1.0, 0.0), 0.0);
    assert_eq!(kib_each(1000, 3000, 100), 20.0);
    assert_eq!(
        kib_each(3000, 1000, 100),
        0.0,
        "a shrinking process costs nothing"
    );
    assert_eq!(kib_each(1, 2, 0), 0.0);
    let status = "Name:\tbench\nVmPeak:\t  9999 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
    assert_eq!(rss_kib(status), Some(12345));
    assert_eq!(rss_kib("Name:\tx\n"), None);
}

#[test]
fn table_aligns_columns_and_marks_goals() {
    let rows = [
        Row {
            what: "latency median".into(),
            direct: "40 µs".into(),
            proxy: "95 µs".into(),
            delta: "+55 µs".into(),
            goal: "< 1 ms added".into(),
            met: Some(true),
        },
        Row {
            what: "100 MB".into(),
            direct: "2000 MB/s".into(),
            proxy: "1500 MB/s".into(),
            delta: "75%".into(),
            goal: ">= 90%".into(),
            met: Some(false),
        },
        Row {
            what: "memory".into(),
            direct: "".into(),
            proxy: "1.0 KiB".into(),
            delta: "".into(),
            goal: "".into(),
            met: None,
        },
    ];
    let text = table(&rows);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[1].starts_with("latency median"));
    assert!(lines[1].ends_with("met"));
    assert!(lines[2].ends_with("MISSED"));
    assert!(lines[3].ends_with("1.0 KiB"));
    // Right-aligned columns end at the same place.
    let end = |l: &str, cell: &str| l.find(cell).map(|i| l[..i + cell.len()].chars().count());
    assert_eq!(end(lines[1], "95 µs"), end(lines[2], "1500 MB/s"));
    assert_eq!(micros(55.4), "55 µs");
    assert_eq!(micros(1500.0), "1.50 ms");
}
