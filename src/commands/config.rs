//! `claude-vm config show|validate`.

use super::{overrides, Context};
use crate::cli::{ConfigCommand, SessionOpts};
use crate::config;
use crate::error::{Error, Result};

pub fn run(ctx: &Context, cmd: ConfigCommand, opts: &SessionOpts) -> Result<i32> {
    match cmd {
        ConfigCommand::Show => {
            let loaded = ctx.load_config(&overrides(opts))?;
            let text = toml::to_string_pretty(&loaded.config)
                .map_err(|e| Error::failure(format!("cannot print the configuration: {e}")))?;
            println!(
                "# effective configuration for {}",
                ctx.project.root.display()
            );
            for key in ["vm.disk", "vm.memory", "vm.cpus", "vm.image"] {
                if let Some(origin) = loaded.origin_of(key) {
                    println!("# {key} from {origin}");
                }
            }
            print!("{text}");
            Ok(0)
        }
        ConfigCommand::Validate { file: Some(file) } => {
            let file = ctx.cwd.join(file);
            config::validate_file(&file, &ctx.paths.home)?;
            println!("{} is valid", file.display());
            Ok(0)
        }
        ConfigCommand::Validate { file: None } => {
            let loaded = ctx.load_config(&overrides(opts))?;
            if loaded.files.is_empty() {
                println!("no configuration files; the defaults are valid");
            } else {
                for f in &loaded.files {
                    println!("{} is valid", f.display());
                }
            }
            Ok(0)
        }
    }
}
