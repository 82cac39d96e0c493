//! `limactl create` and `limactl start` (Lima's start.go), and booting an
//! instance (`instance.Start`), which `clone --start`, `edit --start` and
//! `shell --start` share.

use serde_json::Value;
use std::io::Read;

use crate::agent::{self, Isolation};
use crate::cmd_clone::save_rejected;
use crate::config;
use crate::ctx::Ctx;
use crate::disk;
use crate::editflags;
use crate::fail::{Fail, Res};
use crate::flags::Parsed;
use crate::fsutil;
use crate::gofmt::{self, quote};
use crate::inject;
use crate::logrus;
use crate::names;
use crate::output;
use crate::schema;
use crate::store::{self, Inspect, Instance, Status};
use crate::templates::{self, Locator};
use crate::validate;
use crate::yq;

/// `--list-templates` / `--list-drivers`; true when one was handled.
fn list_only(p: &Parsed) -> Res<bool> {
    if p.bool("list-templates") {
        output::stdout(&format!("{}\n", templates::names().join("\n")))?;
        return Ok(true);
    }
    if p.bool("list-drivers") {
        output::stdout(&format!(
            "{}\n",
            crate::host::registered_vm_types().join("\n")
        ))?;
        return Ok(true);
    }
    Ok(false)
}

fn parse_template(bytes: &[u8], origin: &str) -> Res<Value> {
    schema::unmarshal(bytes, origin).map_err(Fail::fatal)
}

// limatmpl.Read for a non-instance-name argument: (instance name, template).
fn read_template(ctx: &Ctx, arg: &str, name_flag: &str) -> Res<(String, Value)> {
    let pick = |derived: Result<String, String>| -> Res<String> {
        if name_flag.is_empty() {
            derived.map_err(Fail::fatal)
        } else {
            Ok(name_flag.to_string())
        }
    };
    match templates::parse_locator(arg).map_err(Fail::fatal)? {
        Locator::Template(t) => {
            let name = pick(templates::instance_name_from_path(&t))?;
            Ok((name, templates::read(&t, &ctx.host).map_err(Fail::fatal)?))
        }
        Locator::Stdin => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| Fail::fatal(format!("unexpected error reading stdin: {e}")))?;
            Ok((name_flag.to_string(), parse_template(&bytes, "stdin")?))
        }
        Locator::File(path) => {
            let name = pick(templates::instance_name_from_path(arg))?;
            let abs = if path.is_absolute() {
                path
            } else {
                std::env::current_dir()
                    .map(|d| d.join(&path))
                    .unwrap_or(path)
            };
            let bytes = std::fs::read(&abs).map_err(|e| Fail::path("open", &abs, &e))?;
            Ok((
                name,
                parse_template(
                    &bytes,
                    &format!("template {}", quote(&abs.to_string_lossy())),
                )?,
            ))
        }
    }
}

fn apply_exprs(exprs: &[String], doc: &Value) -> Res<Value> {
    if exprs.is_empty() {
        return Ok(doc.clone());
    }
    yq::evaluate(&exprs.join(" | "), doc).map_err(Fail::fatal)
}

fn to_yaml_bytes(doc: &Value) -> Res<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(doc).map_err(|e| Fail::fatal(e.to_string()))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// `instance.Create`: validates, then writes the instance directory and
/// lays out its guest disk. Nothing is left behind on failure.
fn create_instance(ctx: &Ctx, name: &str, doc: &Value) -> Res<Instance> {
    let dir = names::instance_dir(&ctx.lima_home, name)?;
    names::check_socket_length(name, &dir)?;
    if dir.exists() {
        return Err(Fail::fatal(format!(
            "instance {} already exists ({})",
            quote(name),
            quote(&dir.to_string_lossy())
        )));
    }
    let yaml = dir.join(store::LIMA_YAML);
    let bytes = to_yaml_bytes(doc)?;
    let version = ctx.lima_version();
    let cfg = validate::load_validated(&bytes, &yaml, &ctx.lima_home, &ctx.host, &version, true)
        .map_err(Fail::fatal)?;
    ctx.inject.checkpoint("create")?;
    let made = (|| -> Res<()> {
        fsutil::mkdir_all(&dir)?;
        fsutil::chmod(&dir, 0o700)?;
        std::fs::write(&yaml, &bytes).map_err(|e| Fail::path("open", &yaml, &e))?;
        let version_file = dir.join(store::LIMA_VERSION);
        std::fs::write(&version_file, &version)
            .map_err(|e| Fail::path("open", &version_file, &e))?;
        fsutil::chmod(&version_file, 0o444)?;
        disk::create(&dir, &cfg)
    })();
    if let Err(e) = made {
        let _ = fsutil::remove_all(&dir);
        return Err(e);
    }
    ctx.store().require(name, |e| e)
}

