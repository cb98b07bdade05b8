//! A real, throw-away systemd for integration tests.
//!
//! [`Systemd::boot`] starts the distribution's `/lib/systemd/systemd` as PID 1 of
//! private pid, mount, cgroup, UTS and IPC namespaces, so tests can install units and
//! drive them with `systemctl`, `journalctl` and socket activation exactly as a host
//! would, on machines whose own PID 1 is not systemd. The instance shares the host's
//! network namespace and filesystem; only `/run` and `/dev/shm` are its own. It loads
//! units only from its private `/run/systemd/system` and from a small copy of the stock
//! targets plus journald (and D-Bus when installed), so nothing of the host's units
//! ever starts, and it never writes to the host's `/etc`.
//!
//! Each instance lives in a cgroup of its own, created next to the test process's
//! cgroup and named after the test, the test process and a counter, so tests may boot
//! instances in parallel threads. Dropping a [`Systemd`] stops it and removes that
//! cgroup tree, also when the test panicked. A test process that ends without dropping
//! its instances (killed, or an instance leaked) takes them with it through a
//! parent-death signal, and the next boot removes the cgroups such a process left behind.
//!
//! Booting needs root, a writable cgroup2 mount and `unshare`, `nsenter`, `script`
//! and `setpriv` from util-linux. Without them [`Systemd::boot`] returns an error that
//! says what is missing: tests must fail with it, never skip.
//!
//! The boot scripts follow `systemd(1)` "container interface" conventions
//! (`container=`, `/run/systemd/container`); see also
//! <https://systemd.io/CONTAINER_INTERFACE/>.

// Each test module uses a different part of this harness.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Set to `1` to keep each instance's state dir (console log, boot script) after teardown.
pub const KEEP_ENV: &str = "MAS_SOCKETS_KEEP_SYSTEMD";

/// The systemd binary booted as the instance's PID 1.
const SYSTEMD_BIN: &str = "/lib/systemd/systemd";

/// Prefix of every instance's cgroup and state dir name; followed by `<host pid>.<counter>.<label>`.
const NAME_PREFIX: &str = "mas-sockets-systemd.";

/// Folder, inside the instance's private `/run`, that holds the copied stock units.
const STOCK_UNIT_DIR: &str = "/run/mas-sockets-test/units";

/// `PATH` for the instance and for commands run inside it.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long boot may take, from spawning the launcher to `is-system-running` answering.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long PID 1 gets to exit after `systemctl exit` before it is killed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// Limit for one command run inside the instance, so a hung `systemctl` fails the
/// test instead of hanging it; `timeout(1)` then makes the command exit with 124.
const EXEC_TIMEOUT_SECS: u64 = 120;

/// Poll interval of every wait in this harness.
const POLL: Duration = Duration::from_millis(20);

/// Units of the instance that exist to run it rather than to be tested: [`Systemd::processes`]
/// leaves out the processes in these cgroups (matched on the last path component).
const INFRASTRUCTURE_CGROUPS: &[&str] = &["init.scope", "systemd-journald.service", "dbus.service"];

/// Numbers instances booted by this process, so parallel tests get distinct names.
static NEXT_INSTANCE: AtomicU32 = AtomicU32::new(0);

/// The script the instance boots through, written into its state dir.
///
/// `launch` runs on the pty that `script(1)` opens: it joins the instance's cgroup,
/// so that `unshare` makes that cgroup the root of the new cgroup namespace, and
/// becomes `unshare`. `inner` is PID 1 of the new namespaces: it waits until the
/// harness has moved `unshare` back out of the cgroup (so systemd alone owns the
/// namespace's root cgroup), sets up the mounts and the stock units, then becomes
/// systemd. Inputs come from the environment: `MAS_SD_STATE` (state dir),
/// `MAS_SD_CGROUP` (cgroup path on the host), `MAS_SD_STOCK` (stock unit folder).
const INNER: &str = r#"#!/bin/sh
# Boots a throw-away systemd for the integration tests of mas-sockets.
set -eu
case "$1" in
launch)
    echo $$ > "$MAS_SD_CGROUP/cgroup.procs"
    exec unshare --pid --fork --kill-child=SIGKILL --mount --propagation private \
        --uts --ipc --cgroup -- /bin/sh "$MAS_SD_STATE/boot.sh" inner
    ;;
