//! The host-execution audit. The project folder (and a worktree's main repository) is
//! writable by the agent, so a session can plant something the *host* runs later: a git hook,
//! a git config key that runs a command, a tool's configuration that runs programs, claude-vm's
//! own config and scripts. A snapshot before the session and one after, both taken on the host
//! (no limactl call), show what changed; the changes are reported loudly.
//!
//! What is watched is data (`HOST_FILES`, `GIT_KEYS`), each entry with the reason it matters;
//! git config keys are matched by rules, so a whole family (`filter.*.smudge`) is one entry,
//! and keys no table names are still caught by their shape (a `!` value, an `ext::` URL, a
//! variable named like a command). Git directories are resolved again for every snapshot,
//! exactly as git resolves them (`.git` file, `commondir`), so a repository the agent swapped
//! in is audited where git will look next time.
//!
//! Out of scope: build files the user runs on purpose (`Makefile`, `package.json` scripts,
//! `Cargo.toml` build scripts); they are project code like any other.

pub mod record;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::project::Project;
use crate::ui::Ui;

/// Where to look: the work trees whose files matter (the project, a worktree's main
/// repository) and what `~` means. Kept in the journal, so a later command can finish the
/// audit of a session that was killed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watch {
    roots: Vec<PathBuf>,
    home: PathBuf,
}

/// An audit begun and not yet finished: what to look at, and how it looked before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub watch: Watch,
    pub before: Snapshot,
}

/// One watched item: its fingerprint or value, and why it matters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub value: String,
    pub why: String,
}

/// What each watched item looked like, by label (a path, or `path: key`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot(BTreeMap<String, Item>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub what: String,
    pub how: &'static str,
    pub why: String,
}

/// How a watched file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Its content (and executable bit).
    Digest,
    /// Every file directly inside it.
    Dir,
    /// JSON with comments (VS Code): only the keys that name programs; unparsable: digest.
    VscodeSettings,
}

/// Files and folders of a work tree that programs on the host run or obey. `*` matches
/// within one name.
const HOST_FILES: &[(&str, Kind, &str)] = &[
    (".envrc", Kind::Digest, "direnv runs it when you enter the directory"),
    (".claude-vm.toml", Kind::Digest, "claude-vm's configuration for this project"),
    (".claude-vm.*.sh", Kind::Digest, "claude-vm copies it into its VMs and runs it"),
    (".claude/settings.json", Kind::Digest, "Claude Code on the host runs its hooks, status line and helpers, and obeys its permissions"),
    (".claude/settings.local.json", Kind::Digest, "Claude Code on the host runs its hooks, status line and helpers, and obeys its permissions"),
    (".claude/hooks", Kind::Dir, "scripts Claude Code on the host runs as hooks"),
    (".mcp.json", Kind::Digest, "Claude Code on the host starts the MCP servers it names"),
    (".pre-commit-config.yaml", Kind::Digest, "pre-commit runs the hooks it names on every commit"),
    ("lefthook.yml", Kind::Digest, "lefthook runs the commands it names from git hooks"),
    (".lefthook.yml", Kind::Digest, "lefthook runs the commands it names from git hooks"),
    ("lefthook-local.yml", Kind::Digest, "lefthook runs the commands it names from git hooks"),
    (".overcommit.yml", Kind::Digest, "overcommit runs the hooks it names from git hooks"),
    (".husky", Kind::Dir, "husky's hooks: git runs them through core.hooksPath"),
    (".lfsconfig", Kind::Digest, "git-lfs reads its settings from it"),
    ("mise.toml", Kind::Digest, "mise runs its hooks and tasks, and sources its env files"),
    (".mise.toml", Kind::Digest, "mise runs its hooks and tasks, and sources its env files"),
    (".devcontainer/devcontainer.json", Kind::Digest, "VS Code runs its initializeCommand on the host"),
    (".devcontainer.json", Kind::Digest, "VS Code runs its initializeCommand on the host"),
    (".vscode/tasks.json", Kind::Digest, "VS Code runs its tasks, some when the folder opens"),
    (".vscode/launch.json", Kind::Digest, "VS Code runs its launch configurations"),
    (".vscode/settings.json", Kind::VscodeSettings, "VS Code and its extensions run the programs these settings name"),
];

/// When a git config key matches a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    Always,
    /// Not a boolean (core.fsmonitor = true is git's own daemon).
    NotBool,
    /// A `!` value: a shell command.
    Shell,
    /// An alias that runs a shell (`!`) or passes git options (`-c`, `--config-env`,
    /// `--exec-path`, ...), which can set any other key on this list.
    Alias,
}

