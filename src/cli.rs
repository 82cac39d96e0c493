//! Command-line types (clap derive). No behaviour here.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{CPUS, DISK_GB, MEMORY_GB};

const ABOUT: &str = "Run Claude Code in disposable Lima VMs";
const AFTER_HELP: &str = "\
Examples:
  claude-vm setup                      build this repository's template VM (once)
  claude-vm \"fix the failing test\"     run claude in a fresh clone of the template
  claude-vm \"review\" --model opus      flags after the prompt go to claude untouched
  claude-vm shell                      a shell in a fresh clone; `shell -- make test` runs a command

Everything after claude-vm's own flags is passed to claude byte for byte.
Use `claude-vm -- ARGS` when the first argument looks like one of ours.";

#[derive(Debug, Parser)]
#[command(name = "claude-vm", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,

    #[command(flatten)]
    pub session: SessionOpts,

    /// The prompt, then any Claude Code arguments.
    #[arg(
        value_name = "PROMPT_AND_CLAUDE_ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub claude_args: Vec<OsString>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalOpts {
    /// Stream Lima's and the guest's output.
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub verbose: bool,

    /// Print only errors.
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = GLOBAL
    )]
    pub quiet: bool,

    /// Print the plan (each limactl call and the guest scripts) and run nothing.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub dry_run: bool,

    /// Write claude-vm's own messages to stderr as JSON lines (docs/events.md); stdout stays
    /// claude's (or the command's; `list --json` prints one JSON document there).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Clone, Default, Args)]
pub struct ResourceOpts {
    /// Disk size in GB (1-1000).
    #[arg(long, value_name = "GB", value_parser = parse_disk)]
    pub disk: Option<u32>,

    /// Memory in GB (1-64).
    #[arg(long, value_name = "GB", value_parser = parse_memory)]
    pub memory: Option<u32>,

    /// Number of CPUs (1-64).
    #[arg(long, value_name = "N", value_parser = parse_cpus)]
    pub cpus: Option<u32>,
}

impl ResourceOpts {
    pub fn is_empty(&self) -> bool {
        self.disk.is_none() && self.memory.is_none() && self.cpus.is_none()
    }

    /// Flags given here win over flags given before the subcommand.
    pub fn or(&self, other: &ResourceOpts) -> ResourceOpts {
        ResourceOpts {
            disk: self.disk.or(other.disk),
            memory: self.memory.or(other.memory),
            cpus: self.cpus.or(other.cpus),
        }
    }
}

/// The help headings that keep claude-vm's global flags apart from a command's own.
const GLOBAL: &str = "Global options";
const SESSION: &str = "Session options";

/// Flags of a session (`claude-vm [PROMPT]`, `agent`, `shell`).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = SESSION)]
pub struct SessionOpts {
    #[command(flatten)]
    pub resources: ResourceOpts,

    /// Share a host directory: /host, /host:ro, /host:/guest, /host:/guest:ro (~ expands).
    /// Repeatable.
    #[arg(long = "mount", value_name = "SPEC")]
    pub mounts: Vec<String>,

    /// Source this script in the VM at the start of the session, before claude, the shell or
    /// the command (after .claude-vm.runtime.sh and [runtime] scripts). Repeatable.
    #[arg(long = "runtime-script", value_name = "PATH")]
    pub runtime_scripts: Vec<PathBuf>,

    /// Do not share this project's Claude conversation folder with the VM.
    #[arg(long)]
    pub no_conversations: bool,

    /// Set an environment variable in the VM (the value never appears on a command line).
    /// Repeatable.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,

    /// Read variables for the VM from a dotenv file (NAME=value lines). Repeatable.
    #[arg(long = "env-file", value_name = "PATH")]
    pub env_files: Vec<PathBuf>,

    /// Copy a variable from your environment into the VM. Repeatable.
    #[arg(long = "inherit-env", value_name = "NAME")]
    pub inherit_env: Vec<String>,

    /// Treat NAME as a URL: when its value points at the host's loopback (localhost,
    /// 127.x, [::1]), the VM gets it pointed at the host instead. Repeatable; proxies and
    /// variables named *_URL, *_URI or *_ENDPOINT are always treated so.
    #[arg(long = "host-url", value_name = "NAME")]
    pub host_urls: Vec<String>,

