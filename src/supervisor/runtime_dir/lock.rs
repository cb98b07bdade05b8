//! The exclusive flock(2) a supervisor holds on `supervisor.lock` in its
//! runtime directory for its whole life, and how it is taken and given up
//! without a moment where the file is there unlocked.
//!
//! Why the lock, not a pid, decides who may remove what is in the parent
//! module's doc; trying the lock of another supervisor's directory is
//! `sweep`'s.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use tracing::warn;

use super::{RuntimeDirError, LOCK_NAME};

/// An exclusive flock(2) on a runtime directory's `supervisor.lock`.
#[derive(Debug)]
pub(super) struct DirLock {
    path: PathBuf,
    file: Flock<File>,
}

impl DirLock {
    /// Takes the lock of `dir` without waiting, making the lock file when
    /// there is none. Returns whether a lock file was there before.
    pub(super) fn acquire(dir: &Path) -> Result<(DirLock, bool), RuntimeDirError> {
        let path = dir.join(LOCK_NAME);
        let fail = |error| RuntimeDirError::Lock {
            path: path.clone(),
            error,
        };
        // Each round that does not end means another process made or
        // removed the lock file meanwhile; a few are plenty.
        for _ in 0..8 {
            let file = match fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
            {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match Self::create(dir, &path).map_err(fail)? {
                        Some(lock) => return Ok((lock, false)),
                        None => continue,
                    }
                }
                Err(e) => return Err(fail(e)),
            };
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                // A supervisor that ends removes the file before it lets go:
                // a lock taken on a file no longer at the path locks nothing.
                Ok(file) if names(&path, &file) => return Ok((DirLock { path, file }, true)),
                Ok(_) => continue,
                Err((_, Errno::EWOULDBLOCK)) => {
                    return Err(RuntimeDirError::InUse {
                        dir: dir.to_owned(),
                    })
                }
                Err((_, errno)) => return Err(fail(errno.into())),
            }
        }
        Err(fail(io::Error::other(
            "it kept being replaced while it was being locked",
        )))
    }

    /// Makes the lock file under a name of its own, locks it, and links it
    /// into place, so that `supervisor.lock` is never there unlocked while
    /// the supervisor that made it runs. `None`: another process put one
    /// there first.
    fn create(dir: &Path, path: &Path) -> io::Result<Option<DirLock>> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmp = dir.join(format!(".{LOCK_NAME}.{}.{nanos}", std::process::id()));
        let file = match fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(e),
        };
        // Nobody else knows this file yet, so the lock is free.
        let placed = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, errno)| io::Error::from(errno))
            .and_then(|file| fs::hard_link(&tmp, path).map(|()| file));
        let _ = fs::remove_file(&tmp);
        match placed {
            Ok(file) => Ok(Some(DirLock {
                path: path.to_owned(),
                file,
            })),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes the lock file, while it is still ours and still locked.
    pub(super) fn remove_file(&self) {
        if names(&self.path, &self.file) {
            if let Err(e) = fs::remove_file(&self.path) {
                warn!("cannot remove {}: {e}", self.path.display());
            }
        }
    }
}

/// Whether `path` names the very file `file` is open on.
pub(super) fn names(path: &Path, file: &File) -> bool {
    match (fs::symlink_metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}
