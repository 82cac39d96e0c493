//! The configuration's shape: the effective `Config` the program uses, and `FileLayer`, what
//! one `.claude-vm.toml` may contain (every key optional, unknown keys rejected).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub const DISK_GB: RangeInclusive<u32> = 1..=1000;
pub const MEMORY_GB: RangeInclusive<u32> = 1..=64;
pub const CPUS: RangeInclusive<u32> = 1..=64;
pub const DEFAULT_DISK: u32 = 20;
pub const DEFAULT_MEMORY: u32 = 8;
pub const DEFAULT_CPUS: u32 = 4;
pub const DEFAULT_IMAGE: &str = "template:debian-13";

/// The merged, validated configuration. Everything downstream trusts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub vm: Vm,
    pub tools: BTreeMap<String, bool>,
    pub setup: Setup,
    pub runtime: Runtime,
    pub defaults: Defaults,
    pub mounts: Vec<Mount>,
    /// Variables exported in the guest before claude starts (values never reach argv).
    pub env: BTreeMap<String, String>,
    pub inherit: Inherit,
    pub claude: Claude,
    pub packages: Packages,
    pub ssh: Ssh,
    pub ports: Vec<PortForward>,
    pub update: UpdateSettings,
    pub pool: PoolSettings,
    #[serde(default)]
    pub network: Network,
}

/// `[network]`: what a session may reach (enforced by the host proxy, `src/net`). The
/// presets Claude Code and the tools bring are not listed here: `crate::network::presets`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub policy: Policy,
    /// Host patterns allowed besides the presets (`api.github.com`, `*.example.com:8443`).
    pub allow: Vec<String>,
    /// Patterns refused whatever allows them.
    pub deny: Vec<String>,
    /// The only ports of the host's own loopback a session may reach.
    pub host_ports: Vec<u16>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Nothing but the proxy's Anthropic route (ordered tightest first).
    Offline,
    #[default]
    Allowlist,
    Open,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Offline => "offline",
            Policy::Allowlist => "allowlist",
            Policy::Open => "open",
        }
    }

    pub fn parse(text: &str) -> Option<Policy> {
        match text {
            "offline" => Some(Policy::Offline),
            "allowlist" => Some(Policy::Allowlist),
            "open" => Some(Policy::Open),
            _ => None,
        }
    }
}

/// `[pool]`: clones booted in advance so a session starts without waiting for a boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSettings {
    /// How many to keep ready; 0: no pool unless `claude-vm warm` asks for one.
    pub size: u32,
    /// Unused this long, the pool is emptied (its VMs stop costing memory).
    pub idle_minutes: u32,
}

pub const POOL_SIZE: RangeInclusive<u32> = 0..=16;
pub const POOL_IDLE_MINUTES: RangeInclusive<u32> = 1..=10080;

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            size: 0,
            idle_minutes: 30,
        }
    }
}

/// Host variables copied into sessions when they are set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inherit {
    pub env: Vec<String>,
    /// Variables whose loopback URLs are pointed at the host in the guest, besides the
    /// well-known ones (proxies, `*_URL`, `*_URI`, `*_ENDPOINT`).
    #[serde(default)]
    pub host_urls: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claude {
    pub install: InstallMethod,
    /// A version to pin (`1.2.3`, `stable`, `latest`); none: the installer's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Pass ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN, ANTHROPIC_BASE_URL and
    /// CLAUDE_CODE_OAUTH_TOKEN from the host to sessions.
    pub forward_credentials: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstallMethod {
    /// Anthropic's installer (a native binary in ~/.local/bin).
    Official,
    /// The npm package `@anthropic-ai/claude-code` (needs the node tool).
    Npm,
}

/// The user's own system packages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packages {
    /// Debian packages installed with the tools' packages, in the same `apt-get install`.
    pub system: Vec<String>,
    /// Runs before the one `apt-get update`, e.g. to add an apt repository for `system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_script: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ssh {
    pub forward_agent: bool,
}

/// A guest TCP port reachable on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortForward {
    pub guest: u16,
    pub host: u16,
}

/// `[update]`: the background "new version available" check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateSettings {
    pub check: bool,
}

