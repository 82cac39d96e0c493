//! A session's basis and preparation: its configuration (approved), a template that exists
//! and is fresh enough (built, rebuilt or offered), its plan, and a pre-booted clone to claim.

use super::build::{self as setup, When};
use super::execute::Start;
use super::pool as warm;
use super::{overrides, Context};
use crate::audit;
use crate::cli::{ResourceOpts, SessionOpts};
use crate::config::{Config, Overrides};
use crate::error::{Error, Result};
use crate::integrations;
use crate::journal::{Entry, Journal};
use crate::lock::{self, Mode};
use crate::names::{Role, TemplateName};
use crate::plan::{
    self, environment, plan_session, GuestInputs, HostCopy, HostScript, SessionInputs, SessionPlan,
};
use crate::pool::{self, Pool};
use crate::project::claude_project_folder;
use crate::script::Final;
use crate::template::{self, Manifest, SetupFlags};
use crate::tools::{self, Integration};
use crate::trust;

/// A session: prepared, planned (a dry run hands its plan to `show` and stops there), on a
/// pre-booted clone when one fits, run, and deleted on every way out. Returns the exit code.
pub(crate) fn session(
    ctx: &Context,
    opts: &SessionOpts,
    last: impl FnOnce(&crate::config::Config) -> Final,
    show: impl FnOnce(&TemplateName, &SessionPlan),
) -> Result<i32> {
    let basis = prepare(ctx, opts, Purpose::Session)?;
    warn_small_disk(ctx, &basis);
    let last = last(&basis.config);
    if ctx.dry_run {
        let instance = basis.template.instance(Role::Run);
        let plan = plan_for(ctx, opts, &basis, instance, last)?;
        show(&basis.template, &plan);
        for line in crate::network::describe(&basis.config, &basis.manifest.tools) {
            crate::outln!("{line}");
        }
        return Ok(0);
    }
    let pool = Pool::new(&ctx.paths, basis.template.as_str());
    let guest = guest_inputs(ctx, opts, &basis.config, &basis.manifest);
    let cold = basis.template.instance(Role::Run);
    let cold_plan = plan_with(ctx, opts, &basis, cold, last.clone(), guest.clone())?;
    let (instance, start) = match take_warm(ctx, &pool, &basis, &cold_plan)? {
        Some(instance) => (instance, Start::Warm),
        None => (cold_plan.instance.clone(), Start::Cold),
    };
    // Keep the pool topped up while this session runs; never waits.
    warm::ensure_keeper(ctx, &basis.config, basis.template.as_str());
    // The proxy serves this session from before the clone boots until after the delete.
    let mut guest = guest;
    let network = start_network(ctx, &basis, &instance, &mut guest)?;
    let plan = plan_with(ctx, opts, &basis, instance, last, guest)?;
    let guard = super::execute::Safeguards {
        journal: Journal::new(&ctx.paths),
        entry: Entry {
            policy: Some(network.policy().as_str().to_owned()),
            ..Entry::owned_here(
                &plan.instance,
                Role::Run,
                basis.template.as_str(),
                ctx.project.identity(),
            )
        },
        template_lock: lock::template_lock(&ctx.paths, basis.template.as_str()),
        audit: audit::Watch::new(&ctx.project, &ctx.paths.home),
        paths: ctx.paths.clone(),
        policy: network.policy().as_str(),
    };
    let result = super::execute::run(&ctx.lima, &ctx.ui, &ctx.paths, &plan, &guard, start);
    network.finish(&ctx.ui);
    pool.forget(&plan.instance);
    result
}

