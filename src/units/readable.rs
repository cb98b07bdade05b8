//! Whether the generated service's user may read the config files its
//! `ExecStart=` names: `supervise` reads them as `User=`/`Group=` (with the
//! user's supplementary groups, as systemd.exec(5) sets them), and a config
//! kept root-only, as its secrets tempt, would stop the service at its
//! first start.
//!
//! The check follows path_resolution(7) for the permission bits: search
//! (`x`) on every directory on the way, read (`r`) on the file, with the
//! owner's, the group's or the others' bits, whichever class applies first.
//! It says nothing where it cannot be sure: a file or directory with an
//! ACL, a path that does not exist on this machine (`--config-in-unit` for
//! another host), or a user or group this machine does not have (the
//! package creates `mas` when it is installed).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::UnitOptions;

/// The identity the service runs with: its uid, its gid and its
/// supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    uid: u32,
    gids: Vec<u32>,
    /// Whether the group is not known (`check`, which has no `--group`):
    /// any group's bits might then be the service's.
    any_group: bool,
}

/// What a path's permission check needs of its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owned {
    mode: u32,
    uid: u32,
    gid: u32,
}

/// The permission a path needs: `r` (4) for the file, `x` (1) for a directory.
const READ: u32 = 4;
const SEARCH: u32 = 1;

impl Identity {
    /// The service's identity on this machine, from `User=` and `Group=`;
    /// `None` when either does not exist here, or the user is root.
    fn of_service(user: &str, group: &str) -> Option<Identity> {
        let gid = nix::unistd::Group::from_name(group).ok()??.gid;
        Identity::with_group(user, Some(gid))
    }

    /// `user` with a group not known: the units' `Group=` may be any.
    fn of_user(user: &str) -> Option<Identity> {
        Some(Identity {
            any_group: true,
            ..Identity::with_group(user, None)?
        })
    }

    /// `user` running with `gid` (its own primary group for `None`) and its
    /// supplementary groups; `None` for a user this machine does not have,
    /// or root.
    fn with_group(user: &str, gid: Option<nix::unistd::Gid>) -> Option<Identity> {
        let u = nix::unistd::User::from_name(user).ok()??;
        if u.uid.is_root() {
            return None;
        }
        let gid = gid.unwrap_or(u.gid);
        let name = std::ffi::CString::new(user).ok()?;
        let mut gids: Vec<u32> = nix::unistd::getgrouplist(&name, gid)
            .ok()?
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        gids.insert(0, gid.as_raw());
        Some(Identity {
            uid: u.uid.as_raw(),
            gids,
            any_group: false,
        })
    }

    /// Whether the bits of `path` grant `want` to this identity: the owner's
    /// bits for its owner, else the group's for a member of its group, else
    /// the others'.
    fn may(&self, path: Owned, want: u32) -> bool {
        let bits = if path.uid == self.uid {
            path.mode >> 6
        } else if self.gids.contains(&path.gid) {
            path.mode >> 3
        } else if self.any_group && (path.mode >> 3) & want == want {
            // The service's Group= may be this one.
            return true;
        } else {
            path.mode
        };
        bits & want == want
    }
}

/// The first path on the way to `file` (its directories, then itself) that
/// `who` may not use as it must, with the permission it lacks; `None` when
/// all of them are usable or when one cannot be judged (see the module).
fn first_denied(
    file: &Path,
    who: &Identity,
    meta: &dyn Fn(&Path) -> Option<Owned>,
) -> Option<(PathBuf, u32, Owned)> {
    let dirs = file.ancestors().skip(1).collect::<Vec<_>>();
    let steps = dirs
        .into_iter()
        .rev()
        .map(|d| (d, SEARCH))
        .chain([(file, READ)]);
    for (path, want) in steps {
        let owned = meta(path)?;
        if !who.may(owned, want) {
            return Some((path.to_owned(), want, owned));
        }
    }
    None
}

