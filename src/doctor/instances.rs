//! claude-vm's VMs: templates and their health, sessions and orphans, hand-over leftovers.

use std::path::{Path, PathBuf};

use super::owners::{Owner, Owners};
use super::{size, Finding};
use crate::lima::Instance;
use crate::names::{self, Ours, Role};
use crate::template::Manifest;

/// What the checks look at, gathered by the command.
pub struct Inventory<'a> {
    /// `limactl list`; `None` when limactl could not be asked.
    pub instances: Option<&'a [Instance]>,
    pub manifests: &'a [Manifest],
    pub owners: &'a dyn Owners,
    /// Bytes an instance takes on disk.
    pub size_of: &'a dyn Fn(&Instance) -> u64,
    pub exists: &'a dyn Fn(&Path) -> bool,
    /// Hand-over directories on disk: instance name and path.
    pub handovers: &'a [(String, PathBuf)],
    pub version: &'a str,
    pub templates_dir: &'a Path,
}

impl Inventory<'_> {
    fn ours(&self) -> impl Iterator<Item = (&Instance, Ours)> {
        self.instances
            .unwrap_or_default()
            .iter()
            .filter_map(|i| names::parse(&i.name).map(|o| (i, o)))
    }
}

pub fn templates(inv: &Inventory) -> Vec<Finding> {
    let mut out = Vec::new();
    let instances = inv.instances.unwrap_or_default();
    for (inst, ours) in inv.ours() {
        let Ours::Template(t) = ours else { continue };
        let name = t.as_str();
        let record = inv.manifests.iter().find(|m| m.template == name);
        let Some(m) = record else {
            out.push(Finding::warn(
                format!("template {name}: unfinished (setup was interrupted before it completed)"),
                format!("run `claude-vm setup` in its project, or remove it: `limactl delete --force {name}`"),
            ));
            continue;
        };
        let project = m.project.display();
        let what = format!("template {name} ({project})");
        let used = size((inv.size_of)(inst));
        if !(inv.exists)(&m.project) {
            out.push(Finding::warn(
                format!("{what}: the project no longer exists ({used} on disk)"),
                format!(
                    "remove it: `limactl delete --force {name} && rm {}`",
                    crate::script::quote(
                        &inv.templates_dir
                            .join(format!("{name}.json"))
                            .to_string_lossy()
                    )
                ),
            ));
            continue;
        }
        match inst.status.as_str() {
            "Stopped" => {}
            "Running" => {
                out.push(Finding::warn(
                    format!("{what}: running, so sessions cannot clone it"),
                    format!("`limactl stop {name}`"),
                ));
                continue;
            }
            other => {
                out.push(Finding::fail(
                    format!("{what}: Lima reports it as {other}"),
                    format!("rebuild it: `claude-vm setup` in {project}"),
                ));
                continue;
            }
        }
        // The session journal's fingerprints will tell exactly what changed; until then the
        // version that built it is the hint.
        if m.claude_vm_version != inv.version {
            out.push(Finding::note(format!(
                "{what}: stopped, {used}; built by claude-vm {}: `claude-vm setup` rebuilds it with {}",
                m.claude_vm_version, inv.version
            )));
        } else {
            out.push(Finding::ok(format!("{what}: stopped, {used}")));
        }
    }
    if inv.instances.is_some() {
        for m in inv.manifests {
            if !instances.iter().any(|i| i.name == m.template) {
                out.push(Finding::warn(
                    format!(
                        "template {} ({}): its VM is gone (deleted outside claude-vm)",
                        m.template,
                        m.project.display()
                    ),
                    format!("rebuild it: `claude-vm setup` in {}", m.project.display()),
                ));
            }
        }
    }
    if out.is_empty() && inv.instances.is_some() {
        out.push(Finding::note(
            "templates: none yet (`claude-vm setup` in a project builds one)",
        ));
    }
    out
}

