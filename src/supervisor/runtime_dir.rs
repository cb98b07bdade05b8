//! The supervisor's private runtime directory and the files in it: the
//! rewritten config (which holds the config's secrets), the notify socket and
//! the control socket. Everything here is owner-only, and files a killed
//! supervisor left behind are removed at the next start.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use tracing::{info, warn};

/// A private directory (mode 0700) for the notify socket and the rewritten config.
#[derive(Debug)]
pub struct RuntimeDir {
    path: PathBuf,
    /// Whether we made the directory (and so remove it) or were given it.
    owned: bool,
}

impl RuntimeDir {
    /// Uses `dir` as given (systemd's `RuntimeDirectory=` is already private),
    /// after removing the files a killed supervisor left there.
    pub fn given(dir: PathBuf) -> RuntimeDir {
        sweep(&dir, |name| {
            let pid = name
                .strip_prefix("config.")
                .or_else(|| name.strip_prefix("notify."))
                .or_else(|| name.strip_prefix("control."))?;
            pid.split('.').next()
        });
        RuntimeDir {
            path: dir,
            owned: false,
        }
    }

    /// Makes a new directory `mas-sockets.<pid>` under `parent`, mode 0700,
    /// after removing such directories of supervisors that were killed.
    ///
    /// # Errors
    ///
    /// The directory cannot be created (it must not exist).
    pub fn create_in(parent: &Path) -> io::Result<RuntimeDir> {
        sweep(parent, |name| name.strip_prefix("mas-sockets."));
        let path = parent.join(Self::created_name());
        fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(RuntimeDir { path, owned: true })
    }

    /// The name [`RuntimeDir::create_in`] gives the directory it makes.
    pub fn created_name() -> String {
        format!("mas-sockets.{}", std::process::id())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        if self.owned {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Removes the entries of `dir` that are ours (same owner) and belong to a
/// supervisor pid that no longer runs: a rewritten config must not outlive a
/// supervisor that was killed before it could remove it. `pid_of` extracts the
/// pid from an entry's name, or says it is not such an entry.
fn sweep(dir: &Path, pid_of: impl Fn(&str) -> Option<&str>) {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let uid = nix::unistd::geteuid().as_raw();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = pid_of(&name).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let ours = entry.metadata().is_ok_and(|m| m.uid() == uid);
        if !ours || pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = entry.path();
        let removed = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        match removed {
            Ok(()) => info!(
                "removed {}, left by supervisor pid {pid}, which is gone",
                path.display()
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
pub fn write_private(path: &Path, text: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}
