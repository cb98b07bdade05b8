//! The reference deployment for real: the generated units in a real systemd,
//! supervise running the MAS stand-in, a real nginx (master as root, workers
//! as www-data) on the generated site with TLS from a test certificate, the
//! homeserver stand-in behind the Matrix host.
//!
//! nginx runs in the systemd instance's mount namespace, so it sees the Unix
//! sockets the socket units made in the instance's /run; the network is the
//! host's, so every port is picked at run time. Clients connect from
//! 127.0.0.2, so that their address differs from nginx's own 127.0.0.1.

use std::fs;
use std::process::Command;
use std::time::Duration;

use crate::util::deploy::{boot, install_units_with, stage, STAGE};
use crate::util::load::{Load, LoadSpec, Target};
use crate::util::nginx::{Certs, Client, Nginx, NginxDir};
use crate::util::systemd::Systemd;
use crate::util::{explain, free_port, get_tcp, mas_sockets, run, wait_until, Homeserver, TempDir};

const AUTH: &str = "auth.mas.test";
const MATRIX: &str = "matrix.mas.test";
const CLIENT_ADDR: &str = "127.0.0.2";

/// The listener nginx proxies to, with `binds` and `extra` keys.
fn config(binds: &str, extra: &str) -> String {
    format!(
        "http:\n  public_base: https://{AUTH}/\n  listeners:\n    - name: web\n      resources: [{{name: discovery}}, {{name: human}}, {{name: oauth}}, {{name: compat}}, {{name: graphql}}]\n      binds: {binds}\n{extra}standin:\n  startup_delay_ms: 500\n"
    )
}

/// A booted systemd running the units for `config`, plus nginx's files.
struct Deployment {
    sd: Systemd,
    dir: TempDir,
    certs: Certs,
    assets: std::path::PathBuf,
}

fn deploy(label: &str, config: &str, units: &[&str]) -> Deployment {
    let sd = boot(label);
    stage(&sd, config);
    install_units_with(&sd, units);
    sd.exec_ok(&["systemctl", "start", "mas.service"]);
    let dir = TempDir::new(label);
    let certs = Certs::make(dir.path(), &[AUTH, MATRIX]);
    let assets = dir.join("assets");
    fs::create_dir_all(&assets).unwrap();
    let js = "console.log('mas assets');\n".repeat(50);
    fs::write(assets.join("app.js"), &js).unwrap();
    let status = Command::new("gzip")
        .args(["-k", "-9"])
        .arg(assets.join("app.js"))
        .status()
        .expect("gzip");
    assert!(status.success());
    Deployment {
        sd,
        dir,
        certs,
        assets,
    }
}

impl Deployment {
    /// generate-nginx for the staged config; returns (file name, text).
    fn generate(&self, args: &[&str]) -> (String, String) {
        self.generate_for(AUTH, args)
    }

    /// generate-nginx with `--server-name server_name`.
    fn generate_for(&self, server_name: &str, args: &[&str]) -> (String, String) {
        let mut cmd = Command::new(mas_sockets());
        cmd.arg("generate-nginx")
            .arg("--config")
            .arg(self.sd.host_path(&format!("{STAGE}/config.yaml")))
            .args(["--server-name", server_name])
            .args(args);
        let out = run(&mut cmd);
        assert!(out.status.success(), "{}", explain(&cmd, &out));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (head, body) = text.split_once('\n').expect("a ### line");
        (head.trim_start_matches("### ").to_owned(), body.to_owned())
    }

    /// Writes the site, runs `nginx -t` on it and starts nginx.
    fn nginx(&self, name: &str, body: &str, port: u16) -> (NginxDir, Nginx) {
        let ngx = NginxDir::new("e2e");
        let site = ngx.dir.write(name, body);
        let conf = if name.ends_with("-stream.conf") {
            ngx.main_conf(&[], &[&site])
        } else {
            ngx.main_conf(&[&site], &[])
        };
        let said = ngx.test(&conf, Some(self.sd.pid()));
        eprintln!("nginx -t: {said}");
        let nginx = Nginx::start(&ngx, &conf, Some(self.sd.pid()), &[port]);
        (ngx, nginx)
    }