// applyYQExpressionToExistingInstance (`limactl start --set ... NAME`).
fn apply_to_existing(ctx: &Ctx, inst: Instance, exprs: &[String]) -> Res<Instance> {
    let yaml = inst.yaml_path();
    let old = std::fs::read(&yaml).map_err(|e| Fail::path("open", &yaml, &e))?;
    let doc = schema::unmarshal(
        &old,
        &format!("main file {}", quote(&yaml.to_string_lossy())),
    )
    .map_err(Fail::fatal)?;
    let new = to_yaml_bytes(&apply_exprs(exprs, &doc)?)?;
    validate::load_validated(
        &new,
        &yaml,
        &ctx.lima_home,
        &ctx.host,
        &ctx.lima_version(),
        true,
    )
    .map_err(|e| save_rejected(&new, &e))?;
    std::fs::write(&yaml, &new).map_err(|e| Fail::path("open", &yaml, &e))?;
    ctx.store().require(&inst.name, |e| e)
}

/// `loadOrCreateInstance`.
fn load_or_create(ctx: &Ctx, p: &Parsed, create_only: bool) -> Res<Instance> {
    let arg = p
        .args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name_flag = p.str("name");
    if !name_flag.is_empty() {
        names::validate(&name_flag)?;
    }
    if arg == "-" {
        if name_flag.is_empty() {
            return Err(Fail::fatal(
                "must pass instance name with --name when reading template from stdin",
            ));
        }
        if p.changed("tty") && ctx.tty {
            return Err(Fail::fatal(
                "cannot use --tty=true when reading template from stdin",
            ));
        }
    }
    let home = &ctx.host.home;
    let (name, doc) = if arg.is_empty() || names::validate(&arg).is_ok() {
        let name = match (arg.is_empty(), name_flag.is_empty()) {
            (true, true) => "default".to_string(),
            (true, false) => name_flag.clone(),
            (false, _) if !name_flag.is_empty() && name_flag != arg => {
                return Err(Fail::fatal(format!(
                    "instance name {} and CLI flag --name={} cannot be specified together",
                    quote(&arg),
                    quote(&name_flag)
                )))
            }
            (false, _) => arg.clone(),
        };
        if let Inspect::Found(inst) = ctx.store().inspect(&name)? {
            if create_only {
                return Err(Fail::fatal(format!(
                    "instance {} already exists",
                    quote(&name)
                )));
            }
            logrus::info(&format!("Using the existing instance {}", quote(&name)));
            let exprs = editflags::yq_expressions(p, false, home)?;
            if exprs.is_empty() {
                return Ok(*inst);
            }
            let joined = exprs.join(" | ");
            return apply_to_existing(ctx, *inst, &exprs).map_err(|e| {
                e.context(&format!(
                    "failed to apply yq expression {} to instance {}",
                    quote(&joined),
                    quote(&name)
                ))
            });
        }
        if !arg.is_empty() && arg != "default" {
            logrus::info(&format!(
                "Creating an instance {} from template:default (Not from template:{name})",
                quote(&name)
            ));
            logrus::warn(&format!(
                "This form is deprecated. Use `limactl create --name={name} template:default` instead"
            ));
        }
        (
            name,
            templates::read("default", &ctx.host).map_err(Fail::fatal)?,
        )
    } else {
        let (name, doc) = read_template(ctx, &arg, &name_flag)?;
        if create_only {
            if let Inspect::Found(_) = ctx.store().inspect(&name)? {
                return Err(Fail::fatal(format!(
                    "instance {} already exists",
                    quote(&name)
                )));
            }
        } else {
            names::validate(&name)?;
        }
        (name, doc)
    };
    let exprs = editflags::yq_expressions(p, true, home)?;
    if ctx.tty {
        return Err(Fail::fatal(
            "the interactive template editor (--tty=true) is not supported by the simulator; pass --tty=false",
        ));
    }
    logrus::info("Terminal is not available, proceeding without opening an editor");
    if let Some(w) = crate::host::guest_user_name(&ctx.host.login).1 {
        logrus::warn(&w);
    }
    let doc = apply_exprs(&exprs, &doc)?;
    create_instance(ctx, &name, &doc)
}

