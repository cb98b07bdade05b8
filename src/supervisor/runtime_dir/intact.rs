//! Noticing that the runtime directory, or a socket in it, is no longer the
//! one the supervisor made: removed, emptied or replaced while it runs.
//!
//! The directory's identity is recorded when it is opened (`ownership`);
//! what to do when it is gone (start no new MAS) is the supervisor's.

use std::path::Path;

use super::{file_id, RuntimeDir, RuntimeDirError};

impl RuntimeDir {
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

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::activation::tests::TempDir;

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
}
