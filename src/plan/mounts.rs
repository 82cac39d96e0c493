//! The mounts of a session clone: the project, the main repository of a worktree, the
//! project's Claude conversation folder, the configured mounts, and the hand-over directory.

use std::path::{Path, PathBuf};

use super::PlanError;
use crate::config::mounts::GUEST_HOME;
use crate::config::Mount;
use crate::lima::LimaMount;
use crate::project::Project;
use crate::script::HANDOVER_MOUNT;

pub struct MountInputs<'a> {
    pub project: &'a Project,
    /// The host's conversation folder for this project, unless `--no-conversations`.
    pub conversations: Option<(PathBuf, String)>,
    pub config_mounts: &'a [Mount],
    pub handover_dir: &'a Path,
}

pub fn session_mounts(i: &MountInputs) -> Result<(Vec<Mount>, Vec<GuestLink>), PlanError> {
    let rw = |p: &Path| Mount {
        location: p.to_path_buf(),
        mount_point: None,
        writable: true,
    };
    let mut auto = vec![rw(&i.project.root)];
    if let Some(main) = &i.project.main_root {
        if !i.project.root.starts_with(main) {
            auto.push(rw(main));
        } else {
            // A worktree inside its main repository: mount the main repository, the worktree
            // is then visible through it at the same path.
            auto[0] = rw(main);
        }
    }
    if let Some((host, folder)) = &i.conversations {
        auto.push(Mount {
            location: host.clone(),
            mount_point: Some(format!("{GUEST_HOME}/.claude/projects/{folder}")),
            writable: true,
        });
    }
    auto.push(Mount {
        location: i.handover_dir.to_path_buf(),
        mount_point: Some(HANDOVER_MOUNT.into()),
        writable: false,
    });

    let mut all = auto.clone();
    for m in i.config_mounts {
        let guest = m.guest_path();
        if let Some(clash) = auto.iter().find(|a| a.guest_path() == guest) {
            let what = if clash.mount_point.as_deref() == Some(HANDOVER_MOUNT) {
                "is reserved for claude-vm's hand-over directory".to_owned()
            } else {
                format!(
                    "is already mounted by claude-vm (from {})",
                    clash.location.display()
                )
            };
            return Err(PlanError::MountClash {
                location: m.location.clone(),
                guest,
                what,
            });
        }
        all.push(m.clone());
    }
    let (mut all, links) = split_nested(all);
    // Parents before children, so a mount inside another one lands on top of it.
    all.sort_by_key(|m| m.guest_path().matches('/').count());
    Ok((all, links))
}

/// A folder the guest already sees through a writable mount, shown at another guest path by
/// a link made in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestLink {
    /// Where the folder is in the guest (through the writable mount).
    pub target: String,
    /// The mount point asked for.
    pub at: String,
}

/// A VM can replace anything inside a folder it mounts writable, at any moment: a mount whose
/// host folder lies inside another session mount that is writable (the project, the main
/// repository, the conversation folder, a writable mount) could be a link to any host folder
/// by the time Lima mounts it. Such a folder is not given to Lima again: the guest already
/// sees it through the writable mount, and a link in the guest (which can only ever lead
/// within the guest) shows it at its mount point.
fn split_nested(all: Vec<Mount>) -> (Vec<Mount>, Vec<GuestLink>) {
    let mut lima = Vec::new();
    let mut links = Vec::new();
    for m in &all {
        let outer = (m.mount_point.as_deref() != Some(HANDOVER_MOUNT))
            .then(|| {
                all.iter().find(|w| {
                    w.writable && w.location != m.location && m.location.starts_with(&w.location)
                })
            })
            .flatten();
        match outer {
            Some(w) => {
                let rel = m
                    .location
                    .strip_prefix(&w.location)
                    .unwrap_or(Path::new(""));
                let target = format!("{}/{}", w.guest_path(), rel.display());
                if target != m.guest_path() {
                    links.push(GuestLink {
                        target,
                        at: m.guest_path(),
                    });
                }
            }
            None => lima.push(m.clone()),
        }
    }
    (lima, links)
}