inner)
    read -r go < "$MAS_SD_STATE/go"
    mount -t proc -o nosuid,nodev,noexec proc /proc
    # Host-wide knobs stay out of reach of the instance.
    for knob in /proc/sys /proc/sysrq-trigger; do
        [ -e "$knob" ] || continue
        mount --bind "$knob" "$knob"
        mount -o remount,bind,ro "$knob"
    done
    mount -o remount,bind,ro /sys
    mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup
    mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
    mount --bind "$(tty)" /dev/console
    stock=$MAS_SD_STOCK
    empty=/run/mas-sockets-test/empty
    mkdir -p /run/lock /run/systemd/system /run/systemd/journald.conf.d "$stock" "$empty" \
        "$stock/sysinit.target.wants" "$stock/sockets.target.wants"
    printf '[Journal]\nStorage=volatile\n' > /run/systemd/journald.conf.d/90-mas-sockets-test.conf
    printf 'other' > /run/systemd/container
    # Only what booting to multi-user.target and exiting again needs, plus journald:
    # nothing of the host's own units may start here.
    for unit in sysinit.target basic.target sockets.target paths.target timers.target \
            slices.target local-fs.target local-fs-pre.target swap.target \
            network.target network-pre.target network-online.target nss-lookup.target \
            multi-user.target shutdown.target final.target umount.target \
            exit.target systemd-exit.service poweroff.target systemd-poweroff.service \
            halt.target systemd-halt.service reboot.target systemd-reboot.service \
            systemd-journald.service systemd-journald.socket \
            systemd-journald-dev-log.socket; do
        cp "/lib/systemd/system/$unit" "$stock/"
    done
    # The system bus, for `systemd-run --wait`, `busctl` and sandboxing options.
    if [ -x /usr/bin/dbus-daemon ] && [ -e /lib/systemd/system/dbus.socket ]; then
        cp /lib/systemd/system/dbus.socket /lib/systemd/system/dbus.service "$stock/"
        ln -s ../dbus.socket "$stock/sockets.target.wants/"
    fi
    ln -s multi-user.target "$stock/default.target"
    ln -s ../systemd-journald.service "$stock/sysinit.target.wants/"
    ln -s ../systemd-journald.socket ../systemd-journald-dev-log.socket \
        "$stock/sockets.target.wants/"
    cd /
    exec env -i container=other TERM=vt220 PATH="$PATH" \
        SYSTEMD_UNIT_PATH="/run/systemd/system:$stock" \
        SYSTEMD_GENERATOR_PATH="$empty" SYSTEMD_ENVIRONMENT_GENERATOR_PATH="$empty" \
        setpriv --bounding-set -sys_module,-sys_time,-sys_rawio,-wake_alarm \
        /lib/systemd/systemd --system --log-target=journal --show-status=no
    ;;
*)
    echo "boot.sh: unknown mode '$1'" >&2
    exit 2
    ;;
esac
"#;

/// One process of an instance, as seen from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceProcess {
    /// Host pid.
    pub pid: u32,
    /// Command name from `/proc/<pid>/comm` (`?` if the process exited while being listed).
    pub comm: String,
    /// Cgroup relative to the instance's root, e.g. `system.slice/foo.service`.
    pub cgroup: String,
}

