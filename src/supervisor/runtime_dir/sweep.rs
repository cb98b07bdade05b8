//! Removing what supervisors that are gone left behind: directories
//! `mas-sockets.*` under the parent a [`RuntimeDir`] is made in, and the
//! files earlier supervisors made in a given directory.
//!
//! Only what belongs to our uid is touched, and only when its lock is ours
//! to take without waiting (see the parent module's doc); what has no lock
//! file is left alone, with a debug line. Taking and giving up our own lock
//! is `lock`'s.
//!
//! [`RuntimeDir`]: super::RuntimeDir

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use tracing::{debug, info, warn};

use super::lock::names;
use super::{CREATED_PREFIX, LOCK_NAME};

/// What a sweep found in a directory `mas-sockets.*`.
#[derive(Debug)]
enum Claim {
    /// We hold its lock now: its supervisor is gone.
    Abandoned(Flock<File>),
    /// Its lock is held: its supervisor runs (perhaps out of our sight).
    Live,
    /// No lock file: made by an older mas-sockets, or being set up.
    Unlocked,
    /// Not a directory of ours (another uid, or not a directory at all).
    NotOurs,
}

/// Tries to take the lock of the directory `dir` made by another supervisor.
fn claim(dir: &Path) -> nix::Result<Claim> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let dirfd = match nix::fcntl::open(dir, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOTDIR | Errno::ELOOP) => return Ok(Claim::NotOurs),
        Err(e) => return Err(e),
    };
    if nix::sys::stat::fstat(&dirfd)?.st_uid != nix::unistd::geteuid().as_raw() {
        return Ok(Claim::NotOurs);
    }
    let flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let lock = match nix::fcntl::openat(&dirfd, LOCK_NAME, flags, Mode::empty()) {
        Ok(fd) => File::from(fd),
        Err(Errno::ENOENT) => return Ok(Claim::Unlocked),
        Err(e) => return Err(e),
    };
    match Flock::lock(lock, FlockArg::LockExclusiveNonblock) {
        // Still the directory and the lock file we opened, not a new one of
        // the same name (a supervisor with the same pid elsewhere).
        Ok(lock) => {
            let same_dir = fs::symlink_metadata(dir).is_ok_and(|m| {
                nix::sys::stat::fstat(&dirfd)
                    .is_ok_and(|d| m.dev() == d.st_dev && m.ino() == d.st_ino)
            });
            if same_dir && names(&dir.join(LOCK_NAME), &lock) {
                Ok(Claim::Abandoned(lock))
            } else {
                Ok(Claim::Live)
            }
        }
        Err((_, Errno::EWOULDBLOCK)) => Ok(Claim::Live),
        Err((_, e)) => Err(e),
    }
}

/// Whether `name` is one [`RuntimeDir::create_in`] gives: `mas-sockets.<pid>`
/// or `mas-sockets.<pid>.<n>`.
fn is_created_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(CREATED_PREFIX) else {
        return false;
    };
    let mut parts = rest.split('.');
    let number =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let first = parts.next();
    let second = parts.next();
    number(first) && (second.is_none() || number(second)) && parts.next().is_none()
}

/// Removes the directories `mas-sockets.*` under `parent` whose lock we can
/// take: their supervisors are gone. Others are left, with a debug line.
pub(super) fn sweep_dirs(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_created_name) {
            continue;
        }
        let path = entry.path();
        match claim(&path) {
            Ok(Claim::Abandoned(lock)) => {
                match fs::remove_dir_all(&path) {
                    Ok(()) => info!(
                        "removed {}, left by a supervisor that is gone (nothing held its {LOCK_NAME})",
                        path.display()
                    ),
                    Err(e) => warn!(
                        "cannot remove {}, left by a supervisor that is gone: {e}",
                        path.display()
                    ),
                }
                drop(lock);
            }
            Ok(Claim::Live) => debug!(
                "left {}: its supervisor runs (it holds {LOCK_NAME})",
                path.display()
            ),
            Ok(Claim::Unlocked) => debug!(
                "left {}: it has no {LOCK_NAME}, so it was made by an older mas-sockets (or is being set up) and nothing shows that its supervisor is gone",
                path.display()
            ),
            Ok(Claim::NotOurs) => {}
            Err(e) => debug!("left {}: cannot look into it: {e}", path.display()),
        }
    }
}

