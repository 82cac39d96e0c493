//! `config show`: every key's effective value and the layer it came from. Single values get
//! their origin from figment's metadata; list entries carry their own tags through figment's
//! merge, so each entry of an accumulated list is traced to its layer too.

use figment::value::Value;
use serde::de::DeserializeOwned;

use super::Loaded;

/// One line of `config show`.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Single {
        key: String,
        value: toml::Value,
        origin: String,
    },
    List {
        key: String,
        /// Each entry and its origin; empty lists come from the defaults.
        items: Vec<(toml::Value, String)>,
    },
    /// An optional key no layer sets, and what that means.
    Unset { key: String, meaning: String },
}

impl Loaded {
    /// Every key of the effective configuration, in the order of the README's table.
    pub fn entries(&self) -> Vec<Entry> {
        let c = &self.config;
        let single = |key: &str, value: toml::Value| Entry::Single {
            key: key.to_owned(),
            origin: self.origin_of(key).unwrap_or_else(|| "default".to_owned()),
            value,
        };
        let mut out = vec![
            single("vm.disk", i64::from(c.vm.disk).into()),
            single("vm.memory", i64::from(c.vm.memory).into()),
            single("vm.cpus", i64::from(c.vm.cpus).into()),
            single("vm.image", c.vm.image.clone().into()),
            single("vm.auto_rebuild", c.vm.auto_rebuild.into()),
            single("vm.shared_base", c.vm.shared_base.into()),
        ];
        let unset = |key: &str, meaning: &str| Entry::Unset {
            key: key.to_owned(),
            meaning: meaning.to_owned(),
        };
        let known = crate::tools::names();
        let mut tools: Vec<&str> = known.clone();
        tools.extend(
            c.tools
                .keys()
                .map(String::as_str)
                .filter(|t| !known.contains(t)),
        );
        tools.sort_unstable();
        for tool in tools {
            let on = c.tools.get(tool).copied().unwrap_or(false);
            out.push(single(&format!("tools.{tool}"), on.into()));
        }
        out.push(self.list("setup.scripts", &c.setup.scripts, First));
        out.push(self.list("setup.mounts", &c.setup.mounts, Last));
        out.push(self.list("runtime.scripts", &c.runtime.scripts, First));
        out.push(self.list("defaults.claude_args", &c.defaults.claude_args, Each));
        out.push(self.list("mounts", &c.mounts, Last));
        for name in c.env.keys() {
            // Values may be secrets: the name and where it came from are enough here.
            out.push(single(&format!("env.{name}"), "(hidden)".into()));
        }
        out.push(self.list("inherit.env", &c.inherit.env, First));
        out.push(self.list("inherit.host_urls", &c.inherit.host_urls, First));
        let install = match c.claude.install {
            super::InstallMethod::Official => "official",
            super::InstallMethod::Npm => "npm",
        };
        out.push(single("claude.install", install.into()));
        out.push(match &c.claude.version {
            Some(v) => single("claude.version", v.clone().into()),
            None => unset("claude.version", "the installer's default"),
        });
        out.push(single(
            "claude.forward_credentials",
            c.claude.forward_credentials.into(),
        ));
        out.push(self.list("packages.system", &c.packages.system, First));
        out.push(match &c.packages.setup_script {
            Some(p) => single("packages.setup_script", p.display().to_string().into()),
            None => unset("packages.setup_script", "none"),
        });
        out.push(single("ssh.forward_agent", c.ssh.forward_agent.into()));
        out.push(self.list("ports", &c.ports, Last));
        out.push(single("pool.size", i64::from(c.pool.size).into()));
        out.push(single(
            "pool.idle_minutes",
            i64::from(c.pool.idle_minutes).into(),
        ));
        out.push(single("update.check", c.update.check.into()));
        out.push(single("network.policy", c.network.policy.as_str().into()));
        out.push(self.list("network.allow", &c.network.allow, First));
        out.push(self.list("network.deny", &c.network.deny, First));
        out.push(self.list("network.host_ports", &c.network.host_ports, First));
        // Not keys: what `allowlist` opens besides network.allow, each host with its origin.
        let tools = c.network_tools();
        let tools: Vec<&str> = tools.iter().map(String::as_str).collect();
        for (key, presets) in [
            ("network.presets", super::presets::session(&tools)),
            ("network.setup_presets", super::presets::setup(&tools)),
        ] {
            let items = presets
                .iter()
                .flat_map(|p| {
                    p.hosts
                        .iter()
                        .map(|h| (toml::Value::from(*h), format!("preset: {}", p.origin)))
                })
                .collect();
            out.push(Entry::List {
                key: key.to_owned(),
                items,
            });
        }
        out
    }