/// One booted systemd instance.
///
/// Dropping it stops systemd (`systemctl exit`, SIGKILL after 15 s), waits for every
/// process of the instance to end and removes its cgroup tree and state dir. Errors
/// while dropping go to stderr; call [`Systemd::stop`] to see them as a `Result`.
#[derive(Debug)]
pub struct Systemd {
    /// Unique name: the instance's cgroup and state dir are called this.
    name: String,
    /// Host pid of the instance's PID 1 (0 while booting has not found it yet).
    pid: u32,
    /// The instance's cgroup on the host.
    cgroup: PathBuf,
    /// Holds `boot.sh`, the `go` fifo and `console.log`.
    state: PathBuf,
    /// The `script(1)` process that owns the console pty.
    console: Option<Child>,
    /// Kept open so `script(1)` never sees end of input.
    console_input: Option<ChildStdin>,
    /// Our end of the `go` fifo; held open until teardown so the instance's reader
    /// never blocks on a missing writer.
    go: Option<fs::File>,
    /// Set once teardown ran, so `stop` and `Drop` do it once.
    stopped: bool,
}

impl Systemd {
    /// Boots systemd as PID 1 of private pid, mount, cgroup, UTS and IPC namespaces.
    ///
    /// The host's network and filesystem are shared; `/run` and `/dev/shm` are private.
    /// Returns once `systemctl is-system-running --wait` says `running` or `degraded`.
    /// `label` names the instance (cgroup and state dir) so a leftover points at its test.
    ///
    /// The instance may be booted, used and dropped on any threads; it is killed when
    /// the test process ends.
    ///
    /// # Errors
    ///
    /// When the process is not root, no writable cgroup2 mount exists, a tool is missing,
    /// or systemd does not come up: the error says why and ends with the tail of the
    /// instance's console log. Tests must fail with it, not skip.
    pub fn boot(label: &str) -> Result<Systemd, String> {
        let started = Instant::now();
        let cgroup_parent = prepare_host()?;
        reap_stale_instances(&cgroup_parent);

        let name = format!(
            "{NAME_PREFIX}{}.{}.{}",
            std::process::id(),
            NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed),
            sanitize_label(label)
        );
        let state = std::env::temp_dir().join(&name);
        let cgroup = cgroup_parent.join(&name);
        let _ = fs::remove_dir_all(&state);
        fs::create_dir_all(&state)
            .map_err(|e| format!("cannot create state dir {}: {e}", state.display()))?;
        fs::create_dir(&cgroup).map_err(|e| {
            format!(
                "cannot create cgroup {}: {e}; the cgroup2 mount must be writable",
                cgroup.display()
            )
        })?;
        // From here on, dropping `sd` undoes whatever was set up.
        let mut sd = Systemd {
            name,
            pid: 0,
            cgroup,
            state,
            console: None,
            console_input: None,
            go: None,
            stopped: false,
        };
        match sd.start(&cgroup_parent, started) {
            Ok(()) => Ok(sd),
            Err(reason) => Err(format!(
                "cannot boot systemd for test '{label}' ({}): {reason}; \
                 set {KEEP_ENV}=1 to keep its state dir\n{}",
                sd.name,
                sd.console_tail(30)
            )),
        }
    }

    /// Runs the boot steps; `boot` turns an error into a message with the console log.
    fn start(&mut self, cgroup_parent: &Path, started: Instant) -> Result<(), String> {
        let script_path = self.state.join("boot.sh");
        fs::write(&script_path, INNER)
            .map_err(|e| format!("cannot write {}: {e}", script_path.display()))?;
        let go_path = self.state.join("go");
        run_host(Command::new("mkfifo").arg(&go_path))?;
        // Read-write, so that opening never blocks and the fifo always has a writer.
        self.go = Some(
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&go_path)
                .map_err(|e| format!("cannot open fifo {}: {e}", go_path.display()))?,
        );

        // `script` gives the instance a pty (its /dev/console) and logs it. The end of
        // the test process kills `script`; the pty hangup then ends `unshare`, whose
        // --kill-child ends the whole pid namespace.
        let console_log = self.state.join("console.log");
        let mut command = Command::new("setpriv");
        command
            .args([
                "--pdeathsig",
                "KILL",
                "--",
                "script",
                "-q",
                "-f",
                "-e",
                "-E",
                "never",
            ])
            .arg("--log-out")
            .arg(&console_log)
            .args(["-c", r#"exec /bin/sh "$MAS_SD_STATE/boot.sh" launch"#])
            .env_clear()
            .env("PATH", PATH)
            .env("SHELL", "/bin/sh")
            .env("MAS_SD_STATE", &self.state)
            .env("MAS_SD_CGROUP", &self.cgroup)
            .env("MAS_SD_STOCK", STOCK_UNIT_DIR)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                fs::File::create(self.state.join("script.err"))
                    .map_err(|e| format!("cannot create script.err in state dir: {e}"))?,
            ));
        let mut console = spawn_from_lasting_thread(command)
            .map_err(|e| format!("cannot run setpriv/script (util-linux): {e}"))?;
        self.console_input = console.stdin.take();
        let script_pid = console.id();
        self.console = Some(console);

        let deadline = started + BOOT_TIMEOUT;
        // script's child becomes `unshare`; unshare's only child is the namespace's PID 1.
        let unshare = self.await_child(script_pid, "the launcher under script(1)", deadline)?;
        self.await_condition("unshare to start", deadline, || {
            read_trimmed(&format!("/proc/{unshare}/comm")) == "unshare"
        })?;
        self.pid = self.await_child(unshare, "unshare's child (PID 1)", deadline)?;
        // The cgroup namespace's root must hold systemd alone.
        let procs = cgroup_parent.join("cgroup.procs");
        fs::write(&procs, unshare.to_string())
            .map_err(|e| format!("cannot move unshare to {}: {e}", procs.display()))?;
        if let Some(go) = self.go.as_mut() {
            go.write_all(b"go\n")
                .map_err(|e| format!("cannot write to fifo {}: {e}", go_path.display()))?;
        }

        let pid = self.pid;
        let private = self.host_path("/run/systemd/private");
        self.await_condition("/run/systemd/private", deadline, || {
            // Before the instance mounts its own /run, this path is the host's.
            read_trimmed(&format!("/proc/{pid}/comm")) == "systemd"
                && fs::symlink_metadata(&private).is_ok_and(|m| m.file_type().is_socket())
        })?;
        let left = deadline.saturating_duration_since(Instant::now());
        let out = self.exec_timeout(
            &["systemctl", "is-system-running", "--wait"],
            left.as_secs().max(1),
        );
        let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if state != "running" && state != "degraded" {
            return Err(format!(
                "system state is '{state}' (want running or degraded); stderr: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        eprintln!(
            "systemd {} is host pid {pid}, {state} after {} ms",
            self.name,
            started.elapsed().as_millis()
        );
        Ok(())
    }

    /// Host pid of the instance's PID 1.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Unique name of the instance; its cgroup and state dir carry it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The instance's state dir on the host: `boot.sh`, `console.log`.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// Runs `argv` inside the instance's namespaces (`nsenter -t PID -m -u -i -p -C`).
    ///
    /// The command gets a clean environment (`PATH`, `HOME=/root`, `LANG=C.UTF-8`, no
    /// pager, no colours, the instance's `SYSTEMD_UNIT_PATH`) and no stdin. It stays in
    /// the host's cgroup, so it never shows up in [`Systemd::processes`]. A command that
    /// runs longer than 120 s is killed and exits with 124.
    pub fn exec(&self, argv: &[&str]) -> Output {
        self.exec_timeout(argv, EXEC_TIMEOUT_SECS)
    }

    /// [`Systemd::exec`] with a limit of `secs` seconds.
    fn exec_timeout(&self, argv: &[&str], secs: u64) -> Output {
        if !pid_alive(self.pid) {
            return Output {
                status: failed_status(),
                stdout: Vec::new(),
                stderr: format!(
                    "systemd {} (pid {}) is not running; cannot run {argv:?}\n{}",
                    self.name,
                    self.pid,
                    self.console_tail(20)
                )
                .into_bytes(),
            };
        }
        let pid = self.pid.to_string();
        let secs = secs.to_string();
        let result = Command::new("timeout")
            .args(["--kill-after=5", &secs, "nsenter", "-t", &pid])
            .args(["-m", "-u", "-i", "-p", "-C", "--wd=/", "--"])
            .args(argv)
            .env_clear()
            .env("PATH", PATH)
            .env("HOME", "/root")
            .env("TERM", "dumb")
            .env("LANG", "C.UTF-8")
            .env("SYSTEMD_PAGER", "cat")
            .env("SYSTEMD_COLORS", "0")
            .env("SYSTEMD_UNIT_PATH", unit_path())
            .stdin(Stdio::null())
            .output();
        match result {
            Ok(out) => out,
            // Keep the signature simple: a failure to spawn reads like a failed command.
            Err(e) => Output {
                status: failed_status(),
                stdout: Vec::new(),
                stderr: format!("cannot run timeout/nsenter: {e}").into_bytes(),
            },
        }
    }

    /// Runs `argv` inside the instance and returns its stdout.
    ///
    /// # Panics
    ///
    /// When the command fails; the message shows the command, status, stdout and stderr.
    #[track_caller]
    pub fn exec_ok(&self, argv: &[&str]) -> String {
        let out = self.exec(argv);
        if !out.status.success() {
            panic!(
                "command failed in systemd {} (pid {}): {argv:?}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
                self.name,
                self.pid,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `systemctl ARGS` inside the instance.
    pub fn systemctl(&self, args: &[&str]) -> Output {
        let mut argv = vec!["systemctl"];
        argv.extend_from_slice(args);
        self.exec(&argv)
    }

    /// Writes a unit file into the instance's `/run/systemd/system`; no daemon-reload.
    ///
    /// `name` may hold a sub folder for drop-ins (`foo.service.d/10-test.conf`).
    ///
    /// # Panics
    ///
    /// When `name` is absolute or climbs out with `..`, or the file cannot be written.
    #[track_caller]
    pub fn install_unit(&self, name: &str, contents: &str) {
        let rel = Path::new(name);
        assert!(
            !name.is_empty()
                && rel
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_))),
            "unit name {name:?} must be a relative path inside /run/systemd/system"
        );
        let path = self.host_path("/run/systemd/system").join(rel);
        // No closures here: #[track_caller] reports the test's line only for direct panics.
        if let Some(dir) = path.parent() {
            if let Err(e) = fs::create_dir_all(dir) {
                panic!("cannot create {}: {e}", dir.display());
            }
        }
        if let Err(e) = fs::write(&path, contents) {
            panic!("cannot write unit {}: {e}", path.display());
        }
    }

    /// Runs `systemctl daemon-reload` inside the instance.
    ///
    /// # Panics
    ///
    /// When it fails.
    #[track_caller]
    pub fn daemon_reload(&self) {
        self.exec_ok(&["systemctl", "daemon-reload"]);
    }

    /// The journal of `unit` as message text only (`journalctl -u UNIT -o cat`).
    ///
    /// Lines still on their way to journald may be missing: poll with
    /// [`Systemd::wait_for`] when a line is expected.
    ///
    /// # Panics
    ///
    /// When journalctl fails.
    #[track_caller]
    pub fn journal(&self, unit: &str) -> String {
        self.exec_ok(&["journalctl", "--no-pager", "-o", "cat", "-u", unit])
    }

    /// One property of a unit (`systemctl show -p PROP --value UNIT`), trimmed.
    ///
    /// # Panics
    ///
    /// When systemctl fails.
    #[track_caller]
    pub fn unit_property(&self, unit: &str, prop: &str) -> String {
        self.exec_ok(&["systemctl", "show", "-p", prop, "--value", unit])
            .trim()
            .to_string()
    }

    /// Polls `cond` every 20 ms until it holds.
    ///
    /// # Errors
    ///
    /// When `timeout` passes first, or the instance's PID 1 is gone (then the console
    /// log tail is part of the message).
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        cond: impl FnMut() -> bool,
    ) -> Result<(), String> {
        self.await_condition(what, Instant::now() + timeout, cond)
            .map_err(|e| format!("{e}\n{}", self.console_tail(20)))
    }

    /// Where the instance's `inside` path is seen from the host (`/proc/PID/root/...`);
    /// for files in its private `/run` and `/dev/shm`.
    pub fn host_path(&self, inside: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid)).join(inside.trim_start_matches('/'))
    }

    /// Every process in the instance's cgroup tree except its own machinery.
    ///
    /// Left out are PID 1 (`init.scope`), journald and the D-Bus daemon; everything a
    /// test started through units is listed, so an empty result after `systemctl stop`
    /// means nothing was left behind. Commands run with [`Systemd::exec`] are never
    /// listed (they stay in the host's cgroup).
    pub fn processes(&self) -> Vec<InstanceProcess> {
        let mut found = Vec::new();
        collect_processes(&self.cgroup, &self.cgroup, &mut found);
        found.retain(|p| {
            let last = p.cgroup.rsplit('/').next().unwrap_or_default();
            !INFRASTRUCTURE_CGROUPS.contains(&last)
        });
        found
    }

    /// The last `lines` lines of the instance's console, headed for an error message.
    pub fn console_tail(&self, lines: usize) -> String {
        let path = self.state.join("console.log");
        let text = fs::read(&path)
            .map(|b| String::from_utf8_lossy(&b).replace('\r', ""))
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
        let all: Vec<&str> = text.lines().collect();
        let tail = &all[all.len().saturating_sub(lines)..];
        let mut out = format!("--- last {} lines of {} ---\n", tail.len(), path.display());
        for line in tail {
            let _ = writeln!(out, "{line}");
        }
        out
    }

    /// Stops the instance and removes its cgroup tree and state dir.
    ///
    /// # Errors
    ///
    /// When systemd had to be killed, or a process or cgroup of the instance outlived
    /// the teardown; the instance was still torn down as far as possible.
    pub fn stop(mut self) -> Result<(), String> {
        self.teardown()
    }

    /// `systemctl exit`, SIGKILL fallback, then wait for the processes and remove the cgroups.
    fn teardown(&mut self) -> Result<(), String> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let started = Instant::now();
        let mut problems = Vec::new();

        if self.pid != 0 && pid_alive(self.pid) {
            let _ = self.exec_timeout(&["systemctl", "exit"], 20);
            let deadline = Instant::now() + EXIT_TIMEOUT;
            while pid_alive(self.pid) && Instant::now() < deadline {
                thread::sleep(POLL);
            }
            if pid_alive(self.pid) {
                problems.push(format!(
                    "systemd (pid {}) did not exit within {} s of `systemctl exit` and was killed",
                    self.pid,
                    EXIT_TIMEOUT.as_secs()
                ));
            }
        }
        // Kills whatever is left of the instance (cgroup.kill, Linux 5.14+).
        if self.cgroup.exists() && !tree_pids(&self.cgroup).is_empty() {
            let _ = fs::write(self.cgroup.join("cgroup.kill"), "1");
        }

        // With PID 1 gone, unshare and then script end by themselves.
        self.console_input = None;
        if let Some(mut console) = self.console.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match console.try_wait() {
                    Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
                    Ok(None) => {
                        problems.push(format!(
                            "script(1) pid {} did not end; killed",
                            console.id()
                        ));
                        let _ = console.kill();
                        let _ = console.wait();
                        break;
                    }
                    Ok(Some(_)) | Err(_) => break,
                }
            }
        }
        self.go = None;

        if let Err(e) = remove_cgroup_tree(&self.cgroup, Instant::now() + Duration::from_secs(10)) {
            problems.push(e);
        }
        if std::env::var(KEEP_ENV).as_deref() == Ok("1") {
            eprintln!("{KEEP_ENV}=1: keeping {}", self.state.display());
        } else if let Err(e) = fs::remove_dir_all(&self.state) {
            if e.kind() != io::ErrorKind::NotFound {
                problems.push(format!("cannot remove {}: {e}", self.state.display()));
            }
        }
        eprintln!(
            "systemd {} stopped in {} ms",
            self.name,
            started.elapsed().as_millis()
        );
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "teardown of systemd {}: {}",
                self.name,
                problems.join("; ")
            ))
        }
    }

    /// Polls `cond` until it holds, failing early when the instance is gone.
    fn await_condition(
        &self,
        what: &str,
        deadline: Instant,
        mut cond: impl FnMut() -> bool,
    ) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if cond() {
                return Ok(());
            }
            if self.pid != 0 && !pid_alive(self.pid) {
                return Err(format!(
                    "systemd (pid {}) is gone while waiting for {what}",
                    self.pid
                ));
            }
            if self.pid == 0 && !self.console_running() {
                return Err(format!("script(1) exited while waiting for {what}"));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "timed out after {} ms waiting for {what}",
                    start.elapsed().as_millis()
                ));
            }
            thread::sleep(POLL);
        }
    }

    /// Waits for the first child of `parent` and returns its pid.
    fn await_child(&self, parent: u32, what: &str, deadline: Instant) -> Result<u32, String> {
        let mut child = None;
        self.await_condition(what, deadline, || {
            child = fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok());
            child.is_some()
        })?;
        child.ok_or_else(|| format!("{what} not found"))
    }

    /// Whether `script(1)`, which the launcher runs under, still runs.
    fn console_running(&self) -> bool {
        self.console.as_ref().is_some_and(|c| pid_alive(c.id()))
    }
}

