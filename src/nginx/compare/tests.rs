//! Specs of `check --nginx`: each mismatch is one line naming the site's
//! line and the config's position; a matching site gives notes only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use super::*;
use crate::config::check_texts;
use crate::config::plan::SystemResolver;
use crate::nginx::syntax::parse;

/// A resolver for specs, which need no DNS and no particular /etc/hosts:
/// each name resolves to its addresses, in order; other names do not.
struct Hosts(&'static [(&'static str, &'static [IpAddr])]);

impl Resolver for Hosts {
    fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        self.0
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(host))
            .map(|(_, ips)| ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
            .ok_or_else(|| format!("{host}: not known"))
    }
}

const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

/// `localhost` as most hosts resolve it: both loopback addresses.
const LOOPBACK: Hosts = Hosts(&[("localhost", &[V4, V6])]);

/// Every resource of MAS that the auth host and the Matrix host need.
const ALL: &str = "[{name: discovery}, {name: human}, {name: oauth}, {name: compat}, {name: graphql}, {name: assets}]";

const CONFIG: &str = "http:
  public_base: https://auth.example.com/
  listeners:
    - name: web
      resources: [{name: discovery}, {name: human}, {name: oauth}, {name: compat}, {name: graphql}, {name: assets}]
      binds:
        - socket: /run/mas/web.sock
    - name: proxied
      proxy_protocol: true
      resources: [{name: discovery}, {name: human}, {name: oauth}, {name: compat}, {name: graphql}, {name: assets}]
      binds:
        - host: 127.0.0.1
          port: 8081
";

fn report(site: &str) -> Report {
    let plan = check_texts(&[("mas.yaml", CONFIG)], &SystemResolver).expect("valid config");
    let tree = parse(site).expect("valid nginx syntax");
    compare(&plan, Path::new("site.conf"), &tree, &LOOPBACK)
}

#[test]
fn proxy_protocol_on_nginx_side_only_names_both_lines() {
    let r = report("server {\n    listen 8443;\n    proxy_pass unix:/run/mas/web.sock;\n    proxy_protocol on;\n}\n");
    assert_eq!(r.problems.len(), 1, "{r:?}");
    assert!(
        r.problems[0].starts_with("site.conf:4: PROXY protocol on nginx's side only: `proxy_protocol on` makes nginx send a PROXY header to unix:/run/mas/web.sock (site.conf:3), but listener web does not expect one (mas.yaml:4:7: http.listeners[0]), so MAS reads the header as a broken request line and answers 400"),
        "{}",
        r.problems[0]
    );
}

#[test]
fn proxy_protocol_on_mas_side_only_from_http_and_stream() {
    let http = report("upstream p {\n    server 127.0.0.1:8081;\n}\nserver {\n    server_name auth.example.com;\n    location / {\n        proxy_pass http://p;\n    }\n}\n");
    assert_eq!(http.problems.len(), 1, "{http:?}");
    assert!(
        http.problems[0].starts_with("site.conf:2 (upstream of site.conf:7): PROXY protocol on MAS's side only: `proxy_pass http://p` sends no PROXY header to 127.0.0.1:8081, but listener proxied expects one (mas.yaml:9:23: http.listeners[1].proxy_protocol: `proxy_protocol: true`), so MAS closes every connection and nginx answers 502; nginx's http proxy cannot send the header"),
        "{}",
        http.problems[0]
    );
    let stream =
        report("stream {\n  server {\n    listen 9000;\n    proxy_pass localhost:8081;\n  }\n}\n");
    assert_eq!(stream.problems.len(), 1, "{stream:?}");
    assert!(
        stream.problems[0].starts_with("site.conf:4: PROXY protocol on MAS's side only"),
        "{stream:?}"
    );
    assert!(
        stream.problems[0].ends_with("add `proxy_protocol on;` to this stream server"),
        "{stream:?}"
    );
}

#[test]
fn proxy_protocol_in_http_is_not_an_nginx_directive() {
    let r = report("server {\n  server_name auth.example.com;\n  location / {\n    proxy_pass http://127.0.0.1:8081;\n    proxy_protocol on;\n  }\n}\n");
    assert!(
        r.problems.iter().any(|p| p.starts_with(
            "site.conf:5: `proxy_protocol on` is not a directive of nginx's http module"
        )),
        "{r:?}"
    );
    assert!(
        r.problems
            .iter()
            .any(|p| p.starts_with("site.conf:4: PROXY protocol on MAS's side only")),
        "{r:?}"
    );
}

#[test]
fn proxy_pass_to_a_socket_no_bind_has() {
    let r = report("server {\n  server_name auth.example.com;\n  location / {\n    proxy_pass http://unix:/run/mas/wrong.sock:/;\n  }\n}\n");
    assert_eq!(r.problems.len(), 1, "{r:?}");
    assert_eq!(
        r.problems[0],
        "site.conf:4: proxy_pass to unix:/run/mas/wrong.sock, which no bind of the config has (the nearest is socket /run/mas/web.sock at mas.yaml:7:11: http.listeners[0].binds[0]); point it at unix:/run/mas/web.sock"
    );
    // The compat endpoints on another host are meant for MAS too.
    let r = report("server {\n  server_name matrix.example.com;\n  location ~ ^/_matrix/client/[^/]+/(login|logout|refresh) {\n    proxy_pass http://127.0.0.1:9999;\n  }\n  location /_matrix/ {\n    proxy_pass http://127.0.0.1:8008;\n  }\n}\n");
    assert_eq!(r.problems.len(), 1, "{r:?}");
    assert!(
        r.problems[0].starts_with("site.conf:4: proxy_pass to 127.0.0.1:9999, which no bind"),
        "{r:?}"
    );
}

#[test]
fn matching_site_gives_notes_and_leaves_other_backends_alone() {
    let r = report("upstream w {\n  server unix:/run/mas/web.sock;\n}\nserver {\n  server_name auth.example.com;\n  location / {\n    proxy_pass http://w;\n  }\n  include snippets/x.conf;\n}\nserver {\n  server_name matrix.example.com;\n  location /_matrix/ {\n    proxy_pass http://localhost:8008;\n  }\n  location /v {\n    proxy_pass http://$backend;\n  }\n}\n");
    assert!(r.problems.is_empty(), "{r:?}");
    assert_eq!(r.notes.len(), 1, "{r:?}");
    assert!(
        r.notes[0].contains("reaches listener web (bind 0 at mas.yaml:7:11"),
        "{r:?}"
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("`include snippets/x.conf` is not followed")),
        "{r:?}"
    );
    assert!(
        r.warnings.iter().any(|w| w.contains("uses variables")),
        "{r:?}"
    );
}

#[test]
fn whole_nginx_conf_with_stream_default() {
    let r = report("events {}\nstream {\n  proxy_protocol on;\n  server {\n    listen 9000;\n    proxy_pass 127.0.0.1:8081;\n  }\n}\nhttp {\n  server {\n    location / { proxy_pass http://unix:/run/mas/web.sock; }\n  }\n}\n");
    assert!(r.problems.is_empty(), "{r:?}");
    assert_eq!(r.notes.len(), 2, "{r:?}");
    assert!(r.notes[0].contains("PROXY protocol on both sides"), "{r:?}");
}

#[test]
fn bind_on_every_address_is_reached_on_loopback() {
    for (bind, reached, missed) in [
        (
            "address: '[::]:8080'",
            &["127.0.0.1:8080", "[::1]:8080", "localhost:8080"][..],
            "127.0.0.1:8081",
        ),
        (
            "host: 0.0.0.0\n          port: 8080",
            &["127.0.0.1:8080", "localhost:8080"][..],
            "[::1]:8080",
        ),
    ] {
        let config = format!("http:\n  public_base: https://auth.example.com/\n  listeners:\n    - name: web\n      resources: {ALL}\n      binds:\n        - {bind}\n");
        let plan = check_texts(&[("mas.yaml", &config)], &SystemResolver).expect("valid config");
        let check = |target: &str| {
            let site = format!("server {{\n  server_name auth.example.com;\n  location / {{\n    proxy_pass http://{target};\n  }}\n}}\n");
            let tree = parse(&site).expect("valid nginx syntax");
            compare(&plan, Path::new("site.conf"), &tree, &LOOPBACK)
        };
        for target in reached {
            let r = check(target);
            assert!(r.problems.is_empty(), "{bind} from {target}: {r:?}");
            assert_eq!(r.notes.len(), 1, "{bind} from {target}: {r:?}");
        }
        let r = check(missed);
        assert_eq!(r.problems.len(), 1, "{bind} from {missed}: {r:?}");
        assert!(
            r.problems[0].ends_with("point it at 127.0.0.1:8080"),
            "{r:?}"
        );
    }
}

