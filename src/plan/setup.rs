//! Building a template. With a shared base (the default): the base (create without mounts →
//! start → one provisioning shell for packages, tools and Claude Code → stop), once for every
//! project that asks for the same, then the template: `clone --start` of the base with the
//! setup mounts → one shell for the setup scripts → stop. In one layer
//! (`[vm] shared_base = false`): create (setup mounts only) → start → one shell → stop.
//! A rebuild builds under a temporary name and swaps it in only once it is complete.

use super::mounts::{setup_mounts, to_lima};
use super::{FileSource, HandoverFile, HostCopy, HostScript};
use crate::config::{Config, InstallMethod};
use crate::lima::{self, Call, CloneSpec, CreateSpec, Resources, ShellSpec};
use crate::names::{Role, TemplateName};
use crate::script::{self, ClaudeInstall, GuestScript, Layer, ProvisionInput, BUNDLE_DIR};
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
    /// The shared base to clone the template from; none: build it from the image in one
    /// layer (`[vm] shared_base = false`).
    pub base: Option<BasePlan>,
}

/// How the VM being built comes to be running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    /// From the image: `create` (setup mounts only), then `start`.
    Create { create: Call, start: Call },
    /// From a shared base: `clone --start` with the setup mounts.
    Clone(Call),
}

impl Boot {
    pub fn calls(&self) -> Vec<&Call> {
        match self {
            Boot::Create { create, start } => vec![create, start],
            Boot::Clone(clone) => vec![clone],
        }
    }

    /// The call that makes the instance (marked ours once it succeeds).
    pub fn maker(&self) -> &Call {
        match self {
            Boot::Create { create, .. } => create,
            Boot::Clone(clone) => clone,
        }
    }
}

#[derive(Debug)]
pub struct SetupPlan {
    pub template: TemplateName,
    pub build: String,
    /// Sent to the provisioning shell on stdin, as a bundle that unpacks them; the last one
    /// is the provisioning script.
    pub files: Vec<HandoverFile>,
    pub boot: Boot,
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
    /// The shared base it is cloned from (built first when missing).
    pub base: Option<BasePlan>,
    /// False for a clone of the base with nothing of its own to run (no setup script, no
    /// setup-mount link, no login): it is neither booted nor provisioned, only cloned.
    pub provisioned: bool,
}

impl SetupPlan {
    pub fn is_rebuild(&self) -> bool {
        !self.swap.is_empty()
    }

    /// The template's own calls (a missing base's come before them, see [`BasePlan::calls`]).
    pub fn calls(&self) -> Vec<&Call> {
        let mut v = self.boot.calls();
        if self.provisioned {
            v.push(&self.provision);
            v.extend(self.login.iter());
            v.push(&self.stop);
        }
        v.extend(self.swap.iter());
        v
    }
}

/// A shared base: created from the image without any mount, provisioned with packages,
/// tools and Claude Code, stopped. Its name comes from its fingerprint (`names::base_name`).
#[derive(Debug, Clone)]
pub struct BasePlan {
    pub name: String,
    pub files: Vec<HandoverFile>,
    pub create: Call,
    pub start: Call,
    pub provision: Call,
    pub stop: Call,
    pub cleanup: Call,
    /// The tools it holds, by name.
    pub tools: Vec<String>,
}

impl BasePlan {
    pub fn calls(&self) -> Vec<&Call> {
        vec![&self.create, &self.start, &self.provision, &self.stop]
    }
}

/// The plan of the shared base `config` asks for, under the instance name `name`.
pub fn plan_base(config: &Config, agent_writable: &[std::path::PathBuf], name: String) -> BasePlan {
    let mut files = Vec::new();
    let packages_setup = packages_setup(config, agent_writable, &mut files);
    let tools = template_tools(config);
    let claude = claude_install(config);
    files.push(claude_state_file());
    let text = script::provision(&ProvisionInput {
        layer: Layer::Base,
        links: &[],
        tools: &tools,
        system_packages: &config.packages.system,
        packages_setup: packages_setup.as_ref(),
        claude: &claude,
        scripts: &[],
        claude_state: &guest(script::CLAUDE_STATE_FILE),
    });
    files.push(provision_file(text));
    BasePlan {
        create: create_call(config, &name, &[]),
        start: lima::start(&name),
        provision: provision_call(&name),
        stop: lima::stop(&name),
        cleanup: lima::delete(std::slice::from_ref(&name)),
        tools: tools.iter().map(|t| t.name.clone()).collect(),
        files,
        name,
    }
}