impl Drop for Systemd {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("{e}");
        }
    }
}

/// Spawns `command` from a thread that lives as long as the test process.
///
/// A parent-death signal fires when the parent *thread* ends. Spawning from a test's
/// own thread would kill the instance when that thread ends; spawning from here kills
/// it only when the whole test process does.
fn spawn_from_lasting_thread(command: Command) -> io::Result<Child> {
    type Request = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<mpsc::Sender<Request>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<Request>();
        thread::Builder::new()
            .name("systemd-spawner".into())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("cannot start the thread that spawns systemd instances");
        requests
    });
    let gone = || io::Error::other("the thread that spawns systemd instances is gone");
    let (reply, answer) = mpsc::channel();
    spawner.send((command, reply)).map_err(|_| gone())?;
    answer.recv().map_err(|_| gone())?
}

/// `SYSTEMD_UNIT_PATH` of the instance: its `/run/systemd/system`, then the stock copies.
fn unit_path() -> String {
    format!("/run/systemd/system:{STOCK_UNIT_DIR}")
}

/// Checks what booting needs and returns the cgroup2 folder of this process, where
/// instance cgroups are made.
fn prepare_host() -> Result<PathBuf, String> {
    // /proc/self belongs to the effective uid.
    let euid = fs::metadata("/proc/self")
        .map_err(|e| format!("cannot stat /proc/self: {e}; is /proc mounted?"))?
        .uid();
    if euid != 0 {
        return Err(format!(
            "booting systemd needs root (euid is {euid}); run the tests as root"
        ));
    }
    if !Path::new(SYSTEMD_BIN).exists() {
        return Err(format!(
            "{SYSTEMD_BIN} is missing; install the systemd package"
        ));
    }
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let mount = cgroup2_mount(&mountinfo).ok_or(
        "no cgroup2 mount in /proc/self/mountinfo; mount one, e.g. on /sys/fs/cgroup/unified",
    )?;
    let own = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("/proc/self/cgroup has no cgroup2 (0::) line")?;
    Ok(mount.join(own.trim_start_matches('/')))
}