/// Starts the session's proxy and points the guest at it (`crate::network`).
fn start_network(
    ctx: &Context,
    basis: &Basis,
    instance: &str,
    guest: &mut GuestInputs,
) -> Result<crate::network::Running> {
    let config = &basis.config;
    // Docker's socket is root for whoever may use it: the agent either keeps the docker group
    // (root, so no rule would hold) or loses it (a docker tool that silently fails).
    if config.network.policy != crate::config::Policy::Open
        && basis.manifest.tools.iter().any(|t| t == "docker")
    {
        return Err(Error::usage(format!(
            "the template has the docker tool, and the `{}` network policy cannot hold for an agent that can use Docker (its socket gives root in the VM)",
            config.network.policy.as_str()
        ))
        .with_hint(
            "run with `--network open` (no in-VM rules; the proxy still logs), or rebuild without docker (`claude-vm setup --without docker`)",
        ));
    }
    let rules = crate::network::rules(config, &basis.manifest.tools)?;
    let running = crate::network::start(
        &ctx.paths,
        config.network.policy,
        rules,
        instance,
        &mut guest.env,
        &mut guest.host_urls,
    )?;
    // Before the agent starts: the guest's rules in, the user's root gone (script::enforce).
    guest.enforcement = running.enforcement(false);
    Ok(running)
}

/// What every session of the project starts from: its configuration (approved), and a
/// template that exists and is fresh enough to use.
pub struct Basis {
    pub config: Config,
    pub template: TemplateName,
    pub manifest: Manifest,
}

/// Who prepares: a session may build or rebuild the template; the warm pool only ever uses
/// the template as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Session,
    Pool,
}

pub fn prepare(ctx: &Context, opts: &SessionOpts, purpose: Purpose) -> Result<Basis> {
    if !opts.allow_any_dir {
        refuse_non_project(ctx, purpose)?;
    }
    let loaded = ctx.load_config(&overrides(opts))?;
    let runtime_script: Vec<trust::Review> =
        trust::project_script(&ctx.project.runtime_script(), &ctx.project)
            .into_iter()
            .collect();
    ctx.enforce_trust(&loaded, &runtime_script, opts.yes)?;
    let config = loaded.config;
    let template = ctx.template()?;
    ctx.prepare_lima()?;
    let manifest = match read_manifest(ctx, &template)? {
        Some(m) if purpose == Purpose::Pool => m,
        None if purpose == Purpose::Pool => {
            return Err(Error::usage(format!(
                "there is no template VM for {} yet",
                ctx.project.identity().display()
            ))
            .with_hint("build it first with `claude-vm setup`"));
        }
        Some(m) => freshen(ctx, opts, &template, m)?,
        None if ctx.dry_run => {
            ctx.ui.warn(&format!(
                "no template VM yet for {}; showing the plan as if `claude-vm setup` had run",
                ctx.project.identity().display()
            ));
            Manifest::new(
                &template,
                ctx.project.identity(),
                &config,
                None,
                SetupFlags::default(),
            )
        }
        None => offer_setup(ctx, opts, &template)?,
    };
    let mut config = config;
    remembered_resources(&mut config, &manifest.setup_flags, &opts.resources);
    Ok(Basis {
        config,
        template,
        manifest,
    })
}

/// The resources `claude-vm setup` was given (`--cpus 2`) are the template's: its sessions
/// use them too, over the configuration files, unless the session's own flags say otherwise.
pub fn remembered_resources(config: &mut Config, setup: &SetupFlags, session: &ResourceOpts) {
    let vm = &mut config.vm;
    for (value, remembered, asked) in [
        (&mut vm.cpus, setup.cpus, session.cpus),
        (&mut vm.memory, setup.memory, session.memory),
        (&mut vm.disk, setup.disk, session.disk),
    ] {
        if let (Some(r), None) = (remembered, asked) {
            *value = r;
        }
    }
}

/// A clone's disk can grow, never shrink: a smaller size is not applied, and says so.
fn warn_small_disk(ctx: &Context, basis: &Basis) {
    let (asked, has) = (basis.config.vm.disk, basis.manifest.disk);
    if asked < has {
        ctx.ui.warn(&format!(
            "a disk of {asked} GB is smaller than the template's {has} GB, and a clone's disk cannot shrink: this session gets {has} GB"
        ));
    }
}