fn guest(name: &str) -> String {
    format!("{BUNDLE_DIR}/{name}")
}

fn packages_setup(
    config: &Config,
    agent_writable: &[std::path::PathBuf],
    files: &mut Vec<HandoverFile>,
) -> Option<GuestScript> {
    config.packages.setup_script.as_ref().map(|path| {
        files.push(HandoverFile {
            name: "packages-setup.sh".into(),
            source: FileSource::Copy(HostCopy {
                path: path.clone(),
                confined_to: agent_writable.to_vec(),
                approved: None,
            }),
            printable: true,
        });
        GuestScript {
            label: "[packages] setup_script".into(),
            guest_path: guest("packages-setup.sh"),
        }
    })
}

fn claude_state_file() -> HandoverFile {
    HandoverFile {
        name: script::CLAUDE_STATE_FILE.into(),
        source: FileSource::Text(script::CLAUDE_STATE_PROGRAM.to_owned()),
        printable: true,
    }
}

fn provision_file(text: String) -> HandoverFile {
    HandoverFile {
        name: "provision.sh".into(),
        source: FileSource::Text(text),
        printable: true,
    }
}

fn resources(config: &Config) -> Resources {
    Resources {
        cpus: Some(config.vm.cpus),
        memory_gib: Some(config.vm.memory),
        disk_gib: Some(config.vm.disk),
    }
}

fn create_call(config: &Config, name: &str, mounts: &[lima::LimaMount]) -> Call {
    lima::create(&CreateSpec {
        name,
        image: &config.vm.image,
        resources: resources(config),
        mounts,
        extra: &[],
    })
}

/// `bash -s` reads the bundle (files + provision.sh) from stdin.
fn provision_call(name: &str) -> Call {
    let command = vec!["bash".to_owned(), "-s".to_owned()];
    lima::shell(&ShellSpec {
        name,
        workdir: None,
        command: &command,
    })
}

