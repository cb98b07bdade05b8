//! `mas-sockets generate-units`: golden outputs, `systemd-analyze verify`,
//! byte stability, and the refusals.
//!
//! Set `MAS_SOCKETS_BLESS=1` to rewrite the golden files after a deliberate change.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{explain, mas_sockets, repo, run, run_ok, TempDir};

/// `generate-units` for `configs` (relative to the repo), with the config paths
/// in the unit pinned so the output does not depend on where the repo is.
fn generate(configs: &[&str], extra: &[&str]) -> String {
    let mut cmd = Command::new(mas_sockets());
    cmd.arg("generate-units");
    for c in configs {
        cmd.arg("--config").arg(repo().join(c));
        cmd.arg("--config-in-unit")
            .arg(Path::new("/etc/mas").join(Path::new(c).file_name().unwrap()));
    }
    cmd.args(extra);
    run_ok(&mut cmd)
}

/// Compares with (or, when blessing, writes) `tests/golden/<name>`.
#[track_caller]
fn assert_golden(name: &str, actual: &str) {
    let path = repo().join("tests/golden").join(name);
    if std::env::var_os("MAS_SOCKETS_BLESS").is_some() {
        fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with MAS_SOCKETS_BLESS=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "generate-units output differs from {}\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// Splits generate-units' stdout into (file name, contents).
fn split_units(text: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = Vec::new();
    for line in text.split_inclusive('\n') {
        if let Some(name) = line.strip_prefix("### ") {
            files.push((name.trim().to_owned(), String::new()));
        } else if let Some((_, body)) = files.last_mut() {
            body.push_str(line);
        }
    }
    // Each file is followed by one blank separator line.
    for (_, body) in &mut files {
        if body.ends_with("\n\n") {
            body.pop();
        }
    }
    files
}

/// Runs `systemd-analyze verify` on the units in a scratch root that has the
/// stock units and executables at the paths the units name; any warning fails.
#[track_caller]
fn assert_verifies(units: &[(String, String)]) {
    let root = TempDir::new("verify");
    let unit_dir = root.join("etc/systemd/system");
    fs::create_dir_all(&unit_dir).unwrap();
    fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    run_ok(
        Command::new("cp")
            .arg("-r")
            .arg("/lib/systemd/system")
            .arg(root.join("usr/lib/systemd/system")),
    );
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    for exe in ["usr/bin/mas-sockets", "usr/bin/mas-cli"] {
        fs::copy("/bin/true", root.join(exe)).unwrap();
    }
    for (name, contents) in units {
        fs::write(unit_dir.join(name), contents).unwrap();
    }
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify")
        .arg("--man=no")
        .arg(format!("--root={}", root.path().display()));
    cmd.args(units.iter().map(|(n, _)| n));
    let out = run(&mut cmd);
    assert!(
        out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
        "systemd-analyze verify is not clean\n{}",
        explain(&cmd, &out)
    );
}

#[test]
fn reference_reverse_proxy_config() {
    let out = generate(&["examples/reverse-proxy.yaml"], &[]);
    assert_golden("reverse-proxy.units", &out);
    assert_verifies(&split_units(&out));
}

#[test]
fn unix_socket_with_mode() {
    let out = generate(
        &["tests/configs/unix-socket.yaml"],
        &["--socket-group", "www-data"],
    );
    assert_golden("unix-socket.units", &out);
    assert_verifies(&split_units(&out));
    assert!(
        !out.contains("0123456789abcdef"),
        "a secret reached a unit:\n{out}"
    );
}

#[test]
fn config_split_over_two_files() {
    let out = generate(
        &["tests/configs/split-a.yaml", "tests/configs/split-b.yaml"],
        &[],
    );
    assert_golden("split.units", &out);
    assert_verifies(&split_units(&out));
    assert!(out.contains("ExecStart=/usr/bin/mas-sockets supervise --config /etc/mas/split-a.yaml --config /etc/mas/split-b.yaml -- /usr/bin/mas-cli server\n"), "{out}");
    assert!(!out.contains("hunter2"), "a secret reached a unit:\n{out}");
}

/// `units/` holds the units for MAS's default listeners; they must stay what
/// the generator writes.
#[test]
fn units_directory_matches_the_generator() {
    let dir = TempDir::new("units");
    let mut cmd = Command::new(mas_sockets());
    cmd.arg("generate-units")
        .arg("--config")
        .arg(repo().join("examples/default.yaml"))
        .args(["--config-in-unit", "/etc/mas/config.yaml", "--output-dir"])
        .arg(dir.path());
    run_ok(&mut cmd);
    let mut generated: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    generated.sort();
    let names: Vec<String> = generated
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["mas-internal.socket", "mas-web.socket", "mas.service"]
    );
    let mut units = Vec::new();
    for (path, name) in generated.iter().zip(&names) {
        let contents = fs::read_to_string(path).unwrap();
        let committed = repo().join("units").join(name);
        if std::env::var_os("MAS_SOCKETS_BLESS").is_some() {
            fs::write(&committed, &contents).unwrap();
        }
        let expected = fs::read_to_string(&committed).unwrap_or_default();
        assert!(
            expected == contents,
            "units/{name} differs from the generator's output:\n{contents}"
        );
        units.push((name.clone(), contents));
    }
    assert_verifies(&units);
}

#[test]
fn output_is_byte_stable() {
    let a = generate(
        &["tests/configs/split-a.yaml", "tests/configs/split-b.yaml"],
        &[],
    );
    let b = generate(
        &["tests/configs/split-a.yaml", "tests/configs/split-b.yaml"],
        &[],
    );
    assert_eq!(a, b);
}

/// A config under /tmp (or /root, ...) is hidden from the hardened service
/// (PrivateTmp=, ProtectHome=): the unit would not start, so say so.
#[test]
fn a_config_path_the_service_cannot_see_is_warned_about() {
    /// A directory under /tmp itself, whatever TMPDIR says; removed on drop.
    struct InTmp(PathBuf);
    impl Drop for InTmp {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    let dir = InTmp(PathBuf::from(format!(
        "/tmp/mas-sockets-test.{}.hidden",
        std::process::id()
    )));
    let _ = fs::remove_dir_all(&dir.0);
    fs::create_dir_all(&dir.0).unwrap();
    fs::copy(
        repo().join("examples/reverse-proxy.yaml"),
        dir.0.join("config.yaml"),
    )
    .unwrap();
    let mut cmd = Command::new(mas_sockets());
    cmd.current_dir(&dir.0).args([
        "generate-units",
        "--config",
        "config.yaml",
        "--mas-cli",
        "/root/bin/mas-cli",
    ]);
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", explain(&cmd, &out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!("mas-sockets: warning: the config path `{}/config.yaml` in ExecStart= is under /tmp, which PrivateTmp=yes replaces with an empty directory of the service's own, so MAS could not read it; move the config, e.g. to /etc/mas/, or give --config-in-unit with the path it will have", dir.0.display()),
            "mas-sockets: warning: --mas-cli `/root/bin/mas-cli` is under /root, which ProtectHome=yes hides from the service, so the service could not run it; install it elsewhere, e.g. as /usr/bin/mas-cli, and give that path with --mas-cli".to_owned(),
        ],
        "{}",
        explain(&cmd, &out)
    );
    // The path the unit will have is what counts.
    let mut cmd = Command::new(mas_sockets());
    cmd.current_dir(&dir.0).args([
        "generate-units",
        "--config",
        "config.yaml",
        "--config-in-unit",
        "/etc/mas/config.yaml",
    ]);
    let out = run(&mut cmd);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        explain(&cmd, &out)
    );
}