/// The mount point of the first cgroup2 file system in a mountinfo text.
fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        // Field 5 is the mount point; mountinfo escapes blanks as \040.
        let point = left.split_whitespace().nth(4)?;
        Some(PathBuf::from(point.replace("\\040", " ")))
    })
}

/// Keeps `[A-Za-z0-9_-]` of a label (at most 40 characters) for use in a file name.
fn sanitize_label(label: &str) -> String {
    label
        .chars()
        .take(40)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Removes cgroups and state dirs that instances of dead test processes left behind.
fn reap_stale_instances(cgroup_parent: &Path) {
    let Ok(entries) = fs::read_dir(cgroup_parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(owner) = name
            .strip_prefix(NAME_PREFIX)
            .and_then(|rest| rest.split('.').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if owner == std::process::id() || pid_alive(owner) {
            continue;
        }
        let path = entry.path();
        match remove_cgroup_tree(&path, Instant::now() + Duration::from_secs(5)) {
            Ok(()) => eprintln!("removed stale cgroup {}", path.display()),
            Err(e) => eprintln!("{e}"),
        }
        if std::env::var(KEEP_ENV).as_deref() != Ok("1") {
            let _ = fs::remove_dir_all(std::env::temp_dir().join(&name));
        }
    }
}

/// Removes a cgroup tree depth-first, killing what still runs in it.
fn remove_cgroup_tree(root: &Path, deadline: Instant) -> Result<(), String> {
    loop {
        if !root.exists() {
            return Ok(());
        }
        let pids = tree_pids(root);
        if !pids.is_empty() {
            let _ = fs::write(root.join("cgroup.kill"), "1");
        }
        rmdir_depth_first(root);
        if !root.exists() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "cannot remove cgroup {}; pids still in it: {pids:?}",
                root.display()
            ));
        }
        thread::sleep(POLL);
    }
}

