//! `mas-sockets generate-nginx` and `check --nginx` without a running nginx:
//! golden sites, byte stability, `nginx -t` on every generated site, the
//! refusals, and a hand-written site's mismatches named on both sides.
//!
//! Set `MAS_SOCKETS_BLESS=1` to rewrite the golden files after a deliberate change.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::util::nginx::{Certs, Nginx, NginxDir};
use crate::util::{explain, free_port, mas_sockets, repo, run, wait_until, Homeserver, TempDir};

/// The cases: config, extra options, golden file.
const CASES: &[(&str, &[&str], &str)] = &[
    (
        "tests/configs/nginx-unix.yaml",
        &[
            "--matrix-server-name",
            "matrix.example.com",
            "--homeserver",
            "http://localhost:8008",
            "--assets-dir",
            "/usr/share/mas/assets",
            "--tls",
        ],
        "nginx-unix.conf",
    ),
    (
        "tests/configs/nginx-tcp.yaml",
        &["--server-name-example.com"],
        "nginx-tcp.conf",
    ),
    (
        "tests/configs/nginx-proxy.yaml",
        &["--tls"],
        "nginx-proxy-stream.conf",
    ),
    (
        "tests/configs/nginx-shared.yaml",
        &[
            "--server-name-matrix.example.com",
            "--matrix-server-name",
            "matrix.example.com",
            "--homeserver",
            "http://localhost:8008",
            "--assets-dir",
            "/usr/share/mas/assets",
            "--tls",
        ],
        "nginx-shared.conf",
    ),
    // MAS's built-in listeners: `web` binds `[::]:8080`, which nginx
    // reaches on loopback.
    (
        "examples/default.yaml",
        &["--server-name-localhost"],
        "nginx-default.conf",
    ),
    (
        "tests/configs/nginx-split.yaml",
        &[
            "--matrix-server-name",
            "matrix.example.com",
            "--homeserver",
            "https://[::1]:8448/",
            "--assets-dir",
            "/usr/share/mas/assets/",
            "--tls",
            "--listen",
            "192.0.2.10:443",
        ],
        "nginx-split.conf",
    ),
];

/// generate-nginx for a case, run from the repository so the header names
/// the config by its relative path. `--tls` stands for the certificate pair
/// in `certs`; `--server-name-X` for `--server-name X`. With `port`, nginx
/// listens on 127.0.0.1:`port` instead (`nginx -t` binds what it is given,
/// and 80 or 443 may be taken on this host).
fn generate(
    config: &str,
    extra: &[&str],
    certs: &Certs,
    port: Option<u16>,
) -> (String, Vec<String>) {
    let mut cmd = Command::new(mas_sockets());
    cmd.current_dir(repo())
        .args(["generate-nginx", "--config", config])
        .args(["--socket-group", "www-data"]);
    let mut server_name = "auth.example.com".to_owned();
    let mut skip = false;
    if let Some(port) = port {
        cmd.args(["--listen", &format!("127.0.0.1:{port}")]);
    }
    for arg in extra {
        if std::mem::take(&mut skip) {
            continue;
        }
        if *arg == "--listen" && port.is_some() {
            skip = true;
        } else if *arg == "--tls" {
            cmd.arg("--tls-cert")
                .arg(&certs.cert)
                .arg("--tls-key")
                .arg(&certs.key);
        } else if let Some(name) = arg.strip_prefix("--server-name-") {
            server_name = name.to_owned();
        } else {
            cmd.arg(arg);
        }
    }
    cmd.args(["--server-name", &server_name]);
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", explain(&cmd, &out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr.lines().map(str::to_owned).collect(),
    )
}

