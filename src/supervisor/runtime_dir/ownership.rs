//! Whose directory it is: a runtime directory we did not make is used only
//! when it is this user's alone, checked on the fd it was opened as; one we
//! made gets back the owner's bits a umask took.
//!
//! The rules are in the parent module's doc ("Whose directory it is");
//! making the directory and keeping its identity are [`RuntimeDir`]'s.
//!
//! [`RuntimeDir`]: super::RuntimeDir

use std::fs;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::{FileId, RuntimeDirError};

/// Opens the directory `dir` itself (never what a symbolic link there
/// points to) and checks, on the open fd, that it is this user's alone;
/// returns its [`FileId`]. One
/// we just `created` is this user's by construction; it only gets back the
/// owner's bits a umask may have taken.
pub(super) fn open_private(dir: &Path, created: bool) -> Result<FileId, RuntimeDirError> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = match nix::fcntl::open(dir, flags, Mode::empty()) {
        Ok(fd) => fd,
        // Linux says ENOTDIR for a symbolic link opened with both flags,
        // ELOOP with O_NOFOLLOW alone.
        Err(Errno::ELOOP | Errno::ENOTDIR) => {
            let dir = dir.to_owned();
            return Err(match fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_symlink() => RuntimeDirError::Symlink { dir },
                Ok(m) => RuntimeDirError::NotADirectory {
                    kind: crate::bind::describe_file_type(m.file_type()),
                    dir,
                },
                Err(_) => RuntimeDirError::NotADirectory {
                    kind: "not a directory",
                    dir,
                },
            });
        }
        Err(errno) => {
            return Err(RuntimeDirError::Open {
                dir: dir.to_owned(),
                error: errno.into(),
            })
        }
    };
    let open_error = |errno: Errno| RuntimeDirError::Open {
        dir: dir.to_owned(),
        error: errno.into(),
    };
    let stat = nix::sys::stat::fstat(&fd).map_err(open_error)?;
    let mode = stat.st_mode & 0o7777;
    if created {
        if mode != 0o700 {
            nix::sys::stat::fchmod(&fd, Mode::S_IRWXU).map_err(open_error)?;
        }
        return Ok((stat.st_dev, stat.st_ino));
    }
    if let Some((why, fix)) = not_private(dir, stat.st_uid, mode, nix::unistd::geteuid().as_raw()) {
        return Err(RuntimeDirError::NotPrivate {
            dir: dir.to_owned(),
            why,
            fix,
            mode_too_open: mode & 0o077 != 0,
        });
    }
    Ok((stat.st_dev, stat.st_ino))
}

/// What keeps a directory owned by `uid` with `mode` from being private to
/// `euid`, and the command that mends it; `None` when it is private.
fn not_private(dir: &Path, uid: u32, mode: u32, euid: u32) -> Option<(String, String)> {
    let word = crate::supervisor::shell_word(dir);
    let user = |uid: u32| match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => (format!("{} (uid {uid})", u.name), u.name),
        _ => (format!("uid {uid}"), uid.to_string()),
    };
    let mut why = Vec::new();
    let mut fix = Vec::new();
    if uid != euid {
        let (owner, _) = user(uid);
        let (me, name) = user(euid);
        why.push(format!(
            "belongs to {owner}, not to {me}, who runs this supervisor"
        ));
        fix.push(format!(
            "chown {} {word}",
            crate::supervisor::shell_word(Path::new(&name))
        ));
    }
    if mode & 0o077 != 0 {
        why.push(format!(
            "has mode {mode:04o}, which lets its group or others in"
        ));
        fix.insert(0, format!("chmod 700 {word}"));
    }
    if why.is_empty() {
        return None;
    }
    Some((why.join(", and it "), fix.join(" && ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::tests::TempDir;

    /// Another user's directory, or one others may enter, is not private;
    /// the fix names what to change, and nothing else.
    #[test]
    fn a_directory_is_private_when_only_its_owner_may_enter() {
        let dir = Path::new("/run/my dir");
        assert_eq!(not_private(dir, 0, 0o700, 0), None);
        assert_eq!(
            not_private(dir, 0, 0o755, 0),
            Some((
                "has mode 0755, which lets its group or others in".to_owned(),
                "chmod 700 '/run/my dir'".to_owned()
            ))
        );
        assert!(not_private(dir, 0, 0o701, 0).is_some());
        assert!(not_private(dir, 0, 0o710, 0).is_some());
        let (why, fix) = not_private(dir, 0, 0o1777, 4194305).expect("not private");
        assert!(
            why.starts_with("belongs to root (uid 0), not to uid 4194305, who runs this supervisor, and it has mode 1777"),
            "{why}"
        );
        assert_eq!(
            fix,
            "chmod 700 '/run/my dir' && chown 4194305 '/run/my dir'"
        );
    }

    /// A directory we make gets mode 0700 whatever the umask took away.
    #[test]
    fn a_created_directory_gets_mode_0700() {
        use std::os::unix::fs::PermissionsExt as _;
        let parent = TempDir::new("umask");
        let dir = parent.0.join("rt");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o500)).unwrap();
        open_private(&dir, true).expect("open");
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700);
    }
}