    /// Forward your SSH agent into the VM (keys stay on the host).
    #[arg(short = 'A', long = "forward-ssh-agent")]
    pub forward_agent: bool,

    /// Build the template first if it does not exist, without asking.
    #[arg(long)]
    pub auto_setup: bool,

    /// Rebuild the template before the session (`[vm] auto_rebuild = true` does it whenever
    /// the template is out of date).
    #[arg(long)]
    pub rebuild: bool,

    /// Use project files that widen the sandbox even though `claude-vm trust` did not
    /// approve them (this once).
    #[arg(long)]
    pub yes: bool,

    /// Run even from $HOME, /, a parent of $HOME or a system directory, which is then
    /// mounted writable into the VM (normally refused: run from a project instead).
    #[arg(long)]
    pub allow_any_dir: bool,

    // The network (issue 12), for this session only.
    /// The network policy: allowlist (the default: Claude Code's hosts, the tools' presets
    /// and [network] allow), open (anything public, still logged) or offline (only the
    /// Anthropic API, through the host).
    #[arg(long = "network", value_name = "MODE")]
    pub network: Option<String>,

    /// Also allow HOST (`api.example.com`, `*.example.com`, `host:port`). Repeatable.
    #[arg(long = "allow", value_name = "HOST")]
    pub allow: Vec<String>,
}

