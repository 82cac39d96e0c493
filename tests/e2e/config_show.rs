//! `config show` (every key, its value and the layer it came from, per entry for lists) and
//! `config validate` (files, variables, and what setup and sessions would reject).

use crate::support::*;

/// The line of `key`'s value (or of a list entry containing `needle`) and its origin comment.
fn line<'a>(out: &'a str, start: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line starting with {start:?} in:\n{out}"))
}

fn origin(l: &str) -> &str {
    l.rsplit_once("  # ")
        .map(|(_, o)| o)
        .unwrap_or_else(|| panic!("no origin in {l:?}"))
}

#[test]
fn config_show_traces_every_key_to_its_layer() {
    let mut w = World::new();
    let global = w.home.join(".claude-vm.toml");
    std::fs::create_dir_all(w.home.join("data")).unwrap();
    std::fs::write(
        &global,
        "[vm]\ncpus = 2\n[tools]\nnode = true\n[defaults]\nclaude_args = [\"--model\", \"opus\"]\n\
         [[mounts]]\nlocation = \"~/data\"\nmount_point = \"/data\"\n",
    )
    .unwrap();
    let project = w.write_project(
        ".claude-vm.toml",
        "[vm]\ndisk = 30\n[defaults]\nclaude_args = [\"--verbose\"]\n\
         [[mounts]]\nlocation = \"~/data\"\nmount_point = \"/data\"\nwritable = true\n",
    );
    w.set_env("CLAUDE_VM_MEMORY", "16");
    let r = w.run(&[
        "--disk",
        "40",
        "--mount",
        "/tmp:/mnt/tmp:ro",
        "--env",
        "TOKEN=topsecret",
        "config",
        "show",
    ]);
    r.ok();
    let out = &r.stdout;
    let g = format!("global file ({})", global.display());
    let p = format!("project file ({})", project.display());
    assert_eq!(origin(line(out, "vm.disk = 40")), "command line");
    assert_eq!(
        origin(line(out, "vm.memory = 16")),
        "environment (CLAUDE_VM_MEMORY)"
    );
    assert_eq!(origin(line(out, "vm.cpus = 2")), g);
    assert_eq!(
        origin(line(out, "vm.image = \"template:debian-13\"")),
        "default"
    );
    assert_eq!(origin(line(out, "tools.node = true")), g);
    assert_eq!(origin(line(out, "tools.docker = false")), "default");
    assert_eq!(origin(line(out, "  \"--model\",")), g);
    assert_eq!(origin(line(out, "  \"opus\",")), g);
    assert_eq!(origin(line(out, "  \"--verbose\",")), p);
    let data = std::fs::canonicalize(w.home.join("data")).unwrap();
    let mount = line(
        out,
        &format!(
            "  {{ location = \"{}\", mount_point = \"/data\", writable = true }}",
            data.display()
        ),
    );
    assert_eq!(
        origin(mount),
        p,
        "the project's mount wins over the global one"
    );
    assert_eq!(
        origin(line(
            out,
            "  { location = \"/tmp\", mount_point = \"/mnt/tmp\", writable = false }"
        )),
        "command line"
    );
    assert_eq!(origin(line(out, "env.TOKEN = ")), "command line");
    assert!(!out.contains("topsecret"), "values of --env are not shown");
    assert_eq!(origin(line(out, "runtime.scripts = []")), "default");
    assert_eq!(origin(line(out, "update.check = true")), "default");
    assert!(r.calls.is_empty(), "config show runs no limactl");
}

#[test]
fn config_validate_checks_files_variables_and_what_setup_and_sessions_would_reject() {
    let mut w = World::new();
    w.write_project(".claude-vm.toml", "[vm]\ncpus = 6\n");
    // More CPUs than the user's own configuration: approved, as the user would.
    w.run(&["trust"]).ok();
    w.set_env("CLAUDE_VM_DISK", "50");
    let r = w.run(&["config", "validate"]);
    r.ok();
    assert!(
        r.stdout.contains(".claude-vm.toml is valid"),
        "{}",
        r.stdout
    );
    assert!(r
        .stdout
        .contains("environment variable CLAUDE_VM_DISK is valid"));
    assert!(r.stdout.contains("valid for setup and sessions"));

    // A mount claude-vm's own hand-over would collide with: only a plan sees it.
    std::fs::create_dir_all(w.home.join("d")).unwrap();
    w.write_project(
        ".claude-vm.toml",
        "[[mounts]]\nlocation = \"~/d\"\nmount_point = \"/mnt/claude-vm\"\n",
    );
    let r = w.run(&["config", "validate"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("reserved for claude-vm"), "{}", r.stderr);
    let r = w.run(&["config", "validate", ".claude-vm.toml"]);
    r.ok();
    assert!(r.calls.is_empty());

    let bad = w.write("other/bad.toml", "[vm]\nmemory = 65\n");
    let r = w.run(&["config", "validate", bad.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("`vm.memory` is 65"), "{}", r.stderr);
    let r = w.run(&["config", "validate", w.root.to_str().unwrap()]);
    assert_eq!(r.code, 2, "a directory is no config file: {}", r.stderr);
    assert!(r.stderr.contains("cannot read"), "{}", r.stderr);
}

/// The README's sample of `config show`, run as it says: it prints exactly that.
#[test]
fn the_readmes_config_show_sample_is_what_it_prints() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = |start: &str| -> String {
        let from = readme
            .find(start)
            .unwrap_or_else(|| panic!("README has no {start:?}"))
            + start.len();
        let rest = &readme[from..];
        rest[..rest.find("```").unwrap()].to_owned()
    };
    let global = block("$ cat ~/.claude-vm.toml\n");
    let global = &global[..global.find("$ cat .claude-vm.toml").unwrap()];
    let project = block("$ cat .claude-vm.toml\n");
    let project = &project[..project.find("$ CLAUDE_VM_MEMORY").unwrap()];
    let expected = block("$ CLAUDE_VM_MEMORY=16 claude-vm --disk 40 config show\n");

    let mut w = World::with_project_name(std::ffi::OsStr::new("webapp"));
    std::fs::create_dir_all(w.home.join("datasets")).unwrap();
    std::fs::write(w.home.join(".claude-vm.toml"), global).unwrap();
    w.write_project(".claude-vm.toml", project);
    w.set_env("CLAUDE_VM_MEMORY", "16");
    let r = w.run(&["--disk", "40", "config", "show"]);
    r.ok();
    let printed = r
        .stdout
        .replace(w.project.to_str().unwrap(), "/home/me/src/webapp")
        .replace(w.home.to_str().unwrap(), "/home/me");
    assert_eq!(printed, expected);
}
