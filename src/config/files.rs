//! Reading one `.claude-vm.toml`: strict parsing, then validation and path resolution, so
//! that every error can name the file and the key.

use std::path::{Path, PathBuf};

use super::layer::{ClaudeArgs, LayerData, Lists, Names, PackageLists, Scripts};
use super::mounts;
use super::schema::{
    FileLayer, MountLayer, NetworkFileLayer, NetworkLayer, Policy, PortForward, PortLayer, VmLayer,
    CPUS, DISK_GB, MEMORY_GB,
};
use super::suggest;
use super::values;
use crate::error::{Error, Result};
use crate::paths::expand_tilde;

/// Reads `path` if it exists. Relative script paths are taken from the file's directory.
pub fn read(path: &Path, home: &Path) -> Result<Option<LayerData>> {
    Ok(read_with_digest(path, home)?.map(|(data, _)| data))
}

/// Like `read`, with the sha256 of the exact text that was parsed (for trust decisions).
pub fn read_with_digest(path: &Path, home: &Path) -> Result<Option<(LayerData, String)>> {
    // Never read to the end of a FIFO, a device or something huge.
    let text = match crate::fsread::small_regular_file(path, crate::fsread::CONFIG_MAX) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::usage(format!("cannot read {}: {e}", path.display()))
                .with_hint("make it a regular text file (or remove it)"))
        }
    };
    let digest = sha256_hex(text.as_bytes());
    parse(&text, path, home).map(|data| Some((data, digest)))
}

use crate::digest::sha256_hex;

/// Parses and validates the text of a config file that lives at `path`.
pub fn parse(text: &str, path: &Path, home: &Path) -> Result<LayerData> {
    let file: FileLayer = toml::from_str(text).map_err(|e| {
        let hint = suggest::for_unknown_field(e.message()).unwrap_or_else(|| {
            "see the Configuration section of the README for the keys and their types".into()
        });
        Error::usage(format!(
            "invalid configuration in {}:\n{}",
            path.display(),
            indent(
                &e.to_string()
                    .replace(e.message(), &suggest::plain_words(e.message()))
            )
        ))
        .with_hint(hint)
    })?;
    let ctx = FileCtx {
        path,
        dir: path.parent().unwrap_or(Path::new("/")),
        home,
    };
    ctx.normalize(file)
}

struct FileCtx<'a> {
    path: &'a Path,
    dir: &'a Path,
    home: &'a Path,
}

