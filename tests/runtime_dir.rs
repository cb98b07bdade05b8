//! supervise's private runtime directory: that it belongs to one supervisor
//! at a time, that no other supervisor removes it while its owner runs (also
//! when the owner's pid is not visible, from another pid namespace), and
//! that what a killed supervisor left there goes at the next start.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::supervise::{web_listener, Run, Setup, LONG};
use crate::util::{free_port, mas_sockets, TempDir};

/// `unshare` arguments that run the command after them as PID 1 of a new
/// pid namespace with its own /proc: no process outside is visible to it.
fn in_new_pid_namespace() -> [&'static str; 5] {
    let probe = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .output()
        .expect("run unshare");
    assert!(
        probe.status.success(),
        "this test needs root (unshare --pid --fork --mount-proc): {probe:?}"
    );
    // Killing unshare (as Run's drop does) stops the supervisor in it.
    [
        "unshare",
        "--pid",
        "--fork",
        "--mount-proc",
        "--kill-child=SIGTERM",
    ]
}

/// A config serving on a free port of 127.0.0.1, with `extra` appended.
fn config(extra: &str) -> String {
    web_listener(
        &format!(
            "        - host: 127.0.0.1\n          port: {}\n",
            free_port()
        ),
        extra,
    )
}

/// supervise run by hand, making its directory under `parent`, as it does
/// under /tmp without `--runtime-dir` or `$XDG_RUNTIME_DIR`.
fn made_under<'a>(config: &'a str, parent: &Path) -> Setup<'a> {
    Setup::new(config)
        .env_remove("MAS_SOCKETS_RUNTIME_DIR")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("RUNTIME_DIRECTORY")
        .env("TMPDIR", parent.display())
}

/// `mas-sockets status --runtime-dir DIR`.
fn status(dir: &Path) -> Output {
    Command::new(mas_sockets())
        .arg("status")
        .arg("--runtime-dir")
        .arg(dir)
        .output()
        .expect("run mas-sockets status")
}

#[track_caller]
fn assert_answers(dir: &Path, pid: i32, run: &Run) {
    let out = status(dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&format!("supervisor: {pid}\n")),
        "the supervisor (pid {pid}) does not answer at {}: {out:?}\nits log:\n{}",
        dir.display(),
        run.log()
    );
}

/// The directory `mas-sockets.<pid>` a supervisor made under `parent`.
fn made_dir(parent: &Path, pid: i32) -> PathBuf {
    parent.join(format!("mas-sockets.{pid}"))
}

/// A supervisor in another pid namespace cannot see the pid in the name of
/// a running supervisor's directory; that must not make it remove the
/// directory (and with it the control socket, the notify socket and a
/// rewritten config that MAS has yet to read).
#[test]
fn a_directory_whose_supervisor_runs_in_another_pid_namespace_is_kept() {
    let wrapper = in_new_pid_namespace();
    let parent = TempDir::new("shared-tmp");
    let config_a = config("");
    let mut a = made_under(&config_a, parent.path()).start("pidns-a");
    a.notify.expect_line("READY=1", LONG);
    let dir_a = made_dir(parent.path(), a.pid());
    assert_answers(&dir_a, a.pid(), &a);

    let config_b = config("");
    let b = made_under(&config_b, parent.path())
        .wrapper(wrapper)
        .start("pidns-b");
    b.notify.expect_line("READY=1", LONG);
    // PID 1 of its namespace.
    let dir_b = made_dir(parent.path(), 1);
    assert_answers(&dir_b, 1, &b);
    assert_answers(&dir_a, a.pid(), &a);
    assert!(!b.log().contains("removed"), "{}", b.log());
    assert!(a.stop().success(), "{}", a.log());
    assert!(
        !dir_a.exists(),
        "a supervisor removes the directory it made"
    );
}