/// Git config keys whose value git runs, or that change what git runs. A pattern is
/// `section.variable`, `section.*.variable` (any subsection) or `section.*` (any variable,
/// no subsection); sections and variables lower-cased as git normalises them.
const GIT_KEYS: &[(&str, When, &str)] = &[
    ("core.hookspath", When::Always, "moves git's hooks, which git runs on commit, checkout, merge and push"),
    ("core.fsmonitor", When::NotBool, "git runs it on nearly every command"),
    ("core.sshcommand", When::Always, "git runs it for every ssh fetch and push"),
    ("core.pager", When::Always, "git runs it to page its output"),
    ("pager.*", When::Always, "git runs it to page that command's output"),
    ("core.editor", When::Always, "git runs it on commit, tag and rebase"),
    ("sequence.editor", When::Always, "git runs it on interactive rebase"),
    ("core.askpass", When::Always, "git runs it to ask for a password"),
    ("core.gitproxy", When::Always, "git runs it for git:// connections"),
    ("core.alternaterefscommand", When::Always, "git runs it on fetch and push"),
    ("core.worktree", When::Always, "makes git work on another directory"),
    ("alias.*", When::Alias, "a `!` alias runs a shell; an alias with -c or --config-env sets any key, such as core.fsmonitor"),
    ("diff.external", When::Always, "git runs it for every diff"),
    ("diff.*.command", When::Always, "git runs it to diff matching files"),
    ("diff.*.textconv", When::Always, "git runs it to diff matching files"),
    ("interactive.difffilter", When::Always, "git add -p runs it"),
    ("difftool.*.cmd", When::Always, "git difftool runs it"),
    ("difftool.*.path", When::Always, "git difftool runs it"),
    ("mergetool.*.cmd", When::Always, "git mergetool runs it"),
    ("mergetool.*.path", When::Always, "git mergetool runs it"),
    ("merge.*.driver", When::Always, "git runs it when merging matching files"),
    ("filter.*.clean", When::Always, "git runs it on add and status"),
    ("filter.*.smudge", When::Always, "git runs it on checkout"),
    ("filter.*.process", When::Always, "git runs it on checkout, add and status"),
    ("gpg.program", When::Always, "git runs it to sign and verify (commit, tag, log --show-signature)"),
    ("gpg.*.program", When::Always, "git runs it to sign and verify"),
    ("gpg.ssh.defaultkeycommand", When::Always, "git runs it to find the signing key"),
    ("credential.helper", When::Always, "git runs it for every authenticated fetch and push"),
    ("credential.*.helper", When::Always, "git runs it for every authenticated fetch and push"),
    ("include.path", When::Always, "makes git read another configuration file (audited too)"),
    ("includeif.*.path", When::Always, "makes git read another configuration file (audited too)"),
    ("remote.*.uploadpack", When::Always, "git runs it on fetch"),
    ("remote.*.receivepack", When::Always, "git runs it on push"),
    ("remote.*.vcs", When::Always, "makes git run a remote helper program on fetch and push"),
    ("protocol.allow", When::Always, "allows transports such as ext::, which run commands"),
    ("protocol.*.allow", When::Always, "allows transports such as ext::, which run commands"),
    ("url.*.insteadof", When::Always, "rewrites the URLs git uses (an ext:: URL runs a command)"),
    ("url.*.pushinsteadof", When::Always, "rewrites the URLs git pushes to (an ext:: URL runs a command)"),
    ("submodule.*.update", When::Shell, "git submodule update runs a `!` command"),
    ("uploadpack.packobjectshook", When::Always, "git runs it to serve fetches"),
    ("sendemail.sendmailcmd", When::Always, "git send-email runs it"),
    ("sendemail.smtpserver", When::Always, "git send-email runs it when it is a path"),
    ("trailer.*.command", When::Always, "git commit --trailer and interpret-trailers run it"),
    ("trailer.*.cmd", When::Always, "git commit --trailer and interpret-trailers run it"),
    ("tar.*.command", When::Always, "git archive runs it"),
    ("web.browser", When::Always, "git help --web and instaweb run it"),
    ("browser.*.cmd", When::Always, "git help --web runs it"),
    ("browser.*.path", When::Always, "git help --web runs it"),
    ("man.viewer", When::Always, "git help runs it"),
    ("man.*.cmd", When::Always, "git help runs it"),
    ("man.*.path", When::Always, "git help runs it"),
    ("guitool.*.cmd", When::Always, "git gui runs it"),
    ("imap.tunnel", When::Always, "git imap-send runs it"),
    ("instaweb.httpd", When::Always, "git instaweb runs it"),
    ("instaweb.browser", When::Always, "git instaweb runs it"),
    ("svn.authorsprog", When::Always, "git svn runs it"),
    ("lfs.*.path", When::Always, "git-lfs runs it"),
    ("lfs.*.clean", When::Always, "git-lfs runs it"),
    ("lfs.*.smudge", When::Always, "git-lfs runs it"),
];

/// Variables named like this run something in every tool seen so far; a key no table names
/// is still caught by its shape.
const COMMAND_LIKE: &[&str] = &[
    "cmd",
    "command",
    "program",
    "helper",
    "driver",
    "editor",
    "pager",
    "hook",
    "hookspath",
    "askpass",
    "textconv",
    "smudge",
    "clean",
    "process",
    "prog",
];