/// A link outside the hidden directories that leads into one (the file
/// itself, or a directory on the way) hides the config just the same.
#[test]
fn a_config_linked_into_a_hidden_directory_is_warned_about() {
    /// A directory removed on drop.
    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    let made = |path: String| {
        let dir = Dir(PathBuf::from(path));
        let _ = fs::remove_dir_all(&dir.0);
        fs::create_dir_all(&dir.0).unwrap();
        dir
    };
    let pid = std::process::id();
    // Under /tmp itself, whatever TMPDIR says; the links under /run, which
    // the service sees.
    let hidden = made(format!("/tmp/mas-sockets-test.{pid}.linked"));
    let target = hidden.0.join("config.yaml");
    fs::copy(repo().join("examples/reverse-proxy.yaml"), &target).unwrap();
    let links = made(format!("/run/mas-sockets-test.{pid}.links"));
    let links = &links.0;
    let file_link = links.join("config.yaml");
    std::os::unix::fs::symlink(&target, &file_link).unwrap();
    let dir_link = links.join("mas");
    std::os::unix::fs::symlink(&hidden.0, &dir_link).unwrap();
    for given in [file_link, dir_link.join("config.yaml")] {
        let mut cmd = Command::new(mas_sockets());
        cmd.args(["generate-units", "--config"]).arg(&given);
        let out = run(&mut cmd);
        assert!(out.status.success(), "{}", explain(&cmd, &out));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("mas-sockets: warning: the config path `{}` in ExecStart= leads through a symlink to `{}`, under /tmp, which PrivateTmp=yes replaces with an empty directory of the service's own, so MAS could not read it; move the config, e.g. to /etc/mas/, and make the link point there (or copy the file)\n", given.display(), target.display()),
            "{}",
            explain(&cmd, &out)
        );
    }
}

