//! `claude-vm doctor`: gathers the facts (two limactl calls: `--version` and `list`), runs the
//! checks in `crate::doctor` and prints the findings. Exit 1 when something must be fixed.

use super::Context;
use crate::doctor::{self, disk, host, instances, owners, Finding, Level};
use crate::error::Result;
use crate::lima::{self, Instance};
use crate::names::{self, Ours};
use crate::template;

pub fn run(ctx: &Context) -> Result<i32> {
    let mut findings = Vec::new();

    let path = doctor::lima::find_in_path("limactl");
    let version = path
        .as_ref()
        .map(|_| ctx.lima.capture(&lima::version(), None));
    let version_text = match &version {
        Some(Ok(out)) => Ok(out.as_str()),
        Some(Err(e)) => Err(e.reason().unwrap_or_else(|| e.to_string())),
        None => Err("not found".to_owned()),
    };
    let lima_finding = doctor::lima::limactl(path.as_deref(), version_text);
    let lima_works = lima_finding.level != Level::Fail;
    findings.push(lima_finding);
    findings.extend(host::vm_support(&host::gather()));
    findings.push(doctor::socket_room(&ctx.paths.lima_home));

    let listed = if lima_works {
        match ctx.lima.list() {
            Ok(list) => Some(list),
            Err(e) => {
                findings.push(Finding::fail(
                    format!("`limactl list` failed: {e}"),
                    e.hint(),
                ));
                None
            }
        }
    } else {
        None
    };
    let manifests = template::all_manifests(&ctx.paths);
    let handovers: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(ctx.paths.handover_root())
        .map(|d| {
            d.flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect()
        })
        .unwrap_or_default();
    let instance_dir = |i: &Instance| {
        if i.dir.is_empty() {
            ctx.paths.lima_home.join(&i.name)
        } else {
            i.dir.clone().into()
        }
    };
    let size_of = |i: &Instance| disk::usage(&instance_dir(i));
    let scan = owners::JournalOwners::read(&ctx.paths);
    let inventory = instances::Inventory {
        instances: listed.as_deref(),
        manifests: &manifests,
        owners: &scan,
        size_of: &size_of,
        exists: &|p| p.exists(),
        handovers: &handovers,
        version: env!("CARGO_PKG_VERSION"),
        templates_dir: &ctx.paths.templates_dir(),
    };
    findings.extend(instances::templates(&inventory));
    findings.extend(instances::sessions(&inventory));

    if let Some(list) = &listed {
        let (mut templates, mut bases_used, mut sessions) = ((0, 0), (0, 0), (0, 0));
        for i in list {
            let slot = match names::parse(&i.name) {
                Some(Ours::Template(_)) => &mut templates,
                Some(Ours::Base(_)) => &mut bases_used,
                Some(Ours::Clone { .. }) => &mut sessions,
                None => continue,
            };
            slot.0 += 1;
            slot.1 += size_of(i);
        }
        let bases: Vec<(String, bool)> = list
            .iter()
            .filter(|i| matches!(names::parse(&i.name), Some(Ours::Base(_))))
            .map(|i| {
                let building = crate::journal::Journal::new(&ctx.paths)
                    .entries()
                    .iter()
                    .any(|e| e.instance == i.name && e.owner_may_be_alive());
                (i.name.clone(), building)
            })
            .collect();
        findings.extend(doctor::bases::bases(
            &bases,
            &template::all_bases(&ctx.paths),
            &manifests,
        ));
        findings.push(disk::summary(
            templates,
            bases_used,
            sessions,
            disk::free_space(&ctx.paths.lima_home),
            &ctx.paths.lima_home,
        ));
    }

    crate::out!("{}", doctor::render(&findings));
    Ok(i32::from(findings.iter().any(|f| f.level == Level::Fail)))
}
