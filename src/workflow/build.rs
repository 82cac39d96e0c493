//! Building a template: the flags remembered with it, its plan and fingerprint, staleness,
//! and the build itself (the old template serves sessions until the new one is swapped in).

use super::Context;
use crate::config::{Config, Loaded, Overrides};
use crate::error::{Error, Result};
use crate::fingerprint::{self, Fingerprint};
use crate::lima::Instance;
use crate::lock::{self, Mode};
use crate::manifest::{self, BaseRecord, BaseRef};
use crate::names::{self, Ours, Role, TemplateName};
use crate::plan::{self, plan_setup, BasePlan, HostCopy, HostScript, SetupInputs, SetupPlan};
use crate::signals;
use crate::template::{self, Manifest, SetupFlags};
use crate::trust;

/// The flags a setup builds with: those given now over those remembered with the template
/// (lists add up), less the tools named by `--without`.
pub fn remember(remembered: &SetupFlags, given: &SetupFlags, without: &[String]) -> SetupFlags {
    fn union<T: Clone + PartialEq>(a: &[T], b: &[T]) -> Vec<T> {
        let mut out = a.to_vec();
        for x in b {
            if !out.contains(x) {
                out.push(x.clone());
            }
        }
        out
    }
    let mut tools = union(&remembered.tools, &given.tools);
    tools.retain(|t| !without.contains(t));
    SetupFlags {
        disk: given.disk.or(remembered.disk),
        memory: given.memory.or(remembered.memory),
        cpus: given.cpus.or(remembered.cpus),
        setup_scripts: union(&remembered.setup_scripts, &given.setup_scripts),
        setup_mounts: union(&remembered.setup_mounts, &given.setup_mounts),
        tools,
    }
}

/// Setup flags as they would be typed: `--cpus 2 --gpg --setup-script /x.sh`.
pub fn describe_flags(f: &SetupFlags) -> String {
    let mut out: Vec<String> = Vec::new();
    for (flag, v) in [
        ("--disk", f.disk),
        ("--memory", f.memory),
        ("--cpus", f.cpus),
    ] {
        if let Some(v) = v {
            out.push(format!("{flag} {v}"));
        }
    }
    out.extend(f.tools.iter().map(|t| format!("--{t}")));
    for s in &f.setup_scripts {
        out.push(format!(
            "--setup-script {}",
            crate::ui::escape(&s.display().to_string())
        ));
    }
    for m in &f.setup_mounts {
        out.push(format!("--mount {}", crate::ui::escape(m)));
    }
    out.join(" ")
}

/// How `build_template` builds.
pub struct Build<'a> {
    /// The flags `claude-vm setup` was given, recorded with the template.
    pub flags: &'a SetupFlags,
    pub when: When,
    /// Use unapproved project files this once.
    pub yes: bool,
    /// Log in to Claude Code in the template before it is stopped.
    pub login: bool,
    /// Build the shared base again even if it exists (`setup --rebuild --base`).
    pub fresh_base: bool,
}

/// The configuration overrides of recorded setup flags.
pub fn overrides(flags: &SetupFlags) -> Overrides {
    Overrides {
        disk: flags.disk,
        memory: flags.memory,
        cpus: flags.cpus,
        setup_scripts: flags.setup_scripts.clone(),
        setup_mounts: flags.setup_mounts.clone(),
        tools: flags.tools.clone(),
        ..Overrides::default()
    }
}

/// When `build_template` builds, decided once it holds the setup lock (another process may
/// have built the template while we waited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Always,
    /// Only if there is no complete template.
    IfMissing,
    /// Only if there is none or it was built from something else.
    IfStale,
}

/// The plan for building `template` under the instance name `build`: cloned from the shared
/// base `config` asks for, unless `[vm] shared_base = false`.
fn plan_for(
    ctx: &Context,
    config: &Config,
    template: &TemplateName,
    build: String,
    login: bool,
) -> Result<SetupPlan> {
    let base = if config.vm.shared_base {
        Some(base_plan(ctx, config)?)
    } else {
        None
    };
    plan_setup(SetupInputs {
        base,
        template,
        build,
        config,
        scripts: setup_scripts(ctx, config)?,
        agent_writable: ctx.agent_writable(config),
        login,
    })
    .map_err(Error::from)
}

