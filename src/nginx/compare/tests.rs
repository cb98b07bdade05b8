//! Specs of `check --nginx`: each mismatch is one line naming the site's
//! line and the config's position; a matching site gives notes only.

use std::net::SocketAddr;
use std::path::Path;

use super::*;
use crate::config::check_texts;
use crate::config::plan::SystemResolver;
use crate::nginx::syntax::parse;

const CONFIG: &str = "http:
  public_base: https://auth.example.com/
  listeners:
    - name: web
      resources: [{name: human}, {name: compat}]
      binds:
        - socket: /run/mas/web.sock
    - name: proxied
      proxy_protocol: true
      resources: [{name: human}]
      binds:
        - host: 127.0.0.1
          port: 8081
";

fn report(site: &str) -> Report {
    let plan = check_texts(&[("mas.yaml", CONFIG)], &SystemResolver).expect("valid config");
    let tree = parse(site).expect("valid nginx syntax");
    compare(&plan, Path::new("site.conf"), &tree, &SystemResolver)
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
        "site.conf:4: proxy_pass to unix:/run/mas/wrong.sock, which no bind of the config has (the nearest is socket /run/mas/web.sock at mas.yaml:7:11: http.listeners[0].binds[0]); point it at unix:/run/mas/web.sock or 127.0.0.1:8081"
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
        let config = format!("http:\n  public_base: https://auth.example.com/\n  listeners:\n    - name: web\n      resources: [{{name: human}}]\n      binds:\n        - {bind}\n");
        let plan = check_texts(&[("mas.yaml", &config)], &SystemResolver).expect("valid config");
        let check = |target: &str| {
            let site = format!("server {{\n  server_name auth.example.com;\n  location / {{\n    proxy_pass http://{target};\n  }}\n}}\n");
            let tree = parse(&site).expect("valid nginx syntax");
            compare(&plan, Path::new("site.conf"), &tree, &SystemResolver)
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
      resources: [{name: human}, {name: compat}]
      binds:
        - host: 127.0.0.1
          port: 8080
";

fn report_same_host(site: &str) -> Report {
    let plan = check_texts(&[("mas.yaml", SAME_HOST)], &SystemResolver).expect("valid config");
    let tree = parse(site).expect("valid nginx syntax");
    compare(&plan, Path::new("site.conf"), &tree, &SystemResolver)
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
    let check = |pass: &str| {
        let site = format!("upstream mas_compat {{\n  server 127.0.0.1:8081;\n}}\nserver {{\n  server_name matrix.example.com;\n  location ~ ^/_matrix/client/[^/]+/(login|logout|refresh)(/|$) {{\n    proxy_pass {pass};\n  }}\n}}\n");
        let tree = parse(&site).expect("valid nginx syntax");
        compare(&plan, Path::new("site.conf"), &tree, &SystemResolver)
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