#[test]
fn upstream_names_match_as_nginx_matches_them() {
    // nginx finds upstream blocks whatever the case of the name.
    let r = report("upstream Mas_Web {\n  server unix:/run/mas/web.sock;\n}\nserver {\n  server_name auth.example.com;\n  location / {\n    proxy_pass http://mas_web;\n  }\n}\n");
    assert!(r.problems.is_empty(), "{r:?}");
    assert_eq!(r.notes.len(), 1, "{r:?}");
}

#[test]
fn a_socket_listed_twice_in_an_upstream_is_one_target() {
    // generate-nginx lists a lone socket again, as the next server nginx
    // resends to; a site with one entry and one with both match alike.
    let site = |servers: &str| {
        format!("upstream mas_web {{\n{servers}}}\nserver {{\n  server_name auth.example.com;\n  location / {{\n    proxy_pass http://mas_web;\n  }}\n}}\n")
    };
    let once = report(&site("  server unix:/run/mas/web.sock;\n"));
    let twice = report(&site(
        "  server unix:/run/mas/web.sock max_fails=0;\n  # again\n  server unix:/run/mas/web.sock max_fails=0 backup;\n",
    ));
    for r in [&once, &twice] {
        assert!(r.problems.is_empty(), "{r:?}");
        assert_eq!(r.notes.len(), 1, "{r:?}");
    }
    // Once, nginx has no next server: a warning says what that costs.
    assert_eq!(
        once.warnings,
        ["site.conf:2 (upstream of site.conf:7): unix:/run/mas/web.sock is nginx's only server here, so a request that a restart of MAS closes unanswered on it (see `mas-sockets reload`) is answered 502 rather than sent again; list it twice in an upstream, `server unix:/run/mas/web.sock max_fails=0;` and then the same with `backup`, as generate-nginx does"]
    );
    assert!(twice.warnings.is_empty(), "{twice:?}");
    assert!(
        once.notes[0].starts_with("site.conf:2 (upstream of site.conf:7): proxy_pass to unix:/run/mas/web.sock reaches listener web"),
        "{once:?}"
    );
    assert!(
        twice.notes[0].starts_with("site.conf:2 (upstream of site.conf:9, again at line 4): proxy_pass to unix:/run/mas/web.sock reaches listener web"),
        "{twice:?}"
    );
    // A mismatch of a socket listed twice is one problem, naming both lines.
    let r = report(&site(
        "  server 127.0.0.1:8081 max_fails=0;\n  server 127.0.0.1:8081 max_fails=0 backup;\n",
    ));
    assert_eq!(r.problems.len(), 1, "{r:?}");
    assert!(
        r.problems[0].starts_with("site.conf:2 (upstream of site.conf:8, again at line 3): PROXY protocol on MAS's side only"),
        "{r:?}"
    );
}

#[test]
fn a_unix_socket_without_a_next_server_is_warned_of_over_http_only() {
    let direct = report("server {\n  server_name auth.example.com;\n  location / {\n    proxy_pass http://unix:/run/mas/web.sock:/;\n  }\n}\n");
    assert!(direct.problems.is_empty(), "{direct:?}");
    assert_eq!(direct.warnings.len(), 1, "{direct:?}");
    assert!(
        direct.warnings[0]
            .starts_with("site.conf:4: unix:/run/mas/web.sock is nginx's only server here"),
        "{direct:?}"
    );
    // TCP has no such gap; a stream proxy cannot resend at all.
    let tcp =
        report("server {\n  listen 8443;\n  proxy_pass 127.0.0.1:8081;\n  proxy_protocol on;\n}\n");
    let stream = report("server {\n  listen 8443;\n  proxy_pass unix:/run/mas/web.sock;\n}\n");
    for r in [&tcp, &stream] {
        assert!(r.warnings.is_empty(), "{r:?}");
        assert_eq!(r.notes.len(), 1, "{r:?}");
    }
}

#[test]
fn upstream_block_of_another_file_is_not_a_mismatch() {
    // An upstream defined elsewhere (conf.d/) is not a host nginx resolves:
    // it cannot be checked here, which is not a mismatch.
    struct NoNames;
    impl Resolver for NoNames {
        fn resolve(&self, host: &str, _: u16) -> Result<Vec<SocketAddr>, String> {
            Err(format!("{host}: not known"))
        }
    }
    let plan = check_texts(&[("mas.yaml", CONFIG)], &SystemResolver).expect("valid config");
    let tree = parse("server {\n  server_name auth.example.com;\n  location / {\n    proxy_pass http://mas_elsewhere;\n  }\n}\n").unwrap();
    let r = compare(&plan, Path::new("site.conf"), &tree, &NoNames);
    assert!(r.problems.is_empty(), "{r:?}");
    assert!(
        r.warnings.iter().any(|w| w.starts_with("site.conf:4: `proxy_pass http://mas_elsewhere` is not checked: `mas_elsewhere` is no upstream block of this file and no host name this machine resolves")),
        "{r:?}"
    );
}

/// MAS under a prefix on the homeserver's own host (`public_base:
/// https://example.com/auth/`): only what lies under the prefix, and the
/// compat endpoints, are meant for MAS there.
const SAME_HOST: &str = "http:
  public_base: https://example.com/auth/
  listeners:
    - name: web
      prefix: /auth
      resources: [{name: discovery}, {name: human}, {name: oauth}, {name: compat}, {name: graphql}, {name: assets}]
      binds:
        - host: 127.0.0.1
          port: 8080
";

fn report_same_host(site: &str) -> Report {
    let plan = check_texts(&[("mas.yaml", SAME_HOST)], &SystemResolver).expect("valid config");
    let tree = parse(site).expect("valid nginx syntax");
    compare(&plan, Path::new("site.conf"), &tree, &LOOPBACK)
}

#[test]
fn on_a_shared_host_only_the_prefix_and_compat_are_meant_for_mas() {
    let r = report_same_host("server {\n  server_name example.com;\n  location ^~ /auth/ {\n    proxy_pass http://127.0.0.1:8080;\n  }\n  location ~ ^/_matrix/client/[^/]+/(login|logout|refresh)(/|$) {\n    proxy_pass http://127.0.0.1:8080/auth$request_uri;\n  }\n  location /_matrix/ {\n    proxy_pass http://127.0.0.1:8008;\n  }\n  location / {\n    proxy_pass http://127.0.0.1:8008;\n  }\n}\n");
    assert!(r.problems.is_empty(), "{r:?}");
    // Variables only in the URI: the socket is still known.
    assert_eq!(r.notes.len(), 2, "{r:?}");
    assert!(
        r.notes[1].starts_with("site.conf:7: proxy_pass to 127.0.0.1:8080 reaches listener web"),
        "{r:?}"
    );
    assert!(r.warnings.is_empty(), "{r:?}");
    // Under the prefix, a wrong port is a mismatch...
    let r = report_same_host("server {\n  server_name example.com;\n  location /auth/ {\n    proxy_pass http://127.0.0.1:9999;\n  }\n}\n");
    assert_eq!(r.problems.len(), 1, "{r:?}");
    assert!(
        r.problems[0].starts_with("site.conf:4: proxy_pass to 127.0.0.1:9999, which no bind"),
        "{r:?}"
    );
    // ... and so is one in `location /` when no location holds the prefix.
    let r = report_same_host("server {\n  server_name example.com;\n  location / {\n    proxy_pass http://127.0.0.1:9999;\n  }\n}\n");
    assert_eq!(r.problems.len(), 1, "{r:?}");
    // A host in the proxy_pass that is a variable is still not checked.
    let r = report_same_host("server {\n  server_name example.com;\n  location /auth/ {\n    proxy_pass http://$mas/auth/;\n  }\n}\n");
    assert!(r.problems.is_empty(), "{r:?}");
    assert!(r.warnings[0].contains("uses variables"), "{r:?}");
}

