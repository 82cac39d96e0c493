//! Lima instance names: the per-repository template and the clones made from it.
//!
//! A template is `claude-vm-<slug>-<hash>`: the slug keeps it readable, the hash of the main
//! repository's path keeps it unique and stable. Clones append `.<role>-<id>`. Every name
//! must satisfy Lima's identifier rule and leave room for Lima's longest socket path under
//! the real `$LIMA_HOME`, which is computed, not assumed.
//!
//! A shared base (what several projects' templates are cloned from) is
//! `claude-vm_base-<12 hex of its fingerprint>`: the `_` keeps it apart from every template
//! name (a slug never holds one), and it has no clones of its own.

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{Error, Result};

pub const PREFIX: &str = "claude-vm-";
/// A shared base's name starts with this, then [`BASE_HASH_LEN`] hex digits.
pub const BASE_PREFIX: &str = "claude-vm_base-";
const BASE_HASH_LEN: usize = 12;
/// The longest socket file Lima puts in an instance directory (`filenames.LongestSock`).
const LONGEST_SOCK: &str = "ssh.sock.1234567890123456";
/// UNIX_PATH_MAX on macOS, the tighter of the two hosts Lima runs on (Linux has 108). Using
/// it everywhere keeps a name valid wherever the same `$LIMA_HOME` length is used.
pub const UNIX_PATH_MAX: usize = 104;
/// Lima's identifier length limit.
const MAX_NAME: usize = 76;
const HASH_LEN: usize = 8;
const ID_LEN: usize = 6;

/// What a clone of the template is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A session running claude or a shell.
    Run,
    /// A template being built, swapped in when complete.
    Build,
    /// A pre-booted clone waiting for a session.
    Warm,
    /// The template a rebuild replaced, moved aside until the new one is in (`swap.rs`).
    Old,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Run, Role::Build, Role::Warm, Role::Old];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Run => "run",
            Role::Build => "build",
            Role::Warm => "warm",
            Role::Old => "old",
        }
    }

    fn longest_suffix() -> usize {
        Role::ALL
            .iter()
            .map(|r| 1 + r.as_str().len() + 1 + ID_LEN)
            .max()
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateName(String);

impl TemplateName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name of a clone of this template in `role`, with a random id.
    pub fn instance(&self, role: Role) -> String {
        self.instance_with_id(role, &random_id())
    }

    pub fn instance_with_id(&self, role: Role, id: &str) -> String {
        format!("{}.{}-{}", self.0, role.as_str(), id)
    }
}

impl fmt::Display for TemplateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An instance name claude-vm made, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ours {
    Template(TemplateName),
    Clone {
        template: TemplateName,
        role: Role,
        id: String,
    },
    /// A shared base (`claude-vm_base-<hex>`).
    Base(String),
}

/// The name of the shared base whose fingerprint digest is `digest` (hex).
pub fn base_name(digest: &str) -> String {
    let hex: String = digest
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .take(BASE_HASH_LEN)
        .collect();
    format!("{BASE_PREFIX}{hex:0<BASE_HASH_LEN$}")
}