/// A session mounts its project writable: never the home directory, `/` or a system
/// directory by accident.
fn refuse_non_project(ctx: &Context, purpose: Purpose) -> Result<()> {
    let p = &ctx.project;
    for dir in std::iter::once(&p.root).chain(&p.main_root) {
        if let Some(why) = crate::workdir::not_a_project(dir, &ctx.paths.home) {
            let go = "cd into a project (a git repository or a folder made for the agent, e.g. `mkdir ~/work && cd ~/work`) and run claude-vm there";
            let hint = match purpose {
                Purpose::Session => format!("{go};\nif you really mean to give the agent this whole directory, pass --allow-any-dir"),
                // The pool has no such flag: its clones would mount the directory unasked.
                Purpose::Pool => format!("{go}; the warm pool is not available for such a directory"),
            };
            return Err(Error::usage(format!(
                "refusing to start a session in {}: {why}, and a session mounts its project writable into the VM",
                dir.display()
            ))
            .with_hint(hint));
        }
    }
    Ok(())
}

/// The session's plan for `instance`: its mounts, hand-over files and limactl calls.
pub fn plan_for(
    ctx: &Context,
    opts: &SessionOpts,
    basis: &Basis,
    instance: String,
    last: Final,
) -> Result<SessionPlan> {
    let guest = guest_inputs(ctx, opts, &basis.config, &basis.manifest);
    plan_with(ctx, opts, basis, instance, last, guest)
}

fn plan_with(
    ctx: &Context,
    opts: &SessionOpts,
    basis: &Basis,
    instance: String,
    last: Final,
    guest: GuestInputs,
) -> Result<SessionPlan> {
    let config = &basis.config;
    let writable = ctx.agent_writable(config);
    let mut runtime_scripts: Vec<HostScript> = Vec::new();
    let project_script = ctx.project.runtime_script();
    if crate::project::script_present(&project_script)? {
        // The path in the project, not where it leads now: the copy checks that again.
        runtime_scripts.push(HostScript {
            label: "./.claude-vm.runtime.sh".into(),
            source: HostCopy {
                approved: ctx.checked_digest(&project_script),
                path: project_script,
                confined_to: writable.clone(),
            },
        });
    }
    for p in &config.runtime.scripts {
        if !runtime_scripts.iter().any(|s| s.path() == p) {
            let label = plan::script_label(p, &ctx.project.root, &ctx.paths.home);
            runtime_scripts.push(HostScript {
                label,
                source: HostCopy {
                    path: p.clone(),
                    confined_to: writable.clone(),
                    approved: None,
                },
            });
        }
    }

    let workdir = start_dir(ctx);
    let start = crate::error::utf8_path(&workdir, "the current directory")?;
    let conversations = if opts.no_conversations {
        None
    } else {
        // Claude Code keys conversations by the directory it runs in.
        match claude_project_folder(start) {
            Some(folder) => Some((
                ctx.paths.claude_dir().join("projects").join(&folder),
                folder,
            )),
            None => {
                ctx.ui.warn("the project path is too long to locate its Claude conversation folder; conversations are not shared");
                None
            }
        }
    };

    plan_session(SessionInputs {
        template: &basis.template,
        handover_dir: ctx.paths.handover_root().join(&instance),
        instance,
        project: &ctx.project,
        config,
        last,
        runtime_scripts,
        conversations,
        template_resources: basis.manifest.resources(),
        guest,
        workdir,
    })
    .map_err(Error::from)
}

/// Where the session starts: the user's directory when it is inside the project (or a
/// worktree's main repository, both mounted at their host paths), else the project root.
fn start_dir(ctx: &Context) -> std::path::PathBuf {
    let here = std::fs::canonicalize(&ctx.cwd).unwrap_or_else(|_| ctx.cwd.clone());
    let p = &ctx.project;
    let inside = std::iter::once(&p.root)
        .chain(&p.main_root)
        .any(|root| here.starts_with(root));
    if inside {
        here
    } else {
        p.root.clone()
    }
}