/// The shared base `config` asks for, named by its fingerprint (which a name does not change).
pub fn base_plan(ctx: &Context, config: &Config) -> Result<BasePlan> {
    let writable = ctx.agent_writable(config);
    let draft = plan::plan_base(config, &writable, names::base_name(""));
    let digest = fingerprint::of_base(&draft, env!("CARGO_PKG_VERSION"))?.digest;
    Ok(plan::plan_base(
        config,
        &writable,
        names::base_name(&digest),
    ))
}

/// The fingerprint a template built from `config` now would have.
pub fn current_fingerprint(
    ctx: &Context,
    config: &Config,
    template: &TemplateName,
) -> Result<Fingerprint> {
    let plan = plan_for(ctx, config, template, template.to_string(), false)?;
    fingerprint::of_setup(&plan, env!("CARGO_PKG_VERSION"))
}

/// The setup flags a template was built with, minus scripts and mounts that are gone (the
/// template then counts as out of date, which it is).
pub(crate) fn recorded_flags(ctx: &Context, flags: &SetupFlags) -> SetupFlags {
    SetupFlags {
        setup_scripts: flags
            .setup_scripts
            .iter()
            .filter(|p| p.is_file())
            .cloned()
            .collect(),
        setup_mounts: flags
            .setup_mounts
            .iter()
            .filter(|m| crate::config::mounts::parse_spec(m, &ctx.paths.home).is_ok())
            .cloned()
            .collect(),
        ..flags.clone()
    }
}

/// Why `manifest`'s template is out of date (empty: it is not), with the setup flags and
/// configuration a rebuild would use (what `claude-vm setup` with the recorded flags would
/// build from).
pub fn staleness(
    ctx: &Context,
    template: &TemplateName,
    manifest: &Manifest,
) -> Result<(SetupFlags, Loaded, Vec<String>)> {
    let flags = recorded_flags(ctx, &manifest.setup_flags);
    let setup_config = ctx.load_config(&overrides(&flags))?;
    let current = current_fingerprint(ctx, &setup_config.config, template)?;
    let reasons = match &manifest.fingerprint {
        Some(built) if built.digest == current.digest => Vec::new(),
        Some(built) => fingerprint::changes(built, &current),
        None => vec!["it was built by a claude-vm that did not record what built it".to_owned()],
    };
    Ok((flags, setup_config, reasons))
}

/// Builds `template` from `config`. An existing template keeps serving sessions until the
/// new one is complete. One setup per project at a time: a second one waits.
/// The template's setup lock, for a change to the template (a build, an import) or a read
/// that no rebuild may cross (an export): waits with a line while another claude-vm holds
/// it, then settles a swap that a killed setup left half done (it decides which template
/// exists, and which manifest describes it). `what` follows the pid in the lock's note.
pub(crate) fn hold_template(
    ctx: &Context,
    template: &TemplateName,
    what: &str,
) -> Result<lock::Lock> {
    let mut held = lock::acquire(
        &lock::setup_lock(&ctx.paths, template.as_str()),
        Mode::Exclusive,
        |holder| {
            ctx.ui.info(&format!(
                "another claude-vm is building the template of {} ({}); waiting for it",
                ctx.project.identity().display(),
                if holder.is_empty() {
                    "pid unknown"
                } else {
                    holder
                }
            ))
        },
    )?;
    held.announce(&format!("pid {}{what}", std::process::id()));
    crate::swap::recover_locked(&ctx.lima, &ctx.ui, &ctx.paths, template.as_str())?;
    Ok(held)
}

