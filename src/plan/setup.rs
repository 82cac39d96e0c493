//! Building a template: create (setup mounts only) → start → one provisioning shell → stop.
//! A rebuild builds under a temporary name and swaps it in only once it is complete.

use super::mounts::{setup_mounts, to_lima};
use super::{FileSource, HandoverFile, HostCopy, HostScript};
use crate::config::{Config, InstallMethod};
use crate::lima::{self, Call, CreateSpec, Resources, ShellSpec};
use crate::names::{Role, TemplateName};
use crate::script::{self, ClaudeInstall, GuestScript, ProvisionInput, BUNDLE_DIR};
use crate::tools::{self, Tool};

pub struct SetupInputs<'a> {
    pub template: &'a TemplateName,
    /// The instance to build: the template's own name on a first build, a temporary one when
    /// an existing template must keep working until the new one is ready.
    pub build: String,
    pub config: &'a Config,
    pub scripts: Vec<HostScript>,
    /// Folders a VM can write (see `hostfile::HostCopy`), for the packages setup script.
    pub agent_writable: Vec<std::path::PathBuf>,
    /// Run Claude Code's login in the template before it is stopped.
    pub login: bool,
}

#[derive(Debug)]
pub struct SetupPlan {
    pub template: TemplateName,
    pub build: String,
    /// Sent to the provisioning shell on stdin, as a bundle that unpacks them; the last one
    /// is the provisioning script.
    pub files: Vec<HandoverFile>,
    pub create: Call,
    pub start: Call,
    pub provision: Call,
    /// `claude auth login`, attached to the terminal, when asked for.
    pub login: Option<Call>,
    pub stop: Call,
    /// Where a rebuild moves the old template until the new one is in (none on a first build).
    pub aside: Option<String>,
    /// Replacing an old template (`swap.rs`): rename it aside, rename the new one in, delete
    /// the old one (empty on a first build).
    pub swap: Vec<Call>,
    /// The host folders the build mounts (its setup mounts), checked before and after boot.
    pub mounted_dirs: Vec<std::path::PathBuf>,
    /// Run on failure: removes the half-built instance.
    pub cleanup: Call,
}

impl SetupPlan {
    pub fn is_rebuild(&self) -> bool {
        !self.swap.is_empty()
    }

    pub fn calls(&self) -> Vec<&Call> {
        let mut v = vec![&self.create, &self.start, &self.provision];
        v.extend(self.login.iter());
        v.push(&self.stop);
        v.extend(self.swap.iter());
        v
    }
}

pub fn plan_setup(i: SetupInputs) -> Result<SetupPlan, super::PlanError> {
    let guest = |name: &str| format!("{BUNDLE_DIR}/{name}");
    let mut files = Vec::new();
    let scripts: Vec<GuestScript> = i
        .scripts
        .iter()
        .enumerate()
        .map(|(n, s)| {
            let name = format!("setup-{}.sh", n + 1);
            files.push(HandoverFile {
                name: name.clone(),
                source: FileSource::Copy(s.source.clone()),
                printable: true,
            });
            GuestScript {
                label: s.label.clone(),
                guest_path: guest(&name),
            }
        })
        .collect();
    let packages_setup = i.config.packages.setup_script.as_ref().map(|path| {
        files.push(HandoverFile {
            name: "packages-setup.sh".into(),
            source: FileSource::Copy(HostCopy {
                path: path.clone(),
                confined_to: i.agent_writable.clone(),
                approved: None,
            }),
            printable: true,
        });
        GuestScript {
            label: "[packages] setup_script".into(),
            guest_path: guest("packages-setup.sh"),
        }
    });
    let tools = template_tools(i.config);
    let claude = claude_install(i.config);
    files.push(HandoverFile {
        name: script::CLAUDE_STATE_FILE.into(),
        source: FileSource::Text(script::CLAUDE_STATE_PROGRAM.to_owned()),
        printable: true,
    });
    let (build_mounts, links) = setup_mounts(&i.config.setup.mounts, &i.agent_writable);
    let links: Vec<(String, String)> = links.into_iter().map(|l| (l.target, l.at)).collect();
    let text = script::provision(&ProvisionInput {
        links: &links,
        tools: &tools,
        system_packages: &i.config.packages.system,
        packages_setup: packages_setup.as_ref(),
        claude: &claude,
        scripts: &scripts,
        claude_state: &guest(script::CLAUDE_STATE_FILE),
    });
    files.push(HandoverFile {
        name: "provision.sh".into(),
        source: FileSource::Text(text),
        printable: true,
    });

    // Only the setup mounts: Lima's default template would share the whole home directory,
    // and the scripts travel on stdin, so nothing of claude-vm's stays mounted.
    let lima_mounts = to_lima(&build_mounts);
    let vm = &i.config.vm;
    let create = lima::create(&CreateSpec {
        name: &i.build,
        image: &vm.image,
        resources: Resources {
            cpus: Some(vm.cpus),
            memory_gib: Some(vm.memory),
            disk_gib: Some(vm.disk),
        },
        mounts: &lima_mounts,
        extra: &[],
    });
    // `bash -s` reads the bundle (files + provision.sh) from stdin.
    let command = vec!["bash".to_owned(), "-s".to_owned()];
    let provision = lima::shell(&ShellSpec {
        name: &i.build,
        workdir: None,
        command: &command,
    });
    let aside = (i.build != i.template.as_str()).then(|| i.template.instance(Role::Old));
    let swap = match &aside {
        None => Vec::new(),
        Some(aside) => swap_calls(i.template.as_str(), &i.build, aside),
    };
    Ok(SetupPlan {
        login: i.login.then(|| login_call(&i.build)),
        template: i.template.clone(),
        start: lima::start(&i.build),
        stop: lima::stop(&i.build),
        cleanup: lima::delete(std::slice::from_ref(&i.build)),
        mounted_dirs: build_mounts.iter().map(|m| m.location.clone()).collect(),
        build: i.build,
        files,
        create,
        provision,
        aside,
        swap,
    })
}