#[track_caller]
fn assert_golden(name: &str, actual: &str) {
    let path = repo().join("tests/golden").join(name);
    if std::env::var_os("MAS_SOCKETS_BLESS").is_some() {
        fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with MAS_SOCKETS_BLESS=1", path.display()));
    assert!(
        expected == actual,
        "generate-nginx output differs from {}\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// Each case: the golden text (certificate paths shown as `CERTS`), the
/// same bytes a second time, and `nginx -t` on the site in a real nginx.
#[test]
fn generated_sites_match_golden_files_and_pass_nginx_t() {
    let certs_dir = TempDir::new("nginx-certs");
    let certs = Certs::make(
        certs_dir.path(),
        &["auth.example.com", "matrix.example.com"],
    );
    for (config, extra, golden) in CASES {
        let (first, _) = generate(config, extra, &certs, None);
        let (second, _) = generate(config, extra, &certs, None);
        assert_eq!(first, second, "{config}: not byte-stable");
        let files = files_of(&first);
        assert!(!files.is_empty(), "{config}: no ### header in {first}");
        // The first file's golden is the case's; a file beside it gets the
        // case's name with its own.
        for (i, (name, body)) in files.iter().enumerate() {
            let golden = if i == 0 {
                (*golden).to_owned()
            } else {
                format!("{}.{name}", golden.trim_end_matches(".conf"))
            };
            assert_golden(
                &golden,
                &body.replace(&certs_dir.path().display().to_string(), "CERTS"),
            );
        }
        let (local, warnings) = generate(config, extra, &certs, Some(free_port()));
        let dir = NginxDir::new("t");
        let said = nginx_t(&dir, &files_of(&local));
        eprintln!(
            "{config}: {} warning(s) {warnings:?}\n{said}",
            warnings.len()
        );
        // The files as generated, every server of them (the port-80
        // redirects too), with each listen address moved to a free port of
        // its own.
        let moved: Vec<(String, String)> = files
            .iter()
            .map(|(name, body)| (name.clone(), with_local_listens(body)))
            .collect();
        nginx_t(&dir, &moved);
    }
}

/// generate-nginx's stdout as (file name, text), one for each `### <file>` line.
fn files_of(output: &str) -> Vec<(String, String)> {
    output
        .split("### ")
        .skip(1)
        .filter_map(|f| f.split_once('\n'))
        .map(|(name, body)| (name.to_owned(), body.to_owned()))
        .collect()
}

/// `nginx -t` on `files` in `dir`: `-stream.conf` ones in the stream
/// context, the others in http.
fn nginx_t(dir: &NginxDir, files: &[(String, String)]) -> String {
    let written: Vec<(bool, PathBuf)> = files
        .iter()
        .map(|(name, body)| (name.ends_with("-stream.conf"), dir.dir.write(name, body)))
        .collect();
    let of = |stream: bool| -> Vec<&Path> {
        written
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, p)| p.as_path())
            .collect()
    };
    let conf = dir.main_conf(&of(false), &of(true));
    dir.test(&conf, None)
}

/// `site` with each distinct address of its `listen` lines replaced by
/// 127.0.0.1 and a free port of its own, so that `nginx -t` (which binds
/// them) runs on any host, and two servers that share an address still do.
fn with_local_listens(site: &str) -> String {
    let mut ports: Vec<(String, u16)> = Vec::new();
    site.lines()
        .map(|line| {
            let Some(rest) = line.strip_prefix("    listen ") else {
                return format!("{line}\n");
            };
            let (addr, params) = rest.split_once([' ', ';']).expect("listen ADDR;");
            let port = match ports.iter().find(|(a, _)| a == addr) {
                Some((_, p)) => *p,
                None => {
                    let p = free_port();
                    ports.push((addr.to_owned(), p));
                    p
                }
            };
            let sep = &rest[addr.len()..addr.len() + 1];
            format!("    listen 127.0.0.1:{port}{sep}{params}\n")
        })
        .collect()
}

/// A generated site passes `check --nginx`, and every proxy_pass is noted.
#[test]
fn generated_site_passes_check_nginx() {
    let certs_dir = TempDir::new("nginx-certs");
    let certs = Certs::make(certs_dir.path(), &["auth.example.com"]);
    for (config, extra, _) in CASES {
        let (text, _) = generate(config, extra, &certs, None);
        let dir = TempDir::new("check-site");
        let body = text.split_once('\n').unwrap().1;
        let site = dir.write("site.conf", body);
        let mut cmd = Command::new(mas_sockets());
        cmd.current_dir(repo())
            .args(["check", "--config", config, "--nginx"])
            .arg(&site);
        let out = run(&mut cmd);
        assert!(out.status.success(), "{}", explain(&cmd, &out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("reaches listener web"),
            "{}",
            explain(&cmd, &out)
        );
    }
}

/// PROXY protocol on one side only, made deliberately: check names the
/// site's line and the config's line and column, and exits 1.
#[test]
fn check_nginx_names_both_lines_of_a_proxy_protocol_mismatch() {
    let dir = TempDir::new("check-mismatch");
    let config = dir.write(
        "mas.yaml",
        "http:\n  public_base: https://auth.example.com/\n  listeners:\n    - name: web\n      resources: [{name: human}]\n      binds:\n        - host: 127.0.0.1\n          port: 8080\n    - name: proxied\n      proxy_protocol: true\n      resources: [{name: human}]\n      binds:\n        - socket: /run/mas/proxied.sock\n",
    );
    let site = dir.write(
        "site.conf",
        "# stream configuration written by hand\nserver {\n    listen 8443;\n    proxy_pass 127.0.0.1:8080;\n    proxy_protocol on;\n}\nserver {\n    listen 8444;\n    proxy_pass unix:/run/mas/proxied.sock;\n}\n",
    );
    let mut cmd = Command::new(mas_sockets());
    cmd.arg("check")
        .arg("--config")
        .arg(&config)
        .arg("--nginx")
        .arg(&site);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&cmd, &out));
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&dir.path().display().to_string(), "DIR");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with("mas-sockets: DIR/site.conf:5: PROXY protocol on nginx's side only: `proxy_protocol on` makes nginx send a PROXY header to 127.0.0.1:8080 (DIR/site.conf:4), but listener web does not expect one (DIR/mas.yaml:4:7: http.listeners[0])"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("mas-sockets: DIR/site.conf:9: PROXY protocol on MAS's side only: `proxy_pass unix:/run/mas/proxied.sock` sends no PROXY header to unix:/run/mas/proxied.sock, but listener proxied expects one (DIR/mas.yaml:10:23: http.listeners[1].proxy_protocol: `proxy_protocol: true`)"),
        "{stderr}"
    );
    // A file that is not nginx syntax: one line, exit 2.
    let broken = dir.write("broken.conf", "server {\n    listen 80;\n");
    let mut cmd = Command::new(mas_sockets());
    cmd.arg("check")
        .arg("--config")
        .arg(&config)
        .arg("--nginx")
        .arg(&broken);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&cmd, &out));
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&dir.path().display().to_string(), "DIR");
    assert_eq!(
        stderr,
        "mas-sockets: DIR/broken.conf:2: not nginx configuration: unexpected end of file in the block opened on line 1; add the missing `}`\n"
    );
}

