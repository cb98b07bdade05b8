//! Starting MAS with its sockets at fds 3.. and `LISTEN_PID` equal to its own pid.
//!
//! MAS takes its `fd:` binds with the listenfd crate, which only accepts the fds
//! when `LISTEN_PID` is unset or equals its own pid (`sd_listen_fds(3)`). A
//! `Command` builds the child's environment before `fork`, when that pid is not
//! known yet. So [`spawn`] runs our own binary again as a helper,
//! `mas-sockets exec-child -- PROGRAM ARGS...`, whose body is [`exec_child`]: it
//! sets `LISTEN_PID` to its pid and `exec`s MAS, which keeps the pid.
//!
//! Between `fork` and `exec` the child also gets `PR_SET_PDEATHSIG` (it dies with
//! the supervisor) and its fds rearranged; that code is in
//! [`crate::sys::spawn_with_fds`]. Waiting for, signalling and restarting
//! the child is the supervisor's job.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use crate::activation::{LISTEN_FDNAMES, LISTEN_FDS, LISTEN_PID};
use crate::sys;

/// The binary [`spawn`] re-executes by default: ourselves, found through
/// `/proc`, which still works after a package upgrade replaced the file.
pub const DEFAULT_HELPER: &str = "/proc/self/exe";

/// The hidden subcommand whose body is [`exec_child`].
pub const EXEC_CHILD_SUBCOMMAND: &str = "exec-child";

/// How to start the child.
#[derive(Debug, Clone)]
pub struct ChildCommand<'fd> {
    /// The MAS command; a bare name is looked up in `PATH`, like `execvp(3)`.
    pub program: OsString,
    pub args: Vec<OsString>,
    /// Listening sockets, in the order the child must see them at 3, 4, ....
    /// They stay open in the supervisor; the child gets copies.
    pub fds: Vec<BorrowedFd<'fd>>,
    /// `LISTEN_FDNAMES` for the child: one name per fd, without `:`.
    pub fd_names: Vec<String>,
    /// Variables set for the child (e.g. `NOTIFY_SOCKET`, `MAS_CONFIG`).
    pub env: Vec<(OsString, OsString)>,
    /// Variables removed for the child (e.g. `WATCHDOG_USEC`). `LISTEN_*` are
    /// always set or removed by [`spawn`] itself.
    pub env_remove: Vec<OsString>,
    /// The binary that runs [`exec_child`] under [`EXEC_CHILD_SUBCOMMAND`].
    pub helper: PathBuf,
}

impl<'fd> ChildCommand<'fd> {
    /// A command for `program` with no arguments, fds or environment changes,
    /// using [`DEFAULT_HELPER`].
    pub fn new(program: impl Into<OsString>) -> Self {
        ChildCommand {
            program: program.into(),
            args: Vec::new(),
            fds: Vec::new(),
            fd_names: Vec::new(),
            env: Vec::new(),
            env_remove: Vec::new(),
            helper: PathBuf::from(DEFAULT_HELPER),
        }
    }
}

