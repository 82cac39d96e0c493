//! `claude-vm list [--json]`: templates and live sessions, apart.

use serde::Serialize;

use super::Context;
use crate::error::{Error, Result};
use crate::names::{self, Ours, Role};
use crate::reap::Census;
use crate::template;

#[derive(Debug, Serialize)]
struct TemplateRow {
    name: String,
    /// Lima's status, or "missing" when only claude-vm's record is left.
    status: String,
    project: Option<String>,
    /// A manifest exists: sessions can use it.
    complete: bool,
    built_at: Option<u64>,
    claude_vm_version: Option<String>,
}

#[derive(Debug, Serialize)]
struct SessionRow {
    name: String,
    template: String,
    /// run, build or warm.
    role: Role,
    status: String,
    project: Option<String>,
    /// The claude-vm process that owns it; none when no live process does.
    owner_pid: Option<u32>,
    started_at: Option<u64>,
    /// The network policy a session runs under; none for pool and build VMs.
    policy: Option<String>,
}

/// A shared base and the projects whose templates were cloned from it.
#[derive(Debug, Serialize)]
struct BaseRow {
    name: String,
    /// Lima's status, or "missing" when only the record is left.
    status: String,
    /// Its record exists: templates can be cloned from it.
    complete: bool,
    tools: Vec<String>,
    created: Option<u64>,
    used_by: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Listing {
    templates: Vec<TemplateRow>,
    sessions: Vec<SessionRow>,
    bases: Vec<BaseRow>,
}

pub fn run(ctx: &Context, json: bool) -> Result<i32> {
    ctx.prepare_lima()?;
    let listing = gather(ctx)?;
    if json {
        let text = serde_json::to_string_pretty(&listing)
            .map_err(|e| Error::failure(format!("cannot encode the list: {e}")))?;
        crate::outln!("{text}");
        return Ok(0);
    }
    if listing.templates.is_empty() && listing.sessions.is_empty() && listing.bases.is_empty() {
        crate::outln!("no claude-vm templates or sessions (build one with `claude-vm setup`)");
        return Ok(0);
    }
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let templates: Vec<Vec<String>> = listing
        .templates
        .iter()
        .map(|t| {
            let status = if t.complete || t.status == "missing" {
                t.status.clone()
            } else {
                format!("{} (incomplete)", t.status)
            };
            vec![t.name.clone(), status, dash(&t.project)]
        })
        .collect();
    print_table(&["TEMPLATE", "STATUS", "PROJECT"], &templates);
    if !listing.sessions.is_empty() {
        crate::outln!();
        let sessions: Vec<Vec<String>> = listing
            .sessions
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    format!("{} ({})", s.status, s.role.as_str()),
                    s.owner_pid
                        .map_or_else(|| "none (orphan)".into(), |p| format!("pid {p}")),
                    dash(&s.project),
                ]
            })
            .collect();
        print_table(&["SESSION", "STATUS", "OWNER", "PROJECT"], &sessions);
    }
    if !listing.bases.is_empty() {
        crate::outln!();
        let bases: Vec<Vec<String>> = listing
            .bases
            .iter()
            .map(|b| {
                let status = if b.complete || b.status == "missing" {
                    b.status.clone()
                } else {
                    format!("{} (incomplete)", b.status)
                };
                let tools = if b.tools.is_empty() {
                    "-".to_owned()
                } else {
                    b.tools.join(",")
                };
                let used = if b.used_by.is_empty() {
                    "none (`claude-vm gc` removes it)".to_owned()
                } else {
                    b.used_by.join(", ")
                };
                vec![b.name.clone(), status, tools, used]
            })
            .collect();
        print_table(&["SHARED BASE", "STATUS", "TOOLS", "USED BY"], &bases);
    }
    Ok(0)
}

