//! A clean Debian 12 root booted with its own systemd, for the package tests.
//!
//! [`debian_root`] makes the root with `debootstrap` (minbase plus systemd and
//! man-db) from the mirror apt already uses, and keeps it under
//! `target/package-test/` for later runs; a fresh checkout builds it from
//! scratch, and a half-made one is never used. [`Container::boot`] boots it
//! with `systemd-nspawn --boot --volatile=overlay`: everything the test
//! changes lands in a tmpfs over the root, which itself is never written, so
//! each boot starts from the same clean system. The container has a private
//! network namespace (only loopback), so the packaged units can listen on
//! their fixed ports (8080, 8081) without touching the host's; the test
//! reaches them from threads that joined that namespace ([`Container::in_netns`]).
//! Timers are masked (`systemd.mask=timers.target`), so that apt's and
//! man-db's daily jobs cannot change files between two snapshots.
//!
//! There is no machined on these hosts, so `machinectl` cannot drive the
//! container: commands run in it through `nsenter` into its PID 1's
//! namespaces. The recipe is /work/shared/docs/real-systemd.md's "Booting a
//! clean Debian root": a cgroup of its own in the cgroup2 and the named
//! systemd v1 hierarchies, `--register=no --keep-unit`.
//!
//! Needs root, debootstrap and systemd-container (`scripts/setup` installs
//! them) and the package mirror; anything missing is an error that says so.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::hash::Hasher as _;
use std::io::Read as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::systemd::rmdir_depth_first;

/// The Debian release the root is made of, and the packages it gets beyond
/// minbase: systemd to boot, man-db for `man`.
const SUITE: &str = "bookworm";
const INCLUDE: &str = "systemd,man-db";

/// How long booting may take until `is-system-running --wait` answers.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the container gets to halt after SIGTERM before it is killed.
const HALT_TIMEOUT: Duration = Duration::from_secs(20);

/// `PATH` inside the container.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The directory that holds the cached root, next to the build's binaries.
fn cache_dir() -> PathBuf {
    // target/debug/mas-sockets -> target/package-test
    super::mas_sockets()
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/")
        .join("package-test")
}

/// The clean Debian root, made once and reused while its recipe holds.
/// Tests that run at the same time wait for the one that makes it.
///
/// # Panics
///
/// When debootstrap is missing or fails; the message holds its output.
pub fn debian_root() -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(make_debian_root).clone()
}

/// Makes the root unless the cache holds one of the same recipe.
fn make_debian_root() -> PathBuf {
    let dir = cache_dir();
    let root = dir.join(SUITE);
    let stamp = dir.join(format!("{SUITE}.done"));
    let recipe = format!("debootstrap --variant=minbase --include={INCLUDE} {SUITE}\n");
    if fs::read_to_string(&stamp).ok().as_deref() == Some(recipe.as_str()) && root.is_dir() {
        return root;
    }
    let mirror = debian_mirror();
    let mirror_text = mirror.as_deref().unwrap_or("debootstrap's default mirror");
    let partial = dir.join(format!("{SUITE}.partial"));
    let _ = fs::remove_file(&stamp);
    for old in [&root, &partial] {
        if old.exists() {
            fs::remove_dir_all(old)
                .unwrap_or_else(|e| panic!("cannot remove {}: {e}", old.display()));
        }
    }
    fs::create_dir_all(&dir).expect("create the package-test cache dir");
    let started = Instant::now();
    let mut cmd = Command::new("debootstrap");
    cmd.args(["--variant=minbase", &format!("--include={INCLUDE}"), SUITE])
        .arg(&partial);
    if let Some(mirror) = &mirror {
        cmd.arg(mirror);
    }
    let out = super::run(&mut cmd);
    assert!(
        out.status.success(),
        "debootstrap failed (scripts/setup installs it)\n{}",
        super::explain(&cmd, &out)
    );
    fs::rename(&partial, &root).expect("move the finished root into place");
    fs::write(&stamp, recipe).expect("write the root's stamp");
    eprintln!(
        "made a clean {SUITE} root in {} from {mirror_text} in {} s",
        root.display(),
        started.elapsed().as_secs()
    );
    root
}

/// The Debian mirror apt uses for the release itself (not -updates or
/// -security), as apt reports it after `apt-get update`; `None` when apt
/// names none, and debootstrap then uses its own default.
fn debian_mirror() -> Option<String> {
    let mut cmd = Command::new("apt-get");
    cmd.args([
        "indextargets",
        "--format",
        "$(CODENAME) $(LABEL) $(REPO_URI)",
        "Created-By: Packages",
    ]);
    let out = super::run_ok(&mut cmd);
    out.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            match (fields.next(), fields.next(), fields.next()) {
                (Some(SUITE), Some("Debian"), Some(uri)) => Some(uri.to_owned()),
                _ => None,
            }
        })
        .next()
}

