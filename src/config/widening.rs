//! Does a configuration file from the project widen the sandbox? The project folder is
//! writable by the agent, so its `.claude-vm.toml` (and a worktree's main repository's) may
//! have been written by the agent itself; a file that reaches beyond the project runs only
//! once the user approved its exact content (`trust.rs`).
//!
//! `widens` is the one place that decides. What counts: host directories outside the project
//! mounted into a session or a build, host files outside the project copied into the VM as
//! scripts, a Lima template file or URL as the image (it can set host-facing options),
//! variables copied from the user's environment, the user's SSH agent, and the gpg tool
//! (which forwards the user's gpg-agent into every session). Extend it when a key can reach
//! more of the host. `widens_resources` adds host resources beyond what the user's own
//! configuration allows (CPUs, memory, disk, pool size and idle time, host ports).

use std::path::{Path, PathBuf};

use super::layer::LayerData;

/// One project file as read, and what it would open up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub path: PathBuf,
    /// sha256 of the exact bytes that were parsed.
    pub digest: String,
    /// Why it widens the sandbox; empty when it does not.
    pub widens: Vec<String>,
}

/// The reasons `data` (one layer, validated) widens the sandbox beyond `project_roots`
/// (canonical directories the session mounts anyway).
pub fn widens(data: &LayerData, project_roots: &[&Path]) -> Vec<String> {
    let inside = |p: &Path| {
        let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        project_roots.iter().any(|r| p.starts_with(r))
    };
    let mut why = Vec::new();
    for m in &data.mounts {
        if !inside(&m.location) {
            why.push(format!(
                "mounts {} into every session{}",
                m.location.display(),
                if m.writable { ", writable" } else { "" }
            ));
        }
    }
    for m in &data.setup.mounts {
        if !inside(&m.location) {
            why.push(format!(
                "mounts {} into the template build{}",
                m.location.display(),
                if m.writable { ", writable" } else { "" }
            ));
        }
    }
    for s in &data.setup.scripts {
        if !inside(s) {
            why.push(format!(
                "copies {} into the VM as a setup script",
                s.display()
            ));
        }
    }
    for s in &data.runtime.scripts {
        if !inside(s) {
            why.push(format!(
                "copies {} into every session as a runtime script",
                s.display()
            ));
        }
    }
    if let Some(s) = &data.packages.setup_script {
        if !inside(s) {
            why.push(format!(
                "copies {} into the VM as the packages setup script",
                s.display()
            ));
        }
    }
    if !data.inherit.env.is_empty() {
        why.push(format!(
            "copies these variables from your environment into every session: {}",
            data.inherit.env.join(", ")
        ));
    }
    if data.ssh.forward_agent == Some(true) {
        why.push("lets every session use your SSH agent (ssh.forward_agent)".to_owned());
    }
    if data.tools.get("gpg") == Some(&true) {
        why.push("lets every session sign with your gpg-agent (tools.gpg)".to_owned());
    }
    if let Some(image) = &data.vm.image {
        if !(image.starts_with("template:")) {
            why.push(format!(
                "builds the template from {image}, a Lima file that can change host-facing settings"
            ));
        }
    }
    why
}

/// What the user's own configuration (defaults, then the global file) allows a project to
/// use: a project file asking for more needs approval like any other widening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowance {
    pub cpus: u32,
    pub memory: u32,
    pub disk: u32,
    pub pool_size: u32,
    pub idle_minutes: u32,
    /// Host ports the user's own configuration forwards.
    pub host_ports: Vec<u16>,
    /// The loosest network policy, the hosts and the host-loopback ports the user's own
    /// configuration lets sessions reach.
    pub network_policy: super::Policy,
    pub network_allow: Vec<String>,
    pub network_host_ports: Vec<u16>,
}

impl Allowance {
    pub fn of(config: &super::Config) -> Allowance {
        Allowance {
            cpus: config.vm.cpus,
            memory: config.vm.memory,
            disk: config.vm.disk,
            pool_size: config.pool.size,
            idle_minutes: config.pool.idle_minutes,
            host_ports: config.ports.iter().map(|p| p.host).collect(),
            network_policy: config.network.policy,
            network_allow: config.network.allow.clone(),
            network_host_ports: config.network.host_ports.clone(),
        }
    }

