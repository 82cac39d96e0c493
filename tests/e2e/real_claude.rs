//! The real Claude Code in the simulator's guest, answered by a stand-in Messages API on the
//! host's loopback: what the fake claude cannot show (first-run screens, stream-json, the
//! conversation folder with `-c`/`--resume`). Claude Code comes from the npm registry, pinned,
//! and is cached between runs; these tests are ignored by a plain `cargo test` (they need the
//! registry) and run with `cargo test --test e2e real_claude -- --ignored` (`.ci/run` does).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::messages_api::MessagesApi;
use crate::support::World;

/// The Claude Code these tests run (its native build, as the installer and npm lay out today).
pub const VERSION: &str = "2.1.332";
const KEY: &str = "sk-ant-api03-claude-vm-test-key-0123456789abcdefghij";

fn npm_platform() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "linux-arm64",
        _ => "linux-x64",
    }
}

/// Where the test tiers keep what they fetch from the registries, between runs.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("CLAUDE_VM_TEST_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"));
    base.join("claude-vm-tests")
}

/// The real Claude Code's package directory (`claude` and `package.json`), fetched once with
/// `npm pack` and kept under the cache.
pub fn real_claude() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = cache_root().join(format!("claude-code-{}-{VERSION}", npm_platform()));
        if dir.join("claude").is_file() && dir.join("package.json").is_file() {
            return dir;
        }
        std::fs::create_dir_all(cache_root()).expect("make the test cache");
        let tmp = tempfile::tempdir_in(cache_root()).expect("tempdir in the cache");
        let spec = format!("@anthropic-ai/claude-code-{}@{VERSION}", npm_platform());
        let out = Command::new("npm")
            .args(["pack", "--silent", "--pack-destination"])
            .arg(tmp.path())
            .arg(&spec)
            .output()
            .expect("run npm (the real-Claude tests need npm and the npm registry)");
        assert!(
            out.status.success(),
            "npm pack {spec} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tarball = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let status = Command::new("tar")
            .arg("xzf")
            .arg(tmp.path().join(&tarball))
            .arg("-C")
            .arg(tmp.path())
            .status()
            .expect("run tar");
        assert!(status.success(), "unpacking {tarball} failed");
        let package = tmp.path().join("package");
        assert!(
            package.join("claude").is_file(),
            "{spec} has no claude binary"
        );
        // Another test run may have won the race: theirs is as good as ours.
        if std::fs::rename(&package, &dir).is_err() {
            assert!(
                dir.join("claude").is_file(),
                "cannot put {spec} in the cache"
            );
        }
        dir
    })
}

/// A project whose template has the real Claude Code, and an API stand-in whose URL is given
/// as a user would, on the host's loopback.
pub fn world_with_real_claude(answer: &str) -> (World, MessagesApi) {
    let api = MessagesApi::start(answer);
    let mut w = World::new();
    w.set_env(
        "LIMA_SIM_CLAUDE_CODE",
        real_claude().to_str().expect("utf-8 cache path"),
    )
    .set_env("ANTHROPIC_API_KEY", KEY)
    .set_env("ANTHROPIC_BASE_URL", &api.base_url());
    // No IS_SANDBOX: the guest runs as Lima's non-root user, so Claude Code accepts
    // --dangerously-skip-permissions as it does on Lima.
    let setup = w.setup();
    let ready: Vec<&str> = setup
        .stdout
        .lines()
        .chain(setup.stderr.lines())
        .filter(|l| l.contains("is ready"))
        .collect();
    assert!(
        ready
            .iter()
            .any(|l| l.contains(&format!("is ready with Claude Code {VERSION}:"))),
        "setup names the real version once: {ready:?}\n{}{}",
        setup.stdout,
        setup.stderr
    );
    (w, api)
}

/// The real key reached the API, and never went on a limactl command line. Under the default
/// policy the guest holds a placeholder: the host proxy's Anthropic route puts the key in and
/// forwards to the user's own `ANTHROPIC_BASE_URL` (so the API sees that URL's host).
pub fn assert_key_forwarded(w: &World, api: &MessagesApi) {
    let reqs = api.messages_requests();
    assert!(!reqs.is_empty(), "claude never reached the API");
    for r in &reqs {
        assert_eq!(r.headers.get("x-api-key").map(String::as_str), Some(KEY));
        assert_eq!(
            r.headers.get("host").map(String::as_str),
            Some(format!("127.0.0.1:{}", api.port).as_str()),
            "the proxy forwards to the user's base URL"
        );
    }
    for call in w.logged() {
        assert!(
            !call.iter().any(|a| a.contains(KEY)),
            "the key is on a limactl command line: {call:?}"
        );
    }
}

#[test]
#[ignore = "needs the real Claude Code from the npm registry: cargo test --test e2e real_claude -- --ignored"]
fn real_claude_print_mode_answers_from_the_host_api() {
    let (w, api) = world_with_real_claude("The stand-in says: 42.");
    let run = w.run(&["-p", "What is the answer?"]);
    run.ok();
    assert_eq!(
        run.stdout.trim_end(),
        "The stand-in says: 42.",
        "{}",
        run.stderr
    );
    let asked = api
        .wait_for(Duration::from_secs(1), |r| {
            r.conversation_text().contains("What is the answer?")
        })
        .expect("the prompt reached the API");
    assert_eq!(
        asked.headers.get("x-api-key").map(String::as_str),
        Some(KEY)
    );
    assert_key_forwarded(&w, &api);
    w.assert_nothing_left("after a real-claude -p session");
}

