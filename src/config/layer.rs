//! One source of configuration (a file, an environment variable, the command line) after
//! validation, as a figment provider that remembers where its values came from.

use std::collections::BTreeMap;
use std::path::PathBuf;

use figment::value::{Dict, Map};
use figment::{Metadata, Profile, Provider, Source};
use serde::Serialize;

use super::schema::{
    ClaudeLayer, Mount, NetworkLayer, PoolLayer, PortForward, SshLayer, UpdateLayer, VmLayer,
};

/// Validated values of one layer; absent keys are not serialized, so they never override.
#[derive(Debug, Default, Serialize)]
pub struct LayerData {
    #[serde(skip_serializing_if = "VmLayer::is_empty")]
    pub vm: VmLayer,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tools: BTreeMap<String, bool>,
    #[serde(skip_serializing_if = "Lists::is_empty")]
    pub setup: Lists,
    #[serde(skip_serializing_if = "Scripts::is_empty")]
    pub runtime: Scripts,
    #[serde(skip_serializing_if = "ClaudeArgs::is_empty")]
    pub defaults: ClaudeArgs,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Names::is_empty")]
    pub inherit: Names,
    #[serde(skip_serializing_if = "ClaudeLayer::is_empty")]
    pub claude: ClaudeLayer,
    #[serde(skip_serializing_if = "PackageLists::is_empty")]
    pub packages: PackageLists,
    #[serde(skip_serializing_if = "SshLayer::is_empty")]
    pub ssh: SshLayer,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortForward>,
    #[serde(skip_serializing_if = "UpdateLayer::is_empty")]
    pub update: UpdateLayer,
    #[serde(skip_serializing_if = "PoolLayer::is_empty")]
    pub pool: PoolLayer,
    #[serde(skip_serializing_if = "NetworkLayer::is_empty")]
    pub network: NetworkLayer,
}

#[derive(Debug, Default, Serialize)]
pub struct Names {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub host_urls: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct PackageLists {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup_script: Option<PathBuf>,
}

impl Names {
    pub fn is_empty(&self) -> bool {
        self.env.is_empty() && self.host_urls.is_empty()
    }
}

impl PackageLists {
    pub fn is_empty(&self) -> bool {
        self.system.is_empty() && self.setup_script.is_none()
    }
}

impl ClaudeLayer {
    pub fn is_empty(&self) -> bool {
        self.install.is_none() && self.version.is_none() && self.forward_credentials.is_none()
    }
}

impl SshLayer {
    pub fn is_empty(&self) -> bool {
        self.forward_agent.is_none()
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Lists {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<PathBuf>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
}

#[derive(Debug, Default, Serialize)]
pub struct Scripts {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<PathBuf>,
}

#[derive(Debug, Default, Serialize)]
pub struct ClaudeArgs {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub claude_args: Vec<String>,
}

impl VmLayer {
    pub fn is_empty(&self) -> bool {
        self.disk.is_none()
            && self.memory.is_none()
            && self.cpus.is_none()
            && self.image.is_none()
            && self.auto_rebuild.is_none()
            && self.shared_base.is_none()
    }
}

impl Lists {
    pub fn is_empty(&self) -> bool {
        self.scripts.is_empty() && self.mounts.is_empty()
    }
}

impl Scripts {
    pub fn is_empty(&self) -> bool {
        self.scripts.is_empty()
    }
}

impl ClaudeArgs {
    pub fn is_empty(&self) -> bool {
        self.claude_args.is_empty()
    }
}

/// Where a layer's values came from, as `config show` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    GlobalFile(PathBuf),
    MainRepoFile(PathBuf),
    ProjectFile(PathBuf),
    Env(String),
    CommandLine,
}

impl Origin {
    pub fn name(&self) -> &'static str {
        match self {
            Origin::Default => "default",
            Origin::GlobalFile(_) => "global file",
            Origin::MainRepoFile(_) => "main repository file",
            Origin::ProjectFile(_) => "project file",
            Origin::Env(_) => "environment",
            Origin::CommandLine => "command line",
        }
    }

    fn source(&self) -> Option<Source> {
        match self {
            Origin::GlobalFile(p) | Origin::MainRepoFile(p) | Origin::ProjectFile(p) => {
                Some(Source::File(p.clone()))
            }
            Origin::Env(var) => Some(Source::Custom(var.clone())),
            Origin::Default | Origin::CommandLine => None,
        }
    }
}

/// A layer ready for figment: its values as a dictionary, and their origin.
pub struct Layer {
    pub origin: Origin,
    dict: Dict,
}

impl Layer {
    /// Turns validated data into a layer; fails only if the data cannot be represented,
    /// which would be a bug, so the message says so.
    pub fn new(origin: Origin, data: &impl Serialize) -> Result<Layer, String> {
        let mut map = figment::providers::Serialized::defaults(data)
            .data()
            .map_err(|e| e.to_string())?;
        let dict = map.remove(&Profile::Default).unwrap_or_default();
        Ok(Layer { origin, dict })
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        let meta = Metadata::named(self.origin.name());
        match self.origin.source() {
            Some(src) => meta.source(src),
            None => meta,
        }
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Map::from([(Profile::Default, self.dict.clone())]))
    }
}
