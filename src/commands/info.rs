//! `claude-vm info`: what claude-vm knows about this project.

use super::{overrides, Context};
use crate::cli::SessionOpts;
use crate::error::Result;
use crate::template;

pub fn run(ctx: &Context, opts: &SessionOpts) -> Result<i32> {
    let loaded = ctx.load_config(&overrides(opts))?;
    let c = &loaded.config;
    let template = ctx.template()?;
    let manifest = template::read_manifest(&ctx.paths, template.as_str())?;
    let p = &ctx.project;
    println!("project:      {}", p.root.display());
    if let Some(main) = &p.main_root {
        println!("main repo:    {} (worktree)", main.display());
    }
    if !p.in_git {
        println!("              (not a git repository)");
    }
    println!("template:     {template}");
    match &manifest {
        Some(m) => {
            println!(
                "  built:      by claude-vm {} ({} GB disk, {} GB memory, {} CPUs, {})",
                m.claude_vm_version, m.disk, m.memory, m.cpus, m.image
            );
            let (_, _, reasons) = super::setup::staleness(ctx, &template, m)?;
            if reasons.is_empty() {
                println!("  up to date: yes");
            } else {
                println!(
                    "  up to date: no: {} (rebuild with `claude-vm setup` or --rebuild)",
                    reasons.join("; ")
                );
            }
        }
        None => println!("  built:      no (run `claude-vm setup`)"),
    }
    println!("lima home:    {}", ctx.paths.lima_home.display());
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
        println!("trust:        {}: {state}", r.path.display());
    }
    println!("config files: {}", loaded.files_display());
    println!(
        "vm:           {} GB disk, {} GB memory, {} CPUs, image {}",
        c.vm.disk, c.vm.memory, c.vm.cpus, c.vm.image
    );
    let tools = c.enabled_tools();
    println!(
        "tools:        {}",
        if tools.is_empty() {
            "none".into()
        } else {
            tools.join(", ")
        }
    );
    println!("mounts:       {} (writable)", p.root.display());
    if let Some(main) = &p.main_root {
        println!(
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
        println!(
            "              {} -> ~/.claude/projects/{folder} in the VM (writable, conversations)",
            host.display()
        );
    }
    for m in &c.mounts {
        println!(
            "              {} -> {} ({})",
            m.location.display(),
            m.guest_path(),
            if m.writable { "writable" } else { "read-only" }
        );
    }
    println!(
        "              a hand-over directory -> {} (read-only)",
        crate::script::HANDOVER_MOUNT
    );
    let pool = crate::pool::Pool::new(&ctx.paths, template.as_str());
    let wanted = super::warm::wanted_size(c, &pool);
    let ready = pool.ready().len();
    if wanted > 0 || ready > 0 {
        println!("pool:         {ready} pre-booted VM(s) ready of {wanted} wanted");
    } else {
        println!("pool:         none (`claude-vm warm N` or [pool] size keeps VMs booted)");
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
    println!("setup:        {}", list(&c.setup.scripts));
    println!("runtime:      {}", list(&c.runtime.scripts));
    let env = crate::plan::environment::session_env(c, &|name| std::env::var(name).ok());
    let mut label = "host urls:   ";
    for u in &env.host_urls {
        println!("{label} {}", u.describe());
        label = "             ";
    }
    let reports = crate::audit::record::of_project(&ctx.paths, &p.root);
    if reports.is_empty() {
        println!("audit:        no session changed files that run on your host");
    } else {
        println!(
            "audit:        {} session(s) changed files that run on your host; review:",
            reports.len()
        );
        for r in &reports {
            println!(
                "              {}",
                crate::ui::escape(&r.display().to_string())
            );
        }
    }
    Ok(0)
}
