//! A session: clone the template with the session's mounts and boot it (one call), run the
//! session script (one call), delete the clone (one call).

use std::path::PathBuf;

use super::mounts::{session_mounts, to_lima, MountInputs};
use super::{FileSource, HandoverFile, HostScript};
use crate::config::Config;
use crate::lima::{self, Call, CloneSpec, Resources, ShellSpec};
use crate::names::TemplateName;
use crate::project::Project;
use crate::script::{self, Final, GuestScript, SessionInput, HANDOVER_MOUNT};

pub struct SessionInputs<'a> {
    pub template: &'a TemplateName,
    pub instance: String,
    pub project: &'a Project,
    pub config: &'a Config,
    pub last: Final,
    pub runtime_scripts: Vec<HostScript>,
    /// The host's conversation folder and its name, when it is shared.
    pub conversations: Option<(PathBuf, String)>,
    pub handover_dir: PathBuf,
    /// What the template was built with; the clone asks for a change only where it differs.
    pub template_resources: Resources,
}

#[derive(Debug)]
pub struct SessionPlan {
    pub instance: String,
    pub handover_dir: PathBuf,
    pub files: Vec<HandoverFile>,
    /// Host directories to create before cloning (the conversation folder).
    pub host_dirs: Vec<PathBuf>,
    pub clone: Call,
    pub shell: Call,
    pub delete: Call,
}

impl SessionPlan {
    pub fn calls(&self) -> [&Call; 3] {
        [&self.clone, &self.shell, &self.delete]
    }
}

