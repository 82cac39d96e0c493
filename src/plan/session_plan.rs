//! A session: clone the template with the session's mounts and boot it (one call), run the
//! session script (one call), delete the clone (one call).

use std::path::PathBuf;

use std::collections::BTreeMap;

use serde::Serialize;

use super::mounts::{session_mounts, to_lima, MountInputs};
use super::{FileSource, HandoverFile, HostScript, PlanError};
use crate::config::{Config, PortForward};
use crate::integrations::{GitIdentity, GpgForward};
use crate::lima::{self, Call, CloneSpec, Resources, SetExpr, ShellSpec};
use crate::names::TemplateName;
use crate::project::Project;
use crate::script::{self, quote, ClaudeState, Final, GuestScript, SessionInput, HANDOVER_MOUNT};
use crate::tools::Tool;

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
    /// Where the session starts: the directory the user stands in, inside the project
    /// (mounted at its host path, so the same path in the guest).
    pub workdir: PathBuf,
    /// What the template was built with; the clone asks for a change only where it differs.
    pub template_resources: Resources,
    pub guest: GuestInputs,
}

/// What a session brings into the guest besides the project: environment, tools and the
/// host's agents.
#[derive(Debug, Clone, Default)]
pub struct GuestInputs {
    /// The final environment (it may hold secrets: it only ever goes into a 0600 file).
    pub env: BTreeMap<String, String>,
    /// Variables of `env` whose loopback URLs were pointed at the host.
    pub host_urls: Vec<super::environment::HostUrl>,
    /// The template's tools, whose runtime scripts run first.
    pub tools: Vec<&'static Tool>,
    pub git: Option<GitIdentity>,
    pub gpg: Option<GpgForward>,
    pub forward_agent: bool,
    pub ports: Vec<PortForward>,
    /// The in-guest network rules and privilege drop (`crate::network`); None: neither.
    pub enforcement: Option<crate::script::Enforcement>,
}

/// Where the host's gpg-agent socket appears in the guest. /tmp exists at boot, which Lima's
/// reverse forward needs; the session then links gpg's own socket path to it.
pub const GPG_GUEST_SOCKET: &str = "/tmp/claude-vm-gpg-agent";

#[derive(Debug)]
pub struct SessionPlan {
    pub instance: String,
    pub handover_dir: PathBuf,
    pub files: Vec<HandoverFile>,
    /// The host folders the clone mounts (all but the hand-over directory): checked before
    /// the clone and again once it has booted.
    pub mounted_dirs: Vec<PathBuf>,
    /// Loopback URLs in the guest's environment that now point at the host (for messages).
    pub host_urls: Vec<super::environment::HostUrl>,
    /// Host directories to create before cloning (the conversation folder).
    pub host_dirs: Vec<PathBuf>,
    /// `limactl clone --start`: the session's VM from the template.
    pub clone_call: Call,
    pub shell: Call,
    pub delete: Call,
}

impl SessionPlan {
    /// What makes a pre-booted clone fit this session (`crate::pool::key`).
    pub fn pool_key(&self) -> String {
        crate::pool::key(&self.clone_call, &self.instance, &self.handover_dir)
    }

    /// The clone's settings, to say which differ from a pre-booted clone's.
    pub fn pool_settings(&self) -> Vec<String> {
        crate::pool::settings(&self.clone_call, &self.instance, &self.handover_dir)
    }

    pub fn calls(&self) -> [&Call; 3] {
        [&self.clone_call, &self.shell, &self.delete]
    }
}

/// Hand-over files and the guest scripts that use them, in the order they run.
#[derive(Default)]
struct HandoverContents {
    files: Vec<HandoverFile>,
    runtime: Vec<GuestScript>,
}

impl HandoverContents {
    fn text(&mut self, name: &str, text: String, printable: bool) -> String {
        self.files.push(HandoverFile {
            name: name.into(),
            source: FileSource::Text(text),
            printable,
        });
        format!("{HANDOVER_MOUNT}/{name}")
    }

    fn runtime_text(&mut self, label: &str, name: &str, text: String) {
        let guest_path = self.text(name, text, true);
        self.runtime.push(GuestScript {
            label: label.into(),
            guest_path,
        });
    }
}

