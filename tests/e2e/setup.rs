//! `claude-vm setup`: what it asks Lima to do, what ends up in the template, and that a
//! failure leaves nothing behind.

use crate::support::*;

#[test]
fn setup_is_list_create_start_shell_stop() {
    let w = World::new();
    let r = w.setup();
    assert_eq!(
        r.verbs(),
        // The first command ever checks Lima's version (then cached); the shared base is
        // built (create, start, shell, stop) and the template is a clone of it (no setup
        // script: nothing of its own to boot for).
        FIRST_SETUP,
        "stderr:\n{}",
        r.stderr
    );
    let templates = w.templates();
    assert_eq!(templates.len(), 1, "{:?}", w.instances());
    let t = &templates[0];
    assert!(t.starts_with("claude-vm-app-"), "{t}");
    let base = w.bases().remove(0);

    // The template is stopped and mounts nothing (never the home directory): the scripts
    // went in on the provisioning shell's stdin.
    let yaml = w.lima_yaml(t);
    assert_eq!(yaml["mounts"], serde_json::json!([]), "{yaml}");
    assert_eq!(w.lima_yaml(&base)["mounts"], serde_json::json!([]));
    assert_eq!(
        &r.call("shell")[r.call("shell").len() - 2..],
        ["bash", "-s"]
    );
    for vm in [t, &base] {
        assert!(
            !w.lima_home.join(vm).join("ha.pid").exists(),
            "{vm} left running"
        );
    }

    let create = r.call("create");
    for (flag, value) in [
        ("--cpus", "4"),
        ("--memory", "8"),
        ("--disk", "20"),
        ("--name", base.as_str()),
    ] {
        let i = create
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("{flag} missing: {create:?}"));
        assert_eq!(create[i + 1], value);
    }
    assert_eq!(
        create.last().map(String::as_str),
        Some("template:debian-13")
    );
    let clone = r.call("clone");
    assert_eq!(&clone[clone.len() - 2..], [base.clone(), t.clone()]);
    for (flag, value) in [("--cpus", "4"), ("--memory", "8"), ("--disk", "20")] {
        let i = clone.iter().position(|a| a == flag).unwrap();
        assert_eq!(clone[i + 1], value, "{flag}");
    }

    // Claude Code went in once, by the installer; the manifest records the build.
    let check = w.run(&[
        "shell",
        "--",
        "sh",
        "-c",
        "command -v claude && cat /var/lib/limasim/installed",
    ]);
    check.ok();
    assert!(
        check.stdout.contains("/.local/bin/claude"),
        "{}",
        check.stdout
    );
    assert!(check.stdout.contains("git"), "{}", check.stdout);
    assert!(w.data_dir().join(format!("templates/{t}.json")).exists());
}

#[test]
fn setup_scripts_run_in_order_and_persist_into_clones() {
    let w = World::new();
    let line = |who: &str| format!("echo {who} >> \"$HOME/order\"\n");
    std::fs::write(w.home.join(".claude-vm.setup.sh"), line("global")).unwrap();
    w.write_project(".claude-vm.setup.sh", &line("project"));
    w.write_project("scripts/extra.sh", &line("config"));
    w.write_project(
        ".claude-vm.toml",
        "[setup]\nscripts = [\"scripts/extra.sh\"]\n",
    );
    let cli = w.write("cli script.sh", &line("cli"));
    let r = w.run(&["setup", "--setup-script", cli.to_str().unwrap()]);
    r.ok();
    let got = w.run(&["shell", "--", "sh", "-c", "cat \"$HOME/order\""]);
    got.ok();
    assert_eq!(got.stdout, "global\nproject\nconfig\ncli\n");
}

