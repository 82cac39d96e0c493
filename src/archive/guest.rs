//! What export and import do inside the guest (a disk image is opaque to the host: its
//! files are changed by the guest itself, in a booted VM, as Lima would).

use super::format::GuestUser;
use crate::script::quote;

/// Credential files a template may hold, under the guest home: `claude-vm login`'s (Claude
/// Code's own login), the GitHub CLI's and git's credential stores.
pub const CREDENTIALS: &[&str] = &[
    ".claude/.credentials.json",
    ".config/gh/hosts.yml",
    ".git-credentials",
    ".config/git/credentials",
];

const MARK: &str = "claude-vm-credential ";

/// Lists the credential files present and, unless `keep`, removes them (from the export's
/// own clone, never from the template).
pub fn credentials_script(keep: bool) -> String {
    let files: Vec<String> = CREDENTIALS.iter().map(|f| quote(f).into_owned()).collect();
    format!(
        "set -u\ncd \"$HOME\" || exit 1\nfor f in {}; do\n  if [ -e \"$f\" ] || [ -L \"$f\" ]; then\n    printf '{MARK}%s\\n' \"$f\"\n    {}\n  fi\ndone\nsync\n",
        files.join(" "),
        if keep { ":" } else { "rm -f -- \"$f\" || exit 1" }
    )
}

/// The credential files the script reported: only names from `CREDENTIALS` count (the
/// output comes from the guest).
pub fn credentials_found(output: &str) -> Vec<String> {
    let mut out: Vec<String> = output
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix(MARK))
        .filter(|f| CREDENTIALS.contains(f))
        .map(|f| format!("~/{f}"))
        .collect();
    out.dedup();
    out
}

/// Gives the exporter's home to this guest's user: Lima recreates the user from cidata at
/// boot (the importer's name and uid, an empty home); the exported home replaces it and its
/// files become the new user's. The old path stays as a link to the new home, because
/// installers record absolute paths (native Claude Code's links, rustup's env file).
pub fn rehome_script(old: &GuestUser) -> String {
    format!(
        r#"set -eu
old_home={home}
new_home="$HOME"
uid="$(id -u)"
gid="$(id -g)"
if [ "$old_home" != "$new_home" ] && [ -d "$old_home" ] && [ ! -L "$old_home" ]; then
  sudo -n rm -rf -- "$new_home"
  sudo -n mv -- "$old_home" "$new_home"
  sudo -n ln -s -- "$new_home" "$old_home"
fi
sudo -n chown -R -h "$uid:$gid" -- "$new_home"
sync
printf 'claude-vm-rehomed %s\n' "$new_home"
"#,
        home = quote(&old.home),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_credential_files_are_reported() {
        let out = "claude-vm-credential .git-credentials\nclaude-vm-credential /etc/shadow\nnoise\nclaude-vm-credential .config/gh/hosts.yml\n";
        assert_eq!(
            credentials_found(out),
            ["~/.git-credentials", "~/.config/gh/hosts.yml"]
        );
        assert!(credentials_script(false).contains("rm -f"));
        assert!(!credentials_script(true).contains("rm -f"));
    }

    #[test]
    fn the_old_home_is_quoted() {
        let s = rehome_script(&GuestUser {
            name: "a".into(),
            uid: 1,
            home: "/home/a b$(x).linux".into(),
        });
        assert!(s.contains("old_home='/home/a b$(x).linux'"), "{s}");
    }
}