impl Default for UpdateSettings {
    fn default() -> Self {
        UpdateSettings { check: true }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vm {
    pub disk: u32,
    pub memory: u32,
    pub cpus: u32,
    pub image: String,
    /// Rebuild an out-of-date template before a session instead of warning.
    #[serde(default)]
    pub auto_rebuild: bool,
    /// Clone the template from a base shared by projects with the same tools (false: build
    /// each template from the image, in one layer).
    #[serde(default = "default_true")]
    pub shared_base: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setup {
    pub scripts: Vec<PathBuf>,
    pub mounts: Vec<Mount>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runtime {
    pub scripts: Vec<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Defaults {
    pub claude_args: Vec<String>,
}

/// A host directory shared with the VM. `location` is absolute and exists; `mount_point` is
/// an absolute guest path, possibly starting with Lima's `{{.Home}}` for the guest home.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub location: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_point: Option<String>,
    pub writable: bool,
}

impl Mount {
    /// Where the directory appears in the guest.
    pub fn guest_path(&self) -> String {
        match &self.mount_point {
            Some(p) => p.clone(),
            None => self.location.to_string_lossy().into_owned(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            vm: Vm {
                disk: DEFAULT_DISK,
                memory: DEFAULT_MEMORY,
                cpus: DEFAULT_CPUS,
                image: DEFAULT_IMAGE.to_owned(),
                auto_rebuild: false,
                shared_base: true,
            },
            tools: BTreeMap::new(),
            setup: Setup::default(),
            runtime: Runtime::default(),
            defaults: Defaults::default(),
            mounts: Vec::new(),
            env: BTreeMap::new(),
            inherit: Inherit::default(),
            claude: Claude {
                install: InstallMethod::Official,
                version: None,
                forward_credentials: true,
            },
            packages: Packages::default(),
            ssh: Ssh::default(),
            ports: Vec::new(),
            update: UpdateSettings::default(),
            pool: PoolSettings::default(),
            network: Network::default(),
        }
    }
}

impl Config {
    /// The tools whose network presets apply: the enabled ones, what they require, and node
    /// when Claude Code comes from npm.
    pub fn network_tools(&self) -> Vec<String> {
        let mut wanted = self.enabled_tools();
        if self.claude.install == InstallMethod::Npm {
            wanted.push("node");
        }
        crate::tools::resolve(&wanted)
            .iter()
            .map(|t| t.name.clone())
            .collect()
    }

    /// Enabled tools, in name order.
    pub fn enabled_tools(&self) -> Vec<&str> {
        self.tools
            .iter()
            .filter(|(_, on)| **on)
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

/// One configuration file as written. Paths are still raw strings here.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLayer {
    pub vm: Option<VmLayer>,
    pub tools: Option<BTreeMap<String, bool>>,
    pub setup: Option<SetupLayer>,
    pub runtime: Option<RuntimeLayer>,
    pub defaults: Option<DefaultsLayer>,
    pub mounts: Option<Vec<MountLayer>>,
    pub env: Option<BTreeMap<String, String>>,
    pub inherit: Option<InheritLayer>,
    pub claude: Option<ClaudeLayer>,
    pub packages: Option<PackagesLayer>,
    pub ssh: Option<SshLayer>,
    pub ports: Option<Vec<PortLayer>>,
    pub update: Option<UpdateLayer>,
    pub pool: Option<PoolLayer>,
    pub network: Option<NetworkFileLayer>,
}

/// `[network]` as written; checked by `files.rs` so errors name the entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkFileLayer {
    pub policy: Option<String>,
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
    pub host_ports: Option<Vec<u16>>,
}

/// `[network]` of one layer, validated.
#[derive(Debug, Default, Serialize)]
pub struct NetworkLayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub host_ports: Vec<u16>,
}

impl NetworkLayer {
    pub fn is_empty(&self) -> bool {
        self.policy.is_none()
            && self.allow.is_empty()
            && self.deny.is_empty()
            && self.host_ports.is_empty()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InheritLayer {
    pub env: Option<Vec<String>>,
    pub host_urls: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClaudeLayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install: Option<InstallMethod>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_credentials: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackagesLayer {
    pub system: Option<Vec<String>>,
    pub setup_script: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SshLayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_agent: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortLayer {
    pub guest: u16,
    /// Defaults to the guest port.
    pub host: Option<u16>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PoolLayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_minutes: Option<u32>,
}

impl PoolLayer {
    pub fn is_empty(&self) -> bool {
        self.size.is_none() && self.idle_minutes.is_none()
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateLayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<bool>,
}

impl UpdateLayer {
    pub fn is_empty(&self) -> bool {
        self.check.is_none()
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VmLayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_rebuild: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_base: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupLayer {
    pub scripts: Option<Vec<String>>,
    pub mounts: Option<Vec<MountLayer>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeLayer {
    pub scripts: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultsLayer {
    pub claude_args: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountLayer {
    pub location: String,
    pub mount_point: Option<String>,
    /// Lima's default: read-only unless asked.
    #[serde(default)]
    pub writable: bool,
}