pub fn build_template(
    ctx: &Context,
    config: &Config,
    template: &TemplateName,
    b: &Build,
) -> Result<()> {
    ctx.enforce_reviews(&setup_script_review(ctx), b.yes)?;

    if ctx.dry_run {
        let exists = template::read_manifest(&ctx.paths, template.as_str())?.is_some();
        let build = if exists {
            template.instance(Role::Build)
        } else {
            template.to_string()
        };
        let plan = plan_for(ctx, config, template, build, b.login)?;
        let title = format!(
            "setup of template {template} for {}",
            ctx.project.identity().display()
        );
        let heading = format!(
            "sent on the provisioning shell's stdin, unpacked in {}",
            crate::script::BUNDLE_DIR
        );
        if let Some(base) = &plan.base {
            if manifest::read_base(&ctx.paths, &base.name)?.is_some() && !b.fresh_base {
                crate::outln!(
                    "the shared base {} exists: the template is cloned from it\n",
                    base.name
                );
            } else {
                let title = format!(
                    "build of the shared base {} (first: it is missing)",
                    base.name
                );
                crate::outln!(
                    "{}",
                    plan::render(&title, &base.calls(), &base.files, &heading)
                );
            }
        }
        crate::out!(
            "{}",
            plan::render(&title, &plan.calls(), &plan.files, &heading)
        );
        let tools: Vec<&str> = plan::template_tools(config)
            .into_iter()
            .map(|t| t.name.as_str())
            .collect();
        for line in crate::network::describe_setup(config, &tools) {
            crate::outln!("{line}");
        }
        return Ok(());
    }

    signals::install();
    let _setup_lock = hold_template(ctx, template, "")?;
    let fingerprint = current_fingerprint(ctx, config, template)?;
    let existing = template::read_manifest(&ctx.paths, template.as_str())?;
    let done = match (b.when, &existing) {
        (When::IfMissing, Some(_)) => true,
        (When::IfStale, Some(m)) => m.fingerprint.as_ref() == Some(&fingerprint),
        _ => false,
    };
    if done {
        ctx.ui.info(&format!(
            "template {template} was just built by another claude-vm"
        ));
        return Ok(());
    }

    let instances = ctx.lima.list()?;
    let exists = instances.iter().any(|i| i.name == template.as_str());
    // Builds that a killed setup left behind are useless (we hold the setup lock, so no
    // other build of this template is running): remove them first.
    let leftovers: Vec<String> = instances
        .iter()
        .filter(|i| matches!(names::parse(&i.name), Some(Ours::Clone { template: t, role: Role::Build, .. }) if &t == template))
        .map(|i| i.name.clone())
        .collect();
    let leftovers = crate::owner::deletable(&ctx.paths, &|m| ctx.ui.warn(m), &leftovers, &[]);
    if !leftovers.is_empty() {
        let step = ctx.ui.step(format!(
            "removing unfinished builds: {}",
            leftovers.join(", ")
        ));
        ctx.lima
            .run_shielded(&crate::lima::delete(&leftovers), None)?;
        step.done();
    }

    let build = if exists {
        template.instance(Role::Build)
    } else {
        template.to_string()
    };
    let mut plan = plan_for(ctx, config, template, build, b.login)?;
    ctx.ui.info(&format!(
        "{} template {template} for {}",
        if exists { "rebuilding" } else { "building" },
        ctx.project.identity().display()
    ));
    let base_lock = match &plan.base {
        Some(base) => Some(ensure_base(ctx, config, base, &instances, b.fresh_base)?),
        None => None,
    };
    let log = ctx.paths.template_log(template.as_str(), "setup");
    // The build behind the proxy (issue 12): its per-build wrapper joins the bundle after
    // the fingerprint was taken, so the token never enters it.
    let tools: Vec<&str> = plan::template_tools(config)
        .into_iter()
        .map(|t| t.name.as_str())
        .collect();
    let network = crate::network::start_setup(
        &ctx.paths,
        config,
        &tools,
        template.as_str(),
        &mut plan.files,
    )?;
    let mut manifest = Manifest::new(
        template,
        ctx.project.identity(),
        config,
        Some(fingerprint),
        b.flags.clone(),
    );
    if let Some(base) = &plan.base {
        manifest.base = Some(BaseRef {
            name: base.name.clone(),
            digest: fingerprint::of_base(base, env!("CARGO_PKG_VERSION"))?.digest,
        });
    }
    // The warm pool rests while the template changes: its clones would be of the old one.
    let pool = crate::pool::Pool::new(&ctx.paths, template.as_str());
    let paused = super::pool::pause(ctx, &pool, template)?;
    let login = template::build(
        &ctx.lima, &ctx.ui, &ctx.paths, &plan, &log, &manifest, base_lock,
    );
    if let Some(network) = network {
        network.finish(&ctx.ui);
    }
    let login = login?;
    // Pre-booted clones of the old template must not outlive it.
    let fingerprint = manifest.fingerprint_digest();
    super::pool::drain(ctx, &pool, template, |r| r.fingerprint != fingerprint)?;
    drop(paused);
    super::pool::ensure_keeper(ctx, config, template.as_str());
    if let Some(code) = login.filter(|c| *c != 0) {
        return Err(Error::failure(format!(
            "template {template} is ready, but the login did not complete (exit status {code})"
        ))
        .with_hint("run `claude-vm login` to try again"));
    }
    let claude = match &plan.base {
        Some(base) => manifest::read_base(&ctx.paths, &base.name)
            .ok()
            .flatten()
            .and_then(|r| r.claude_code),
        None => std::fs::read_to_string(&log)
            .ok()
            .and_then(|text| template::installed_claude(&text)),
    };
    let with = claude
        .map(|v| format!(" with Claude Code {v}"))
        .unwrap_or_default();
    ctx.ui.info(&format!(
        "template {template} is ready{with}: run `claude-vm \"your prompt\"` or `claude-vm shell`"
    ));
    Ok(())
}