#[test]
fn config_paths_in_exec_start_are_absolute() {
    let dir = TempDir::new("abs");
    dir.write(
        "config.yaml",
        &fs::read_to_string(repo().join("examples/reverse-proxy.yaml")).unwrap(),
    );
    let mut cmd = Command::new(mas_sockets());
    cmd.current_dir(dir.path())
        .args(["generate-units", "--config", "config.yaml"]);
    let out = run_ok(&mut cmd);
    let want = format!(
        "ExecStart=/usr/bin/mas-sockets supervise --config {}/config.yaml --",
        dir.path().display()
    );
    assert!(out.contains(&want), "{out}");
}

/// `..` leaves the unit as the kernel resolves it: through a symlinked
/// directory to its target's parent, not lexically, while a symlink after
/// the last `..` stays as the operator gave it.
#[test]
fn config_paths_in_exec_start_carry_no_dot_dot() {
    let dir = TempDir::new("dotdot");
    let example = fs::read_to_string(repo().join("examples/reverse-proxy.yaml")).unwrap();
    fs::create_dir_all(dir.path().join("real/a/b")).unwrap();
    dir.write("real/a/config.yaml", &example);
    std::os::unix::fs::symlink(dir.path().join("real/a/b"), dir.path().join("b")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("real/a"), dir.path().join("real/a/b/conf"))
        .unwrap();
    let root = dir.path().canonicalize().unwrap();
    for (cwd, given, want) in [
        // b/.. is real/a, where b points into.
        (".", "b/../config.yaml", "real/a/config.yaml"),
        (
            "real/a/b",
            "../../a/b/conf/config.yaml",
            "real/a/b/conf/config.yaml",
        ),
    ] {
        let mut cmd = Command::new(mas_sockets());
        cmd.current_dir(dir.path().join(cwd))
            .args(["generate-units", "--config", given]);
        let out = run_ok(&mut cmd);
        let want = format!(
            "ExecStart=/usr/bin/mas-sockets supervise --config {}/{want} --",
            root.display()
        );
        assert!(out.contains(&want), "{given}: {out}");
    }
}

#[test]
fn fd_binds_are_refused_with_the_way_forward() {
    let dir = TempDir::new("fd");
    let path = dir.write(
        "c.yaml",
        "http:\n  listeners:\n    - name: web\n      resources: [{name: human}]\n      binds:\n        - fd: 0\n  public_base: https://a/\n",
    );
    let mut cmd = Command::new(mas_sockets());
    cmd.args(["generate-units", "--config"]).arg(&path);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&cmd, &out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!("mas-sockets: {}:6:11: http.listeners[0].binds[0]: an `fd:` bind names no address, so no socket unit can be written for it; replace it with the `host`+`port`, `address` or `socket` bind that the socket should have, or write that socket unit by hand", path.display())
    );
}

/// A socket unit from an earlier run whose bind is gone would still be passed
/// to the service; generate-units names it and the way to remove it.
#[test]
fn stale_socket_units_are_reported() {
    let dir = TempDir::new("stale");
    let out_dir = dir.join("units");
    let write = |config: &str| {
        let mut cmd = Command::new(mas_sockets());
        // The unit's config path is pinned: wherever the repository is, the
        // service could read it, and nothing but stale units is warned about.
        cmd.arg("generate-units")
            .arg("--config")
            .arg(repo().join(config))
            .args(["--config-in-unit", "/etc/mas/config.yaml"])
            .arg("--output-dir")
            .arg(&out_dir);
        run(&mut cmd)
    };
    let first = write("examples/default.yaml");
    assert!(first.status.success());
    assert!(
        first.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // Nothing stale: reload, enable, restart.
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        format!(
            "wrote mas-web.socket, mas-internal.socket, mas.service to {}\nnext: systemctl daemon-reload && systemctl enable mas.service && systemctl restart mas-web.socket mas-internal.socket mas.service\n",
            out_dir.display()
        )
    );
    fs::write(
        out_dir.join("mas-by-hand.socket"),
        "[Socket]\nListenStream=1\n",
    )
    .unwrap();
    let second = write("examples/reverse-proxy.yaml");
    assert!(second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "mas-sockets: warning: {}/mas-internal.socket was generated earlier and is not part of this config any more; systemd would still pass its socket and supervise would refuse it: run `systemctl disable --now mas-internal.socket` and remove the file (the next: line does both, first)",
            out_dir.display()
        ),
        "only the generated stale unit is named, not the hand-written one"
    );
    // The stale unit would keep its address from a new unit that wants it:
    // it goes before anything starts.
    assert_eq!(
        String::from_utf8_lossy(&second.stdout),
        format!(
            "wrote mas-web.socket, mas.service to {dir}\nnext: systemctl disable --now mas-internal.socket && rm -- {dir}/mas-internal.socket && systemctl daemon-reload && systemctl enable mas.service && systemctl restart mas-web.socket mas.service\n",
            dir = out_dir.display()
        )
    );
    assert!(
        out_dir.join("mas-internal.socket").exists(),
        "generate-units leaves the stale unit's file to the next: line"
    );
    // Once it is gone, the next run names nothing stale.
    fs::remove_file(out_dir.join("mas-internal.socket")).unwrap();
    let third = write("examples/reverse-proxy.yaml");
    assert!(third.status.success());
    assert!(
        third.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&third.stdout),
        format!(
            "wrote mas-web.socket, mas.service to {}\nnext: systemctl daemon-reload && systemctl enable mas.service && systemctl restart mas-web.socket mas.service\n",
            out_dir.display()
        )
    );
}