fn gather(ctx: &Context) -> Result<Listing> {
    let census = Census::take(&ctx.lima, &ctx.paths)?;
    let manifests = template::all_manifests(&ctx.paths);
    let project_of = |t: &str| {
        manifests
            .iter()
            .find(|m| m.template == t)
            .map(|m| m.project.display().to_string())
    };
    let mut templates = Vec::new();
    let mut sessions = Vec::new();
    let mut bases = Vec::new();
    let records = template::all_bases(&ctx.paths);
    let used_by = |b: &str| -> Vec<String> {
        template::users_of(&manifests, b)
            .iter()
            .map(|m| m.project.display().to_string())
            .collect()
    };
    for i in &census.instances {
        let owner = census.live_owner(&i.name);
        match names::parse(&i.name) {
            Some(Ours::Template(t)) => {
                let m = manifests.iter().find(|m| m.template == t.as_str());
                templates.push(TemplateRow {
                    name: i.name.clone(),
                    status: i.status.clone(),
                    project: project_of(t.as_str())
                        .or_else(|| owner.map(|e| e.project.display().to_string())),
                    complete: m.is_some(),
                    built_at: m.map(|m| m.built_at),
                    claude_vm_version: m.map(|m| m.claude_vm_version.clone()),
                });
            }
            Some(Ours::Clone {
                template: t, role, ..
            }) => sessions.push(SessionRow {
                name: i.name.clone(),
                template: t.to_string(),
                role,
                status: i.status.clone(),
                project: owner
                    .map(|e| e.project.display().to_string())
                    .or_else(|| project_of(t.as_str())),
                owner_pid: owner.map(|e| e.owner.pid),
                started_at: owner.map(|e| e.started_at),
                policy: owner.and_then(|e| e.policy.clone()),
            }),
            Some(Ours::Base(b)) => {
                let r = records.iter().find(|r| r.name == b);
                bases.push(BaseRow {
                    status: i.status.clone(),
                    complete: r.is_some(),
                    tools: r.map(|r| r.tools.clone()).unwrap_or_default(),
                    created: r.map(|r| r.created),
                    used_by: used_by(&b),
                    name: b,
                });
            }
            None => {}
        }
    }
    // Sessions whose VM Lima does not list yet (being cloned right now).
    for e in census.entries.values() {
        let listed = census.instances.iter().any(|i| i.name == e.instance);
        if !listed && e.owner_may_be_alive() && e.role != Role::Build {
            sessions.push(SessionRow {
                name: e.instance.clone(),
                template: e.template.clone(),
                role: e.role,
                status: "Creating".into(),
                project: Some(e.project.display().to_string()),
                owner_pid: Some(e.owner.pid),
                started_at: Some(e.started_at),
                policy: e.policy.clone(),
            });
        }
    }
    // Records whose VM is gone (deleted by hand): shown so the user knows to rebuild.
    for m in &manifests {
        if !census.instances.iter().any(|i| i.name == m.template) {
            templates.push(TemplateRow {
                name: m.template.clone(),
                status: "missing".into(),
                project: Some(m.project.display().to_string()),
                complete: true,
                built_at: Some(m.built_at),
                claude_vm_version: Some(m.claude_vm_version.clone()),
            });
        }
    }
    for r in &records {
        if !census.instances.iter().any(|i| i.name == r.name) {
            bases.push(BaseRow {
                name: r.name.clone(),
                status: "missing".into(),
                complete: true,
                tools: r.tools.clone(),
                created: Some(r.created),
                used_by: used_by(&r.name),
            });
        }
    }
    bases.sort_by(|a, b| a.name.cmp(&b.name));
    templates.sort_by(|a, b| a.name.cmp(&b.name));
    sessions.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Listing {
        templates,
        sessions,
        bases,
    })
}

fn print_table(titles: &[&str], rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..titles.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([titles[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        let mut out = String::new();
        for (c, cell) in cells.into_iter().enumerate() {
            if c == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        // Paths come from journal entries and manifests: shown, never obeyed.
        crate::outln!("{}", crate::ui::escape(&out));
    };
    line(titles.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}
