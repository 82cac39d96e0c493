//! `limactl list` (JSON lines, table, `-q`, simple go templates) and
//! `limactl info`.

use serde::Serialize;
use serde_json::{json, Value};

use crate::ctx::Ctx;
use crate::fail::{Fail, Res};
use crate::flags::Parsed;
use crate::gofmt::{self, quote};
use crate::host;
use crate::logrus;
use crate::output;
use crate::store::{self, Inspect, Instance};

/// One line of `--format json` (Lima's `FormatData`, in its field order).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    name: String,
    hostname: String,
    status: String,
    dir: String,
    vm_type: String,
    arch: String,
    #[serde(skip_serializing_if = "is_zero")]
    cpus: i64,
    #[serde(skip_serializing_if = "is_zero")]
    memory: i64,
    #[serde(skip_serializing_if = "is_zero")]
    disk: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
    #[serde(skip_serializing_if = "is_zero")]
    ssh_local_port: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    ssh_config_file: String,
    #[serde(rename = "hostAgentPID", skip_serializing_if = "is_zero")]
    host_agent_pid: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<Value>,
    #[serde(skip_serializing_if = "String::is_empty")]
    ssh_address: String,
    protected: bool,
    lima_version: String,
    #[serde(rename = "HostOS")]
    host_os: String,
    #[serde(rename = "HostArch")]
    host_arch: String,
    #[serde(rename = "LimaHome")]
    lima_home: String,
    #[serde(rename = "IdentityFile")]
    identity_file: String,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn entry(ctx: &Ctx, inst: &Instance) -> Entry {
    let cfg = inst.config.as_ref();
    let size = |s: Option<&String>| s.and_then(|s| gofmt::ram_in_bytes(s).ok()).unwrap_or(0);
    Entry {
        name: inst.name.clone(),
        hostname: crate::names::hostname(&inst.name),
        status: inst.status.as_str().into(),
        dir: inst.dir.to_string_lossy().into(),
        vm_type: cfg.map(|c| c.vm_type.clone()).unwrap_or_default(),
        arch: cfg.map(|c| c.arch.clone()).unwrap_or_default(),
        cpus: cfg.map(|c| c.cpus).unwrap_or(0),
        memory: size(cfg.map(|c| &c.memory)),
        disk: size(cfg.map(|c| &c.disk)),
        message: cfg.map(|c| c.message.clone()).unwrap_or_default(),
        ssh_local_port: inst.ssh_port,
        ssh_config_file: if cfg.is_some() {
            inst.dir.join(store::SSH_CONFIG).to_string_lossy().into()
        } else {
            String::new()
        },
        host_agent_pid: inst.ha_pid as i64,
        errors: inst.errors.clone(),
        config: cfg.map(|c| {
            let mut filled = c.filled();
            delete_empty_objects(&mut filled);
            filled
        }),
        ssh_address: if cfg.is_some() {
            "127.0.0.1".into()
        } else {
            String::new()
        },
        protected: inst.protected,
        lima_version: inst.lima_version.clone(),
        host_os: std::env::consts::OS.into(),
        host_arch: host::arch().into(),
        lima_home: ctx.lima_home.to_string_lossy().into(),
        identity_file: ctx.lima_home.join("_config/user").to_string_lossy().into(),
    }
}

/// yq's `del(.. | select(tag == "!!map" and length == 0))`, which Lima
/// applies to every JSON line (only `config` holds maps).
fn delete_empty_objects(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.values_mut().for_each(delete_empty_objects);
            map.retain(|_, v| !matches!(v, Value::Object(m) if m.is_empty()));
        }
        Value::Array(items) => {
            items.iter_mut().for_each(delete_empty_objects);
            items.retain(|v| !matches!(v, Value::Object(m) if m.is_empty()));
        }
        _ => {}
    }
}

fn json_line(e: &Entry) -> Res<String> {
    serde_json::to_string(e).map_err(|err| Fail::fatal(err.to_string()))
}