/// Two supervisors given the same directory: the second, in another pid
/// namespace, is refused before it touches anything of the first's.
#[test]
fn a_given_directory_in_use_is_refused_and_left_alone() {
    let wrapper = in_new_pid_namespace();
    let config_a = config("");
    let a = Setup::new(&config_a).start("given-a");
    a.notify.expect_line("READY=1", LONG);
    let dir = a.dir.join("rt");
    let notify = dir.join(format!("notify.{}.sock", a.pid()));
    assert!(notify.exists());

    let config_b = config("");
    let mut b = Setup::new(&config_b)
        .env("MAS_SOCKETS_RUNTIME_DIR", dir.display())
        .wrapper(wrapper)
        .start("given-b");
    let status = b.wait();
    assert_eq!(status.code(), Some(2), "{}", b.log());
    let want = format!(
        "mas-sockets: the runtime directory {} is in use by another supervisor, which holds the lock on {}/supervisor.lock; give each supervisor its own runtime directory (--runtime-dir), or stop the other one first\n",
        dir.display(),
        dir.display()
    );
    assert_eq!(b.log(), want);
    assert!(b.reports().is_empty(), "MAS was started");
    assert!(
        notify.exists(),
        "the first supervisor lost its notify socket"
    );
    assert_answers(&dir, a.pid(), &a);
}

/// What a SIGKILLed supervisor left in the directory it made (a rewritten
/// config with the secrets, as MAS was still starting) is removed by the
/// next supervisor that makes its directory in the same place.
#[test]
fn a_killed_supervisors_directory_goes_at_the_next_start() {
    let parent = TempDir::new("killed-tmp");
    let config_c = config("standin:\n  never_ready: true\n");
    let mut c = made_under(&config_c, parent.path()).start("killed-c");
    c.wait_log("never_ready is set");
    let secrets = PathBuf::from(c.report_field("config"));
    let dir_c = made_dir(parent.path(), c.pid());
    assert!(secrets.starts_with(&dir_c) && secrets.exists());
    c.signal(libc::SIGKILL);
    c.wait();
    assert!(secrets.exists());

    let config_d = config("");
    let d = made_under(&config_d, parent.path()).start("killed-d");
    d.notify.expect_line("READY=1", LONG);
    assert!(!dir_c.exists(), "the killed supervisor's directory stayed");
    assert!(
        d.log().contains(&format!(
            "removed {}, left by a supervisor that is gone (nothing held its supervisor.lock)",
            dir_c.display()
        )),
        "{}",
        d.log()
    );
}

/// The same in a given directory: the next supervisor started in it
/// removes the config a SIGKILLed one left.
#[test]
fn files_of_a_killed_supervisor_in_a_given_directory_go_at_the_next_start() {
    let config_c = config("standin:\n  never_ready: true\n");
    let mut c = Setup::new(&config_c).start("given-killed-c");
    c.wait_log("never_ready is set");
    let secrets = PathBuf::from(c.report_field("config"));
    let dir = c.dir.join("rt");
    assert!(secrets.starts_with(&dir) && secrets.exists());
    c.signal(libc::SIGKILL);
    c.wait();
    assert!(secrets.exists());

    let config_d = config("");
    let mut d = Setup::new(&config_d)
        .env("MAS_SOCKETS_RUNTIME_DIR", dir.display())
        .start("given-killed-d");
    d.notify.expect_line("READY=1", LONG);
    assert!(!secrets.exists(), "the stale config survived:\n{}", d.log());
    assert!(
        d.log().contains(&format!(
            "removed {}, left by supervisor pid {}, which is gone (nothing held {}/supervisor.lock)",
            secrets.display(),
            c.pid(),
            dir.display()
        )),
        "{}",
        d.log()
    );
    assert!(d.stop().success(), "{}", d.log());
    let left: Vec<_> = fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A directory made by an older mas-sockets, which took no lock, proves
/// nothing about its owner: it is left, and a debug line says so.
#[test]
fn a_directory_without_a_lock_file_is_left_alone() {
    let parent = TempDir::new("old-tmp");
    // A pid above pid_max: no process has it, here or anywhere.
    let old = parent.join("mas-sockets.4194305");
    fs::create_dir(&old).unwrap();
    fs::write(old.join("config.4194305.1.yaml"), "secrets: {}\n").unwrap();
    let config_d = config("");
    let mut setup = made_under(&config_d, parent.path());
    setup.args.push("--log=info,mas_sockets=debug");
    let d = setup.start("old-d");
    d.notify.expect_line("READY=1", LONG);
    assert!(old.join("config.4194305.1.yaml").exists());
    assert!(
        d.log().contains(&format!(
            "left {}: it has no supervisor.lock, so it was made by an older mas-sockets (or is being set up) and nothing shows that its supervisor is gone",
            old.display()
        )),
        "{}",
        d.log()
    );
}

/// Run by hand, supervise says once where its runtime directory is, with the
/// exact command that reaches it, quoted for the shell.
#[test]
fn run_by_hand_it_says_how_to_reach_it() {
    let scratch = TempDir::new("hint");
    let parent = scratch.join("with space");
    fs::create_dir(&parent).unwrap();
    let config_a = config("");
    let a = made_under(&config_a, &parent).start("hint");
    a.notify.expect_line("READY=1", LONG);
    let dir = made_dir(&parent, a.pid());
    let log = a.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("reach this supervisor"))
        .collect();
    let shown = format!("'{}'", dir.display());
    let want = format!(
        "runtime directory {}; reach this supervisor with `mas-sockets status --runtime-dir {shown}` or `mas-sockets reload --runtime-dir {shown}`",
        dir.display()
    );
    assert!(
        lines.len() == 1 && lines[0].contains(" INFO ") && lines[0].ends_with(&want),
        "{log}"
    );
    let hint = want
        .split('`')
        .nth(1)
        .expect("the command between backquotes");
    let bin = mas_sockets();
    let out = Command::new("sh")
        .arg("-c")
        .arg(hint)
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", bin.parent().unwrap().display()),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains(&format!("supervisor: {}\n", a.pid())),
        "{hint}: {out:?}"
    );
}

