//! `claude-vm list`: templates and live sessions, apart.

use super::Context;
use crate::error::Result;
use crate::lima::Instance;
use crate::names::{self, Ours};
use crate::template;

pub fn run(ctx: &Context) -> Result<i32> {
    let instances = ctx.lima.list()?;
    let manifests = template::all_manifests(&ctx.paths);
    let project_of = |t: &str| {
        manifests
            .iter()
            .find(|m| m.template == t)
            .map(|m| m.project.display().to_string())
            .unwrap_or_else(|| "-".into())
    };

    let mut templates: Vec<(String, String, String)> = Vec::new();
    let mut clones: Vec<(String, String, String)> = Vec::new();
    for i in &instances {
        match names::parse(&i.name) {
            Some(Ours::Template(t)) => {
                let status = if manifests.iter().any(|m| m.template == t.as_str()) {
                    i.status.clone()
                } else {
                    format!("{} (incomplete)", i.status)
                };
                templates.push((i.name.clone(), status, project_of(t.as_str())));
            }
            Some(Ours::Clone {
                template: t, role, ..
            }) => {
                clones.push((
                    i.name.clone(),
                    format!("{} ({})", i.status, role.as_str()),
                    project_of(t.as_str()),
                ));
            }
            None => {}
        }
    }
    // Records whose VM is gone (deleted by hand): shown so the user knows to rebuild.
    for m in &manifests {
        if !instances.iter().any(|i: &Instance| i.name == m.template) {
            templates.push((
                m.template.clone(),
                "missing".into(),
                m.project.display().to_string(),
            ));
        }
    }

    if templates.is_empty() && clones.is_empty() {
        println!("no claude-vm templates or sessions (build one with `claude-vm setup`)");
        return Ok(0);
    }
    print_table("TEMPLATE", &templates);
    if !clones.is_empty() {
        println!();
        print_table("SESSION", &clones);
    }
    Ok(0)
}

fn print_table(title: &str, rows: &[(String, String, String)]) {
    let w0 = rows
        .iter()
        .map(|r| r.0.len())
        .chain([title.len()])
        .max()
        .unwrap_or(0);
    let w1 = rows
        .iter()
        .map(|r| r.1.len())
        .chain(["STATUS".len()])
        .max()
        .unwrap_or(0);
    println!("{title:<w0$}  {:<w1$}  PROJECT", "STATUS");
    for (a, b, c) in rows {
        println!("{a:<w0$}  {b:<w1$}  {c}");
    }
}
