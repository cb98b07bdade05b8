//! Whether nginx's user may connect to MAS's Unix sockets: the users and
//! groups of the host that runs nginx ([`Accounts`], a parameter so that
//! tests need no such host), and the check of a socket's group and mode
//! against them, as connect(2) checks them (unix(7)).
//!
//! The socket's group and mode are what generate-units gives the socket
//! unit (`--socket-group`, the bind's `mode`); which bind nginx connects to
//! is `upstream`'s.

use std::path::Path;

use super::{SiteError, SiteOptions};
use crate::config::Bind;

/// The users and groups of the host that runs nginx; a parameter for tests.
pub trait Accounts {
    /// Whether `user` belongs to `group` (as its primary group or a member).
    ///
    /// # Errors
    ///
    /// When the user or the group does not exist: a text saying which.
    fn is_member(&self, user: &str, group: &str) -> Result<bool, String>;

    /// The gid of `group`, a name or a number.
    ///
    /// # Errors
    ///
    /// When the group does not exist: a text saying which.
    fn gid(&self, group: &str) -> Result<u32, String>;

    /// The name of `user`'s primary group, when both exist.
    fn primary_group(&self, user: &str) -> Option<String>;
}

/// This host's users and groups (getpwnam, getgrnam, getgrgid).
pub struct SystemAccounts;

impl Accounts for SystemAccounts {
    fn is_member(&self, user: &str, group: &str) -> Result<bool, String> {
        use nix::unistd::User;
        let u = User::from_name(user)
            .map_err(|e| format!("cannot look up user `{user}`: {e}"))?
            .ok_or_else(|| format!("there is no user `{user}` on this machine"))?;
        let g = system_group(group)?;
        Ok(u.gid == g.gid || g.mem.iter().any(|m| m == user))
    }

    fn gid(&self, group: &str) -> Result<u32, String> {
        Ok(system_group(group)?.gid.as_raw())
    }

    fn primary_group(&self, user: &str) -> Option<String> {
        use nix::unistd::{Group, User};
        let gid = User::from_name(user).ok()??.gid;
        Some(Group::from_gid(gid).ok()??.name)
    }
}

/// The group of this host named `group`; a number is a gid, as systemd
/// reads `SocketGroup=`.
fn system_group(group: &str) -> Result<nix::unistd::Group, String> {
    use nix::unistd::{Gid, Group};
    match group.parse::<u32>() {
        Ok(gid) if group.bytes().all(|b| b.is_ascii_digit()) => Group::from_gid(Gid::from_raw(gid)),
        _ => Group::from_name(group),
    }
    .map_err(|e| format!("cannot look up group `{group}`: {e}"))?
    .ok_or_else(|| format!("there is no group `{group}` on this machine"))
}

/// Whether nginx's user may connect to a socket of `opts.socket_group` with `mode`.
pub(super) fn check_socket_access(
    bind: &Bind,
    path: &Path,
    mode: u32,
    opts: &SiteOptions,
    accounts: &dyn Accounts,
) -> Result<(), SiteError> {
    // connect(2) on a Unix socket needs write permission on it, and the
    // kernel takes the group's bits for a member of the socket's group and
    // the others' bits for anyone else (nginx's user does not own it).
    let (group_may, others_may) = (mode & 0o020 != 0, mode & 0o002 != 0);
    if group_may && others_may {
        return Ok(());
    }
    let (user, group) = (&opts.nginx_user, &opts.socket_group);
    // The group to suggest: nginx's own, so that the fix works as written.
    let own = accounts
        .primary_group(user)
        .unwrap_or_else(|| "GROUP".to_owned());
    let refuse = |fix: String| {
        SiteError::SocketPermission {
        location: bind.location.clone(),
        message: format!(
            "the Unix socket {} is owned by group `{group}` with mode {mode:04o}, and nginx's user `{user}` is not allowed to connect, so nginx would answer 502 (permission denied); {fix}",
            path.display()
        ),
    }
    };
    if !group_may && !others_may {
        return Err(refuse(format!(
            "give the bind `mode: \"660\"` and the sockets a group that `{user}` is in (generate-units and generate-nginx --socket-group {own})"
        )));
    }
    let member = accounts
        .is_member(user, group)
        .map_err(|reason| SiteError::UnknownAccount {
            user: user.clone(),
            path: path.display().to_string(),
            reason,
        })?;
    // Adding nginx's user to gid 0 would give every worker, and whoever
    // takes one over, root's group: files such as /etc/shadow on some
    // systems, and whatever an admin made group-root writable.
    let root_group = || accounts.gid(group).is_ok_and(|gid| gid == 0);
    match (member, group_may) {
        (true, true) | (false, false) => Ok(()),
        (false, true) if root_group() => Err(refuse(format!(
            "give MAS's sockets a group that `{user}` is in instead (generate-units --socket-group {own}, and the same --socket-group here), and do not add `{user}` to group `{group}`: gid 0 is root's group"
        ))),
        (false, true) => Err(refuse(format!(
            "give the sockets a group of nginx's (generate-units --socket-group {own}, and the same --socket-group here), or add the user to the group (usermod -aG {group} {user}, then restart nginx)"
        ))),
        (true, false) => Err(refuse(
            "as a member of the group it gets the group's permissions, not the others'; give the bind `mode: \"660\"`".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_group_may_be_a_number_as_systemd_takes_it() {
        // generate-units writes `SocketGroup=0`, which systemd reads as gid 0.
        assert_eq!(SystemAccounts.is_member("root", "0"), Ok(true));
        assert_eq!(SystemAccounts.is_member("root", "root"), Ok(true));
        let missing = SystemAccounts.is_member("root", "4000000000");
        assert_eq!(
            missing,
            Err("there is no group `4000000000` on this machine".to_owned())
        );
    }
}