pub fn sessions(inv: &Inventory) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut seen = 0;
    for (inst, ours) in inv.ours() {
        let Ours::Clone { role, .. } = ours else {
            continue;
        };
        seen += 1;
        let name = &inst.name;
        let used = size((inv.size_of)(inst));
        let state = format!("{}, {used}", inst.status.to_lowercase());
        let kind = match role {
            Role::Run => "session",
            Role::Build => "template build",
            Role::Warm => "pre-booted clone",
            Role::Old => "replaced template",
        };
        out.push(match inv.owners.owner(name) {
            Owner::InUse(pid) => Finding::ok(format!("{kind} {name}: in use (pid {pid}), {state}")),
            Owner::Unused => Finding::warn(
                format!("{kind} {name}: orphaned, no claude-vm process uses it ({state})"),
                format!("`limactl delete --force {name}`"),
            ),
        });
    }
    let live: Vec<&str> = inv
        .instances
        .unwrap_or_default()
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    for (name, path) in inv.handovers {
        if inv.instances.is_some() && !live.contains(&name.as_str()) {
            out.push(Finding::warn(
                format!("hand-over directory {} has no VM any more", path.display()),
                format!("`rm -r {}`", crate::script::quote(&path.to_string_lossy())),
            ));
        }
    }
    if seen == 0 && inv.instances.is_some() {
        out.push(Finding::ok("sessions: none running, no orphans"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Level;

    struct Fixed(Vec<(&'static str, Owner)>);
    impl Owners for Fixed {
        fn owner(&self, instance: &str) -> Owner {
            self.0
                .iter()
                .find(|(n, _)| *n == instance)
                .map_or(Owner::Unused, |(_, o)| o.clone())
        }
    }

    fn inst(name: &str, status: &str) -> Instance {
        serde_json::from_value(serde_json::json!({"name": name, "status": status})).unwrap()
    }

    fn manifest(t: &str, project: &str, version: &str) -> Manifest {
        Manifest {
            template: t.into(),
            project: project.into(),
            built_at: 0,
            claude_vm_version: version.into(),
            image: "template:debian-13".into(),
            disk: 20,
            memory: 8,
            cpus: 4,
            tools: vec![],
            fingerprint: None,
            setup_flags: Default::default(),
            base: None,
        }
    }

    const T: &str = "claude-vm-app-12345678";

    fn check(
        instances: &[Instance],
        manifests: &[Manifest],
        owners: &dyn Owners,
        handovers: &[(String, PathBuf)],
    ) -> (Vec<Finding>, Vec<Finding>) {
        let inv = Inventory {
            instances: Some(instances),
            manifests,
            owners,
            size_of: &|_| 2_000_000_000,
            exists: &|p| p != Path::new("/gone"),
            handovers,
            version: "0.1.0",
            templates_dir: Path::new("/d/templates"),
        };
        (templates(&inv), sessions(&inv))
    }

    fn levels(f: &[Finding]) -> Vec<Level> {
        f.iter().map(|f| f.level).collect()
    }

    #[test]
    fn healthy_template_and_no_sessions() {
        let (t, s) = check(
            &[inst(T, "Stopped"), inst("default", "Running")],
            &[manifest(T, "/src/app", "0.1.0")],
            &Fixed(vec![]),
            &[],
        );
        assert_eq!(
            t,
            [Finding::ok(format!(
                "template {T} (/src/app): stopped, 2.0 GB"
            ))]
        );
        assert_eq!(levels(&s), [Level::Ok]);
    }

    #[test]
    fn unhealthy_templates_each_get_a_fix() {
        let other = "claude-vm-other-87654321";
        let gone = "claude-vm-gone-11111111";
        let missing = "claude-vm-missing-22222222";
        let broken = "claude-vm-broken-33333333";
        let (t, _) = check(
            &[
                inst(T, "Running"),
                inst(other, "Stopped"),
                inst(gone, "Stopped"),
                inst(broken, "Broken"),
            ],
            &[
                manifest(T, "/src/app", "0.1.0"),
                manifest(gone, "/gone", "0.1.0"),
                manifest(missing, "/src/m", "0.1.0"),
                manifest(broken, "/src/b", "0.1.0"),
            ],
            &Fixed(vec![]),
            &[],
        );
        let texts: Vec<&str> = t.iter().map(|f| f.text.as_str()).collect();
        assert!(
            texts[0].contains("running, so sessions cannot clone it"),
            "{texts:?}"
        );
        assert!(texts[1].contains("unfinished"), "{texts:?}");
        assert!(texts[2].contains("no longer exists"), "{texts:?}");
        assert!(texts[3].contains("Broken"), "{texts:?}");
        assert!(texts[4].contains("its VM is gone"), "{texts:?}");
        assert_eq!(
            levels(&t),
            [
                Level::Warn,
                Level::Warn,
                Level::Warn,
                Level::Fail,
                Level::Warn
            ]
        );
        assert!(t.iter().all(|f| f.fix.is_some()));
        assert!(t[2]
            .fix
            .as_deref()
            .unwrap()
            .contains("/d/templates/claude-vm-gone-11111111.json"));
    }

    #[test]
    fn old_templates_get_a_note() {
        let (t, _) = check(
            &[inst(T, "Stopped")],
            &[manifest(T, "/src/app", "0.0.9")],
            &Fixed(vec![]),
            &[],
        );
        assert_eq!(levels(&t), [Level::Note]);
        assert!(
            t[0].text.contains("built by claude-vm 0.0.9"),
            "{}",
            t[0].text
        );
    }

    #[test]
    fn sessions_in_use_or_orphaned() {
        let a = format!("{T}.run-aaaaaa");
        let b = format!("{T}.run-bbbbbb");
        let c = format!("{T}.build-cccccc");
        let d = format!("{T}.run-dddddd");
        let owners = Fixed(vec![(
            Box::leak(a.clone().into_boxed_str()),
            Owner::InUse(7),
        )]);
        let handovers = vec![
            (a.clone(), PathBuf::from("/d/handover").join(&a)),
            (
                "claude-vm-x-1.run-eeeeee".to_owned(),
                PathBuf::from("/d/handover/claude-vm-x-1.run-eeeeee"),
            ),
        ];
        let (_, s) = check(
            &[
                inst(&a, "Running"),
                inst(&b, "Running"),
                inst(&c, "Stopped"),
                inst(&d, "Running"),
            ],
            &[],
            &owners,
            &handovers,
        );
        assert_eq!(
            levels(&s),
            [
                Level::Ok,
                Level::Warn,
                Level::Warn,
                Level::Warn,
                Level::Warn
            ]
        );
        assert!(s[0].text.contains("in use (pid 7)"), "{}", s[0].text);
        assert_eq!(
            s[1].fix.as_deref(),
            Some(format!("`limactl delete --force {b}`").as_str())
        );
        assert!(s[2].text.starts_with("template build"), "{}", s[2].text);
        assert!(
            s[4].fix.as_deref().unwrap().starts_with("`rm -r "),
            "{:?}",
            s[4].fix
        );
    }
}