/// Takes a pre-booted clone that fits this session, if the pool has one. Says why not when
/// the project has a pool but none fits.
fn take_warm(
    ctx: &Context,
    pool: &Pool,
    basis: &Basis,
    cold: &SessionPlan,
) -> Result<Option<String>> {
    let ready = pool.ready();
    if ready.is_empty() {
        if warm::wanted_size(&basis.config, pool) > 0 {
            ctx.ui
                .info("no pre-booted VM is ready (the pool is refilling): starting one now");
        }
        return Ok(None);
    }
    let key = cold.pool_key();
    let fingerprint = basis.manifest.fingerprint_digest();
    let wanted = cold.pool_settings();
    let mut why = String::new();
    for r in ready {
        if r.fingerprint != fingerprint {
            why = "the pre-booted VMs were made from an older template".to_owned();
            continue;
        }
        if r.key != key {
            let differ = pool::differences(&r.settings, &wanted);
            why = if r.settings.is_empty() || differ.is_empty() {
                "the pre-booted VMs were made for other mounts or settings".to_owned()
            } else {
                format!(
                    "the pre-booted VMs were made with other settings ({} differ)",
                    differ.join(", ")
                )
            };
            continue;
        }
        if pool.claim(&r.instance)? {
            pool.touch()?;
            ctx.ui
                .info(&format!("using the pre-booted VM {}", r.instance));
            return Ok(Some(r.instance));
        }
    }
    if !why.is_empty() {
        ctx.ui
            .info(&format!("{why}: starting a VM for this session"));
    }
    Ok(None)
}

/// Environment, tools and agents for the guest, gathered from the host.
fn guest_inputs(
    ctx: &Context,
    opts: &SessionOpts,
    config: &Config,
    manifest: &Manifest,
) -> GuestInputs {
    let host = |name: &str| std::env::var(name).ok();
    for name in &opts.inherit_env {
        if host(name).is_none() {
            ctx.ui.warn(&format!(
                "--inherit-env {name}: {name} is not set here, so the VM does not get it"
            ));
        }
    }
    let tools = tools::resolve(&manifest.tools);
    let uses = |i: Integration| tools.iter().any(|t| t.integrations.contains(&i));
    let git = uses(Integration::GitIdentity).then(|| integrations::git_identity(&ctx.paths.home));
    let gpg = if uses(Integration::GpgAgent) && ctx.dry_run {
        // A dry run runs nothing on the host either: gpgconf is asked when a session starts.
        ctx.ui.info("the gpg tool is on: a session asks the host's gpgconf for the agent to forward (not asked in a dry run)");
        None
    } else if uses(Integration::GpgAgent) {
        match integrations::gpg_forward() {
            Ok(g) => Some(g),
            Err(why) => {
                ctx.ui.warn(&format!(
                    "the gpg tool is on, but the host's gpg-agent cannot be forwarded ({why}), so this session has no gpg: install GnuPG on the host and start its agent with `gpgconf --launch gpg-agent`, or drop the tool with `claude-vm setup --without gpg`"
                ));
                None
            }
        }
    } else {
        None
    };
    if config.ssh.forward_agent && host("SSH_AUTH_SOCK").is_none() {
        ctx.ui.warn("SSH agent forwarding is on, but SSH_AUTH_SOCK is not set: there is no agent to forward");
    }
    let env = environment::session_env(config, &host);
    GuestInputs {
        env: env.vars,
        host_urls: env.host_urls,
        tools,
        git,
        gpg,
        forward_agent: config.ssh.forward_agent,
        ports: config.ports.clone(),
        enforcement: None,
    }
}

/// The template's manifest, read under the template lock: never during a rebuild's swap.
fn read_manifest(ctx: &Context, template: &TemplateName) -> Result<Option<Manifest>> {
    if ctx.dry_run {
        return template::read_manifest(&ctx.paths, template.as_str());
    }
    let shared = lock::acquire(
        &lock::template_lock(&ctx.paths, template.as_str()),
        Mode::Shared,
        |_| {
            ctx.ui
                .info("waiting for a rebuild to put the new template in place")
        },
    )?;
    if crate::swap::pending(&ctx.paths, template.as_str()).is_some() {
        // The rebuild that held the lock died mid-swap: settle it, then read.
        drop(shared);
        crate::swap::recover_all(&ctx.lima, &ctx.ui, &ctx.paths)?;
        let _shared = lock::acquire(
            &lock::template_lock(&ctx.paths, template.as_str()),
            Mode::Shared,
            |_| {},
        )?;
        return template::read_manifest(&ctx.paths, template.as_str());
    }
    template::read_manifest(&ctx.paths, template.as_str())
}