/// Makes sure the shared base `base` exists, complete, and returns its lock, held until the
/// template is cloned from it: shared when it exists (several projects clone it at once),
/// exclusive while it is built (a second project needing it waits, then clones it). One
/// `limactl list` (the caller's) decides; a base whose record exists was finished.
fn ensure_base(
    ctx: &Context,
    config: &Config,
    base: &BasePlan,
    instances: &[Instance],
    fresh: bool,
) -> Result<lock::Lock> {
    let path = lock::setup_lock(&ctx.paths, &base.name);
    let waiting = |holder: &str| {
        ctx.ui.info(&format!(
            "another claude-vm is building the shared base {} ({}); waiting for it",
            base.name,
            if holder.is_empty() {
                "pid unknown"
            } else {
                holder
            }
        ))
    };
    let listed = instances.iter().any(|i| i.name == base.name);
    let recorded = manifest::read_base(&ctx.paths, &base.name)?.is_some();
    if listed && recorded && !fresh {
        let held = lock::acquire(&path, Mode::Shared, waiting)?;
        // A gc or `--rebuild --base` may have removed it meanwhile; a rebuilt one is recorded.
        if manifest::read_base(&ctx.paths, &base.name)?.is_some() {
            ctx.ui
                .info(&format!("cloning the shared base {}", base.name));
            return Ok(held);
        }
    }
    let mut held = lock::acquire(&path, Mode::Exclusive, waiting)?;
    held.announce(&format!("pid {}", std::process::id()));
    let now = manifest::read_base(&ctx.paths, &base.name)?.is_some();
    // Recorded now but not at our list: another claude-vm built it while we waited.
    if !fresh && now && (listed || !recorded) {
        ctx.ui
            .info(&format!("cloning the shared base {}", base.name));
        return Ok(held);
    }
    // What is left (a base built again, an unfinished one, a stale record) goes first.
    manifest::remove_base(&ctx.paths, &base.name)?;
    if listed {
        let doomed = crate::owner::deletable(
            &ctx.paths,
            &|m| ctx.ui.warn(m),
            std::slice::from_ref(&base.name),
            &[],
        );
        if doomed.is_empty() {
            return Err(Error::failure(format!(
                "the shared base {} exists but was not made by this claude-vm's data directory",
                base.name
            ))
            .with_hint(format!(
                "remove it with `claude-vm gc --force {}` or `limactl delete {}`, or set `[vm] shared_base = false`",
                base.name, base.name
            )));
        }
        let step = ctx
            .ui
            .step(format!("removing the old shared base {}", base.name));
        ctx.lima.run_shielded(&crate::lima::delete(&doomed), None)?;
        step.done();
    }
    ctx.ui.info(&format!(
        "building the shared base {} (packages, tools, Claude Code; reused by every project that asks for the same)",
        base.name
    ));
    let record = BaseRecord {
        name: base.name.clone(),
        fingerprint: fingerprint::of_base(base, env!("CARGO_PKG_VERSION"))?,
        created: crate::clock::now(),
        claude_vm_version: env!("CARGO_PKG_VERSION").to_owned(),
        image: config.vm.image.clone(),
        tools: base.tools.clone(),
        claude_code: None,
    };
    let log = ctx.paths.template_log(&base.name, "setup");
    // The base is built behind the proxy too, under setup's list for its tools; the wrapper
    // goes into a copy of its files, after its fingerprint was taken.
    let mut base = base.clone();
    let tools: Vec<&str> = base.tools.iter().map(String::as_str).collect();
    let network =
        crate::network::start_setup(&ctx.paths, config, &tools, &base.name, &mut base.files)?;
    let built = template::build_base(
        &ctx.lima,
        &ctx.ui,
        &ctx.paths,
        &base,
        &log,
        ctx.project.identity(),
        &record,
    );
    if let Some(network) = network {
        network.finish(&ctx.ui);
    }
    built?;
    Ok(held)
}

