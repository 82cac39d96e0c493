//! Configuration: defaults < `~/.claude-vm.toml` < the main repository's file (worktrees) <
//! the project's file < `CLAUDE_VM_*` variables < command-line flags.
//!
//! Each layer is validated on its own, so an error names its file, variable or flag; figment
//! then merges them (scalars: the later layer wins; lists: appended) and remembers the origin
//! of every value for `config show`.

mod files;
mod layer;
pub mod mounts;
pub mod presets;
mod schema;
pub mod show;
pub mod suggest;
mod values;
mod widening;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::Figment;

pub use layer::Origin;
pub use schema::{
    Config, InstallMethod, Mount, Policy, PortForward, CPUS, DISK_GB, MEMORY_GB, POOL_SIZE,
};
pub use widening::Review;

use crate::error::{Error, Result};
use crate::paths::HostPaths;
use crate::project::Project;
use layer::{Layer, LayerData};
use schema::VmLayer;

/// Environment variables that override `[vm]`.
pub const ENV_VARS: [(&str, &str); 3] = [
    ("CLAUDE_VM_DISK", "disk"),
    ("CLAUDE_VM_MEMORY", "memory"),
    ("CLAUDE_VM_CPUS", "cpus"),
];

/// What the command line adds; raw, so errors can name the flag.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub disk: Option<u32>,
    pub memory: Option<u32>,
    pub cpus: Option<u32>,
    /// `--mount` of a session.
    pub mounts: Vec<String>,
    /// `setup --mount`.
    pub setup_mounts: Vec<String>,
    pub runtime_scripts: Vec<PathBuf>,
    pub setup_scripts: Vec<PathBuf>,
    /// `--env NAME=VALUE`.
    pub env: Vec<String>,
    /// `--env-file PATH`, dotenv syntax; `--env` wins over them.
    pub env_files: Vec<PathBuf>,
    /// `--inherit-env NAME`.
    pub inherit_env: Vec<String>,
    /// `--host-url NAME`.
    pub host_urls: Vec<String>,
    /// `setup --docker --node ...` (or all of them with `--all`).
    pub tools: Vec<String>,
    /// `-A/--forward-ssh-agent`.
    pub forward_agent: bool,
    /// `--network MODE`, for one session.
    pub network: Option<String>,
    /// `--allow HOST`, for one session.
    pub allow: Vec<String>,
}

/// Everything configuration is made from.
pub struct Inputs<'a> {
    pub paths: &'a HostPaths,
    pub project: &'a Project,
    pub cwd: &'a Path,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub overrides: &'a Overrides,
}

/// The effective configuration and the merged sources behind it.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub figment: Figment,
    /// The configuration files that exist and were read, lowest precedence first.
    pub files: Vec<PathBuf>,
    /// The project's own files (agent-writable), with what they would open up.
    pub reviews: Vec<Review>,
}