/// `--runtime-dir DIR` that does not exist is created (mode 0700), and left
/// in place, empty, at the end; one whose parent does not exist is refused
/// with one line that says so.
#[test]
fn a_missing_runtime_dir_is_created_when_its_parent_exists() {
    use std::os::unix::fs::PermissionsExt as _;
    let scratch = TempDir::new("missing-rt");
    let dir = scratch.join("new");
    let config_a = config("");
    let mut a = Setup::new(&config_a)
        .env("MAS_SOCKETS_RUNTIME_DIR", dir.display())
        .start("missing-rt");
    a.notify.expect_line("READY=1", LONG);
    let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert_answers(&dir, a.pid(), &a);
    assert!(a.stop().success(), "{}", a.log());
    let left: Vec<_> = fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");

    let deeper = scratch.join("no/new");
    let config_b = config("");
    let mut b = Setup::new(&config_b)
        .env("MAS_SOCKETS_RUNTIME_DIR", deeper.display())
        .start("missing-parent");
    assert_eq!(b.wait().code(), Some(2), "{}", b.log());
    assert_eq!(
        b.log(),
        format!(
            "mas-sockets: cannot create the runtime directory {}: its parent {} does not exist; create the parent first, or give another directory with --runtime-dir\n",
            deeper.display(),
            scratch.join("no").display()
        )
    );
    assert!(b.reports().is_empty(), "MAS was started");
}

