//! The supervisor's private runtime directory and the files in it: the
//! rewritten config (which holds the config's secrets), the notify socket,
//! the control socket and the lock file. Everything here is owner-only.
//!
//! Who may remove what. A supervisor holds an exclusive flock(2) on
//! `supervisor.lock` in its runtime directory for its whole life: the lock
//! ends with the process however it ends, SIGKILL included, and its fd is
//! close-on-exec, so MAS never holds it. A pid proves nothing about the
//! directory's owner: in another pid namespace, or with a /tmp shared
//! between containers, a live supervisor's pid is not visible here, or is
//! another process's. So what a supervisor left behind is removed only by a
//! supervisor that takes the same lock itself without waiting: a directory
//! `mas-sockets.<pid>` made under /tmp (or `$XDG_RUNTIME_DIR`) by the next
//! supervisor that makes one there, the files in a given directory
//! (`--runtime-dir`, `RuntimeDirectory=`) by the next supervisor to start in
//! it; and only what belongs to our uid. A rewritten config of a killed
//! supervisor thus lasts until the next start in the same place.
//!
//! A directory without `supervisor.lock` was made by an older mas-sockets,
//! which took no lock, or is being set up this instant: nothing proves its
//! owner gone, so it is left alone (said in a debug line).
//!
//! flock(2) locks are not shared over NFS by every server; a runtime
//! directory belongs on a local file system (/run, /tmp), as systemd's does.
//!
//! Whose directory it is. A directory we did not make ourselves is used only
//! when it is this user's alone: owned by the effective uid, no access for
//! group or others, and not a symbolic link in its last component. It is
//! opened with `O_NOFOLLOW | O_DIRECTORY` and checked with fstat(2) on that
//! fd, so the directory checked is the one opened. One we make is made 0700
//! by mkdir(2), which fails rather than take over what is there already.
//! The directories above it are not checked: who may rename those (an
//! operator's choice of `--runtime-dir`) may replace it as a whole.
//!
//! This file holds [`RuntimeDir`] itself: making or taking the directory,
//! and removing what is ours at the end. The flock(2) on `supervisor.lock`
//! is `lock`'s; whether a directory is this user's alone, `ownership`'s;
//! removing what gone supervisors left, `sweep`'s; noticing that the
//! directory was emptied while we run, `intact`'s; and the owner-only files
//! a supervisor writes into it (the rewritten config), `private_file`'s.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use tracing::{debug, info, warn};

use self::lock::DirLock;
use self::ownership::open_private;
pub use self::private_file::{write_private, TempFile};
use self::sweep::{sweep_dirs, sweep_files};

mod intact;
mod lock;
mod ownership;
mod private_file;
mod sweep;

/// The lock file's name in a runtime directory.
pub const LOCK_NAME: &str = "supervisor.lock";

/// The start of the names of the directories [`RuntimeDir::create_in`] makes.
const CREATED_PREFIX: &str = "mas-sockets.";

/// How many names `mas-sockets.<pid>`, `mas-sockets.<pid>.1`, ... are tried:
/// the plain one is taken only when a supervisor with our pid in another pid
/// namespace runs in the same parent.
const CREATED_NAMES: u32 = 100;

/// A private directory (mode 0700) for the notify socket and the rewritten
/// config, locked for as long as it lives.
#[derive(Debug)]
pub struct RuntimeDir {
    path: PathBuf,
    /// The directory's device and inode, as opened and checked.
    id: FileId,
    /// The supervisor's sockets in it, as [`RuntimeDir::check_intact`]
    /// first found them.
    sockets: std::sync::Mutex<Vec<(PathBuf, FileId)>>,
    origin: DirOrigin,
    /// Dropped after the directory's files are removed, so nobody sweeps
    /// in between.
    lock: DirLock,
}

/// A file's device and inode numbers: which file a path names.
type FileId = (u64, u64);

/// The [`FileId`] of what `path` names itself (a link is not followed).
fn file_id(path: &Path) -> io::Result<FileId> {
    fs::symlink_metadata(path).map(|m| (m.dev(), m.ino()))
}

/// Whether we made the directory (and so remove it) or were given it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DirOrigin {
    /// Made by [`RuntimeDir::create_in`]: removed whole at the end.
    Created,
    /// `--runtime-dir` or `RuntimeDirectory=`: only our files are removed.
    Given,
}