/// The generated site for the reference deployment, edited by hand: the
/// auth host's `location /` and the Matrix host's compatibility endpoints
/// sent to the listener for health checks, which serves nothing they need
/// (MAS would answer 404 to all of it), or to a socket that no bind has.
/// Each is one line naming the site's line and the listener, and the fix
/// names only the bind of the listener that serves them.
#[test]
fn check_nginx_names_locations_sent_to_a_listener_without_their_resources() {
    let mut cmd = Command::new(mas_sockets());
    cmd.current_dir(repo()).args([
        "generate-nginx",
        "--config",
        "tests/configs/nginx-unix.yaml",
        "--server-name",
        "auth.example.com",
        "--socket-group",
        "www-data",
        "--assets-dir",
        "/usr/share/mas/assets",
        "--matrix-server-name",
        "matrix.example.com",
        "--homeserver",
        "http://localhost:8008",
    ]);
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", explain(&cmd, &out));
    let generated = String::from_utf8_lossy(&out.stdout);
    let site = generated.split_once('\n').unwrap().1;
    let dir = TempDir::new("check-resources");
    let check = |name: &str, text: &str| {
        let path = dir.write(name, text);
        let mut cmd = Command::new(mas_sockets());
        cmd.current_dir(repo())
            .args([
                "check",
                "--config",
                "tests/configs/nginx-unix.yaml",
                "--nginx",
            ])
            .arg(&path);
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(1), "{}", explain(&cmd, &out));
        String::from_utf8_lossy(&out.stderr).replace(&dir.path().display().to_string(), "DIR")
    };
    let to_internal = site
        .replacen(
            "proxy_pass http://mas_web;",
            "proxy_pass http://127.0.0.1:8081;",
            1,
        )
        .replacen(
            "proxy_pass http://mas_web;",
            "proxy_pass http://127.0.0.1:8081$request_uri;",
            1,
        );
    assert_eq!(
        check("internal.conf", &to_internal),
        "mas-sockets: DIR/internal.conf:39: proxy_pass to 127.0.0.1:8081 reaches listener internal (tests/configs/nginx-unix.yaml:14:7: http.listeners[1]), which does not serve `discovery`, `human`, `oauth`, `graphql`, which paths of this location need (/.well-known/openid-configuration, /login, /oauth2/token, /graphql), so MAS answers 404 to them; point it at unix:/run/mas/web.sock\n\
         mas-sockets: DIR/internal.conf:60: proxy_pass to 127.0.0.1:8081 reaches listener internal (tests/configs/nginx-unix.yaml:14:7: http.listeners[1]), which does not serve `compat`, which paths of this location need (/_matrix/client/v3/login), so MAS answers 404 to them; point it at unix:/run/mas/web.sock\n"
    );
    let to_nowhere = site.replacen(
        "proxy_pass http://mas_web;",
        "proxy_pass http://unix:/run/mas/wrong.sock;",
        1,
    );
    assert_eq!(
        check("nowhere.conf", &to_nowhere),
        "mas-sockets: DIR/nowhere.conf:39: proxy_pass to unix:/run/mas/wrong.sock, which no bind of the config has (the nearest is socket /run/mas/web.sock at tests/configs/nginx-unix.yaml:13:11: http.listeners[0].binds[0]); point it at unix:/run/mas/web.sock\n"
    );
}