/// `rmdir` on every folder of a cgroup tree, children first; failures are left to the caller.
pub(crate) fn rmdir_depth_first(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_depth_first(&entry.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// Host pids of every process in a cgroup tree.
fn tree_pids(root: &Path) -> Vec<u32> {
    let mut found = Vec::new();
    collect_processes(root, root, &mut found);
    found.into_iter().map(|p| p.pid).collect()
}

/// Adds the processes of `dir` and of its child cgroups, named relative to `root`.
fn collect_processes(root: &Path, dir: &Path, found: &mut Vec<InstanceProcess>) {
    let cgroup = dir
        .strip_prefix(root)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
            let comm = read_trimmed(&format!("/proc/{pid}/comm"));
            found.push(InstanceProcess {
                pid,
                comm: if comm.is_empty() { "?".into() } else { comm },
                cgroup: cgroup.clone(),
            });
        }
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_processes(root, &entry.path(), found);
            }
        }
    }
}

/// Whether a process exists and is not a zombie.
fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may hold blanks.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// A file's contents without surrounding blanks; empty when it cannot be read.
fn read_trimmed(path: &str) -> String {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Runs a host command that must succeed.
fn run_host(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// An exit status of 127, as a shell reports a command it could not run.
fn failed_status() -> std::process::ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    std::process::ExitStatus::from_raw(127 << 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup2_mount_is_found_among_v1_hierarchies() {
        let mountinfo = "\
30 24 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,name=systemd
";
        assert_eq!(
            cgroup2_mount(mountinfo),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(cgroup2_mount(&mountinfo.replace("cgroup2", "cgroup")), None);
    }

    #[test]
    fn labels_become_safe_file_names() {
        assert_eq!(
            sanitize_label("socket/activation test"),
            "socket-activation-test"
        );
        assert_eq!(sanitize_label(&"x".repeat(99)).len(), 40);
    }
}