/// Why the runtime directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeDirError {
    #[error("the runtime directory {dir} is in use by another supervisor, which holds the lock on {lock}; give each supervisor its own runtime directory (--runtime-dir), or stop the other one first", dir = dir.display(), lock = dir.join(LOCK_NAME).display())]
    InUse { dir: PathBuf },
    #[error("cannot create the runtime directory {dir}: its parent {parent} does not exist; create the parent first, or give another directory with --runtime-dir", dir = dir.display(), parent = parent.display())]
    NoParent { dir: PathBuf, parent: PathBuf },
    #[error("the runtime directory {dir} is {kind}, not a directory; give a directory with --runtime-dir", dir = dir.display())]
    NotADirectory { dir: PathBuf, kind: &'static str },
    #[error("the runtime directory {dir} is a symbolic link, which whoever may change it can point elsewhere; give the directory itself (or another) with --runtime-dir", dir = dir.display())]
    Symlink { dir: PathBuf },
    #[error("the runtime directory {dir} {why}, but it holds MAS's config with its secrets and the control socket, so it must be this user's alone: run `{fix}`{systemd}, or give another directory with --runtime-dir", dir = dir.display(), systemd = if *mode_too_open { " (for systemd's RuntimeDirectory=: RuntimeDirectoryMode=0700 in the unit)" } else { "" })]
    NotPrivate {
        dir: PathBuf,
        why: String,
        fix: String,
        mode_too_open: bool,
    },
    #[error("cannot open the runtime directory {dir}: {error}; check that this user may enter it, or give another with --runtime-dir", dir = dir.display())]
    Open { dir: PathBuf, error: io::Error },
    #[error("the runtime directory {dir} {what} since this supervisor started: a new MAS could not tell it that it is ready, and `mas-sockets reload` and `status` cannot reach it, so no MAS is started; restart the service (e.g. systemctl restart mas), which makes the directory anew", dir = dir.display())]
    Emptied { dir: PathBuf, what: String },
    #[error("RUNTIME_DIRECTORY={value:?} names no directory (its first entry is empty); it is set by systemd from the unit's RuntimeDirectory=: unset it, or give the directory with --runtime-dir")]
    EmptySystemd { value: String },
    #[error("cannot create the runtime directory {dir}: {error}; check that this user may write to {parent}, or give another directory with --runtime-dir", dir = dir.display(), parent = parent.display())]
    Create {
        dir: PathBuf,
        parent: PathBuf,
        error: io::Error,
    },
    #[error("cannot lock {path}: {error}; check that the runtime directory is writable by this user, or give another with --runtime-dir", path = path.display())]
    Lock { path: PathBuf, error: io::Error },
}

impl RuntimeDir {
    /// Uses `dir` as given (systemd's `RuntimeDirectory=`, made 0700 by the
    /// units we write), creating it (mode 0700) when it does not exist; its
    /// parent must. A directory that was there already must be this user's
    /// alone (see the module's doc). Takes its lock, then removes the files
    /// a killed supervisor left there. A directory we create is left in
    /// place at the end, empty.
    ///
    /// # Errors
    ///
    /// The directory is not private, another supervisor holds the lock, or
    /// the directory cannot be made or locked.
    pub fn given(dir: PathBuf) -> Result<RuntimeDir, RuntimeDirError> {
        // `DIR/` and `DIR/.` would follow a symbolic link DIR, O_NOFOLLOW or
        // not; without them the last component is DIR itself.
        let dir: PathBuf = dir.components().collect();
        let created = match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {
                info!("created the runtime directory {}", dir.display());
                true
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(error) => {
                let parent = dir.parent().unwrap_or(Path::new("/")).to_owned();
                if error.kind() == io::ErrorKind::NotFound {
                    return Err(RuntimeDirError::NoParent { dir, parent });
                }
                return Err(RuntimeDirError::Create { dir, parent, error });
            }
        };
        let id = open_private(&dir, created)?;
        let (lock, lock_was_there) = DirLock::acquire(&dir)?;
        sweep_files(&dir, lock_was_there);
        Ok(RuntimeDir {
            path: dir,
            id,
            sockets: Default::default(),
            origin: DirOrigin::Given,
            lock,
        })
    }

    /// Makes a new directory `mas-sockets.<pid>` under `parent`, mode 0700,
    /// and locks it, after removing such directories of supervisors that are
    /// gone. When that name is taken (by a supervisor with the same pid in
    /// another pid namespace), `mas-sockets.<pid>.1` and so on.
    ///
    /// # Errors
    ///
    /// The directory cannot be created or locked.
    pub fn create_in(parent: &Path) -> Result<RuntimeDir, RuntimeDirError> {
        sweep_dirs(parent);
        let mut last = None;
        for n in 0..CREATED_NAMES {
            let path = parent.join(Self::created_name(n));
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    // Not yet locked: until it is, a sweep finds no lock
                    // file and leaves the directory alone.
                    let made = open_private(&path, true)
                        .and_then(|id| DirLock::acquire(&path).map(|(lock, _)| (id, lock)));
                    return match made {
                        Ok((id, lock)) => Ok(RuntimeDir {
                            path,
                            id,
                            sockets: Default::default(),
                            origin: DirOrigin::Created,
                            lock,
                        }),
                        Err(e) => {
                            // A symbolic link put in its place is removed,
                            // not followed.
                            let _ = fs::remove_dir_all(&path);
                            Err(e)
                        }
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    debug!("{} exists already; trying another name", path.display());
                    last = Some((path, e));
                }
                Err(error) => {
                    return Err(RuntimeDirError::Create {
                        dir: path,
                        parent: parent.to_owned(),
                        error,
                    })
                }
            }
        }
        let (dir, error) = last.expect("CREATED_NAMES is not 0");
        Err(RuntimeDirError::Create {
            dir,
            parent: parent.to_owned(),
            error,
        })
    }

    /// The `n`th name [`RuntimeDir::create_in`] tries for the directory it makes.
    fn created_name(n: u32) -> String {
        match n {
            0 => format!("{CREATED_PREFIX}{}", std::process::id()),
            n => format!("{CREATED_PREFIX}{}.{n}", std::process::id()),
        }
    }

    /// The longest name [`RuntimeDir::create_in`] may give the directory it makes.
    pub fn longest_created_name() -> String {
        Self::created_name(CREATED_NAMES - 1)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        // The lock is still held here; it is released after, as its field
        // is dropped.
        match self.origin {
            DirOrigin::Created => {
                if let Err(e) = fs::remove_dir_all(&self.path) {
                    warn!("cannot remove {}: {e}", self.path.display());
                }
            }
            DirOrigin::Given => self.lock.remove_file(),
        }
    }
}

