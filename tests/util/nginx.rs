//! A real nginx for the tests: Debian's binary, as a master process whose
//! workers run as `www-data`, with its own prefix, config, pid file, logs and
//! temp paths in a temp dir, on ports picked at run time; plus the TLS
//! certificates it serves (made with openssl) and a client for them (curl).
//!
//! [`Nginx::start`] runs the master in the foreground (`daemon off`) as a
//! child of the test, optionally inside the mount namespace of a booted
//! systemd so that it sees that instance's /run (its Unix sockets). Dropping
//! the [`Nginx`] stops it (SIGTERM, then SIGKILL of the master and its
//! workers), so nothing is left running, also when a test panics; and the
//! master gets SIGTERM from the kernel when the thread that started it ends,
//! so a killed test process leaves none running either.
//!
//! The packaged nginx service is never used: scripts/setup installs nginx
//! without starting it, and nothing here touches port 80 or /etc/nginx.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{explain, run, run_ok, TempDir};

/// Debian's nginx.
pub const NGINX: &str = "/usr/sbin/nginx";

/// Debian's stream module, a dynamic module (libnginx-mod-stream).
const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// nginx's own files for one test: prefix, main config, logs, temp paths.
pub struct NginxDir {
    pub dir: TempDir,
}

impl NginxDir {
    pub fn new(label: &str) -> NginxDir {
        assert!(
            Path::new(NGINX).exists(),
            "{NGINX} is missing; scripts/setup installs nginx and libnginx-mod-stream"
        );
        NginxDir {
            dir: TempDir::new(&format!("nginx-{label}")),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the main config that includes `http_sites` in `http { }` and
    /// `stream_sites` in `stream { }`; returns its path.
    pub fn main_conf(&self, http_sites: &[&Path], stream_sites: &[&Path]) -> PathBuf {
        let p = self.dir.path().display().to_string();
        let mut conf = String::new();
        if !stream_sites.is_empty() {
            conf.push_str(&format!("load_module {STREAM_MODULE};\n"));
        }
        conf.push_str(&format!(
            "user www-data;\nworker_processes 2;\npid {p}/nginx.pid;\nerror_log {p}/error.log info;\nevents {{\n    worker_connections 1024;\n}}\n"
        ));
        conf.push_str(&format!(
            "http {{\n    include /etc/nginx/mime.types;\n    access_log {p}/access.log;\n    client_body_temp_path {p}/tmp/body;\n    proxy_temp_path {p}/tmp/proxy;\n    fastcgi_temp_path {p}/tmp/fastcgi;\n    uwsgi_temp_path {p}/tmp/uwsgi;\n    scgi_temp_path {p}/tmp/scgi;\n"
        ));
        for site in http_sites {
            conf.push_str(&format!("    include {};\n", site.display()));
        }
        conf.push_str("}\n");
        if !stream_sites.is_empty() {
            conf.push_str("stream {\n");
            for site in stream_sites {
                conf.push_str(&format!("    include {};\n", site.display()));
            }
            conf.push_str("}\n");
        }
        fs::create_dir_all(self.dir.join("tmp")).unwrap();
        self.dir.write("nginx.conf", &conf)
    }

    fn command(&self, conf: &Path, mount_ns_of: Option<u32>) -> Command {
        // SIGTERM to the master (which stops its workers) when the thread
        // that runs the test ends, also when the test process is killed and
        // no Drop runs. setpriv and nsenter exec, so the setting reaches nginx.
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "TERM", "--"]);
        if let Some(pid) = mount_ns_of {
            cmd.args(["nsenter", "-t", &pid.to_string(), "-m", "--"]);
        }
        cmd.arg(NGINX);
        cmd.arg("-p")
            .arg(self.dir.path())
            .arg("-c")
            .arg(conf)
            .arg("-e")
            .arg(self.dir.join("error.log"));
        cmd
    }

    /// `nginx -t` on `conf`; returns its output, which must say the test is
    /// successful.
    #[track_caller]
    pub fn test(&self, conf: &Path, mount_ns_of: Option<u32>) -> String {
        let mut cmd = self.command(conf, mount_ns_of);
        cmd.arg("-t");
        let out = run(&mut cmd);
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success() && text.contains("test is successful"),
            "nginx -t failed\n{}\n--- config\n{}",
            explain(&cmd, &out),
            fs::read_to_string(conf).unwrap_or_default()
        );
        text
    }

    /// The error log so far.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