    /// Raised by a layer of the user's own (the global file).
    pub fn widen(&mut self, data: &LayerData) {
        let raise = |v: &mut u32, to: Option<u32>| *v = (*v).max(to.unwrap_or(0));
        raise(&mut self.cpus, data.vm.cpus);
        raise(&mut self.memory, data.vm.memory);
        raise(&mut self.disk, data.vm.disk);
        raise(&mut self.pool_size, data.pool.size);
        raise(&mut self.idle_minutes, data.pool.idle_minutes);
        self.host_ports.extend(data.ports.iter().map(|p| p.host));
        if let Some(p) = data.network.policy {
            self.network_policy = self.network_policy.max(p);
        }
        self.network_allow
            .extend(data.network.allow.iter().cloned());
        self.network_host_ports
            .extend(data.network.host_ports.iter().copied());
    }
}

/// The reasons `data` (a project layer) asks for more host resources than `allowed`: more
/// CPUs, memory or disk per VM, more pre-booted VMs or a longer idle time (VMs that keep
/// running), host ports the user's own configuration does not forward.
pub fn widens_resources(data: &LayerData, allowed: &Allowance) -> Vec<String> {
    let mut why = Vec::new();
    let mut more = |key: &str, asked: Option<u32>, allowed: u32, unit: &str| {
        if let Some(n) = asked.filter(|n| *n > allowed) {
            why.push(format!(
                "asks for {key} = {n}{unit}, more than your own configuration allows ({allowed}{unit})"
            ));
        }
    };
    more("vm.cpus", data.vm.cpus, allowed.cpus, "");
    more("vm.memory", data.vm.memory, allowed.memory, " GiB");
    more("vm.disk", data.vm.disk, allowed.disk, " GiB");
    more(
        "pool.size",
        data.pool.size,
        allowed.pool_size,
        " pre-booted VMs",
    );
    more(
        "pool.idle_minutes",
        data.pool.idle_minutes,
        allowed.idle_minutes,
        " minutes",
    );
    let ports: Vec<String> = data
        .ports
        .iter()
        .filter(|p| !allowed.host_ports.contains(&p.host))
        .map(|p| format!("{} (guest {})", p.host, p.guest))
        .collect();
    if !ports.is_empty() {
        why.push(format!(
            "listens on host ports your own configuration does not forward: {}",
            ports.join(", ")
        ));
    }
    why
}

