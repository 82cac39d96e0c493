//! Stale templates: a template records what built it; a session notices when that changed,
//! says so and how to rebuild, and `--rebuild` / `[vm] auto_rebuild` rebuild first.

use crate::support::*;

const STALE: &str = "is out of date";
/// A project-only rebuild: the shared base is cloned, no package is installed again.
const REBUILD: [&str; 7] = [
    "list", "clone", "shell", "stop", "rename", "rename", "delete",
];

fn version(w: &World, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend(["shell", "--", "sh", "-c", "cat \"$HOME/version\""]);
    let r = w.run(&all);
    r.ok();
    r
}

#[test]
fn a_changed_setup_script_makes_the_template_stale_and_rebuild_fixes_it() {
    let w = World::new();
    w.write_project(".claude-vm.setup.sh", "echo v1 > \"$HOME/version\"\n");
    w.setup();
    let r = version(&w, &[]);
    assert!(!r.stderr.contains(STALE), "{}", r.stderr);

    // What sessions apply themselves does not make the template stale.
    w.write_project(".claude-vm.runtime.sh", "export X=1\n");
    let data = w.write_project("data/f", "x");
    w.write_project(
        ".claude-vm.toml",
        &format!(
            "[vm]\ncpus = 2\nmemory = 4\n[[mounts]]\nlocation = \"{}\"\nmount_point = \"/work\"\n",
            data.parent().unwrap().display()
        ),
    );
    let r = version(&w, &["--disk", "30"]);
    assert!(!r.stderr.contains(STALE), "{}", r.stderr);

    // A setup script that changed does: said, with the way out, and the old one is used.
    w.write_project(".claude-vm.setup.sh", "echo v2 > \"$HOME/version\"\n");
    let r = version(&w, &[]);
    assert_eq!(r.stdout, "v1\n");
    assert_eq!(r.verbs(), ["clone", "shell", "delete"]);
    for part in [
        STALE,
        "setup script 1 changed",
        "claude-vm setup",
        "--rebuild",
        "auto_rebuild",
    ] {
        assert!(r.stderr.contains(part), "{part:?} missing:\n{}", r.stderr);
    }

    let info = w.run(&["info"]);
    assert!(
        info.stdout
            .contains("up to date: no: setup script 1 changed"),
        "{}",
        info.stdout
    );
    assert!(info.calls.is_empty());

    // --rebuild rebuilds first.
    let r = version(&w, &["--rebuild"]);
    assert_eq!(r.stdout, "v2\n");
    let mut want = REBUILD.to_vec();
    want.extend(["clone", "shell", "delete"]);
    assert_eq!(r.verbs(), want);
    let r = version(&w, &[]);
    assert!(!r.stderr.contains(STALE), "fresh again:\n{}", r.stderr);
}

#[test]
fn auto_rebuild_rebuilds_only_when_stale() {
    let w = World::new();
    w.write_project(".claude-vm.setup.sh", "echo v1 > \"$HOME/version\"\n");
    w.write_project(".claude-vm.toml", "[vm]\nauto_rebuild = true\n");
    w.setup();
    let r = version(&w, &[]);
    assert_eq!(r.verbs(), ["clone", "shell", "delete"], "fresh: no rebuild");
    w.write_project(".claude-vm.setup.sh", "echo v2 > \"$HOME/version\"\n");
    let r = version(&w, &[]);
    assert_eq!(r.stdout, "v2\n");
    assert_eq!(&r.verbs()[..7], REBUILD, "{}", r.stderr);
    assert!(r.stderr.contains("rebuilding it first"), "{}", r.stderr);
    // A new tool in the provisioning counts too (here: an extra setup script in the file).
    w.write_project("extra.sh", "echo extra >> \"$HOME/version\"\n");
    w.write_project(
        ".claude-vm.toml",
        "[vm]\nauto_rebuild = true\n[setup]\nscripts = [\"extra.sh\"]\n",
    );
    let r = version(&w, &[]);
    assert_eq!(r.stdout, "v2\nextra\n");
}

