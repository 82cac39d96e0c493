//! The shared base: one base per set of tools, cloned by every project that asks for it; each
//! layer goes stale on its own; bases are locked, journaled, listed, collected and cleaned.

use std::path::PathBuf;

use serde_json::Value;

use crate::live::wait_until;
use crate::support::*;

/// A second git project next to the world's own.
fn project(w: &World, name: &str) -> PathBuf {
    let dir = w.root.join("src").join(name);
    crate::sandbox::git_project(&dir, "other\n").unwrap();
    dir
}

/// The argument after `flag` in a call.
fn after<'a>(call: &'a [String], flag: &str) -> &'a str {
    let i = call
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} missing: {call:?}"));
    &call[i + 1]
}

fn list_json(w: &World) -> Value {
    let r = w.run(&["list", "--json"]);
    r.ok();
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

#[test]
fn a_second_project_with_the_same_tools_clones_the_base_without_provisioning() {
    let w = World::new();
    w.write_project(".claude-vm.setup.sh", "echo app > \"$HOME/who\"\n");
    let first = w.setup();
    // The base and the template's clone, then the setup script in the template.
    assert_eq!(
        first.verbs(),
        [&FIRST_SETUP[..], &["shell", "stop"]].concat(),
        "{}",
        first.stderr
    );
    let bases = w.bases();
    assert_eq!(bases.len(), 1, "{:?}", w.all_instances());
    let base = &bases[0];
    assert!(base.starts_with("claude-vm_base-"), "{base}");
    let template = w.templates().remove(0);

    // The base: from the image, no mount at all, provisioned with everything but the scripts.
    let create = first.call("create");
    assert_eq!(after(create, "--name"), base.as_str());
    assert_eq!(after(create, "--set"), ".mounts = []");
    assert_eq!(w.lima_yaml(base)["mounts"], serde_json::json!([]));
    let record = w.base_record(base).expect("the base is recorded");
    assert_eq!(record["name"], base.as_str());
    assert!(record["fingerprint"]["digest"]
        .as_str()
        .unwrap()
        .starts_with(&base["claude-vm_base-".len()..]));
    // The template: a clone of the base, booted in the same call.
    let clone = first.call("clone");
    assert_eq!(&clone[clone.len() - 2..], [base.clone(), template.clone()]);
    assert!(clone.contains(&"--start".to_owned()), "{clone:?}");
    let stops: Vec<&Vec<String>> = first.calls.iter().filter(|c| c[0] == "stop").collect();
    assert_eq!(
        stops[0].last(),
        Some(base),
        "the base is stopped before it is cloned"
    );
    assert_eq!(stops[1].last(), Some(&template));
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(w.data_dir().join(format!("templates/{template}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["base"]["name"], base.as_str());
    assert_eq!(manifest["base"]["digest"], record["fingerprint"]["digest"]);
    assert!(
        manifest["fingerprint"]["parts"]["base:provision step:installing Claude Code"].is_string(),
        "{manifest}"
    );

    // A second project with the same tools: no create, no package provisioning.
    let other = project(&w, "other");
    std::fs::write(
        other.join(".claude-vm.setup.sh"),
        "echo other > \"$HOME/who\"\n",
    )
    .unwrap();
    let second = w.run_in(&["setup"], &other);
    second.ok();
    assert_eq!(
        second.verbs(),
        ["list", "clone", "shell", "stop"],
        "{}",
        second.stderr
    );
    assert_eq!(second.call("clone")[second.call("clone").len() - 2], *base);
    assert_eq!(w.bases(), bases, "still one base");
    assert_eq!(w.templates().len(), 2);

    // Both templates have what the base installed and their own script's work only.
    let other_template = w.templates().into_iter().find(|t| *t != template).unwrap();
    for (dir, who, own) in [
        (&w.project, "app", &template),
        (&other, "other", &other_template),
    ] {
        let s = w.run_in(
            &[
                "shell",
                "--",
                "sh",
                "-c",
                "command -v claude >/dev/null && cat \"$HOME/who\" /var/lib/limasim/installed",
            ],
            dir,
        );
        s.ok();
        assert!(s.stdout.starts_with(&format!("{who}\n")), "{}", s.stdout);
        assert!(s.stdout.contains("git"), "{}", s.stdout);
        assert_eq!(
            s.verbs(),
            ["clone", "shell", "delete"],
            "sessions are unchanged"
        );
        assert_eq!(
            s.call("clone")[s.call("clone").len() - 2].as_str(),
            own.as_str(),
            "a session clones its project's template, never the base"
        );
    }
}

#[test]
fn two_projects_needing_a_missing_base_build_it_once() {
    let w = World::new();
    let other = project(&w, "other");
    // Both start at once; the base's create is slow enough for the second to find it busy.
    let env = [("LIMA_SIM_DELAY", "create=2")];
    let mut a = w.spawn_with(&["setup"], &env);
    let mut b = w.spawn_in(&["setup"], &other, &env);
    assert_eq!(a.finish(), 0, "{}", a.stderr());
    assert_eq!(b.finish(), 0, "{}", b.stderr());
    let creates: Vec<Vec<String>> = w
        .logged()
        .into_iter()
        .filter(|c| c[0] == "create")
        .collect();
    assert_eq!(creates.len(), 1, "exactly one base is built: {creates:?}");
    let base = w.bases().remove(0);
    assert_eq!(w.bases().len(), 1);
    for s in [&a, &b] {
        assert_eq!(
            w.calls_by(s.pid(), |c| c[0] == "clone" && c.iter().any(|x| x == &base)),
            1,
            "each project clones the base once"
        );
    }
    let waited = [a.stderr(), b.stderr()]
        .iter()
        .filter(|e| {
            e.contains(&format!(
                "another claude-vm is building the shared base {base}"
            ))
        })
        .count();
    assert_eq!(
        waited,
        1,
        "one builds, the other waits:\n{}\n---\n{}",
        a.stderr(),
        b.stderr()
    );
    assert_eq!(w.templates().len(), 2);
    for dir in [&w.project, &other] {
        w.run_in(&["shell", "--", "sh", "-c", "command -v claude"], dir)
            .ok();
    }
    w.assert_nothing_left("");
}

#[test]
fn each_layer_goes_stale_on_its_own() {
    let w = World::new();
    w.write_project(".claude-vm.setup.sh", "echo v1 > \"$HOME/version\"\n");
    w.setup();
    let base = w.bases().remove(0);
    let template = w.templates().remove(0);

    // A changed project script: the template is stale, the base is not.
    w.write_project(".claude-vm.setup.sh", "echo v2 > \"$HOME/version\"\n");
    let s = w.run(&["shell", "--", "true"]);
    s.ok();
    assert!(s.stderr.contains("setup script 1 changed"), "{}", s.stderr);
    assert!(!s.stderr.contains("shared base"), "{}", s.stderr);
    let r = w.run(&["setup"]);
    r.ok();
    assert_eq!(
        r.verbs(),
        ["list", "clone", "shell", "stop", "rename", "rename", "delete"],
        "only the project layer, swapped in: {}",
        r.stderr
    );
    assert_eq!(r.call("clone")[r.call("clone").len() - 2], base);
    assert_eq!(w.bases(), std::slice::from_ref(&base));
    assert_eq!(w.templates(), std::slice::from_ref(&template));
    let s = w.run(&["shell", "--", "sh", "-c", "cat \"$HOME/version\""]);
    assert_eq!(s.ok().stdout, "v2\n");
    assert!(!s.stderr.contains("out of date"), "{}", s.stderr);

    // A changed package list: the base is stale, and another base is built.
    w.write_project(".claude-vm.toml", "[packages]\nsystem = [\"jq\"]\n");
    let s = w.run(&["shell", "--yes", "--", "true"]);
    s.ok();
    assert!(
        s.stderr
            .contains("the shared base's provisioning step \"installing packages\" changed"),
        "{}",
        s.stderr
    );
    let r = w.run(&["setup", "--yes"]);
    r.ok();
    assert_eq!(
        r.verbs(),
        [
            "list", "create", "start", "shell", "stop", "clone", "shell", "stop", "rename",
            "rename", "delete"
        ],
        "{}",
        r.stderr
    );
    let bases = w.bases();
    assert_eq!(bases.len(), 2, "the old base stays until gc: {bases:?}");
    let new = bases.iter().find(|b| **b != base).unwrap().clone();
    assert_eq!(after(r.call("create"), "--name"), new);
    let s = w.run(&[
        "shell",
        "--",
        "sh",
        "-c",
        "grep -x jq /var/lib/limasim/installed; cat \"$HOME/version\"",
    ]);
    assert_eq!(s.ok().stdout, "jq\nv2\n");

    // Going back to the first tool set reuses the first base: nothing is provisioned.
    std::fs::remove_file(w.project.join(".claude-vm.toml")).unwrap();
    let r = w.run(&["setup"]);
    r.ok();
    assert_eq!(
        r.verbs(),
        ["list", "clone", "shell", "stop", "rename", "rename", "delete"]
    );
    assert_eq!(r.call("clone")[r.call("clone").len() - 2], base);
}

#[test]
fn a_base_removed_meanwhile_is_built_again_by_a_project_only_rebuild() {
    let w = World::new();
    w.setup();
    let base = w.bases().remove(0);
    // The base goes (a gc after its template was deleted by hand, or `limactl delete`).
    std::fs::remove_dir_all(w.lima_home.join(&base)).unwrap();
    w.write_project(".claude-vm.setup.sh", "true\n");
    let r = w.run(&["setup"]);
    r.ok();
    assert_eq!(
        r.verbs(),
        [
            "list", "create", "start", "shell", "stop", "clone", "shell", "stop", "rename",
            "rename", "delete"
        ],
        "{}",
        r.stderr
    );
    assert_eq!(
        w.bases(),
        std::slice::from_ref(&base),
        "the same base, built again"
    );
    assert!(w.base_record(&base).is_some());
}

#[test]
fn gc_removes_bases_no_template_uses_and_keeps_the_others() {
    let w = World::new();
    w.setup();
    let old = w.bases().remove(0);
    w.write_project(".claude-vm.toml", "[packages]\nsystem = [\"jq\"]\n");
    w.run(&["setup", "--yes"]).ok();
    let other = project(&w, "other");
    w.run_in(&["setup"], &other).ok();
    let bases = w.bases();
    let used = bases.iter().find(|b| **b != old).unwrap().clone();
    assert_eq!(bases.len(), 2);

    // The other project still uses the old base: nothing goes.
    let r = w.run(&["gc"]);
    r.ok();
    assert_eq!(r.verbs(), ["list"], "{}", r.stderr);
    assert_eq!(w.bases().len(), 2);

    // Once no template was cloned from it, it goes, and its record with it.
    w.run_in(&["clean", "--yes"], &other).ok();
    assert_eq!(w.bases().len(), 2, "clean leaves shared bases to gc");
    let r = w.run(&["gc"]);
    r.ok();
    assert_eq!(r.verbs(), ["list", "delete"], "{}", r.stderr);
    assert_eq!(r.call("delete").last(), Some(&old));
    assert_eq!(w.bases(), std::slice::from_ref(&used));
    assert!(w.base_record(&old).is_none());
    assert!(w.base_record(&used).is_some());
    // Nothing left to collect: one list, no delete.
    assert_eq!(w.run(&["gc"]).ok().verbs(), ["list"]);
}

#[test]
fn gc_leaves_a_base_alone_while_a_setup_clones_it() {
    let w = World::new();
    w.setup();
    let base = w.bases().remove(0);
    w.run(&["clean", "--yes"]).ok();
    // Unused now; a setup of another project starts cloning it (slowly).
    let other = project(&w, "other");
    let mut s = w.spawn_in(&["setup"], &other, &[("LIMA_SIM_DELAY", "clone=3")]);
    w.await_call(s.pid(), "clone");
    // Unchecked: the setup's build is live meanwhile (its journal entry is right).
    let r = w.run_unchecked(&["gc"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.calls.iter().all(|c| c[0] != "delete"),
        "the base is being cloned: {:?}\n{}",
        r.calls,
        r.stderr
    );
    assert_eq!(s.finish(), 0, "{}", s.stderr());
    assert_eq!(w.bases(), [base]);
    w.assert_nothing_left(&s.stderr());
    // Its template was cloned from it: it stays for good.
    assert_eq!(w.run(&["gc"]).ok().verbs(), ["list"]);
    assert_eq!(w.bases().len(), 1);
}

#[test]
fn rebuild_base_builds_a_fresh_base() {
    let w = World::new();
    w.setup();
    let base = w.bases().remove(0);
    let r = w.run(&["setup", "--base"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--base needs --rebuild"), "{}", r.stderr);
    assert!(r.calls.is_empty());
    let r = w.run(&["setup", "--rebuild", "--base"]);
    r.ok();
    assert_eq!(
        r.verbs(),
        [
            "list", "delete", "create", "start", "shell", "stop", "clone", "rename", "rename",
            "delete"
        ],
        "{}",
        r.stderr
    );
    assert_eq!(
        r.call("delete").last(),
        Some(&base),
        "the old base goes first"
    );
    assert_eq!(w.bases(), std::slice::from_ref(&base));
    assert!(w.base_record(&base).is_some());
    w.run(&["shell", "--", "true"]).ok();
}

#[test]
fn shared_base_false_builds_in_one_layer_as_before() {
    let w = World::new();
    w.write_project(".claude-vm.toml", "[vm]\nshared_base = false\n");
    let r = w.run(&["setup"]);
    r.ok();
    assert_eq!(
        r.verbs(),
        ["--version", "list", "create", "start", "shell", "stop"],
        "{}",
        r.stderr
    );
    assert!(w.bases().is_empty(), "{:?}", w.all_instances());
    let template = w.templates().remove(0);
    assert_eq!(after(r.call("create"), "--name"), template);
    let s = w.run(&["shell", "--", "sh", "-c", "command -v claude"]);
    s.ok();
    assert!(!s.stderr.contains("out of date"), "{}", s.stderr);
    let shown = w.run(&["config", "show"]);
    assert!(
        shown.ok().stdout.contains("vm.shared_base = false"),
        "{}",
        shown.stdout
    );
    let r = w.run(&["setup", "--rebuild", "--base"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("shared_base = false"), "{}", r.stderr);

    // Switching to the shared base: stale, and said so.
    std::fs::remove_file(w.project.join(".claude-vm.toml")).unwrap();
    let s = w.run(&["shell", "--", "true"]);
    assert!(
        s.ok().stderr.contains("is now cloned from a shared base"),
        "{}",
        s.stderr
    );
}

#[test]
fn list_info_and_doctor_show_bases_with_their_projects() {
    let w = World::new();
    w.setup();
    let other = project(&w, "other");
    w.run_in(&["setup"], &other).ok();
    let base = w.bases().remove(0);
    let listing = list_json(&w);
    let bases = listing["bases"].as_array().expect("bases");
    assert_eq!(bases.len(), 1, "{listing}");
    assert_eq!(bases[0]["name"], base.as_str());
    assert_eq!(bases[0]["complete"], true);
    let mut used: Vec<&str> = bases[0]["used_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    used.sort();
    let mut want = [
        std::fs::canonicalize(&w.project)
            .unwrap()
            .display()
            .to_string(),
        std::fs::canonicalize(&other).unwrap().display().to_string(),
    ];
    want.sort();
    assert_eq!(used, want);
    let table = w.run(&["list"]);
    assert!(
        table.ok().stdout.contains("SHARED BASE"),
        "{}",
        table.stdout
    );
    assert!(table.stdout.contains(&base), "{}", table.stdout);

    let info = w.run(&["info"]);
    let line = info
        .ok()
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("base:"))
        .unwrap_or_else(|| panic!("{}", info.stdout))
        .to_owned();
    let other_path = std::fs::canonicalize(&other).unwrap().display().to_string();
    assert!(line.contains(&base) && line.contains(&other_path), "{line}");

    let doctor = w.run(&["doctor"]);
    let found = doctor
        .stdout
        .lines()
        .find(|l| l.contains(&format!("shared base {base}")))
        .unwrap_or_else(|| panic!("{}", doctor.stdout))
        .to_owned();
    assert!(
        found.contains("used by") && found.contains(&want[0]) && found.contains(&want[1]),
        "{found}"
    );
    assert_eq!(doctor.verbs(), ["--version", "list"], "doctor's two calls");
}

#[test]
fn clean_all_removes_bases_and_their_records() {
    let w = World::new();
    w.setup();
    let other = project(&w, "other");
    w.run_in(&["setup"], &other).ok();
    let base = w.bases().remove(0);
    let r = w.run(&["clean-all", "--yes"]);
    r.ok();
    assert_eq!(r.verbs(), ["list", "delete"], "{}", r.stderr);
    assert!(r.call("delete").contains(&base), "{:?}", r.call("delete"));
    assert!(w.all_instances().is_empty(), "{:?}", w.all_instances());
    assert!(w.base_record(&base).is_none());
    assert!(list_json(&w)["bases"].as_array().unwrap().is_empty());
}

#[test]
fn an_interrupted_base_build_leaves_nothing_the_next_command_cannot_reap() {
    let w = World::new();
    // SIGINT / SIGTERM while the base is provisioned: the base is deleted on the way out.
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let mut s = w.spawn_with(&["setup"], &[("LIMA_SIM_DELAY", "shell=60")]);
        w.await_call(s.pid(), "shell");
        s.signal_group(sig);
        assert_eq!(s.finish(), code, "{}", s.stderr());
        assert!(w.all_instances().is_empty(), "{:?}", w.all_instances());
        assert_eq!(w.calls_by(s.pid(), |a| a[0] == "clone"), 0);
        w.assert_nothing_left(&s.stderr());
    }
    // SIGKILL: the unfinished base stays until the next command reaps it.
    let mut s = w.spawn_with(&["setup"], &[("LIMA_SIM_DELAY", "shell=60")]);
    w.await_call(s.pid(), "shell");
    s.signal_group(libc::SIGKILL);
    s.finish();
    let base = w.bases();
    assert_eq!(base.len(), 1, "the half-built base is there");
    assert!(w.base_record(&base[0]).is_none());
    let r = w.run(&["list"]);
    assert_eq!(r.ok().verbs(), ["delete", "list"], "{}", r.stderr);
    assert!(r.stderr.contains("shared base build"), "{}", r.stderr);
    assert!(w.all_instances().is_empty(), "{:?}", w.all_instances());
    // And a setup afterwards builds it from scratch.
    let r = w.setup();
    assert_eq!(r.verbs().iter().filter(|v| **v == "create").count(), 1);
    wait_until("the base is recorded", || w.base_record(&base[0]).is_some());
}