pub fn create(ctx: &mut Ctx, p: &Parsed) -> Res<()> {
    if list_only(p)? {
        return Ok(());
    }
    let inst = load_or_create(ctx, p, true)?;
    logrus::info(&format!(
        "Run `limactl start {}` to start the instance.",
        inst.name
    ));
    Ok(())
}

pub fn start(ctx: &mut Ctx, p: &Parsed) -> Res<()> {
    if list_only(p)? {
        return Ok(());
    }
    let inst = load_or_create(ctx, p, false)?;
    if !inst.errors.is_empty() {
        return Err(Fail::fatal(format!(
            "errors inspecting instance: [{}]",
            inst.errors.join(" ")
        )));
    }
    if inst.status == Status::Running {
        logrus::info(&format!(
            "The instance {} is already running. Run `{}` to open the shell.",
            quote(&inst.name),
            shell_cmd(&inst.name)
        ));
        return Ok(());
    }
    boot(ctx, &inst, p.secs("timeout"))
}

/// Lima's default `--timeout` for a boot (10 minutes).
pub const DEFAULT_TIMEOUT: f64 = 600.0;

/// `instance.LimactlShellCmd`.
fn shell_cmd(name: &str) -> String {
    if name == "default" {
        "lima".into()
    } else {
        format!("limactl shell {name}")
    }
}

fn ssh_port(cfg: &config::Config, name: &str) -> i64 {
    if cfg.ssh_local_port != 0 {
        return cfg.ssh_local_port;
    }
    // A stable stand-in for the free port Lima would pick.
    let hash = name
        .bytes()
        .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
    50000 + (hash % 10000) as i64
}

fn write_boot_files(inst: &Instance, cfg: &config::Config, port: i64) -> Res<()> {
    let ssh = format!(
        "Host {}\n  Hostname 127.0.0.1\n  Port {port}\n  User {}\n",
        names::hostname(&inst.name),
        cfg.user.name
    );
    let ssh_path = inst.dir.join(store::SSH_CONFIG);
    std::fs::write(&ssh_path, ssh).map_err(|e| Fail::path("open", &ssh_path, &e))?;
    let serial = inst.dir.join("serial.log");
    let line = format!(
        "[{}] lima simulator: booting {}\n",
        logrus::timestamp(),
        inst.name
    );
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&serial)
        .map_err(|e| Fail::path("open", &serial, &e))?;
    std::io::Write::write_all(&mut f, line.as_bytes()).map_err(|e| Fail::path("write", &serial, &e))
}

fn boot_plan(ctx: &Ctx, inst: &Instance, cfg: &config::Config) -> agent::BootPlan {
    agent::BootPlan {
        name: inst.name.clone(),
        inst: inst.dir.clone(),
        want: agent::preferred(),
        hostname: names::hostname(&inst.name),
        mounts: cfg.mounts.clone(),
        socket_forwards: cfg
            .port_forwards
            .iter()
            .filter(|r| r.is_reverse_socket())
            .map(|r| crate::forward::Rule {
                guest: r.guest_socket.clone(),
                host: std::path::PathBuf::from(&r.host_socket),
            })
            .collect(),
        user: cfg.user.clone(),
        exe: ctx.exe.clone(),
        claude_code: std::env::var_os(crate::claude_install::REAL_ENV)
            .map(std::path::PathBuf::from),
        network: crate::net::mode_from_env().unwrap_or(crate::net::Mode::User),
        tcp_forwards: crate::net::rules_like_lima(
            cfg.port_forwards.iter().filter_map(tcp_rule).collect(),
            u16::try_from(inst.ssh_port).unwrap_or(0),
        ),
    }
}