/// Debian's nginx.conf, as the package installs it, with the parts that
/// would touch the host (pid file, logs, the default site on port 80) moved
/// into `dir`, and `extra` added at its end.
fn debian_nginx_conf(dir: &NginxDir, extra: &str) -> std::path::PathBuf {
    let stock =
        fs::read_to_string("/etc/nginx/nginx.conf").expect("Debian's /etc/nginx/nginx.conf");
    // What the instructions rely on: the package's nginx.conf loads the
    // modules of modules-enabled/ and has no stream block of its own.
    assert!(
        stock.contains("include /etc/nginx/modules-enabled/*.conf;"),
        "{stock}"
    );
    assert!(
        !stock.lines().any(|l| l.trim_start().starts_with("stream")),
        "{stock}"
    );
    let p = dir.path().display();
    let conf: String = stock
        .lines()
        .filter(|l| {
            !l.contains("include /etc/nginx/sites-enabled/")
                && !l.contains("include /etc/nginx/conf.d/")
        })
        .map(|l| match l.split_whitespace().next() {
            Some("pid") => format!("pid {p}/nginx.pid;\n"),
            Some("error_log") => format!("error_log {p}/error.log;\n"),
            Some("access_log") => format!("access_log {p}/access.log;\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    dir.dir.write("nginx.conf", &format!("{conf}{extra}\n"))
}

/// A listener that expects the PROXY protocol gets a stream configuration,
/// and what it says to do with it works on Debian's nginx as installed:
/// libnginx-mod-stream loads the module through modules-enabled/, and the
/// `stream { include ...; }` line that the file's comment and the command's
/// `next:` give, added at the end of nginx.conf, makes `nginx -t` pass.
#[test]
fn stream_configuration_says_how_debian_nginx_includes_it() {
    let out_dir = TempDir::new("stream-out");
    let mut cmd = Command::new(mas_sockets());
    cmd.current_dir(repo())
        .args([
            "generate-nginx",
            "--config",
            "tests/configs/nginx-proxy.yaml",
        ])
        .args(["--server-name", "auth.example.com", "--listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--output-dir")
        .arg(out_dir.path());
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", explain(&cmd, &out));
    let written = out_dir.path().join("mas-stream.conf");
    let text = fs::read_to_string(&written).expect("the stream configuration");
    assert!(!text.contains("streams-enabled"), "{text}");
    let comment = text
        .lines()
        .find_map(|l| l.strip_prefix("#     stream { include "))
        .unwrap_or_else(|| panic!("no `stream {{ include ...; }}` line in\n{text}"));
    assert_eq!(comment, "/etc/nginx/mas-stream.conf; }", "{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let next = format!("stream {{ include {}; }}", written.display());
    assert!(
        stdout.contains(&format!("next: add `{next}` at the end of nginx.conf")),
        "{}",
        explain(&cmd, &out)
    );
    // The comment's line, with the file where this test put it, and the
    // command's line as it is.
    let dir = NginxDir::new("debian-stream");
    // modules-enabled/ loads `modules/ngx_stream_module.so`, relative to
    // the prefix: Debian's is /usr/share/nginx, whose modules/ is
    // /usr/lib/nginx/modules; here the prefix is the test's directory.
    std::os::unix::fs::symlink("/usr/lib/nginx/modules", dir.path().join("modules"))
        .expect("a modules link in the prefix");
    let site = dir.dir.write("mas-stream.conf", &text);
    let from_comment = format!("stream {{ include {}; }}", site.display());
    for extra in [&from_comment, &next] {
        let conf = debian_nginx_conf(&dir, extra);
        dir.test(&conf, None);
    }
}

/// The commands of the README's code blocks, continuation lines joined,
/// without a `$ ` prompt.
fn readme_commands() -> Vec<String> {
    let readme = fs::read_to_string(repo().join("README.md")).expect("README.md");
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in readme.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        let line = line.strip_prefix("$ ").unwrap_or(line).trim();
        match line.strip_suffix('\\') {
            Some(part) => pending.push_str(part),
            None => {
                pending.push_str(line);
                commands.push(std::mem::take(&mut pending));
            }
        }
    }
    commands
}

/// `examples/reverse-proxy.yaml` has no `assets` resource: the README
/// shows the generate-nginx command that works on it, with `--assets-dir`,
/// and without it the command refuses, naming the option.
#[test]
fn readme_shows_the_generate_nginx_command_for_the_example() {
    let command = readme_commands()
        .into_iter()
        .find(|c| c.starts_with("mas-sockets generate-nginx --config examples/reverse-proxy.yaml"))
        .expect("the README shows generate-nginx for examples/reverse-proxy.yaml");
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    assert!(args.contains(&"--assets-dir"), "{command}");
    let mut cmd = Command::new(mas_sockets());
    cmd.current_dir(repo()).args(&args);
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", explain(&cmd, &out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("### mas.conf\n"),
        "{}",
        explain(&cmd, &out)
    );
    let i = args.iter().position(|a| *a == "--assets-dir").unwrap();
    let without: Vec<&str> = args[..i].iter().chain(&args[i + 2..]).copied().collect();
    let mut cmd = Command::new(mas_sockets());
    cmd.current_dir(repo()).args(&without);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&cmd, &out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("or give --assets-dir so that nginx serves the assets"),
        "{}",
        explain(&cmd, &out)
    );
}

/// Refusals through the command line: one line, exit 2, the fix named.
#[test]
fn generate_nginx_refuses_with_one_line_and_exit_2() {
    let dir = TempDir::new("nginx-refuse");
    let fd_only = dir.write(
        "fd.yaml",
        "http:\n  public_base: https://auth.example.com/\n  listeners:\n    - name: web\n      resources: [{name: discovery}, {name: human}, {name: oauth}, {name: graphql}, {name: assets}]\n      binds: [{fd: 0}]\n",
    );
    let unix = repo().join("tests/configs/nginx-unix.yaml");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--config".into(), fd_only.display().to_string()],
            "listener web has only `fd:` binds, and an fd names no address nginx could connect to",
        ),
        (
            vec!["--config".into(), unix.display().to_string(), "--socket-group".into(), "nogroup".into(), "--assets-dir".into(), "/srv/assets".into()],
            "the Unix socket /run/mas/web.sock is owned by group `nogroup` with mode 0660, and nginx's user `www-data` is not allowed to connect, so nginx would answer 502 (permission denied); give the sockets a group of nginx's (generate-units --socket-group www-data",
        ),
        (
            vec!["--config".into(), unix.display().to_string(), "--socket-group".into(), "www-data".into()],
            "no listener serves all of `discovery`, `human`, `oauth`, `graphql`, `assets`",
        ),
        (
            vec!["--config".into(), unix.display().to_string(), "--socket-group".into(), "www-data".into(), "--assets-dir".into(), "/".into()],
            "--assets-dir `/` is the root of the file system, every file of which nginx would serve",
        ),
        // The socket group is looked up where generate-nginx runs (README:
        // "Unix socket permissions").
        (
            vec!["--config".into(), unix.display().to_string(), "--socket-group".into(), "no-such-group".into(), "--assets-dir".into(), "/srv/assets".into()],
            "mas-sockets: cannot check that nginx (user `www-data`) may connect to /run/mas/web.sock: there is no group `no-such-group` on this machine; run generate-nginx on the host that runs nginx, or fix --nginx-user / --socket-group\n",
        ),
        // Never `usermod -aG root www-data`.
        (
            vec!["--config".into(), unix.display().to_string(), "--socket-group".into(), "root".into(), "--assets-dir".into(), "/srv/assets".into()],
            "; give MAS's sockets a group that `www-data` is in instead (generate-units --socket-group www-data, and the same --socket-group here), and do not add `www-data` to group `root`: gid 0 is root's group\n",
        ),
        // nginx -t would fail with "a duplicate listen".
        (
            vec!["--config".into(), unix.display().to_string(), "--socket-group".into(), "www-data".into(), "--assets-dir".into(), "/srv/assets".into(), "--listen".into(), "443".into(), "--listen".into(), "0.0.0.0:443".into()],
            "--listen `443` and --listen `0.0.0.0:443` are the same address to nginx (0.0.0.0:443), which refuses a server that listens on one address twice (\"a duplicate listen\"); give each address once",
        ),
    ];
    for (args, want) in cases {
        let mut cmd = Command::new(mas_sockets());
        cmd.arg("generate-nginx")
            .args(&args)
            .args(["--server-name", "auth.example.com"]);
        let out = run(&mut cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}", explain(&cmd, &out));
        assert_eq!(stderr.lines().count(), 1, "{}", explain(&cmd, &out));
        assert!(stderr.contains(want), "{}", explain(&cmd, &out));
    }
    // --matrix-server-name needs --homeserver: a usage error from the parser,
    // whose usage line shows what is required and what is not, whatever
    // else was given.
    for config in [&[][..], &["--config", "examples/default.yaml"][..]] {
        let mut cmd = Command::new(mas_sockets());
        cmd.current_dir(repo())
            .arg("generate-nginx")
            .args(config)
            .args([
                "--server-name",
                "a.example",
                "--matrix-server-name",
                "m.example",
            ]);
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(2), "{}", explain(&cmd, &out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("error: the following required arguments were not provided:\n  --homeserver <URL>\n\nUsage: mas-sockets generate-nginx --server-name <NAME> [--config <PATH>]... [--matrix-server-name <NAME> --homeserver <URL>] [OPTIONS]\n"),
            "{}",
            explain(&cmd, &out)
        );
    }
}