pub fn plan_session(i: SessionInputs) -> Result<SessionPlan, PlanError> {
    let g = &i.guest;
    let mut h = HandoverContents::default();

    let env_file = (!g.env.is_empty()).then(|| h.text("env.sh", script::env_file(&g.env), false));
    for tool in &g.tools {
        if let Some(runtime) = &tool.runtime {
            h.runtime_text(
                &format!("tool {}", tool.name),
                &format!("tool-{}.sh", tool.name),
                runtime.clone(),
            );
        }
    }
    if let Some(git) = &g.git {
        h.runtime_text("git identity", "git-identity.sh", git_identity_script(git));
    }
    if let Some(gpg) = &g.gpg {
        let keys = h.text("gpg-public.asc", gpg.public_keys.clone(), true);
        let trust = h.text("gpg-ownertrust.txt", gpg.ownertrust.clone(), true);
        h.runtime_text("gpg agent", "gpg-agent.sh", gpg_agent_script(&keys, &trust));
    }
    for (n, s) in i.runtime_scripts.iter().enumerate() {
        let name = format!("runtime-{}.sh", n + 1);
        h.files.push(HandoverFile {
            name: name.clone(),
            source: FileSource::Copy(s.source.clone()),
            printable: true,
        });
        h.runtime.push(GuestScript {
            label: s.label.clone(),
            guest_path: format!("{HANDOVER_MOUNT}/{name}"),
        });
    }
    let state_program = h.text(
        script::CLAUDE_STATE_FILE,
        script::CLAUDE_STATE_PROGRAM.to_owned(),
        true,
    );
    let mut trusted_dirs = trusted_dirs(i.project)?;
    let start = i.workdir.to_string_lossy().into_owned();
    if !trusted_dirs.contains(&start) {
        trusted_dirs.push(start);
    }
    let (mounts, links) = session_mounts(&MountInputs {
        project: i.project,
        conversations: i.conversations.clone(),
        config_mounts: &i.config.mounts,
        handover_dir: &i.handover_dir,
    })?;
    let links: Vec<(String, String)> = links.into_iter().map(|l| (l.target, l.at)).collect();
    let text = script::session(&SessionInput {
        env_file: env_file.as_deref(),
        runtime: &h.runtime,
        links: &links,
        claude_state: Some(ClaudeState {
            program: &state_program,
            trusted_dirs: &trusted_dirs,
        }),
        last: &i.last,
        enforcement: i.guest.enforcement.as_ref(),
    });
    let session_script = h.text("session.sh", text, true);

    let lima_mounts = to_lima(&mounts);
    let mounted_dirs = mounts
        .iter()
        .filter(|m| m.mount_point.as_deref() != Some(HANDOVER_MOUNT))
        .map(|m| m.location.clone())
        .collect();
    let vm = &i.config.vm;
    let t = i.template_resources;
    let resources = Resources {
        cpus: (t.cpus != Some(vm.cpus)).then_some(vm.cpus),
        memory_gib: (t.memory_gib != Some(vm.memory)).then_some(vm.memory),
        // A disk can grow at clone time, never shrink (Lima refuses).
        disk_gib: t.disk_gib.is_none_or(|d| vm.disk > d).then_some(vm.disk),
    };
    let extra = clone_settings(g)?;
    let clone = lima::clone(&CloneSpec {
        source: i.template.as_str(),
        name: &i.instance,
        start: true,
        resources,
        mounts: &lima_mounts,
        extra: &extra,
    });
    let workdir = i.workdir.to_string_lossy().into_owned();
    let command = vec!["bash".to_owned(), session_script];
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
        files: h.files,
        mounted_dirs,
        host_urls: i.guest.host_urls.clone(),
        clone_call: clone,
        shell,
        delete,
    })
}

/// The directories Claude Code is told it may trust: the project, and a worktree's main
/// repository (Claude Code may key a worktree's settings by it). They are mounted at their
/// host paths, so the host path is the guest's.
fn trusted_dirs(project: &Project) -> Result<Vec<String>, PlanError> {
    let mut dirs = Vec::new();
    for dir in std::iter::once(&project.root).chain(project.main_root.as_ref()) {
        let dir = dir
            .to_str()
            .ok_or_else(|| PlanError::PathNotUtf8(dir.clone()))?;
        dirs.push(dir.to_owned());
    }
    Ok(dirs)
}

/// A Lima `portForwards` rule, as lima.yaml spells it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PortRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    guest_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    guest_socket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host_socket: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    reverse: bool,
}

