//! Deploying the generated units into a real systemd booted by
//! [`super::systemd`]: the binaries and config staged in the instance's
//! private /run, units generated straight into its /run/systemd/system.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use super::systemd::Systemd;
use super::{mas_sockets, run_ok, standin};

/// How long a test waits for systemd or the service to reach a state.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Where the test places binaries and config inside the instance: its private
/// /run, which the unit's ProtectHome= and PrivateTmp= leave visible.
pub const STAGE: &str = "/run/mas-e2e";

/// Boots a systemd for one test; panics with what went wrong when it cannot.
pub fn boot(label: &str) -> Systemd {
    Systemd::boot(label).unwrap_or_else(|e| panic!("{e}"))
}

/// Copies the binaries and the config into the instance, world-readable, so
/// that the service user (nobody) can run them.
pub fn stage(sd: &Systemd, config: &str) {
    let dir = sd.host_path(STAGE);
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    for (from, name) in [(mas_sockets(), "mas-sockets"), (standin(), "mas-cli")] {
        fs::copy(&from, dir.join(name)).unwrap();
        fs::set_permissions(dir.join(name), fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::write(dir.join("config.yaml"), config).unwrap();
    fs::set_permissions(dir.join("config.yaml"), fs::Permissions::from_mode(0o644)).unwrap();
}

/// Generates the units for the staged config straight into the instance,
/// with `extra` generate-units options; returns the names of the units.
pub fn install_units_with(sd: &Systemd, extra: &[&str]) -> Vec<String> {
    let out = generate_units_into(sd, extra);
    sd.daemon_reload();
    let names = out
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("wrote "))
        .and_then(|l| l.split(" to ").next())
        .unwrap_or_else(|| panic!("unexpected generate-units output: {out}"));
    names.split(", ").map(str::to_owned).collect()
}

/// Runs generate-units for the staged config with its output directory the
/// instance's /run/systemd/system, and returns what it printed.
pub fn generate_units_into(sd: &Systemd, extra: &[&str]) -> String {
    let mut cmd = Command::new(mas_sockets());
    cmd.arg("generate-units")
        .arg("--config")
        .arg(sd.host_path(&format!("{STAGE}/config.yaml")))
        .args(["--config-in-unit", &format!("{STAGE}/config.yaml")])
        .args(["--mas-sockets", &format!("{STAGE}/mas-sockets")])
        .args(["--mas-cli", &format!("{STAGE}/mas-cli")])
        .args([
            "--user",
            "nobody",
            "--group",
            "nogroup",
            "--stop-timeout",
            "10s",
        ])
        .args(extra)
        .arg("--output-dir")
        .arg(sd.host_path("/run/systemd/system"));
    run_ok(&mut cmd)
}

/// A Unix socket path of the instance, seen from the host.
pub fn sock_path(sd: &Systemd) -> std::path::PathBuf {
    sd.host_path("/run/mas-e2e-sock/web.sock")
}