#[test]
fn a_literal_host_and_port_followed_by_variables_is_resolved() {
    // nginx evaluates the whole argument at run time; the host and port end
    // at the first `/`, `$` or `?` after the scheme, so variables after them
    // are the URI's.
    let config = "http:
  public_base: https://auth.example.com/
  listeners:
    - name: compat
      resources: [{name: compat}]
      binds:
        - host: 127.0.0.1
          port: 8081
";
    let plan = check_texts(&[("mas.yaml", config)], &SystemResolver).expect("valid config");
    // `localhost` is 127.0.0.1 only, as the listener binds.
    const LOCALHOST_V4: Hosts = Hosts(&[("localhost", &[V4])]);
    let check = |pass: &str| {
        let site = format!("upstream mas_compat {{\n  server 127.0.0.1:8081;\n}}\nserver {{\n  server_name matrix.example.com;\n  location ~ ^/_matrix/client/[^/]+/(login|logout|refresh)(/|$) {{\n    proxy_pass {pass};\n  }}\n}}\n");
        let tree = parse(&site).expect("valid nginx syntax");
        compare(&plan, Path::new("site.conf"), &tree, &LOCALHOST_V4)
    };
    for pass in [
        "http://127.0.0.1:8081$request_uri",
        "http://localhost:8081$uri$is_args$args",
        "http://127.0.0.1:8081?$args",
        "http://mas_compat$request_uri",
    ] {
        let r = check(pass);
        assert!(r.problems.is_empty(), "{pass}: {r:?}");
        assert!(r.warnings.is_empty(), "{pass}: {r:?}");
        assert_eq!(r.notes.len(), 1, "{pass}: {r:?}");
        assert!(
            r.notes[0].contains(":8081 reaches listener compat (bind 0 at mas.yaml:7:11"),
            "{pass}: {r:?}"
        );
    }
    // Still known: a port nginx would not connect to is a mismatch.
    let r = check("http://127.0.0.1:9999$request_uri");
    assert_eq!(r.problems.len(), 1, "{r:?}");
    assert!(
        r.problems[0].starts_with("site.conf:7: proxy_pass to 127.0.0.1:9999, which no bind"),
        "{r:?}"
    );
    // A host or a port that is a variable is not.
    for pass in [
        "http://$mas$request_uri",
        "http://127.0.0.1:$port$request_uri",
    ] {
        let r = check(pass);
        assert!(r.problems.is_empty(), "{pass}: {r:?}");
        assert_eq!(
            r.warnings,
            [format!("site.conf:7: `proxy_pass {pass}` is not checked: its host or port uses variables, which only nginx can resolve at run time")],
            "{pass}"
        );
    }
}

/// The reference deployment: MAS's pages on a Unix socket, and a listener
/// for health checks only.
const WITH_INTERNAL: &str = "http:
  public_base: https://auth.example.com/
  listeners:
    - name: web
      resources: [{name: discovery}, {name: human}, {name: oauth}, {name: compat}, {name: graphql}]
      binds:
        - socket: /run/mas/web.sock
    - name: internal
      resources: [{name: health}]
      binds:
        - host: localhost
          port: 8081
";

fn report_for(config: &str, site: &str) -> Report {
    let plan = check_texts(&[("mas.yaml", config)], &SystemResolver).expect("valid config");
    let tree = parse(site).expect("valid nginx syntax");
    compare(&plan, Path::new("site.conf"), &tree, &LOOPBACK)
}

/// The auth host with nginx serving the assets, and `pass` in `location /`
/// on line 7.
fn auth_site(pass: &str) -> String {
    format!("server {{\n  server_name auth.example.com;\n  location ^~ /assets/ {{\n    alias /usr/share/mas/assets/;\n  }}\n  location / {{\n    proxy_pass {pass};\n  }}\n  location = /health {{\n    proxy_pass http://127.0.0.1:8081;\n  }}\n}}\n")
}

#[test]
fn a_location_for_mas_that_reaches_a_listener_without_its_resources() {
    let r = report_for(WITH_INTERNAL, &auth_site("http://127.0.0.1:8081"));
    assert_eq!(
        r.problems,
        ["site.conf:7: proxy_pass to 127.0.0.1:8081 reaches listener internal (mas.yaml:8:7: http.listeners[1]), which does not serve `discovery`, `human`, `oauth`, `graphql`, which paths of this location need (/.well-known/openid-configuration, /login, /oauth2/token, /graphql), so MAS answers 404 to them; point it at unix:/run/mas/web.sock"],
        "{r:?}"
    );
    // The same site on the listener that serves them: nothing to say, and
    // `location = /health` may reach the listener for health checks.
    let r = report_for(WITH_INTERNAL, &auth_site("http://unix:/run/mas/web.sock"));
    assert!(r.problems.is_empty(), "{r:?}");
    assert_eq!(r.notes.len(), 2, "{r:?}");
    // Without a location of its own for /assets/, `location /` needs them
    // from MAS too, and no listener serves them.
    let r = report_for(WITH_INTERNAL, "server {\n  server_name auth.example.com;\n  location / {\n    proxy_pass http://unix:/run/mas/web.sock;\n  }\n}\n");
    assert_eq!(
        r.problems,
        ["site.conf:4: proxy_pass to unix:/run/mas/web.sock reaches listener web (mas.yaml:4:7: http.listeners[0]), which does not serve `assets`, which paths of this location need (/assets/), so MAS answers 404 to them; add `assets` to the resources of listener web, or let nginx serve /assets/ itself (a `location ^~ /assets/` with `alias` to MAS's assets directory, as generate-nginx --assets-dir writes)"],
        "{r:?}"
    );
    // The Matrix host's compatibility endpoints need `compat`.
    let r = report_for(WITH_INTERNAL, "server {\n  server_name matrix.example.com;\n  location ~ ^/_matrix/client/[^/]+/(login|logout|refresh)(/|$) {\n    proxy_pass http://127.0.0.1:8081$request_uri;\n  }\n  location /_matrix/ {\n    proxy_pass http://127.0.0.1:8008;\n  }\n}\n");
    assert_eq!(
        r.problems,
        ["site.conf:4: proxy_pass to 127.0.0.1:8081 reaches listener internal (mas.yaml:8:7: http.listeners[1]), which does not serve `compat`, which paths of this location need (/_matrix/client/v3/login), so MAS answers 404 to them; point it at unix:/run/mas/web.sock"],
        "{r:?}"
    );
}

#[test]
fn what_a_location_needs_follows_the_paths_nginx_sends_it() {
    // Under a prefix on the homeserver's host: the prefix's location needs
    // MAS's resources, the homeserver's locations need nothing of MAS.
    let under_prefix = WITH_INTERNAL
        .replace("https://auth.example.com/", "https://example.com/auth/")
        .replace(
            "    - name: web\n",
            "    - name: web\n      prefix: /auth\n",
        );
    let shared = |pass: &str| {
        format!("server {{\n  server_name example.com;\n  location ^~ /auth/assets/ {{\n    alias /usr/share/mas/assets/;\n  }}\n  location /auth/ {{\n    proxy_pass {pass};\n  }}\n  location / {{\n    proxy_pass http://127.0.0.1:8008;\n  }}\n}}\n")
    };
    let r = report_for(&under_prefix, &shared("http://unix:/run/mas/web.sock"));
    assert!(r.problems.is_empty(), "{r:?}");
    let r = report_for(&under_prefix, &shared("http://localhost:8081"));
    assert_eq!(r.problems.len(), 1, "{r:?}");
    assert!(
        r.problems[0].starts_with("site.conf:7: proxy_pass to localhost:8081 reaches listener internal (mas.yaml:9:7: http.listeners[1]), which does not serve `discovery`, `human`, `oauth`, `graphql`, which paths of this location need (/auth/.well-known/openid-configuration, /auth/login, /auth/oauth2/token, /auth/graphql)"),
        "{r:?}"
    );
    // Resources split between listeners, each path sent to its own.
    let split = "http:
  public_base: https://auth.example.com/
  listeners:
    - name: web
      resources: [{name: discovery}, {name: human}, {name: oauth}, {name: assets}]
      binds:
        - socket: /run/mas/web.sock
    - name: api
      resources: [{name: graphql}]
      binds:
        - socket: /run/mas/api.sock
";
    let site = "server {\n  server_name auth.example.com;\n  location / {\n    proxy_pass http://unix:/run/mas/web.sock;\n  }\n  location /graphql {\n    proxy_pass http://unix:/run/mas/api.sock;\n  }\n}\n";
    let r = report_for(split, site);
    assert!(r.problems.is_empty(), "{r:?}");
    let r = report_for(
        split,
        &site.replace("location /graphql", "location /graphql-old"),
    );
    assert_eq!(
        r.problems,
        ["site.conf:4: proxy_pass to unix:/run/mas/web.sock reaches listener web (mas.yaml:4:7: http.listeners[0]), which does not serve `graphql`, which paths of this location need (/graphql), so MAS answers 404 to them; add `graphql` to the resources of listener web, or give /graphql a location of its own that reaches unix:/run/mas/api.sock"],
        "{r:?}"
    );
    // A regular expression that might take MAS's paths, and that only
    // PCRE reads (look-ahead), leaves them unknown: nothing is claimed
    // about where they go.
    let r = report_for(WITH_INTERNAL, "server {\n  server_name auth.example.com;\n  location ~* ^/(?!_matrix/).*\\.(css|js|svg)$ {\n    proxy_pass http://127.0.0.1:8081;\n  }\n  location / {\n    proxy_pass http://unix:/run/mas/web.sock;\n  }\n}\n");
    assert!(r.problems.is_empty(), "{r:?}");
    // Nor about paths that nginx answers or rewrites before they could
    // reach the listener.
    let r = report_for(WITH_INTERNAL, "server {\n  server_name auth.example.com;\n  location / {\n    return 301 https://elsewhere.example.com$request_uri;\n    proxy_pass http://127.0.0.1:8081;\n  }\n}\n");
    assert!(r.problems.is_empty(), "{r:?}");
    // One whose literals rule MAS's paths out does not.
    let r = report_for(WITH_INTERNAL, "server {\n  server_name auth.example.com;\n  location ~ \\.php$ {\n    proxy_pass http://127.0.0.1:9000;\n  }\n  location / {\n    proxy_pass http://127.0.0.1:8081;\n  }\n}\n");
    assert!(
        r.problems.iter().any(|p| p
            .starts_with("site.conf:7: proxy_pass to 127.0.0.1:8081 reaches listener internal")),
        "{r:?}"
    );
}