/// The reasons `data` (a project layer) loosens the network beyond what the user's own
/// configuration allows: a looser policy, hosts or host-loopback ports it does not list.
/// Denying more is never a widening.
pub fn widens_network(data: &LayerData, allowed: &Allowance) -> Vec<String> {
    let mut why = Vec::new();
    let n = &data.network;
    if let Some(p) = n.policy.filter(|p| *p > allowed.network_policy) {
        why.push(format!(
            "sets network.policy = \"{}\", looser than your own configuration's \"{}\"",
            p.as_str(),
            allowed.network_policy.as_str()
        ));
    }
    let hosts: Vec<&str> = n
        .allow
        .iter()
        .filter(|h| !allowed.network_allow.contains(h))
        .map(String::as_str)
        .collect();
    if !hosts.is_empty() {
        why.push(format!(
            "lets every session reach hosts your own configuration does not allow (network.allow): {}",
            hosts.join(", ")
        ));
    }
    let ports: Vec<String> = n
        .host_ports
        .iter()
        .filter(|p| !allowed.network_host_ports.contains(p))
        .map(u16::to_string)
        .collect();
    if !ports.is_empty() {
        why.push(format!(
            "lets every session reach these ports on your host's loopback (network.host_ports): {}",
            ports.join(", ")
        ));
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::Mount;

    #[test]
    fn only_what_reaches_beyond_the_project_widens() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let project = root.join("proj");
        std::fs::create_dir_all(project.join("sub")).unwrap();
        std::fs::create_dir_all(root.join("outside")).unwrap();
        std::os::unix::fs::symlink(root.join("outside"), project.join("link")).unwrap();
        let mount = |p: PathBuf| Mount {
            location: p,
            mount_point: Some("/x".into()),
            writable: true,
        };

        let mut inside = LayerData::default();
        inside.mounts.push(mount(project.join("sub")));
        inside.runtime.scripts.push(project.join("sub/a.sh"));
        inside.vm.image = Some("template:debian-13".into());
        assert!(widens(&inside, &[&project]).is_empty());

        let mut outside = LayerData::default();
        outside.mounts.push(mount(root.join("outside")));
        outside.setup.mounts.push(mount(project.join("link")));
        outside.setup.scripts.push(root.join("outside/s.sh"));
        outside.runtime.scripts.push(root.join("outside/r.sh"));
        outside.vm.image = Some("https://example.com/t.yaml".into());
        let why = widens(&outside, &[&project]);
        assert_eq!(why.len(), 5, "{why:?}");
        assert!(why[0].contains("outside") && why[0].contains("writable"));
        assert!(
            why[1].contains("template build"),
            "a link out counts: {why:?}"
        );
        assert!(why[4].contains("https://example.com/t.yaml"));
        let mut reach = LayerData::default();
        reach.inherit.env = vec!["AWS_PROFILE".into(), "GH_TOKEN".into()];
        reach.ssh.forward_agent = Some(true);
        reach.tools.insert("gpg".into(), true);
        reach.tools.insert("node".into(), true);
        reach.packages.setup_script = Some(root.join("outside/p.sh"));
        let why = widens(&reach, &[&project]);
        assert_eq!(why.len(), 4, "{why:?}");
        assert!(why.iter().any(|w| w.contains("AWS_PROFILE, GH_TOKEN")));
        assert!(why.iter().any(|w| w.contains("SSH agent")));
        assert!(why.iter().any(|w| w.contains("gpg-agent")));
        assert!(why.iter().any(|w| w.contains("packages setup script")));
        let mut harmless = LayerData::default();
        harmless.tools.insert("gpg".into(), false);
        harmless.ssh.forward_agent = Some(false);
        harmless.env.insert("A".into(), "1".into());
        assert!(widens(&harmless, &[&project]).is_empty());
        // A worktree's main repository is part of the project.
        let mut main = LayerData::default();
        main.mounts.push(mount(root.join("outside")));
        assert!(widens(&main, &[&project, &root.join("outside")]).is_empty());
    }

    #[test]
    fn resources_beyond_the_users_own_configuration_widen() {
        let mut allowed = Allowance::of(&crate::config::Config::default());
        let mut within = LayerData::default();
        within.vm.cpus = Some(allowed.cpus);
        within.vm.memory = Some(1);
        assert!(widens_resources(&within, &allowed).is_empty());
        let mut more = LayerData::default();
        more.vm.cpus = Some(allowed.cpus + 1);
        more.vm.memory = Some(allowed.memory + 1);
        more.vm.disk = Some(allowed.disk + 1);
        more.pool.size = Some(allowed.pool_size + 1);
        more.pool.idle_minutes = Some(allowed.idle_minutes + 1);
        more.ports.push(crate::config::schema::PortForward {
            guest: 80,
            host: 8080,
        });
        let why = widens_resources(&more, &allowed);
        assert_eq!(why.len(), 6, "{why:?}");
        assert!(why.iter().any(|w| w.contains("8080 (guest 80)")));
        // The user's own global file raises the allowance.
        allowed.widen(&more);
        assert!(widens_resources(&more, &allowed).is_empty());
    }

    #[test]
    fn a_project_that_loosens_the_network_widens_and_one_that_tightens_does_not() {
        use crate::config::Policy;
        let mut allowed = Allowance::of(&crate::config::Config::default());
        let mut tighter = LayerData::default();
        tighter.network.policy = Some(Policy::Offline);
        tighter.network.deny = vec!["evil.example".into()];
        assert!(widens_network(&tighter, &allowed).is_empty());
        let same = {
            let mut d = LayerData::default();
            d.network.policy = Some(Policy::Allowlist);
            d
        };
        assert!(widens_network(&same, &allowed).is_empty());
        let mut looser = LayerData::default();
        looser.network.policy = Some(Policy::Open);
        looser.network.allow = vec!["evil.example".into()];
        looser.network.host_ports = vec![5432];
        let why = widens_network(&looser, &allowed);
        assert_eq!(why.len(), 3, "{why:?}");
        assert!(why[0].contains("\"open\""), "{why:?}");
        assert!(why[1].contains("evil.example"), "{why:?}");
        assert!(why[2].contains("5432"), "{why:?}");
        // What the user's own global file allows, a project may ask for.
        allowed.widen(&looser);
        assert!(widens_network(&looser, &allowed).is_empty());
        let mut one_more = LayerData::default();
        one_more.network.allow = vec!["evil.example".into(), "other.example".into()];
        let why = widens_network(&one_more, &allowed);
        assert_eq!(why.len(), 1);
        assert!(why[0].ends_with("other.example"), "{why:?}");
    }
}
