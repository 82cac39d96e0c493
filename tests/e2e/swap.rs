//! Rebuilds never lose the template: the swap (old aside, new in, manifest, old deleted) is
//! killed and failed at every step, and the next command always finds one complete template
//! whose manifest describes it, and a session runs on it.

use std::path::PathBuf;

use serde_json::Value;

use crate::live::wait_until;
use crate::support::*;

/// A project with a template built from `echo v1`, the script changed to `echo v2`.
fn rebuilt_world() -> (World, String) {
    let w = World::new();
    w.write_project(".claude-vm.setup.sh", "echo v1 > \"$HOME/version\"\n");
    w.setup();
    let template = w.templates().remove(0);
    w.write_project(".claude-vm.setup.sh", "echo v2 > \"$HOME/version\"\n");
    (w, template)
}

fn manifest(w: &World, template: &str) -> Value {
    let text = std::fs::read_to_string(w.data_dir().join(format!("templates/{template}.json")))
        .expect("manifest");
    serde_json::from_str(&text).unwrap()
}

fn record(w: &World, template: &str) -> PathBuf {
    w.data_dir().join(format!("templates/{template}.swap"))
}

/// The limactl pid of `pid`'s `n`-th call of `verb` (1-based), once it has started.
fn nth_call(w: &World, pid: u32, verb: &str, n: usize) -> u32 {
    let mut found = 0;
    wait_until(&format!("call {n} of `limactl {verb}`"), || {
        let calls: Vec<u32> = w
            .logged_records()
            .into_iter()
            .filter(|(ppid, argv, _)| {
                *ppid == pid && argv.first().map(String::as_str) == Some(verb)
            })
            .map(|(_, _, p)| p)
            .collect();
        found = calls.get(n - 1).copied().unwrap_or(0);
        found != 0
    });
    found
}

/// What must hold after the command that follows an interrupted or failed swap: exactly the
/// template, its manifest the one of the version it runs, no swap record, and a session
/// that prints that version without calling the template out of date.
#[track_caller]
fn usable(w: &World, template: &str, version: &str, fingerprint: &Value) {
    let s = w.run(&["shell", "--", "sh", "-c", "cat \"$HOME/version\""]);
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert_eq!(s.stdout, format!("{version}\n"), "{}", s.stderr);
    assert_eq!(w.instances(), [template.to_owned()], "{}", s.stderr);
    assert!(!record(w, template).exists(), "swap record left");
    assert_eq!(&manifest(w, template)["fingerprint"], fingerprint);
    if version == "v2" {
        assert!(!s.stderr.contains("out of date"), "{}", s.stderr);
    }
}

#[test]
fn a_rebuild_moves_the_old_template_aside_before_the_new_one_goes_in() {
    let (w, template) = rebuilt_world();
    let r = w.setup();
    // A project-only rebuild: the build is a clone of the shared base, swapped in.
    assert_eq!(
        r.verbs(),
        ["list", "clone", "shell", "stop", "rename", "rename", "delete"]
    );
    let build = r.call("clone").last().unwrap().clone();
    assert!(build.starts_with(&format!("{template}.build-")), "{build}");
    let aside = &r.calls[4][3];
    assert!(aside.starts_with(&format!("{template}.old-")), "{aside}");
    assert_eq!(r.calls[4][2..], [template.clone(), aside.clone()]);
    assert_eq!(r.calls[5][2..], [build, template.clone()]);
    assert_eq!(r.calls[6][3..], *std::slice::from_ref(aside));
    let fp = manifest(&w, &template)["fingerprint"].clone();
    usable(&w, &template, "v2", &fp);
}

/// Each kill point: the delay that holds the step, whether only claude-vm dies (its limactl
/// then finishes the step: the kill lands just after it) or the whole group (just before),
/// and the version the next command must end up with.
const KILLS: &[(&str, &str, bool, &str)] = &[
    ("rename", "rename@1=30", true, "v1"), // before the old template moves
    ("rename", "rename@1=1", false, "v2"), // old aside, new not in yet
    ("rename", "rename@2=30", true, "v2"), // old aside, new not in yet
    ("rename", "rename@2=1", false, "v2"), // new in, manifest not written
    ("delete", "delete@1=30", true, "v2"), // new in with manifest, old not deleted
    ("delete", "delete@1=1", false, "v2"), // everything done but the record
];