/// Starts the child: `helper exec-child -- program args...` with `cmd.fds` at
/// 3.., `LISTEN_FDS` and `LISTEN_FDNAMES` set (removed when there are no fds),
/// and every other fd closed at exec. Stdio is inherited.
///
/// The child gets `SIGKILL` when the thread that calls this exits (that is how
/// `PR_SET_PDEATHSIG` works), so call it from the supervisor's main thread. It is
/// not killed when the returned handle is dropped.
///
/// # Errors
///
/// `InvalidInput` when `fd_names` and `fds` differ in length, a name contains `:`,
/// or there are too many fds; otherwise the error of `fork`/`exec` of the helper,
/// or of the fd moves in the child (reported through `spawn`).
///
/// # Panics
///
/// Outside a tokio runtime.
pub fn spawn(cmd: &ChildCommand<'_>) -> io::Result<tokio::process::Child> {
    let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidInput, message);
    if cmd.fd_names.len() != cmd.fds.len() {
        return Err(invalid(format!(
            "{} fd names for {} fds for the child: give one name per fd",
            cmd.fd_names.len(),
            cmd.fds.len()
        )));
    }
    if let Some(name) = cmd.fd_names.iter().find(|name| name.contains(':')) {
        return Err(invalid(format!(
            "fd name {name:?} contains ':', which separates names in {LISTEN_FDNAMES}: rename it"
        )));
    }
    let mut command = tokio::process::Command::new(&cmd.helper);
    command
        .arg(EXEC_CHILD_SUBCOMMAND)
        .arg("--")
        .arg(&cmd.program)
        .args(&cmd.args)
        // A process group of its own: a Ctrl-C in a terminal reaches only the
        // supervisor, which passes one SIGTERM on, instead of reaching MAS
        // directly as well (MAS takes a second signal as "stop at once").
        .process_group(0)
        .kill_on_drop(false);
    for name in &cmd.env_remove {
        command.env_remove(name);
    }
    command.envs(cmd.env.iter().map(|(k, v)| (k, v)));
    // Last, so nothing above can override them. LISTEN_PID is the helper's job.
    command.env_remove(LISTEN_PID);
    if cmd.fds.is_empty() {
        command.env_remove(LISTEN_FDS).env_remove(LISTEN_FDNAMES);
    } else {
        command
            .env(LISTEN_FDS, cmd.fds.len().to_string())
            .env(LISTEN_FDNAMES, cmd.fd_names.join(":"));
    }
    sys::spawn_with_fds(command, &cmd.fds).map_err(|err| {
        io::Error::new(
            err.kind(),
            format!(
                "cannot start {} {EXEC_CHILD_SUBCOMMAND} -- {}: {err}",
                cmd.helper.display(),
                cmd.program.to_string_lossy()
            ),
        )
    })
}

/// The body of `mas-sockets exec-child -- PROGRAM ARGS...`: sets `LISTEN_PID` to
/// our pid when `LISTEN_FDS` is set (removes it otherwise) and replaces this
/// process with `program`, looked up in `PATH` like `execvp(3)`.
///
/// It also sets `PR_SET_PDEATHSIG` to `SIGKILL` again. The setting [`spawn`] made
/// belongs to the main thread; a thread that was started later and calls `exec`
/// would carry its own, unset one into `program`.
///
/// Call it first thing, before opening files: the fds at 3.. must reach `program`
/// untouched. Returns only on failure; it fails without exec when the parent
/// exited before the signal was set.
pub fn exec_child(program: &OsStr, args: &[OsString]) -> io::Error {
    if let Err(err) = die_with_parent() {
        return err;
    }
    let mut command = std::process::Command::new(program);
    command.args(args);
    let passed = std::env::var(LISTEN_FDS)
        .ok()
        .and_then(|n| n.parse::<RawFd>().ok())
        .unwrap_or(0);
    if std::env::var_os(LISTEN_FDS).is_some() {
        command.env(LISTEN_PID, std::process::id().to_string());
    } else {
        command.env_remove(LISTEN_PID);
    }
    // Whatever this process holds above the passed fds stays here.
    if let Err(err) = sys::cloexec_from(3 + passed.max(0)) {
        return err;
    }
    // Like LISTEN_PID: sd_watchdog_enabled(3) ignores a WATCHDOG_USEC whose
    // WATCHDOG_PID is another process's.
    if std::env::var_os("WATCHDOG_USEC").is_some() {
        command.env("WATCHDOG_PID", std::process::id().to_string());
    } else {
        command.env_remove("WATCHDOG_PID");
    }
    let err = command.exec();
    io::Error::new(
        err.kind(),
        format!(
            "cannot execute {:?}: {err}; check the MAS command and PATH",
            program.to_string_lossy()
        ),
    )
}

