//! `limactl clone`, `rename` and `edit`: copy or move an instance, then
//! rewrite its lima.yaml with the edit flags (Lima's clone.go / edit.go).

use std::path::Path;

use serde_json::Value;

use crate::cmd_create::boot;
use crate::ctx::Ctx;
use crate::disk;
use crate::editflags;
use crate::fail::{Fail, Res};
use crate::flags::Parsed;
use crate::fsutil::{self, Action};
use crate::gofmt::quote;
use crate::logrus;
use crate::names;
use crate::schema;
use crate::store::{self, Instance, Status};
use crate::validate;
use crate::yq;

const REJECTED: &str = "lima.REJECTED.yaml";

/// Lima's `saveRejectedYAML`: the rejected buffer goes to the current
/// directory, and the error says so.
pub fn save_rejected(bytes: &[u8], err: &str) -> Fail {
    match std::fs::write(REJECTED, bytes) {
        Ok(()) => Fail::fatal(format!(
            "the YAML is invalid, saved the buffer as {}: {err}",
            quote(REJECTED)
        )),
        Err(e) => Fail::fatal(format!(
            "the YAML is invalid, attempted to save the buffer as {} but failed: {}\n{err}",
            quote(REJECTED),
            crate::sys::path_error("open", Path::new(REJECTED), &e)
        )),
    }
}

/// Applies edit flags to an instance's lima.yaml, validating like Lima;
/// returns whether the file changed.
fn rewrite_config(ctx: &Ctx, inst: &Instance, exprs: &[String]) -> Res<bool> {
    if exprs.is_empty() {
        return Ok(false);
    }
    let yaml = inst.yaml_path();
    let old = std::fs::read(&yaml).map_err(|e| Fail::path("open", &yaml, &e))?;
    let comment = format!("main file {}", quote(&yaml.to_string_lossy()));
    let doc = schema::unmarshal(&old, &comment).map_err(Fail::fatal)?;
    let new_doc: Value = yq::evaluate(&exprs.join(" | "), &doc).map_err(Fail::fatal)?;
    let mut new = serde_json::to_vec_pretty(&new_doc).map_err(|e| Fail::fatal(e.to_string()))?;
    new.push(b'\n');
    if new == old {
        return Ok(false);
    }
    let version = ctx.lima_version();
    let new_cfg = validate::load_validated(&new, &yaml, &ctx.lima_home, &ctx.host, &version, true)
        .map_err(|e| save_rejected(&new, &e))?;
    if let Ok(old_cfg) =
        validate::load_validated(&old, &yaml, &ctx.lima_home, &ctx.host, &version, false)
    {
        validate::check_disk_not_shrunk(&old_cfg, &new_cfg).map_err(|e| save_rejected(&new, &e))?;
    }
    std::fs::write(&yaml, &new).map_err(|e| Fail::path("open", &yaml, &e))?;
    Ok(true)
}

// Lima's clone walk rules, plus the simulator's own entries.
fn classify(name: &str) -> Action {
    if name == store::PROTECTED || disk::is_runtime(name) {
        return Action::Skip;
    }
    if [".pid", ".sock", ".tmp"].iter().any(|s| name.ends_with(s)) {
        return Action::Skip;
    }
    if name == "vz-identifier" {
        return Action::Nullify;
    }
    if name == disk::DISK {
        return Action::Whole;
    }
    Action::Copy
}

/// `instance.CloneOrRename`.
fn clone_or_rename(ctx: &Ctx, old: &Instance, new_name: &str, rename: bool) -> Res<Instance> {
    let verb = if rename { "rename" } else { "clone" };
    if old.name == new_name {
        return Err(Fail::fatal(format!(
            "new instance name {} must be different from {}",
            quote(new_name),
            quote(&old.name)
        )));
    }
    if old.status == Status::Running {
        return Err(Fail::fatal(format!("cannot {verb} a running instance")));
    }
    let new_dir = names::instance_dir(&ctx.lima_home, new_name)?;
    if std::fs::symlink_metadata(&new_dir).is_ok() {
        return Err(Fail::fatal(format!(
            "instance {} already exists",
            quote(new_name)
        )));
    }
    names::check_socket_length(new_name, &new_dir)?;
    ctx.inject.checkpoint(verb)?;
    std::fs::create_dir(&new_dir).map_err(|e| Fail::path("mkdir", &new_dir, &e))?;
    fsutil::chmod(&new_dir, 0o700)?;
    fsutil::clone_tree(&old.dir, &new_dir, rename, &classify)?;
    if rename {
        fsutil::remove_all(&old.dir).map_err(|e| Fail::path("unlinkat", &old.dir, &e))?;
    }
    ctx.store().require(new_name, |e| e)
}

// askWhetherToStart: only asks when stdin is a terminal.
fn should_start(ctx: &Ctx, p: &Parsed) -> Res<bool> {
    if ctx.tty && !p.changed("start") && crate::sys::isatty(0) {
        return Err(Fail::fatal(
            "the \"start now?\" prompt (--tty=true) is not supported by the simulator; pass --start or --tty=false",
        ));
    }
    Ok(p.bool("start"))
}

fn clone_action(ctx: &mut Ctx, p: &Parsed, rename: bool) -> Res<()> {
    let old_name = p.args[0].to_string_lossy().into_owned();
    let new_name = p.args[1].to_string_lossy().into_owned();
    let old = ctx.store().require(&old_name, |_| {
        format!("instance {} not found", quote(&old_name))
    })?;
    let mut inst = clone_or_rename(ctx, &old, &new_name, rename)?;
    let exprs = editflags::yq_expressions(p, false, &ctx.host.home)?;
    if rewrite_config(ctx, &inst, &exprs)? {
        inst = ctx.store().require(&new_name, |e| e)?;
    }
    if should_start(ctx, p)? {
        boot(ctx, &inst, crate::cmd_create::DEFAULT_TIMEOUT)?;
    }
    Ok(())
}

pub fn clone(ctx: &mut Ctx, p: &Parsed) -> Res<()> {
    clone_action(ctx, p, false)
}

pub fn rename(ctx: &mut Ctx, p: &Parsed) -> Res<()> {
    clone_action(ctx, p, true)
}

pub fn edit(ctx: &mut Ctx, p: &Parsed) -> Res<()> {
    let arg = p
        .args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_else(|| "default".into());
    if names::validate(&arg).is_err() {
        return Err(Fail::fatal(
            "editing a template file is not supported by the simulator; edit an instance",
        ));
    }
    let inst = ctx
        .store()
        .require(&arg, |_| format!("instance {} not found", quote(&arg)))?;
    if inst.status == Status::Running {
        return Err(Fail::fatal("cannot edit a running instance"));
    }
    let exprs = editflags::yq_expressions(p, false, &ctx.host.home)?;
    if exprs.is_empty() {
        if ctx.tty {
            return Err(Fail::fatal(
                "the interactive editor (--tty=true) is not supported by the simulator; pass --tty=false with edit flags",
            ));
        }
        logrus::info("Aborting, as requested by saving the file with empty content");
        return Ok(());
    }
    ctx.inject.checkpoint("edit")?;
    if !rewrite_config(ctx, &inst, &exprs)? {
        logrus::info("Aborting, no changes made to the instance");
        return Ok(());
    }
    logrus::info(&format!(
        "Instance {} configuration edited",
        quote(&inst.name)
    ));
    if should_start(ctx, p)? {
        let inst = ctx.store().require(&arg, |e| e)?;
        boot(ctx, &inst, crate::cmd_create::DEFAULT_TIMEOUT)?;
    }
    Ok(())
}