/// One booted container. Dropping it halts it and removes its cgroups.
pub struct Container {
    name: String,
    /// The `systemd-nspawn` process.
    nspawn: Option<Child>,
    /// Host pid of the container's systemd.
    pid: u32,
    /// The cgroups made for it, in both hierarchies.
    cgroups: Vec<PathBuf>,
    /// nspawn's output.
    log: PathBuf,
}

impl Container {
    /// Boots `root` read-only under a tmpfs overlay, with a private network
    /// namespace; returns once systemd says `running` (or `degraded`).
    ///
    /// # Panics
    ///
    /// When it does not come up; the message holds nspawn's output.
    pub fn boot(root: &Path, label: &str) -> Container {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "mas-pkg-{}-{}-{label}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let log = std::env::temp_dir().join(format!("{name}.log"));
        let mut ct = Container {
            cgroups: cgroups_for(&name),
            name,
            nspawn: None,
            pid: 0,
            log,
        };
        let mut launch = String::new();
        for cgroup in &ct.cgroups {
            fs::create_dir_all(cgroup)
                .unwrap_or_else(|e| panic!("cannot create cgroup {}: {e}", cgroup.display()));
            launch.push_str(&format!("echo $$ > '{}/cgroup.procs'; ", cgroup.display()));
        }
        launch.push_str("exec \"$@\"");
        let log = fs::File::create(&ct.log).expect("create the container's log");
        let child = Command::new("setpriv")
            // The container goes when the test does, whatever ends it.
            .args(["--pdeathsig", "KILL", "--", "sh", "-c", &launch, "sh"])
            .arg("systemd-nspawn")
            .args(["-q", "--boot", "--register=no", "--keep-unit"])
            .args([
                "--console=passive",
                "--volatile=overlay",
                "--private-network",
            ])
            .arg(format!("--machine={}", ct.name))
            .arg("-D")
            .arg(root)
            .arg("--")
            .arg("systemd.mask=timers.target")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run setpriv/systemd-nspawn: {e}"));
        let nspawn = child.id();
        ct.nspawn = Some(child);
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            let init = fs::read_to_string(format!("/proc/{nspawn}/task/{nspawn}/children"))
                .ok()
                .and_then(|s| s.split_whitespace().find_map(|p| p.parse::<u32>().ok()));
            if let Some(init) = init {
                let comm = fs::read_to_string(format!("/proc/{init}/comm")).unwrap_or_default();
                let private = PathBuf::from(format!("/proc/{init}/root/run/systemd/private"));
                if comm.trim() == "systemd" && private.exists() {
                    ct.pid = init;
                    break;
                }
            }
            if !ct.nspawn_running() || Instant::now() > deadline {
                panic!("the container did not boot\n{}", ct.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let state = ct.exec(&["systemctl", "is-system-running", "--wait"]);
        let state = String::from_utf8_lossy(&state.stdout).trim().to_owned();
        assert!(
            state == "running" || state == "degraded",
            "the container's systemd is {state:?}\n{}",
            ct.log_text()
        );
        ct
    }

    /// Host pid of the container's systemd.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A path of the container seen from the host.
    pub fn path(&self, inside: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid)).join(inside.trim_start_matches('/'))
    }

    /// Runs `argv` in the container (all its namespaces) with a clean
    /// environment; a command that runs longer than 5 minutes is killed.
    pub fn exec(&self, argv: &[&str]) -> Output {
        let mut cmd = self.command(argv);
        super::run(&mut cmd)
    }