// A filled TCP rule (ports, not sockets) as the host agent matches it.
fn tcp_rule(r: &crate::portfwd::PortForward) -> Option<crate::net::TcpRule> {
    if !r.guest_socket.is_empty() || !r.host_socket.is_empty() || r.proto == "udp" {
        return None;
    }
    let port = |p: i64| u16::try_from(p).ok();
    Some(crate::net::TcpRule {
        guest_ip: r.guest_ip.parse().ok()?,
        guest_ip_must_be_zero: r.guest_ip_must_be_zero,
        guest_ports: [port(r.guest_port_range[0])?, port(r.guest_port_range[1])?],
        host_ip: r.host_ip.parse().ok()?,
        host_ports: [port(r.host_port_range[0])?, port(r.host_port_range[1])?],
        ignore: r.ignore,
    })
}

fn check_isolation_env() -> Res<()> {
    match std::env::var("LIMA_SIM_ISOLATION").as_deref() {
        Err(_) | Ok("") | Ok("fallback") => Ok(()),
        Ok(other) => Err(Fail::fatal(format!(
            "LIMA_SIM_ISOLATION: unknown mode {other:?} (only \"fallback\" can be forced)"
        ))),
    }?;
    crate::net::mode_from_env().map(|_| ()).map_err(Fail::fatal)
}

/// `instance.Start`: boots a stopped instance (the "start" effect point).
pub fn boot(ctx: &Ctx, inst: &Instance, timeout: f64) -> Res<()> {
    let cfg = inst.config()?;
    check_isolation_env()?;
    if !cfg.unsupported.is_empty() {
        return Err(Fail::fatal(format!(
            "lima.yaml of instance {} uses {}, which the simulator cannot emulate",
            quote(&inst.name),
            cfg.unsupported.join(", ")
        )));
    }
    let pid_path = inst.dir.join(store::HA_PID);
    if pid_path.exists() {
        return Err(Fail::fatal(format!(
            "instance {} seems running (hint: remove {} if the instance is not actually running)",
            quote(&inst.name),
            quote(&pid_path.to_string_lossy())
        )));
    }
    logrus::info(&format!(
        "Starting the instance {} with internal VM driver {}",
        quote(&inst.name),
        quote(&cfg.vm_type)
    ));
    let delay = ctx.inject.delay_secs("start");
    if timeout > 0.0 && delay > timeout {
        inject::sleep(timeout);
        return Err(Fail::fatal(format!(
            "did not receive an event with the \"running\" status (the simulated boot takes {}, longer than --timeout={})",
            gofmt::format_duration(delay),
            gofmt::format_duration(timeout)
        )));
    }
    inject::sleep(delay);
    ctx.inject.fail_point("start")?;
    disk::prepare_boot(&inst.dir, &ctx.exe)?;
    let port = ssh_port(cfg, &inst.name);
    write_boot_files(inst, cfg, port)?;
    if agent::launch(&boot_plan(ctx, inst, cfg))? == Isolation::Fallback {
        for m in cfg.mounts.iter().filter(|m| m.mount_point != m.location) {
            logrus::warn(&format!(
                "[simulator] fallback mode: mount {} is visible at its host location, not at mountPoint {}",
                quote(&m.location),
                quote(&m.mount_point)
            ));
        }
    }
    logrus::info(&format!("SSH Local Port: {port}"));
    logrus::info(&format!(
        "READY. Run `{}` to open the shell.",
        shell_cmd(&inst.name)
    ));
    if !cfg.message.is_empty() {
        logrus::info(&format!("Message from the instance {}:", quote(&inst.name)));
        output::stderr(&format!("{}\n", cfg.message.trim_end()));
    }
    Ok(())
}