/// Why git config `key = value` runs something, if it does.
pub fn git_key_reason(key: &str, value: &str) -> Option<&'static str> {
    let (section, sub, var) = split_key(key);
    for (pattern, when, why) in GIT_KEYS {
        if pattern_matches(pattern, &section, sub.as_deref(), &var) && applies(*when, value) {
            return Some(why);
        }
    }
    let v = value.trim_start();
    if v.starts_with('!') {
        return Some("a `!` value is a shell command to git");
    }
    if value.to_ascii_lowercase().contains("ext::") {
        return Some("an ext:: URL runs a command when git uses it");
    }
    if COMMAND_LIKE
        .iter()
        .any(|c| var == *c || (var.len() > c.len() && var.ends_with(c)))
    {
        return Some("named like a command git or a git tool runs");
    }
    None
}

fn applies(when: When, value: &str) -> bool {
    let v = value.trim();
    match when {
        When::Always => true,
        When::NotBool => !matches!(
            v.to_ascii_lowercase().as_str(),
            "" | "true" | "false" | "yes" | "no" | "on" | "off" | "1" | "0"
        ),
        When::Shell => v.starts_with('!'),
        When::Alias => {
            let mut words = v.split_whitespace();
            v.starts_with('!')
                || words.next().is_some_and(|w| w.starts_with('-'))
                || v.split_whitespace().any(|w| {
                    (w.starts_with("-c") && !w.starts_with("--"))
                        || w.starts_with("--config-env")
                        || w.starts_with("--exec-path")
                })
        }
    }
}

/// `section`, subsection (case kept), `variable`, the first and last lower-cased as git does.
fn split_key(key: &str) -> (String, Option<String>, String) {
    match (key.find('.'), key.rfind('.')) {
        (Some(first), Some(last)) if first != last => (
            key[..first].to_ascii_lowercase(),
            Some(key[first + 1..last].to_owned()),
            key[last + 1..].to_ascii_lowercase(),
        ),
        (Some(first), _) => (
            key[..first].to_ascii_lowercase(),
            None,
            key[first + 1..].to_ascii_lowercase(),
        ),
        _ => (key.to_ascii_lowercase(), None, String::new()),
    }
}

fn pattern_matches(pattern: &str, section: &str, sub: Option<&str>, var: &str) -> bool {
    let parts: Vec<&str> = pattern.split('.').collect();
    match parts.as_slice() {
        [s, "*"] => *s == section && sub.is_none(),
        [s, v] => *s == section && *v == var && sub.is_none(),
        [s, "*", v] => *s == section && *v == var && sub.is_some(),
        _ => false,
    }
}

/// Git's key normalisation: section and variable names are case-insensitive, a subsection
/// (between the first and last dot) is not.
fn lower_key(name: &str) -> String {
    match split_key(name) {
        (s, Some(sub), v) => format!("{s}.{sub}.{v}"),
        (s, None, v) if v.is_empty() => s,
        (s, None, v) => format!("{s}.{v}"),
    }
}

impl Watch {
    pub fn new(project: &Project, home: &Path) -> Watch {
        let mut roots = vec![project.root.clone()];
        roots.extend(project.main_root.iter().cloned());
        Watch {
            roots,
            home: home.to_path_buf(),
        }
    }

    /// A short name for the report of a session that was not seen to end.
    pub fn project(&self) -> Option<&Path> {
        self.roots.first().map(PathBuf::as_path)
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut s = Shot {
            items: BTreeMap::new(),
            seen_git_dirs: BTreeSet::new(),
            module_dirs: 0,
            home: &self.home,
        };
        for root in &self.roots {
            s.work_tree(root);
        }
        Snapshot(s.items)
    }
}

struct Shot<'a> {
    items: BTreeMap<String, Item>,
    seen_git_dirs: BTreeSet<PathBuf>,
    /// Directories looked at below `.git/modules`, across the snapshot.
    module_dirs: usize,
    home: &'a Path,
}

/// How deep `.git/modules` and includes are followed (submodules of submodules).
const MAX_DEPTH: usize = 6;

/// How many directories below `.git/modules` are looked at in all.
const MAX_MODULE_DIRS: usize = 1000;

/// How many entries of one directory are looked at.
const MAX_DIR_ENTRIES: usize = 10_000;