// Go's tabwriter with Lima's settings (minwidth 4, padding 4).
fn tabwrite(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![4usize; cols];
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(cols.saturating_sub(1)) {
            widths[i] = widths[i].max(cell.chars().count() + 4);
        }
    }
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < row.len() {
                out.push_str(&" ".repeat(widths[i] - cell.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

fn table(ctx: &Ctx, insts: &[Instance], all: bool) -> String {
    let entries: Vec<Entry> = insts.iter().map(|i| entry(ctx, i)).collect();
    let distinct = |f: fn(&Entry) -> &str| {
        let mut v: Vec<&str> = entries.iter().map(f).collect();
        v.sort();
        v.dedup();
        v
    };
    let types = distinct(|e| &e.vm_type);
    let archs = distinct(|e| &e.arch);
    let show_type = all || types.len() != 1;
    let show_arch = all || !(archs.len() == 1 && archs[0] == host::arch());
    let mut header = vec!["NAME", "STATUS", "SSH"];
    if show_type {
        header.push("VMTYPE");
    }
    if show_arch {
        header.push("ARCH");
    }
    header.extend(["CPUS", "MEMORY", "DISK", "DIR"]);
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    let home = ctx.host.home.to_string_lossy().into_owned();
    for e in &entries {
        let mut row = vec![
            e.name.clone(),
            e.status.clone(),
            format!("{}:{}", e.ssh_address, e.ssh_local_port),
        ];
        if show_type {
            row.push(e.vm_type.clone());
        }
        if show_arch {
            row.push(e.arch.clone());
        }
        let dir = match e.dir.strip_prefix(&home) {
            Some(rest) if !home.is_empty() => format!("~{rest}"),
            _ => e.dir.clone(),
        };
        row.extend([
            e.cpus.to_string(),
            gofmt::bytes_size(e.memory),
            gofmt::bytes_size(e.disk),
            dir,
        ]);
        rows.push(row);
    }
    tabwrite(&rows)
}

// `{{.Field}}` templates over FormatData, plus `{{json .}}`.
fn go_template(ctx: &Ctx, tmpl: &str, inst: &Instance) -> Res<String> {
    let e = entry(ctx, inst);
    let unsupported = || {
        Fail::fatal(format!(
            "list --format {} is not supported by the simulator",
            quote(tmpl)
        ))
    };
    let fields: Vec<(&str, String)> = vec![
        ("Name", e.name.clone()),
        ("Hostname", e.hostname.clone()),
        ("Status", e.status.clone()),
        ("Dir", e.dir.clone()),
        ("VMType", e.vm_type.clone()),
        ("Arch", e.arch.clone()),
        ("CPUs", e.cpus.to_string()),
        ("Memory", e.memory.to_string()),
        ("Disk", e.disk.to_string()),
        ("Message", e.message.trim_end_matches('\n').to_string()),
        ("SSHLocalPort", e.ssh_local_port.to_string()),
        ("SSHConfigFile", e.ssh_config_file.clone()),
        ("HostAgentPID", e.host_agent_pid.to_string()),
        ("SSHAddress", e.ssh_address.clone()),
        ("Protected", e.protected.to_string()),
        ("LimaVersion", e.lima_version.clone()),
        ("HostOS", e.host_os.clone()),
        ("HostArch", e.host_arch.clone()),
        ("LimaHome", e.lima_home.clone()),
        ("IdentityFile", e.identity_file.clone()),
    ];
    if tmpl.replace(' ', "") == "{{json.}}" {
        return serde_json::to_string(&e).map_err(|err| Fail::fatal(err.to_string()));
    }
    let expanded = crate::gotmpl::expand(tmpl, &fields).map_err(|_| unsupported())?;
    if expanded.contains("<no value>") {
        return Err(unsupported());
    }
    Ok(expanded)
}

pub fn list(ctx: &mut Ctx, p: &Parsed) -> Res<()> {
    let json = p.bool("json");
    let mut format = p.str("format");
    if json {
        format = "json".into();
    }
    if json && p.changed("format") {
        return Err(Fail::fatal("option --json conflicts with option --format"));
    }
    if p.bool("list-fields") && p.changed("format") {
        return Err(Fail::fatal(
            "option --list-fields conflicts with option --format",
        ));
    }
    let quiet = p.bool("quiet");
    if quiet && format != "table" {
        return Err(Fail::fatal(
            "option --quiet can only be used with '--format table'",
        ));
    }
    if p.bool("list-fields") {
        return output::stdout(&format!("{}\n", FIELDS.join("\n")));
    }
    if !p.list("yq").is_empty() {
        return Err(Fail::fatal("list --yq is not supported by the simulator"));
    }
    if format == "yaml" {
        return Err(Fail::fatal(
            "list --format yaml is not supported by the simulator",
        ));
    }
    ctx.inject.checkpoint("list")?;
    let store = ctx.store();
    let all = store.instance_names()?;
    if let Some(bad) = all
        .iter()
        .find(|n| !ctx.lima_home.join(n).join(store::LIMA_YAML).exists())
    {
        let path = ctx.lima_home.join(bad).join(store::LIMA_YAML);
        logrus::warn(&format!(
            "The directory {} does not look like a valid Lima directory: {}",
            quote(&ctx.lima_home.to_string_lossy()),
            crate::sys::path_error(
                "stat",
                &path,
                &std::io::Error::from(std::io::ErrorKind::NotFound)
            )
        ));
    }
    if p.args.is_empty() && all.is_empty() {
        logrus::warn("No instance found. Run `limactl create` to create an instance.");
        return Ok(());
    }
    let mut names = Vec::new();
    let mut unmatched = false;
    if p.args.is_empty() {
        names = all.clone();
    } else {
        for arg in &p.args {
            let arg = arg.to_string_lossy().into_owned();
            if all.contains(&arg) {
                names.push(arg);
            } else {
                logrus::warn(&format!("No instance matching {arg} found."));
                unmatched = true;
            }
        }
    }
    let mut out = String::new();
    if quiet {
        names.iter().for_each(|n| out.push_str(&format!("{n}\n")));
    } else {
        let mut insts = Vec::new();
        for name in &names {
            match store.inspect(name)? {
                Inspect::Found(inst) => insts.push(*inst),
                Inspect::Missing(err) => insts.push(Instance {
                    name: name.clone(),
                    dir: ctx.lima_home.join(name),
                    status: store::Status::Broken,
                    config: None,
                    errors: vec![err],
                    protected: false,
                    lima_version: String::new(),
                    ha_pid: 0,
                    ssh_port: 0,
                }),
            }
        }
        for inst in insts.iter().filter(|i| !i.errors.is_empty()) {
            logrus::log(
                logrus::Level::Warn,
                &format!("instance {} has errors", quote(&inst.name)),
                &[("errors", format!("[{}]", inst.errors.join(" ")))],
            );
        }
        match format.as_str() {
            "json" => {
                for inst in &insts {
                    out.push_str(&json_line(&entry(ctx, inst))?);
                    out.push('\n');
                }
            }
            "table" => out = table(ctx, &insts, p.bool("all-fields")),
            tmpl => {
                for inst in &insts {
                    out.push_str(&go_template(ctx, tmpl, inst)?);
                    out.push('\n');
                }
            }
        }
    }
    output::stdout(&out)?;
    if unmatched {
        return Err(Fail::fatal("unmatched instances"));
    }
    Ok(())
}

/// `limactl list --list-fields` (FormatData's non-deprecated fields, sorted).
const FIELDS: &[&str] = &[
    "AdditionalDisks",
    "Arch",
    "AutoStartedIdentifier",
    "CPUs",
    "Config",
    "Dir",
    "Disk",
    "DriverPID",
    "Errors",
    "HostAgentPID",
    "Hostname",
    "LimaVersion",
    "Memory",
    "Message",
    "Name",
    "Networks",
    "Param",
    "Protected",
    "SSHAddress",
    "SSHConfigFile",
    "SSHLocalPort",
    "Status",
    "VMType",
];

pub fn info(ctx: &mut Ctx, p: &Parsed) -> Res<()> {
    if p.str("yq") != "." {
        return Err(Fail::fatal("info --yq is not supported by the simulator"));
    }
    let templates: Vec<Value> = crate::templates::names()
        .into_iter()
        .map(|n| json!({"name": n, "location": format!("template:{n}")}))
        .collect();
    let info = json!({
        "version": ctx.version,
        "templates": templates,
        "defaultTemplate": crate::templates::read("default", &ctx.host).unwrap_or(Value::Null),
        "limaHome": ctx.lima_home,
        "vmTypes": host::registered_vm_types(),
        "hostOS": std::env::consts::OS,
        "hostArch": host::arch(),
        "identityFile": ctx.lima_home.join("_config/user"),
    });
    output::stdout(&format!("{info}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabwriter_like_go() {
        let rows = vec![
            vec!["NAME".to_string(), "STATUS".into(), "DIR".into()],
            vec!["a".to_string(), "Running".into(), "~/x".into()],
        ];
        assert_eq!(
            tabwrite(&rows),
            "NAME    STATUS     DIR\na       Running    ~/x\n"
        );
    }

    #[test]
    fn empty_objects_are_dropped() {
        let mut v = json!({"a": {}, "b": {"c": {}}, "d": [{}, 1], "e": []});
        delete_empty_objects(&mut v);
        assert_eq!(v, json!({"d": [1], "e": []}));
    }
}
