//! `claude-vm update [--check] [--version X] [-y]`, and the detached check behind the
//! "new version available" notice.

use std::path::Path;

use crate::cli::UpdateArgs;
use crate::error::{Error, Result};
use crate::ui::Ui;
use crate::update::{self, notice, Source};

pub fn run(ui: &Ui, args: &UpdateArgs, dry_run: bool, data_dir: Option<&Path>) -> Result<i32> {
    let env = |name: &str| std::env::var(name).ok();
    let source = Source::from_env(&env)?;
    let current = update::current_version();
    let wanted = args
        .version
        .as_deref()
        .map(update::parse_version)
        .transpose()?;

    let latest = match &wanted {
        Some(_) => None,
        None => {
            let step = ui.step(format!(
                "asking {} for the latest release",
                source.describe()
            ));
            let latest = source.latest()?;
            step.done();
            if let Some(dir) = data_dir {
                remember(dir, &latest);
            }
            Some(latest)
        }
    };

    if args.check {
        let latest = latest.unwrap_or_else(|| current.clone());
        if latest > current {
            crate::outln!(
                "claude-vm {latest} is available (this is {current}): run `claude-vm update`"
            );
        } else {
            crate::outln!("claude-vm {current} is up to date (latest release: {latest})");
        }
        return Ok(0);
    }

    let target = match (wanted, latest) {
        (Some(v), _) if v == current => {
            crate::outln!("claude-vm {current} is already installed");
            return Ok(0);
        }
        (Some(v), _) => v,
        (None, Some(latest)) if latest > current => latest,
        (None, _) => {
            crate::outln!("claude-vm {current} is up to date");
            return Ok(0);
        }
    };
    let release = source.release(&target)?;
    if !release.has_asset {
        return Err(Error::failure(format!(
            "claude-vm {target} has no build for this machine ({} is missing from the release)",
            update::asset_name()
        ))
        .with_hint("build from source: ./install.sh in a checkout of that release"));
    }
    let exe = std::env::current_exe()
        .map_err(|e| Error::failure(format!("cannot locate the running claude-vm: {e}")))?;
    if dry_run {
        crate::outln!(
            "would replace claude-vm {current} with {target} ({}) from {}",
            exe.display(),
            source.describe()
        );
        return Ok(0);
    }
    if !args.yes {
        let question = format!(
            "Replace claude-vm {current} with {target} ({})?",
            exe.display()
        );
        match ui.confirm(&question, true) {
            Some(true) => {}
            Some(false) => {
                return Err(Error::usage("nothing was changed").with_hint("answer y to update"))
            }
            None => {
                return Err(Error::usage(format!(
                    "refusing to replace claude-vm {current} with {target} without confirmation"
                ))
                .with_hint("pass -y to update without asking"))
            }
        }
    }
    let step = ui.step(format!(
        "downloading claude-vm {target} and checking its checksum"
    ));
    let path = source.install(&release)?;
    step.done();
    crate::outln!(
        "claude-vm {current} -> {target}: {} was replaced",
        path.display()
    );
    Ok(0)
}

/// What `update --check` learnt saves the background check a request.
fn remember(data_dir: &Path, latest: &semver::Version) {
    let path = notice::state_path(data_dir);
    let mut state = notice::read_state(&path);
    state.checked_at = Some(notice::now());
    state.latest = Some(latest.to_string());
    notice::write_state(&path, &state);
}