/// Instance settings the clone gets: agent forwarding, port and socket forwards.
fn clone_settings(g: &GuestInputs) -> Result<Vec<SetExpr>, PlanError> {
    let mut sets = Vec::new();
    if g.forward_agent {
        sets.push(SetExpr::assign(".ssh.forwardAgent", &true));
    }
    let mut rules: Vec<PortRule> = Vec::new();
    let mut seen_host = Vec::new();
    for p in g
        .tools
        .iter()
        .flat_map(|t| {
            t.ports.iter().map(|p| PortForward {
                guest: p.guest,
                host: p.host,
            })
        })
        .chain(g.ports.iter().copied())
    {
        if seen_host.contains(&p.host) {
            return Err(PlanError::DuplicateHostPort(p.host));
        }
        seen_host.push(p.host);
        rules.push(PortRule {
            guest_port: Some(p.guest),
            host_port: Some(p.host),
            guest_socket: None,
            host_socket: None,
            reverse: false,
        });
    }
    if let Some(gpg) = &g.gpg {
        let host = gpg
            .extra_socket
            .to_str()
            .ok_or(PlanError::GpgSocketNotUtf8)?;
        rules.push(PortRule {
            guest_port: None,
            host_port: None,
            guest_socket: Some(GPG_GUEST_SOCKET.into()),
            host_socket: Some(host.into()),
            reverse: true,
        });
    }
    if !rules.is_empty() {
        sets.push(SetExpr::assign(".portForwards", &rules));
    }
    Ok(sets)
}

/// `git config --global` for each host setting, every value shell-quoted.
fn git_identity_script(git: &GitIdentity) -> String {
    let mut s = String::from("# the host's git identity (generated by claude-vm)\n");
    for (k, v) in &git.settings {
        s.push_str(&format!("git config --global {} {}\n", quote(k), quote(v)));
    }
    s
}