impl SessionOpts {
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
            && self.mounts.is_empty()
            && self.runtime_scripts.is_empty()
            && !self.no_conversations
            && self.env.is_empty()
            && self.env_files.is_empty()
            && self.inherit_env.is_empty()
            && self.host_urls.is_empty()
            && !self.forward_agent
            && !self.auto_setup
            && !self.rebuild
            && !self.yes
            && !self.allow_any_dir
            && self.network.is_none()
            && self.allow.is_empty()
    }

    /// Combines flags given before and after the subcommand name.
    pub fn merge(&self, later: &SessionOpts) -> SessionOpts {
        let cat = |a: &Vec<String>, b: &Vec<String>| a.iter().chain(b).cloned().collect();
        SessionOpts {
            resources: later.resources.or(&self.resources),
            mounts: cat(&self.mounts, &later.mounts),
            runtime_scripts: self
                .runtime_scripts
                .iter()
                .chain(&later.runtime_scripts)
                .cloned()
                .collect(),
            no_conversations: self.no_conversations || later.no_conversations,
            env: cat(&self.env, &later.env),
            env_files: self
                .env_files
                .iter()
                .chain(&later.env_files)
                .cloned()
                .collect(),
            inherit_env: cat(&self.inherit_env, &later.inherit_env),
            host_urls: cat(&self.host_urls, &later.host_urls),
            forward_agent: self.forward_agent || later.forward_agent,
            auto_setup: self.auto_setup || later.auto_setup,
            rebuild: self.rebuild || later.rebuild,
            yes: self.yes || later.yes,
            allow_any_dir: self.allow_any_dir || later.allow_any_dir,
            network: later.network.clone().or_else(|| self.network.clone()),
            allow: cat(&self.allow, &later.allow),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run claude in a fresh clone of the template (the default command).
    Agent(AgentArgs),
    /// Open a login shell in a fresh clone, or run a command: `shell -- CMD ARGS...`.
    Shell(ShellArgs),
    /// Build (or rebuild) this repository's template VM.
    Setup(SetupArgs),
    /// List claude-vm's templates and running sessions (with --json: one JSON document,
    /// {"templates": [...], "sessions": [...], "bases": [...]}, on stdout).
    List,
    /// Delete this repository's template VM and the VMs its killed sessions left behind.
    Clean(ConfirmArgs),
    /// Delete every claude-vm template and every claude-vm VM no running claude-vm uses.
    CleanAll(ConfirmArgs),
    /// Log in to Claude Code inside the template (a subscription login, kept by every session).
    Login,
    /// Keep N clones of the template booted, so sessions start without waiting for a boot
    /// (`warm 0` empties the pool).
    Warm {
        /// How many (default: `[pool] size`, or 1).
        #[arg(value_name = "N")]
        count: Option<u32>,
    },
    /// Delete every claude-vm VM that no running claude-vm owns (killed or crashed sessions
    /// and builds).
    Gc(GcArgs),
    /// Approve this project's .claude-vm.toml (and project scripts) as they are now.
    Trust(TrustArgs),
    /// Show the project, its template and the effective configuration.
    Info,
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Update claude-vm to the latest release (or --version X).
    Update(UpdateArgs),
    /// Check Lima, this host and claude-vm's VMs; each problem comes with a fix.
    Doctor,
    /// Serve MCP on stdio (tools run_agent, exec, list_sessions, session_log), for an agent
    /// on the host: `claude mcp add claude-vm -- claude-vm mcp`.
    Mcp,
    /// What sessions' VMs reached on the network, and what was denied (issue 12).
    #[command(subcommand)]
    Network(NetworkCommand),
    // Templates as files (issue 15).
    /// Write this project's template (stopped, complete) to one file, to import elsewhere.
    Export(ExportArgs),
    /// Install a template file written by `claude-vm export` as this project's template.
    Import(ImportArgs),
    /// Serve a web app on 127.0.0.1 to start, watch, stop and review sessions (the URL it
    /// prints carries the access token).
    Web(WebArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell: bash, zsh or fish (also elvish, powershell).
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct WebArgs {
    /// The port on 127.0.0.1 (default: a free one).
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,

    /// Open the page in the desktop's browser (with a one-use code, not the token).
    #[arg(long)]
    pub open: bool,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Only say whether a newer release exists; change nothing.
    #[arg(long)]
    pub check: bool,

    /// Install this release (`1.2.3` or `v1.2.3`), newer or older.
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,

    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(flatten)]
    pub session: SessionOpts,

    /// Be a `claude` executable for the Agent SDKs: every argument after this flag is
    /// claude's, stdin and stdout connect straight to claude in a fresh VM (no terminal),
    /// claude-vm's own messages stay on stderr (errors only, unless -v). claude-vm's flags go
    /// before it. Run as `claude-vm-claude` (a symlink), claude-vm behaves so by itself.
    #[arg(long)]
    pub stdio: bool,

    /// The prompt, then any Claude Code arguments.
    #[arg(
        value_name = "PROMPT_AND_CLAUDE_ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub claude_args: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct ShellArgs {
    #[command(flatten)]
    pub session: SessionOpts,

    /// A command to run instead of the interactive shell; its exit status is claude-vm's.
    #[arg(value_name = "COMMAND", last = true)]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    #[command(flatten)]
    pub resources: ResourceOpts,

    /// An extra setup script, run after ~/.claude-vm.setup.sh, ./.claude-vm.setup.sh and
    /// [setup] scripts. Repeatable.
    #[arg(long = "setup-script", value_name = "PATH")]
    pub setup_scripts: Vec<PathBuf>,

    /// A directory shared only while the template is built (same SPEC as a session's --mount).
    /// Repeatable.
    #[arg(long = "mount", value_name = "SPEC")]
    pub mounts: Vec<String>,

    #[command(flatten)]
    pub tools: ToolFlags,

    /// Drop a tool remembered from an earlier `setup --TOOL` (e.g. `--without gpg`).
    /// Repeatable.
    #[arg(long = "without", value_name = "TOOL", help_heading = "Tools")]
    pub without: Vec<String>,

    /// Forget every flag remembered from earlier setups: build from the configuration files
    /// and the flags given now only.
    #[arg(long)]
    pub fresh: bool,

    /// Log in to Claude Code in the template once it is built (needs a terminal).
    #[arg(long)]
    pub login: bool,

    /// Rebuild the template (what `setup` does anyway); with --base, the shared base too.
    #[arg(long)]
    pub rebuild: bool,

    /// With --rebuild: build the shared base (packages, tools, Claude Code) again instead of
    /// cloning the existing one.
    #[arg(long)]
    pub base: bool,

    /// Use project files that widen the sandbox even though `claude-vm trust` did not
    /// approve them (this once).
    #[arg(long)]
    pub yes: bool,
}

/// One flag per built-in tool (a test keeps this list equal to the tool definitions).
#[derive(Debug, Clone, Default, Args)]
pub struct ToolFlags {
    /// Install Docker Engine with buildx and compose.
    #[arg(long, help_heading = "Tools")]
    pub docker: bool,
    /// Install Node.js (LTS) and npm.
    #[arg(long, help_heading = "Tools")]
    pub node: bool,
    /// Install Python 3 with pip, venv and pipx.
    #[arg(long, help_heading = "Tools")]
    pub python: bool,
    /// Install Rust (rustup) and a C toolchain.
    #[arg(long, help_heading = "Tools")]
    pub rust: bool,
    /// Install Chromium and the Chrome DevTools MCP server (brings node).
    #[arg(long, help_heading = "Tools")]
    pub chromium: bool,
    /// Install GnuPG and forward your gpg-agent into sessions.
    #[arg(long, help_heading = "Tools")]
    pub gpg: bool,
    /// Install the GitHub CLI.
    #[arg(long, help_heading = "Tools")]
    pub gh: bool,
    /// Use your host git identity and signing settings in sessions.
    #[arg(long, help_heading = "Tools")]
    pub git: bool,
    /// Install every tool.
    #[arg(long, help_heading = "Tools")]
    pub all: bool,
}

impl ToolFlags {
    /// The tools asked for on the command line, by name.
    pub fn names(&self) -> Vec<String> {
        let flags = [
            ("docker", self.docker),
            ("node", self.node),
            ("python", self.python),
            ("rust", self.rust),
            ("chromium", self.chromium),
            ("gpg", self.gpg),
            ("gh", self.gh),
            ("git", self.git),
        ];
        flags
            .iter()
            .filter(|(_, on)| *on || self.all)
            .map(|(n, _)| (*n).to_owned())
            .collect()
    }
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The file to write (default: the template's name with `.cvm-template`, here).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Keep the credentials stored in the template (`claude-vm login`, gh, git) in the file.
    #[arg(long)]
    pub include_credentials: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A file written by `claude-vm export`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The project to install it for (default: the current directory's).
    #[arg(long, value_name = "DIR")]
    pub project: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TrustArgs {
    /// Withdraw the approval instead.
    #[arg(long)]
    pub revoke: bool,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Also delete NAME if no running claude-vm uses it, although it is not marked as this
    /// claude-vm's (made by hand, by an older claude-vm, or under another data directory).
    /// Repeatable.
    #[arg(long = "force", value_name = "NAME")]
    pub force: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ConfirmArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration.
    Show,
    /// Check the configuration files (or one FILE) and report the first problem.
    Validate {
        /// A .claude-vm.toml to check on its own.
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// The network log per host: requests, first and last seen, allowed or denied and by
    /// which rule (with --json: one JSON document on stdout).
    Log {
        /// One session (its VM name, as `list` and the session's last line show it);
        /// default: every session's log.
        session: Option<String>,
        /// Keep printing requests as they are logged, one line each (JSON lines with --json).
        #[arg(long, short = 'f')]
        follow: bool,
    },
}

/// The executable name that makes claude-vm a drop-in `claude` (`agent --stdio`).
pub const DROP_IN_NAME: &str = "claude-vm-claude";

/// The command line as clap should see it. Run as `claude-vm-claude`, it is `claude-vm agent
/// --stdio -- ARGS`; after `agent --stdio` everything is claude's, even `-v` and `--verbose`,
/// which claude-vm would otherwise take for its own.
pub fn argv(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let drop_in = args.first().is_some_and(|a0| {
        std::path::Path::new(a0)
            .file_name()
            .is_some_and(|n| n == DROP_IN_NAME)
    });
    if drop_in {
        let rest = args.split_off(1);
        return ["claude-vm", "agent", "--stdio", "--"]
            .into_iter()
            .map(OsString::from)
            .chain(rest)
            .collect();
    }
    let agent = args.iter().position(|a| a == "agent");
    let stdio = args.iter().position(|a| a == "--stdio");
    let dashes = args.iter().position(|a| a == "--");
    if let (Some(agent), Some(stdio)) = (agent, stdio) {
        let before_dashes = dashes.is_none_or(|d| stdio < d);
        if agent < stdio && before_dashes && dashes != Some(stdio + 1) {
            args.insert(stdio + 1, OsString::from("--"));
        }
    }
    args
}

impl Cli {
    /// In `agent --stdio` claude-vm is quiet unless asked (-v): its messages would only be
    /// noise in a program's log.
    pub fn quiet_for_stdio(mut self) -> Cli {
        let stdio = matches!(&self.command, Some(Command::Agent(a)) if a.stdio);
        if stdio && !self.global.verbose {
            self.global.quiet = true;
        }
        self
    }
}

fn parse_in(s: &str, range: std::ops::RangeInclusive<u32>) -> Result<u32, String> {
    let v: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))?;
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is outside {}-{}", range.start(), range.end()))
    }
}

fn parse_disk(s: &str) -> Result<u32, String> {
    parse_in(s, DISK_GB)
}

fn parse_memory(s: &str) -> Result<u32, String> {
    parse_in(s, MEMORY_GB)
}

fn parse_cpus(s: &str) -> Result<u32, String> {
    parse_in(s, CPUS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("claude-vm").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn prompt_and_claude_flags_pass_through() {
        let cli = parse(&["-v", "fix it", "--model", "opus", "-p", "--", "x"]);
        assert!(cli.global.verbose);
        assert!(cli.command.is_none());
        let args: Vec<_> = cli
            .claude_args
            .iter()
            .map(|a| a.to_str().unwrap())
            .collect();
        assert_eq!(args, ["fix it", "--model", "opus", "-p", "--", "x"]);
    }

    #[test]
    fn unknown_leading_flags_belong_to_claude() {
        let cli = parse(&["--mount", "/tmp", "-p", "hello"]);
        assert_eq!(cli.session.mounts, ["/tmp"]);
        let args: Vec<_> = cli
            .claude_args
            .iter()
            .map(|a| a.to_str().unwrap())
            .collect();
        assert_eq!(args, ["-p", "hello"]);
    }

    #[test]
    fn subcommands_and_double_dash() {
        assert!(matches!(
            parse(&["setup", "--disk", "30"]).command,
            Some(Command::Setup(_))
        ));
        let cli = parse(&["--", "setup"]);
        assert!(
            cli.command.is_none(),
            "after -- a subcommand name is a prompt"
        );
        let cli = parse(&["shell", "--", "sh", "-c", "exit 7"]);
        let Some(Command::Shell(s)) = cli.command else {
            panic!()
        };
        assert_eq!(s.command, ["sh", "-c", "exit 7"]);
        let cli = parse(&["--runtime-script", "./x.sh", "shell"]);
        assert_eq!(cli.session.runtime_scripts, [PathBuf::from("./x.sh")]);
    }

    #[test]
    fn resource_ranges_name_the_flag() {
        let err = Cli::try_parse_from(["claude-vm", "setup", "--memory", "65"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--memory") && err.contains("outside 1-64"),
            "{err}"
        );
        let err = Cli::try_parse_from(["claude-vm", "--disk", "lots", "x"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--disk") && err.contains("not a whole number"),
            "{err}"
        );
    }

    #[test]
    fn tool_flags_match_the_tool_definitions() {
        let all = ToolFlags {
            all: true,
            ..ToolFlags::default()
        };
        assert_eq!(all.names(), crate::tools::names());
        let cli = parse(&["setup", "--node", "--gpg", "--login"]);
        let Some(Command::Setup(s)) = cli.command else {
            panic!()
        };
        assert_eq!(s.tools.names(), ["node", "gpg"]);
        assert!(s.login);
    }

    fn stdio(args: &[&str]) -> (Cli, Vec<String>) {
        let cli = Cli::try_parse_from(argv(args.iter().map(OsString::from)))
            .unwrap()
            .quiet_for_stdio();
        let claude = match &cli.command {
            Some(Command::Agent(a)) => {
                assert!(a.stdio, "{args:?}");
                a.claude_args
                    .iter()
                    .map(|a| a.to_str().unwrap().to_owned())
                    .collect()
            }
            other => panic!("{args:?}: {other:?}"),
        };
        (cli, claude)
    }

    #[test]
    fn stdio_arguments_all_belong_to_claude() {
        // What the SDKs pass, including flags claude-vm has too (-v, --verbose, --help).
        let sdk = [
            "--output-format",
            "stream-json",
            "--verbose",
            "--input-format",
            "stream-json",
            "--mcp-config",
            "{}",
            "--resume=abc",
        ];
        for first in [
            &["-v"][..],
            &["--verbose"],
            &["--version"],
            &["--help"],
            &sdk,
        ] {
            for argv0 in ["claude-vm-claude", "/x/y/claude-vm-claude"] {
                let args: Vec<&str> = std::iter::once(argv0)
                    .chain(first.iter().copied())
                    .collect();
                let (cli, claude) = stdio(&args);
                assert_eq!(claude, first, "{args:?}");
                assert!(cli.global.quiet && !cli.global.verbose, "{args:?}");
            }
            let args: Vec<&str> = ["claude-vm", "agent", "--stdio"]
                .into_iter()
                .chain(first.iter().copied())
                .collect();
            assert_eq!(stdio(&args).1, first, "{args:?}");
            let args: Vec<&str> = ["claude-vm", "agent", "--stdio", "--"]
                .into_iter()
                .chain(first.iter().copied())
                .collect();
            assert_eq!(stdio(&args).1, first, "{args:?}");
        }
        // claude-vm's own flags before --stdio still count; -v makes it talk.
        let (cli, claude) = stdio(&[
            "claude-vm",
            "-v",
            "agent",
            "--mount",
            "/tmp",
            "--stdio",
            "-p",
        ]);
        assert!(cli.global.verbose && !cli.global.quiet);
        assert_eq!(claude, ["-p"]);
        let Some(Command::Agent(a)) = cli.command else {
            panic!()
        };
        assert_eq!(a.session.mounts, ["/tmp"]);
        // Another name, or --stdio only as claude's argument: nothing changes.
        let plain = argv(["claude-vm", "agent", "--", "--stdio", "-v"].map(OsString::from));
        assert_eq!(plain, ["claude-vm", "agent", "--", "--stdio", "-v"]);
        let other = argv(["claude-vm-claude2", "-v"].map(OsString::from));
        assert_eq!(other, ["claude-vm-claude2", "-v"]);
    }

    #[test]
    fn session_environment_flags() {
        let cli = parse(&[
            "-A",
            "--env-file",
            ".env",
            "--inherit-env",
            "AWS_PROFILE",
            "hi",
        ]);
        assert!(cli.session.forward_agent);
        assert_eq!(cli.session.env_files, [PathBuf::from(".env")]);
        assert_eq!(cli.session.inherit_env, ["AWS_PROFILE"]);
    }

    fn every_command(cmd: &clap::Command, out: &mut Vec<clap::Command>) {
        out.push(cmd.clone());
        for sub in cmd.get_subcommands() {
            every_command(sub, out);
        }
    }

    #[test]
    fn every_repeatable_flag_says_so_and_only_those() {
        let mut all = Vec::new();
        every_command(&Cli::command(), &mut all);
        for cmd in &all {
            for arg in cmd.get_arguments().filter(|a| !a.is_positional()) {
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                let repeatable = matches!(arg.get_action(), clap::ArgAction::Append);
                assert_eq!(
                    help.contains("Repeatable"),
                    repeatable,
                    "{} --{}: {help}",
                    cmd.get_name(),
                    arg.get_long().unwrap_or_default()
                );
            }
        }
    }

    #[test]
    fn global_and_session_flags_have_their_own_headings() {
        let mut all = Vec::new();
        every_command(&Cli::command(), &mut all);
        let mut seen = 0;
        for cmd in &all {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if ["verbose", "quiet", "dry_run"].contains(&id) {
                    assert_eq!(arg.get_help_heading(), Some(GLOBAL), "{id}");
                }
                if ["mounts", "rebuild", "env", "cpus", "allow_any_dir"].contains(&id)
                    && matches!(cmd.get_name(), "claude-vm" | "agent" | "shell")
                {
                    assert_eq!(
                        arg.get_help_heading(),
                        Some(SESSION),
                        "{id} of {}",
                        cmd.get_name()
                    );
                    seen += 1;
                }
            }
        }
        assert_eq!(seen, 15, "five session flags in three commands");
        let mut cli = Cli::command();
        cli.build();
        let shell = cli
            .find_subcommand_mut("shell")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(!shell.contains("before claude starts"), "{shell}");
        let (session, global) = (
            shell.find("Session options:").unwrap(),
            shell.find("Global options:").unwrap(),
        );
        assert!(session < global, "{shell}");
    }
}