/// With TLS the site redirects plain HTTP on port 80 (see the golden
/// files); `--no-redirect` leaves that out, and without TLS it is a usage
/// error, since there is nothing to redirect to.
#[test]
fn no_redirect_leaves_out_the_port_80_servers() {
    let certs_dir = TempDir::new("nginx-certs");
    let certs = Certs::make(certs_dir.path(), &["auth.example.com"]);
    let args = ["--assets-dir", "/usr/share/mas/assets", "--tls"];
    let (with, _) = generate("tests/configs/nginx-unix.yaml", &args, &certs, None);
    assert!(
        with.contains("    listen [::]:80;\n    server_name auth.example.com;\n\n    return 301 https://$host$request_uri;\n"),
        "{with}"
    );
    let (without, _) = generate(
        "tests/configs/nginx-unix.yaml",
        &[&args[..], &["--no-redirect"]].concat(),
        &certs,
        None,
    );
    assert!(!without.contains("return 301"), "{without}");
    assert!(with.starts_with(&without), "{without}");
    let mut cmd = Command::new(mas_sockets());
    cmd.current_dir(repo()).args([
        "generate-nginx",
        "--config",
        "tests/configs/nginx-unix.yaml",
        "--server-name",
        "auth.example.com",
        "--no-redirect",
    ]);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&cmd, &out));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("error: the following required arguments were not provided:\n  --tls-key <PATH>\n  --tls-cert <PATH>\n"),
        "{}",
        explain(&cmd, &out)
    );
}