/// Reload: ExecReload= asks supervise on systemd 252; from 253 on, systemd's
/// own notify-reload protocol does, and the timeouts follow the options.
#[test]
fn reload_and_timeouts_follow_the_target_systemd() {
    let old = generate(
        &["examples/reverse-proxy.yaml"],
        &[
            "--ready-timeout",
            "90s",
            "--drain-timeout",
            "20s",
            "--stop-timeout",
            "30s",
        ],
    );
    assert!(old.contains("Type=notify\n"), "{old}");
    assert!(
        old.contains("ExecReload=/usr/bin/mas-sockets reload\n"),
        "{old}"
    );
    assert!(
        old.contains("TimeoutStartSec=140s\n") && old.contains("TimeoutStopSec=45s\n"),
        "{old}"
    );
    assert!(
        old.contains("MAS_SOCKETS_READY_TIMEOUT=90s MAS_SOCKETS_DRAIN_TIMEOUT=20s"),
        "{old}"
    );
    let new = generate(
        &["examples/reverse-proxy.yaml"],
        &["--systemd-version", "254"],
    );
    assert!(
        new.contains("Type=notify-reload\n") && !new.contains("ExecReload="),
        "{new}"
    );
}

/// `--config-in-unit` stands for the files read, one for one: a count that
/// differs would make the service read other files than those checked.
#[test]
fn config_in_unit_must_name_every_config_file() {
    let mut cmd = Command::new(mas_sockets());
    cmd.arg("generate-units")
        .arg("--config")
        .arg(repo().join("tests/configs/split-a.yaml"))
        .arg("--config")
        .arg(repo().join("tests/configs/split-b.yaml"))
        .args(["--config-in-unit", "/etc/mas/a.yaml"]);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&cmd, &out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("mas-sockets: --config-in-unit is given 1 time(s) for 2 config file(s)")
            && stderr.contains("give one per config file, in the same order"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "{}", explain(&cmd, &out));
}

/// With no config file at all (`MAS_CONFIG` set but empty: MAS's defaults),
/// the service must read no file either, not `config.yaml` in its working
/// directory, which is what supervise reads without `--config` and
/// `MAS_CONFIG`; and since an empty value is more often an unset variable
/// than a choice, a warning says so.
#[test]
fn no_config_file_makes_a_service_that_reads_none() {
    let mut cmd = Command::new(mas_sockets());
    cmd.arg("generate-units").env("MAS_CONFIG", "");
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", explain(&cmd, &out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("mas-sockets: warning: MAS_CONFIG=\"\" is set but names no file, so MAS reads no config file and serves its built-in listeners")
            && stderr.contains("if a config was meant, give it with --config"),
        "{stderr}"
    );
    let units = split_units(&String::from_utf8_lossy(&out.stdout));
    let (_, service) = units
        .iter()
        .find(|(name, _)| name == "mas.service")
        .expect("a service unit");
    assert!(
        service.contains("\nExecStart=/usr/bin/mas-sockets supervise -- /usr/bin/mas-cli server\n")
            && service.contains("\nEnvironment=MAS_CONFIG=\n"),
        "{service}"
    );
    assert_verifies(&units);
}