    /// The effective list `items`, each with the origin of the layer entry it came from.
    fn list<T>(&self, key: &str, items: &[T], pick: Pick) -> Entry
    where
        T: DeserializeOwned + PartialEq + serde::Serialize,
    {
        let layered: Vec<(T, String)> = match self.figment.find_value(key) {
            Ok(Value::Array(_, values)) => values
                .iter()
                .filter_map(|v| Some((v.deserialize::<T>().ok()?, self.tag_origin(v))))
                .collect(),
            _ => Vec::new(),
        };
        let items = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let found = match pick {
                    Pick::First => layered.iter().find(|(v, _)| v == item),
                    Pick::Last => layered.iter().rev().find(|(v, _)| v == item),
                    Pick::Each => layered.get(i).filter(|(v, _)| v == item),
                };
                let origin = found.map_or_else(|| "unknown".to_owned(), |(_, o)| o.clone());
                let value = toml::Value::try_from(item)
                    .unwrap_or_else(|_| toml::Value::String("?".to_owned()));
                (value, origin)
            })
            .collect();
        Entry::List {
            key: key.to_owned(),
            items,
        }
    }

    fn tag_origin(&self, value: &Value) -> String {
        self.figment
            .get_metadata(value.tag())
            .map_or_else(|| "unknown".to_owned(), super::describe)
    }
}

/// Which layer entry an effective list entry stands for, after de-duplication.
#[derive(Clone, Copy)]
enum Pick {
    /// Scripts: the first occurrence is kept.
    First,
    /// Mounts: the last (highest-precedence) one per guest path is kept.
    Last,
    /// Claude's arguments: kept one for one, in order.
    Each,
}
use Pick::{Each, First, Last};

/// The entries as commented TOML-like text: `key = value   # origin`.
pub fn render(entries: &[Entry]) -> String {
    let mut rows: Vec<(String, Option<String>)> = Vec::new();
    for e in entries {
        match e {
            Entry::Single { key, value, origin } => {
                rows.push((format!("{key} = {value}"), Some(origin.clone())));
            }
            Entry::Unset { key, meaning } => {
                rows.push((
                    format!("# {key} is not set: {meaning}"),
                    Some("default".to_owned()),
                ));
            }
            Entry::List { key, items } if items.is_empty() => {
                rows.push((format!("{key} = []"), Some("default".to_owned())));
            }
            Entry::List { key, items } => {
                rows.push((format!("{key} = ["), None));
                for (value, origin) in items {
                    rows.push((format!("  {value},"), Some(origin.clone())));
                }
                rows.push(("]".to_owned(), None));
            }
        }
    }
    let width = rows
        .iter()
        .filter(|(_, o)| o.is_some())
        .map(|(t, _)| t.chars().count())
        .filter(|w| *w <= 48)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (text, origin) in rows {
        match origin {
            Some(o) => {
                let pad = width.saturating_sub(text.chars().count());
                out.push_str(&format!("{text}{}  # {o}\n", " ".repeat(pad)));
            }
            None => {
                out.push_str(&text);
                out.push('\n');
            }
        }
    }
    out
}