impl FileCtx<'_> {
    fn normalize(&self, file: FileLayer) -> Result<LayerData> {
        let mut data = LayerData::default();
        if let Some(vm) = file.vm {
            data.vm = self.vm(vm)?;
        }
        if let Some(tools) = file.tools {
            for name in tools.keys() {
                check_tool(name)
                    .map_err(|(msg, hint)| self.err(&format!("tools.{name}"), &msg, &hint))?;
            }
            data.tools = tools;
        }
        if let Some(setup) = file.setup {
            data.setup = Lists {
                scripts: self.scripts(setup.scripts.unwrap_or_default(), "setup.scripts")?,
                mounts: self.mounts(setup.mounts.unwrap_or_default(), "setup.mounts")?,
            };
        }
        if let Some(runtime) = file.runtime {
            data.runtime = Scripts {
                scripts: self.scripts(runtime.scripts.unwrap_or_default(), "runtime.scripts")?,
            };
        }
        if let Some(defaults) = file.defaults {
            data.defaults = ClaudeArgs {
                claude_args: defaults.claude_args.unwrap_or_default(),
            };
        }
        data.mounts = self.mounts(file.mounts.unwrap_or_default(), "mounts")?;
        for (name, value) in file.env.unwrap_or_default() {
            values::env_name(&name)
                .and_then(|()| values::env_value(&name, &value))
                .map_err(|m| {
                    self.err(
                        &format!("env.{name}"),
                        &format!("is invalid: {m}"),
                        "fix the variable",
                    )
                })?;
            data.env.insert(name, value);
        }
        if let Some(inherit) = file.inherit {
            let names = |list: Option<Vec<String>>, key: &str| -> Result<Vec<String>> {
                let list = list.unwrap_or_default();
                for (i, name) in list.iter().enumerate() {
                    values::env_name(name).map_err(|m| {
                        self.err(
                            &format!("{key}[{i}]"),
                            &format!("is invalid: {m}"),
                            "fix the name",
                        )
                    })?;
                }
                Ok(list)
            };
            data.inherit = Names {
                env: names(inherit.env, "inherit.env")?,
                host_urls: names(inherit.host_urls, "inherit.host_urls")?,
            };
        }
        if let Some(claude) = file.claude {
            if let Some(v) = &claude.version {
                values::claude_version(v).map_err(|m| {
                    self.err(
                        "claude.version",
                        &format!("is invalid: {m}"),
                        "fix the version",
                    )
                })?;
            }
            data.claude = claude;
        }
        if let Some(packages) = file.packages {
            let system = packages.system.unwrap_or_default();
            for (i, p) in system.iter().enumerate() {
                values::package(p).map_err(|m| {
                    self.err(
                        &format!("packages.system[{i}]"),
                        &format!("is invalid: {m}"),
                        "fix the package name",
                    )
                })?;
            }
            let setup_script = packages
                .setup_script
                .map(|s| {
                    resolve_script(&s, self.dir, self.home).map_err(|m| {
                        self.err(
                            "packages.setup_script",
                            &m,
                            "fix the path (relative paths start at the file's directory)",
                        )
                    })
                })
                .transpose()?;
            data.packages = PackageLists {
                system,
                setup_script,
            };
        }
        if let Some(ssh) = file.ssh {
            data.ssh = ssh;
        }
        for (i, port) in file.ports.unwrap_or_default().into_iter().enumerate() {
            data.ports.push(self.port(i, port)?);
        }
        if let Some(pool) = file.pool {
            for (key, value, range) in [
                ("size", pool.size, super::schema::POOL_SIZE),
                (
                    "idle_minutes",
                    pool.idle_minutes,
                    super::schema::POOL_IDLE_MINUTES,
                ),
            ] {
                if let Some(v) = value.filter(|v| !range.contains(v)) {
                    return Err(self.err(
                        &format!("pool.{key}"),
                        &format!("is {v}, outside {}-{}", range.start(), range.end()),
                        &format!(
                            "set `{key}` to a value from {} to {}",
                            range.start(),
                            range.end()
                        ),
                    ));
                }
            }
            data.pool = pool;
        }
        if let Some(update) = file.update {
            data.update = update;
        }
        if let Some(network) = file.network {
            data.network = self.network(network)?;
        }
        Ok(data)
    }

    fn network(&self, n: NetworkFileLayer) -> Result<NetworkLayer> {
        let policy = n
            .policy
            .map(|p| {
                Policy::parse(&p).ok_or_else(|| {
                    self.err(
                        "network.policy",
                        &format!("is {p:?}, which is not a policy"),
                        "write policy = \"allowlist\" (the default), \"open\" or \"offline\"",
                    )
                })
            })
            .transpose()?;
        let patterns = |key: &str, list: Option<Vec<String>>| -> Result<Vec<String>> {
            let list = list.unwrap_or_default();
            for (i, p) in list.iter().enumerate() {
                network_pattern(p).map_err(|m| {
                    self.err(
                        &format!("{key}[{i}]"),
                        &m,
                        "write a host name such as \"api.github.com\", \"*.githubusercontent.com\" or \"registry.example.com:8443\"",
                    )
                })?;
            }
            Ok(list)
        };
        let host_ports = n.host_ports.unwrap_or_default();
        if let Some(i) = host_ports.iter().position(|p| *p == 0) {
            return Err(self.err(
                &format!("network.host_ports[{i}]"),
                "is 0, which is not a port",
                "list the ports of the host's services a session may reach, from 1 to 65535",
            ));
        }
        Ok(NetworkLayer {
            policy,
            allow: patterns("network.allow", n.allow)?,
            deny: patterns("network.deny", n.deny)?,
            host_ports,
        })
    }

    fn port(&self, i: usize, p: PortLayer) -> Result<PortForward> {
        let host = p.host.unwrap_or(p.guest);
        values::guest_port(p.guest).map_err(|m| {
            self.err(
                &format!("ports[{i}].guest"),
                &format!("is invalid: {m}"),
                "fix the port",
            )
        })?;
        values::host_port(host).map_err(|m| {
            self.err(
                &format!("ports[{i}].host"),
                &format!("is invalid: {m}"),
                "set `host` to a port from 1024 to 65535",
            )
        })?;
        Ok(PortForward {
            guest: p.guest,
            host,
        })
    }

    fn vm(&self, vm: VmLayer) -> Result<VmLayer> {
        let check =
            |key: &str, value: Option<u32>, range: std::ops::RangeInclusive<u32>, unit: &str| {
                match value {
                    Some(v) if !range.contains(&v) => Err(self.err(
                        &format!("vm.{key}"),
                        &format!("is {v}, outside {}-{}{unit}", range.start(), range.end()),
                        &format!(
                            "set `{key}` to a value from {} to {}",
                            range.start(),
                            range.end()
                        ),
                    )),
                    _ => Ok(()),
                }
            };
        check("disk", vm.disk, DISK_GB, " GB")?;
        check("memory", vm.memory, MEMORY_GB, " GB")?;
        check("cpus", vm.cpus, CPUS, "")?;
        if let Some(image) = &vm.image {
            check_image(image, self.home).map_err(|(m, h)| self.err("vm.image", &m, &h))?;
        }
        Ok(vm)
    }

    fn scripts(&self, scripts: Vec<String>, key: &str) -> Result<Vec<PathBuf>> {
        scripts
            .iter()
            .enumerate()
            .map(|(i, s)| {
                resolve_script(s, self.dir, self.home).map_err(|m| {
                    self.err(
                        &format!("{key}[{i}]"),
                        &m,
                        "fix the path (relative paths start at the file's directory)",
                    )
                })
            })
            .collect()
    }

    fn mounts(&self, list: Vec<MountLayer>, key: &str) -> Result<Vec<crate::config::Mount>> {
        list.iter()
            .enumerate()
            .map(|(i, m)| {
                mounts::validate(&m.location, m.mount_point.as_deref(), m.writable, self.home)
                    .map_err(|msg| {
                        self.err(&format!("{key}[{i}]"), &msg, "fix or remove this mount")
                    })
            })
            .collect()
    }

    fn err(&self, key: &str, problem: &str, fix: &str) -> Error {
        Error::usage(format!(
            "invalid configuration in {}: `{key}` {problem}",
            self.path.display()
        ))
        .with_hint(fix.to_owned())
    }
}