/// Two config files, the second adding a listener that expects the PROXY
/// protocol: the site is for the first, and stderr names the one left out,
/// with how nginx would reach it; exit status 0.
#[test]
fn generate_nginx_names_a_proxy_protocol_listener_it_leaves_out() {
    let dir = TempDir::new("nginx-left-out");
    let second = dir.write(
        "proxied.yaml",
        "http:\n  listeners:\n    - name: proxied\n      proxy_protocol: true\n      resources: [{name: human}]\n      binds: [{socket: /run/mas/proxied.sock}]\n",
    );
    let mut cmd = Command::new(mas_sockets());
    cmd.current_dir(repo())
        .args([
            "generate-nginx",
            "--config",
            "tests/configs/nginx-unix.yaml",
            "--config",
        ])
        .arg(&second)
        .args([
            "--server-name",
            "auth.example.com",
            "--socket-group",
            "www-data",
        ])
        .args(["--assets-dir", "/usr/share/mas/assets"]);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&cmd, &out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("### mas.conf\n"),
        "{}",
        explain(&cmd, &out)
    );
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&dir.path().display().to_string(), "DIR");
    // After the warning of https without --tls-cert.
    assert_eq!(
        stderr.lines().nth(1).unwrap_or_default(),
        "mas-sockets: warning: DIR/proxied.yaml:4:23: http.listeners[2].proxy_protocol: listener proxied expects the PROXY protocol and gets no nginx configuration: generate-nginx writes it only for the auth host's listener, web; for nginx in front of proxied too, write a stream server by hand (`server { listen PORT; proxy_pass unix:/run/mas/proxied.sock; proxy_protocol on; }` in a `stream { }` block of nginx.conf; Debian: apt-get install libnginx-mod-stream) and check it with mas-sockets check --nginx",
        "{}",
        explain(&cmd, &out)
    );
}

