//! The fingerprint of what builds a template, computed from the setup plan itself: the
//! `create` call (image, setup mounts, Lima settings) without instance names and resources,
//! the contents of every hand-over file (the provisioning script, which carries base
//! packages, tools and the Claude Code install, and each setup script), and claude-vm's
//! version. Whatever a future option adds to the plan is covered without listing it here.
//!
//! Resources (`--cpus`, `--memory`, `--disk`) are left out: a session applies them to its
//! clone, so changing them never needs a rebuild.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::{BasePlan, FileSource, HandoverFile, SetupPlan};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// One digest over all parts: what sessions compare.
    pub digest: String,
    /// Per part, so a stale template can say what changed.
    pub parts: BTreeMap<String, String>,
}

const VERSION_PART: &str = "claude-vm";
const PROVISION_FILE: &str = "file:provision.sh";
/// One part per step of the provisioning script, so a stale template can name the step.
const STEP_PART: &str = "provision step:";
const VM_PART: &str = "vm";
const INSTANCE: &str = "<instance>";
const BASE_INSTANCE: &str = "<base>";
/// The shared base's parts inside a template's fingerprint.
const BASE_PART: &str = "base:";
const RESOURCE_FLAGS: [&str; 3] = ["--cpus", "--memory", "--disk"];

fn hex(bytes: &[u8]) -> String {
    crate::digest::sha256_hex(bytes)
}

/// The fingerprint of `plan`, built by claude-vm `version`. Reads the files the plan copies.
/// A template cloned from a shared base carries the base's parts too, prefixed `base:`.
pub fn of_setup(plan: &SetupPlan, version: &str) -> Result<Fingerprint> {
    let mut parts = BTreeMap::new();
    parts.insert(VERSION_PART.to_owned(), version.to_owned());
    let base = plan.base.as_ref().map(|b| b.name.as_str());
    parts.insert(
        VM_PART.to_owned(),
        vm_part(&plan.boot.maker().args, &plan.build, base),
    );
    file_parts(&mut parts, &plan.files)?;
    if let Some(base) = &plan.base {
        for (k, v) in of_base(base, version)?.parts {
            if k != VERSION_PART {
                parts.insert(format!("{BASE_PART}{k}"), v);
            }
        }
    }
    digest_of(parts)
}

/// The fingerprint of a shared base: what its name is made from (`names::base_name`).
pub fn of_base(base: &BasePlan, version: &str) -> Result<Fingerprint> {
    let mut parts = BTreeMap::new();
    parts.insert(VERSION_PART.to_owned(), version.to_owned());
    parts.insert(
        VM_PART.to_owned(),
        vm_part(&base.create.args, &base.name, None),
    );
    file_parts(&mut parts, &base.files)?;
    digest_of(parts)
}

/// The template's parts without the base's: what a project-only rebuild changes.
pub fn base_parts(f: &Fingerprint) -> BTreeMap<String, String> {
    f.parts
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(BASE_PART)?.to_owned(), v.clone())))
        .collect()
}

fn digest_of(parts: BTreeMap<String, String>) -> Result<Fingerprint> {
    let canonical = serde_json::to_vec(&parts)
        .map_err(|e| Error::failure(format!("cannot encode the fingerprint: {e}")))?;
    Ok(Fingerprint {
        digest: hex(&canonical),
        parts,
    })
}

/// The call that makes the VM, without resources and with the names that differ per build
/// (the build's, the hand-over directory named after it, the base's, itself fingerprinted).
fn vm_part(args: &[String], build: &str, base: Option<&str>) -> String {
    let mut out = Vec::new();
    let mut args = args.iter();
    while let Some(a) = args.next() {
        if RESOURCE_FLAGS.contains(&a.as_str()) {
            args.next();
            continue;
        }
        let mut a = a.replace(build, INSTANCE);
        if let Some(base) = base {
            a = a.replace(base, BASE_INSTANCE);
        }
        out.extend_from_slice(a.as_bytes());
        out.push(0);
    }
    hex(&out)
}

