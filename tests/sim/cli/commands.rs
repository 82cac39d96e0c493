//! The command tree: each Lima command the simulator knows, with its flags
//! exactly as Lima registers them, and cobra-style help texts.

use crate::ctx::Ctx;
use crate::editflags;
use crate::fail::Res;
use crate::flags::{flag, Kind, Parsed, Spec};
use crate::{cmd_clone, cmd_copy, cmd_create, cmd_list, cmd_shell, cmd_stop};

#[derive(Clone, Copy)]
pub enum ArgRule {
    Exact(usize),
    Min(usize),
    Max(usize),
    Any,
    None,
}

pub struct Command {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub usage: &'static str,
    pub short: &'static str,
    pub args: ArgRule,
    pub flags: Vec<Spec>,
    pub interspersed: bool,
    pub run: fn(&mut Ctx, &Parsed) -> Res<()>,
}

pub const GLOBAL: &[Spec] = &[
    flag("log-level", Kind::Str),
    flag("log-format", Kind::Str).default("text"),
    flag("debug", Kind::Bool),
    flag("tty", Kind::Bool),
    flag("yes", Kind::Bool).short('y'),
    flag("help", Kind::Bool).short('h'),
];

pub const ROOT_ONLY: &[Spec] = &[flag("version", Kind::Bool).short('v')];

/// Lima commands this simulator recognizes but does not emulate.
pub const NOT_EMULATED: &[&str] = &[
    "validate",
    "prune",
    "hostagent",
    "guest-install",
    "show-ssh",
    "debug",
    "factory-reset",
    "disk",
    "usernet",
    "generate-doc",
    "genschema",
    "snapshot",
    "tunnel",
    "template",
    "restart",
    "sudoers",
    "start-at-login",
    "network",
    "completion",
];

fn create_flags(start: bool) -> Vec<Spec> {
    let mut v = vec![
        flag("name", Kind::Str),
        flag("list-templates", Kind::Bool),
        flag("list-drivers", Kind::Bool),
    ];
    v.extend_from_slice(editflags::EDIT);
    v.extend_from_slice(editflags::CREATE_ONLY);
    if start {
        v.push(flag("foreground", Kind::Bool));
        v.push(flag("timeout", Kind::Duration).default("10m"));
        v.push(flag("progress", Kind::Bool));
    }
    v
}

fn edit_flags() -> Vec<Spec> {
    let mut v = vec![flag("start", Kind::Bool)];
    v.extend_from_slice(editflags::EDIT);
    v
}