#[test]
fn a_proxy_pass_that_reaches_no_bind_is_pointed_at_listeners_that_serve_its_location() {
    let r = report_for(WITH_INTERNAL, &auth_site("http://unix:/run/mas/wrong.sock"));
    assert_eq!(
        r.problems,
        ["site.conf:7: proxy_pass to unix:/run/mas/wrong.sock, which no bind of the config has (the nearest is socket /run/mas/web.sock at mas.yaml:7:11: http.listeners[0].binds[0]); point it at unix:/run/mas/web.sock"],
        "{r:?}"
    );
    // A TCP port: the nearest is still a bind of a listener that serves it.
    let r = report_for(WITH_INTERNAL, &auth_site("http://127.0.0.1:8080"));
    assert_eq!(
        r.problems,
        ["site.conf:7: proxy_pass to 127.0.0.1:8080, which no bind of the config has (the nearest is socket /run/mas/web.sock at mas.yaml:7:11: http.listeners[0].binds[0]); point it at unix:/run/mas/web.sock"],
        "{r:?}"
    );
    // A stream server with the PROXY protocol needs what the auth host
    // needs, from a listener that expects the header: none here.
    let r = report_for(WITH_INTERNAL, "stream {\n  server {\n    listen 8443;\n    proxy_protocol on;\n    proxy_pass 127.0.0.1:9999;\n  }\n}\n");
    assert_eq!(
        r.problems,
        ["site.conf:5: proxy_pass to 127.0.0.1:9999, which no bind of the config has; no listener of the config takes what it sends (the PROXY protocol, which a listener with `proxy_protocol: true` takes); add such a listener that serves `discovery`, `human`, `oauth`, `graphql`, `assets`"],
        "{r:?}"
    );
}

/// An http site for the auth host whose `location /` reaches upstream
/// `mas_web` (line 1) holding `servers`, with `server_extra` in the server
/// and `location_extra` in the location.
fn upstream_site(servers: &str, server_extra: &str, location_extra: &str) -> String {
    format!("upstream mas_web {{\n{servers}}}\nserver {{\n  server_name auth.example.com;\n{server_extra}  location / {{\n{location_extra}    proxy_pass http://mas_web;\n  }}\n}}\n")
}

const TWICE: &str = "  server unix:/run/mas/web.sock max_fails=0;\n  server unix:/run/mas/web.sock max_fails=0 backup;\n";

/// Two entries on one line are named by that line once.
#[test]
fn entries_on_one_line_are_named_once() {
    let r = report(&upstream_site(
        "  server unix:/run/mas/web.sock; server unix:/run/mas/web.sock backup;\n",
        "",
        "",
    ));
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("without `max_fails=0` (line 2):")),
        "{r:?}"
    );
}

#[test]
fn an_upstream_of_two_entries_without_max_fails_0_is_warned_of() {
    // nginx: one failed connection takes an entry out for 10 s; with both
    // out it answers 502 ("no live upstreams") without trying.
    let r = report(&upstream_site(
        "  server unix:/run/mas/web.sock;\n  server unix:/run/mas/web.sock backup;\n",
        "",
        "",
    ));
    assert!(r.problems.is_empty(), "{r:?}");
    assert_eq!(
        r.warnings,
        ["site.conf:2: upstream mas_web, which reaches listener web, has entries without `max_fails=0` (lines 2 and 3): nginx takes such an entry out for its fail_timeout (10 s by default; under a second with `fail_timeout=0`) after one failed connection, so a restart or crash of MAS that closes one connection on each leaves none, and nginx answers 502 to every request (\"no live upstreams\") until they are back; add `max_fails=0` to each"],
        "{r:?}"
    );
    // One without: the other stays, but the resend loses its next server.
    let r = report(&upstream_site(
        "  server unix:/run/mas/web.sock max_fails=0;\n  server unix:/run/mas/web.sock fail_timeout=0 backup;\n",
        "",
        "",
    ));
    assert_eq!(r.warnings.len(), 1, "{r:?}");
    assert!(
        r.warnings[0].starts_with("site.conf:3: upstream mas_web, which reaches listener web, has entries without `max_fails=0` (line 3)") && r.warnings[0].contains("may have no next server"),
        "{r:?}"
    );
    // A lone entry never counts failures; `localhost` is two addresses.
    let lone = report(&upstream_site("  server unix:/run/mas/web.sock;\n", "", ""));
    assert!(
        !lone.warnings.iter().any(|w| w.contains("max_fails=0` (")),
        "{lone:?}"
    );
    let on_localhost = format!("http:\n  public_base: https://auth.example.com/\n  listeners:\n    - name: web\n      resources: {ALL}\n      binds:\n        - host: localhost\n          port: 8080\n");
    let localhost = report_for(
        &on_localhost,
        &upstream_site("  server localhost:8080;\n", "", ""),
    );
    assert!(
        localhost
            .warnings
            .iter()
            .any(|w| w.starts_with("site.conf:2: upstream mas_web, which reaches listener web, has entries without `max_fails=0` (line 2)")),
        "{localhost:?}"
    );
    // Two locations through one upstream: said once.
    let r = report("upstream mas_web {\n  server unix:/run/mas/web.sock;\n  server unix:/run/mas/web.sock backup;\n}\nserver {\n  server_name auth.example.com;\n  location / {\n    proxy_pass http://mas_web;\n  }\n  location /graphql {\n    proxy_pass http://mas_web;\n  }\n}\n");
    assert_eq!(r.warnings.len(), 1, "{r:?}");
    // The form generate-nginx writes: nothing to say.
    let r = report(&upstream_site(TWICE, "", ""));
    assert!(r.warnings.is_empty(), "{r:?}");
}

