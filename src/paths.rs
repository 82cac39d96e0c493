//! Where things live on the host: home, our data directory, Lima's home; `~` expansion.

use std::env;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::filenames;

/// The host locations the program reads and writes, resolved once from the environment.
#[derive(Debug, Clone)]
pub struct HostPaths {
    pub home: PathBuf,
    /// `$XDG_DATA_HOME/claude-vm` or `~/.local/share/claude-vm`: manifests, hand-overs, journal.
    pub data_dir: PathBuf,
    /// `$LIMA_HOME` or `~/.lima`, symlinks resolved as Lima resolves them.
    pub lima_home: PathBuf,
}

impl HostPaths {
    pub fn from_env() -> Result<Self> {
        let home = env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| {
                Error::usage("HOME is not set").with_hint("set HOME to your home directory")
            })?;
        if !home.is_absolute() {
            return Err(
                Error::usage(format!("HOME ({}) is not an absolute path", home.display()))
                    .with_hint("set HOME to an absolute path"),
            );
        }
        let data_dir = match env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
            Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d).join("claude-vm"),
            _ => home.join(".local/share/claude-vm"),
        };
        let lima_home = lima_home(&home, env::var_os("LIMA_HOME").map(PathBuf::from));
        Ok(HostPaths {
            home,
            data_dir,
            lima_home,
        })
    }

    pub fn global_config(&self) -> PathBuf {
        self.home.join(".claude-vm.toml")
    }

    pub fn global_setup_script(&self) -> PathBuf {
        self.home.join(".claude-vm.setup.sh")
    }

    pub fn templates_dir(&self) -> PathBuf {
        self.data_dir.join(filenames::TEMPLATES)
    }

    /// The records of shared bases.
    pub fn bases_dir(&self) -> PathBuf {
        self.templates_dir().join(filenames::BASES)
    }

    pub fn handover_root(&self) -> PathBuf {
        self.data_dir.join(filenames::HANDOVER)
    }

    /// One file per live VM and its owner (`journal.rs`).
    pub fn journal_dir(&self) -> PathBuf {
        self.data_dir.join(filenames::JOURNAL)
    }

    pub fn locks_dir(&self) -> PathBuf {
        self.data_dir.join(filenames::LOCKS)
    }

    /// Approved project files (`trust.rs`).
    pub fn trust_dir(&self) -> PathBuf {
        self.data_dir.join(filenames::TRUST)
    }

    /// What `limactl --version` said, keyed by the binary (`lima/detect.rs`).
    pub fn lima_version_cache(&self) -> PathBuf {
        self.data_dir.join(filenames::LIMA_VERSION_CACHE)
    }

    /// The warm pool of `template` (`pool.rs`).
    pub fn pool_dir(&self, template: &str) -> PathBuf {
        self.data_dir.join(filenames::POOL).join(template)
    }

    /// Build and keeper logs, the update check's log.
    pub fn logs_dir(&self) -> PathBuf {
        self.data_dir.join(filenames::LOGS)
    }

    /// The log `kind` (`filenames::TEMPLATE_LOGS`) of `template`.
    pub fn template_log(&self, template: &str, kind: &str) -> PathBuf {
        self.logs_dir()
            .join(filenames::template_log(template, kind))
    }

    /// Audit reports (`audit/record.rs`).
    pub fn audit_dir(&self) -> PathBuf {
        self.data_dir.join(filenames::AUDIT)
    }

    /// A worktree's remembered main repository, by digest (`worktrees.rs`).
    pub fn worktrees_dir(&self) -> PathBuf {
        self.data_dir.join(filenames::WORKTREES)
    }

    /// Claude Code's own folder on the host.
    pub fn claude_dir(&self) -> PathBuf {
        self.home.join(".claude")
    }
}

/// Lima's rule (pkg/limatype/dirnames): `$LIMA_HOME` or `~/.lima`, with symlinks evaluated
/// when the directory exists. The socket-length budget depends on this exact string.
pub fn lima_home(home: &Path, lima_home_env: Option<PathBuf>) -> PathBuf {
    let dir = match lima_home_env.filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d,
        None => home.join(".lima"),
    };
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

/// Expands a leading `~` or `~/` to `home`. Other `~user` forms are left alone (and later
/// rejected as relative).
pub fn expand_tilde(path: &str, home: &Path) -> PathBuf {
    if path == "~" {
        home.to_path_buf()
    } else if let Some(rest) = path.strip_prefix("~/") {
        home.join(rest)
    } else {
        PathBuf::from(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilde_expands_only_at_the_start() {
        let home = Path::new("/home/me");
        assert_eq!(expand_tilde("~", home), PathBuf::from("/home/me"));
        assert_eq!(expand_tilde("~/a b", home), PathBuf::from("/home/me/a b"));
        assert_eq!(expand_tilde("/x/~/y", home), PathBuf::from("/x/~/y"));
        assert_eq!(expand_tilde("~other/x", home), PathBuf::from("~other/x"));
    }

    #[test]
    fn lima_home_resolves_symlinks_like_lima() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let resolved = lima_home(Path::new("/nowhere"), Some(link));
        assert_eq!(resolved, std::fs::canonicalize(&real).unwrap());
        // A missing directory is taken as given.
        let missing = tmp.path().join("missing");
        assert_eq!(lima_home(Path::new("/h"), Some(missing.clone())), missing);
        assert_eq!(lima_home(Path::new("/h"), None), PathBuf::from("/h/.lima"));
    }
}