/// The mounts of a template build. A setup mount inside a folder a VM can write (the
/// project, say) could be a link to any host folder by the time the build boots; the build
/// mounts that folder itself instead (read-only, unless the setup mount is writable) and the
/// provisioning links the mount point to the path inside it, in the guest.
pub fn setup_mounts(setup: &[Mount], agent_writable: &[PathBuf]) -> (Vec<Mount>, Vec<GuestLink>) {
    let mut lima: Vec<Mount> = Vec::new();
    let mut links = Vec::new();
    for m in setup {
        let Some(root) = agent_writable.iter().find(|r| m.location.starts_with(r)) else {
            lima.push(m.clone());
            continue;
        };
        match lima.iter_mut().find(|l| &l.location == root) {
            Some(l) => l.writable |= m.writable,
            None => lima.push(Mount {
                location: root.clone(),
                mount_point: None,
                writable: m.writable,
            }),
        }
        let rel = m.location.strip_prefix(root).unwrap_or(Path::new(""));
        let target = if rel.as_os_str().is_empty() {
            root.display().to_string()
        } else {
            format!("{}/{}", root.display(), rel.display())
        };
        if target != m.guest_path() {
            links.push(GuestLink {
                target,
                at: m.guest_path(),
            });
        }
    }
    (lima, links)
}