#[test]
fn settings_that_keep_nginx_from_resending_are_warned_of() {
    let then = "so nginx answers 502 to a request that a restart of MAS closes unanswered on unix:/run/mas/web.sock (see `mas-sockets reload`) instead of sending it to the next server";
    let r = report(&upstream_site(TWICE, "", "    proxy_next_upstream off;\n"));
    assert_eq!(
        r.warnings,
        [format!("site.conf:8: `proxy_next_upstream off` turns resending off, {then}; make it `proxy_next_upstream error;`")],
        "{r:?}"
    );
    // The server's, replacing the http level's, and itself replaced by
    // the location's as nginx inherits them.
    let r = report(&format!(
        "proxy_next_upstream error;\n{}",
        upstream_site(TWICE, "  proxy_next_upstream timeout http_502;\n", "")
    ));
    assert_eq!(
        r.warnings,
        [format!("site.conf:8: `proxy_next_upstream timeout http_502` does not hold `error`, and replaces any outer `proxy_next_upstream` entirely, {then}; add `error` to it")],
        "{r:?}"
    );
    let r = report(&upstream_site(
        TWICE,
        "  proxy_next_upstream off;\n",
        "    proxy_next_upstream error timeout;\n",
    ));
    assert!(r.warnings.is_empty(), "{r:?}");
    let r = report(&format!(
        "proxy_next_upstream_tries 1;\n{}",
        upstream_site(TWICE, "", "")
    ));
    assert_eq!(
        r.warnings,
        [format!("site.conf:1: `proxy_next_upstream_tries 1` lets nginx try one server only, {then}; remove it, or make it 2 or more (0 is no limit)")],
        "{r:?}"
    );
    // The second entry `down`: no next server.
    let r = report(&upstream_site(
        "  server unix:/run/mas/web.sock max_fails=0;\n  server unix:/run/mas/web.sock max_fails=0 backup down;\n",
        "",
        "",
    ));
    assert_eq!(
        r.warnings,
        ["site.conf:3: this entry of unix:/run/mas/web.sock is marked `down`, which leaves nginx no next server: it answers 502 to a request that a restart of MAS closes unanswered on unix:/run/mas/web.sock (see `mas-sockets reload`) instead of sending it again; remove `down`"],
        "{r:?}"
    );
    // ... and without `max_fails=0`, which it needs once `down` goes: both
    // fixes at once.
    let r = report(&upstream_site(
        "  server unix:/run/mas/web.sock max_fails=0;\n  server unix:/run/mas/web.sock backup down;\n",
        "",
        "",
    ));
    assert_eq!(
        r.warnings,
        ["site.conf:3: this entry of unix:/run/mas/web.sock is marked `down`, which leaves nginx no next server: it answers 502 to a request that a restart of MAS closes unanswered on unix:/run/mas/web.sock (see `mas-sockets reload`) instead of sending it again; remove `down`, and give the entry `max_fails=0` as the others need it"],
        "{r:?}"
    );
    // Over TCP there is no such gap on restart: left alone.
    let r = report("server {\n  listen 8443;\n  proxy_next_upstream off;\n  proxy_pass 127.0.0.1:8081;\n  proxy_protocol on;\n}\n");
    assert!(r.warnings.is_empty(), "{r:?}");
}

#[test]
fn a_lone_socket_under_a_balancing_method_without_backup_is_listed_twice_without_it() {
    for method in ["hash $request_uri", "ip_hash", "random"] {
        let r = report(&upstream_site(
            &format!("  {method};\n  server unix:/run/mas/web.sock;\n"),
            "",
            "",
        ));
        let name = method.split(' ').next().unwrap();
        assert_eq!(
            r.warnings,
            [format!("site.conf:3 (upstream of site.conf:8): unix:/run/mas/web.sock is nginx's only server here, so a request that a restart of MAS closes unanswered on it (see `mas-sockets reload`) is answered 502 rather than sent again; list it twice in the upstream, `server unix:/run/mas/web.sock max_fails=0;` and the same line again, without `backup`, which nginx refuses with `{name}`")],
            "{r:?}"
        );
    }
}

#[test]
fn a_proxy_pass_and_its_listener_must_agree_on_tls() {
    let plain = report_for(WITH_INTERNAL, &auth_site("https://unix:/run/mas/web.sock"));
    assert_eq!(
        plain.problems,
        ["site.conf:7: `proxy_pass https://unix:/run/mas/web.sock` speaks TLS to unix:/run/mas/web.sock, but listener web (mas.yaml:4:7: http.listeners[0]) has no `tls:` and speaks plain HTTP, so the handshake fails and nginx answers 502; write `http://` instead of `https://`"],
        "{plain:?}"
    );
    let with_tls = format!("http:\n  public_base: https://auth.example.com/\n  listeners:\n    - name: web\n      tls: {{certificate_file: /etc/mas/cert.pem, key_file: /etc/mas/key.pem}}\n      resources: {ALL}\n      binds:\n        - host: 127.0.0.1\n          port: 8443\n    - name: internal\n      resources: [{{name: health}}]\n      binds:\n        - host: 127.0.0.1\n          port: 8081\n");
    let r = report_for(&with_tls, &auth_site("http://127.0.0.1:8443"));
    assert_eq!(
        r.problems,
        ["site.conf:7: `proxy_pass http://127.0.0.1:8443` speaks plain HTTP to 127.0.0.1:8443, but listener web (mas.yaml:4:7: http.listeners[0]) terminates TLS itself (`tls:`), so MAS drops every connection and nginx answers 502; remove `tls:` from the listener (nginx terminates TLS), or write `https://` instead of `http://`"],
        "{r:?}"
    );
    let r = report_for(&with_tls, &auth_site("https://127.0.0.1:8443"));
    assert!(r.problems.is_empty(), "{r:?}");
}

/// An operator's two files: `a.yaml` with the public listener on a socket,
/// `b.yaml` adding one that expects the PROXY protocol, and one for health
/// checks that does too.
const A_YAML: &str = "http:
  public_base: https://auth.example.com/
  listeners:
    - name: web
      resources: [{name: discovery}, {name: human}, {name: oauth}, {name: compat}, {name: graphql}, {name: assets}]
      binds:
        - socket: /run/mas/web.sock
";
const B_YAML: &str = "http:
  listeners:
    - name: proxied
      proxy_protocol: true
      resources: [{name: discovery}, {name: human}, {name: oauth}, {name: compat}, {name: graphql}, {name: assets}]
      binds:
        - socket: /run/mas/proxied.sock
    - name: health
      proxy_protocol: true
      resources: [{name: health}]
      binds:
        - socket: /run/mas/health.sock
";

fn report_two(files: &[(&str, &str)], site: &str) -> Report {
    let plan = check_texts(files, &SystemResolver).expect("valid config");
    let tree = parse(site).expect("valid nginx syntax");
    compare(&plan, Path::new("site.conf"), &tree, &LOOPBACK)
}

#[test]
fn a_proxy_pass_that_reaches_no_bind_is_pointed_only_at_listeners_that_take_what_it_sends() {
    let files = [("a.yaml", A_YAML), ("b.yaml", B_YAML)];
    // http: never a listener that expects the PROXY protocol.
    let r = report_two(&files, "server {\n  server_name auth.example.com;\n  location / {\n    proxy_pass http://unix:/run/mas/wbe.sock;\n  }\n}\n");
    assert_eq!(r.problems.len(), 1, "{r:?}");
    assert!(
        r.problems[0].ends_with("; point it at unix:/run/mas/web.sock"),
        "{r:?}"
    );
    // A stream server with the PROXY protocol: only the listener that
    // expects it and serves the auth host, not the one for health checks.
    let stream = |pp: &str| {
        report_two(&files, &format!("stream {{\n  server {{\n    listen 8443;\n{pp}    proxy_pass unix:/run/mas/proxid.sock;\n  }}\n}}\n"))
    };
    let r = stream("    proxy_protocol on;\n");
    assert_eq!(r.problems.len(), 1, "{r:?}");
    assert!(
        r.problems[0].starts_with("site.conf:5: proxy_pass to unix:/run/mas/proxid.sock, which no bind of the config has (the nearest is socket /run/mas/proxied.sock at b.yaml:7:11: http.listeners[1].binds[0]); point it at unix:/run/mas/proxied.sock"),
        "{r:?}"
    );
    assert!(r.problems[0].ends_with("proxied.sock"), "{r:?}");
    // One that reaches the listener for health checks is left alone.
    let r = report_two(&files, "stream {\n  server {\n    listen 8443;\n    proxy_protocol on;\n    proxy_pass unix:/run/mas/health.sock;\n  }\n}\n");
    assert!(r.problems.is_empty(), "{r:?}");
    // Without it, the stream server is not meant for MAS: nothing to say.
    assert!(stream("").problems.is_empty());
    // Only a listener that does not take it serves the location: what to
    // change instead.
    let web_for_health = A_YAML.replace(
        "[{name: discovery}, {name: human}, {name: oauth}, {name: compat}, {name: graphql}, {name: assets}]",
        "[{name: health}]",
    );
    let r = report_two(
        &[("a.yaml", &web_for_health), ("b.yaml", B_YAML)],
        "server {\n  server_name auth.example.com;\n  location / {\n    proxy_pass http://unix:/run/mas/wbe.sock;\n  }\n}\n",
    );
    assert_eq!(
        r.problems,
        ["site.conf:4: proxy_pass to unix:/run/mas/wbe.sock, which no bind of the config has (the nearest is socket /run/mas/proxied.sock at b.yaml:7:11: http.listeners[1].binds[0]); no listener that serves what this location needs takes what it sends: listener proxied (b.yaml:3:7: http.listeners[1]) serves it but expects the PROXY protocol, which nginx's http proxy cannot send; set `proxy_protocol: false` on it (nginx passes the client's address in X-Forwarded-For), or reach it from a stream server with `proxy_protocol on`, and point it at unix:/run/mas/proxied.sock"],
        "{r:?}"
    );
    // `https://` where no listener has `tls:`.
    let r = report_for(
        WITH_INTERNAL,
        &auth_site("https://unix:/run/mas/wrong.sock"),
    );
    assert!(
        r.problems[0].ends_with("no listener that serves what this location needs takes what it sends: listener web (mas.yaml:4:7: http.listeners[0]) serves it but has no `tls:` and speaks plain HTTP; write `http://` instead of `https://`, and point it at unix:/run/mas/web.sock"),
        "{r:?}"
    );
}