#[test]
fn a_failing_setup_script_is_named_and_leaves_nothing() {
    let w = World::new();
    w.write_project(".claude-vm.setup.sh", "echo about to fail\nexit 3\n");
    let r = w.run(&["setup"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("./.claude-vm.setup.sh failed with status 3"),
        "{}",
        r.stderr
    );
    assert!(
        w.instances().is_empty(),
        "half-built template left: {:?}",
        w.instances()
    );
    assert_eq!(r.verbs().last(), Some(&"delete"));
    // No template record; the shared base (complete, reusable) stays with its own.
    let records: Vec<String> = std::fs::read_dir(w.data_dir().join("templates"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(records, ["bases"], "{records:?}");
    let base = w.bases().remove(0);
    assert!(w.base_record(&base).is_some());
}

#[test]
fn rebuild_keeps_the_old_template_until_the_new_one_is_complete() {
    let w = World::new();
    w.write_project(".claude-vm.setup.sh", "echo v1 > \"$HOME/version\"\n");
    w.setup();
    let template = w.templates().remove(0);

    // A failing rebuild: the old template survives and still serves sessions.
    w.write_project(".claude-vm.setup.sh", "exit 9\n");
    let r = w.run(&["setup"]);
    assert_eq!(r.code, 1);
    assert_eq!(w.instances(), std::slice::from_ref(&template));
    let s = w.run(&["shell", "--", "sh", "-c", "cat \"$HOME/version\""]);
    assert_eq!(s.ok().stdout, "v1\n");

    // A good rebuild: built aside, then swapped in.
    w.write_project(".claude-vm.setup.sh", "echo v2 > \"$HOME/version\"\n");
    let r = w.run(&["setup"]);
    r.ok();
    assert_eq!(
        r.verbs(),
        ["list", "clone", "shell", "stop", "rename", "rename", "delete"],
        "a project-only rebuild: the shared base is cloned"
    );
    assert_ne!(r.call("clone").last().unwrap(), &template);
    assert_eq!(w.instances(), [template]);
    let s = w.run(&["shell", "--", "sh", "-c", "cat \"$HOME/version\""]);
    assert_eq!(s.ok().stdout, "v2\n");
}

#[test]
fn setup_mounts_are_there_during_setup_only() {
    let w = World::new();
    let assets = w.root.join("assets");
    std::fs::create_dir(&assets).unwrap();
    std::fs::write(assets.join("tool"), "payload\n").unwrap();
    w.write_project(
        ".claude-vm.setup.sh",
        "cp /opt/assets/tool \"$HOME/tool\"\n",
    );
    let spec = format!("{}:/opt/assets:ro", assets.display());
    w.run(&["setup", "--mount", &spec]).ok();
    let yaml = w.lima_yaml(&w.templates()[0]);
    let mounts = yaml["mounts"].as_array().expect("mounts");
    assert_eq!(mounts.len(), 1, "only the setup mount: {mounts:?}");
    assert_eq!(mounts[0]["mountPoint"], "/opt/assets");
    let s = w.run(&[
        "shell",
        "--",
        "sh",
        "-c",
        "cat \"$HOME/tool\"; test -e /opt/assets/tool && echo still-mounted || echo gone",
    ]);
    assert_eq!(s.ok().stdout, "payload\ngone\n");
}

#[test]
fn dry_run_prints_the_plan_and_calls_nothing() {
    let w = World::new();
    let r = w.run(&["--dry-run", "setup"]);
    r.ok();
    assert!(r.calls.is_empty(), "{:?}", r.calls);
    for part in [
        "limactl create --tty=false",
        "limactl start",
        "limactl shell",
        "limactl stop",
        "provision.sh",
        "apt-get install",
    ] {
        assert!(
            r.stdout.contains(part),
            "missing {part:?} in:\n{}",
            r.stdout
        );
    }
    assert!(w.instances().is_empty());
}

#[test]
fn a_boot_failure_during_setup_removes_the_half_built_template() {
    let mut w = World::new();
    w.set_env("LIMA_SIM_FAIL", "start");
    let r = w.run(&["setup"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("simulated failure of \"start\""),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("full output of the build:"),
        "{}",
        r.stderr
    );
    assert_eq!(
        r.verbs(),
        ["--version", "list", "create", "start", "delete"]
    );
    assert!(r.stderr.contains("shared base"), "{}", r.stderr);
    assert!(w.all_instances().is_empty(), "{:?}", w.all_instances());
}

#[test]
fn sessions_find_claude_codes_first_run_questions_answered() {
    let mut w = World::new();
    // What a login leaves in the template: it must survive every merge.
    w.write_project(
        ".claude-vm.setup.sh",
        "python3 - <<'PY'\nimport json, os\np = os.path.expanduser('~/.claude.json')\nc = json.load(open(p))\nc['oauthAccount'] = {'emailAddress': 'me@example.com'}\njson.dump(c, open(p, 'w'))\nPY\n",
    );
    let r = w.setup();
    r.ok();
    let ready = r.stderr.lines().last().unwrap_or_default();
    assert!(
        ready.contains("is ready with Claude Code 2.0.0: run"),
        "the last line names the version once: {ready}"
    );
    assert!(!r.stderr.contains("(Claude Code)"), "{}", r.stderr);

    w.set_env(
        "ANTHROPIC_API_KEY",
        "sk-ant-api03-SECRET-abcdefghij0123456789",
    );
    // The key the guest's claude sees is the proxy's placeholder (the real one stays on
    // the host: network.rs), so that is the one approved.
    let r = w.run(&[
        "shell",
        "--",
        "sh",
        "-c",
        "cat ~/.claude.json ~/.claude/settings.json; printf '%s' \"$ANTHROPIC_API_KEY\" | tail -c 20",
    ]);
    r.ok();
    let tail = r
        .stdout
        .rsplit('}')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    assert_eq!(tail.len(), 20, "{}", r.stdout);
    let mut docs = serde_json::Deserializer::from_str(&r.stdout).into_iter::<serde_json::Value>();
    let config = docs.next().expect("~/.claude.json").expect("JSON");
    let settings = docs.next().expect("settings.json").expect("JSON");
    assert_eq!(config["hasCompletedOnboarding"], true);
    assert_eq!(config["lastOnboardingVersion"], "2.0.0");
    assert_eq!(config["bypassPermissionsModeAccepted"], true);
    assert_eq!(settings["skipDangerousModePermissionPrompt"], true);
    assert_eq!(config["oauthAccount"]["emailAddress"], "me@example.com");
    let project = w.project.to_str().unwrap();
    assert_eq!(config["projects"][project]["hasTrustDialogAccepted"], true);
    assert_eq!(
        config["customApiKeyResponses"]["approved"],
        serde_json::json!([tail])
    );
    assert!(
        !r.stdout.contains("SECRET"),
        "only the key's tail is stored"
    );

    // A clone's answers go with it: the template keeps only what setup wrote.
    w.set_env("ANTHROPIC_API_KEY", "");
    let r = w.run(&["shell", "--", "sh", "-c", "cat ~/.claude.json"]);
    r.ok();
    let config: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert!(
        config.get("customApiKeyResponses").is_none(),
        "no key this time, and the last session's approval went with its clone: {config}"
    );
}

#[test]
fn a_failing_setup_script_is_named_with_its_step_not_lima() {
    let w = World::new();
    w.write_project(".claude-vm.setup.sh", "echo preparing\nexit 3\n");
    let r = w.run(&["setup"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(
            "claude-vm: error: the template's provisioning failed at \"running setup script ./.claude-vm.setup.sh\": setup script ./.claude-vm.setup.sh failed with status 3"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("hint: fix the setup script ./.claude-vm.setup.sh"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("Lima could not run the command"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("preparing"),
        "its output stays: {}",
        r.stderr
    );
    assert!(w.instances().is_empty(), "nothing left behind");
}

#[test]
fn a_failing_packages_step_is_named_with_what_it_printed() {
    let w = World::new();
    // The script that prepares apt (it runs in the packages step) fails.
    w.write_project("repo.sh", "echo 'no such repository' >&2\nexit 4\n");
    w.write_project(
        ".claude-vm.toml",
        "[packages]\nsetup_script = \"repo.sh\"\nsystem = [\"example-tool\"]\n",
    );
    w.run(&["trust"]);
    let r = w.run(&["setup"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "claude-vm: error: the template's provisioning failed at \"installing packages\": packages setup script"
        ) && r.stderr.contains("failed with status 4"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("no such repository"),
        "its words stay: {}",
        r.stderr
    );
    assert!(r.stderr.contains("hint: fix that script"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("Lima could not run the command"),
        "{}",
        r.stderr
    );
    assert!(w.instances().is_empty());
}