pub fn commands() -> Vec<Command> {
    let force = || vec![flag("force", Kind::Bool).short('f')];
    vec![
        Command {
            name: "create",
            aliases: &[],
            usage: "create FILE.yaml|URL",
            short: "Create an instance of Lima",
            args: ArgRule::Max(1),
            flags: create_flags(false),
            interspersed: true,
            run: cmd_create::create,
        },
        Command {
            name: "start",
            aliases: &[],
            usage: "start NAME|FILE.yaml|URL",
            short: "Start an instance of Lima",
            args: ArgRule::Max(1),
            flags: create_flags(true),
            interspersed: true,
            run: cmd_create::start,
        },
        Command {
            name: "stop",
            aliases: &[],
            usage: "stop INSTANCE",
            short: "Stop an instance",
            args: ArgRule::Max(1),
            flags: force(),
            interspersed: true,
            run: cmd_stop::stop,
        },
        Command {
            name: "shell",
            aliases: &[],
            usage: "shell [flags] INSTANCE [COMMAND...]",
            short: "Execute shell in Lima",
            args: ArgRule::Min(1),
            flags: vec![
                flag("shell", Kind::Str),
                flag("workdir", Kind::Str),
                flag("reconnect", Kind::Bool),
                flag("preserve-env", Kind::Bool),
                flag("start", Kind::Bool),
                flag("sync", Kind::Str),
            ],
            interspersed: false,
            run: cmd_shell::shell,
        },
        Command {
            name: "copy",
            aliases: &["cp"],
            usage: "copy SOURCE ... TARGET",
            short: "Copy files between host and guest",
            args: ArgRule::Min(2),
            flags: vec![
                flag("recursive", Kind::Bool).short('r'),
                flag("verbose", Kind::Bool).short('v'),
                flag("backend", Kind::Str).default("auto"),
            ],
            interspersed: true,
            run: cmd_copy::copy,
        },
        Command {
            name: "list",
            aliases: &["ls"],
            usage: "list [flags] [INSTANCE]...",
            short: "List instances of Lima",
            args: ArgRule::Any,
            flags: vec![
                flag("format", Kind::Str).short('f').default("table"),
                flag("list-fields", Kind::Bool),
                flag("json", Kind::Bool),
                flag("quiet", Kind::Bool).short('q'),
                flag("all-fields", Kind::Bool),
                flag("yq", Kind::StrArray),
            ],
            interspersed: true,
            run: cmd_list::list,
        },
        Command {
            name: "delete",
            aliases: &["remove", "rm"],
            usage: "delete INSTANCE [INSTANCE, ...]",
            short: "Delete an instance of Lima",
            args: ArgRule::Min(1),
            flags: force(),
            interspersed: true,
            run: cmd_stop::delete,
        },
        Command {
            name: "info",
            aliases: &[],
            usage: "info",
            short: "Show diagnostic information",
            args: ArgRule::None,
            flags: vec![flag("yq", Kind::Str).default(".")],
            interspersed: true,
            run: cmd_list::info,
        },
        Command {
            name: "edit",
            aliases: &[],
            usage: "edit INSTANCE|FILE.yaml",
            short: "Edit an instance of Lima or a template",
            args: ArgRule::Max(1),
            flags: edit_flags(),
            interspersed: true,
            run: cmd_clone::edit,
        },
        Command {
            name: "protect",
            aliases: &[],
            usage: "protect INSTANCE [INSTANCE, ...]",
            short: "Protect an instance to prohibit accidental removal",
            args: ArgRule::Min(1),
            flags: vec![],
            interspersed: true,
            run: cmd_stop::protect,
        },
        Command {
            name: "unprotect",
            aliases: &[],
            usage: "unprotect INSTANCE [INSTANCE, ...]",
            short: "Unprotect an instance",
            args: ArgRule::Min(1),
            flags: vec![],
            interspersed: true,
            run: cmd_stop::unprotect,
        },
        Command {
            name: "clone",
            aliases: &[],
            usage: "clone OLDINST NEWINST",
            short: "Clone an instance of Lima",
            args: ArgRule::Exact(2),
            flags: edit_flags(),
            interspersed: true,
            run: cmd_clone::clone,
        },
        Command {
            name: "rename",
            aliases: &[],
            usage: "rename OLDINST NEWINST",
            short: "Rename an instance of Lima",
            args: ArgRule::Exact(2),
            flags: edit_flags(),
            interspersed: true,
            run: cmd_clone::rename,
        },
    ]
}

pub fn use_line(c: &Command) -> String {
    let line = format!("limactl {}", c.usage);
    if line.contains("[flags]") {
        line
    } else {
        format!("{line} [flags]")
    }
}

pub fn help_text(c: &Command) -> String {
    let mut s = format!("{}\n\nUsage:\n  {}\n", c.short, use_line(c));
    if !c.aliases.is_empty() {
        s.push_str(&format!(
            "\nAliases:\n  {}, {}\n",
            c.name,
            c.aliases.join(", ")
        ));
    }
    let list = |specs: &[Spec]| -> String {
        specs
            .iter()
            .map(|f| match f.short {
                Some(ch) => format!("  -{ch}, --{}\n", f.name),
                None => format!("      --{}\n", f.name),
            })
            .collect()
    };
    if !c.flags.is_empty() {
        s.push_str(&format!("\nFlags:\n{}", list(&c.flags)));
    }
    s.push_str(&format!("\nGlobal Flags:\n{}", list(GLOBAL)));
    s
}

pub fn root_help(cmds: &[Command]) -> String {
    let mut s = String::from(
        "Lima: Linux virtual machines (simulator for tests)\n\nUsage:\n  limactl [command]\n\nAvailable Commands:\n",
    );
    let mut sorted: Vec<&Command> = cmds.iter().collect();
    sorted.sort_by_key(|c| c.name);
    for c in sorted {
        s.push_str(&format!("  {:<12}{}\n", c.name, c.short));
    }
    s.push_str("\nFlags:\n  -h, --help\n  -v, --version\n");
    s
}
