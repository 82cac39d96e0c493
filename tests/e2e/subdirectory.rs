//! A session started in a subdirectory of the project runs there, with the conversation
//! folder Claude Code uses for that directory.

use crate::support::*;

fn encoded(path: &std::path::Path) -> String {
    path.to_str()
        .unwrap()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn workdir(r: &Run) -> String {
    let shell = r.call("shell");
    let i = shell
        .iter()
        .position(|a| a == "--workdir")
        .unwrap_or_else(|| panic!("no --workdir: {shell:?}"));
    shell[i + 1].clone()
}

#[test]
fn a_session_starts_in_the_directory_the_user_stands_in() {
    let w = World::new();
    w.setup();
    let sub = w.project.join("crates/my lib");
    std::fs::create_dir_all(&sub).unwrap();
    let r = w.run_in(&["shell", "--", "sh", "-c", "pwd; echo hi > here"], &sub);
    r.ok();
    assert_eq!(workdir(&r), sub.to_str().unwrap());
    assert!(
        sub.join("here").exists(),
        "the command ran in {}",
        sub.display()
    );
    if isolated() {
        assert_eq!(r.stdout.lines().next(), sub.to_str());
    }
    // Its conversations are the ones Claude Code keeps for that directory.
    let folder = encoded(&sub);
    let write = format!("echo hi > \"$HOME/.claude/projects/{folder}/note\"");
    w.run_in(&["shell", "--", "sh", "-c", &write], &sub).ok();
    let host = w.home.join(".claude/projects").join(&folder);
    assert_eq!(std::fs::read_to_string(host.join("note")).unwrap(), "hi\n");
    assert!(
        !w.home
            .join(".claude/projects")
            .join(encoded(&w.project))
            .exists(),
        "not the root's folder"
    );
    // A prompt from the subdirectory: claude runs there too.
    let r = w.run_in(&["hello"], &sub);
    r.ok();
    assert_eq!(workdir(&r), sub.to_str().unwrap());
    // At the root, the root.
    let r = w.run(&["shell", "--", "true"]);
    assert_eq!(workdir(&r), w.project.to_str().unwrap());
    // The dry run shows it too.
    let r = w.run_in(&["--dry-run", "shell"], &sub);
    assert!(r.stdout.contains(sub.to_str().unwrap()), "{}", r.stdout);
}

#[test]
fn a_link_into_the_project_starts_at_the_directory_it_leads_to() {
    let w = World::new();
    w.setup();
    let sub = w.project.join("docs");
    std::fs::create_dir_all(&sub).unwrap();
    let link = w.root.join("to-docs");
    std::os::unix::fs::symlink(&sub, &link).unwrap();
    let r = w.run_in(&["shell", "--", "true"], &link);
    r.ok();
    assert_eq!(workdir(&r), sub.to_str().unwrap());
}