/// Whether process `pid`, a child of this test process, has exited; reaps it.
fn has_exited(pid: u32) -> bool {
    let mut status = 0;
    // SAFETY: waitpid(2) on a child of ours, without blocking.
    let reaped = unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) };
    reaped == pid as i32
}

/// A test that cannot stop its nginx (its process killed, say by a CI
/// timeout) leaves none running: the kernel sends the master SIGTERM when
/// the thread that started it ends, and the master stops its workers.
#[test]
fn nginx_stops_when_the_thread_that_started_it_ends() {
    let dir = NginxDir::new("orphan");
    let port = free_port();
    let site = dir.dir.write(
        "site.conf",
        &format!("server {{\n    listen 127.0.0.1:{port};\n    return 204;\n}}\n"),
    );
    let conf = dir.main_conf(&[&site], &[]);
    let (master, workers) = std::thread::scope(|s| {
        s.spawn(|| {
            let nginx = Nginx::start(&dir, &conf, None, &[port]);
            let pids = (nginx.master_pid(), nginx.workers());
            // As if the test process were killed: nothing stops it.
            std::mem::forget(nginx);
            pids
        })
        .join()
        .expect("the starting thread")
    });
    wait_until("nginx's master to exit", Duration::from_secs(20), || {
        has_exited(master)
    });
    for worker in workers {
        wait_until("nginx's workers to exit", Duration::from_secs(20), || {
            fs::metadata(format!("/proc/{worker}")).is_err()
        });
    }
}