/// Mounts as Lima spells them. Locations are UTF-8: config and project checks guarantee it.
pub fn to_lima(mounts: &[Mount]) -> Vec<LimaMount> {
    mounts
        .iter()
        .map(|m| LimaMount {
            location: m.location.to_string_lossy().into_owned(),
            mount_point: m.mount_point.clone(),
            writable: m.writable,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(root: &str, main: Option<&str>) -> Project {
        Project {
            root: root.into(),
            main_root: main.map(Into::into),
            in_git: true,
        }
    }

    fn guests(ms: &[Mount]) -> Vec<(String, bool)> {
        ms.iter().map(|m| (m.guest_path(), m.writable)).collect()
    }

    #[test]
    fn project_conversations_config_and_handover() {
        let p = project("/src/app", None);
        let cfg = [Mount {
            location: "/data/set".into(),
            mount_point: Some("/data".into()),
            writable: false,
        }];
        let ms = session_mounts(&MountInputs {
            project: &p,
            conversations: Some(("/h/.claude/projects/-src-app".into(), "-src-app".into())),
            config_mounts: &cfg,
            handover_dir: Path::new("/h/.local/share/claude-vm/handover/x"),
        })
        .unwrap()
        .0;
        assert_eq!(
            guests(&ms),
            vec![
                ("/data".to_string(), false),
                ("/src/app".to_string(), true),
                ("/mnt/claude-vm".to_string(), false),
                ("{{.Home}}/.claude/projects/-src-app".to_string(), true),
            ]
        );
    }

    #[test]
    fn worktree_mounts_the_main_repository_writable() {
        let p = project("/wt/feature", Some("/src/app"));
        let ms = session_mounts(&MountInputs {
            project: &p,
            conversations: None,
            config_mounts: &[],
            handover_dir: Path::new("/h/x"),
        })
        .unwrap()
        .0;
        let g = guests(&ms);
        assert!(
            g.contains(&("/wt/feature".into(), true)) && g.contains(&("/src/app".into(), true)),
            "{g:?}"
        );
        let nested = project("/src/app/.worktrees/f", Some("/src/app"));
        let ms = session_mounts(&MountInputs {
            project: &nested,
            conversations: None,
            config_mounts: &[],
            handover_dir: Path::new("/h/x"),
        })
        .unwrap()
        .0;
        assert_eq!(guests(&ms)[0], ("/src/app".into(), true));
        assert_eq!(ms.len(), 2);
    }

    #[test]
    fn config_mounts_cannot_shadow_ours() {
        let p = project("/src/app", None);
        for (loc, mp) in [
            ("/other", Some("/src/app")),
            ("/src/app", None),
            ("/x", Some("/mnt/claude-vm")),
        ] {
            let cfg = [Mount {
                location: loc.into(),
                mount_point: mp.map(Into::into),
                writable: false,
            }];
            let err = session_mounts(&MountInputs {
                project: &p,
                conversations: None,
                config_mounts: &cfg,
                handover_dir: Path::new("/h/x"),
            })
            .unwrap_err();
            assert!(matches!(err, PlanError::MountClash { .. }), "{err:?}");
            assert!(
                err.to_string()
                    .contains("remove it or choose another guest path"),
                "{err}"
            );
        }
    }

    #[test]
    fn nested_mounts_come_after_their_parents() {
        let p = project("/src/app", None);
        let cfg = [
            Mount {
                location: "/secrets".into(),
                mount_point: Some("/src/app/secrets".into()),
                writable: false,
            },
            Mount {
                location: "/code".into(),
                mount_point: Some("/src".into()),
                writable: false,
            },
        ];
        let ms = session_mounts(&MountInputs {
            project: &p,
            conversations: None,
            config_mounts: &cfg,
            handover_dir: Path::new("/h/x"),
        })
        .unwrap()
        .0;
        let order: Vec<String> = ms.iter().map(Mount::guest_path).collect();
        let pos = |g: &str| order.iter().position(|x| x == g).unwrap();
        assert!(
            pos("/src") < pos("/src/app") && pos("/src/app") < pos("/src/app/secrets"),
            "{order:?}"
        );
    }

    #[test]
    fn folders_inside_a_writable_mount_are_shown_by_guest_links_not_mounted_again() {
        let p = project("/src/app", None);
        let cfg = [
            Mount {
                location: "/src/app/fixtures".into(),
                mount_point: Some("/fixtures".into()),
                writable: false,
            },
            Mount {
                location: "/src/app/same".into(),
                mount_point: None,
                writable: true,
            },
            Mount {
                location: "/shared".into(),
                mount_point: Some("{{.Home}}/shared".into()),
                writable: true,
            },
            Mount {
                location: "/shared/deep/er".into(),
                mount_point: Some("/deeper".into()),
                writable: false,
            },
            Mount {
                location: "/h/.claude/projects/-src-app/sub".into(),
                mount_point: Some("/conv".into()),
                writable: false,
            },
        ];
        let (ms, links) = session_mounts(&MountInputs {
            project: &p,
            conversations: Some(("/h/.claude/projects/-src-app".into(), "-src-app".into())),
            config_mounts: &cfg,
            handover_dir: Path::new("/h/x"),
        })
        .unwrap();
        let mut locations: Vec<String> = ms
            .iter()
            .map(|m| m.location.display().to_string())
            .collect();
        locations.sort();
        assert_eq!(
            locations,
            [
                "/h/.claude/projects/-src-app",
                "/h/x",
                "/shared",
                "/src/app"
            ],
            "only folders outside every writable mount go to Lima"
        );
        assert_eq!(
            links,
            vec![
                GuestLink {
                    target: "/src/app/fixtures".into(),
                    at: "/fixtures".into()
                },
                GuestLink {
                    target: "{{.Home}}/shared/deep/er".into(),
                    at: "/deeper".into()
                },
                GuestLink {
                    target: "{{.Home}}/.claude/projects/-src-app/sub".into(),
                    at: "/conv".into()
                },
            ]
        );

        // A project inside a writable mount is seen through it.
        let cfg = [Mount {
            location: "/src".into(),
            mount_point: None,
            writable: true,
        }];
        let (ms, links) = session_mounts(&MountInputs {
            project: &p,
            conversations: None,
            config_mounts: &cfg,
            handover_dir: Path::new("/h/x"),
        })
        .unwrap();
        assert!(
            ms.iter().all(|m| m.location != Path::new("/src/app")),
            "{ms:?}"
        );
        assert!(links.is_empty(), "same guest path: nothing to link");
    }
}