/// One `allow`/`deny` entry, checked as the proxy will read it; the message says what is
/// wrong (a scheme, a path, `*`) and what to write.
pub fn network_pattern(text: &str) -> Result<(), String> {
    crate::netpattern::Pattern::parse(text).map(|_| ())
}

/// A script path from a file or flag: `~` expands, relative paths start at `base`, and it
/// must be a readable regular file.
pub fn resolve_script(raw: &str, base: &Path, home: &Path) -> Result<PathBuf, String> {
    let p = expand_tilde(raw, home);
    let p = if p.is_absolute() { p } else { base.join(p) };
    match std::fs::metadata(&p) {
        // Canonical, so one script reached through two spellings runs once.
        Ok(m) if m.is_file() => Ok(std::fs::canonicalize(&p).unwrap_or(p)),
        Ok(_) => Err(format!("`{}` is not a file", p.display())),
        Err(e) => Err(format!("script `{}` cannot be read: {e}", p.display())),
    }
}

/// `[vm] image`: a Lima template name, a URL, or a local template file.
pub fn check_image(image: &str, home: &Path) -> Result<(), (String, String)> {
    let fix = "use `template:debian-13` (a Lima template), an https URL, or an absolute path to a Lima YAML file";
    let template = image
        .strip_prefix("template://")
        .or_else(|| image.strip_prefix("template:"));
    let ok = match template {
        Some(name) => {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
        }
        None if image.starts_with("https://") || image.starts_with("http://") => true,
        None => {
            let p = expand_tilde(image, home);
            if p.is_absolute() && !p.is_file() {
                return Err((format!("is `{image}`, which is not a file"), fix.into()));
            }
            p.is_absolute()
        }
    };
    if ok {
        Ok(())
    } else {
        Err((
            format!("is `{image}`, which is not a template name, URL or absolute file path"),
            fix.into(),
        ))
    }
}

/// Tool names must be ones claude-vm knows.
pub fn check_tool(name: &str) -> Result<(), (String, String)> {
    let known = crate::tools::names();
    if known.contains(&name) {
        return Ok(());
    }
    let list = known.join(", ");
    let hint = match suggest::closest(name, known.iter().copied()) {
        Some(s) => format!("did you mean `{s}`? Known tools: {list}"),
        None => format!("known tools: {list}"),
    };
    Err(("is not a known tool".to_owned(), hint))
}

