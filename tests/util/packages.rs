//! The .deb and .rpm under test, built once per test process with
//! `packaging/build`: at Cargo.toml's version, at a newer one
//! (`MAS_SOCKETS_PACKAGE_VERSION`) for the upgrade tests, and at Cargo.toml's
//! version again, to hold against a copy of the first build.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::{explain, repo, run};

/// Both builds' packages.
#[derive(Debug)]
pub struct Packages {
    /// Cargo.toml's version, which the first build packages and the binary prints.
    pub version: String,
    /// The newer package version of the second build.
    pub upgrade_version: String,
    pub deb: PathBuf,
    pub rpm: PathBuf,
    pub deb_upgrade: PathBuf,
    pub rpm_upgrade: PathBuf,
    /// Copies of the first build's .deb and .rpm, taken before the same
    /// version was built again into `deb` and `rpm`.
    pub first_deb: PathBuf,
    pub first_rpm: PathBuf,
}

/// Builds the packages on first use; later calls get the same result, and a
/// failed build fails every test that needs it with the same message.
pub fn packages() -> &'static Packages {
    static BUILT: OnceLock<Result<Packages, String>> = OnceLock::new();
    match BUILT.get_or_init(build_both) {
        Ok(packages) => packages,
        Err(message) => panic!("{message}"),
    }
}

fn build_both() -> Result<Packages, String> {
    let version = env!("CARGO_PKG_VERSION").to_owned();
    let upgrade_version = format!("{version}+upgrade1");
    let (deb, rpm) = build(None)?;
    let first = repo().join("target/package-test/first-build");
    let _ = fs::remove_dir_all(&first);
    fs::create_dir_all(&first).map_err(|e| format!("mkdir {}: {e}", first.display()))?;
    let keep = |path: &Path| {
        let to = first.join(path.file_name().expect("a package file name"));
        fs::copy(path, &to)
            .map(|_| to)
            .map_err(|e| format!("copy {} to {}: {e}", path.display(), first.display()))
    };
    let (first_deb, first_rpm) = (keep(&deb)?, keep(&rpm)?);
    let (deb_upgrade, rpm_upgrade) = build(Some(&upgrade_version))?;
    let (deb, rpm) = build(None)?;
    Ok(Packages {
        version,
        upgrade_version,
        deb,
        rpm,
        deb_upgrade,
        rpm_upgrade,
        first_deb,
        first_rpm,
    })
}

/// Runs packaging/build and returns the two packages its last lines name.
fn build(version: Option<&str>) -> Result<(PathBuf, PathBuf), String> {
    let mut cmd = Command::new(repo().join("packaging/build"));
    cmd.current_dir(repo());
    match version {
        Some(version) => cmd.env("MAS_SOCKETS_PACKAGE_VERSION", version),
        None => cmd.env_remove("MAS_SOCKETS_PACKAGE_VERSION"),
    };
    cmd.env_remove("MAS_SOCKETS_PACKAGE_RELEASE");
    // Not the operator's target/packages: test builds stay out of it.
    cmd.env("MAS_SOCKETS_PACKAGE_OUT", "target/package-test/packages");
    let out = run(&mut cmd);
    if !out.status.success() {
        return Err(format!("packaging/build failed\n{}", explain(&cmd, &out)));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let built: Vec<PathBuf> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("packaging/build: "))
        .map(|path| repo().join(path))
        .collect();
    let find = |ext: &str| {
        built
            .iter()
            .find(|p| p.extension().is_some_and(|e| e == ext) && p.exists())
            .cloned()
            .ok_or_else(|| format!("packaging/build named no .{ext}\n{}", explain(&cmd, &out)))
    };
    Ok((find("deb")?, find("rpm")?))
}