    /// Runs `argv` in the container; returns stdout, panics with everything
    /// on failure.
    #[track_caller]
    pub fn exec_ok(&self, argv: &[&str]) -> String {
        let mut cmd = self.command(argv);
        let out = super::run(&mut cmd);
        assert!(
            out.status.success(),
            "command failed in container {}\n{}",
            self.name,
            super::explain(&cmd, &out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn command(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.args([
            "--kill-after=5",
            "300",
            "nsenter",
            "-t",
            &self.pid.to_string(),
        ])
        .args(["-a", "--wd=/", "--"])
        .args(argv)
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", "/root")
        .env("LANG", "C.UTF-8")
        .env("TERM", "dumb")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("SYSTEMD_PAGER", "cat")
        .env("SYSTEMD_COLORS", "0")
        .stdin(Stdio::null());
        cmd
    }

    /// One property of a unit, trimmed.
    #[track_caller]
    pub fn unit_property(&self, unit: &str, prop: &str) -> String {
        self.exec_ok(&["systemctl", "show", "-p", prop, "--value", unit])
            .trim()
            .to_owned()
    }

    /// Copies a host file into the container with the given mode.
    #[track_caller]
    pub fn put(&self, from: &Path, inside: &str, mode: u32) {
        let to = self.path(inside);
        if let Some(dir) = to.parent() {
            fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        }
        fs::copy(from, &to).unwrap_or_else(|e| panic!("copy to {}: {e}", to.display()));
        fs::set_permissions(&to, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    /// Runs `f` on a thread that joined the container's network namespace;
    /// threads it spawns (a load's workers) are in that namespace too.
    pub fn in_netns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let ns = fs::File::open(format!("/proc/{}/ns/net", self.pid))
            .expect("open the container's network namespace");
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    // Only this thread changes namespace; the test's own
                    // threads stay in the host's.
                    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                        .expect("setns into the container's network namespace");
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// nspawn's output so far, for failure messages.
    pub fn log_text(&self) -> String {
        format!(
            "--- systemd-nspawn output ({}):\n{}",
            self.log.display(),
            fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    fn nspawn_running(&mut self) -> bool {
        self.nspawn
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// SIGTERM to nspawn (a clean halt), SIGKILL after the timeout, then the
    /// cgroups go.
    fn halt(&mut self) {
        if let Some(mut child) = self.nspawn.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + HALT_TIMEOUT;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(child.try_wait(), Ok(None)) {
                eprintln!("container {} did not halt; killed", self.name);
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        for cgroup in &self.cgroups {
            let deadline = Instant::now() + Duration::from_secs(10);
            while cgroup.exists() && Instant::now() < deadline {
                let _ = fs::write(cgroup.join("cgroup.kill"), "1");
                rmdir_depth_first(cgroup);
                if cgroup.exists() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            if cgroup.exists() {
                eprintln!("cannot remove cgroup {}", cgroup.display());
            }
        }
        let _ = fs::remove_dir(format!("/run/systemd/nspawn/propagate/{}", self.name));
        if std::env::var_os("MAS_SOCKETS_KEEP_TMP").is_none() {
            let _ = fs::remove_file(&self.log);
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Where the container's cgroups go: next to this process's own, in the
/// cgroup2 hierarchy and in the named systemd v1 one when there is one.
fn cgroups_for(name: &str) -> Vec<PathBuf> {
    let own = fs::read_to_string("/proc/self/cgroup").expect("read /proc/self/cgroup");
    let mut found = Vec::new();
    for line in own.lines() {
        // "0::/path" is cgroup2; "N:name=systemd:/path" the named v1 one.
        let (mount, path) = if let Some(path) = line.strip_prefix("0::") {
            ("/sys/fs/cgroup/unified", path)
        } else if let Some((_, path)) = line.split_once(":name=systemd:") {
            ("/sys/fs/cgroup/systemd", path)
        } else {
            continue;
        };
        if Path::new(mount).join("cgroup.procs").exists() {
            found.push(
                Path::new(mount)
                    .join(path.trim_start_matches('/'))
                    .join(name),
            );
        }
    }
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("/sys/fs/cgroup/unified")),
        "no cgroup2 mount at /sys/fs/cgroup/unified; systemd-nspawn needs one"
    );
    found
}

/// What a snapshot records of one path: type and mode, owner, and the
/// content (a hash of a file, the target of a link).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub content: String,
}

/// Every path under `root` except the ones `skip` says are not the system's
/// files, with what [`Entry`] records.
pub fn snapshot(root: &Path, skip: &dyn Fn(&str) -> bool) -> BTreeMap<String, Entry> {
    fn walk(
        root: &Path,
        dir: &Path,
        skip: &dyn Fn(&str) -> bool,
        out: &mut BTreeMap<String, Entry>,
    ) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let rel = format!(
                "/{}",
                path.strip_prefix(root).expect("under root").display()
            );
            if skip(&rel) {
                continue;
            }
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue; // gone meanwhile
            };
            let content = if meta.file_type().is_symlink() {
                format!(
                    "-> {}",
                    fs::read_link(&path)
                        .map_or_else(|e| e.to_string(), |t| t.display().to_string())
                )
            } else if meta.is_file() {
                hash_file(&path)
            } else {
                String::new()
            };
            out.insert(
                rel,
                Entry {
                    mode: meta.mode(),
                    uid: meta.uid(),
                    gid: meta.gid(),
                    content,
                },
            );
            if meta.is_dir() {
                walk(root, &path, skip, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, skip, &mut out);
    out
}

/// Length and a 64-bit hash of a file's bytes: enough to see a change.
fn hash_file(path: &Path) -> String {
    let mut file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) => return format!("unreadable: {e}"),
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.write(&buf[..n]);
                len += n as u64;
            }
            Err(e) => return format!("unreadable: {e}"),
        }
    }
    format!("{len} bytes, {:016x}", hasher.finish())
}

/// The differences between two snapshots, one line per path.
pub fn diff(before: &BTreeMap<String, Entry>, after: &BTreeMap<String, Entry>) -> Vec<String> {
    let mut lines = Vec::new();
    for (path, entry) in after {
        match before.get(path) {
            None => lines.push(format!("new: {path} {entry:?}")),
            Some(old) if old != entry => {
                lines.push(format!("changed: {path} {old:?} -> {entry:?}"))
            }
            Some(_) => {}
        }
    }
    for path in before.keys() {
        if !after.contains_key(path) {
            lines.push(format!("gone: {path}"));
        }
    }
    lines
}