/// `./.claude-vm.setup.sh` when it is a link out of the project.
pub fn setup_script_review(ctx: &Context) -> Vec<trust::Review> {
    trust::project_script(&ctx.project.setup_script(), &ctx.project)
        .into_iter()
        .collect()
}

/// Waits for a setup of this project that is running right now, if any.
pub fn wait_for_running_setup(ctx: &Context, template: &TemplateName) -> Result<()> {
    let path = lock::setup_lock(&ctx.paths, template.as_str());
    if lock::try_acquire(&path, Mode::Shared)?.is_some() {
        return Ok(());
    }
    let _signals = signals::Scope::enter();
    let _done = lock::acquire(&path, Mode::Shared, |holder| {
        ctx.ui.info(&format!(
            "the template of {} is being built ({}); waiting for it",
            ctx.project.identity().display(),
            if holder.is_empty() {
                "pid unknown"
            } else {
                holder
            }
        ))
    })?;
    Ok(())
}

/// `~/.claude-vm.setup.sh`, `./.claude-vm.setup.sh`, `[setup] scripts`, `--setup-script`:
/// in that order, each once.
fn setup_scripts(ctx: &Context, config: &Config) -> Result<Vec<HostScript>> {
    let writable = ctx.agent_writable(config);
    let mut out: Vec<HostScript> = Vec::new();
    let mut add = |label: String, source: HostCopy| {
        if !out.iter().any(|s| s.path() == source.path) {
            out.push(HostScript { label, source });
        }
    };
    let global = ctx.paths.global_setup_script();
    if global.is_file() {
        let path = std::fs::canonicalize(&global).unwrap_or(global);
        add("~/.claude-vm.setup.sh".into(), HostCopy::plain(path));
    }
    let project = ctx.project.setup_script();
    if crate::project::script_present(&project)? {
        // The path in the project, not where it leads now: the copy checks that again.
        let source = HostCopy {
            approved: ctx.checked_digest(&project),
            path: project,
            confined_to: writable.clone(),
        };
        add("./.claude-vm.setup.sh".into(), source);
    }
    for p in &config.setup.scripts {
        let source = HostCopy {
            path: p.clone(),
            confined_to: writable.clone(),
            approved: None,
        };
        add(
            plan::script_label(p, &ctx.project.root, &ctx.paths.home),
            source,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{describe_flags, remember};
    use crate::template::installed_claude;
    use crate::template::SetupFlags;

    #[test]
    fn flags_given_now_add_to_the_remembered_ones_and_without_drops_a_tool() {
        let remembered = SetupFlags {
            cpus: Some(2),
            disk: Some(40),
            tools: vec!["gpg".into(), "node".into()],
            setup_scripts: vec!["/a.sh".into()],
            ..SetupFlags::default()
        };
        let given = SetupFlags {
            cpus: Some(3),
            tools: vec!["rust".into(), "node".into()],
            setup_scripts: vec!["/b.sh".into(), "/a.sh".into()],
            ..SetupFlags::default()
        };
        let f = remember(&remembered, &given, &["gpg".to_owned()]);
        assert_eq!(f.cpus, Some(3), "given now wins");
        assert_eq!(f.disk, Some(40), "remembered stays");
        assert_eq!(f.memory, None);
        assert_eq!(f.tools, ["node", "rust"]);
        assert_eq!(
            f.setup_scripts,
            [std::path::PathBuf::from("/a.sh"), "/b.sh".into()]
        );
        assert_eq!(
            describe_flags(&f),
            "--disk 40 --cpus 3 --node --rust --setup-script /a.sh --setup-script /b.sh"
        );
        let plain = remember(&remembered, &SetupFlags::default(), &[]);
        assert_eq!(plain, remembered, "a plain setup rebuilds the same way");
        assert_eq!(describe_flags(&SetupFlags::default()), "");
    }

    #[test]
    fn the_installed_version_is_read_from_the_build_output_and_kept_clean() {
        let out = "==> [2/3] installing Claude Code\nClaude Code is already installed: /x\nClaude Code 2.1.332\n==> template ready\n";
        assert_eq!(installed_claude(out).as_deref(), Some("2.1.332"));
        assert_eq!(
            installed_claude("Claude Code 2.0.1\x1b[2K\x1b[1Aevil\n").as_deref(),
            Some("2.0.1")
        );
        assert_eq!(installed_claude("no version here\n"), None);
        assert_eq!(installed_claude("Claude Code \x1b]0;x\n"), None);
        assert_eq!(
            installed_claude("Claude Code is already installed: /x\n"),
            None
        );
    }
}