#[test]
fn a_rebuild_sigkilled_at_any_step_of_the_swap_leaves_a_working_template() {
    for &(verb, delay, group, version) in KILLS {
        let (w, template) = rebuilt_world();
        let old = manifest(&w, &template)["fingerprint"].clone();
        let mut s = w.spawn_with(&["setup"], &[("LIMA_SIM_DELAY", delay)]);
        let n = delay
            .split('@')
            .nth(1)
            .and_then(|x| x.split('=').next())
            .unwrap();
        let limactl = nth_call(&w, s.pid(), verb, n.parse().unwrap());
        // The record names the new manifest: what the template must end up with.
        let new: Value =
            serde_json::from_str(&std::fs::read_to_string(record(&w, &template)).unwrap()).unwrap();
        if group {
            s.signal_group(libc::SIGKILL);
        } else {
            s.signal(libc::SIGKILL);
        }
        assert_eq!(s.finish(), 137, "{delay}");
        if !group {
            // SAFETY: signal 0 only asks whether the (reparented) limactl still exists.
            wait_until(
                &format!("{delay}: the orphaned limactl to finish"),
                || unsafe { libc::kill(limactl as i32, 0) != 0 },
            );
        }
        let want = if version == "v1" {
            old.clone()
        } else {
            new["manifest"]["fingerprint"].clone()
        };
        assert_ne!(old, new["manifest"]["fingerprint"]);
        usable(&w, &template, version, &want);
    }
}

#[test]
fn a_rebuild_whose_swap_fails_at_any_step_keeps_a_working_template() {
    // Either rename failing: the old template is put back, the setup fails.
    for rule in ["rename@1", "rename@2", "rename"] {
        let (w, template) = rebuilt_world();
        let old = manifest(&w, &template)["fingerprint"].clone();
        let r = w.run_with(&["setup"], &[("LIMA_SIM_FAIL", rule)]);
        assert_eq!(r.code, 1, "{rule}: {}", r.stderr);
        assert!(
            r.stderr.contains("simulated failure of \"rename\""),
            "{}",
            r.stderr
        );
        usable(&w, &template, "v1", &old);
    }
    // Putting the old one back fails too: the next command settles it (forward).
    let (w, template) = rebuilt_world();
    let r = w.run_unchecked(&["setup"], &[("LIMA_SIM_FAIL", "rename@2,rename@3")]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("the next claude-vm command finishes it"),
        "{}",
        r.stderr
    );
    assert!(record(&w, &template).exists());
    let new: Value =
        serde_json::from_str(&std::fs::read_to_string(record(&w, &template)).unwrap()).unwrap();
    usable(&w, &template, "v2", &new["manifest"]["fingerprint"]);

    // The old template's delete failing: the new one is in, the setup succeeds with a
    // warning, the next command deletes the old one.
    let (w, template) = rebuilt_world();
    let r = w.run_unchecked(&["setup"], &[("LIMA_SIM_FAIL", "delete@1")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("could not be removed yet"),
        "{}",
        r.stderr
    );
    assert_eq!(w.instances().len(), 2);
    let fp = manifest(&w, &template)["fingerprint"].clone();
    usable(&w, &template, "v2", &fp);
}

#[test]
fn a_hanging_delete_of_the_old_template_honours_ctrl_c_and_sigterm() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let (w, template) = rebuilt_world();
        let mut s = w.spawn_with(&["setup"], &[("LIMA_SIM_DELAY", "delete=120")]);
        nth_call(&w, s.pid(), "delete", 1);
        let asked = std::time::Instant::now();
        s.signal(sig);
        assert_eq!(s.finish(), 128 + sig, "{}", s.stderr());
        assert!(asked.elapsed() < std::time::Duration::from_secs(10));
        let fp = manifest(&w, &template)["fingerprint"].clone();
        usable(&w, &template, "v2", &fp);
    }
}

#[test]
fn ctrl_c_or_sigterm_in_the_middle_of_the_swap_leaves_it_to_the_next_command() {
    for (sig, delay, n) in [
        (libc::SIGINT, "rename@1=120", 1),
        (libc::SIGTERM, "rename@2=120", 2),
    ] {
        let (w, template) = rebuilt_world();
        let old = manifest(&w, &template)["fingerprint"].clone();
        let mut s = w.spawn_with(&["setup"], &[("LIMA_SIM_DELAY", delay)]);
        nth_call(&w, s.pid(), "rename", n);
        let new: Value =
            serde_json::from_str(&std::fs::read_to_string(record(&w, &template)).unwrap()).unwrap();
        s.signal(sig);
        assert_eq!(s.finish(), 128 + sig, "{delay}: {}", s.stderr());
        // Stopped before the old template moved: it stays; after: the new one goes in.
        let want = if n == 1 {
            old
        } else {
            new["manifest"]["fingerprint"].clone()
        };
        usable(&w, &template, if n == 1 { "v1" } else { "v2" }, &want);
    }
}
