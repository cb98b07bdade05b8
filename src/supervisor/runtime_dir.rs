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