pub fn plan_setup(i: SetupInputs) -> Result<SetupPlan, super::PlanError> {
    let shared = i.base.is_some();
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
    // One layer: the base's part goes into this script too.
    let packages_setup = if shared {
        None
    } else {
        packages_setup(i.config, &i.agent_writable, &mut files)
    };
    let tools = template_tools(i.config);
    let claude = claude_install(i.config);
    if !shared {
        files.push(claude_state_file());
    }
    let (build_mounts, links) = setup_mounts(&i.config.setup.mounts, &i.agent_writable);
    let links: Vec<(String, String)> = links.into_iter().map(|l| (l.target, l.at)).collect();
    let text = script::provision(&ProvisionInput {
        layer: if shared { Layer::Project } else { Layer::Whole },
        links: &links,
        tools: &tools,
        system_packages: &i.config.packages.system,
        packages_setup: packages_setup.as_ref(),
        claude: &claude,
        scripts: &scripts,
        claude_state: &guest(script::CLAUDE_STATE_FILE),
    });
    files.push(provision_file(text));

    // Only the setup mounts: Lima's default template would share the whole home directory,
    // and the scripts travel on stdin, so nothing of claude-vm's stays mounted.
    let lima_mounts = to_lima(&build_mounts);
    let provisioned = !shared || !scripts.is_empty() || !links.is_empty() || i.login;
    let boot = match &i.base {
        None => Boot::Create {
            create: create_call(i.config, &i.build, &lima_mounts),
            start: lima::start(&i.build),
        },
        Some(base) => Boot::Clone(lima::clone(&CloneSpec {
            source: &base.name,
            name: &i.build,
            start: provisioned,
            resources: resources(i.config),
            mounts: &lima_mounts,
            extra: &[],
        })),
    };
    let aside = (i.build != i.template.as_str()).then(|| i.template.instance(Role::Old));
    let swap = match &aside {
        None => Vec::new(),
        Some(aside) => swap_calls(i.template.as_str(), &i.build, aside),
    };
    Ok(SetupPlan {
        login: i.login.then(|| login_call(&i.build)),
        template: i.template.clone(),
        provision: provision_call(&i.build),
        stop: lima::stop(&i.build),
        cleanup: lima::delete(std::slice::from_ref(&i.build)),
        mounted_dirs: build_mounts.iter().map(|m| m.location.clone()).collect(),
        build: i.build,
        files,
        boot,
        aside,
        swap,
        base: i.base,
        provisioned,
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
        plan_on(build, c, t, None)
    }

    fn plan_on(build: String, c: &Config, t: &TemplateName, base: Option<BasePlan>) -> SetupPlan {
        plan_setup(SetupInputs {
            base,
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
        let a = &p.boot.maker().args;
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
    fn with_a_base_the_template_is_a_clone_with_only_its_scripts() {
        let t = template();
        let mut c = Config::default();
        c.tools.insert("rust".into(), true);
        c.packages.system = vec!["jq".into()];
        let base = plan_base(&c, &[], "claude-vm_base-0123456789ab".into());
        let verbs: Vec<Verb> = base.calls().iter().map(|c| c.verb).collect();
        assert_eq!(verbs, [Verb::Create, Verb::Start, Verb::Shell, Verb::Stop]);
        let set = base.create.args.iter().position(|x| x == "--set").unwrap();
        assert_eq!(
            base.create.args[set + 1],
            ".mounts = []",
            "a base mounts nothing"
        );
        let names: Vec<&str> = base.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["claude-state.py", "provision.sh"]);
        let text = |files: &[HandoverFile]| match &files.last().unwrap().source {
            FileSource::Text(t) => t.clone(),
            FileSource::Copy(_) => panic!("provision.sh is text"),
        };
        let base_script = text(&base.files);
        assert!(base_script.contains("apt-get install"), "{base_script}");
        assert!(base_script.contains("jq") && base_script.contains("setting up rust"));
        assert!(
            !base_script.contains("running setup script"),
            "{base_script}"
        );
        assert_eq!(base.tools, ["rust"]);

        let p = plan_on(t.as_str().to_owned(), &c, &t, Some(base));
        let verbs: Vec<Verb> = p.calls().iter().map(|c| c.verb).collect();
        assert_eq!(verbs, [Verb::Clone, Verb::Shell, Verb::Stop]);
        let clone = &p.boot.maker().args;
        assert_eq!(
            &clone[clone.len() - 2..],
            ["claude-vm_base-0123456789ab", t.as_str()]
        );
        assert!(clone.contains(&"--start".to_owned()));
        let names: Vec<&str> = p.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["setup-1.sh", "provision.sh"]);
        let project = text(&p.files);
        assert!(!project.contains("apt-get"), "{project}");
        assert!(!project.contains("install.sh"), "{project}");
        assert!(project.contains("cvm_step 1 1 'running setup script ~/.claude-vm.setup.sh'"));
    }

    #[test]
    fn with_nothing_of_its_own_to_run_the_template_is_only_cloned() {
        let t = template();
        let c = Config::default();
        let base = plan_base(&c, &[], "claude-vm_base-0123456789ab".into());
        let p = plan_setup(SetupInputs {
            base: Some(base),
            template: &t,
            build: t.as_str().to_owned(),
            config: &c,
            agent_writable: Vec::new(),
            scripts: Vec::new(),
            login: false,
        })
        .unwrap();
        assert!(!p.provisioned);
        let verbs: Vec<Verb> = p.calls().iter().map(|c| c.verb).collect();
        assert_eq!(verbs, [Verb::Clone]);
        assert!(!p.boot.maker().args.contains(&"--start".to_owned()));
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