/// Compares what built the template with what would build it now. Out of date: rebuild
/// first with --rebuild or `[vm] auto_rebuild`, otherwise say so and how to rebuild.
fn freshen(
    ctx: &Context,
    opts: &SessionOpts,
    template: &TemplateName,
    manifest: Manifest,
) -> Result<Manifest> {
    let (flags, setup_config, reasons) = setup::staleness(ctx, template, &manifest)?;
    let auto = setup_config.config.vm.auto_rebuild && !reasons.is_empty();
    if !(opts.rebuild || auto) {
        if !reasons.is_empty() {
            ctx.ui.warn(&format!(
                "the template of {} is out of date: {}.\n  This session uses it as it is. Rebuild it with `claude-vm setup`, or run the session with --rebuild (`[vm] auto_rebuild = true` in .claude-vm.toml rebuilds automatically).",
                ctx.project.identity().display(),
                reasons.join("; ")
            ));
        }
        return Ok(manifest);
    }
    ctx.enforce_trust(&setup_config, &setup::setup_script_review(ctx), opts.yes)?;
    if !reasons.is_empty() {
        ctx.ui.info(&format!(
            "the template is out of date ({}); rebuilding it first",
            reasons.join("; ")
        ));
    }
    let when = if opts.rebuild {
        When::Always
    } else {
        When::IfStale
    };
    let build = setup::Build {
        flags: &flags,
        when,
        yes: opts.yes,
        login: false,
        fresh_base: false,
    };
    setup::build_template(ctx, &setup_config.config, template, &build)?;
    read_manifest(ctx, template)?.ok_or_else(|| {
        Error::failure("the template was rebuilt but its record is missing")
            .with_hint("run `claude-vm setup` again")
    })
}

/// No template yet: wait for a setup that is building it right now; otherwise build it when
/// asked to (`--auto-setup`) or when the user says so on a terminal; without a terminal, say
/// what to do instead of waiting for an answer.
fn offer_setup(ctx: &Context, opts: &SessionOpts, template: &TemplateName) -> Result<Manifest> {
    setup::wait_for_running_setup(ctx, template)?;
    if let Some(m) = read_manifest(ctx, template)? {
        return Ok(m);
    }
    let project = ctx.project.identity().display().to_string();
    let build = if opts.auto_setup {
        true
    } else {
        match ctx.ui.confirm(&format!("There is no template VM for {project} yet. Build it now (this takes a few minutes)?"), true) {
            Some(answer) => answer,
            None => {
                return Err(Error::usage(format!("there is no template VM for {project} yet"))
                    .with_hint("build it first with `claude-vm setup` (or pass --auto-setup to build it on the way)"));
            }
        }
    };
    if !build {
        return Err(Error::usage("no template VM, and none was built")
            .with_hint("run `claude-vm setup` when you are ready"));
    }
    // What `claude-vm setup` would build: session flags are for the clone, not the template.
    let setup_config = ctx.load_config(&Overrides::default())?;
    ctx.enforce_trust(&setup_config, &setup::setup_script_review(ctx), opts.yes)?;
    let flags = SetupFlags::default();
    let build = setup::Build {
        flags: &flags,
        when: When::IfMissing,
        yes: opts.yes,
        login: false,
        fresh_base: false,
    };
    setup::build_template(ctx, &setup_config.config, template, &build)?;
    read_manifest(ctx, template)?.ok_or_else(|| {
        Error::failure("the template was built but its record is missing")
            .with_hint("run `claude-vm setup` again")
    })
}