/// `status` and `reload` run by a user who may not open the control socket
/// say whom to run them as: root, and the user owning the runtime directory.
#[test]
fn a_user_who_may_not_open_the_control_socket_is_told_whom_to_run_as() {
    use std::os::unix::fs::PermissionsExt as _;
    /// `mas-sockets ARGS --runtime-dir DIR` as nobody; exit status and stderr.
    fn as_nobody(args: &[&str], dir: &Path) -> (Option<i32>, String) {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(mas_sockets())
            .args(args)
            .arg("--runtime-dir")
            .arg(dir)
            .output()
            .expect("run setpriv");
        assert!(out.stdout.is_empty(), "{out:?}");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
    let scratch = TempDir::new("denied");

    // A supervisor run by root: its directory is root's, mode 0700.
    let dir = scratch.join("root");
    let config_a = config("");
    let mut a = Setup::new(&config_a)
        .env("MAS_SOCKETS_RUNTIME_DIR", dir.display())
        .start("denied");
    a.notify.expect_line("READY=1", LONG);
    let want = format!(
        "mas-sockets: cannot reach the supervisor at {}/control.sock: Permission denied (os error 13); this user may not open it: run the command as root (e.g. with sudo)\n",
        dir.display()
    );
    for args in [&["status"][..], &["reload"], &["reload", "--signal-only"]] {
        assert_eq!(as_nobody(args, &dir), (Some(2), want.clone()), "{args:?}");
    }
    assert_answers(&dir, a.pid(), &a);
    assert!(a.stop().success(), "{}", a.log());

    // The directory of a service that runs as www-data, with its control
    // socket in it (the socket's owner does not matter: nobody cannot see it).
    let dir = scratch.join("www-data");
    fs::create_dir(&dir).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(dir.join("control.sock")).unwrap();
    std::os::unix::fs::chown(&dir, Some(33), Some(33)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    let want = format!(
        "mas-sockets: cannot reach the supervisor at {dir}/control.sock: Permission denied (os error 13); this user may not open it: run the command as root or as www-data, the service's user, who owns {dir} (e.g. with sudo, or sudo -u www-data)\n",
        dir = dir.display()
    );
    assert_eq!(as_nobody(&["status"], &dir), (Some(2), want));
}

/// Starts supervise on `dir` (through `var`) and expects it to refuse at
/// once, with exit status 2 and exactly `want` as its log, before it
/// touches the directory or starts MAS.
#[track_caller]
fn assert_refused(var: &'static str, dir: &Path, label: &str, want: &str) {
    let before: Vec<_> = fs::read_dir(dir).map(|d| d.count()).into_iter().collect();
    let config_a = config("");
    let other = match var {
        "RUNTIME_DIRECTORY" => "MAS_SOCKETS_RUNTIME_DIR",
        _ => "RUNTIME_DIRECTORY",
    };
    let mut a = Setup::new(&config_a)
        .env_remove(other)
        .env(var, dir.display())
        .start(label);
    assert_eq!(a.wait().code(), Some(2), "{}", a.log());
    assert_eq!(a.log(), format!("mas-sockets: {want}\n"));
    assert!(a.reports().is_empty(), "MAS was started");
    let after: Vec<_> = fs::read_dir(dir).map(|d| d.count()).into_iter().collect();
    assert_eq!(before, after, "the refused directory was written to");
}

/// A runtime directory that others may enter, or that another user owns,
/// or a symbolic link to one, is refused: whoever may write there could
/// swap MAS's config (with its secrets) or the control socket. systemd's
/// default RuntimeDirectoryMode=0755 is refused too.
#[test]
fn a_runtime_directory_that_is_not_private_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let scratch = TempDir::new("not-private");
    let chmod = |p: &Path, mode| fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();

    let open = scratch.join("open");
    fs::create_dir(&open).unwrap();
    chmod(&open, 0o777);
    assert_refused(
        "MAS_SOCKETS_RUNTIME_DIR",
        &open,
        "rt-0777",
        &format!("the runtime directory {d} has mode 0777, which lets its group or others in, but it holds MAS's config with its secrets and the control socket, so it must be this user's alone: run `chmod 700 {d}` (for systemd's RuntimeDirectory=: RuntimeDirectoryMode=0700 in the unit), or give another directory with --runtime-dir", d = open.display()),
    );

    let systemd_default = scratch.join("0755");
    fs::create_dir(&systemd_default).unwrap();
    chmod(&systemd_default, 0o755);
    assert_refused(
        "RUNTIME_DIRECTORY",
        &systemd_default,
        "rt-0755",
        &format!("the runtime directory {d} has mode 0755, which lets its group or others in, but it holds MAS's config with its secrets and the control socket, so it must be this user's alone: run `chmod 700 {d}` (for systemd's RuntimeDirectory=: RuntimeDirectoryMode=0700 in the unit), or give another directory with --runtime-dir", d = systemd_default.display()),
    );

    let nobodys = scratch.join("nobody");
    fs::create_dir(&nobodys).unwrap();
    chmod(&nobodys, 0o700);
    std::os::unix::fs::chown(&nobodys, Some(65534), Some(65534)).unwrap();
    assert_refused(
        "MAS_SOCKETS_RUNTIME_DIR",
        &nobodys,
        "rt-nobody",
        &format!("the runtime directory {d} belongs to nobody (uid 65534), not to root (uid 0), who runs this supervisor, but it holds MAS's config with its secrets and the control socket, so it must be this user's alone: run `chown root {d}`, or give another directory with --runtime-dir", d = nobodys.display()),
    );
    chmod(&nobodys, 0o750);
    assert_refused(
        "MAS_SOCKETS_RUNTIME_DIR",
        &nobodys,
        "rt-nobody-0750",
        &format!("the runtime directory {d} belongs to nobody (uid 65534), not to root (uid 0), who runs this supervisor, and it has mode 0750, which lets its group or others in, but it holds MAS's config with its secrets and the control socket, so it must be this user's alone: run `chmod 700 {d} && chown root {d}` (for systemd's RuntimeDirectory=: RuntimeDirectoryMode=0700 in the unit), or give another directory with --runtime-dir", d = nobodys.display()),
    );

    // A link to a private directory: whoever may replace the link may
    // point it elsewhere between two starts, or during one.
    let private = scratch.join("private");
    fs::create_dir(&private).unwrap();
    chmod(&private, 0o700);
    let link = scratch.join("link");
    std::os::unix::fs::symlink(&private, &link).unwrap();
    let want = format!("the runtime directory {} is a symbolic link, which whoever may change it can point elsewhere; give the directory itself (or another) with --runtime-dir", link.display());
    assert_refused("MAS_SOCKETS_RUNTIME_DIR", &link, "rt-link", &want);
    // A trailing `/` would make the kernel follow the link.
    let slash = PathBuf::from(format!("{}/", link.display()));
    assert_refused("MAS_SOCKETS_RUNTIME_DIR", &slash, "rt-link-slash", &want);
    assert_eq!(fs::read_dir(&private).unwrap().count(), 0);
}

/// An empty RUNTIME_DIRECTORY (or one whose first entry is empty) names no
/// directory, and says so.
#[test]
fn an_empty_runtime_directory_variable_is_refused() {
    for value in ["", ":/run/other"] {
        let config_a = config("");
        let mut a = Setup::new(&config_a)
            .env_remove("MAS_SOCKETS_RUNTIME_DIR")
            .env("RUNTIME_DIRECTORY", value)
            .start("rt-empty");
        assert_eq!(a.wait().code(), Some(2), "{}", a.log());
        assert_eq!(
            a.log(),
            format!("mas-sockets: RUNTIME_DIRECTORY={value:?} names no directory (its first entry is empty); it is set by systemd from the unit's RuntimeDirectory=: unset it, or give the directory with --runtime-dir\n")
        );
        assert!(a.reports().is_empty(), "MAS was started");
    }
}

/// A `--name` that is not one plain path component (`../../etc` would
/// reach /etc/control.sock from /run/mas-sockets/NAME) is refused by every
/// command that takes it, in one line with exit status 2.
#[test]
fn a_name_that_is_not_one_path_component_is_refused_everywhere() {
    let config = crate::util::repo().join("examples/reverse-proxy.yaml");
    let config = config.to_str().expect("a UTF-8 path");
    let commands: [&[&str]; 5] = [
        &["status"],
        &["reload"],
        &["reload", "--signal-only"],
        &["generate-units", "--config", config],
        &[
            "generate-nginx",
            "--config",
            config,
            "--server-name",
            "auth.example.com",
            "--assets-dir",
            "/usr/share/mas/assets",
        ],
    ];
    for name in ["../../etc", "a/b", "..", ""] {
        for args in commands {
            let out = Command::new(mas_sockets())
                .args(args)
                .arg("--name")
                .arg(name)
                .env_remove("RUNTIME_DIRECTORY")
                .env_remove("MAS_SOCKETS_RUNTIME_DIR")
                .output()
                .expect("run mas-sockets");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.code() == Some(2)
                    && out.stdout.is_empty()
                    && stderr.lines().count() == 1
                    && stderr.contains("--name")
                    && stderr.contains("(e.g. --name mas)"),
                "{args:?} --name {name:?}: {out:?}"
            );
        }
    }
}