impl Loaded {
    /// The files read, for messages: "a, b" or "none".
    pub fn files_display(&self) -> String {
        if self.files.is_empty() {
            "none".to_owned()
        } else {
            self.files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    /// Which layer a key's value came from (e.g. `vm.disk`).
    pub fn origin_of(&self, key: &str) -> Option<String> {
        self.figment.find_metadata(key).map(describe)
    }
}

/// `project file (/abs/path/.claude-vm.toml)`, `environment (CLAUDE_VM_DISK)`, `default`.
fn describe(meta: &figment::Metadata) -> String {
    match &meta.source {
        // figment shows files relative to the current directory; absolute is unambiguous.
        Some(figment::Source::File(path)) => format!("{} ({})", meta.name, path.display()),
        Some(src) => format!("{} ({src})", meta.name),
        None => meta.name.to_string(),
    }
}

pub fn load(inputs: &Inputs) -> Result<Loaded> {
    let home = &inputs.paths.home;
    let mut layers = vec![layer(Origin::Default, &Config::default())?];
    let mut files = Vec::new();
    let mut reviews = Vec::new();
    let project_roots: Vec<&Path> = std::iter::once(inputs.project.root.as_path())
        .chain(inputs.project.main_root.as_deref())
        .collect();

    let mut candidates = vec![(
        inputs.paths.global_config(),
        Origin::GlobalFile as fn(PathBuf) -> Origin,
    )];
    if let Some(main) = inputs.project.main_config_file() {
        candidates.push((main, Origin::MainRepoFile));
    }
    candidates.push((inputs.project.config_file(), Origin::ProjectFile));
    let mut allowance = widening::Allowance::of(&Config::default());
    for (path, origin) in candidates {
        if files.contains(&path) {
            continue; // the project is the home directory: one file, read once
        }
        if let Some((data, digest)) = files::read_with_digest(&path, home)? {
            let origin = origin(path.clone());
            // The agent can write the project: its files, and the global one too when the
            // project is the home directory.
            let agent_writable = matches!(origin, Origin::ProjectFile(_) | Origin::MainRepoFile(_))
                || project_roots.iter().any(|r| path.starts_with(r));
            if agent_writable {
                let mut widens = widening::widens(&data, &project_roots);
                widens.extend(widening::widens_resources(&data, &allowance));
                widens.extend(widening::widens_network(&data, &allowance));
                reviews.push(Review {
                    path: path.clone(),
                    digest,
                    widens,
                });
            } else if matches!(origin, Origin::GlobalFile(_)) {
                allowance.widen(&data);
            }
            layers.push(layer(origin, &data)?);
            files.push(path);
        }
    }

    for (var, key) in ENV_VARS {
        if let Some(data) = env_layer(var, key, inputs.env)? {
            layers.push(layer(Origin::Env(var.to_owned()), &data)?);
        }
    }
    layers.push(layer(
        Origin::CommandLine,
        &cli_layer(inputs.overrides, inputs.cwd, home)?,
    )?);

    let figment = layers.into_iter().fold(Figment::new(), Figment::admerge);
    let mut config: Config = figment
        .extract()
        .map_err(|e| Error::failure(format!("cannot merge the configuration: {e}")))?;
    config.mounts = mounts::dedup(config.mounts);
    config.setup.mounts = mounts::dedup(config.setup.mounts);
    dedup_paths(&mut config.setup.scripts);
    dedup_paths(&mut config.runtime.scripts);
    dedup_first(&mut config.inherit.env);
    dedup_first(&mut config.inherit.host_urls);
    dedup_first(&mut config.packages.system);
    dedup_first(&mut config.network.allow);
    dedup_first(&mut config.network.deny);
    let mut seen = std::collections::HashSet::new();
    config.network.host_ports.retain(|p| seen.insert(*p));
    // One forward per host port: the higher-precedence layer's rule wins.
    let mut hosts = std::collections::HashSet::new();
    config.ports.reverse();
    config.ports.retain(|p| hosts.insert(p.host));
    config.ports.reverse();
    Ok(Loaded {
        config,
        figment,
        files,
        reviews,
    })
}

/// Validates one file on its own (`config validate FILE`).
pub fn validate_file(path: &Path, home: &Path) -> Result<()> {
    match files::read(path, home)? {
        Some(_) => Ok(()),
        None => Err(Error::usage(format!("{} does not exist", path.display()))
            .with_hint("pass the path of a .claude-vm.toml file")),
    }
}

fn layer(origin: Origin, data: &impl serde::Serialize) -> Result<Layer> {
    Layer::new(origin, data)
        .map_err(|e| Error::failure(format!("internal configuration error: {e}")))
}

fn env_layer(
    var: &str,
    key: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<LayerData>> {
    let Some(raw) = lookup(var).filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let range = match key {
        "disk" => DISK_GB,
        "memory" => MEMORY_GB,
        _ => CPUS,
    };
    let value = raw.trim().parse::<u32>().ok().filter(|v| range.contains(v)).ok_or_else(|| {
        Error::usage(format!(
            "environment variable {var} is `{raw}`, but `vm.{key}` must be a whole number from {} to {}",
            range.start(),
            range.end()
        ))
        .with_hint(format!("fix or unset {var}"))
    })?;
    let mut vm = VmLayer::default();
    match key {
        "disk" => vm.disk = Some(value),
        "memory" => vm.memory = Some(value),
        _ => vm.cpus = Some(value),
    }
    Ok(Some(LayerData {
        vm,
        ..LayerData::default()
    }))
}

fn cli_layer(o: &Overrides, cwd: &Path, home: &Path) -> Result<LayerData> {
    let mut data = LayerData::default();
    data.vm.disk = o.disk;
    data.vm.memory = o.memory;
    data.vm.cpus = o.cpus;
    let flag_err = |flag: &str, value: &str, msg: String| {
        Error::usage(format!("invalid {flag} `{value}`: {msg}"))
            .with_hint(format!("fix the {flag} value"))
    };
    for spec in &o.mounts {
        data.mounts
            .push(mounts::parse_spec(spec, home).map_err(|m| flag_err("--mount", spec, m))?);
    }
    for spec in &o.setup_mounts {
        data.setup
            .mounts
            .push(mounts::parse_spec(spec, home).map_err(|m| flag_err("--mount", spec, m))?);
    }
    let script = |flag: &str, p: &PathBuf| {
        let raw = p.to_string_lossy();
        files::resolve_script(&raw, cwd, home).map_err(|m| flag_err(flag, &raw, m))
    };
    for p in &o.runtime_scripts {
        data.runtime.scripts.push(script("--runtime-script", p)?);
    }
    for p in &o.setup_scripts {
        data.setup.scripts.push(script("--setup-script", p)?);
    }
    for path in &o.env_files {
        data.env.extend(read_env_file(&cwd.join(path))?);
    }
    data.env.extend(parse_env_assignments(&o.env)?);
    for name in &o.inherit_env {
        values::env_name(name).map_err(|m| flag_err("--inherit-env", name, m))?;
        data.inherit.env.push(name.clone());
    }
    for name in &o.host_urls {
        values::env_name(name).map_err(|m| flag_err("--host-url", name, m))?;
        data.inherit.host_urls.push(name.clone());
    }
    for tool in &o.tools {
        files::check_tool(tool).map_err(|(m, hint)| {
            Error::usage(format!("unknown tool `{tool}`: it {m}")).with_hint(hint)
        })?;
        data.tools.insert(tool.clone(), true);
    }
    if o.forward_agent {
        data.ssh.forward_agent = Some(true);
    }
    if let Some(mode) = &o.network {
        data.network.policy = Some(Policy::parse(mode).ok_or_else(|| {
            Error::usage(format!(
                "invalid --network `{}`: not a policy",
                crate::escape::escape(mode)
            ))
            .with_hint("use --network allowlist, --network open or --network offline")
        })?);
    }
    for host in &o.allow {
        files::network_pattern(host).map_err(|m| {
            Error::usage(format!(
                "invalid --allow `{}`: {m}",
                crate::escape::escape(host)
            ))
            .with_hint(
                "pass a host name, such as --allow api.github.com or --allow '*.example.com'",
            )
        })?;
        data.network.allow.push(host.clone());
    }
    Ok(data)
}

/// `NAME=VALUE` pairs; names are shell identifiers so they can be exported as they are.
pub fn parse_env_assignments(items: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    // A value may be a secret: messages name the argument and the variable, never the value.
    for (i, item) in items.iter().enumerate() {
        let Some((name, value)) = item.split_once('=') else {
            return Err(Error::usage(format!(
                "invalid --env (the {} one): expected NAME=VALUE, and there is no `=` (the text is not shown, it may be a secret)",
                ordinal(i + 1)
            ))
            .with_hint("write it as --env NAME=VALUE, or use --inherit-env NAME to copy a variable from your shell"));
        };
        values::env_name(name).map_err(|_| {
            Error::usage(format!(
                "invalid --env (the {} one): the text before `=` is not a valid variable name (letters, digits and _, not starting with a digit; not shown, it may be a secret)",
                ordinal(i + 1)
            ))
            .with_hint("write it as --env NAME=VALUE")
        })?;
        out.insert(name.to_owned(), value.to_owned());
    }
    Ok(out)
}

/// A dotenv file: `NAME=value` lines, `export` prefixes, quotes, comments.
fn read_env_file(path: &Path) -> Result<BTreeMap<String, String>> {
    let fail = |m: String| {
        Error::usage(format!("invalid --env-file {}: {m}", path.display()))
            .with_hint("fix the file (dotenv syntax: NAME=value per line)")
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let mut out = BTreeMap::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        let (name, value) = item.map_err(|e| match e {
            dotenvy::Error::LineParse(line, col) => {
                let n = text
                    .lines()
                    .position(|l| l.contains(line.trim()))
                    .map_or(0, |i| i + 1);
                // The line is not quoted back: it may hold a secret.
                fail(format!(
                    "line {n} cannot be read at column {}; quote values with spaces",
                    col + 1
                ))
            }
            other => fail(other.to_string()),
        })?;
        let line = || {
            text.lines()
                .position(|l| l.contains(&format!("{name}=")) || l.contains(&name))
                .map_or(0, |i| i + 1)
        };
        if values::env_name(&name).is_err() {
            return Err(fail(format!(
                "line {} does not start with a valid variable name (letters, digits and _, not starting with a digit; not shown, it may be a secret)",
                line()
            )));
        }
        values::env_value(&name, &value).map_err(fail)?;
        out.insert(name, value);
    }
    Ok(out)
}

fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, x) if x != 11 => "st",
        (2, x) if x != 12 => "nd",
        (3, x) if x != 13 => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn dedup_first(items: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    items.retain(|i| seen.insert(i.clone()));
}

fn dedup_paths(paths: &mut Vec<PathBuf>) {
    let mut seen = std::collections::HashSet::new();
    paths.retain(|p| seen.insert(p.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    struct World {
        tmp: tempfile::TempDir,
        paths: HostPaths,
        project: Project,
    }

    impl World {
        fn new() -> World {
            let tmp = tempfile::tempdir().unwrap();
            let home = std::fs::canonicalize(tmp.path()).unwrap();
            std::fs::create_dir_all(home.join("proj")).unwrap();
            std::fs::create_dir_all(home.join("data")).unwrap();
            let paths = HostPaths {
                home: home.clone(),
                data_dir: home.join(".local/share/claude-vm"),
                lima_home: home.join(".lima"),
            };
            let project = Project {
                root: home.join("proj"),
                main_root: None,
                in_git: false,
            };
            World {
                tmp,
                paths,
                project,
            }
        }
        fn write(&self, rel: &str, text: &str) {
            std::fs::write(self.paths.home.join(rel), text).unwrap();
        }
        fn load_with(&self, env: &[(&str, &str)], o: &Overrides) -> Result<Loaded> {
            let env: BTreeMap<String, String> = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let lookup = move |k: &str| env.get(k).cloned();
            load(&Inputs {
                paths: &self.paths,
                project: &self.project,
                cwd: &self.project.root,
                env: &lookup,
                overrides: o,
            })
        }
    }

    /// Every key of the configuration's shape: tables by their keys, lists and values whole
    /// (`tools` and `env` are maps whose keys are names, listed one by one).
    fn leaf_keys(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) if !["tools", "env"].contains(&prefix) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaf_keys(&key, v, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }

    #[test]
    fn config_show_lists_every_key() {
        let w = World::new();
        let l = w.load_with(&[], &Overrides::default()).unwrap();
        // Optional keys too: give every one a value so serde shows it.
        let mut c = Config::default();
        c.claude.version = Some("1.0.0".into());
        c.packages.setup_script = Some("/x.sh".into());
        let mut keys = Vec::new();
        leaf_keys("", &serde_json::to_value(&c).unwrap(), &mut keys);
        let shown: Vec<String> = l
            .entries()
            .iter()
            .map(|e| match e {
                show::Entry::Single { key, .. }
                | show::Entry::List { key, .. }
                | show::Entry::Unset { key, .. } => key.clone(),
            })
            .collect();
        for key in keys {
            let found = if key == "tools" || key == "env" {
                key == "env" || shown.iter().any(|s| s.starts_with("tools."))
            } else {
                shown.contains(&key)
            };
            assert!(found, "config show leaves out {key}: {shown:?}");
        }
        let text = show::render(&l.entries());
        assert!(text.contains("# claude.version is not set"), "{text}");
        assert!(text.contains("vm.auto_rebuild = false"), "{text}");
    }

    #[test]
    fn defaults_without_files() {
        let w = World::new();
        let l = w.load_with(&[], &Overrides::default()).unwrap();
        assert_eq!(l.config, Config::default());
        assert_eq!(l.origin_of("vm.disk").as_deref(), Some("default"));
        drop(w.tmp);
    }

    #[test]
    fn precedence_cli_over_env_over_project_over_global() {
        let w = World::new();
        w.write(
            ".claude-vm.toml",
            "[vm]\ndisk = 20\nmemory = 10\ncpus = 2\n",
        );
        w.write("proj/.claude-vm.toml", "[vm]\ndisk = 30\nmemory = 12\n");
        let l = w
            .load_with(
                &[("CLAUDE_VM_MEMORY", "16")],
                &Overrides {
                    disk: Some(40),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(
            (l.config.vm.disk, l.config.vm.memory, l.config.vm.cpus),
            (40, 16, 2)
        );
        assert_eq!(l.origin_of("vm.disk").as_deref(), Some("command line"));
        assert_eq!(
            l.origin_of("vm.memory").as_deref(),
            Some("environment (CLAUDE_VM_MEMORY)")
        );
        assert!(l.origin_of("vm.cpus").unwrap().starts_with("global file"));
        let l = w.load_with(&[], &Overrides::default()).unwrap();
        assert_eq!(l.config.vm.disk, 30);
        assert!(l.origin_of("vm.disk").unwrap().starts_with("project file"));
    }

    #[test]
    fn lists_accumulate_and_deduplicate() {
        let w = World::new();
        w.write("s.sh", "true");
        w.write(".claude-vm.toml", "[runtime]\nscripts = [\"~/s.sh\"]\n[defaults]\nclaude_args = [\"--a\"]\n[[mounts]]\nlocation = \"~/data\"\n");
        w.write(
            "proj/.claude-vm.toml",
            "[runtime]\nscripts = [\"../s.sh\"]\n[defaults]\nclaude_args = [\"--b\", \"--a\"]\n[[mounts]]\nlocation = \"~/data\"\nwritable = true\n",
        );
        let l = w
            .load_with(
                &[],
                &Overrides {
                    runtime_scripts: vec![w.paths.home.join("s.sh")],
                    ..Default::default()
                },
            )
            .unwrap();
        let c = &l.config;
        assert_eq!(
            c.runtime.scripts,
            vec![w.paths.home.join("s.sh")],
            "one script, three spellings"
        );
        assert_eq!(
            c.defaults.claude_args,
            ["--a", "--b", "--a"],
            "claude args append in order, untouched"
        );
        assert_eq!(c.mounts.len(), 1);
        assert!(
            c.mounts[0].writable,
            "the project file's mount overrides the global one"
        );
    }

    #[test]
    fn bad_environment_values_name_the_variable() {
        let w = World::new();
        for (var, val) in [
            ("CLAUDE_VM_DISK", "thirty"),
            ("CLAUDE_VM_CPUS", "0"),
            ("CLAUDE_VM_MEMORY", "8.5"),
        ] {
            let e = w
                .load_with(&[(var, val)], &Overrides::default())
                .unwrap_err();
            assert!(e.message().contains(var), "{}", e.message());
            assert!(e.hint().unwrap().contains(var));
        }
        assert!(
            w.load_with(&[("CLAUDE_VM_DISK", "")], &Overrides::default())
                .is_ok(),
            "empty means unset"
        );
    }

    #[test]
    fn bad_flags_name_the_flag() {
        let w = World::new();
        let cases: [(Overrides, &str); 4] = [
            (
                Overrides {
                    mounts: vec!["rel".into()],
                    ..Default::default()
                },
                "invalid --mount `rel`",
            ),
            (
                Overrides {
                    runtime_scripts: vec!["missing.sh".into()],
                    ..Default::default()
                },
                "invalid --runtime-script",
            ),
            (
                Overrides {
                    env: vec!["1X=2".into()],
                    ..Default::default()
                },
                "not a valid variable name",
            ),
            (
                Overrides {
                    env: vec!["NOVALUE".into()],
                    ..Default::default()
                },
                "expected NAME=VALUE",
            ),
        ];
        for (o, want) in cases {
            let e = w.load_with(&[], &o).unwrap_err();
            assert!(e.message().contains(want), "{}", e.message());
        }
    }

    #[test]
    fn env_values_keep_every_byte() {
        let m =
            parse_env_assignments(&["A=x=y".into(), "B=".into(), "C=\n'\"$`\\ é".into()]).unwrap();
        assert_eq!(m["A"], "x=y");
        assert_eq!(m["B"], "");
        assert_eq!(m["C"], "\n'\"$`\\ é");
    }

    #[test]
    fn project_files_are_reviewed_and_the_global_one_only_when_the_project_is_home() {
        let mut w = World::new();
        let mount = "[[mounts]]\nlocation = \"~/data\"\n";
        w.write(".claude-vm.toml", mount);
        w.write("proj/.claude-vm.toml", mount);
        let l = w.load_with(&[], &Overrides::default()).unwrap();
        assert_eq!(l.reviews.len(), 1, "{:?}", l.reviews);
        let r = &l.reviews[0];
        assert_eq!(r.path, w.paths.home.join("proj/.claude-vm.toml"));
        assert_eq!(r.widens.len(), 1, "~/data is outside the project");
        assert_eq!(r.digest, crate::digest::sha256_hex(mount.as_bytes()));
        // The home directory as the project: the agent can write ~/.claude-vm.toml.
        w.project.root = w.paths.home.clone();
        let l = w.load_with(&[], &Overrides::default()).unwrap();
        assert_eq!(l.reviews.len(), 1);
        assert_eq!(l.reviews[0].path, w.paths.home.join(".claude-vm.toml"));
        assert!(l.reviews[0].widens.is_empty(), "~/data is inside it now");
    }

    #[test]
    fn worktree_reads_the_main_repository_file_below_the_project_file() {
        let mut w = World::new();
        std::fs::create_dir_all(w.paths.home.join("main")).unwrap();
        w.project.main_root = Some(w.paths.home.join("main"));
        w.write("main/.claude-vm.toml", "[vm]\ndisk = 50\ncpus = 8\n");
        w.write("proj/.claude-vm.toml", "[vm]\ndisk = 60\n");
        let l = w.load_with(&[], &Overrides::default()).unwrap();
        assert_eq!((l.config.vm.disk, l.config.vm.cpus), (60, 8));
        assert_eq!(l.files.len(), 2);
        assert!(l
            .origin_of("vm.cpus")
            .unwrap()
            .starts_with("main repository file"));
    }
}
