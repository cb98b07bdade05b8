//! `mas-sockets check`: each class of bad config gives one line naming
//! file:line:column and the fix, with exit status 1; a valid one prints binds.

use std::process::Command;

use crate::util::{explain, mas_sockets, repo, run, TempDir};

/// Runs `check` on one config file with `text`; returns (status, stdout, stderr).
fn check(text: &str) -> (i32, String, String) {
    let dir = TempDir::new("check");
    let path = dir.write("config.yaml", text);
    let mut cmd = Command::new(mas_sockets());
    cmd.arg("check").arg("--config").arg(&path);
    let out = run(&mut cmd);
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "CONFIG");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

fn listener(binds: &str) -> String {
    format!("http:\n  listeners:\n    - name: web\n      resources: [{{name: human}}]\n      binds:\n{binds}  public_base: https://auth.example.com/\n")
}

/// Each bad-config class, the line it must give. Columns point at the node.
#[test]
fn every_bad_config_class_gives_its_error_line() {
    let cases: Vec<(&str, String, &str)> = vec![
        ("empty bind", listener("        - {}\n"), "mas-sockets: CONFIG:6:11: http.listeners[0].binds[0]: the bind is empty, and MAS would read it as `fd: 0`"),
        ("host without port", listener("        - host: localhost\n"), "mas-sockets: CONFIG:6:11: http.listeners[0].binds[0]: `host: localhost` has no `port`"),
        ("misspelt address", listener("        - adress: \"127.0.0.1:8080\"\n"), "mas-sockets: CONFIG:6:11: http.listeners[0].binds[0].adress: unknown key `adress` in a bind (did you mean `address`?)"),
        ("misspelt port", listener("        - host: localhost\n          prot: 8080\n"), "mas-sockets: CONFIG:7:11: http.listeners[0].binds[0].prot: unknown key `prot` in a bind (did you mean `port`?)"),
        ("quoted port", listener("        - port: \"80\"\n"), "mas-sockets: CONFIG:6:17: http.listeners[0].binds[0].port: `port: \"80\"` is a string"),
        ("port not a number", listener("        - port: 8080x\n"), "mas-sockets: CONFIG:6:17: http.listeners[0].binds[0].port: `port: 8080x` is not a number, and MAS would read the bind as `fd: 0`; write a number from 1 to 65535"),
        ("null port", listener("        - port: ~\n"), "mas-sockets: CONFIG:6:17: http.listeners[0].binds[0].port: `port` is null (`~`, `null` or nothing after `port:`), and MAS would read the bind as `fd: 0`; write the port number"),
        ("port 0", listener("        - port: 0\n"), "mas-sockets: CONFIG:6:17: http.listeners[0].binds[0].port: port 0 asks the kernel for a random port"),
        ("no binds", "http:\n  listeners:\n    - name: web\n      resources: [{name: human}]\n  public_base: https://a/\n".into(), "mas-sockets: CONFIG:3:7: http.listeners[0].binds: the listener has no binds"),
        ("no resources", "http:\n  listeners:\n    - name: web\n      binds: [{port: 8080}]\n  public_base: https://a/\n".into(), "mas-sockets: CONFIG:3:7: http.listeners[0].resources: the listener has no resources"),
        ("same address twice", listener("        - port: 8080\n        - address: \"[::]:8080\"\n"), "mas-sockets: CONFIG:7:11: http.listeners[0].binds[1]: address [::]:8080 is also bound by port 8080 at CONFIG:6:11"),
        ("unix path too long", listener(&format!("        - socket: /run/{}.sock\n", "x".repeat(120))), "is 130 bytes, longer than the 107 a socket address holds; use a shorter path"),
        ("mode not octal", listener("        - socket: /run/mas.sock\n          mode: \"rw-rw----\"\n"), "mas-sockets: CONFIG:7:17: http.listeners[0].binds[0].mode: `mode: rw-rw----` is not an octal permission string"),
        ("prefix without /", "http:\n  listeners:\n    - name: web\n      prefix: auth\n      resources: [{name: human}]\n      binds: [{port: 8080}]\n  public_base: https://a/\n".into(), "mas-sockets: CONFIG:4:15: http.listeners[0].prefix: `prefix: auth` does not start with `/`: MAS nests its routes under `auth/`, and its router panics at start-up on a path without a leading `/`; write `prefix: /auth`"),
        ("mode beyond 0777", listener("        - socket: /run/mas.sock\n          mode: \"7777\"\n"), "mas-sockets: CONFIG:7:17: http.listeners[0].binds[0].mode: `mode: 7777` sets bits beyond 0777 (setuid, setgid, sticky), which mean nothing on a socket; give the permission bits only, e.g. `mode: \"660\"`"),
        ("resource without name", "http:\n  listeners:\n    - name: web\n      resources:\n        - nmae: health\n      binds: [{port: 8080}]\n  public_base: https://a/\n".into(), "mas-sockets: CONFIG:5:11: http.listeners[0].resources[0].nmae: the resource has no `name` (is `nmae` meant to be `name`?), and MAS refuses a config with such a resource; write e.g. `- name: health`"),
        ("invalid yaml", "http:\n  listeners: [\n".into(), "mas-sockets: CONFIG:3:1: invalid YAML"),
    ];
    let mut failures = Vec::new();
    for (name, text, want) in &cases {
        let (status, _, stderr) = check(text);
        let lines: Vec<&str> = stderr.lines().collect();
        let want_status = if *name == "invalid yaml" { 2 } else { 1 };
        if status != want_status || lines.len() != 1 || !lines[0].contains(want) {
            failures.push(format!("{name}: status {status} (want {want_status}), stderr:\n{stderr}\nwanted a single line containing: {want}\n"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn missing_file_names_the_path_and_exits_2() {
    let mut cmd = Command::new(mas_sockets());
    cmd.args(["check", "--config", "/nonexistent/mas.yaml"]);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&cmd, &out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("mas-sockets: /nonexistent/mas.yaml: cannot read the config file: No such file or directory"),
        "{stderr}"
    );
}

/// With neither `--config` nor `MAS_CONFIG`, the missing file is MAS's
/// default, and the message says so rather than pointing at either.
#[test]
fn a_missing_default_config_says_it_is_the_default() {
    let dir = TempDir::new("no-default");
    let mut cmd = Command::new(mas_sockets());
    cmd.arg("check")
        .env_remove("MAS_CONFIG")
        .current_dir(dir.path());
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&cmd, &out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "mas-sockets: config.yaml: cannot read the config file: No such file or directory (os error 2); with neither --config nor MAS_CONFIG, MAS and mas-sockets read config.yaml in the working directory ({}); give the config with --config PATH\n",
            dir.path().display()
        )
    );
}

#[test]
fn valid_config_prints_each_bind_and_its_sockets() {
    let mut cmd = Command::new(mas_sockets());
    cmd.arg("check")
        .arg("--config")
        .arg(repo().join("tests/configs/split-a.yaml"))
        .arg("--config")
        .arg(repo().join("tests/configs/split-b.yaml"));
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", explain(&cmd, &out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "listener web (discovery, human, oauth, compat)\n  bind 0: host localhost port 8080 -> tcp 127.0.0.1:8080 | tcp [::1]:8080\nlistener admin (adminapi)\n  bind 0: address [::1]:8082 -> tcp [::1]:8082\n  bind 1: socket /run/mas-admin/admin.sock -> unix /run/mas-admin/admin.sock\n"
    );
}

#[test]
fn mas_config_variable_is_read_when_no_config_is_given() {
    let mut cmd = Command::new(mas_sockets());
    cmd.arg("check").env(
        "MAS_CONFIG",
        format!(
            "{}:{}",
            repo().join("tests/configs/split-a.yaml").display(),
            repo().join("tests/configs/split-b.yaml").display()
        ),
    );
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", explain(&cmd, &out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("listener admin"));
}

/// A bind with a stray key and a wrong value gets a line for each, not only
/// the first.
#[test]
fn each_problem_of_a_bind_gets_its_line() {
    let (status, _, stderr) = check(&listener(
        "        - hots: localhost\n          port: 80810\n",
    ));
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(status, 1, "{stderr}");
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with("mas-sockets: CONFIG:6:11: http.listeners[0].binds[0].hots: unknown key `hots` in a bind (did you mean `host`?)"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with(
            "mas-sockets: CONFIG:7:17: http.listeners[0].binds[0].port: port 80810 is out of range"
        ),
        "{stderr}"
    );
}

/// What MAS accepts but is very likely a mistake is a warning: the check
/// still passes, and prints the binds.
#[test]
fn likely_mistakes_are_warnings_and_the_check_passes() {
    let cases: Vec<(&str, String, &str)> = vec![
        ("socket anyone may open", listener("        - socket: /run/mas/web.sock\n          mode: \"0777\"\n"),
         "mas-sockets: warning: CONFIG:7:17: http.listeners[0].binds[0].mode: `mode: 0777` lets any local user connect to MAS (connecting to a Unix socket needs write permission, and this mode gives it to others); use e.g. `mode: \"660\"` and give the clients the socket's group (generate-units --socket-group)"),
        ("prefix with a capture", "http:\n  listeners:\n    - name: web\n      prefix: /{tenant}\n      resources: [{name: human}]\n      binds: [{port: 8080}]\n  public_base: https://a/\n".into(),
         "mas-sockets: warning: CONFIG:4:15: http.listeners[0].prefix: `prefix: /{tenant}` holds the capture `{tenant}`: MAS's router matches any path segment there, not that text, and generate-nginx refuses such a prefix; write a plain path such as `prefix: /auth`"),
        ("misspelt http", "htpp:\n  public_base: https://a/\n  listeners: []\n".into(),
         "mas-sockets: warning: CONFIG:1:1: htpp: `htpp` is not a section MAS knows (did you mean `http`?); MAS ignores it, and without an `http` section serves its built-in listeners on every address ([::]:8080); rename it to `http`"),
        ("relative socket path", listener("        - socket: web.sock\n"),
         "mas-sockets: warning: CONFIG:6:11: http.listeners[0].binds[0]: the socket path `web.sock` is relative: MAS binds it in its working directory, but generate-units and generate-nginx need the absolute path for the socket unit and nginx, and refuse it; write the full path, e.g. /run/mas/web.sock"),
        ("socket in the runtime directory", listener("        - socket: /run/mas-sockets/mas/web.sock\n"),
         "mas-sockets: warning: CONFIG:6:11: http.listeners[0].binds[0]: the socket path `/run/mas-sockets/mas/web.sock` is inside /run/mas-sockets/mas, the runtime directory of mas.service, which systemd empties whenever the service stops, so the socket file would vanish while its socket unit still holds the socket; put it in a directory of its own, e.g. /run/mas/web.sock"),
        ("PROXY protocol on every address", "http:\n  listeners:\n    - name: web\n      proxy_protocol: true\n      resources: [{name: human}]\n      binds: [{port: 9500}, {host: 127.0.0.1, port: 9501}]\n  public_base: https://a/\n".into(),
         "mas-sockets: warning: CONFIG:6:15: http.listeners[0].binds[0]: MAS believes the PROXY header of anyone who connects to listener web, and it listens beyond loopback: anyone who reaches it can claim any client address; bind it to localhost or a Unix socket"),
    ];
    let mut failures = Vec::new();
    for (name, text, want) in &cases {
        let (status, stdout, stderr) = check(text);
        let lines: Vec<&str> = stderr.lines().collect();
        if status != 0 || lines != [*want] || !stdout.contains("listener ") {
            failures.push(format!("{name}: status {status} (want 0), stdout:\n{stdout}stderr:\n{stderr}\nwanted the single line: {want}\n"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A `MAS_HTTP*` variable would give MAS listeners that no config file shows,
/// so no command can do its job: exit status 2 for check as for the others.
#[test]
fn listener_variables_stop_every_command_with_status_2() {
    for command in ["check", "generate-units"] {
        let mut cmd = Command::new(mas_sockets());
        cmd.arg(command)
            .arg("--config")
            .arg(repo().join("examples/reverse-proxy.yaml"))
            .env("MAS_HTTP_LISTENERS", "[]");
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(2), "{}", explain(&cmd, &out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.trim_end(),
            "mas-sockets: MAS_HTTP_LISTENERS is set: MAS would take listeners from it that no config file shows, around the sockets mas-sockets checks; move the listeners into a config file and unset it",
            "{}",
            explain(&cmd, &out)
        );
        assert!(out.stdout.is_empty(), "{}", explain(&cmd, &out));
    }
}

/// What figment reads (an integer beyond 64 bits) is accepted; what it
/// refuses (a null document) exits 2 naming the file; a near-miss warning
/// shows beside the errors.
#[test]
fn big_integers_null_documents_and_warnings_beside_errors() {
    let big = format!(
        "{}weird:\n  big: 123456789012345678901234567890\n  neg: -9223372036854775809\n",
        listener("        - port: 8080\n")
    );
    let (status, _, stderr) = check(&big);
    assert_eq!((status, stderr.as_str()), (0, ""));
    for text in ["~\n", "null\n"] {
        let (status, _, stderr) = check(text);
        assert_eq!(status, 2, "{text:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "mas-sockets: CONFIG:1:1: the config is `{}`, a null, not a mapping",
                text.trim()
            )),
            "{stderr}"
        );
    }
    for text in ["", "# c\n", "---\n"] {
        assert_eq!(check(text).0, 0, "{text:?}");
    }
    let (status, _, stderr) = check(&format!(
        "databse: {{}}\n{}",
        listener("        - port: 0\n")
    ));
    assert_eq!(status, 1, "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].starts_with("mas-sockets: warning: CONFIG:1:1: databse: `databse` is not a section MAS knows (did you mean `database`?)"), "{stderr}");
    assert!(lines[1].contains("port 0 asks the kernel"), "{stderr}");
}

/// A listener name with a terminal escape, a newline and a NUL is listed
/// with them escaped: it cannot add a line to check's verdict or recolour it.
#[test]
fn listing_shows_control_characters_escaped() {
    let (status, stdout, stderr) = check(
        "http:\n  public_base: https://auth.example.com/\n  listeners:\n    - name: \"\\e[31mRED\\e[0m\\nfake line\\0\"\n      resources: [{name: health}]\n      binds: [{socket: \"/run/mas/w\\teb.sock\"}]\n",
    );
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(
        stdout,
        "listener \\u{1b}[31mRED\\u{1b}[0m\\nfake line\\u{0} (health)\n  bind 0: socket /run/mas/w\\teb.sock -> unix /run/mas/w\\teb.sock\n"
    );
}

/// `MAS_CONFIG` set but empty is read as MAS reads it (no file, MAS's
/// built-in listeners), with a warning that says so.
#[test]
fn an_empty_mas_config_is_read_as_mas_does_with_a_warning() {
    let dir = TempDir::new("empty-mas-config");
    let mut cmd = Command::new(mas_sockets());
    cmd.arg("check")
        .env("MAS_CONFIG", "")
        .current_dir(dir.path());
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&cmd, &out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("no `http` section: MAS's built-in listeners apply\n"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr,
        "mas-sockets: warning: MAS_CONFIG=\"\" is set but names no file, so MAS reads no config file and serves its built-in listeners (web on [::]:8080, every address; internal on localhost:8081); if a config was meant, give it with --config\n"
    );
}

/// A key given twice, in a section mas-sockets does not read as in one it
/// does, is a warning: MAS runs such a config (the last value wins), so
/// refusing it would stop a MAS that runs.
#[test]
fn a_key_given_twice_is_a_warning_and_the_last_value_counts() {
    let (status, stdout, stderr) = check(&format!(
        "{}email:\n  transport: smtp\n  transport: blackhole\n",
        listener("        - host: 127.0.0.1\n          port: 8080\n          port: 8081\n")
    ));
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.contains("tcp 127.0.0.1:8081"), "{stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with("mas-sockets: warning: CONFIG:8:11: http.listeners[0].binds[0]: `port` is given twice in one mapping, here and at CONFIG:7:11;"),
        "{stderr}"
    );
    assert!(
        lines[1]
            .starts_with("mas-sockets: warning: CONFIG:12:3: email: `transport` is given twice"),
        "{stderr}"
    );
}

/// Output that cannot be written (a full disk) is said, with exit status 2,
/// rather than lost.
#[test]
fn output_that_cannot_be_written_is_said() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let mut cmd = Command::new(mas_sockets());
    cmd.current_dir(repo())
        .args(["check", "--config", "examples/reverse-proxy.yaml"])
        .stdout(full);
    let out = cmd.output().expect("run mas-sockets");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr
            .starts_with("mas-sockets: cannot write the output to stdout: No space left on device"),
        "{stderr}"
    );
}

/// The warnings about what generate-units would refuse or what would
/// break once deployed (a relative socket path, a socket in a service's
/// runtime directory) are given for the binds that could be read even when
/// another bind has an error, beside that error.
#[test]
fn deployment_warnings_come_beside_errors() {
    let (status, _, stderr) = check(concat!(
        "http:\n",
        "  public_base: https://auth.example.com/\n",
        "  listeners:\n",
        "    - name: web\n",
        "      resources: [{name: human}]\n",
        "      binds:\n",
        "        - socket: web.sock\n",
        "        - socket: /run/mas-sockets/mas/w.sock\n",
        "    - name: other\n",
        "      resources: [{name: health}]\n",
        "      binds: [{port: 0}]\n",
    ));
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(status, 1, "{stderr}");
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with("mas-sockets: warning: CONFIG:7:11: http.listeners[0].binds[0]: the socket path `web.sock` is relative")
            && lines[1].starts_with("mas-sockets: warning: CONFIG:8:11: http.listeners[0].binds[1]: the socket path `/run/mas-sockets/mas/w.sock` is inside /run/mas-sockets/mas")
            && lines[2].starts_with("mas-sockets: CONFIG:")
            && lines[2].contains("port 0 asks the kernel for a random port"),
        "{stderr}"
    );
}