    fn tls_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.certs.cert.display().to_string(),
            "--tls-key".into(),
            self.certs.key.display().to_string(),
        ]
    }

    fn client(&self, port: u16) -> Client<'_> {
        Client {
            ca: Some(&self.certs.ca),
            port,
            from: CLIENT_ADDR,
            scratch: self.dir.path(),
        }
    }

    /// The pids of the supervisor's children: the supervised stand-in(s).
    fn supervised(&self) -> Vec<String> {
        let main = self.sd.unit_property("mas.service", "MainPID");
        self.sd
            .exec_ok(&["cat", &format!("/proc/{main}/task/{main}/children")])
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    /// The pid of the stand-in that answers through nginx, checked to be
    /// the supervisor's child.
    fn mas_pid(&self, client: &Client) -> String {
        let r = client.get(AUTH, "/login", &[]);
        let pid = r
            .header("x-standin-pid")
            .unwrap_or_else(|| panic!("{r:?}"))
            .to_owned();
        let children = self.supervised();
        assert!(
            children.contains(&pid),
            "pid {pid} is not supervised: {children:?}"
        );
        pid
    }
}

/// The paths of each resource the auth host needs, as the stand-in names them.
const AUTH_PATHS: &[(&str, &str)] = &[
    ("/.well-known/openid-configuration", "discovery"),
    ("/login", "human"),
    ("/account/", "human"),
    ("/oauth2/token", "oauth"),
    ("/graphql", "graphql"),
    ("/_matrix/client/v3/login", "compat"),
];

#[track_caller]
fn assert_reaches_mas(client: &Client, host: &str, path: &str, resource: &str, pid: &str) {
    let r = client.get(host, path, &[]);
    assert_eq!(
        (
            r.status,
            r.header("x-standin-name"),
            r.header("x-standin-resource")
        ),
        (200, Some("mas"), Some(resource)),
        "{host}{path}: {r:?}"
    );
    assert_eq!(r.header("x-standin-pid"), Some(pid), "{host}{path}");
}

