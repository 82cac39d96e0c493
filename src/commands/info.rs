//! `claude-vm info`: what claude-vm knows about this project.

use super::{overrides, Context};
use crate::cli::SessionOpts;
use crate::error::Result;
use crate::template;

pub fn run(ctx: &Context, opts: &SessionOpts) -> Result<i32> {
    let mut loaded = ctx.load_config(&overrides(opts))?;
    let template = ctx.template()?;
    let manifest = template::read_manifest(&ctx.paths, template.as_str())?;
    if let Some(m) = &manifest {
        // What a session would use: the template's remembered resources, unless asked.
        crate::workflow::prepare::remembered_resources(
            &mut loaded.config,
            &m.setup_flags,
            &opts.resources,
        );
    }
    let c = &loaded.config;
    let p = &ctx.project;
    crate::outln!("project:      {}", p.root.display());
    if let Some(main) = &p.main_root {
        crate::outln!("main repo:    {} (worktree)", main.display());
    }
    if !p.in_git {
        crate::outln!("              (not a git repository)");
    }
    crate::outln!("template:     {template}");
    match &manifest {
        Some(m) => {
            crate::outln!(
                "  built:      by claude-vm {} ({} GB disk, {} GB memory, {} CPUs, {})",
                m.claude_vm_version,
                m.disk,
                m.memory,
                m.cpus,
                m.image
            );
            let flags = crate::workflow::build::describe_flags(&m.setup_flags);
            if !flags.is_empty() {
                crate::outln!(
                    "  flags:      {flags} (remembered: a plain `claude-vm setup` uses them again)"
                );
            }
            match &m.base {
                Some(b) => {
                    let others: Vec<String> =
                        template::users_of(&template::all_manifests(&ctx.paths), &b.name)
                            .iter()
                            .filter(|o| o.template != m.template)
                            .map(|o| o.project.display().to_string())
                            .collect();
                    let state = if template::read_base(&ctx.paths, &b.name)?.is_some() {
                        "kept"
                    } else {
                        "removed since; the next rebuild builds it again"
                    };
                    crate::outln!(
                        "  base:       cloned from the shared base {} ({state}; also used by {})",
                        b.name,
                        if others.is_empty() {
                            "no other project".to_owned()
                        } else {
                            others.join(", ")
                        }
                    );
                }
                None => crate::outln!("  base:       none (built in one layer, or imported)"),
            }
            let (_, _, reasons) = crate::workflow::build::staleness(ctx, &template, m)?;
            if reasons.is_empty() {
                crate::outln!("  up to date: yes");
            } else {
                crate::outln!(
                    "  up to date: no: {} (rebuild with `claude-vm setup` or --rebuild)",
                    reasons.join("; ")
                );
            }
        }
        None => crate::outln!("  built:      no (run `claude-vm setup`)"),
    }
    crate::outln!("lima home:    {}", ctx.paths.lima_home.display());
    let store = crate::trust::Store::new(&ctx.paths);
    for r in &loaded.reviews {
        let state = if r.widens.is_empty() {
            "does not widen the sandbox".to_owned()
        } else {
            match store.status(r) {
                crate::trust::Status::Approved => "widens the sandbox; approved".to_owned(),
                crate::trust::Status::Changed => {
                    "widens the sandbox; changed since approved (run `claude-vm trust`)".to_owned()
                }
                crate::trust::Status::Never => {
                    "widens the sandbox; not approved (run `claude-vm trust`)".to_owned()
                }
            }
        };
        crate::outln!("trust:        {}: {state}", r.path.display());
    }
    crate::outln!("config files: {}", loaded.files_display());
    crate::outln!(
        "vm:           {} GB disk, {} GB memory, {} CPUs, image {}",
        c.vm.disk,
        c.vm.memory,
        c.vm.cpus,
        c.vm.image
    );
    // A built template's tools are what sessions get; before a build, what setup would add.
    let (tools, whose) = match &manifest {
        Some(m) => (m.tools.clone(), " (in the template)"),
        None => (
            c.enabled_tools().into_iter().map(str::to_owned).collect(),
            "",
        ),
    };
    crate::outln!(
        "tools:        {}{whose}",
        if tools.is_empty() {
            "none".into()
        } else {
            tools.join(", ")
        }
    );
    crate::outln!("mounts:       {} (writable)", p.root.display());
    if let Some(main) = &p.main_root {
        crate::outln!(
            "              {} (writable, main repository)",
            main.display()
        );
    }
    if let Some(folder) = p
        .root
        .to_str()
        .and_then(crate::project::claude_project_folder)
    {
        let host = ctx.paths.claude_dir().join("projects").join(&folder);
        crate::outln!(
            "              {} -> ~/.claude/projects/{folder} in the VM (writable, conversations)",
            host.display()
        );
    }
    for m in &c.mounts {
        crate::outln!(
            "              {} -> {} ({})",
            m.location.display(),
            m.guest_path(),
            if m.writable { "writable" } else { "read-only" }
        );
    }
    crate::outln!(
        "              a hand-over directory -> {} (read-only)",
        crate::script::HANDOVER_MOUNT
    );
    let pool = crate::pool::Pool::new(&ctx.paths, template.as_str());
    let wanted = crate::workflow::pool::wanted_size(c, &pool);
    let ready = pool.ready().len();
    if wanted > 0 || ready > 0 {
        crate::outln!(
            "pool:         {} ready of {wanted} wanted",
            super::clean::count(ready, "pre-booted VM")
        );
    } else {
        crate::outln!("pool:         none (`claude-vm warm N` or [pool] size keeps VMs booted)");
    }
    let list = |v: &[std::path::PathBuf]| {
        if v.is_empty() {
            "none".into()
        } else {
            v.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let mut label = "network:     ";
    for line in crate::network::describe(c, &tools) {
        crate::outln!("{label} {}", line.trim_start_matches("network policy: "));
        label = "             ";
    }
    crate::outln!("setup:        {}", list(&c.setup.scripts));
    crate::outln!("runtime:      {}", list(&c.runtime.scripts));
    let env = crate::plan::environment::session_env(c, &|name| std::env::var(name).ok());
    let mut label = "host urls:   ";
    for u in &env.host_urls {
        crate::outln!("{label} {}", u.describe());
        label = "             ";
    }
    let reports = crate::audit::record::of_project(&ctx.paths, &p.root);
    if reports.is_empty() {
        crate::outln!("audit:        no session changed files that run on your host");
    } else {
        crate::outln!(
            "audit:        {} changed files that run on your host; review:",
            super::clean::count(reports.len(), "session")
        );
        for r in &reports {
            crate::outln!(
                "              {}",
                crate::ui::escape(&r.display().to_string())
            );
        }
    }
    Ok(0)
}