/// A path's owner, group and mode, unless it has an ACL, whose entries the
/// bits do not show.
fn system_metadata(path: &Path) -> Option<Owned> {
    let m = std::fs::metadata(path).ok()?;
    // An attribute that cannot be looked up may be an ACL too.
    if crate::sys::has_xattr(path, "system.posix_acl_access").unwrap_or(true) {
        return None;
    }
    Some(Owned {
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
    })
}

/// A user's name, or its uid where this machine has no name for it.
fn name_of_user(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

/// A group's name, or its gid where this machine has no name for it.
fn name_of_group(gid: u32) -> String {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}

/// Warnings for the config files of `opts` that the service's user could
/// not read on this machine, each naming the file or directory in the way
/// and a fix.
pub fn unreadable_config_warnings(opts: &UnitOptions) -> Vec<String> {
    let Some(who) = Identity::of_service(&opts.user, &opts.group) else {
        return Vec::new();
    };
    unreadable_as(&opts.config_files, &who, (&opts.user, Some(&opts.group)))
}

/// Warnings for the `files` (absolute paths) that `user`, with whatever
/// group its units give it, could not read on this machine: only what no
/// group's bits could grant. None when this machine has no such user.
pub fn unreadable_by(files: &[PathBuf], user: &str) -> Vec<String> {
    let Some(who) = Identity::of_user(user) else {
        return Vec::new();
    };
    unreadable_as(files, &who, (user, None))
}

/// The warnings for `files` that `who`, the service's `user` and `group`
/// (when known), could not read.
fn unreadable_as(files: &[PathBuf], who: &Identity, service: (&str, Option<&str>)) -> Vec<String> {
    // The path as written (its directories, up to a link, must be searched
    // too), then the real one: a link's own bits do not count, those on the
    // way to its target do. Bits are read through links, as path
    // resolution goes through them.
    files
        .iter()
        .filter_map(|file| {
            let real = file.canonicalize().ok()?;
            let (path, want, owned) = first_denied(file, who, &system_metadata)
                .or_else(|| first_denied(&real, who, &system_metadata))?;
            Some(denied_text(file, &path, want, owned, who, service))
        })
        .collect()
}

/// The warning for `file`, which the service cannot read because it may
/// not `want` (read or search) `path`, the file itself or a directory on
/// the way, as `who`.
fn denied_text(
    file: &Path,
    path: &Path,
    want: u32,
    owned: Owned,
    who: &Identity,
    (user, group): (&str, Option<&str>),
) -> String {
    // Without a known group, the one generate-units gives by default.
    let group_or_default = group.unwrap_or("mas");
    let (bits, how) = if want == READ {
        ("640", "r")
    } else {
        ("750", "x")
    };
    let shown = crate::supervisor::shell_word(path);
    // The class whose bits apply: the owner's, then the group's.
    let fix = if owned.uid == who.uid {
        format!("e.g. `chmod u+{how} {shown}`")
    } else if who.gids.contains(&owned.gid) {
        format!("e.g. `chmod g+{how} {shown}`")
    } else if owned.gid == 0 {
        format!("e.g. `chgrp {group_or_default} {shown} && chmod {bits} {shown}`")
    } else {
        format!(
            "e.g. `chgrp {group_or_default} {shown} && chmod {bits} {shown}`, or `chmod g+{how} {shown}` if its group `{}` is meant for the service",
            name_of_group(owned.gid)
        )
    };
    let bits_of = format!(
        "mode {:04o}, owner {}, group {}",
        owned.mode,
        name_of_user(owned.uid),
        name_of_group(owned.gid)
    );
    let who = match group {
        Some(group) => format!("the service's user `{user}` (User={user}, Group={group})"),
        None => format!("the user `{user}` (the default User= of the packaged and generated units), whatever its group,"),
    };
    if want == READ {
        format!(
            "{who} may not read the config `{}` ({bits_of}), so the service would fail at start; {fix}",
            file.display()
        )
    } else {
        format!(
            "{who} may not search the directory `{}` ({bits_of}), so it could not read the config `{}` and the service would fail at start; {fix}",
            path.display(),
            file.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mas() -> Identity {
        Identity {
            uid: 998,
            gids: vec![998, 33],
            any_group: false,
        }
    }

    fn tree<'a>(entries: &'a [(&'a str, u32, u32, u32)]) -> impl Fn(&Path) -> Option<Owned> + 'a {
        move |p: &Path| {
            entries
                .iter()
                .find(|(path, ..)| Path::new(path) == p)
                .map(|&(_, mode, uid, gid)| Owned { mode, uid, gid })
        }
    }

    #[test]
    fn the_owner_group_and_others_bits_apply_in_that_order() {
        let who = mas();
        let f = |mode, uid, gid| Owned { mode, uid, gid };
        assert!(who.may(f(0o400, 998, 0), READ));
        // The owner's bits decide for the owner, even when others may.
        assert!(!who.may(f(0o044, 998, 998), READ));
        assert!(who.may(f(0o640, 0, 998), READ));
        assert!(who.may(f(0o640, 0, 33), READ));
        assert!(!who.may(f(0o604, 0, 998), READ));
        assert!(!who.may(f(0o640, 0, 0), READ));
        assert!(who.may(f(0o604, 0, 0), READ));
        assert!(who.may(f(0o711, 0, 0), SEARCH));
        assert!(!who.may(f(0o700, 0, 0), SEARCH));
    }

    /// The fix changes the bits that apply: the owner's for the service's
    /// own file, the group's for its group's, else a group of its own.
    #[test]
    fn the_fix_is_for_the_class_whose_bits_apply() {
        let o = crate::units::tests::opts();
        let file = Path::new("/etc/mas/config.yaml");
        let fix = |uid, gid| {
            let owned = Owned {
                mode: 0o044,
                uid,
                gid,
            };
            denied_text(file, file, READ, owned, &mas(), (&o.user, Some(&o.group)))
        };
        assert!(fix(998, 998).ends_with("e.g. `chmod u+r /etc/mas/config.yaml`"));
        assert!(fix(0, 33).ends_with("e.g. `chmod g+r /etc/mas/config.yaml`"));
        assert!(fix(0, 0)
            .ends_with("e.g. `chgrp mas /etc/mas/config.yaml && chmod 640 /etc/mas/config.yaml`"));
    }

    /// Without a known group (`check`), only what no group could grant
    /// counts: the units' Group= may be the file's group.
    #[test]
    fn any_group_may_be_the_services() {
        let who = Identity {
            any_group: true,
            ..mas()
        };
        let f = |mode, uid, gid| Owned { mode, uid, gid };
        assert!(who.may(f(0o640, 0, 4242), READ));
        assert!(!who.may(f(0o600, 0, 4242), READ));
        // The owner's bits still decide for the owner.
        assert!(!who.may(f(0o044, 998, 4242), READ));
        assert!(who.may(f(0o710, 0, 4242), SEARCH));
    }

    #[test]
    fn the_first_path_in_the_way_is_named() {
        let who = mas();
        let readable = tree(&[
            ("/", 0o755, 0, 0),
            ("/etc", 0o755, 0, 0),
            ("/etc/mas", 0o750, 0, 998),
            ("/etc/mas/config.yaml", 0o640, 0, 998),
        ]);
        assert_eq!(
            first_denied(Path::new("/etc/mas/config.yaml"), &who, &readable),
            None
        );
        let root_only = tree(&[
            ("/", 0o755, 0, 0),
            ("/etc", 0o755, 0, 0),
            ("/etc/mas", 0o700, 0, 0),
            ("/etc/mas/config.yaml", 0o600, 0, 0),
        ]);
        assert_eq!(
            first_denied(Path::new("/etc/mas/config.yaml"), &who, &root_only),
            Some((
                "/etc/mas".into(),
                SEARCH,
                Owned {
                    mode: 0o700,
                    uid: 0,
                    gid: 0
                }
            ))
        );
        // A path whose bits cannot be judged (an ACL, or missing) says nothing.
        let unknown = tree(&[("/", 0o755, 0, 0), ("/etc", 0o755, 0, 0)]);
        assert_eq!(
            first_denied(Path::new("/etc/mas/config.yaml"), &who, &unknown),
            None
        );
    }
}