/// Over the Unix socket, with TLS: each resource path reaches the supervised
/// stand-in, /assets/ comes from nginx pre-compressed, the Matrix host splits
/// MAS's compat endpoints from the homeserver's paths, the client's address
/// reaches MAS (and a client cannot choose it), and nginx's workers run as
/// www-data, which the socket's group lets in.
#[test]
fn unix_socket_site_with_tls_routes_every_path() {
    let d = deploy(
        "nginx-unix",
        &config("[{socket: /run/mas-e2e-sock/web.sock}]", ""),
        &["--socket-group", "www-data"],
    );
    let hs = Homeserver::start();
    let port = free_port();
    let mut args = d.tls_args();
    args.extend([
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--socket-group".into(),
        "www-data".into(),
        "--assets-dir".into(),
        d.assets.display().to_string(),
        "--matrix-server-name".into(),
        MATRIX.into(),
        "--homeserver".into(),
        format!("http://127.0.0.1:{}", hs.port),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (name, site) = d.generate(&args);
    assert!(
        site.contains("server unix:/run/mas-e2e-sock/web.sock max_fails=0;"),
        "{site}"
    );
    let (ngx, nginx) = d.nginx(&name, &site, port);

    // A worker is root for a moment after the master forks it, until it
    // switches to nginx.conf's `user`: wait for that, then it must be 33.
    let uids = || -> Vec<(u32, String)> {
        nginx
            .workers()
            .into_iter()
            .map(|worker| {
                let status =
                    fs::read_to_string(format!("/proc/{worker}/status")).unwrap_or_default();
                let uid = status
                    .lines()
                    .find(|l| l.starts_with("Uid:"))
                    .unwrap_or("Uid: gone");
                (
                    worker,
                    uid.split_whitespace().nth(1).unwrap_or("?").to_owned(),
                )
            })
            .collect()
    };
    let switched = |uids: &[(u32, String)]| !uids.is_empty() && uids.iter().all(|(_, u)| u != "0");
    wait_until(
        "nginx's workers to leave root",
        Duration::from_secs(20),
        || switched(&uids()),
    );
    let uids = uids();
    assert!(
        uids.iter().all(|(_, uid)| uid == "33"),
        "workers and their uids: {uids:?}"
    );
    let client = d.client(port);
    let pid = d.mas_pid(&client);
    for (path, resource) in AUTH_PATHS {
        assert_reaches_mas(&client, AUTH, path, resource, &pid);
    }

    // The assets: nginx's own answer, the .gz file when the client takes gzip.
    let gz = fs::read(d.assets.join("app.js.gz")).unwrap();
    let plain = fs::read(d.assets.join("app.js")).unwrap();
    let r = client.get(AUTH, "/assets/app.js", &["Accept-Encoding: gzip"]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-encoding"), Some("gzip"), "{r:?}");
    assert_eq!(r.body, gz, "the pre-compressed file itself");
    assert!(
        r.header("x-standin-pid").is_none(),
        "MAS must not answer /assets/"
    );
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let r = client.get(AUTH, "/assets/app.js", &[]);
    assert_eq!((r.status, r.body == plain), (200, true), "{r:?}");
    assert_eq!(client.get(AUTH, "/assets/missing.js", &[]).status, 404);

    // The Matrix host.
    for path in [
        "/_matrix/client/v3/login",
        "/_matrix/client/r0/logout",
        "/_matrix/client/v3/logout/all",
        "/_matrix/client/v3/refresh",
    ] {
        assert_reaches_mas(&client, MATRIX, path, "compat", &pid);
    }
    for path in [
        "/_matrix/client/v3/sync",
        "/_matrix/client/v3/login_token",
        "/_matrix/federation/v1/version",
        "/_synapse/client/pick_idp",
    ] {
        let r = client.get(MATRIX, path, &[]);
        assert_eq!(
            (r.status, r.header("x-standin-name")),
            (200, Some("homeserver")),
            "{MATRIX}{path}: {r:?}"
        );
    }
    assert_eq!(client.get(MATRIX, "/login", &[]).status, 404);

    // MAS sees the client's address (X-Forwarded-For over a socket without
    // a peer address); one the client sends itself is overwritten.
    let r = client.get(AUTH, "/login", &["X-Forwarded-For: 198.51.100.66"]);
    assert_eq!(r.header("x-standin-client"), Some(CLIENT_ADDR), "{r:?}");
    assert_eq!(r.header("x-standin-peer"), Some("unix"), "{r:?}");
    drop(nginx);
    assert!(!ngx.error_log().contains("[crit]"), "{}", ngx.error_log());
    d.sd.stop().unwrap();
}

/// Over TCP: each resource path reaches the stand-in, and MAS believes
/// nginx's X-Forwarded-For because it trusts nginx's 127.0.0.1 (only that:
/// MAS's default loopback range would also hold the test client's 127.0.0.2).
#[test]
fn tcp_site_with_tls_routes_every_path() {
    let mas_port = free_port();
    let d = deploy(
        "nginx-tcp",
        &config(
            &format!("[{{host: 127.0.0.1, port: {mas_port}}}]"),
            "  trusted_proxies: [127.0.0.1/32]\n",
        ),
        &[],
    );
    let port = free_port();
    let mut args = d.tls_args();
    args.extend(["--listen".into(), format!("127.0.0.1:{port}")]);
    args.extend(["--assets-dir".into(), d.assets.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (name, site) = d.generate(&args);
    assert!(
        site.contains(&format!("server 127.0.0.1:{mas_port} max_fails=0 backup;")),
        "{site}"
    );
    let (_ngx, _nginx) = d.nginx(&name, &site, port);
    let client = d.client(port);
    let pid = d.mas_pid(&client);
    for (path, resource) in AUTH_PATHS {
        assert_reaches_mas(&client, AUTH, path, resource, &pid);
    }
    let r = client.get(AUTH, "/login", &[]);
    assert_eq!(r.header("x-standin-client"), Some(CLIENT_ADDR), "{r:?}");
    assert!(
        r.header("x-standin-peer")
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{r:?}"
    );
    d.sd.stop().unwrap();
}

/// MAS under `/auth` on the Matrix host's own name (`--matrix-server-name`
/// equal to `--server-name`): one server, where MAS answers its prefix and
/// the compat endpoints, and the homeserver the rest of `/_matrix/`.
#[test]
fn auth_under_a_prefix_shares_the_matrix_host() {
    let mas_port = free_port();
    let d = deploy(
        "nginx-shared",
        &format!(
            "http:\n  public_base: https://{MATRIX}/auth/\n  trusted_proxies: [127.0.0.1/32]\n  listeners:\n    - name: web\n      prefix: /auth\n      resources: [{{name: discovery}}, {{name: human}}, {{name: oauth}}, {{name: compat}}, {{name: graphql}}, {{name: assets}}]\n      binds: [{{host: 127.0.0.1, port: {mas_port}}}]\nstandin:\n  startup_delay_ms: 500\n"
        ),
        &[],
    );
    let hs = Homeserver::start();
    let port = free_port();
    let mut args = d.tls_args();
    args.extend([
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--matrix-server-name".into(),
        MATRIX.into(),
        "--homeserver".into(),
        format!("http://127.0.0.1:{}", hs.port),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (name, site) = d.generate_for(MATRIX, &args);
    let (_ngx, _nginx) = d.nginx(&name, &site, port);
    let client = d.client(port);
    let r = client.get(MATRIX, "/auth/login", &[]);
    let pid = r
        .header("x-standin-pid")
        .unwrap_or_else(|| panic!("{r:?}"))
        .to_owned();
    assert!(d.supervised().contains(&pid), "{pid} is not supervised");
    for (path, resource) in AUTH_PATHS {
        let path = if path.starts_with("/_matrix/") {
            (*path).to_owned()
        } else {
            format!("/auth{path}")
        };
        assert_reaches_mas(&client, MATRIX, &path, resource, &pid);
    }
    assert_reaches_mas(&client, MATRIX, "/auth/assets/app.js", "assets", &pid);
    for path in ["/_matrix/client/v3/sync", "/_synapse/client/pick_idp"] {
        let r = client.get(MATRIX, path, &[]);
        assert_eq!(
            (r.status, r.header("x-standin-name")),
            (200, Some("homeserver")),
            "{MATRIX}{path}: {r:?}"
        );
    }
    // Outside both, nothing: not MAS's unprefixed pages, not the homeserver.
    let r = client.get(MATRIX, "/login", &[]);
    assert_eq!((r.status, r.header("x-standin-name")), (404, None), "{r:?}");
    d.sd.stop().unwrap();
}

/// A listener with `proxy_protocol: true`: generate-nginx writes a stream
/// server with `proxy_protocol on`, and the stand-in learns the client's
/// real address from the PROXY header, not nginx's.
#[test]
fn proxy_protocol_listener_sees_the_real_client_address() {
    let mas_port = free_port();
    let d = deploy(
        "nginx-proxy",
        &config(
            &format!("[{{host: 127.0.0.1, port: {mas_port}}}]"),
            "      proxy_protocol: true\n",
        )
        .replace("{name: graphql}]", "{name: graphql}, {name: assets}]"),
        &[],
    );
    let port = free_port();
    let mut args = d.tls_args();
    args.extend(["--listen".into(), format!("127.0.0.1:{port}")]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (name, site) = d.generate(&args);
    assert_eq!(name, "mas-stream.conf");
    assert!(site.contains("    proxy_protocol on;\n"), "{site}");
    let (_ngx, _nginx) = d.nginx(&name, &site, port);
    let client = d.client(port);
    let pid = d.mas_pid(&client);
    for (path, resource) in AUTH_PATHS {
        assert_reaches_mas(&client, AUTH, path, resource, &pid);
    }
    let r = client.get(AUTH, "/login", &["X-Forwarded-For: 198.51.100.66"]);
    assert_eq!(r.header("x-standin-client"), Some(CLIENT_ADDR), "{r:?}");
    let proxy = r.header("x-standin-proxy").unwrap_or_default();
    assert!(
        proxy.starts_with("127.0.0.2:"),
        "the PROXY header's source: {r:?}"
    );
    d.sd.stop().unwrap();
}

/// Under load through nginx, 10 `systemctl reload`s leave zero failed
/// requests: no 502, no reset, no timeout. The load's requests are GETs, and
/// each one that a reload's old MAS closed unanswered on the Unix socket is
/// sent again by nginx, to the socket the generated upstream lists twice.
#[test]
fn ten_reloads_under_load_through_nginx_lose_no_request() {
    // Each connection waits 20 ms before the stand-in reads it, so that in
    // every reload some connections the old MAS accepted meet its shutdown
    // unread: the gap of MAS on a Unix socket, met every time.
    let d = deploy(
        "nginx-load",
        &format!(
            "{}  first_read_delay_ms: 20\n",
            config("[{socket: /run/mas-e2e-sock/web.sock}]", "")
        ),
        &["--socket-group", "www-data"],
    );
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (name, site) = d.generate(&[
        "--listen",
        &listen,
        "--socket-group",
        "www-data",
        "--assets-dir",
        &d.assets.display().to_string(),
    ]);
    let (ngx, _nginx) = d.nginx(&name, &site, port);
    let load = Load::start(LoadSpec {
        targets: vec![Target::Tcp(([127, 0, 0, 1], port).into())],
        workers: 16,
        paths: vec![
            "/.well-known/openid-configuration".into(),
            "/slow/200".into(),
            "/_matrix/client/v3/login".into(),
        ],
        keep_alive_share: 0.5,
        timeout: Duration::from_secs(20),
    });
    let addr = ([127, 0, 0, 1], port).into();
    let pid_now = || {
        get_tcp(addr, "/login")
            .expect("a request through nginx")
            .pid()
    };
    let mut pids = vec![pid_now()];
    for i in 1..=10 {
        load.mark(&format!("reload {i} begins"));
        d.sd.exec_ok(&["systemctl", "reload", "mas.service"]);
        load.mark(&format!("reload {i} returned"));
        let now = pid_now();
        assert!(!pids.contains(&now), "reload {i}: pid {now} served already");
        pids.push(now);
    }
    let report = load.stop();
    // MAS's own graceful shutdown closes, unanswered, a connection the old
    // MAS accepted on the Unix socket but had not read from (see
    // `LoadReport::failures_split_unix_unread_close`). nginx logs each such
    // close and sends the request again to the upstream's next server, the
    // same socket listed again, as it may for a GET: none may fail.
    let log = ngx.error_log();
    let closed = log
        .lines()
        .filter(|l| {
            (l.contains("upstream prematurely closed connection")
                || l.contains("(104: Connection reset by peer)")
                || l.contains("(32: Broken pipe)"))
                && l.contains("upstream: \"http://unix:")
        })
        .count();
    eprintln!(
        "{} of {} requests failed; nginx met {closed} connection(s) that MAS closed unanswered",
        report.failures().len(),
        report.samples.len()
    );
    assert!(
        report.failures().is_empty(),
        "{}\n--- nginx error log\n{log}",
        report.describe_failures(20),
    );
    assert!(
        closed > 0,
        "no reload met MAS's gap, so nginx's resending went untested\n--- nginx error log\n{log}"
    );
    assert!(report.ok() > 500, "too little load: {}", report.ok());
    assert!(report.pids().len() >= 11, "{:?}", report.pids());
    assert_eq!(d.sd.unit_property("mas.service", "ActiveState"), "active");
    d.sd.stop().unwrap();
}

/// Misconfigurations made deliberately, with the failure each one causes
/// for real: PROXY protocol on one side only (502 one way, 400 the other),
/// which `check --nginx` names on both sides; and a socket whose group
/// nginx is not in, which generate-nginx refuses and which nginx indeed
/// cannot open.
#[test]
fn misconfigurations_fail_for_real_and_are_named() {
    let (plain, proxied) = (free_port(), free_port());
    let config = format!(
        "http:\n  public_base: https://{AUTH}/\n  listeners:\n    - name: plain\n      resources: [{{name: human}}]\n      binds: [{{host: 127.0.0.1, port: {plain}}}]\n    - name: proxied\n      proxy_protocol: true\n      resources: [{{name: human}}]\n      binds: [{{host: 127.0.0.1, port: {proxied}}}]\n    - name: private\n      resources: [{{name: discovery}}, {{name: human}}, {{name: oauth}}, {{name: graphql}}, {{name: assets}}]\n      binds: [{{socket: /run/mas-e2e-sock/private.sock}}]\n"
    );
    // Without --socket-group the socket's group is the service's, nogroup.
    let d = deploy("nginx-mismatch", &config, &[]);
    let (to_proxied, to_plain, to_private) = (free_port(), free_port(), free_port());
    let http_site = format!(
        "server {{\n    listen 127.0.0.1:{to_proxied};\n    server_name {AUTH};\n    location / {{\n        proxy_pass http://127.0.0.1:{proxied};\n    }}\n}}\nserver {{\n    listen 127.0.0.1:{to_private};\n    server_name {AUTH};\n    location / {{\n        proxy_pass http://unix:/run/mas-e2e-sock/private.sock;\n    }}\n}}\n"
    );
    let stream_site = format!(
        "server {{\n    listen 127.0.0.1:{to_plain};\n    proxy_pass 127.0.0.1:{plain};\n    proxy_protocol on;\n}}\n"
    );
    let ngx = NginxDir::new("mismatch");
    let http = ngx.dir.write("hand.conf", &http_site);
    let stream = ngx.dir.write("hand-stream.conf", &stream_site);
    let conf = ngx.main_conf(&[&http], &[&stream]);
    ngx.test(&conf, Some(d.sd.pid()));
    let _nginx = Nginx::start(
        &ngx,
        &conf,
        Some(d.sd.pid()),
        &[to_proxied, to_plain, to_private],
    );
    let get = |port| {
        Client {
            ca: None,
            port,
            from: CLIENT_ADDR,
            scratch: d.dir.path(),
        }
        .get(AUTH, "/login", &[])
    };
    assert_eq!(
        get(to_proxied).status,
        502,
        "no PROXY header: MAS closes, nginx says 502"
    );
    assert_eq!(
        get(to_plain).status,
        400,
        "a PROXY header MAS does not expect: 400"
    );
    assert_eq!(get(to_private).status, 502, "a socket nginx may not open");
    assert!(
        ngx.error_log()
            .contains("private.sock failed (13: Permission denied)"),
        "{}",
        ngx.error_log()
    );

    let host_config = d.sd.host_path(&format!("{STAGE}/config.yaml"));
    let mut cmd = Command::new(mas_sockets());
    cmd.arg("check")
        .arg("--config")
        .arg(&host_config)
        .arg("--nginx")
        .arg(&http)
        .arg("--nginx")
        .arg(&stream);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&cmd, &out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let c = host_config.display();
    let (h, s) = (http.display(), stream.display());
    assert!(
        stderr.contains(&format!(
            "mas-sockets: {h}:5: PROXY protocol on MAS's side only"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "listener proxied expects one ({c}:8:23: http.listeners[1].proxy_protocol"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("mas-sockets: {s}:4: PROXY protocol on nginx's side only: `proxy_protocol on` makes nginx send a PROXY header to 127.0.0.1:{plain} ({s}:3), but listener plain does not expect one ({c}:4:7: http.listeners[0])")),
        "{stderr}"
    );

    // generate-nginx refuses the socket nginx could not open, with the fix.
    let mut cmd = Command::new(mas_sockets());
    cmd.arg("generate-nginx")
        .arg("--config")
        .arg(&host_config)
        .args(["--server-name", AUTH, "--socket-group", "nogroup"]);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&cmd, &out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the Unix socket /run/mas-e2e-sock/private.sock is owned by group `nogroup` with mode 0660, and nginx's user `www-data` is not allowed to connect"),
        "{stderr}"
    );
    d.sd.stop().unwrap();
}