/// Claude Code's own login, run in the guest user's home.
pub fn login_call(instance: &str) -> Call {
    let command: Vec<String> = ["claude", "auth", "login"].map(String::from).to_vec();
    lima::shell(&ShellSpec {
        name: instance,
        workdir: None,
        command: &command,
    })
}

/// The tools a template built from `config` contains: the enabled ones, what they require,
/// and node when Claude Code comes from npm.
pub fn template_tools(config: &Config) -> Vec<&'static Tool> {
    let mut wanted: Vec<&str> = config.enabled_tools();
    if config.claude.install == InstallMethod::Npm {
        wanted.push("node");
    }
    tools::resolve(&wanted)
}

fn claude_install(config: &Config) -> ClaudeInstall {
    let version = config.claude.version.clone();
    match config.claude.install {
        InstallMethod::Official => ClaudeInstall::Official { version },
        InstallMethod::Npm => ClaudeInstall::Npm { version },
    }
}

/// The three limactl calls of a swap, for plans and dry runs.
pub fn swap_calls(template: &str, build: &str, aside: &str) -> Vec<Call> {
    vec![
        lima::rename(template, aside),
        lima::rename(build, template),
        lima::delete(&[aside.to_owned()]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lima::Verb;
    use crate::names::Role;
    use std::path::Path;

    fn template() -> TemplateName {
        crate::names::template_name(Path::new("/src/app"), Path::new("/h/.lima")).unwrap()
    }

    fn plan(build: String, c: &Config, t: &TemplateName) -> SetupPlan {
        plan_setup(SetupInputs {
            template: t,
            build,
            config: c,
            agent_writable: Vec::new(),
            scripts: vec![HostScript {
                label: "~/.claude-vm.setup.sh".into(),
                source: crate::plan::HostCopy::plain("/h/.claude-vm.setup.sh".into()),
            }],
            login: false,
        })
        .unwrap()
    }

    #[test]
    fn first_build_is_four_calls_under_the_final_name() {
        let t = template();
        let c = Config::default();
        let p = plan(t.as_str().to_owned(), &c, &t);
        let verbs: Vec<Verb> = p.calls().iter().map(|c| c.verb).collect();
        assert_eq!(verbs, [Verb::Create, Verb::Start, Verb::Shell, Verb::Stop]);
        assert!(!p.is_rebuild());
        let a = &p.create.args;
        let set = a.iter().position(|x| x == "--set").unwrap();
        let json: serde_json::Value =
            serde_json::from_str(a[set + 1].strip_prefix(".mounts = ").unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!([]),
            "only setup mounts: never the home directory"
        );
        assert_eq!(
            &p.provision.args[p.provision.args.len() - 2..],
            ["bash", "-s"]
        );
        let names: Vec<&str> = p.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["setup-1.sh", "claude-state.py", "provision.sh"],
            "provision.sh last: it is the entry point"
        );
        assert_eq!(a.last().unwrap(), "template:debian-13");
        for (flag, v) in [("--cpus", "4"), ("--memory", "8"), ("--disk", "20")] {
            let i = a.iter().position(|x| x == flag).unwrap();
            assert_eq!(a[i + 1], v);
        }
    }

    #[test]
    fn rebuild_swaps_in_the_new_template_last() {
        let t = template();
        let c = Config::default();
        let build = t.instance_with_id(Role::Build, "zzz999");
        let p = plan(build.clone(), &c, &t);
        assert!(p.is_rebuild());
        let aside = p.aside.clone().unwrap();
        assert!(
            matches!(crate::names::parse(&aside), Some(crate::names::Ours::Clone { role: Role::Old, template, .. }) if template == t),
            "{aside}"
        );
        // Never a moment without a complete template: old aside, new in, then old deleted.
        let args: Vec<&[String]> = p.swap.iter().map(|c| c.args.as_slice()).collect();
        assert_eq!(
            args,
            [
                &["rename", "--tty=false", t.as_str(), aside.as_str()].map(String::from)[..],
                &["rename", "--tty=false", build.as_str(), t.as_str()].map(String::from)[..],
                &["delete", "--tty=false", "--force", aside.as_str()].map(String::from)[..],
            ]
        );
        assert_eq!(
            p.cleanup.args,
            ["delete", "--tty=false", "--force", build.as_str()]
        );
    }
}