#[test]
fn setup_flags_are_remembered_so_the_template_is_not_stale_for_sessions() {
    let w = World::new();
    let script = w.write("tools/install.sh", "echo from-flag > \"$HOME/version\"\n");
    let r = w.run(&[
        "setup",
        "--disk",
        "40",
        "--setup-script",
        script.to_str().unwrap(),
    ]);
    r.ok();
    let r = version(&w, &[]);
    assert_eq!(r.stdout, "from-flag\n");
    assert!(!r.stderr.contains(STALE), "{}", r.stderr);
    // The flag's script changed: stale; a rebuild uses the recorded flags again.
    std::fs::write(&script, "echo from-flag-2 > \"$HOME/version\"\n").unwrap();
    let r = version(&w, &["--rebuild"]);
    assert_eq!(r.stdout, "from-flag-2\n");
    // The template is a clone of the shared base: the clone takes the recorded resources.
    let clone = r.call("clone");
    let disk = clone.iter().position(|a| a == "--disk").unwrap();
    assert_eq!(clone[disk + 1], "40");
    assert!(r.calls.iter().all(|c| c[0] != "create"), "{:?}", r.calls);
}

#[test]
fn a_template_from_before_fingerprints_counts_as_stale() {
    let w = World::new();
    w.setup();
    let t = w.templates().remove(0);
    let record = w.data_dir().join(format!("templates/{t}.json"));
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert!(manifest["fingerprint"]["digest"].is_string(), "{manifest}");
    manifest.as_object_mut().unwrap().remove("fingerprint");
    std::fs::write(&record, manifest.to_string()).unwrap();
    let r = w.run(&["hello"]);
    r.ok();
    assert!(
        r.stderr.contains(STALE) && r.stderr.contains("did not record"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_dry_run_with_rebuild_shows_the_rebuild_and_runs_nothing() {
    let w = World::new();
    w.setup();
    let before = w.templates();
    let r = w.run(&["--dry-run", "--rebuild", "shell"]);
    r.ok();
    assert!(r.calls.is_empty(), "{:?}", r.calls);
    let setup = r.stdout.find("setup of template").expect(&r.stdout);
    let session = r.stdout.find("session in a clone of").expect(&r.stdout);
    assert!(setup < session, "the rebuild first:\n{}", r.stdout);
    // The base exists: the rebuild clones it.
    assert!(r.stdout.contains("limactl clone"), "{}", r.stdout);
    assert!(r.stdout.contains("the shared base"), "{}", r.stdout);
    assert!(!r.stdout.contains("limactl create"), "{}", r.stdout);
    assert_eq!(w.templates(), before);
    // Without --rebuild, a fresh template: the session's plan only.
    let r = w.run(&["--dry-run", "shell"]);
    r.ok();
    assert!(!r.stdout.contains("setup of template"), "{}", r.stdout);
    // Out of date with `[vm] auto_rebuild`: the dry run shows that rebuild too.
    w.write_project(
        ".claude-vm.toml",
        "[vm]\nauto_rebuild = true\n[packages]\nsystem = [\"jq\"]\n",
    );
    let r = w.run(&["--dry-run", "shell"]);
    r.ok();
    assert!(r.stdout.contains("setup of template"), "{}", r.stdout);
    assert!(r.calls.is_empty());
}

#[test]
fn a_stale_template_says_which_provisioning_step_changed() {
    let w = World::new();
    w.setup();
    w.write_project(".claude-vm.toml", "[packages]\nsystem = [\"jq\"]\n");
    let r = w.run(&["shell", "--", "true"]);
    r.ok();
    assert!(
        r.stderr.contains(
            "out of date: the shared base's provisioning step \"installing packages\" changed"
        ),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("(packages, tools"), "{}", r.stderr);
    let r = w.run(&["info"]);
    assert!(
        r.stdout
            .contains("the shared base's provisioning step \"installing packages\" changed"),
        "{}",
        r.stdout
    );
}