/// Makes the calling thread's process get `SIGKILL` when its parent exits.
fn die_with_parent() -> io::Result<()> {
    let parent = nix::unistd::getppid();
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
    // A parent that exited before the call sends nothing: we were reparented.
    if nix::unistd::getppid() != parent {
        return Err(io::Error::other(format!(
            "the supervisor (pid {parent}) exited before MAS could start"
        )));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    //! Tests that need a fresh process re-run this test binary with
    //! `MAS_SOCKETS_TEST_ENTRY` naming an `#[ignore]`d entry test below, which does
    //! nothing unless that variable selects it.

    use super::*;
    use crate::activation::tests::TempDir;
    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader};
    use std::os::fd::{AsFd, AsRawFd};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::Path;
    use std::process::{Command, Output, Stdio};
    use std::time::{Duration, Instant};

    const ENTRY_VAR: &str = "MAS_SOCKETS_TEST_ENTRY";
    /// Selects `exec_child_entry`, separately from [`ENTRY_VAR`] so that the
    /// program it starts can be another entry.
    const EXEC_CHILD_VAR: &str = "MAS_SOCKETS_TEST_EXEC_CHILD";
    /// The program and arguments for `exec_child_entry`, each followed by a 0x1f
    /// byte. Not passed as arguments: libtest would take them as test filters.
    const ARGV_VAR: &str = "MAS_SOCKETS_TEST_ARGV";
    /// Where a child started by a test writes what it saw.
    pub(crate) const OUT_VAR: &str = "MAS_SOCKETS_TEST_OUT";

    /// Whether this run of the test binary was started to run entry `name`.
    pub(crate) fn entry_selected(name: &str) -> bool {
        std::env::var(ENTRY_VAR).as_deref() == Ok(name)
    }

    /// The arguments that make this test binary run only the test `test` (its
    /// full path, like `child::tests::layout_entry`), even if it is ignored.
    pub(crate) fn self_args(test: &str) -> Vec<OsString> {
        [
            "--exact",
            test,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ]
        .map(OsString::from)
        .to_vec()
    }

    /// A command that re-runs this test binary for entry `test`, selected by `entry`.
    pub(crate) fn self_command(test: &str, entry: &str) -> Command {
        let mut command = Command::new(std::env::current_exe().expect("current test binary"));
        command
            .args(self_args(test))
            .env(ENTRY_VAR, entry)
            .stdin(Stdio::null());
        command
    }

    /// Like [`self_command`], for `exec_child_entry` running `argv`.
    fn exec_child_command(argv: &[&str]) -> Command {
        let mut command = Command::new(std::env::current_exe().expect("current test binary"));
        command
            .args(self_args("child::tests::exec_child_entry"))
            .env(EXEC_CHILD_VAR, "1")
            .env(
                ARGV_VAR,
                argv.iter()
                    .map(|arg| format!("{arg}\x1f"))
                    .collect::<String>(),
            )
            .stdin(Stdio::null());
        command
    }

    /// Runs `command` to completion and returns its output, printing it all.
    pub(crate) fn run_and_show(command: &mut Command) -> Output {
        let output = command.output().expect("run the test binary again");
        println!(
            "command: {command:?}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// What the helper script runs after checking its `exec-child --` arguments.
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum HelperMode {
        /// [`exec_child`] inside this test binary (entry `exec_child_entry`): the
        /// whole path MAS takes.
        ExecChild,
        /// `LISTEN_PID=$$` and `exec` in the shell: only what [`spawn`] does.
        Shell,
    }

    /// A stand-in for `mas-sockets exec-child -- PROGRAM ARGS...`. Its stdout
    /// (libtest's chatter) goes to /dev/null: children report through files.
    pub(crate) fn write_helper(dir: &Path, mode: HelperMode) -> PathBuf {
        let bin = std::env::current_exe().expect("current test binary");
        let bin = bin.to_str().expect("test binary path is UTF-8");
        assert!(!bin.contains('\''), "test binary path has a quote: {bin}");
        let run = match mode {
            HelperMode::ExecChild => format!(
                "{ARGV_VAR}=$(printf '%s\\037' \"$@\") {EXEC_CHILD_VAR}=1 exec '{bin}' \
                 --exact child::tests::exec_child_entry --ignored --nocapture --test-threads=1 -q"
            ),
            HelperMode::Shell => "LISTEN_PID=$$ exec \"$@\"".to_owned(),
        };
        let script = format!(
            "#!/bin/sh\n\
             [ \"$1\" = {EXEC_CHILD_SUBCOMMAND} ] && [ \"$2\" = -- ] || {{ echo \"helper: bad arguments: $*\" >&2; exit 97; }}\n\
             shift 2\n\
             exec >/dev/null\n\
             {run}\n"
        );
        let path = dir.join("helper.sh");
        std::fs::write(&path, script).expect("write helper script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod helper script");
        path
    }

    /// The body of the helper: runs the program and args in [`ARGV_VAR`].
    #[test]
    #[ignore = "entry point for a re-run of this binary"]
    fn exec_child_entry() {
        if std::env::var_os(EXEC_CHILD_VAR).is_none() {
            return;
        }
        let argv: Vec<OsString> = std::env::var(ARGV_VAR)
            .expect("program and args")
            .split_terminator('\x1f')
            .map(OsString::from)
            .collect();
        let (program, args) = argv.split_first().expect("a program after --");
        let err = exec_child(program, args);
        eprintln!("EXEC_ERROR {err}");
        std::process::exit(96);
    }

    /// Shell code for the final program: writes its pid, `LISTEN_*` and every fd
    /// it holds (`ls -l` lines, `N -> target`) to `$MAS_SOCKETS_TEST_OUT`. `ls`
    /// writes straight to the report: in a pipeline the shell would hold a pipe
    /// of its own while `ls` lists its fds, now and then.
    const REPORT_SCRIPT: &str = "exec > \"$MAS_SOCKETS_TEST_OUT.tmp\"\n\
        echo \"PID=$$\"\n\
        echo \"LISTEN_PID=${LISTEN_PID-unset}\"\n\
        echo \"LISTEN_FDS=${LISTEN_FDS-unset}\"\n\
        echo \"LISTEN_FDNAMES=${LISTEN_FDNAMES-unset}\"\n\
        echo \"MARK=${MAS_SOCKETS_TEST_MARK-unset}\"\n\
        echo \"REMOVE_ME=${MAS_SOCKETS_TEST_REMOVE_ME-unset}\"\n\
        ls -l /proc/$$/fd\n\
        mv \"$MAS_SOCKETS_TEST_OUT.tmp\" \"$MAS_SOCKETS_TEST_OUT\"\n";

    /// What [`REPORT_SCRIPT`] wrote.
    #[derive(Debug)]
    pub(crate) struct Report {
        vars: BTreeMap<String, String>,
        fds: BTreeMap<i32, String>,
    }

    impl Report {
        fn read(path: &Path) -> Report {
            let text = std::fs::read_to_string(path)
                .unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
            println!("child report:\n{text}");
            let mut report = Report {
                vars: BTreeMap::new(),
                fds: BTreeMap::new(),
            };
            for line in text.lines() {
                // `ls -l` lines: `lrwx------ 1 root root 64 ... 3 -> socket:[123]`.
                if let Some((left, target)) = line.split_once(" -> ") {
                    let fd = left.rsplit(' ').next().expect("a last word");
                    report
                        .fds
                        .insert(fd.parse().expect("fd number"), target.to_owned());
                } else if let Some((key, value)) = line.split_once('=') {
                    report.vars.insert(key.to_owned(), value.to_owned());
                }
            }
            report
        }

        fn var(&self, key: &str) -> &str {
            self.vars.get(key).map(String::as_str).unwrap_or("missing")
        }
    }

    /// `socket:[inode]`, as /proc/PID/fd shows the socket `fd`.
    fn proc_target(fd: BorrowedFd<'_>) -> String {
        let ino = std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .expect("stat fd")
            .ino();
        format!("socket:[{ino}]")
    }

    /// In a fresh process whose first two sockets are fds 3 and 4, passes them as
    /// `[4, 3]` (both sources inside the target range) and keeps one extra fd
    /// open without close-on-exec. Prints `EXPECT n target` for the child's fds.
    #[test]
    #[ignore = "entry point for a re-run of this binary"]
    fn layout_entry() {
        if !entry_selected("layout") {
            return;
        }
        let a = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a");
        let b = std::net::TcpListener::bind("127.0.0.1:0").expect("bind b");
        assert_eq!(
            (a.as_raw_fd(), b.as_raw_fd()),
            (3, 4),
            "a fresh test process should hand out fds 3 and 4 first"
        );
        let leak = std::fs::File::open("/dev/null").expect("open /dev/null");
        sys::set_cloexec(leak.as_fd(), false).expect("clear FD_CLOEXEC");
        println!("EXPECT 3 {}", proc_target(b.as_fd()));
        println!("EXPECT 4 {}", proc_target(a.as_fd()));
        println!("LEAK {}", leak.as_raw_fd());

        let dir = PathBuf::from(std::env::var_os("MAS_SOCKETS_TEST_DIR").expect("dir"));
        let mut cmd = ChildCommand::new("sh");
        cmd.args = vec!["-c".into(), REPORT_SCRIPT.into()];
        cmd.fds = vec![b.as_fd(), a.as_fd()];
        cmd.fd_names = vec!["b".into(), "a".into()];
        cmd.env = vec![
            ("MAS_SOCKETS_TEST_MARK".into(), "set".into()),
            (OUT_VAR.into(), dir.join("report").into()),
        ];
        cmd.env_remove = vec!["MAS_SOCKETS_TEST_REMOVE_ME".into()];
        cmd.helper = write_helper(&dir, HelperMode::ExecChild);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let status = runtime.block_on(async {
            let mut child = spawn(&cmd).expect("spawn");
            println!("CHILD {}", child.id().expect("child pid"));
            child.wait().await.expect("wait")
        });
        println!("CHILD_STATUS {status}");
        // The supervisor's own fds are untouched by the spawn.
        assert!(!sys::is_cloexec(leak.as_fd()).unwrap());
        assert!(sys::is_cloexec(a.as_fd()).unwrap());
    }

    #[test]
    fn child_sees_exactly_its_fds_in_order_and_its_own_pid() {
        let dir = TempDir::new("layout");
        let output = run_and_show(
            self_command("child::tests::layout_entry", "layout")
                .env("MAS_SOCKETS_TEST_DIR", &dir.0)
                .env("MAS_SOCKETS_TEST_REMOVE_ME", "1"),
        );
        assert!(output.status.success());
        let stdout = String::from_utf8_lossy(&output.stdout);
        let value = |prefix: &str| -> String {
            stdout
                .lines()
                .find_map(|line| line.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("no {prefix:?} line"))
                .to_owned()
        };
        assert_eq!(value("CHILD_STATUS "), "exit status: 0");
        let report = Report::read(&dir.0.join("report"));

        let pid = value("CHILD ");
        assert_eq!(report.var("PID"), pid, "exec keeps the spawned pid");
        assert_eq!(report.var("LISTEN_PID"), pid);
        assert_eq!(report.var("LISTEN_FDS"), "2");
        assert_eq!(report.var("LISTEN_FDNAMES"), "b:a");
        assert_eq!(report.var("MARK"), "set");
        assert_eq!(report.var("REMOVE_ME"), "unset");

        let fds: Vec<i32> = report.fds.keys().copied().collect();
        assert_eq!(fds, [0, 1, 2, 3, 4], "leak: {}", value("LEAK "));
        assert_eq!(report.fds[&3], value("EXPECT 3 "));
        assert_eq!(report.fds[&4], value("EXPECT 4 "));
    }

    #[test]
    fn exec_child_sets_listen_pid_only_with_listen_fds() {
        for (listen_fds, expected) in [(Some("2"), None), (None, Some("unset"))] {
            let dir = TempDir::new("exec-child");
            let out = dir.0.join("report");
            let mut command = exec_child_command(&["sh", "-c", REPORT_SCRIPT]);
            command.env(OUT_VAR, &out).env(LISTEN_PID, "1");
            match listen_fds {
                Some(n) => command.env(LISTEN_FDS, n),
                None => command.env_remove(LISTEN_FDS),
            };
            let child = command.stdout(Stdio::piped()).spawn().expect("spawn");
            let pid = child.id().to_string();
            let output = child.wait_with_output().expect("wait");
            assert!(output.status.success(), "{output:?}");
            let report = Report::read(&out);
            assert_eq!(report.var("PID"), pid);
            assert_eq!(report.var("LISTEN_PID"), expected.unwrap_or(&pid));
        }
    }

    #[test]
    fn exec_child_reports_a_missing_program() {
        let output = run_and_show(&mut exec_child_command(&["mas-sockets-no-such-program"]));
        assert_eq!(output.status.code(), Some(96));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("EXEC_ERROR cannot execute \"mas-sockets-no-such-program\""),
            "{stderr}"
        );
    }

    #[tokio::test]
    async fn spawn_rejects_names_that_do_not_fit() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let mut cmd = ChildCommand::new("true");
        cmd.fds = vec![file.as_fd()];
        let err = spawn(&cmd).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("0 fd names for 1 fds"), "{err}");

        cmd.fd_names = vec!["a:b".into()];
        let err = spawn(&cmd).unwrap_err();
        assert!(err.to_string().contains("\"a:b\" contains ':'"), "{err}");
    }

    /// Spawns a long-running child, prints its pid, and waits for it.
    #[test]
    #[ignore = "entry point for a re-run of this binary"]
    fn orphan_entry() {
        if !entry_selected("orphan") {
            return;
        }
        let dir = PathBuf::from(std::env::var_os("MAS_SOCKETS_TEST_DIR").expect("dir"));
        let mut cmd = ChildCommand::new("sleep");
        cmd.args = vec!["300".into()];
        let mode = match std::env::var("MAS_SOCKETS_TEST_HELPER").as_deref() {
            Ok("shell") => HelperMode::Shell,
            _ => HelperMode::ExecChild,
        };
        cmd.helper = write_helper(&dir, mode);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut child = spawn(&cmd).expect("spawn");
            println!("CHILD {}", child.id().expect("child pid"));
            child.wait().await.expect("wait");
        });
    }

    /// The state letter of `/proc/PID/stat`, or `None` once the process is gone.
    fn process_state(pid: u32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(") ")?.1.chars().next()
    }

    /// The parent-death signal set by [`spawn`]'s pre-exec code reaches the
    /// final program.
    #[test]
    fn child_dies_when_the_supervisor_is_killed() {
        assert_child_dies_with_supervisor("shell");
    }

    /// [`exec_child`] sets the signal again, because here it runs on a thread
    /// other than the one the supervisor forked (libtest's test thread).
    #[test]
    fn child_dies_with_the_supervisor_through_exec_child_on_a_thread() {
        assert_child_dies_with_supervisor("exec_child");
    }

    fn assert_child_dies_with_supervisor(helper: &str) {
        let dir = TempDir::new("orphan");
        let mut supervisor = self_command("child::tests::orphan_entry", "orphan")
            .env("MAS_SOCKETS_TEST_DIR", &dir.0)
            .env("MAS_SOCKETS_TEST_HELPER", helper)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the supervisor stand-in");
        // Keep reading to the end, so the stand-in never writes to a closed pipe.
        let stdout = supervisor.stdout.take().expect("stdout");
        let (lines_tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("supervisor stand-in: {line}");
                let _ = lines_tx.send(line);
            }
        });
        let pid: u32 = loop {
            let line = lines
                .recv_timeout(Duration::from_secs(10))
                .expect("a CHILD line within 10 s");
            if let Some(pid) = line.strip_prefix("CHILD ") {
                break pid.parse().expect("a pid");
            }
        };

        // Let the child get all the way to the final program first.
        let start = Instant::now();
        while std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .as_deref()
            != Some("sleep\n")
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "child never became sleep"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        supervisor.kill().expect("SIGKILL the supervisor stand-in");
        supervisor.wait().expect("reap it");

        let start = Instant::now();
        loop {
            match process_state(pid) {
                None | Some('Z') => break,
                Some(state) => {
                    if start.elapsed() > Duration::from_secs(10) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid as i32),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                        panic!(
                            "child {pid} still alive (state {state}) 10 s after its parent died"
                        );
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
