//! Shared bases: which exist, which templates were cloned from them, which are unfinished.

use super::Finding;
use crate::manifest::{users_of, BaseRecord, Manifest};

/// `listed`: the base instances `limactl list` shows (and whether a live claude-vm is
/// building it); `records`: the complete bases' records.
pub fn bases(
    listed: &[(String, bool)],
    records: &[BaseRecord],
    manifests: &[Manifest],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, building) in listed {
        let users: Vec<String> = users_of(manifests, name)
            .iter()
            .map(|m| m.project.display().to_string())
            .collect();
        match records.iter().find(|r| &r.name == name) {
            Some(r) if users.is_empty() => out.push(Finding::note(format!(
                "shared base {name} ({}): no template was cloned from it; `claude-vm gc` removes it",
                tools(r)
            ))),
            Some(r) => out.push(Finding::ok(format!(
                "shared base {name} ({}): used by {}",
                tools(r),
                users.join(", ")
            ))),
            None if *building => out.push(Finding::note(format!(
                "shared base {name} is being built by a running claude-vm"
            ))),
            None => out.push(Finding::warn(
                format!("shared base {name} is unfinished (its build was interrupted)"),
                "`claude-vm gc` removes it; the next `claude-vm setup` builds it again",
            )),
        }
    }
    for r in records {
        if !listed.iter().any(|(n, _)| n == &r.name) {
            out.push(Finding::note(format!(
                "shared base {} is gone (its templates keep working); the next setup that needs it builds it again",
                r.name
            )));
        }
    }
    out
}

fn tools(r: &BaseRecord) -> String {
    if r.tools.is_empty() {
        "no extra tools".to_owned()
    } else {
        format!("tools: {}", r.tools.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Level;
    use crate::fingerprint::Fingerprint;
    use crate::manifest::BaseRef;

    fn record(name: &str) -> BaseRecord {
        BaseRecord {
            name: name.into(),
            fingerprint: Fingerprint {
                digest: "d".into(),
                parts: Default::default(),
            },
            created: 0,
            claude_vm_version: "1".into(),
            image: "template:debian-13".into(),
            tools: vec!["rust".into()],
            claude_code: None,
        }
    }

    fn manifest(project: &str, base: &str) -> Manifest {
        let mut m: Manifest = serde_json::from_value(serde_json::json!({
            "template": "claude-vm-a-12345678", "project": project, "built_at": 0,
            "claude_vm_version": "1", "image": "i", "disk": 1, "memory": 1, "cpus": 1
        }))
        .unwrap();
        m.base = Some(BaseRef {
            name: base.into(),
            digest: "d".into(),
        });
        m
    }

    #[test]
    fn each_base_with_its_users_unused_unfinished_and_gone() {
        let (a, b, c, d) = (
            "claude-vm_base-aaaaaaaaaaaa",
            "claude-vm_base-bbbbbbbbbbbb",
            "claude-vm_base-cccccccccccc",
            "claude-vm_base-dddddddddddd",
        );
        let listed = [
            (a.to_owned(), false),
            (b.to_owned(), false),
            (c.to_owned(), false),
        ];
        let f = bases(
            &listed,
            &[record(a), record(b), record(d)],
            &[manifest("/p/one", a), manifest("/p/two", a)],
        );
        assert_eq!(f.len(), 4, "{f:?}");
        assert_eq!(f[0].level, Level::Ok);
        assert!(
            f[0].text.contains("used by /p/one, /p/two") && f[0].text.contains("rust"),
            "{}",
            f[0].text
        );
        assert_eq!(f[1].level, Level::Note);
        assert!(f[1].text.contains("gc"), "{}", f[1].text);
        assert_eq!(f[2].level, Level::Warn, "no record: unfinished");
        assert!(
            f[3].text.contains(d) && f[3].text.contains("gone"),
            "{}",
            f[3].text
        );
        let f = bases(&[(c.to_owned(), true)], &[], &[]);
        assert!(f[0].text.contains("being built"), "{}", f[0].text);
    }
}