fn indent(text: &str) -> String {
    text.trim_end()
        .lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        tmp: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(tmp.path().join("proj/scripts")).unwrap();
            std::fs::write(tmp.path().join("proj/scripts/a.sh"), "echo a").unwrap();
            std::fs::create_dir(tmp.path().join("data")).unwrap();
            Fixture { tmp }
        }
        fn file(&self) -> PathBuf {
            self.tmp.path().join("proj/.claude-vm.toml")
        }
        fn parse(&self, text: &str) -> Result<LayerData> {
            parse(text, &self.file(), self.tmp.path())
        }
        fn err(&self, text: &str) -> Error {
            self.parse(text).unwrap_err()
        }
    }

    #[test]
    fn a_full_file_normalizes_paths() {
        let f = Fixture::new();
        let d = f
            .parse(
                r#"
[vm]
disk = 30
[tools]
node = true
[setup]
scripts = ["./scripts/a.sh"]
[[setup.mounts]]
location = "~/data"
mount_point = "/tmp/data"
[runtime]
scripts = ["scripts/a.sh"]
[defaults]
claude_args = ["--model", "opus"]
[[mounts]]
location = "~/data"
writable = true
"#,
            )
            .unwrap();
        assert_eq!(d.vm.disk, Some(30));
        let a = std::fs::canonicalize(f.tmp.path().join("proj/scripts/a.sh")).unwrap();
        assert_eq!(d.setup.scripts, vec![a.clone()]);
        assert_eq!(d.runtime.scripts, vec![a]);
        assert_eq!(d.setup.mounts[0].mount_point.as_deref(), Some("/tmp/data"));
        assert!(
            !d.setup.mounts[0].writable,
            "TOML mounts are read-only unless asked"
        );
        assert!(d.mounts[0].writable);
        assert_eq!(d.defaults.claude_args, ["--model", "opus"]);
    }

    #[test]
    fn unknown_keys_get_a_suggestion_and_the_line() {
        let f = Fixture::new();
        let e = f.err("[vm]\ndsk = 3\n");
        assert!(e.message().contains(".claude-vm.toml"), "{}", e.message());
        assert!(e.message().contains("line 2"), "{}", e.message());
        assert_eq!(e.hint(), Some("did you mean `disk`?"));
        let e = f.err("[vmm]\ndisk = 3\n");
        assert_eq!(e.hint(), Some("did you mean `vm`?"));
    }

    #[test]
    fn wrong_types_and_ranges_name_the_key() {
        let f = Fixture::new();
        let e = f.err("[vm]\ndisk = \"thirty\"\n");
        assert!(e.message().contains("invalid type"), "{}", e.message());
        assert!(e.message().contains("disk"), "{}", e.message());
        let e = f.err("[vm]\nmemory = 65\n");
        assert!(
            e.message().contains("`vm.memory` is 65, outside 1-64 GB"),
            "{}",
            e.message()
        );
        let e = f.err("[vm]\ncpus = 0\n");
        assert!(e.message().contains("`vm.cpus`"), "{}", e.message());
        let e = f.err("[vm]\nimage = \"debian\"\n");
        assert!(e.message().contains("`vm.image`"), "{}", e.message());
    }

    #[test]
    fn bad_paths_name_the_entry() {
        let f = Fixture::new();
        let e = f.err("[runtime]\nscripts = [\"./scripts/a.sh\", \"nope.sh\"]\n");
        assert!(
            e.message().contains("`runtime.scripts[1]`"),
            "{}",
            e.message()
        );
        let e = f.err("[[mounts]]\nlocation = \"relative/dir\"\n");
        assert!(
            e.message().contains("`mounts[0]`") && e.message().contains("relative"),
            "{}",
            e.message()
        );
        let e = f.err("[[setup.mounts]]\nlocation = \"/does/not/exist\"\n");
        assert!(e.message().contains("`setup.mounts[0]`"), "{}", e.message());
    }

    #[test]
    fn unknown_tools_list_the_known_ones() {
        let f = Fixture::new();
        let e = f.err("[tools]\nnod = true\n");
        assert!(
            e.message().contains("`tools.nod` is not a known tool"),
            "{}",
            e.message()
        );
        let hint = e.hint().unwrap();
        assert!(
            hint.contains("did you mean `node`?") && hint.contains("docker"),
            "{hint}"
        );
    }
}