/// A running nginx master; stopped on drop.
pub struct Nginx {
    child: Child,
    error_log: PathBuf,
}

impl Nginx {
    /// Starts nginx on `conf` and waits until each of `ports` on 127.0.0.1
    /// accepts connections and every worker runs.
    #[track_caller]
    pub fn start(dir: &NginxDir, conf: &Path, mount_ns_of: Option<u32>, ports: &[u16]) -> Nginx {
        let mut cmd = dir.command(conf, mount_ns_of);
        cmd.args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let mut nginx = Nginx {
            child,
            error_log: dir.dir.join("error.log"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in ports {
            let addr = SocketAddr::from(([127, 0, 0, 1], *port));
            while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
                if let Ok(Some(status)) = nginx.child.try_wait() {
                    panic!(
                        "nginx exited with {status} before listening on {addr}:\n{}",
                        nginx.error_log()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "nginx does not listen on {addr}:\n{}",
                    nginx.error_log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        while nginx.workers().len() < 2 {
            assert!(
                Instant::now() < deadline,
                "nginx started no workers:\n{}",
                nginx.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    pub fn master_pid(&self) -> u32 {
        self.child.id()
    }

    /// The worker processes (the master's children).
    pub fn workers(&self) -> Vec<u32> {
        let pid = self.child.id();
        fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    pub fn error_log(&self) -> String {
        fs::read_to_string(&self.error_log).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let workers = self.workers();
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) on our own unreaped child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        for worker in workers {
            if fs::metadata(format!("/proc/{worker}")).is_ok() {
                // SAFETY: kill(2); the pid was a worker of our nginx a moment ago.
                unsafe { libc::kill(worker as i32, libc::SIGKILL) };
            }
        }
    }
}

/// A test CA and a server certificate it signed for `names`.
pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Certs {
    /// Makes them in `dir` with openssl (P-256 keys, valid for two days).
    pub fn make(dir: &Path, names: &[&str]) -> Certs {
        let p = |name: &str| dir.join(name);
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run_ok(
            Command::new("openssl")
                .args(["req", "-x509"])
                .args(ec)
                .arg("-keyout")
                .arg(p("ca.key"))
                .arg("-out")
                .arg(p("ca.pem"))
                .args(["-days", "2", "-subj", "/CN=mas-sockets test CA"]),
        );
        run_ok(
            Command::new("openssl")
                .arg("req")
                .args(ec)
                .arg("-keyout")
                .arg(p("server.key"))
                .arg("-out")
                .arg(p("server.csr"))
                .args(["-subj", &format!("/CN={}", names[0])]),
        );
        let sans: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
        fs::write(
            p("ext.cnf"),
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
                sans.join(",")
            ),
        )
        .unwrap();
        run_ok(
            Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-in"])
                .arg(p("server.csr"))
                .arg("-CA")
                .arg(p("ca.pem"))
                .arg("-CAkey")
                .arg(p("ca.key"))
                .arg("-CAcreateserial")
                .arg("-out")
                .arg(p("server.pem"))
                .arg("-extfile")
                .arg(p("ext.cnf")),
        );
        Certs {
            ca: p("ca.pem"),
            cert: p("server.pem"),
            key: p("server.key"),
        }
    }
}

/// A response as curl saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How a test reaches nginx: over TLS for `host` at 127.0.0.1:`port`, from
/// the client address `from` (a loopback address other than nginx's own).
pub struct Client<'a> {
    pub ca: Option<&'a Path>,
    pub port: u16,
    pub from: &'a str,
    pub scratch: &'a Path,
}

impl Client<'_> {
    /// `GET path` on `host` with extra request headers; panics when curl
    /// cannot get a response at all.
    #[track_caller]
    pub fn get(&self, host: &str, path: &str, headers: &[&str]) -> Reply {
        let body = self.scratch.join("curl.body");
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "20", "-D", "-", "-o"])
            .arg(&body)
            .args(["--interface", self.from])
            .args(["--resolve", &format!("{host}:{}:127.0.0.1", self.port)]);
        if let Some(ca) = self.ca {
            cmd.arg("--cacert").arg(ca);
        }
        for h in headers {
            cmd.args(["-H", h]);
        }
        cmd.arg(format!("{scheme}://{host}:{}{path}", self.port));
        let out: Output = run(&mut cmd);
        assert!(out.status.success(), "curl failed\n{}", explain(&cmd, &out));
        let head = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {head:?}"));
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Reply {
            status,
            headers,
            body: fs::read(&body).unwrap_or_default(),
        }
    }
}
