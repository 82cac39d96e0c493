//! Mount validation, shared by config files and the `--mount` flag (docker-style specs).

use std::path::Path;

use super::schema::Mount;
use crate::paths::expand_tilde;

/// Guest paths Lima refuses as mount points (pkg/limayaml/validate.go).
const SYSTEM_PATHS: &[&str] = &[
    "/", "/bin", "/dev", "/etc", "/home", "/opt", "/sbin", "/tmp", "/usr", "/var",
];
/// Lima's guest template for the guest user's home.
pub const GUEST_HOME: &str = "{{.Home}}";

/// Parses `/host`, `/host:ro`, `/host:rw`, `/host:/guest`, `/host:/guest:ro`; `~` expands.
/// Docker's convention: writable unless `:ro`.
pub fn parse_spec(spec: &str, home: &Path) -> Result<Mount, String> {
    let mut parts: Vec<&str> = spec.split(':').collect();
    let writable = match parts.last().copied() {
        Some("ro") if parts.len() > 1 => {
            parts.pop();
            false
        }
        Some("rw") if parts.len() > 1 => {
            parts.pop();
            true
        }
        _ => true,
    };
    let (location, mount_point) = match parts.as_slice() {
        [loc] => (*loc, None),
        [loc, guest] => (*loc, Some(*guest)),
        _ => {
            return Err(format!(
                "`{spec}` has too many `:`; the form is HOST[:GUEST][:ro|rw] \
                 (paths containing `:` can be mounted from .claude-vm.toml `[[mounts]]`)"
            ))
        }
    };
    if location.is_empty() {
        return Err(format!(
            "`{spec}` has no host path; the form is HOST[:GUEST][:ro|rw]"
        ));
    }
    if mount_point == Some("") {
        return Err(format!(
            "`{spec}` has an empty guest path; the form is HOST[:GUEST][:ro|rw]"
        ));
    }
    validate(location, mount_point, writable, home)
}

/// Checks a mount as written and returns it normalized: absolute existing host directory,
/// guest path absolute (a leading `~` means the guest home) and allowed by Lima.
pub fn validate(
    location: &str,
    mount_point: Option<&str>,
    writable: bool,
    home: &Path,
) -> Result<Mount, String> {
    reject_template(location, "host path")?;
    let loc = expand_tilde(location, home);
    if !loc.is_absolute() {
        return Err(format!(
            "host path `{location}` is relative; use an absolute path or one starting with `~/`"
        ));
    }
    let meta = std::fs::metadata(&loc).map_err(|e| {
        format!(
            "host path `{}` cannot be used: {e}; create it or fix the path",
            loc.display()
        )
    })?;
    if !meta.is_dir() {
        return Err(format!(
            "host path `{}` is not a directory; mount its parent directory instead",
            loc.display()
        ));
    }
    let loc = std::fs::canonicalize(&loc).unwrap_or(loc);
    if loc.to_str().is_none() {
        return Err(format!("host path `{}` is not valid UTF-8", loc.display()));
    }
    let mount_point = mount_point.map(guest_path).transpose()?;
    let guest = mount_point
        .clone()
        .unwrap_or_else(|| loc.to_string_lossy().into_owned());
    check_guest_path(&guest)?;
    Ok(Mount {
        location: loc,
        mount_point,
        writable,
    })
}

/// A guest path as the user writes it → as Lima takes it (`~` → `{{.Home}}`).
fn guest_path(p: &str) -> Result<String, String> {
    reject_template(p, "guest path")?;
    let p = if p == "~" {
        GUEST_HOME.to_owned()
    } else if let Some(rest) = p.strip_prefix("~/") {
        format!("{GUEST_HOME}/{rest}")
    } else if p.starts_with('/') {
        p.to_owned()
    } else {
        return Err(format!(
            "guest path `{p}` must be absolute (or start with `~/` for the guest home)"
        ));
    };
    Ok(p.trim_end_matches('/').to_owned())
}

fn check_guest_path(guest: &str) -> Result<(), String> {
    let trimmed = if guest.len() > 1 {
        guest.trim_end_matches('/')
    } else {
        guest
    };
    if SYSTEM_PATHS.contains(&trimmed) || trimmed == GUEST_HOME {
        return Err(format!(
            "guest path `{trimmed}` is a system directory Lima cannot mount over; choose a subdirectory such as /mnt/data"
        ));
    }
    Ok(())
}

/// Lima expands Go templates in mount paths; a literal `{{` would be misread.
fn reject_template(p: &str, what: &str) -> Result<(), String> {
    if p.contains("{{") {
        return Err(format!("{what} `{p}` contains `{{{{`, which Lima would read as a template; rename the directory"));
    }
    Ok(())
}

/// Drops repeated mounts: one mount per guest path, the later (higher-precedence) one wins.
pub fn dedup(mounts: Vec<Mount>) -> Vec<Mount> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<Mount> = mounts
        .into_iter()
        .rev()
        .filter(|m| seen.insert(m.guest_path()))
        .collect();
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("data")).unwrap();
        t
    }

    #[test]
    fn docker_style_specs() {
        let h = home();
        let data = std::fs::canonicalize(h.path().join("data")).unwrap();
        let m = parse_spec("~/data", h.path()).unwrap();
        assert_eq!(
            (m.location.clone(), m.mount_point.clone(), m.writable),
            (data.clone(), None, true)
        );
        let m = parse_spec("~/data:ro", h.path()).unwrap();
        assert!(!m.writable);
        let m = parse_spec("~/data:/vm/data", h.path()).unwrap();
        assert_eq!(
            (m.mount_point.as_deref(), m.writable),
            (Some("/vm/data"), true)
        );
        let m = parse_spec("~/data:/vm/data:ro", h.path()).unwrap();
        assert_eq!(
            (m.mount_point.as_deref(), m.writable),
            (Some("/vm/data"), false)
        );
        let m = parse_spec("~/data:~/d", h.path()).unwrap();
        assert_eq!(m.mount_point.as_deref(), Some("{{.Home}}/d"));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let h = home();
        let cases = [
            ("data", "relative"),
            ("~/missing", "cannot be used"),
            ("~/data:/a:/b:ro", "too many"),
            (":ro", "no host path"),
            ("~/data:", "empty guest path"),
            ("~/data:relative", "must be absolute"),
            ("~/data:/etc", "system directory"),
            ("~/data:~", "system directory"),
            ("~/data:/x/{{.Home}}", "template"),
        ];
        for (spec, want) in cases {
            let err = parse_spec(spec, h.path()).unwrap_err();
            assert!(err.contains(want), "{spec}: {err}");
        }
        std::fs::write(h.path().join("file"), "").unwrap();
        assert!(parse_spec("~/file", h.path())
            .unwrap_err()
            .contains("not a directory"));
    }

    #[test]
    fn dedup_keeps_the_last_mount_per_guest_path() {
        let m = |loc: &str, mp: Option<&str>, w: bool| Mount {
            location: loc.into(),
            mount_point: mp.map(Into::into),
            writable: w,
        };
        let out = dedup(vec![
            m("/a", None, false),
            m("/b", Some("/x"), true),
            m("/a", None, true),
        ]);
        assert_eq!(out, vec![m("/b", Some("/x"), true), m("/a", None, true)]);
    }
}
