//! Progress on a terminal (spinners, then ✓ lines with durations), plain lines elsewhere,
//! NO_COLOR, --quiet, --verbose, and claude's own output left alone.

use crate::pty::strip_ansi;
use crate::support::*;

/// indicatif's default spinner frames are braille patterns.
fn is_frame(c: char) -> bool {
    ('\u{2801}'..='\u{28ff}').contains(&c)
}

fn has_spinner_for(transcript: &str, step: &str) -> bool {
    strip_ansi(transcript)
        .split(['\r', '\n'])
        .any(|l| l.contains(step) && l.chars().next().is_some_and(is_frame))
}

#[test]
fn setup_on_a_terminal_spins_then_prints_counted_check_lines_with_durations() {
    let w = World::new();
    let r = w.run_pty(&["setup"], &[("LIMA_SIM_DELAY", "start=1")]);
    r.ok();
    assert!(
        has_spinner_for(&r.transcript, "[2/4] booting the shared base"),
        "a spinner named the step while it ran:\n{:?}",
        r.transcript
    );
    let lines = r.screen_lines();
    for step in [
        "[1/4] creating the shared base",
        "[2/4] booting the shared base",
        "[3/4] provisioning",
        "[4/4] stopping the shared base",
        // Then the template, a clone of the base (no setup script to run).
        "[1/1] cloning the shared base",
    ] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("✓ {step}")))
            .unwrap_or_else(|| panic!("no ✓ line for {step} in {lines:#?}"));
        assert!(line.ends_with("s)"), "a duration closes the line: {line}");
    }
    let boot = lines
        .iter()
        .find(|l| l.starts_with("✓ [2/4] booting the shared base ("))
        .unwrap();
    let secs: f64 = boot
        .trim_start_matches("✓ [2/4] booting the shared base (")
        .trim_end_matches("s)")
        .parse()
        .unwrap_or_else(|_| panic!("duration in {boot}"));
    assert!(secs >= 1.0, "the 1 s boot shows as at least 1.0s: {boot}");
    assert!(
        r.transcript.contains("\x1b[32m✓"),
        "the ✓ is green on a terminal: {:?}",
        r.transcript
    );
}

#[test]
fn no_color_keeps_the_spinner_but_drops_colours() {
    let w = World::new();
    let r = w.run_pty(
        &["setup"],
        &[("LIMA_SIM_DELAY", "start=1"), ("NO_COLOR", "1")],
    );
    r.ok();
    assert!(has_spinner_for(&r.transcript, "booting the shared base"));
    for sgr in ["\x1b[32m", "\x1b[36m", "\x1b[31m", "\x1b[2m", "\x1b[1m"] {
        assert!(
            !r.transcript.contains(sgr),
            "colour {sgr:?} despite NO_COLOR: {:?}",
            r.transcript
        );
    }
    assert!(r
        .screen_lines()
        .iter()
        .any(|l| l.starts_with("✓ [4/4] stopping the shared base (")));
}

#[test]
fn off_a_terminal_every_message_is_one_plain_line() {
    let w = World::new();
    let r = w.setup();
    assert!(
        !r.stderr.contains('\x1b') && !r.stderr.contains('\r'),
        "no terminal control off a terminal: {:?}",
        r.stderr
    );
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert!(
        lines.contains(&"claude-vm: [2/4] booting the shared base..."),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(
            |l| l.starts_with("claude-vm: ✓ [2/4] booting the shared base (") && l.ends_with("s)")
        ),
        "{lines:#?}"
    );
}

#[test]
fn quiet_prints_nothing_but_errors_even_on_a_terminal() {
    let w = World::new();
    let r = w.run_pty(&["-q", "setup"], &[]);
    r.ok();
    assert_eq!(r.transcript, "", "nothing at all on success");
    let r = w.run(&["-q", "shell", "--", "true"]);
    r.ok();
    assert_eq!(r.stderr, "");
    let r = w.run(&["-q", "shell", "--", "sh", "-c", "echo out; exit 3"]);
    assert_eq!(r.code, 3);
    assert_eq!(
        r.stdout, "out\n",
        "the command's own output is not ours to hide"
    );
    assert_eq!(r.stderr, "");
    let r = w.run(&["-q", "clean"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .lines()
            .all(|l| l.starts_with("claude-vm: error:") || l.starts_with("  hint:")),
        "errors still show: {:?}",
        r.stderr
    );
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
}

#[test]
fn verbose_on_a_terminal_streams_lima_without_spinners() {
    let w = World::new();
    let r = w.run_pty(&["-v", "setup"], &[("LIMA_SIM_DELAY", "start=1")]);
    r.ok();
    assert!(
        !has_spinner_for(&r.transcript, "booting the shared base"),
        "{:?}",
        r.transcript
    );
    let lines = r.screen_lines();
    let announce = lines
        .iter()
        .position(|l| l == "claude-vm: [2/4] booting the shared base...")
        .unwrap_or_else(|| panic!("{lines:#?}"));
    let done = lines
        .iter()
        .position(|l| l.starts_with("claude-vm: ✓ [2/4] booting the shared base ("))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(
        done > announce + 1,
        "Lima's output streams between: {lines:#?}"
    );
    assert!(
        lines[announce + 1..done].iter().all(|l| !l.is_empty()),
        "whole lines, nothing drawn over them: {lines:#?}"
    );
}

#[test]
fn claudes_output_is_not_wrapped_or_drawn_over() {
    let w = World::new();
    w.setup();
    let r = w.run_pty(&["hello"], &[("LIMA_SIM_DELAY", "clone=1")]);
    r.ok();
    assert!(has_spinner_for(&r.transcript, "cloning the template"));
    // claude's line arrives straight after our ✓ line: nothing of ours around it.
    let t = &r.transcript;
    let json_at = t.find("{\"fake\":\"claude\"").expect("fake claude ran");
    let before = &t[..json_at];
    let after = &t[json_at..];
    let ours = before.rfind("✓").expect("✓ line before claude");
    let between = &before[ours..];
    let between = &between[between.find("\r\n").expect("end of the ✓ line") + 2..];
    assert_eq!(between, "", "nothing between our line and claude's");
    let json_line = &after[..after.find("\r\n").expect("claude's line ends")];
    let v: serde_json::Value =
        serde_json::from_str(json_line).expect("claude's line arrives intact");
    assert_eq!(v["argv"][1], "hello");
}