impl Shot<'_> {
    fn put(&mut self, label: String, value: String, why: &str) {
        self.items.insert(
            label,
            Item {
                value,
                why: why.to_owned(),
            },
        );
    }

    fn work_tree(&mut self, root: &Path) {
        for (pattern, kind, why) in HOST_FILES {
            let (dir, name) = match pattern.rsplit_once('/') {
                Some((d, n)) => (root.join(d), n),
                None => (root.to_path_buf(), *pattern),
            };
            let paths: Vec<PathBuf> = if name.contains('*') {
                dir_entries(&dir)
                    .into_iter()
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| glob(name, n))
                    })
                    .collect()
            } else {
                vec![dir.join(name)]
            };
            for path in paths {
                if fs::symlink_metadata(&path).is_err() {
                    continue;
                }
                match kind {
                    Kind::Digest => self.put(label(&path), fingerprint(&path), why),
                    Kind::Dir => self.dir(&path, why),
                    Kind::VscodeSettings => self.vscode_settings(&path, why),
                }
            }
        }
        for settings in CLAUDE_COMMANDS {
            self.named_scripts(root, &root.join(settings));
        }
        self.repository(root);
    }

    /// Project files that Claude Code's settings name in a command (`bash
    /// "$CLAUDE_PROJECT_DIR"/scripts/check.sh`, an MCP server's `args`): the host runs them.
    fn named_scripts(&mut self, root: &Path, settings: &Path) {
        let Some(doc) = read_regular(settings)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        else {
            return;
        };
        let mut words = Vec::new();
        command_words(&doc, false, &mut words);
        let why = format!(
            "Claude Code on the host runs it ({} names it)",
            label(settings)
        );
        for w in words {
            let w = w
                .trim_matches(|c| c == '"' || c == '\'')
                .replace("${CLAUDE_PROJECT_DIR}", &root.display().to_string())
                .replace("$CLAUDE_PROJECT_DIR", &root.display().to_string());
            let w = w.replace("\"", "");
            if w.is_empty() || w.starts_with('-') {
                continue;
            }
            let path = canonical(&root.join(&w));
            if path.starts_with(root)
                && path != root
                && fs::symlink_metadata(&path).is_ok_and(|m| m.is_file())
            {
                self.put(label(&path), fingerprint(&path), &why);
            }
        }
    }

    /// Every file in `dir` (not below it), and the directory itself when it is a link.
    fn dir(&mut self, dir: &Path, why: &str) {
        if fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
            self.put(label(dir), fingerprint(dir), why);
        }
        for f in dir_entries(dir) {
            if fs::symlink_metadata(&f).is_ok_and(|m| !m.is_dir()) {
                self.put(label(&f), fingerprint(&f), why);
            }
        }
    }

    /// A hooks directory: like `dir`, without git's `*.sample` files, which never run (a
    /// sample renamed to a hook's name shows as that hook, added).
    fn hooks(&mut self, dir: &Path) {
        let why = "git runs its hooks on commit, checkout, merge and push";
        if fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
            self.put(label(dir), fingerprint(dir), why);
        }
        for f in dir_entries(dir) {
            let sample = f.extension().is_some_and(|e| e == "sample");
            if !sample && fs::symlink_metadata(&f).is_ok_and(|m| !m.is_dir()) {
                self.put(label(&f), fingerprint(&f), why);
            }
        }
    }

    /// The git directory of a work tree, found as git finds it, and everything in it that
    /// runs on the host.
    fn repository(&mut self, root: &Path) {
        let dot_git = root.join(".git");
        let git_dir = match fs::symlink_metadata(&dot_git) {
            Ok(m) if m.is_dir() => {
                self.put(
                    label(&dot_git),
                    "the repository's git directory".into(),
                    "where git on the host finds hooks and config",
                );
                Some(dot_git)
            }
            Ok(m) if m.file_type().is_symlink() => {
                self.put(
                    label(&dot_git),
                    fingerprint(&dot_git),
                    "where git on the host finds hooks and config",
                );
                fs::canonicalize(&dot_git).ok()
            }
            Ok(_) => {
                let text = small_text(&dot_git);
                self.put(
                    label(&dot_git),
                    format!("git file: {}", text.trim()),
                    "where git on the host finds hooks and config",
                );
                text.trim()
                    .strip_prefix("gitdir:")
                    .map(|p| canonical(&root.join(p.trim())))
            }
            // A bare main repository is its own git directory.
            Err(_) if root.join("HEAD").is_file() && root.join("config").is_file() => {
                Some(root.to_path_buf())
            }
            Err(_) => None,
        };
        if let Some(dir) = git_dir {
            self.git_dir(&dir, root, 0);
        }
    }

    /// A git directory: its pointers, config, hooks and submodules' git directories.
    fn git_dir(&mut self, dir: &Path, work_tree: &Path, depth: usize) {
        let key = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        if depth > MAX_DEPTH || !self.seen_git_dirs.insert(key) {
            return;
        }
        let commondir = dir.join("commondir");
        let common = if fs::symlink_metadata(&commondir).is_ok() {
            let text = small_text(&commondir);
            self.put(
                label(&commondir),
                format!("points at {}", text.trim()),
                "names the repository whose hooks and config git on the host uses",
            );
            canonical(&dir.join(text.trim()))
        } else {
            dir.to_path_buf()
        };
        let back = dir.join("gitdir");
        if fs::symlink_metadata(&back).is_ok() {
            self.put(
                label(&back),
                format!("points at {}", small_text(&back).trim()),
                "where git thinks this worktree is",
            );
        }
        let mut hook_dirs = vec![common.join("hooks")];
        let mut configs = vec![common.join("config"), common.join("config.worktree")];
        if common != dir {
            configs.push(dir.join("config.worktree"));
        }
        for file in configs {
            self.config(&file, work_tree, &mut hook_dirs, 0);
        }
        for hooks in hook_dirs {
            self.hooks(&hooks);
            // husky keeps its stubs in `.husky/_`, which run the hooks one level up.
            if hooks.file_name().is_some_and(|n| n == "_") {
                if let Some(parent) = hooks.parent() {
                    self.dir(
                        parent,
                        "husky's hooks: git runs them through core.hooksPath",
                    );
                }
            }
        }
        if common != dir {
            self.git_dir(&common, work_tree, depth + 1);
        }
        self.modules(&common.join("modules"), depth + 1);
    }

    /// Submodules' git directories (`.git/modules/NAME`, names may contain `/`).
    fn modules(&mut self, dir: &Path, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        for sub in dir_entries(dir) {
            // A tree made to slow the audit down is cut short, visibly.
            if self.module_dirs >= MAX_MODULE_DIRS {
                self.put(
                    format!("{} (too many directories to audit)", label(dir)),
                    "cut short".into(),
                    "git looks for submodules' repositories here",
                );
                return;
            }
            self.module_dirs += 1;
            if !fs::symlink_metadata(&sub).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            if sub.join("config").is_file() || sub.join("HEAD").is_file() {
                // A submodule's own work tree is inside the project; where exactly does not
                // matter for what is watched here.
                self.git_dir(&sub, &sub, depth + 1);
            } else {
                self.modules(&sub, depth + 1);
            }
        }
    }

    /// Records the command-running keys of one git config file; collects hook directories
    /// and follows includes.
    fn config(
        &mut self,
        file: &Path,
        work_tree: &Path,
        hook_dirs: &mut Vec<PathBuf>,
        depth: usize,
    ) {
        let Ok(meta) = fs::symlink_metadata(file) else {
            return;
        };
        let name = label(file);
        if !fs::metadata(file).is_ok_and(|m| m.is_file()) || depth > MAX_DEPTH {
            self.put(name, fingerprint(file), "git reads its configuration here");
            return;
        }
        if meta.file_type().is_symlink() {
            self.put(
                format!("{name} (link)"),
                fingerprint(file),
                "git reads its configuration here",
            );
        }
        let Ok(config) = git2::Config::open(file) else {
            // Git itself would refuse such a file; still, a change to it must show.
            self.put(
                format!("{name} (unparsable)"),
                fingerprint(file),
                "git reads its configuration here",
            );
            return;
        };
        let mut values: BTreeMap<String, (Vec<String>, &'static str)> = BTreeMap::new();
        if let Ok(mut entries) = config.entries(None) {
            while let Some(Ok(entry)) = entries.next() {
                let (Some(key), Some(value)) = (entry.name(), entry.value()) else {
                    continue;
                };
                let key = lower_key(key);
                if let Some(why) = git_key_reason(&key, value) {
                    values
                        .entry(key)
                        .or_insert((Vec::new(), why))
                        .0
                        .push(value.to_owned());
                }
            }
        }
        let base = file.parent().unwrap_or(Path::new("/")).to_path_buf();
        for (key, (vals, why)) in values {
            for v in &vals {
                let p = crate::paths::expand_tilde(v, self.home);
                if key == "core.hookspath" {
                    hook_dirs.push(if p.is_absolute() {
                        p
                    } else {
                        work_tree.join(p)
                    });
                } else if key == "include.path" || key.starts_with("includeif.") {
                    let target = canonical(&if p.is_absolute() { p } else { base.join(p) });
                    self.config(&target, work_tree, hook_dirs, depth + 1);
                }
            }
            self.put(format!("{name}: {key}"), vals.join("\n"), why);
        }
    }

    /// The program-naming keys of VS Code's settings (JSON with comments).
    fn vscode_settings(&mut self, file: &Path, why: &str) {
        let name = label(file);
        let parsed = read_regular(file)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&strip_jsonc(&t)).ok());
        let Some(serde_json::Value::Object(map)) = parsed else {
            self.put(format!("{name} (unparsable)"), fingerprint(file), why);
            return;
        };
        for (key, value) in map {
            if vscode_key_runs(&key) {
                self.put(format!("{name}: {key}"), value.to_string(), why);
            }
        }
    }
}