#[test]
fn a_uri_part_that_moves_mas_paths_out_of_the_prefix_is_a_problem() {
    // nginx replaces the part of the path that matches the location with
    // the URI part: `/auth/login` reaches MAS as `/login`, outside `/auth`.
    let location = |path: &str, pass: &str| {
        format!("server {{\n  server_name example.com;\n  location {path} {{\n    proxy_pass {pass};\n  }}\n}}\n")
    };
    let r = report_same_host(&location("/auth/", "http://127.0.0.1:8080/"));
    assert_eq!(
        r.problems,
        ["site.conf:4: `proxy_pass http://127.0.0.1:8080/` sends /auth/.well-known/openid-configuration to MAS as /.well-known/openid-configuration (nginx replaces the location's `/auth/` with `/`), but listener web (mas.yaml:4:7: http.listeners[0]) serves it at /auth/.well-known/openid-configuration, under its `prefix: /auth`, so MAS answers 404 to it (and 24 more of this location's paths); drop the URI part: `proxy_pass http://127.0.0.1:8080;`"],
        "{r:?}"
    );
    // What keeps the paths is left alone.
    for (path, pass) in [
        ("/auth/", "http://127.0.0.1:8080/auth/"),
        ("/auth/", "http://127.0.0.1:8080"),
        ("/", "http://127.0.0.1:8080/"),
    ] {
        let r = report_same_host(&location(path, pass));
        assert!(r.problems.is_empty(), "{path} {pass}: {r:?}");
    }
    // `location /auth` with `/auth/` doubles the slash.
    let r = report_same_host(&location("/auth", "http://127.0.0.1:8080/auth/"));
    assert_eq!(r.problems.len(), 1, "{r:?}");
    assert!(
        r.problems[0].contains("sends /auth/.well-known/openid-configuration to MAS as /auth//.well-known/openid-configuration")
            && r.problems[0].ends_with("; drop the URI part: `proxy_pass http://127.0.0.1:8080;`"),
        "{r:?}"
    );
    // A `rewrite ... break` makes nginx send the rewritten URI instead.
    let r = report_same_host("server {\n  server_name example.com;\n  location /auth/ {\n    rewrite ^/auth/(.*)$ /auth/$1 break;\n    proxy_pass http://127.0.0.1:8080/;\n  }\n}\n");
    assert!(r.problems.is_empty(), "{r:?}");
    // Without a prefix, a URI part that adds one is as wrong, and one that
    // strips public_base's path is right.
    let r = report("server {\n  server_name auth.example.com;\n  location / {\n    proxy_pass http://unix:/run/mas/web.sock:/mas/;\n  }\n}\n");
    assert_eq!(r.problems.len(), 1, "{r:?}");
    assert!(
        r.problems[0].starts_with("site.conf:4: `proxy_pass http://unix:/run/mas/web.sock:/mas/` sends /.well-known/openid-configuration to MAS as /mas/.well-known/openid-configuration")
            && r.problems[0].ends_with("without a `prefix`, so MAS answers 404 to it (and 24 more of this location's paths); drop the URI part: `proxy_pass http://unix:/run/mas/web.sock;`"),
        "{r:?}"
    );
    let unprefixed = SAME_HOST.replace("      prefix: /auth\n", "");
    let r = report_for(&unprefixed, &location("/auth/", "http://127.0.0.1:8080/"));
    assert!(r.problems.is_empty(), "{r:?}");
    // There, one that keeps the path is wrong, and dropping it is no fix:
    // the URI part that fits is.
    let r = report_for(
        &unprefixed,
        &location("/auth/", "http://127.0.0.1:8080/auth/"),
    );
    assert_eq!(r.problems.len(), 1, "{r:?}");
    assert!(
        r.problems[0].ends_with("; make it `proxy_pass http://127.0.0.1:8080/;`"),
        "{r:?}"
    );
}

/// Without a URI part nginx passes each path as it is: public_base's path
/// must then be the listener's prefix, or MAS answers 404 to its own links.
#[test]
fn a_proxy_pass_without_uri_part_needs_public_bases_path_as_the_prefix() {
    let location = |path: &str, pass: &str| {
        format!("server {{\n  server_name example.com;\n  location {path} {{\n    proxy_pass {pass};\n  }}\n}}\n")
    };
    // public_base under /auth, the listener without a prefix.
    let unprefixed = SAME_HOST.replace("      prefix: /auth\n", "");
    let r = report_for(&unprefixed, &location("/auth/", "http://127.0.0.1:8080"));
    assert_eq!(
        r.problems,
        ["site.conf:4: `proxy_pass http://127.0.0.1:8080` passes /auth/.well-known/openid-configuration to MAS as it is, but listener web (mas.yaml:4:7: http.listeners[0]) serves it at /.well-known/openid-configuration, without a `prefix`, so MAS answers 404 to it (and 24 more of this location's paths); give the listener `prefix: /auth`, as public_base's path, or pass it on as `proxy_pass http://127.0.0.1:8080/;`"],
        "{r:?}"
    );
    // The compat endpoints, a regex location, under a prefix: the fix is
    // the prefix before the request's URI.
    let r = report_same_host(&location(
        "~ ^/_matrix/client/[^/]+/(login|logout|refresh)(/|$)",
        "http://127.0.0.1:8080",
    ));
    assert!(
        r.problems.iter().any(|p| p.ends_with("; pass it on under the prefix, as `proxy_pass http://127.0.0.1:8080/auth$request_uri;`")),
        "{r:?}"
    );
    // A socket's URI part follows a `:`.
    let on_socket = unprefixed.replace(
        "        - host: 127.0.0.1\n          port: 8080\n",
        "        - socket: /run/mas/web.sock\n",
    );
    let r = report_for(
        &on_socket,
        &location("/auth/", "http://unix:/run/mas/web.sock"),
    );
    assert!(
        r.problems
            .iter()
            .any(|p| p.ends_with("or pass it on as `proxy_pass http://unix:/run/mas/web.sock:/;`")),
        "{r:?}"
    );
    // Paths that match where the listener serves them are left alone.
    let r = report_same_host(&location("/auth/", "http://127.0.0.1:8080"));
    assert!(r.problems.is_empty(), "{r:?}");
}

#[test]
fn a_uri_part_with_variables_replaces_the_whole_uri() {
    let compat = |pass: &str| {
        format!("server {{\n  server_name example.com;\n  location ~ ^/_matrix/client/[^/]+/(login|logout|refresh)(/|$) {{\n    proxy_pass {pass};\n  }}\n}}\n")
    };
    let r = report_same_host(&compat("http://127.0.0.1:8080/auth$request_uri"));
    assert!(r.problems.is_empty(), "{r:?}");
    let r = report_same_host(&compat("http://127.0.0.1:8080$request_uri"));
    assert_eq!(
        r.problems,
        ["site.conf:4: `proxy_pass http://127.0.0.1:8080$request_uri` sends /_matrix/client/v3/login to MAS as /_matrix/client/v3/login (nginx sends `$request_uri`, evaluated, in place of the request's URI), but listener web (mas.yaml:4:7: http.listeners[0]) serves it at /auth/_matrix/client/v3/login, under its `prefix: /auth`, so MAS answers 404 to it; change the URI part so that MAS gets /auth/_matrix/client/v3/login for /_matrix/client/v3/login"],
        "{r:?}"
    );
    // Variables not known here leave it unchecked.
    let r = report_same_host(&compat("http://127.0.0.1:8080/auth/_matrix/client/$1"));
    assert!(r.problems.is_empty(), "{r:?}");
    // A literal URI part in a regular expression location: nginx -t refuses it.
    let r = report_same_host(&compat("http://127.0.0.1:8080/auth/"));
    assert_eq!(
        r.problems,
        ["site.conf:4: `proxy_pass http://127.0.0.1:8080/auth/` has a URI part (`/auth/`) in a location given by a regular expression (`location ~ ^/_matrix/client/[^/]+/(login|logout|refresh)(/|$)`), which nginx refuses (nginx -t: \"proxy_pass\" cannot have URI part ...); drop it, `proxy_pass http://127.0.0.1:8080;`, so that nginx passes the request's URI as it is"],
        "{r:?}"
    );
}

