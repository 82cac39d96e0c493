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
//! more of the host.

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
}