/// The same for the homeserver stand-in.
#[test]
fn homeserver_stops_when_the_thread_that_started_it_ends() {
    let pid = std::thread::spawn(|| {
        let hs = Homeserver::start();
        let pid = hs.pid();
        std::mem::forget(hs);
        pid
    })
    .join()
    .expect("the starting thread");
    wait_until(
        "the homeserver stand-in to exit",
        Duration::from_secs(20),
        || has_exited(pid),
    );
}

/// A value with a newline (a socket path, a word of the site) cannot break
/// a message into two lines: it is shown escaped.
#[test]
fn messages_stay_one_line_whatever_the_inputs_hold() {
    let dir = TempDir::new("nginx-one-line");
    let config = dir.write(
        "mas.yaml",
        "http:\n  public_base: https://auth.example.com/\n  listeners:\n    - name: web\n      resources: [{name: discovery}, {name: human}, {name: oauth}, {name: graphql}, {name: assets}]\n      binds: [{socket: \"/run/mas/a\\nb.sock\"}]\n",
    );
    let mut cmd = Command::new(mas_sockets());
    cmd.arg("generate-nginx")
        .arg("--config")
        .arg(&config)
        .args([
            "--server-name",
            "auth.example.com",
            "--socket-group",
            "nogroup",
        ]);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&cmd, &out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let refusal: Vec<&str> = stderr.lines().filter(|l| !l.contains("warning:")).collect();
    assert_eq!(refusal.len(), 1, "{}", explain(&cmd, &out));
    assert!(
        refusal[0].contains("/run/mas/a\\nb.sock"),
        "{}",
        explain(&cmd, &out)
    );

    for (site, want) in [
        (
            "server {\n  server_name auth.example.com;\n  location / {\n    proxy_pass \"http://unix:/run/x\ny.sock\";\n  }\n}\n",
            "proxy_pass to unix:/run/x\\ny.sock, which no bind",
        ),
        ("server {\n  return \"a\nb\"\n}\n", "after `return`"),
    ] {
        let site = dir.write("site.conf", site);
        let mut cmd = Command::new(mas_sockets());
        cmd.arg("check")
            .arg("--config")
            .arg(&config)
            .arg("--nginx")
            .arg(&site);
        let out = run(&mut cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{}", explain(&cmd, &out));
        assert!(stderr.contains(want), "{}", explain(&cmd, &out));
    }
}