#[test]
fn localhost_in_a_proxy_pass_is_what_the_resolver_says_it_is() {
    // nginx resolves it when it loads its config (getaddrinfo, so
    // /etc/hosts), and connects only to what that returns.
    let config = |host: &str| {
        format!("http:\n  public_base: https://auth.example.com/\n  listeners:\n    - name: web\n      resources: {ALL}\n      binds:\n        - host: \"{host}\"\n          port: 8080\n")
    };
    let site = "server {\n  server_name auth.example.com;\n  location / {\n    proxy_pass http://localhost:8080;\n  }\n}\n";
    let check = |host: &str, resolver: &Hosts| {
        let plan =
            check_texts(&[("mas.yaml", &config(host))], &SystemResolver).expect("valid config");
        let tree = parse(site).expect("valid nginx syntax");
        compare(&plan, Path::new("site.conf"), &tree, resolver)
    };
    let v4_only = Hosts(&[("localhost", &[V4])]);
    let v6_only = Hosts(&[("localhost", &[V6])]);
    let r = check("::1", &v4_only);
    assert_eq!(
        r.problems,
        ["site.conf:4: proxy_pass to localhost:8080 (nginx resolves `localhost` to 127.0.0.1 here), which no bind of the config has (the nearest is host ::1 port 8080 at mas.yaml:7:11: http.listeners[0].binds[0]); point it at [::1]:8080"],
        "{r:?}"
    );
    let r = check("127.0.0.1", &v6_only);
    assert_eq!(r.problems.len(), 1, "{r:?}");
    assert!(
        r.problems[0].starts_with("site.conf:4: proxy_pass to localhost:8080 (nginx resolves `localhost` to [::1] here), which no bind"),
        "{r:?}"
    );
    for (host, resolver) in [
        ("127.0.0.1", &v4_only),
        ("::1", &v6_only),
        ("localhost", &LOOPBACK),
    ] {
        let r = check(host, resolver);
        assert!(r.problems.is_empty(), "{host}: {r:?}");
        assert!(r.warnings.is_empty(), "{host}: {r:?}");
        assert_eq!(r.notes.len(), 1, "{host}: {r:?}");
    }
    // Both addresses, one bound: nginx's connections to the other are
    // refused.
    let r = check("127.0.0.1", &LOOPBACK);
    assert!(r.problems.is_empty(), "{r:?}");
    assert_eq!(
        r.warnings,
        ["site.conf:4: nginx resolves `localhost` to 127.0.0.1, [::1] here (when it loads its config) and connects to each in turn, but listener web (mas.yaml:4:7: http.listeners[0]) has no socket at [::1]:8080, so those connections are refused and nginx takes each such address out for fail_timeout (10 s) before it tries the next; write `127.0.0.1:8080` instead of `localhost:8080`, or bind the listener there too"],
        "{r:?}"
    );
}

#[test]
fn a_unix_socket_path_with_dot_dot_reaches_the_bind_it_resolves_to() {
    // See: /run/mas/../mas/web.sock is the kernel's /run/mas/web.sock.
    for pass in [
        "http://unix:/run/mas/../mas/web.sock",
        "http://unix:/run//mas/./web.sock",
    ] {
        let r = report(&format!("server {{\n  server_name auth.example.com;\n  location / {{\n    proxy_pass {pass};\n  }}\n}}\n"));
        assert!(r.problems.is_empty(), "{pass}: {r:?}");
        assert_eq!(r.notes.len(), 1, "{pass}: {r:?}");
    }
}

/// On the Matrix host, MAS's compatibility endpoints need a location of
/// their own; in the homeserver's `/_matrix/` they go to the homeserver.
#[test]
fn compat_endpoints_that_land_in_the_homeservers_location_are_warned_about() {
    let matrix = |compat: &str| {
        report_for(
            WITH_INTERNAL,
            &format!("server {{\n  server_name matrix.example.com;\n{compat}  location /_matrix/ {{\n    proxy_pass http://127.0.0.1:8008;\n  }}\n}}\n"),
        )
    };
    let endpoints = |r: &Report| -> Vec<String> {
        r.warnings
            .iter()
            .filter(|w| w.contains("not in a location of MAS's compatibility endpoints"))
            .map(|w| w.split(' ').nth(1).unwrap_or_default().to_owned())
            .collect()
    };
    let generated = "  location ~ ^/_matrix/client/[^/]+/(login|logout|refresh)(/|$) {\n    proxy_pass http://unix:/run/mas/web.sock;\n  }\n";
    let r = matrix(generated);
    assert!(endpoints(&r).is_empty(), "{r:?}");
    let r = matrix(&generated.replace("(login|logout|refresh)", "(login)"));
    assert_eq!(
        endpoints(&r),
        ["/_matrix/client/v3/logout", "/_matrix/client/v3/refresh"],
        "{r:?}"
    );
    let r = matrix("");
    assert_eq!(endpoints(&r).len(), 3, "{r:?}");
    assert!(
        r.warnings[0].starts_with("site.conf:3: /_matrix/client/v3/login lands in `location /_matrix/`, where the homeserver's client paths go too, not in a location of MAS's compatibility endpoints"),
        "{r:?}"
    );
    // Other spellings of the compat location, nested in the homeserver's
    // or not, are compat locations all the same; a federation server and
    // one whose locations may come from an include are left alone.
    for compat in [
        "  location ~ ^\\/_matrix\\/client\\/(r0|v3)\\/(login|logout|refresh) {\n    proxy_pass http://unix:/run/mas/web.sock;\n  }\n",
        "  location ~* ^/_matrix/client/[^/]+/(log(in|out)|refresh) {\n    proxy_pass http://unix:/run/mas/web.sock;\n  }\n",
        "  location ~ ^/_matrix/client/(?:r0|v3)/(login|logout|refresh)(/|$) {\n    proxy_pass http://unix:/run/mas/web.sock;\n  }\n",
    ] {
        let r = matrix(compat);
        assert!(endpoints(&r).is_empty(), "{compat}: {r:?}");
        assert!(r.problems.is_empty(), "{compat}: {r:?}");
    }
    let r = report_for(WITH_INTERNAL, "server {\n  listen 8448 ssl;\n  server_name matrix.example.com;\n  location /_matrix/ {\n    proxy_pass http://127.0.0.1:8008;\n  }\n}\n");
    assert!(endpoints(&r).is_empty(), "{r:?}");
    let r = matrix("  include snippets/mas-compat.conf;\n");
    assert!(endpoints(&r).is_empty(), "{r:?}");
}

/// Which locations are MAS's follows where MAS's paths land, not what a
/// location's text holds: under a prefix, `location /auth` (no slash) is
/// MAS's and `location /` the homeserver's; a homeserver regex that names
/// `auth` or a registration token is not MAS's either.
#[test]
fn locations_are_masss_where_its_paths_land() {
    let under_prefix = WITH_INTERNAL
        .replace("https://auth.example.com/", "https://example.com/auth/")
        .replace(
            "    - name: web\n",
            "    - name: web\n      prefix: /auth\n",
        )
        .replace("{name: graphql}]", "{name: graphql}, {name: assets}]");
    let site = "server {\n  server_name example.com;\n  location /auth {\n    proxy_pass http://unix:/run/mas/web.sock;\n  }\n  location ~ ^/_matrix/client/v1/auth_metadata {\n    proxy_pass http://127.0.0.1:8008;\n  }\n  location ~ ^/_matrix/client/v1/register/m.login.registration_token/validity {\n    proxy_pass http://127.0.0.1:8008;\n  }\n  location ~ ^/_matrix/client/[^/]+/(login|logout|refresh)(/|$) {\n    proxy_pass http://unix:/run/mas/web.sock:/auth$request_uri;\n  }\n  location / {\n    proxy_pass http://127.0.0.1:8008;\n  }\n}\n";
    let r = report_for(&under_prefix, site);
    assert!(r.problems.is_empty(), "{r:?}");
}

/// A server of public_base's name on another port (the homeserver's
/// federation on 8448) is not MAS's when one on public_base's port is.
#[test]
fn a_server_of_the_same_name_on_another_port_is_not_masss() {
    let mas = "  listen 443 ssl;\n  server_name auth.example.com;\n  location ^~ /assets/ {\n    alias /usr/share/mas/assets/;\n  }\n  location / {\n    proxy_pass http://unix:/run/mas/web.sock;\n  }\n";
    let federation = "  listen 8448 ssl;\n  server_name auth.example.com;\n  location / {\n    proxy_pass http://127.0.0.1:8008;\n  }\n";
    let r = report_for(
        WITH_INTERNAL,
        &format!("server {{\n{mas}}}\nserver {{\n{federation}}}\n"),
    );
    assert!(r.problems.is_empty(), "{r:?}");
    // Alone, it is taken for MAS's (as behind another TLS terminator).
    let r = report_for(WITH_INTERNAL, &format!("server {{\n{federation}}}\n"));
    assert_eq!(r.problems.len(), 1, "{r:?}");
}