/// Claude Code's files whose commands name scripts.
const CLAUDE_COMMANDS: &[&str] = &[
    ".claude/settings.json",
    ".claude/settings.local.json",
    ".mcp.json",
];

/// The words of every `command` string and `args` list in a JSON document.
fn command_words(v: &serde_json::Value, in_command: bool, out: &mut Vec<String>) {
    use serde_json::Value;
    match v {
        Value::String(s) if in_command => out.extend(s.split_whitespace().map(str::to_owned)),
        Value::Array(items) => items.iter().for_each(|i| command_words(i, in_command, out)),
        Value::Object(map) => {
            for (k, item) in map {
                command_words(item, in_command || k == "command" || k == "args", out);
            }
        }
        _ => {}
    }
}

/// VS Code settings that name a program, a shell or its arguments and environment.
fn vscode_key_runs(key: &str) -> bool {
    const WORDS: &[&str] = &[
        "path",
        "executable",
        "command",
        "cmd",
        "program",
        "interpreter",
        "shell",
        "runtime",
        "server",
        "terminal",
        "args",
        "env",
        "tasks",
        "launch",
        "binary",
        "tool",
        "script",
        "autorun",
        "trusted",
        "tsdk",
        "sdk",
        "goroot",
        "compiler",
    ];
    let k = key.to_ascii_lowercase();
    WORDS.iter().any(|w| k.contains(w))
}

