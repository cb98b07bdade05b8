//! Files that hold secrets (the rewritten config): written owner-only and
//! whole or not at all, and removed when they are no longer needed.
//!
//! Where they are written, and what goes into them, is the caller's: the
//! rewritten config goes into the [`RuntimeDir`], which is this user's
//! alone already.
//!
//! [`RuntimeDir`]: super::RuntimeDir

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use tracing::warn;

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
            "supervisor::runtime_dir::private_file::tests::write_private_failure_entry",
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