/// The server nginx picks for the auth host is MAS's, however it is named:
/// a wildcard or a regular expression that matches, unless a better match
/// (an exact name) listens on the same port.
#[test]
fn the_server_nginx_picks_for_the_auth_host_is_checked() {
    let wrong = "proxy_pass http://unix:/run/mas/other.sock;";
    for name in [
        "*.example.com",
        ".example.com",
        "auth.*",
        "~^auth\\.example\\.com$",
        "~^AUTH\\.",
    ] {
        let r = report(&format!("server {{\n  listen 443;\n  server_name {name};\n  location / {{\n    {wrong}\n  }}\n}}\n"));
        assert_eq!(r.problems.len(), 1, "{name}: {r:?}");
    }
    // An exact name wins on its port; the wildcard's server is another's.
    let r = report(&format!("server {{\n  listen 443;\n  server_name *.example.com;\n  location / {{\n    {wrong}\n  }}\n}}\nserver {{\n  listen 443;\n  server_name auth.example.com;\n  location / {{\n    proxy_pass http://unix:/run/mas/web.sock;\n  }}\n}}\n"));
    assert!(r.problems.is_empty(), "{r:?}");
    // Names that do not match, and a default server: not taken for MAS's.
    for name in [
        "*.example.org",
        "example.com",
        "~^matrix\\.",
        "auth.example.com.evil",
    ] {
        let r = report(&format!("server {{\n  listen 443 default_server;\n  server_name {name};\n  location / {{\n    {wrong}\n  }}\n}}\n"));
        assert!(r.problems.is_empty(), "{name}: {r:?}");
    }
    // A regular expression is read as written (`\S`, `(?P<name>...)`), and
    // one that cannot be read here (look-ahead) leaves the pick to nginx:
    // nothing is checked rather than another server.
    let right = "proxy_pass http://unix:/run/mas/web.sock;";
    for first in [
        "~^(?P<sub>\\w+)\\.example\\.com$",
        "~^\\S+\\.example\\.com$",
        "~^(?!www)\\w+\\.example\\.com$",
    ] {
        let r = report(&format!("server {{\n  listen 443;\n  server_name {first};\n  location / {{\n    {right}\n  }}\n}}\nserver {{\n  listen 443;\n  server_name ~^(?<any>.+)\\.example\\.com$;\n  location / {{\n    {wrong}\n  }}\n}}\n"));
        assert!(r.problems.is_empty(), "{first}: {r:?}");
    }
    // An address or name alone is port 80, a Unix socket its own place.
    for listen in [
        "127.0.0.1",
        "localhost",
        "*",
        "[::1]",
        "unix:/run/nginx-mas.sock",
    ] {
        let r = report(&format!("server {{\n  listen {listen};\n  server_name auth.example.com;\n  location / {{\n    {wrong}\n  }}\n}}\n"));
        assert_eq!(r.problems.len(), 1, "{listen}: {r:?}");
    }
    // A name in Unicode is not the host's xn-- form to nginx.
    let idn = report_for(
        &CONFIG.replace("auth.example.com", "xn--uth-pla.example.com"),
        &format!("server {{\n  server_name \u{e4}uth.example.com;\n  location / {{\n    {wrong}\n  }}\n}}\n"),
    );
    assert!(idn.problems.is_empty(), "{idn:?}");
    // A server on an address of its own is picked for that address, the
    // wildcard's for every other: both are MAS's, whichever is wrong.
    for (on_address, on_any) in [(wrong, right), (right, wrong)] {
        let r = report(&format!("server {{\n  listen 127.0.0.2:443;\n  server_name auth.example.com;\n  location / {{\n    {on_address}\n  }}\n}}\nserver {{\n  listen 443;\n  server_name auth.example.com;\n  location / {{\n    {on_any}\n  }}\n}}\n"));
        assert_eq!(r.problems.len(), 1, "{on_address}: {r:?}");
    }
    // An expression without an upper-case letter is compared with case, as
    // nginx compiles it: `\x41` is no `a`.
    let r = report(&format!("server {{\n  listen 443;\n  server_name ~^\\x41uth\\.example\\.com$;\n  location / {{\n    {wrong}\n  }}\n}}\n"));
    assert!(r.problems.is_empty(), "{r:?}");
    // A name an earlier server took is ignored, as nginx ignores a
    // "conflicting server name": `.example.com` conflicts with `example.com`.
    let www = report_for(
        &CONFIG.replace("auth.example.com", "www.example.com"),
        &format!("server {{\n  listen 443;\n  server_name example.com;\n  location / {{\n    {right}\n  }}\n}}\nserver {{\n  listen 443;\n  server_name .example.com;\n  location / {{\n    {wrong}\n  }}\n}}\n"),
    );
    assert!(www.problems.is_empty(), "{www:?}");
    // nginx reads the scheme and `unix:` in any case.
    let r = report("server {\n  listen 443;\n  server_name auth.example.com;\n  location / {\n    proxy_pass HTTP://UNIX:/run/mas/other.sock;\n  }\n}\n");
    assert_eq!(r.problems.len(), 1, "{r:?}");
}

/// MAS's own paths that a location answers with an error of nginx's
/// (`return 404`, as in a site generated for a listener `prefix` that
/// public_base does not end with) are warned of, once per location; a
/// redirect, or a location no path of MAS reaches, is not.
#[test]
fn mas_paths_that_nginx_answers_with_an_error_are_warned_of() {
    let refusals = |r: &Report| -> Vec<String> {
        r.warnings
            .iter()
            .filter(|w| w.contains("answers MAS's own paths"))
            .cloned()
            .collect()
    };
    let r = report("server {\n  server_name auth.example.com;\n  location /auth/ {\n    proxy_pass http://unix:/run/mas/web.sock;\n  }\n  location / {\n    return 404;\n  }\n}\n");
    assert!(r.problems.is_empty(), "{r:?}");
    assert_eq!(
        refusals(&r),
        ["site.conf:7: `return 404` answers MAS's own paths under public_base (/.well-known/openid-configuration, /.well-known/webfinger, /login, and 22 more), which land in `location /`, so MAS's links and redirects to them fail there; if MAS should serve them, send them to MAS (with a listener `prefix`, public_base must end with it)"]
    );
    for answer in [
        "return 301 https://elsewhere.example.com$request_uri;",
        "return 200 ok;",
    ] {
        let r = report(&format!(
            "server {{\n  server_name auth.example.com;\n  location / {{\n    {answer}\n  }}\n}}\n"
        ));
        assert!(refusals(&r).is_empty(), "{answer}: {r:?}");
    }
    let r = report("server {\n  server_name auth.example.com;\n  location / {\n    proxy_pass http://unix:/run/mas/web.sock;\n  }\n  location = /secret {\n    return 403;\n  }\n}\n");
    assert!(refusals(&r).is_empty(), "{r:?}");
    // An error that error_page hands on, or paths a rewrite moves first.
    let r = report("server {\n  server_name auth.example.com;\n  location / {\n    error_page 418 = @mas;\n    return 418;\n  }\n  location @mas {\n    proxy_pass http://unix:/run/mas/web.sock;\n  }\n}\n");
    assert!(refusals(&r).is_empty(), "{r:?}");
    let r = report("server {\n  server_name auth.example.com;\n  rewrite ^/(.*)$ /mas/$1 last;\n  location / {\n    return 404;\n  }\n  location /mas/ {\n    proxy_pass http://unix:/run/mas/web.sock/;\n  }\n}\n");
    assert!(refusals(&r).is_empty(), "{r:?}");
    // An error_page of the http level, or a redirect in the server's `if`.
    let r = report("error_page 418 = @mas;\nserver {\n  server_name auth.example.com;\n  location / {\n    return 418;\n  }\n  location @mas {\n    proxy_pass http://unix:/run/mas/web.sock;\n  }\n}\n");
    assert!(refusals(&r).is_empty(), "{r:?}");
    let r = report("server {\n  if ($host = auth.example.com) {\n    return 301 https://$host$request_uri;\n  }\n  listen 80;\n  server_name auth.example.com;\n  location / {\n    return 404;\n  }\n}\n");
    assert!(refusals(&r).is_empty(), "{r:?}");
}