/// JSON with `//` and `/* */` comments and trailing commas (VS Code's format) as JSON.
fn strip_jsonc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut last = ' ';
                for n in chars.by_ref() {
                    if last == '*' && n == '/' {
                        break;
                    }
                    last = n;
                }
            }
            (',', _) => {
                let rest: String = chars.clone().collect();
                let next = strip_leading_comments(&rest);
                if !(next.starts_with('}') || next.starts_with(']')) {
                    out.push(',');
                }
            }
            _ => out.push(c),
        }
    }
    out
}

fn strip_leading_comments(mut s: &str) -> &str {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix("//") {
            s = rest.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(rest) = s.strip_prefix("/*") {
            s = rest.split_once("*/").map_or("", |(_, r)| r);
        } else {
            return s;
        }
    }
}

/// `*` matches any run of characters within one name.
fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.len() >= head.len() + tail.len() && name.starts_with(head) && name.ends_with(tail)
        }
    }
}

/// Where a pointer leads, as git would reach it (`..` and links resolved when it exists).
fn canonical(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A path as text; bytes that are not UTF-8 become `\xNN`, so two names never share a label.
fn label(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for chunk in path.as_os_str().as_bytes().utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

fn dir_entries(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .take(MAX_DIR_ENTRIES)
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Bytes read before a file counts as "large": its size and time stand in for the rest.
const READ_LIMIT: u64 = 16 << 20;

/// Opens without following a link and without blocking on a FIFO; only a regular file is
/// read, and at most `READ_LIMIT` of it.
fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(READ_LIMIT).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Up to a few KiB of a small pointer file (`.git`, `commondir`).
fn small_text(path: &Path) -> String {
    read_regular(path)
        .map(|b| String::from_utf8_lossy(&b[..b.len().min(4096)]).into_owned())
        .unwrap_or_default()
}

/// Content and executable bit; a link by its target; anything else by its kind.
fn fingerprint(path: &Path) -> String {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return "missing".into();
    };
    let ft = meta.file_type();
    if ft.is_symlink() {
        // What runs is the target: its content counts too.
        let target = fs::read_link(path).unwrap_or_default();
        let content = fs::canonicalize(path)
            .ok()
            .filter(|t| fs::metadata(t).is_ok_and(|m| m.is_file()))
            .map(|t| format!(", {}", fingerprint(&t)))
            .unwrap_or_default();
        return format!("link to {}{content}", target.display());
    }
    if !ft.is_file() {
        return match () {
            _ if ft.is_dir() => "a directory".into(),
            _ if ft.is_fifo() => "a FIFO".into(),
            _ if ft.is_socket() => "a socket".into(),
            _ => "a device".into(),
        };
    }
    let mode = meta.permissions().mode() & 0o111;
    match read_regular(path) {
        Ok(bytes) if meta.len() > READ_LIMIT => format!(
            "sha256 of the first 16 MiB:{} size:{} exec:{mode:o}",
            crate::digest::sha256_hex(&bytes),
            meta.len()
        ),
        Ok(bytes) => format!("sha256:{} exec:{mode:o}", crate::digest::sha256_hex(&bytes)),
        Err(e) => format!("unreadable: {}", e.kind()),
    }
}

/// A `.git` (or other pointer) that changed: what is below its old target is no longer what
/// git uses, so it is one change ("replaced"), not a list of removed files.
fn replaced_git(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    before
        .0
        .iter()
        .filter(|(what, old)| {
            what.ends_with("/.git") && after.0.get(*what).is_some_and(|new| new.value != old.value)
        })
        .map(|(what, _)| format!("{what}/"))
        .collect()
}

pub fn changes(before: &Snapshot, after: &Snapshot) -> Vec<Change> {
    let replaced = replaced_git(before, after);
    let mut out = Vec::new();
    for (what, old) in &before.0 {
        match after.0.get(what) {
            None if replaced.iter().any(|r| what.starts_with(r.as_str())) => {}
            None => out.push(Change {
                what: what.clone(),
                how: "removed",
                why: old.why.clone(),
            }),
            Some(new) if new.value != old.value => out.push(Change {
                what: describe(what, &new.value),
                how: if replaced.iter().any(|r| r.strip_suffix('/') == Some(what)) {
                    "replaced"
                } else {
                    "changed"
                },
                why: new.why.clone(),
            }),
            Some(_) => {}
        }
    }
    for (what, new) in &after.0 {
        if !before.0.contains_key(what) {
            out.push(Change {
                what: describe(what, &new.value),
                how: "added",
                why: new.why.clone(),
            });
        }
    }
    out.sort_by(|a, b| a.what.cmp(&b.what));
    out
}

/// A key or pointer shows its new value (that is what will run); a file just its name.
fn describe(what: &str, value: &str) -> String {
    let pointer = ["/.git", "/commondir", "/gitdir"]
        .iter()
        .any(|end| what.ends_with(end));
    if what.contains(": ") || pointer {
        format!("{what} = \"{}\"", crate::ui::escape(value))
    } else {
        what.to_owned()
    }
}

/// The report's lines: names and values escaped, so nothing in them can move the cursor or
/// erase the warning on a terminal.
pub fn lines(changes: &[Change]) -> Vec<String> {
    let mut lines: Vec<String> = changes
        .iter()
        .map(|c| {
            format!(
                "{:<8} {}\n           ({})",
                c.how,
                crate::ui::escape(&c.what),
                crate::ui::escape(&c.why)
            )
        })
        .collect();
    lines.push(
        "the agent can write there; review these before you run git, direnv, your editor or claude-vm in this project again"
            .into(),
    );
    lines
}

pub const HEADLINE: &str = "this session changed files that run on your host:";

/// Loud, never hidden by --quiet: the user has to look before running git or claude-vm here.
/// Kept in a file too (`record`), which `info` and the next command point at.
pub fn report(
    ui: &Ui,
    paths: &crate::paths::HostPaths,
    watch: &Watch,
    session: &str,
    headline: &str,
    changes: &[Change],
) {
    if changes.is_empty() {
        return;
    }
    for c in changes {
        ui.event(crate::events::Event::AuditFinding {
            change: c.how.to_string().trim().to_owned(),
            what: c.what.clone(),
            reason: c.why.clone(),
        });
    }
    let mut shown = lines(changes);
    let project = watch.project().unwrap_or(Path::new("/"));
    match record::keep(paths, session, project, headline, &shown) {
        Ok(file) => shown.push(format!("this report is kept in {}", file.display())),
        Err(e) => shown.push(format!("(could not keep this report in a file: {e})")),
    }
    ui.alert(headline, &shown);
}

/// Points at reports that no command has pointed at yet (the terminal that showed them may
/// have been cleared, or the session was killed before it could show them).
pub fn point_at_unseen(ui: &Ui, paths: &crate::paths::HostPaths) {
    let unseen = record::take_unseen(paths);
    if unseen.is_empty() {
        return;
    }
    let lines: Vec<String> = unseen
        .iter()
        .map(|p| format!("see {}", p.display()))
        .collect();
    ui.alert(
        "an earlier session changed files that run on your host; review them before you run git or claude-vm there:",
        &lines,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_git_keys_run_commands() {
        for (k, v) in [
            ("core.hookspath", "x"),
            ("core.fsmonitor", "x"),
            ("core.sshcommand", "ssh -i k"),
            ("alias.st", "!rm -rf ~"),
            ("alias.st", "-c core.fsmonitor=evil status"),
            ("alias.st", "status -ccore.pager=evil"),
            ("alias.st", "--config-env=core.pager=X status"),
            ("alias.st", "--exec-path=/tmp status"),
            ("filter.lfs.smudge", "x"),
            ("filter.lfs.process", "x"),
            ("diff.pdf.textconv", "x"),
            ("merge.ours.driver", "x"),
            ("credential.https://x.helper", "x"),
            ("includeif.gitdir:/x/.path", "x"),
            ("pager.log", "x"),
            ("remote.origin.uploadpack", "evil"),
            ("remote.origin.receivepack", "evil"),
            ("remote.origin.url", "ext::sh -c evil"),
            ("protocol.ext.allow", "always"),
            ("protocol.allow", "always"),
            ("url.ext::sh -c evil #.insteadof", "https://x"),
            ("gpg.program", "evil"),
            ("gpg.ssh.program", "evil"),
            ("gpg.x509.program", "evil"),
            ("gpg.ssh.defaultkeycommand", "evil"),
            ("submodule.x.update", "!evil"),
            ("sequence.editor", "evil"),
            ("trailer.sign.command", "evil"),
            ("tar.tgz.command", "evil"),
            ("interactive.difffilter", "evil"),
            ("lfs.customtransfer.x.path", "evil"),
            ("sendemail.tocmd", "evil"),
            ("sendemail.work.sendmailcmd", "evil"),
            ("imap.tunnel", "evil"),
            ("svn.authorsprog", "evil"),
            ("svn-remote.svn.authorsprog", "evil"),
            ("newtool.thing.precommand", "evil"),
            ("anything.x", "!evil"),
        ] {
            assert!(git_key_reason(k, v).is_some(), "{k} = {v}");
        }
        for (k, v) in [
            ("alias.st", "status -s"),
            ("alias.lg", "log --oneline --color"),
            ("user.name", "x"),
            ("branch.main.remote", "origin"),
            ("remote.origin.url", "https://x/y.git"),
            ("remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"),
            ("filter.lfs.required", "true"),
            ("core.fsmonitor", "true"),
            ("core.fsmonitor", "false"),
            ("submodule.x.update", "rebase"),
            ("core.bare", "false"),
        ] {
            assert!(git_key_reason(k, v).is_none(), "{k} = {v}");
        }
    }

    #[test]
    fn every_rule_has_a_reason_and_a_known_shape() {
        for (pattern, _, why) in GIT_KEYS {
            assert!(!why.is_empty(), "{pattern}");
            assert!(
                matches!(pattern.split('.').count(), 2 | 3)
                    && *pattern == pattern.to_ascii_lowercase(),
                "{pattern}"
            );
        }
        for (name, _, why) in HOST_FILES {
            assert!(!why.is_empty(), "{name}");
        }
    }

    #[test]
    fn keys_normalise_like_git() {
        assert_eq!(lower_key("Core.HooksPath"), "core.hookspath");
        assert_eq!(lower_key("Filter.MyFilter.Clean"), "filter.MyFilter.clean");
        assert_eq!(lower_key("url.A.B.insteadOf"), "url.A.B.insteadof");
    }

    #[test]
    fn vscode_settings_with_comments_parse() {
        let text = "{\n // a comment\n \"a\": \"x // not a comment\", /* b */\n \"b\": [1, 2,],\n}";
        let v: serde_json::Value = serde_json::from_str(&strip_jsonc(text)).unwrap();
        assert_eq!(v["a"], "x // not a comment");
        assert_eq!(v["b"], serde_json::json!([1, 2]));
        assert!(vscode_key_runs("python.defaultInterpreterPath"));
        assert!(vscode_key_runs("terminal.integrated.shell.linux"));
        assert!(vscode_key_runs("typescript.tsdk"));
        assert!(vscode_key_runs("go.goroot"));
        assert!(!vscode_key_runs("editor.fontSize"));
    }

    fn item(v: &str) -> Item {
        Item {
            value: v.into(),
            why: "w".into(),
        }
    }

    #[test]
    fn changes_are_added_changed_removed() {
        let a = Snapshot(BTreeMap::from([
            ("/p/.envrc".to_string(), item("1")),
            ("/p/.git/config: core.pager".to_string(), item("less")),
            ("/p/.git/hooks/x".to_string(), item("1")),
        ]));
        let b = Snapshot(BTreeMap::from([
            ("/p/.envrc".to_string(), item("2")),
            ("/p/.git/config: core.pager".to_string(), item("evil")),
            ("/p/.git/hooks/y".to_string(), item("1")),
        ]));
        let c = changes(&a, &b);
        let text: Vec<String> = c.iter().map(|c| format!("{} {}", c.how, c.what)).collect();
        assert_eq!(
            text,
            [
                "changed /p/.envrc",
                "changed /p/.git/config: core.pager = \"evil\"",
                "removed /p/.git/hooks/x",
                "added /p/.git/hooks/y",
            ]
        );
        assert!(changes(&a, &a).is_empty());
    }

    #[test]
    fn a_replaced_git_directory_is_one_change_not_removed_files() {
        let a = Snapshot(BTreeMap::from([
            (
                "/p/.git".to_string(),
                item("the repository's git directory"),
            ),
            ("/p/.git/hooks/pre-commit.sample".to_string(), item("1")),
            ("/p/.git/config: core.pager".to_string(), item("less")),
        ]));
        let b = Snapshot(BTreeMap::from([
            ("/p/.git".to_string(), item("git file: gitdir: /p/evil")),
            ("/p/evil/hooks/post-checkout".to_string(), item("1")),
        ]));
        let text: Vec<String> = changes(&a, &b)
            .iter()
            .map(|c| format!("{} {}", c.how, c.what))
            .collect();
        assert_eq!(
            text,
            [
                "replaced /p/.git = \"git file: gitdir: /p/evil\"",
                "added /p/evil/hooks/post-checkout",
            ]
        );
    }

    #[test]
    fn fifos_and_devices_are_never_read() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("hook");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert_eq!(fingerprint(&fifo), "a FIFO");
        assert!(read_regular(&fifo).is_err());
        assert_eq!(fingerprint(Path::new("/dev/null")), "a device");
    }

    #[test]
    fn a_tree_made_to_slow_the_audit_is_cut_short_visibly() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let modules = root.join(".git/modules");
        for i in 0..(MAX_MODULE_DIRS + 50) {
            fs::create_dir_all(modules.join(format!("d{i}"))).unwrap();
        }
        // A FIFO where a hook would be: never opened for reading.
        let hooks = root.join(".git/hooks");
        fs::create_dir_all(&hooks).unwrap();
        let fifo = std::ffi::CString::new(hooks.join("pre-commit").to_str().unwrap()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let watch = Watch {
            roots: vec![root.clone()],
            home: root.clone(),
        };
        let snap = watch.snapshot();
        assert!(
            snap.0.keys().any(|k| k.contains("too many directories")),
            "{:?}",
            snap.0.keys().collect::<Vec<_>>()
        );
        assert_eq!(snap.0[&label(&hooks.join("pre-commit"))].value, "a FIFO");
    }

    #[test]
    fn labels_keep_names_that_are_not_utf8_apart() {
        use std::os::unix::ffi::OsStrExt;
        let a = label(Path::new(std::ffi::OsStr::from_bytes(
            b"/p/.git/hooks/a\xff",
        )));
        let b = label(Path::new(std::ffi::OsStr::from_bytes(
            b"/p/.git/hooks/a\xfe",
        )));
        assert_eq!(a, "/p/.git/hooks/a\\xff");
        assert_ne!(a, b);
    }

    #[test]
    fn globs_match_one_name() {
        assert!(glob(".claude-vm.*.sh", ".claude-vm.setup.sh"));
        assert!(!glob(".claude-vm.*.sh", ".claude-vm.sh"));
        assert!(glob(".envrc", ".envrc"));
    }
}