/// The first directory of `RUNTIME_DIRECTORY`, which systemd sets from the
/// unit's `RuntimeDirectory=` (several are separated by `:`; the first is
/// ours); `None` when it is unset.
///
/// # Errors
///
/// It is set, but its first entry is empty.
pub fn systemd_runtime_directory() -> Result<Option<PathBuf>, RuntimeDirError> {
    let Some(value) = std::env::var_os("RUNTIME_DIRECTORY") else {
        return Ok(None);
    };
    let value = value.to_string_lossy().into_owned();
    match value.split(':').next() {
        Some(first) if !first.is_empty() => Ok(Some(PathBuf::from(first))),
        _ => Err(RuntimeDirError::EmptySystemd { value }),
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use nix::fcntl::{Flock, FlockArg};

    use super::*;
    use crate::activation::tests::TempDir;

    /// Holds the lock of `dir` the way a running supervisor does: another
    /// open file description, so it conflicts even within this process.
    pub(super) fn hold_lock(dir: &Path) -> Flock<File> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_NAME))
            .expect("open the lock file");
        Flock::lock(file, FlockArg::LockExclusiveNonblock).expect("lock")
    }

    /// Another supervisor with our pid (another pid namespace) has the
    /// plain name: ours gets the next.
    #[test]
    fn a_created_name_in_use_is_not_taken_over() {
        let parent = TempDir::new("same-pid");
        let theirs = parent.0.join(RuntimeDir::created_name(0));
        fs::create_dir(&theirs).unwrap();
        let held = hold_lock(&theirs);
        let made = RuntimeDir::create_in(&parent.0).expect("create");
        assert_eq!(made.path(), parent.0.join(RuntimeDir::created_name(1)));
        assert!(theirs.join(LOCK_NAME).exists());
        drop(made);
        drop(held);
    }

    /// A given directory is one supervisor's at a time; the files a gone
    /// one left are removed when its lock file says it was of this version,
    /// left otherwise; the lock file goes at the end, the directory stays.
    #[test]
    fn a_given_directory_is_locked_and_swept() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = TempDir::new("given");
        fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o700)).unwrap();
        let stale = dir.0.join("config.4194305.1.yaml");
        let unrelated = dir.0.join("keep.txt");
        fs::write(&stale, "secrets: {}\n").unwrap();
        fs::write(&unrelated, "x").unwrap();

        let first = RuntimeDir::given(dir.0.clone()).expect("first");
        assert!(stale.exists(), "no lock file was there: an older version's");
        match RuntimeDir::given(dir.0.clone()) {
            Err(RuntimeDirError::InUse { .. }) => {}
            other => panic!("a second supervisor got {other:?}"),
        }
        drop(first);
        assert!(!dir.0.join(LOCK_NAME).exists());
        assert!(dir.0.exists());

        // As a killed supervisor leaves it: the lock file stays.
        drop(hold_lock(&dir.0));
        let second = RuntimeDir::given(dir.0.clone()).expect("second");
        assert!(!stale.exists());
        assert!(unrelated.exists());
        drop(second);
    }

    #[test]
    fn a_missing_given_directory_is_created_when_its_parent_exists() {
        use std::os::unix::fs::PermissionsExt as _;
        let parent = TempDir::new("missing");
        let dir = parent.0.join("rt");
        let made = RuntimeDir::given(dir.clone()).expect("created");
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        drop(made);
        assert!(dir.exists());

        let deeper = parent.0.join("no/rt");
        let err = RuntimeDir::given(deeper.clone()).expect_err("no parent");
        assert_eq!(
            err.to_string(),
            format!("cannot create the runtime directory {}: its parent {} does not exist; create the parent first, or give another directory with --runtime-dir", deeper.display(), parent.0.join("no").display())
        );
        let file = parent.0.join("file");
        fs::write(&file, "").unwrap();
        let err = RuntimeDir::given(file.clone()).expect_err("a file");
        assert_eq!(
            err.to_string(),
            format!("the runtime directory {} is a regular file, not a directory; give a directory with --runtime-dir", file.display())
        );
    }
}