/// The supervisor pid in the name of a file a supervisor makes in its
/// runtime directory (`config.<pid>.<n>.yaml`, `notify.<pid>.sock`,
/// `.supervisor.lock.<pid>.<n>`), or `None` for any other name.
fn leftover_pid(name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix("config.")
        .or_else(|| name.strip_prefix("notify."))
        .or_else(|| name.strip_prefix("control."))
        .or_else(|| name.strip_prefix(&format!(".{LOCK_NAME}.")))?;
    rest.split('.').next()?.parse().ok()
}

/// Removes, from a runtime directory whose lock we hold, the files earlier
/// supervisors made there; they are all gone, or the lock would not be ours.
/// When there was no lock file, such files were made by an older
/// mas-sockets, which may still run: they are left, with a debug line.
pub(super) fn sweep_files(dir: &Path, lock_was_there: bool) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let uid = nix::unistd::geteuid().as_raw();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = leftover_pid(&name) else {
            continue;
        };
        let path = entry.path();
        let ours = entry
            .metadata()
            .is_ok_and(|m| m.uid() == uid && !m.is_dir());
        if !ours {
            continue;
        }
        if !lock_was_there {
            debug!(
                "left {}: {} had no {LOCK_NAME}, so it was made by an older mas-sockets, which may still run",
                path.display(),
                dir.display()
            );
            continue;
        }
        match fs::remove_file(&path) {
            Ok(()) => info!(
                "removed {}, left by supervisor pid {pid}, which is gone (nothing held {})",
                path.display(),
                dir.join(LOCK_NAME).display()
            ),
            Err(e) => warn!(
                "cannot remove {}, left by a supervisor that is gone: {e}",
                path.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::tests::TempDir;
    use crate::supervisor::runtime_dir::tests::hold_lock;
    use crate::supervisor::runtime_dir::RuntimeDir;

    #[test]
    fn created_names_are_recognised() {
        for name in ["mas-sockets.12", "mas-sockets.12.3"] {
            assert!(is_created_name(name), "{name}");
        }
        for name in [
            "mas-sockets.",
            "mas-sockets.x",
            "mas-sockets.12.",
            "mas-sockets.1.2.3",
            "mas-sockets-test.1",
        ] {
            assert!(!is_created_name(name), "{name}");
        }
        assert!(is_created_name(&RuntimeDir::longest_created_name()));
        assert_eq!(leftover_pid("config.42.1.yaml"), Some(42));
        assert_eq!(leftover_pid("notify.42.sock"), Some(42));
        assert_eq!(leftover_pid(".supervisor.lock.42.981"), Some(42));
        assert_eq!(leftover_pid("control.sock"), None);
        assert_eq!(leftover_pid(LOCK_NAME), None);
    }

    /// A directory whose lock is held belongs to a running supervisor,
    /// whatever its name says; one whose lock is free is removed; one with no
    /// lock file (an older version) is left.
    #[test]
    fn the_sweep_removes_only_directories_whose_lock_is_free() {
        let parent = TempDir::new("sweep-dirs");
        let make = |name: &str| {
            let dir = parent.0.join(name);
            fs::create_dir(&dir).unwrap();
            fs::write(dir.join("config.4194305.1.yaml"), "secrets: {}\n").unwrap();
            dir
        };
        let live = make("mas-sockets.4194305");
        let held = hold_lock(&live);
        let gone = make("mas-sockets.4194306");
        drop(hold_lock(&gone));
        let old = make("mas-sockets.4194307");
        let other = make("not-ours.4194308");
        drop(hold_lock(&other));

        let made = RuntimeDir::create_in(&parent.0).expect("create");
        assert!(live.join("config.4194305.1.yaml").exists());
        assert!(!gone.exists());
        assert!(old.join("config.4194305.1.yaml").exists());
        assert!(other.exists());
        assert!(made.path().join(LOCK_NAME).exists());
        let path = made.path().to_owned();
        drop(made);
        assert!(!path.exists());
        drop(held);
    }
}
