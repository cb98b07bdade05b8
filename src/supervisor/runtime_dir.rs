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

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use tracing::{debug, info, warn};

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

    /// Checks that the directory and the supervisor's `sockets` in it are
    /// still the ones it made: an operator's `rm -rf`, tmpfiles cleaning,
    /// or `/run/user/<uid>` removed at logout leave a MAS started now
    /// without a notify socket to say it is ready on. The first call
    /// records the sockets as they are (right after they are bound).
    ///
    /// # Errors
    ///
    /// The directory, or one of the sockets, is gone or another file now.
    pub fn check_intact(&self, sockets: &[&Path]) -> Result<(), RuntimeDirError> {
        let emptied = |what: String| RuntimeDirError::Emptied {
            dir: self.path.clone(),
            what,
        };
        match file_id(&self.path) {
            Ok(id) if id == self.id => {}
            Ok(_) => return Err(emptied("was replaced by another directory".to_owned())),
            Err(e) => return Err(emptied(format!("was removed ({e})"))),
        }
        let mut known = self
            .sockets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for path in sockets {
            let now = file_id(path);
            let name = path
                .file_name()
                .unwrap_or(path.as_os_str())
                .to_string_lossy();
            match known.iter().find(|(p, _)| p == path) {
                Some((_, id)) => match now {
                    Ok(now) if now == *id => {}
                    Ok(_) => {
                        return Err(emptied(format!("has another file in place of its {name}")))
                    }
                    Err(_) => return Err(emptied(format!("lost its {name}"))),
                },
                None => {
                    if let Ok(id) = now {
                        known.push((path.to_path_buf(), id));
                    }
                }
            }
        }
        Ok(())
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

/// Opens the directory `dir` itself (never what a symbolic link there
/// points to) and checks, on the open fd, that it is this user's alone;
/// returns its [`FileId`]. One
/// we just `created` is this user's by construction; it only gets back the
/// owner's bits a umask may have taken.
fn open_private(dir: &Path, created: bool) -> Result<FileId, RuntimeDirError> {
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

/// An exclusive flock(2) on a runtime directory's `supervisor.lock`.
#[derive(Debug)]
struct DirLock {
    path: PathBuf,
    file: Flock<File>,
}

impl DirLock {
    /// Takes the lock of `dir` without waiting, making the lock file when
    /// there is none. Returns whether a lock file was there before.
    fn acquire(dir: &Path) -> Result<(DirLock, bool), RuntimeDirError> {
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
    fn remove_file(&self) {
        if names(&self.path, &self.file) {
            if let Err(e) = fs::remove_file(&self.path) {
                warn!("cannot remove {}: {e}", self.path.display());
            }
        }
    }
}

/// Whether `path` names the very file `file` is open on.
fn names(path: &Path, file: &File) -> bool {
    match (fs::symlink_metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

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
fn sweep_dirs(parent: &Path) {
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
fn sweep_files(dir: &Path, lock_was_there: bool) {
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

/// A file removed when dropped, at the latest.
#[derive(Debug)]
pub struct TempFile(pub Option<PathBuf>);

impl TempFile {
    pub fn remove(&mut self) {
        if let Some(path) = self.0.take() {
            if let Err(e) = fs::remove_file(&path) {
                warn!("cannot remove {}: {e}", path.display());
            }
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Writes `text` to a new file readable by its owner only.
///
/// # Errors
///
/// The file cannot be created, or not written whole; then no part of it is
/// left behind (it holds secrets, and nothing else would remove it).
pub fn write_private(path: &Path, text: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let written = f.write_all(text.as_bytes()).and_then(|()| f.sync_all());
    if written.is_err() {
        drop(f);
        let _ = fs::remove_file(path);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::tests::TempDir;
    use crate::child::tests::{entry_selected, run_and_show, self_command, OUT_VAR};

    /// Writes a config too large for a file size limit of 16 bytes; exits 0
    /// when the write failed and left no file behind.
    #[test]
    #[ignore = "entry point for a re-run of this binary"]
    fn write_private_failure_entry() {
        use nix::sys::resource::{setrlimit, Resource};
        use nix::sys::signal::{SigSet, Signal};
        if !entry_selected("write_private_failure") {
            return;
        }
        let path = PathBuf::from(std::env::var_os(OUT_VAR).expect("path"));
        // Exceeding the limit raises SIGXFSZ, which would kill us; blocked,
        // it leaves write(2) to fail with EFBIG.
        SigSet::from(Signal::SIGXFSZ)
            .thread_block()
            .expect("block SIGXFSZ");
        setrlimit(Resource::RLIMIT_FSIZE, 16, 16).expect("limit the file size");
        let err = write_private(&path, &"secrets: {encryption: s3cr3t}\n".repeat(100))
            .expect_err("the write exceeds the limit");
        eprintln!("WRITE_ERROR {err}");
        assert!(!path.exists(), "the partly written config was left behind");
    }

    /// Holds the lock of `dir` the way a running supervisor does: another
    /// open file description, so it conflicts even within this process.
    fn hold_lock(dir: &Path) -> Flock<File> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_NAME))
            .expect("open the lock file");
        Flock::lock(file, FlockArg::LockExclusiveNonblock).expect("lock")
    }

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

    /// The sockets as first seen are the ones later checks expect; a
    /// directory made anew at the same path is not the one we checked.
    #[test]
    fn an_emptied_or_replaced_directory_is_noticed() {
        use std::os::unix::fs::PermissionsExt as _;
        let parent = TempDir::new("intact");
        let dir = parent.0.join("rt");
        let rt = RuntimeDir::given(dir.clone()).expect("created");
        let sock = dir.join("control.sock");
        fs::write(&sock, "").unwrap();
        rt.check_intact(&[&sock]).expect("first check records");
        rt.check_intact(&[&sock]).expect("unchanged");
        // Made while the first one still exists: another inode for sure.
        fs::write(dir.join("other"), "").unwrap();
        fs::rename(dir.join("other"), &sock).unwrap();
        let err = rt.check_intact(&[&sock]).expect_err("replaced");
        assert!(
            err.to_string().starts_with(&format!(
                "the runtime directory {} has another file in place of its control.sock since this supervisor started",
                dir.display()
            )),
            "{err}"
        );
        fs::remove_file(&sock).unwrap();
        let err = rt.check_intact(&[&sock]).expect_err("gone");
        assert!(
            err.to_string().contains(" lost its control.sock since "),
            "{err}"
        );
        fs::remove_dir_all(&dir).unwrap();
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        let err = rt.check_intact(&[&sock]).expect_err("another directory");
        assert!(
            err.to_string()
                .contains(" was replaced by another directory since "),
            "{err}"
        );
    }

    /// A config that cannot be written whole is not left half written: it
    /// holds secrets, and no later step would remove it.
    #[test]
    fn a_failed_write_leaves_no_partial_file() {
        let dir = TempDir::new("write-private");
        let path = dir.0.join("config.yaml");
        let mut command = self_command(
            "supervisor::runtime_dir::tests::write_private_failure_entry",
            "write_private_failure",
        );
        command
            .env(OUT_VAR, &path)
            .stdout(std::process::Stdio::null());
        let output = run_and_show(&mut command);
        assert!(output.status.success(), "{output:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("WRITE_ERROR"),
            "{output:?}"
        );
        assert!(!path.exists());
    }
}