fn file_parts(parts: &mut BTreeMap<String, String>, files: &[HandoverFile]) -> Result<()> {
    for f in files {
        let bytes = match &f.source {
            FileSource::Text(t) => t.as_bytes().to_vec(),
            FileSource::Copy(copy) => copy.read()?,
        };
        let key = format!("file:{}", f.name);
        if key == PROVISION_FILE {
            for (step, body) in steps(&String::from_utf8_lossy(&bytes)) {
                parts.insert(format!("{STEP_PART}{step}"), hex(body.as_bytes()));
            }
        }
        parts.insert(key, hex(&bytes));
    }
    Ok(())
}

/// The provisioning script's steps (`cvm_step N TOTAL 'what'` starts one) and their text
/// without the numbering, which shifts when a step is added; the lines before the first step
/// are "the preamble".
fn steps(script: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![("the preamble".to_owned(), String::new())];
    for line in script.lines() {
        let started = line.strip_prefix("cvm_step ").and_then(|rest| {
            let mut words = rest.splitn(3, ' ');
            let (_, _, what) = (words.next()?, words.next()?, words.next()?);
            Some(what.trim_matches('\'').to_owned())
        });
        match started {
            Some(what) => {
                let mut name = what.clone();
                let mut n = 1;
                while out.iter().any(|(s, _)| *s == name) {
                    n += 1;
                    name = format!("{what} ({n})");
                }
                out.push((name, String::new()));
            }
            None => {
                if let Some((_, body)) = out.last_mut() {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    out
}

/// What differs between the fingerprint a template was built with and the current one, in
/// words; a change in the shared base says so.
pub fn changes(built: &Fingerprint, now: &Fingerprint) -> Vec<String> {
    let layered = |f: &Fingerprint| f.parts.keys().any(|k| k.starts_with(BASE_PART));
    match (layered(built), layered(now)) {
        (false, true) => {
            return vec!["it was built in one layer and is now cloned from a shared base".into()]
        }
        (true, false) => {
            return vec!["it was cloned from a shared base and is now built in one layer".into()]
        }
        _ => {}
    }
    let own = |f: &Fingerprint| -> BTreeMap<String, String> {
        f.parts
            .iter()
            .filter(|(k, _)| !k.starts_with(BASE_PART))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let mut out = layer_changes(&own(built), &own(now), "");
    let (mut old, mut new) = (base_parts(built), base_parts(now));
    // The version is the template's own part: said once.
    old.remove(VERSION_PART);
    new.remove(VERSION_PART);
    out.extend(layer_changes(&old, &new, "the shared base's "));
    out
}

fn layer_changes(
    built: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
    layer: &str,
) -> Vec<String> {
    let mut keys: Vec<&String> = built.keys().chain(now.keys()).collect();
    keys.sort();
    keys.dedup();
    // The steps say what changed in the provisioning; the whole script only when they cannot.
    let step_changed = keys
        .iter()
        .any(|k| k.starts_with(STEP_PART) && built.get(*k) != now.get(*k));
    let both_have_steps = [built, now]
        .iter()
        .all(|f| f.keys().any(|k| k.starts_with(STEP_PART)));
    keys.into_iter()
        .filter(|k| {
            if k.starts_with(STEP_PART) {
                both_have_steps
            } else {
                !(k.as_str() == PROVISION_FILE && both_have_steps && step_changed)
            }
        })
        .filter_map(|k| {
            let (old, new) = (built.get(k), now.get(k));
            if old == new {
                return None;
            }
            let what = format!("{layer}{}", describe(k));
            let what = match what.strip_prefix("the shared base's the ") {
                Some(rest) => format!("the shared base's {rest}"),
                None => what,
            };
            Some(match (old, new) {
                (Some(o), Some(n)) if k == VERSION_PART => {
                    format!("claude-vm was upgraded ({o} -> {n})")
                }
                (None, _) => format!("{what} was added"),
                (_, None) => format!("{what} was removed"),
                _ => format!("{what} changed"),
            })
        })
        .collect()
}

fn describe(part: &str) -> String {
    match part {
        VM_PART => "the VM definition (image, setup mounts)".to_owned(),
        _ if part.starts_with(STEP_PART) => {
            format!("the provisioning step \"{}\"", &part[STEP_PART.len()..])
        }
        "file:provision.sh" => {
            "the provisioning (packages, tools, Claude Code install, setup script list)".to_owned()
        }
        _ => match part.strip_prefix("file:") {
            Some(name) => match name
                .strip_prefix("setup-")
                .and_then(|n| n.strip_suffix(".sh"))
            {
                Some(n) => format!("setup script {n}"),
                None => format!("the hand-over file {name}"),
            },
            None => part.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::names::{template_name, Role};
    use crate::plan::{plan_setup, HostScript, SetupInputs};
    use std::path::Path;

    fn template() -> crate::names::TemplateName {
        template_name(Path::new("/src/app"), Path::new("/h/.lima")).unwrap()
    }

    fn plan(config: &Config, build: &str, script: &Path) -> SetupPlan {
        plan_with(config, build, script, false)
    }

    /// With `shared`, cloned from the base the config asks for (named by its fingerprint).
    fn plan_with(config: &Config, build: &str, script: &Path, shared: bool) -> SetupPlan {
        let t = template();
        let base = shared.then(|| {
            let draft = crate::plan::plan_base(config, &[], "claude-vm_base-000000000000".into());
            let digest = of_base(&draft, "1.0.0").unwrap().digest;
            crate::plan::plan_base(config, &[], crate::names::base_name(&digest))
        });
        plan_setup(SetupInputs {
            base,
            template: &t,
            build: build.to_owned(),
            config,
            agent_writable: Vec::new(),
            scripts: vec![HostScript {
                label: "./.claude-vm.setup.sh".into(),
                source: crate::plan::HostCopy::plain(script.to_path_buf()),
            }],
            login: false,
        })
        .unwrap()
    }

    #[test]
    fn same_inputs_same_fingerprint_whatever_the_build_name_and_resources() {
        let tmp = tempfile::tempdir().unwrap();
        let script = tmp.path().join("s.sh");
        std::fs::write(&script, "echo 1").unwrap();
        let t = template();
        let c = Config::default();
        let first = of_setup(&plan(&c, t.as_str(), &script), "1.0.0").unwrap();
        let mut bigger = Config::default();
        bigger.vm.cpus = 16;
        bigger.vm.disk = 100;
        let rebuild = of_setup(
            &plan(&bigger, &t.instance_with_id(Role::Build, "abc123"), &script),
            "1.0.0",
        )
        .unwrap();
        assert_eq!(first, rebuild);
        assert!(changes(&first, &rebuild).is_empty());
    }

    #[test]
    fn scripts_image_and_version_each_change_it_and_say_so() {
        let tmp = tempfile::tempdir().unwrap();
        let script = tmp.path().join("s.sh");
        std::fs::write(&script, "echo 1").unwrap();
        let c = Config::default();
        let t = template();
        let t = t.as_str();
        let base = of_setup(&plan(&c, t, &script), "1.0.0").unwrap();

        std::fs::write(&script, "echo 2").unwrap();
        let edited = of_setup(&plan(&c, t, &script), "1.0.0").unwrap();
        assert_ne!(base.digest, edited.digest);
        assert_eq!(changes(&base, &edited), ["setup script 1 changed"]);

        let mut other = Config::default();
        other.vm.image = "template:ubuntu".into();
        let image = of_setup(&plan(&other, t, &script), "1.0.0").unwrap();
        assert!(changes(&edited, &image)[0].starts_with("the VM definition"));

        let upgraded = of_setup(&plan(&c, t, &script), "1.1.0").unwrap();
        assert_eq!(
            changes(&edited, &upgraded),
            ["claude-vm was upgraded (1.0.0 -> 1.1.0)"]
        );
    }

    #[test]
    fn a_provisioning_change_names_the_step() {
        let tmp = tempfile::tempdir().unwrap();
        let script = tmp.path().join("s.sh");
        std::fs::write(&script, "echo 1").unwrap();
        let t = template();
        let t = t.as_str();
        let base = of_setup(&plan(&Config::default(), t, &script), "1.0.0").unwrap();
        let mut packages = Config::default();
        packages.packages.system = vec!["jq".into()];
        let more = of_setup(&plan(&packages, t, &script), "1.0.0").unwrap();
        assert_eq!(
            changes(&base, &more),
            ["the provisioning step \"installing packages\" changed"]
        );
        let mut rust = Config::default();
        rust.tools.insert("rust".into(), true);
        let tool = of_setup(&plan(&rust, t, &script), "1.0.0").unwrap();
        let said = changes(&base, &tool);
        assert!(
            said.contains(&"the provisioning step \"setting up rust\" was added".to_owned()),
            "{said:?}"
        );
        assert!(
            said.iter().all(|s| !s.contains("(packages, tools")),
            "{said:?}"
        );
        // A template recorded before the steps were: the whole provisioning, as before.
        let mut old = base.clone();
        old.parts.retain(|k, _| !k.starts_with(STEP_PART));
        old.parts.insert(PROVISION_FILE.into(), "x".into());
        let said = changes(&old, &more);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].starts_with("the provisioning ("), "{said:?}");
    }

    #[test]
    fn a_layered_template_says_which_layer_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let script = tmp.path().join("s.sh");
        std::fs::write(&script, "echo 1").unwrap();
        let t = template();
        let t = t.as_str();
        let c = Config::default();
        let first = of_setup(&plan_with(&c, t, &script, true), "1.0.0").unwrap();
        assert!(first
            .parts
            .contains_key("base:provision step:installing Claude Code"));
        assert!(
            !first
                .parts
                .contains_key("provision step:installing Claude Code"),
            "the template's own script installs nothing"
        );
        let again = of_setup(
            &plan_with(
                &c,
                &template().instance_with_id(Role::Build, "abc123"),
                &script,
                true,
            ),
            "1.0.0",
        )
        .unwrap();
        assert_eq!(first, again, "the build's name is not part of it");

        std::fs::write(&script, "echo 2").unwrap();
        let edited = of_setup(&plan_with(&c, t, &script, true), "1.0.0").unwrap();
        assert_eq!(changes(&first, &edited), ["setup script 1 changed"]);
        assert_eq!(
            base_parts(&first),
            base_parts(&edited),
            "the base is the same"
        );

        let mut rust = Config::default();
        rust.tools.insert("rust".into(), true);
        let tool = of_setup(&plan_with(&rust, t, &script, true), "1.0.0").unwrap();
        let said = changes(&edited, &tool);
        assert!(
            said.contains(
                &"the shared base's provisioning step \"setting up rust\" was added".to_owned()
            ),
            "{said:?}"
        );
        assert!(
            said.contains(
                &"the shared base's provisioning step \"installing packages\" changed".to_owned()
            ),
            "{said:?}"
        );
        assert!(
            said.iter().all(|s| s.starts_with("the shared base's")),
            "only the base changed: {said:?}"
        );
        let one = of_setup(&plan_with(&c, t, &script, false), "1.0.0").unwrap();
        assert_eq!(
            changes(&one, &edited),
            ["it was built in one layer and is now cloned from a shared base"]
        );
        let upgraded = of_setup(&plan_with(&c, t, &script, true), "1.1.0").unwrap();
        assert_eq!(
            changes(&edited, &upgraded),
            ["claude-vm was upgraded (1.0.0 -> 1.1.0)"],
            "said once, not once per layer"
        );
    }

    #[test]
    fn an_unreadable_script_is_an_error() {
        let c = Config::default();
        let t = template();
        let err = of_setup(&plan(&c, t.as_str(), Path::new("/nonexistent/s.sh")), "1").unwrap_err();
        assert!(
            err.message().contains("/nonexistent/s.sh"),
            "{}",
            err.message()
        );
    }
}