#[test]
#[ignore = "needs the real Claude Code from the npm registry: cargo test --test e2e real_claude -- --ignored"]
fn real_claude_stream_json_passes_through_byte_exact() {
    let (w, api) = world_with_real_claude("streamed ✓ \"quoted\"");
    // claude's own bytes, copied in the guest into the (mounted) project as they are written,
    // must equal what claude-vm printed.
    let copy = "stream-copy.jsonl";
    let run = w.run(&[
        "shell",
        "--",
        "sh",
        "-c",
        &format!("claude --dangerously-skip-permissions -p --output-format stream-json --verbose 'Stream please' | tee {copy}"),
    ]);
    run.ok();
    let copied = std::fs::read(w.project.join(copy)).expect("the guest's copy");
    assert_eq!(run.stdout.as_bytes(), copied.as_slice(), "byte-exact");
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    assert_eq!(
        lines.first().map(|v| v["type"].clone()),
        Some("system".into())
    );
    let last = lines.last().expect("a result line");
    assert_eq!(last["type"], "result");
    assert_eq!(last["result"], "streamed ✓ \"quoted\"");

    // And straight through claude-vm's own session, with the flags a program passes.
    let run = w.run(&["-p", "--output-format", "stream-json", "--verbose", "Again"]);
    run.ok();
    assert!(
        !run.stdout.contains('\r'),
        "no terminal translation on a pipe"
    );
    let types: Vec<String> = run
        .stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}"));
            v["type"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(types.first().map(String::as_str), Some("system"));
    assert_eq!(types.last().map(String::as_str), Some("result"));
    assert_key_forwarded(&w, &api);
}

#[test]
#[ignore = "needs the real Claude Code from the npm registry: cargo test --test e2e real_claude -- --ignored"]
fn real_claude_continues_the_first_sessions_conversation() {
    let (w, api) = world_with_real_claude("Noted: the word is PINEAPPLE.");
    let first = w.run(&[
        "-p",
        "--output-format",
        "json",
        "Remember the word PINEAPPLE",
    ]);
    first.ok();
    let result: Value = serde_json::from_str(first.stdout.trim()).expect("a JSON result");
    let session_id = result["session_id"]
        .as_str()
        .expect("session_id")
        .to_owned();
    assert_eq!(result["result"], "Noted: the word is PINEAPPLE.");
    let folder = w.home.join(".claude/projects");
    let transcripts: Vec<PathBuf> = walk(&folder)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    assert!(
        transcripts
            .iter()
            .any(|p| p.file_stem().is_some_and(|s| s == session_id.as_str())),
        "the conversation is on the host: {transcripts:?}"
    );

    api.set_answer("You said PINEAPPLE.");
    let second = w.run(&["-p", "-c", "Which word did I say?"]);
    second.ok();
    assert_eq!(second.stdout.trim_end(), "You said PINEAPPLE.");
    api.wait_for(Duration::from_secs(1), |r| {
        let t = r.conversation_text();
        t.contains("Which word did I say?") && t.contains("Remember the word PINEAPPLE")
    })
    .expect("-c sent the first session's conversation along");

    api.set_answer("Resumed.");
    let third = w.run(&["-p", "--resume", &session_id, "And now?"]);
    third.ok();
    assert_eq!(third.stdout.trim_end(), "Resumed.");
    api.wait_for(Duration::from_secs(1), |r| {
        let t = r.conversation_text();
        t.contains("And now?") && t.contains("Remember the word PINEAPPLE")
    })
    .expect("--resume found the first session");
    assert_key_forwarded(&w, &api);
}

#[test]
#[ignore = "needs the real Claude Code from the npm registry: cargo test --test e2e real_claude -- --ignored"]
fn real_claude_interactive_session_goes_straight_to_the_prompt() {
    let (w, api) = world_with_real_claude("Hello from the stand-in.");
    let mut tty = w.spawn_pty(&["Say hello"], &[]);
    let reached = api.wait_for(Duration::from_secs(90), |r| {
        r.conversation_text().contains("Say hello")
    });
    // The TUI moves the cursor instead of printing spaces: compare without them.
    let squeezed = |s: &str| s.split_whitespace().collect::<String>();
    let shown = tty.wait_for_screen(Duration::from_secs(30), |s| {
        squeezed(s).contains("Hellofromthestand-in.")
    });
    let screen = tty.screen();
    // Leave claude as a user would: Ctrl-C twice.
    tty.write(b"\x03");
    std::thread::sleep(Duration::from_millis(500));
    tty.write(b"\x03");
    let run = tty.finish(Duration::from_secs(60));
    assert!(
        reached.is_some(),
        "the prompt never reached the API; the screen:\n{screen}"
    );
    assert!(shown, "the answer is on the screen:\n{screen}");
    // The wordings of Claude Code's first-run screens (onboarding, folder trust, API key,
    // bypass-permissions warning) across 2.x releases.
    for question in [
        "Quick safety check",
        "Yes, I trust this folder",
        "trust the files",
        "Detected a custom API key",
        "Do you want to use this API key",
        "Bypass Permissions mode",
        "Yes, I accept",
        "Choose the text style",
        "Let's get started",
    ] {
        assert!(
            !squeezed(&screen).contains(&squeezed(question)),
            "a first-run screen ({question}) was shown:\n{screen}"
        );
    }
    assert_eq!(run.code, 0, "{}", run.transcript);
    assert_key_forwarded(&w, &api);
    w.assert_nothing_left("after an interactive real-claude session");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