/// Points the guest's gpg at the forwarded agent and imports the host's public keys.
fn gpg_agent_script(keys: &str, trust: &str) -> String {
    format!(
        "# the host's gpg-agent, forwarded by Lima (generated by claude-vm)\n\
         if [ -S {sock} ]; then\n\
         \x20 cvm_agent=$(gpgconf --list-dirs agent-socket)\n\
         \x20 mkdir -p \"${{cvm_agent%/*}}\" && chmod 700 \"${{cvm_agent%/*}}\"\n\
         \x20 ln -sf {sock} \"$cvm_agent\"\n\
         \x20 gpg --batch --quiet --import {keys} 2>/dev/null || true\n\
         \x20 gpg --batch --quiet --import-ownertrust {trust} 2>/dev/null || true\n\
         \x20 unset cvm_agent\n\
         else\n\
         \x20 echo 'claude-vm: the host gpg-agent is not reachable in this VM; gpg signing will not work' >&2\n\
         fi\n",
        sock = quote(GPG_GUEST_SOCKET),
        keys = quote(keys),
        trust = quote(trust),
    )
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
                source: crate::plan::HostCopy::plain("/src/app/.claude-vm.runtime.sh".into()),
            }],
            conversations: Some(("/h/.claude/projects/-src-app".into(), "-src-app".into())),
            handover_dir: "/h/.local/share/claude-vm/handover/x".into(),
            workdir: "/src/app".into(),
            template_resources: Resources {
                cpus: Some(4),
                memory_gib: Some(8),
                disk_gib: Some(20),
            },
            guest: GuestInputs::default(),
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
        assert!(plan.clone_call.args.contains(&"--start".to_string()));
        assert!(
            !plan.clone_call.args.contains(&"--cpus".to_string()),
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
        assert_eq!(names, ["runtime-1.sh", "claude-state.py", "session.sh"]);
        let script = match &plan.files.last().unwrap().source {
            FileSource::Text(t) => t.clone(),
            FileSource::Copy(_) => panic!("session.sh is text"),
        };
        assert!(
            script.contains("python3 /mnt/claude-vm/claude-state.py session /src/app ||"),
            "the project is trusted before claude starts: {script}"
        );
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
        assert!(!plan.clone_call.args.contains(&"--disk".to_string()));
        c.vm.disk = 30;
        let plan = plan_session(inputs(&t, &p, &c)).unwrap();
        let i = plan
            .clone_call
            .args
            .iter()
            .position(|a| a == "--disk")
            .unwrap();
        assert_eq!(plan.clone_call.args[i + 1], "30");
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
        let mut i = inputs(&t, &p, &c);
        i.guest.env = BTreeMap::from([("TOKEN".into(), "s3cret".into())]);
        let plan = plan_session(i).unwrap();
        let a = &plan.clone_call.args;
        let cpus = a.iter().position(|x| x == "--cpus").unwrap();
        assert_eq!(a[cpus + 1], "8");
        for call in plan.calls() {
            assert!(!call.args.iter().any(|x| x.contains("s3cret")), "{call}");
        }
        let env = plan.files.iter().find(|f| f.name == "env.sh").unwrap();
        assert!(!env.printable);
        assert!(matches!(&env.source, FileSource::Text(t) if t.contains("s3cret")));
    }

    #[test]
    fn tools_agents_and_ports_shape_the_clone_and_the_session() {
        let t = template();
        let p = Project {
            root: "/src/app".into(),
            main_root: None,
            in_git: true,
        };
        let c = Config::default();
        let mut i = inputs(&t, &p, &c);
        i.guest.tools = crate::tools::resolve(&["rust", "git", "gpg"]);
        i.guest.git = Some(GitIdentity {
            settings: vec![("user.name".into(), "Ann O'Neil $x".into())],
        });
        i.guest.gpg = Some(GpgForward {
            extra_socket: "/run/user/1000/gnupg/S.gpg-agent.extra".into(),
            public_keys: "KEYS".into(),
            ownertrust: "TRUST".into(),
        });
        i.guest.forward_agent = true;
        i.guest.ports = vec![PortForward {
            guest: 3000,
            host: 13000,
        }];
        let plan = plan_session(i).unwrap();
        let a = &plan.clone_call.args;
        let sets: Vec<&String> = a
            .iter()
            .enumerate()
            .filter(|(n, _)| *n > 0 && a[n - 1] == "--set")
            .map(|(_, v)| v)
            .collect();
        assert!(
            sets.contains(&&".ssh.forwardAgent = true".to_string()),
            "{sets:?}"
        );
        let ports = sets
            .iter()
            .find(|s| s.starts_with(".portForwards = "))
            .unwrap();
        let rules: serde_json::Value =
            serde_json::from_str(ports.strip_prefix(".portForwards = ").unwrap()).unwrap();
        assert_eq!(
            rules[0],
            serde_json::json!({"guestPort": 3000, "hostPort": 13000})
        );
        assert_eq!(
            rules[1],
            serde_json::json!({"guestSocket": GPG_GUEST_SOCKET, "hostSocket": "/run/user/1000/gnupg/S.gpg-agent.extra", "reverse": true})
        );
        let session = plan.files.iter().find(|f| f.name == "session.sh").unwrap();
        let FileSource::Text(text) = &session.source else {
            panic!()
        };
        let order: Vec<usize> = [
            "tool-rust.sh",
            "git-identity.sh",
            "gpg-agent.sh",
            "runtime-1.sh",
            "exec claude",
        ]
        .iter()
        .map(|n| {
            text.find(n)
                .unwrap_or_else(|| panic!("{n} missing in {text}"))
        })
        .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "tools, integrations, then user scripts: {text}"
        );
        let git = plan
            .files
            .iter()
            .find(|f| f.name == "git-identity.sh")
            .unwrap();
        assert!(
            matches!(&git.source, FileSource::Text(t) if t.contains("git config --global user.name 'Ann O'\\''Neil $x'"))
        );
    }

    #[test]
    fn a_host_port_forwarded_twice_is_an_error() {
        let t = template();
        let p = Project {
            root: "/src/app".into(),
            main_root: None,
            in_git: true,
        };
        let c = Config::default();
        let mut i = inputs(&t, &p, &c);
        i.guest.ports = vec![
            PortForward {
                guest: 1,
                host: 8080,
            },
            PortForward {
                guest: 2,
                host: 8080,
            },
        ];
        let err = plan_session(i).unwrap_err();
        assert_eq!(err, PlanError::DuplicateHostPort(8080));
        assert!(err
            .to_string()
            .contains("host port 8080 is forwarded twice"));
        assert!(!err.hint().contains("mount"), "{}", err.hint());
    }
}