fn is_base_name(name: &str) -> bool {
    name.strip_prefix(BASE_PREFIX).is_some_and(|hex| {
        hex.len() == BASE_HASH_LEN && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Recognises our instances among everything `limactl list` shows.
pub fn parse(name: &str) -> Option<Ours> {
    if is_base_name(name) {
        return Some(Ours::Base(name.to_owned()));
    }
    if !name.starts_with(PREFIX) || !is_valid_lima_name(name) {
        return None;
    }
    match name.split_once('.') {
        None => Some(Ours::Template(TemplateName(name.to_owned()))),
        Some((template, rest)) => {
            let (role, id) = rest.split_once('-')?;
            let role = Role::ALL.into_iter().find(|r| r.as_str() == role)?;
            if id.len() != ID_LEN || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return None;
            }
            Some(Ours::Clone {
                template: TemplateName(template.to_owned()),
                role,
                id: id.to_owned(),
            })
        }
    }
}

/// The template name for the repository at `main_root` (already canonical), fitted to the
/// socket-path budget of `lima_home`.
pub fn template_name(main_root: &Path, lima_home: &Path) -> Result<TemplateName> {
    let budget = name_budget(lima_home)?;
    let hash = path_hash(main_root);
    let fixed = PREFIX.len() + 1 + HASH_LEN + Role::longest_suffix();
    let slug_room = budget.saturating_sub(fixed);
    let slug = slug(
        main_root
            .file_name()
            .map(|n| n.as_bytes())
            .unwrap_or_default(),
        slug_room,
    );
    let name = if slug.is_empty() {
        format!("{PREFIX}{hash}")
    } else {
        format!("{PREFIX}{slug}-{hash}")
    };
    debug_assert!(is_valid_lima_name(&name), "{name}");
    Ok(TemplateName(name))
}

/// How much room `lima_home` leaves for instance names, for `doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// Characters in `$LIMA_HOME`.
    pub home_len: usize,
    /// The longest instance name Lima accepts there.
    pub budget: usize,
    /// The shortest names claude-vm can make (no project name, only the hash).
    pub minimum: usize,
    /// Characters left for the project's name in template names.
    pub slug_room: usize,
    /// The longest `$LIMA_HOME` that still fits the minimum.
    pub max_home: usize,
}

pub fn room(lima_home: &Path) -> Room {
    let home_len = lima_home.as_os_str().len();
    let overhead = home_len + 1 + 1 + LONGEST_SOCK.len();
    let budget = (UNIX_PATH_MAX - 1).saturating_sub(overhead).min(MAX_NAME);
    // A base's name is fixed-length; the shortest template clone's name is the other bound.
    let minimum =
        (PREFIX.len() + HASH_LEN + Role::longest_suffix()).max(BASE_PREFIX.len() + BASE_HASH_LEN);
    Room {
        home_len,
        budget,
        minimum,
        slug_room: budget.saturating_sub(PREFIX.len() + 1 + HASH_LEN + Role::longest_suffix()),
        max_home: UNIX_PATH_MAX - 1 - (2 + LONGEST_SOCK.len()) - minimum,
    }
}

/// How long an instance name may be under `lima_home`: Lima requires
/// `len("$LIMA_HOME/NAME/ssh.sock.1234567890123456") < UNIX_PATH_MAX`, and at most 76.
fn name_budget(lima_home: &Path) -> Result<usize> {
    let Room {
        home_len,
        budget,
        minimum,
        max_home,
        ..
    } = room(lima_home);
    if budget < minimum {
        return Err(Error::usage(format!(
            "Lima's home {} is {home_len} characters long, which leaves no room for instance \
             names: Lima's socket paths must stay under {UNIX_PATH_MAX} characters",
            lima_home.display()
        ))
        .with_hint(format!(
            "set LIMA_HOME to a directory whose path has at most {max_home} characters, e.g. ~/.lima"
        )));
    }
    Ok(budget)
}

/// Lower-case ASCII letters and digits of the directory name, other runs as one `-`, cut to
/// `room` characters. Non-ASCII names give an empty slug; the hash alone still identifies them.
fn slug(dir_name: &[u8], room: usize) -> String {
    let mut out = String::new();
    for &b in dir_name {
        if b.is_ascii_alphanumeric() {
            out.push(b.to_ascii_lowercase() as char);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(room);
    out.trim_end_matches('-').to_owned()
}

fn path_hash(path: &Path) -> String {
    let mut hex = crate::digest::sha256_hex(path.as_os_str().as_bytes());
    hex.truncate(HASH_LEN);
    hex
}

/// A short random identifier for clones: lower-case letters and digits.
pub fn random_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..ID_LEN)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

/// Lima's identifier rule: `^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$`, at most 76 characters.
pub fn is_valid_lima_name(name: &str) -> bool {
    if name.is_empty() || name.len() > MAX_NAME {
        return false;
    }
    let mut prev_sep = true;
    for b in name.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => prev_sep = false,
            b'.' | b'_' | b'-' if !prev_sep => prev_sep = true,
            _ => return false,
        }
    }
    !prev_sep
}