/// A setuid, setgid or sticky bit on a socket is a slip: no unit gets it.
#[test]
fn a_mode_beyond_0777_writes_no_unit() {
    let dir = TempDir::new("mode");
    let path = dir.write(
        "c.yaml",
        "http:\n  listeners:\n    - name: web\n      resources: [{name: human}]\n      binds:\n        - socket: /run/mas/web.sock\n          mode: \"7777\"\n  public_base: https://a/\n",
    );
    let mut cmd = Command::new(mas_sockets());
    cmd.args(["generate-units", "--config"]).arg(&path);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&cmd, &out));
    assert!(out.stdout.is_empty(), "{}", explain(&cmd, &out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!("mas-sockets: {}:7:17: http.listeners[0].binds[0].mode: `mode: 7777` sets bits beyond 0777 (setuid, setgid, sticky), which mean nothing on a socket; give the permission bits only, e.g. `mode: \"660\"`", path.display())
    );
}

/// systemd empties the service's runtime directory whenever it stops: a
/// socket there would lose its file while the socket unit holds it.
#[test]
fn a_socket_in_the_runtime_directory_is_warned_about() {
    let dir = TempDir::new("rundir");
    let path = dir.write(
        "c.yaml",
        "http:\n  listeners:\n    - name: web\n      resources: [{name: human}]\n      binds:\n        - socket: /run/mas-sockets/mas/web.sock\n  public_base: https://a/\n",
    );
    let mut cmd = Command::new(mas_sockets());
    cmd.args([
        "generate-units",
        "--config-in-unit",
        "/etc/mas/config.yaml",
        "--config",
    ])
    .arg(&path);
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", explain(&cmd, &out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!("mas-sockets: warning: {}:6:11: http.listeners[0].binds[0]: the socket path `/run/mas-sockets/mas/web.sock` is inside /run/mas-sockets/mas, the runtime directory of mas.service, which systemd empties whenever the service stops, so the socket file would vanish while its socket unit still holds the socket; put it in a directory of its own, e.g. /run/mas/web.sock", path.display())
    );
}

/// A config the service's user could not read (a root-only file, or a
/// directory on the way it may not search) is warned about, naming what is
/// in the way and a fix; once the user may read it, nothing is said.
#[test]
fn a_config_the_service_user_cannot_read_is_warned_about() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new("unreadable");
    let etc = dir.join("etc-mas");
    fs::create_dir(&etc).unwrap();
    let config = etc.join("config.yaml");
    fs::copy(repo().join("examples/reverse-proxy.yaml"), &config).unwrap();
    let chmod =
        |path: &Path, mode| fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    let warnings_for = |config: &Path| {
        let mut cmd = Command::new(mas_sockets());
        cmd.arg("generate-units")
            .arg("--config")
            .arg(config)
            .args(["--user", "nobody", "--group", "nogroup"]);
        let out = run(&mut cmd);
        assert!(out.status.success(), "{}", explain(&cmd, &out));
        // The checkout's /tmp is warned about too; that is another test's.
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.contains("PrivateTmp=yes"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let warnings = || warnings_for(&config);
    chmod(&etc, 0o700);
    chmod(&config, 0o600);
    assert_eq!(
        warnings(),
        [format!(
            "mas-sockets: warning: the service's user `nobody` (User=nobody, Group=nogroup) may not search the directory `{etc}` (mode 0700, owner root, group root), so it could not read the config `{config}` and the service would fail at start; e.g. `chgrp nogroup {etc} && chmod 750 {etc}`",
            etc = etc.display(),
            config = config.display()
        )]
    );
    chmod(&etc, 0o755);
    assert_eq!(
        warnings(),
        [format!(
            "mas-sockets: warning: the service's user `nobody` (User=nobody, Group=nogroup) may not read the config `{config}` (mode 0600, owner root, group root), so the service would fail at start; e.g. `chgrp nogroup {config} && chmod 640 {config}`",
            config = config.display()
        )]
    );
    let nogroup = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .expect("group nogroup");
    std::os::unix::fs::chown(&config, None, Some(nogroup.gid.as_raw())).unwrap();
    chmod(&config, 0o640);
    assert_eq!(warnings(), Vec::<String>::new());
    // A link to it, from a directory the service may not search, is as
    // much in the way.
    let locked = dir.join("locked");
    fs::create_dir(&locked).unwrap();
    chmod(&locked, 0o700);
    let link = locked.join("config.yaml");
    std::os::unix::fs::symlink(&config, &link).unwrap();
    assert_eq!(
        warnings_for(&link),
        [format!(
            "mas-sockets: warning: the service's user `nobody` (User=nobody, Group=nogroup) may not search the directory `{locked}` (mode 0700, owner root, group root), so it could not read the config `{link}` and the service would fail at start; e.g. `chgrp nogroup {locked} && chmod 750 {locked}`",
            locked = locked.display(),
            link = link.display()
        )]
    );
}