pub fn plan_session(i: SessionInputs) -> Result<SessionPlan, String> {
    let guest = |name: &str| format!("{HANDOVER_MOUNT}/{name}");
    let mut files = Vec::new();

    let env_file = (!i.config.env.is_empty()).then(|| {
        files.push(HandoverFile {
            name: "env.sh".into(),
            source: FileSource::Text(script::env_file(&i.config.env)),
            printable: false,
        });
        guest("env.sh")
    });
    let runtime: Vec<GuestScript> = i
        .runtime_scripts
        .iter()
        .enumerate()
        .map(|(n, s)| {
            let name = format!("runtime-{}.sh", n + 1);
            files.push(HandoverFile {
                name: name.clone(),
                source: FileSource::Copy(s.path.clone()),
                printable: true,
            });
            GuestScript {
                label: s.label.clone(),
                guest_path: guest(&name),
            }
        })
        .collect();
    let text = script::session(&SessionInput {
        env_file: env_file.as_deref(),
        runtime: &runtime,
        last: &i.last,
    });
    files.push(HandoverFile {
        name: "session.sh".into(),
        source: FileSource::Text(text),
        printable: true,
    });

    let mounts = session_mounts(&MountInputs {
        project: i.project,
        conversations: i.conversations.clone(),
        config_mounts: &i.config.mounts,
        handover_dir: &i.handover_dir,
    })?;
    let lima_mounts = to_lima(&mounts);
    let vm = &i.config.vm;
    let t = i.template_resources;
    let resources = Resources {
        cpus: (t.cpus != Some(vm.cpus)).then_some(vm.cpus),
        memory_gib: (t.memory_gib != Some(vm.memory)).then_some(vm.memory),
        // A disk can grow at clone time, never shrink (Lima refuses).
        disk_gib: t.disk_gib.is_none_or(|d| vm.disk > d).then_some(vm.disk),
    };
    let clone = lima::clone(&CloneSpec {
        source: i.template.as_str(),
        name: &i.instance,
        start: true,
        resources,
        mounts: &lima_mounts,
        extra: &[],
    });
    let workdir = i.project.root.to_string_lossy().into_owned();
    let command = vec!["bash".to_owned(), guest("session.sh")];
    let shell = lima::shell(&ShellSpec {
        name: &i.instance,
        workdir: Some(&workdir),
        command: &command,
    });
    let delete = lima::delete(std::slice::from_ref(&i.instance));
    Ok(SessionPlan {
        host_dirs: i.conversations.iter().map(|(p, _)| p.clone()).collect(),
        instance: i.instance,
        handover_dir: i.handover_dir,
        files,
        clone,
        shell,
        delete,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lima::Verb;
    use std::collections::BTreeMap;
    use std::path::Path;

    fn inputs<'a>(t: &'a TemplateName, p: &'a Project, c: &'a Config) -> SessionInputs<'a> {
        SessionInputs {
            template: t,
            instance: t.instance_with_id(crate::names::Role::Run, "abc123"),
            project: p,
            config: c,
            last: Final::Claude(vec!["--dangerously-skip-permissions".into(), "hi".into()]),
            runtime_scripts: vec![HostScript {
                label: "./.claude-vm.runtime.sh".into(),
                path: "/src/app/.claude-vm.runtime.sh".into(),
            }],
            conversations: Some(("/h/.claude/projects/-src-app".into(), "-src-app".into())),
            handover_dir: "/h/.local/share/claude-vm/handover/x".into(),
            template_resources: Resources {
                cpus: Some(4),
                memory_gib: Some(8),
                disk_gib: Some(20),
            },
        }
    }

    fn template() -> TemplateName {
        crate::names::template_name(Path::new("/src/app"), Path::new("/h/.lima")).unwrap()
    }

    #[test]
    fn three_calls_clone_start_shell_delete() {
        let t = template();
        let p = Project {
            root: "/src/app".into(),
            main_root: None,
            in_git: true,
        };
        let c = Config::default();
        let plan = plan_session(inputs(&t, &p, &c)).unwrap();
        let verbs: Vec<Verb> = plan.calls().iter().map(|c| c.verb).collect();
        assert_eq!(verbs, [Verb::Clone, Verb::Shell, Verb::Delete]);
        assert!(plan.clone.args.contains(&"--start".to_string()));
        assert!(
            !plan.clone.args.contains(&"--cpus".to_string()),
            "same resources as the template: no change"
        );
        assert_eq!(
            &plan.shell.args[2..],
            [
                "--workdir",
                "/src/app",
                plan.instance.as_str(),
                "bash",
                "/mnt/claude-vm/session.sh"
            ]
        );
        assert_eq!(
            plan.delete.args,
            ["delete", "--tty=false", "--force", plan.instance.as_str()]
        );
        let names: Vec<&str> = plan.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["runtime-1.sh", "session.sh"]);
    }

    #[test]
    fn a_smaller_configured_disk_keeps_the_templates() {
        let t = template();
        let p = Project {
            root: "/src/app".into(),
            main_root: None,
            in_git: true,
        };
        let mut c = Config::default();
        c.vm.disk = 10;
        let plan = plan_session(inputs(&t, &p, &c)).unwrap();
        assert!(!plan.clone.args.contains(&"--disk".to_string()));
        c.vm.disk = 30;
        let plan = plan_session(inputs(&t, &p, &c)).unwrap();
        let i = plan.clone.args.iter().position(|a| a == "--disk").unwrap();
        assert_eq!(plan.clone.args[i + 1], "30");
    }

    #[test]
    fn changed_resources_and_env_reach_the_clone_but_values_stay_off_argv() {
        let t = template();
        let p = Project {
            root: "/src/app".into(),
            main_root: None,
            in_git: true,
        };
        let mut c = Config::default();
        c.vm.cpus = 8;
        c.env = BTreeMap::from([("TOKEN".into(), "s3cret".into())]);
        let plan = plan_session(inputs(&t, &p, &c)).unwrap();
        let a = &plan.clone.args;
        let cpus = a.iter().position(|x| x == "--cpus").unwrap();
        assert_eq!(a[cpus + 1], "8");
        for call in plan.calls() {
            assert!(!call.args.iter().any(|x| x.contains("s3cret")), "{call}");
        }
        let env = plan.files.iter().find(|f| f.name == "env.sh").unwrap();
        assert!(!env.printable);
        assert!(matches!(&env.source, FileSource::Text(t) if t.contains("s3cret")));
    }
}