/// The longest path Lima will build for `name` under `lima_home`.
#[cfg(test)]
pub fn longest_socket_path(lima_home: &Path, name: &str) -> usize {
    lima_home.as_os_str().len() + 1 + name.len() + 1 + LONGEST_SOCK.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn longest_instance(t: &TemplateName) -> String {
        t.instance_with_id(Role::Build, "abcdef")
    }

    #[test]
    fn readable_stable_and_unique() {
        let home = Path::new("/Users/alexander/.lima");
        let a = template_name(Path::new("/Users/alexander/src/My Project"), home).unwrap();
        let again = template_name(Path::new("/Users/alexander/src/My Project"), home).unwrap();
        let b = template_name(Path::new("/Users/alexander/work/My Project"), home).unwrap();
        assert_eq!(a, again);
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("claude-vm-my-project-"), "{a}");
        assert!(is_valid_lima_name(a.as_str()));
    }

    #[test]
    fn every_clone_fits_the_socket_budget_for_many_home_lengths() {
        for len in 1..=45 {
            let home = PathBuf::from(format!("/{}", "h".repeat(len - 1)));
            let t = template_name(
                Path::new("/src/an-extremely-long-repository-name-indeed"),
                &home,
            )
            .unwrap();
            for role in Role::ALL {
                let inst = t.instance_with_id(role, "zzzzzz");
                assert!(is_valid_lima_name(&inst), "{inst}");
                assert!(
                    longest_socket_path(&home, &inst) < UNIX_PATH_MAX,
                    "{home:?} {inst}"
                );
            }
        }
    }

    #[test]
    fn typical_macos_home_keeps_a_readable_slug() {
        let home = Path::new("/Users/alexander/.lima");
        let t = template_name(Path::new("/Users/alexander/src/webapp"), home).unwrap();
        assert!(t.as_str().contains("webapp"));
        assert!(longest_socket_path(home, &longest_instance(&t)) < UNIX_PATH_MAX);
    }

    #[test]
    fn a_home_too_long_for_any_name_is_a_clear_error() {
        let home = PathBuf::from(format!("/{}", "x".repeat(80)));
        let err = template_name(Path::new("/src/p"), &home).unwrap_err();
        assert!(
            err.message().contains("no room for instance names"),
            "{}",
            err.message()
        );
        assert!(err.hint().unwrap().contains("LIMA_HOME"));
    }

    #[test]
    fn unicode_and_punctuation_make_safe_names() {
        let home = Path::new("/h/.lima");
        for dir in [
            "项目",
            "café au lait",
            "a$b`c'd\"e\\f",
            "--x--",
            "ÅÄÖ-2",
            "\u{1F600}",
        ] {
            let t = template_name(&Path::new("/src").join(dir), home).unwrap();
            assert!(is_valid_lima_name(t.as_str()), "{dir:?} -> {t}");
            assert!(is_valid_lima_name(&longest_instance(&t)));
        }
        let t = template_name(Path::new("/src/项目"), home).unwrap();
        assert_eq!(t.as_str().len(), PREFIX.len() + HASH_LEN);
        let t = template_name(Path::new("/src/café au lait"), home).unwrap();
        assert!(t.as_str().starts_with("claude-vm-caf-au-lait-"), "{t}");
    }

    #[test]
    fn parse_recognises_only_our_names() {
        let t = template_name(Path::new("/src/p"), Path::new("/h/.lima")).unwrap();
        assert_eq!(parse(t.as_str()), Some(Ours::Template(t.clone())));
        let run = t.instance_with_id(Role::Run, "a1b2c3");
        assert_eq!(
            parse(&run),
            Some(Ours::Clone {
                template: t.clone(),
                role: Role::Run,
                id: "a1b2c3".into()
            })
        );
        let base = base_name(&"ab".repeat(32));
        assert_eq!(base, "claude-vm_base-abababababab");
        assert_eq!(parse(&base), Some(Ours::Base(base.clone())));
        assert!(is_valid_lima_name(&base));
        assert!(base.len() <= room(Path::new("/h/.lima")).minimum);
        assert_eq!(parse("claude-vm_base-abc"), None, "too short");
        assert_eq!(parse("claude-vm_base-ABABABABABAB"), None, "upper case");
        assert_eq!(parse("claude-vm_base-abababababab.run-a1b2c3"), None);
        assert_eq!(parse("default"), None);
        assert_eq!(parse("claude-vm-x.oops-a1b2c3"), None);
        assert_eq!(parse("claude-vm-x.run-toolong1"), None);
    }

    #[test]
    fn room_matches_the_names_made() {
        let home = Path::new("/Users/alexander/.lima");
        let r = room(home);
        assert_eq!(r.home_len, home.as_os_str().len());
        let t = template_name(
            Path::new("/src/an-extremely-long-repository-name-indeed"),
            home,
        )
        .unwrap();
        assert!(longest_instance(&t).len() <= r.budget);
        assert!(r.slug_room > 0 && r.budget >= r.minimum);
        let long = PathBuf::from(format!("/{}", "x".repeat(r.max_home - 1)));
        assert!(
            template_name(Path::new("/p"), &long).is_ok(),
            "max_home fits"
        );
        let longer = PathBuf::from(format!("/{}", "x".repeat(r.max_home)));
        assert!(template_name(Path::new("/p"), &longer).is_err());
        assert_eq!(room(&longer).slug_room, 0);
    }

    #[test]
    fn lima_name_rule() {
        assert!(is_valid_lima_name("a"));
        assert!(is_valid_lima_name("a.b-c_d"));
        assert!(!is_valid_lima_name("a--b"));
        assert!(!is_valid_lima_name("-a"));
        assert!(!is_valid_lima_name("a-"));
        assert!(!is_valid_lima_name("a b"));
        assert!(!is_valid_lima_name(&"a".repeat(77)));
    }

    #[test]
    fn random_ids_are_well_formed() {
        let id = random_id();
        assert_eq!(id.len(), ID_LEN);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    }
}
