//! Specs of the config reader: what MAS accepts and means is accepted; what MAS
//! would misread or refuse is one error line at file:line:column.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::plan::Resolver;
use super::*;

/// Resolves one test name without DNS.
struct FakeResolver;

impl Resolver for FakeResolver {
    fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        match host {
            "mas.internal" => Ok(vec![
                format!("192.0.2.10:{port}").parse().unwrap(),
                format!("[2001:db8::10]:{port}").parse().unwrap(),
            ]),
            _ => Err("Name or service not known".into()),
        }
    }
}

/// MAS requires `http.public_base`; a first file gives it, so the file under
/// test (`c.yaml`) keeps its line numbers.
const BASE: (&str, &str) = (
    "base.yaml",
    "http:\n  public_base: https://auth.example.com/\n",
);

fn plan(text: &str) -> Plan {
    match check_texts(&[BASE, ("c.yaml", text)], &FakeResolver) {
        Ok(plan) => plan,
        Err(e) => panic!("config should be valid, got:\n{e}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    match check_texts(&[BASE, ("c.yaml", text)], &FakeResolver) {
        Ok(plan) => panic!("config should be refused, got {plan:#?}"),
        Err(e) => e.to_string().lines().map(str::to_owned).collect(),
    }
}

fn one_error(text: &str) -> String {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    errors.into_iter().next().unwrap()
}

/// A listener with the given binds (YAML flow items), at a known position:
/// the first bind is on line 5, column 11.
fn with_binds(binds: &[&str]) -> String {
    let mut text = String::from("http:\n  listeners:\n    - name: web\n      binds:\n");
    for b in binds {
        text.push_str(&format!("        - {b}\n"));
    }
    text.push_str("      resources:\n        - name: health\n");
    text
}

#[test]
fn reference_reverse_proxy_config_is_accepted() {
    let plan = plan(
        "http:\n  public_base: https://auth.example.com/\n  listeners:\n    - name: web\n      resources:\n        - name: discovery\n        - name: human\n        - name: oauth\n        - name: compat\n        - name: graphql\n      binds:\n        - host: localhost\n          port: 8080\n",
    );
    let bind = plan.binds().next().unwrap();
    assert_eq!(
        bind.spec,
        BindSpec::HostPort {
            host: Some("localhost".into()),
            port: 8080
        }
    );
    assert_eq!(
        bind.endpoints,
        vec![
            Endpoint::Tcp("127.0.0.1:8080".parse().unwrap()),
            Endpoint::Tcp("[::1]:8080".parse().unwrap())
        ]
    );
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
}

#[test]
fn no_http_section_means_mas_default_listeners() {
    let plan = check_texts(
        &[(
            "c.yaml",
            "database:\n  uri: postgresql://mas@localhost/mas\n",
        )],
        &FakeResolver,
    )
    .unwrap();
    assert!(plan.http_is_default);
    let binds: Vec<_> = plan.binds().map(|b| b.spec.clone()).collect();
    assert_eq!(
        binds,
        vec![
            BindSpec::Address("[::]:8080".parse().unwrap()),
            BindSpec::HostPort {
                host: Some("localhost".into()),
                port: 8081
            }
        ]
    );
    assert_eq!(plan.listeners[1].name.as_deref(), Some("internal"));
}

#[test]
fn every_bind_form_is_read() {
    let plan = plan(&with_binds(&[
        "{port: 8090}",
        "{host: 127.0.0.2, port: 8080}",
        "{host: '::1', port: 8081}",
        "{address: '[::1]:8082'}",
        "{socket: /run/mas/web.sock, mode: '660'}",
        "{socket: /run/mas/other.sock}",
        "{fd: 0}",
        "{fd: 1, kind: unix}",
    ]));
    let specs: Vec<_> = plan.binds().map(|b| b.spec.clone()).collect();
    assert_eq!(
        specs,
        vec![
            BindSpec::HostPort {
                host: None,
                port: 8090
            },
            BindSpec::HostPort {
                host: Some("127.0.0.2".into()),
                port: 8080
            },
            BindSpec::HostPort {
                host: Some("::1".into()),
                port: 8081
            },
            BindSpec::Address("[::1]:8082".parse().unwrap()),
            BindSpec::Unix {
                path: PathBuf::from("/run/mas/web.sock"),
                mode: Some(0o660)
            },
            BindSpec::Unix {
                path: PathBuf::from("/run/mas/other.sock"),
                mode: None
            },
            BindSpec::Fd {
                index: 0,
                kind: FdKind::Tcp
            },
            BindSpec::Fd {
                index: 1,
                kind: FdKind::Unix
            },
        ]
    );
}

#[test]
fn bind_without_host_stands_for_the_dual_stack_wildcard() {
    let plan = plan(&with_binds(&["{port: 8080}"]));
    assert_eq!(
        plan.binds().next().unwrap().endpoints,
        vec![Endpoint::AnyTcp(8080)]
    );
}

#[test]
fn other_host_names_are_resolved_with_a_warning() {
    let plan = plan(&with_binds(&["{host: mas.internal, port: 8080}"]));
    assert_eq!(plan.binds().next().unwrap().endpoints.len(), 2);
    assert_eq!(plan.warnings.len(), 1);
    assert!(
        plan.warnings[0].contains("192.0.2.10:8080"),
        "{:?}",
        plan.warnings
    );
}

#[test]
fn unknown_sections_and_listener_keys_are_kept() {
    let plan = plan(
        "secrets:\n  encryption: c0ffee\nhttp:\n  listeners:\n    - name: web\n      prefix: /auth\n      proxy_protocol: true\n      resources: [{name: human}, {name: assets, path: /srv}]\n      binds: [{port: 8080}]\n",
    );
    assert!(plan.listeners[0].proxy_protocol);
    assert_eq!(
        plan.merged["secrets"]["encryption"].as_str(),
        Some("c0ffee")
    );
    assert_eq!(
        plan.merged["http"]["listeners"][0]["prefix"].as_str(),
        Some("/auth")
    );
}

#[test]
fn empty_bind_is_refused_because_mas_reads_it_as_fd_0() {
    assert_eq!(
        one_error(&with_binds(&["{}"])),
        "c.yaml:5:11: http.listeners[0].binds[0]: the bind is empty, and MAS would read it as `fd: 0`; write `host`+`port`, `address`, `socket` or an explicit `fd`"
    );
}

#[test]
fn host_without_port_is_refused() {
    assert_eq!(
        one_error(&with_binds(&["{host: localhost}"])),
        "c.yaml:5:11: http.listeners[0].binds[0]: `host: localhost` has no `port`, and MAS would read the bind as `fd: 0`; add `port:`"
    );
}

#[test]
fn misspelt_key_is_refused_with_a_suggestion() {
    let e = one_error(&with_binds(&["{adress: '127.0.0.1:8080'}"]));
    assert!(
        e.starts_with("c.yaml:5:12: http.listeners[0].binds[0].adress: unknown key `adress` in a bind (did you mean `address`?)"),
        "{e}"
    );
    let e = one_error(&with_binds(&["{host: localhost, prot: 8080}"]));
    assert!(
        e.contains("unknown key `prot` in a bind (did you mean `port`?); MAS would ignore it and read the bind as `fd: 0`"),
        "{e}"
    );
}

#[test]
fn an_unknown_key_beside_a_whole_bind_is_said_to_be_ignored_only() {
    // MAS reads the rest as the bind it is; only the stray key is lost.
    for bind in [
        "{host: localhost, port: 8080, tls: true}",
        "{address: '127.0.0.1:8080', name: x}",
        "{socket: /run/mas/web.sock, owner: mas}",
        "{fd: 1, label: web}",
    ] {
        let e = one_error(&with_binds(&[bind]));
        assert!(
            e.contains("; MAS would ignore it. Use only "),
            "{bind}: {e}"
        );
        assert!(!e.contains("fd: 0"), "{bind}: {e}");
    }
}

#[test]
fn quoted_port_is_refused() {
    assert_eq!(
        one_error(&with_binds(&["{host: localhost, port: \"80\"}"])),
        "c.yaml:5:35: http.listeners[0].binds[0].port: `port: \"80\"` is a string, and MAS would read the bind as `fd: 0`; write a number from 1 to 65535 without quotes"
    );
}

#[test]
fn port_zero_and_out_of_range_are_refused() {
    assert!(
        one_error(&with_binds(&["{port: 0}"])).contains("port 0 asks the kernel for a random port")
    );
    assert!(one_error(&with_binds(&["{address: '127.0.0.1:0'}"])).contains("port 0"));
    assert!(one_error(&with_binds(&["{port: 70000}"])).contains("port 70000 is out of range"));
    assert!(one_error(&with_binds(&["{port: -1}"])).contains("port -1 is out of range"));
}

#[test]
fn listener_without_binds_or_resources_is_refused() {
    assert_eq!(
        one_error("http:\n  listeners:\n    - name: web\n      resources: [{name: health}]\n      binds: []\n"),
        "c.yaml:5:14: http.listeners[0].binds: the listener has no binds; add at least one, e.g. `binds: [{host: localhost, port: 8080}]`"
    );
    assert_eq!(
        one_error("http:\n  listeners:\n    - name: web\n      binds: [{port: 8080}]\n"),
        "c.yaml:3:7: http.listeners[0].resources: the listener has no resources; add at least one, e.g. `resources: [{name: health}]`"
    );
}

#[test]
fn same_address_twice_is_refused_even_across_forms_and_files() {
    let e = one_error(&with_binds(&[
        "{host: 127.0.0.1, port: 8080}",
        "{address: '127.0.0.1:8080'}",
    ]));
    assert!(e.starts_with("c.yaml:6:11: http.listeners[0].binds[1]: address 127.0.0.1:8080 is also bound by host 127.0.0.1 port 8080 at c.yaml:5:11"), "{e}");
    // localhost covers 127.0.0.1; a bind with no host covers everything on its port.
    assert_eq!(
        errors(&with_binds(&[
            "{host: localhost, port: 8080}",
            "{host: 127.0.0.1, port: 8080}"
        ]))
        .len(),
        1
    );
    assert_eq!(
        errors(&with_binds(&["{port: 8080}", "{address: '[::1]:8080'}"])).len(),
        1
    );
    assert_eq!(
        errors(&with_binds(&[
            "{socket: /run/a.sock}",
            "{socket: /run/a.sock, mode: '600'}"
        ]))
        .len(),
        1
    );
    // An IPv4-mapped IPv6 address takes the IPv4 address's port.
    assert_eq!(
        errors(&with_binds(&[
            "{host: 127.0.0.1, port: 8080}",
            "{host: '::ffff:127.0.0.1', port: 8080}"
        ]))
        .len(),
        1
    );
    assert_eq!(
        errors(&with_binds(&[
            "{address: '[::ffff:127.0.0.1]:8080'}",
            "{address: '0.0.0.0:8080'}"
        ]))
        .len(),
        1
    );
    // Different ports, or v4 wildcard against v6 loopback, are fine.
    plan(&with_binds(&[
        "{address: '0.0.0.0:8080'}",
        "{address: '[::1]:8080'}",
        "{port: 8081}",
    ]));
    plan(&with_binds(&[
        "{address: '[::ffff:0.0.0.0]:8082'}",
        "{address: '[::1]:8082'}",
    ]));
    // Across files: the second file's listener is located in the second file.
    let first = "http:\n  listeners:\n    - name: web\n      resources: [{name: human}]\n      binds: [{port: 8080}]\n";
    let second = "http:\n  listeners:\n    - name: again\n      resources: [{name: health}]\n      binds:\n        - {host: localhost, port: 8080}\n";
    let e = check_texts(
        &[BASE, ("a.yaml", first), ("b.yaml", second)],
        &FakeResolver,
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("b.yaml:6:11: http.listeners[1].binds[0]: host localhost port 8080 is also bound by port 8080 at a.yaml:5:15"), "{e}");
}

#[test]
fn unix_path_longer_than_sun_path_is_refused() {
    let long = format!("/run/{}.sock", "m".repeat(100));
    let e = one_error(&with_binds(&[&format!("{{socket: {long}}}")]));
    assert!(
        e.contains("is 110 bytes, longer than the 107 a socket address holds"),
        "{e}"
    );
    let fits = format!("/run/{}.sock", "m".repeat(97));
    assert_eq!(fits.len(), 107);
    plan(&with_binds(&[&format!("{{socket: {fits}}}")]));
}

#[test]
fn mode_must_be_a_quoted_octal_string() {
    assert!(
        one_error(&with_binds(&["{socket: /run/a.sock, mode: '668'}"]))
            .contains("`mode: 668` is not an octal permission string")
    );
    assert!(
        one_error(&with_binds(&["{socket: /run/a.sock, mode: 660}"]))
            .contains("`mode: 660` is not an octal permission string; write it quoted")
    );
    assert!(one_error(&with_binds(&["{mode: '660'}"]))
        .contains("`mode` applies only to a `socket` bind"));
    let plan = plan(&with_binds(&["{socket: /run/a.sock, mode: '0600'}"]));
    assert_eq!(
        plan.binds().next().unwrap().spec,
        BindSpec::Unix {
            path: "/run/a.sock".into(),
            mode: Some(0o600)
        }
    );
}

#[test]
fn mixed_forms_and_bad_fd_binds_are_refused() {
    assert!(one_error(&with_binds(&[
        "{host: localhost, port: 80, address: '[::1]:80'}"
    ]))
    .contains("mixes `host` and `address`"));
    assert!(one_error(&with_binds(&["{fd: 1, kind: udp}"]))
        .contains("`kind: \"udp\"` is not tcp or unix"));
    assert!(one_error(&with_binds(&["{kind: unix}"])).contains("`kind` without `fd`"));
    assert!(one_error(&with_binds(&["{fd: -1}"])).contains("`fd: -1` is not a non-negative number"));
    assert!(one_error(&with_binds(&["{fd: 0}", "{fd: 0, kind: unix}"]))
        .contains("is also bound by fd 0 (tcp)"));
}

#[test]
fn bracketed_and_unresolvable_hosts_are_refused() {
    assert!(one_error(&with_binds(&["{host: '[::1]', port: 80}"]))
        .contains("write the address without them: `host: \"::1\"`"));
    assert!(
        one_error(&with_binds(&["{host: nowhere.invalid, port: 80}"]))
            .contains("cannot resolve `host: nowhere.invalid`")
    );
    assert!(one_error(&with_binds(&["{address: 'localhost:8080'}"]))
        .contains("is not an IP address with a port"));
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let errors = errors(&with_binds(&["{}", "{port: 0}", "{prot: 1}"]));
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

#[test]
fn structure_errors_name_the_key() {
    assert!(one_error("http: 3\n").contains("`http` is a number, not a mapping"));
    assert!(one_error("http:\n  listeners: {}\n").contains("`listeners` is a mapping, not a list"));
    assert!(one_error("http:\n  public_base: https://a/\n")
        .contains("`http` has no `listeners`, so MAS would serve no HTTP at all"));
    assert!(
        one_error("http:\n  listeners: [web]\n").contains("a listener is a string, not a mapping")
    );
    assert!(
        one_error(&with_binds(&["localhost:8080"])).contains("a bind is a string, not a mapping")
    );
}

#[test]
fn config_paths_follow_mas_precedence() {
    use std::ffi::OsStr;
    let given = vec![PathBuf::from("a.yaml")];
    assert_eq!(
        config_paths(&given, Some(OsStr::new("b:c"))).unwrap(),
        given
    );
    assert_eq!(
        config_paths(&[], Some(OsStr::new("b.yaml::c.yaml"))).unwrap(),
        vec![PathBuf::from("b.yaml"), PathBuf::from("c.yaml")]
    );
    assert_eq!(
        config_paths(&[], None).unwrap(),
        vec![PathBuf::from("config.yaml")]
    );
    assert!(config_paths(&[], Some(OsStr::new(":"))).unwrap().is_empty());
}

#[test]
fn mas_config_that_is_not_utf8_is_refused() {
    use std::os::unix::ffi::OsStrExt as _;
    let value = std::ffi::OsStr::from_bytes(b"/etc/mas/\xff.yaml:/etc/mas/b.yaml");
    // MAS cannot read such a MAS_CONFIG and would read config.yaml instead.
    let err = config_paths(&[], Some(value)).unwrap_err();
    assert!(
        err.starts_with("MAS_CONFIG=\"/etc/mas/\\xff.yaml:/etc/mas/b.yaml\" is not valid UTF-8"),
        "{err}"
    );
    assert!(
        err.contains("config.yaml") && err.contains("--config"),
        "{err}"
    );
    // --config wins, and is not subject to MAS_CONFIG's rules.
    let given = vec![PathBuf::from("a.yaml")];
    assert_eq!(config_paths(&given, Some(value)).unwrap(), given);
}

#[test]
fn rewrite_replaces_only_the_binds() {
    let plan = plan(&with_binds(&["{host: localhost, port: 8080}"]));
    let rewritten = plan.rewrite(&[vec![
        plan::fd_bind_value(0, FdKind::Tcp),
        plan::fd_bind_value(1, FdKind::Tcp),
    ]]);
    let listener = &rewritten["http"]["listeners"][0];
    assert_eq!(listener["name"].as_str(), Some("web"));
    assert_eq!(listener["binds"][1]["fd"].as_u64(), Some(1));
    assert_eq!(listener["binds"][1]["kind"].as_str(), Some("tcp"));
    assert_eq!(listener["resources"][0]["name"].as_str(), Some("health"));
}

#[test]
fn rewrite_of_default_listeners_writes_an_http_section() {
    let plan = check_texts(
        &[("c.yaml", "database: {uri: 'postgresql:///mas'}\n")],
        &FakeResolver,
    )
    .unwrap();
    let rewritten = plan.rewrite(&[
        vec![plan::fd_bind_value(0, FdKind::Tcp)],
        vec![plan::fd_bind_value(1, FdKind::Tcp)],
    ]);
    assert_eq!(
        rewritten["http"]["public_base"].as_str(),
        Some("http://[::]:8080/")
    );
    assert_eq!(
        rewritten["http"]["listeners"][1]["binds"][0]["fd"].as_u64(),
        Some(1)
    );
    assert_eq!(
        rewritten["database"]["uri"].as_str(),
        Some("postgresql:///mas")
    );
}

#[test]
fn http_without_public_base_is_refused() {
    let e = check_texts(
        &[(
            "c.yaml",
            "http:\n  listeners:\n    - resources: [{name: health}]\n      binds: [{port: 8081}]\n",
        )],
        &FakeResolver,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(e, "c.yaml:2:3: http: `http` has no `public_base`, which MAS requires; add e.g. `public_base: https://auth.example.com/`");
}

#[test]
fn duplicate_listener_names_are_warned_about() {
    let plan = plan("http:\n  listeners:\n    - name: web\n      resources: [{name: human}]\n      binds: [{port: 8080}]\n    - name: web\n      resources: [{name: health}]\n      binds: [{port: 8081}]\n");
    assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
    assert!(
        plan.warnings[0].starts_with(
            "c.yaml:6:7: http.listeners[1]: listener name `web` is also used at c.yaml:3:7"
        ),
        "{:?}",
        plan.warnings
    );
}

#[test]
fn a_mapping_used_as_a_key_is_refused() {
    let e = one_error(&format!(
        "{}weird:\n  ? {{k: v}}\n  : c\n",
        with_binds(&["{port: 8080}"])
    ));
    assert!(
        e.contains("weird: a mapping or list is used as a key here"),
        "{e}"
    );
}

#[test]
fn explicit_nulls_that_mas_refuses_are_refused() {
    assert!(one_error(&with_binds(&["{fd: 1, kind: null}"]))
        .contains("`kind: null` is not tcp or unix"));
    let e = one_error("http:\n  listeners:\n    - resources: [{name: health}]\n      proxy_protocol: null\n      binds: [{port: 8080}]\n");
    assert!(
        e.contains("`proxy_protocol` is empty, not true or false"),
        "{e}"
    );
}

#[test]
fn modes_are_read_as_mas_reads_them() {
    for (text, mode) in [
        ("660", 0o660),
        ("+660", 0o660),
        ("00660", 0o660),
        ("0600", 0o600),
    ] {
        assert_eq!(plan::parse_mode(text), Some(mode), "{text}");
    }
    for text in ["0o660", "rw-rw----", "", "-660", "77777"] {
        assert_eq!(plan::parse_mode(text), None, "{text}");
    }
}

#[test]
fn the_same_socket_through_a_symlinked_directory_is_a_duplicate() {
    let dir = std::env::temp_dir().join(format!("mas-sockets-unit.{}", std::process::id()));
    let real = dir.join("real");
    std::fs::create_dir_all(&real).unwrap();
    let link = dir.join("link");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let errors = errors(&with_binds(&[
        &format!("{{socket: {}/d.sock}}", real.display()),
        &format!("{{socket: {}/d.sock}}", link.display()),
    ]));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
}

#[test]
fn errors_stay_on_one_line_whatever_the_values() {
    let e = one_error(&with_binds(&[
        "{host: \"evil\\nmas-sockets: fake\", port: 80}",
    ]));
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("evil\\nmas-sockets: fake"), "{e}");
}

#[test]
fn hints_need_real_likeness() {
    let e = one_error(&with_binds(&["{\"<<\": 1, port: 80}"]));
    assert!(!e.contains("did you mean"), "{e}");
    assert!(one_error(&with_binds(&["{port: 8080.0}"])).contains("is not a whole number"));
}

#[test]
fn listener_variables_in_the_environment_are_found() {
    use std::ffi::OsString;
    let vars = [
        ("MAS_HTTP_LISTENERS", "[]"),
        ("mas_http", "{}"),
        ("MAS_HTTP_PUBLIC_BASE", "https://a/"),
        ("MAS_SOCKETS_LOG", "debug"),
    ]
    .map(|(k, v)| (OsString::from(k), OsString::from(v)));
    assert_eq!(
        listener_env_overrides(vars),
        ["MAS_HTTP_LISTENERS", "mas_http"]
    );
}

#[test]
fn prefix_tls_public_base_and_trusted_proxies_are_read() {
    let plan = plan(
        "http:\n  public_base: https://example.com/auth/\n  trusted_proxies: [127.0.0.1/8, '::1']\n  listeners:\n    - name: web\n      prefix: /auth\n      tls: {certificate_file: a, key_file: b}\n      proxy_protocol: true\n      resources: [{name: human}]\n      binds: [{port: 8080}]\n",
    );
    let web = &plan.listeners[0];
    assert_eq!(web.prefix.as_deref(), Some("/auth"));
    assert!(web.tls);
    assert_eq!(
        web.proxy_protocol_location.key,
        "http.listeners[0].proxy_protocol"
    );
    assert_eq!(
        plan.public_base.as_deref(),
        Some("https://example.com/auth/")
    );
    let shown: Vec<String> = plan
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(shown, ["127.0.0.1/8", "::1/128"]);
    assert!(plan.trusted_proxies_location.is_some());
}

#[test]
fn trusted_proxies_default_to_mas_list_and_bad_entries_are_refused() {
    let plan = plan(&with_binds(&["{port: 8080}"]));
    assert_eq!(plan.trusted_proxies.len(), 6);
    assert!(plan.trusted_proxies_location.is_none());
    assert!(!plan.listeners[0].tls);
    let e = one_error(
        "http:\n  trusted_proxies: [localhost]\n  listeners:\n    - resources: [{name: health}]\n      binds: [{port: 8080}]\n",
    );
    assert!(
        e.contains("http.trusted_proxies[0]: `\"localhost\"` is not an IP network"),
        "{e}"
    );
}

#[test]
fn listener_variables_are_found_as_figment_trims_them() {
    use std::ffi::OsString;
    // figment trims the name, and the key after the prefix, before it splits.
    let vars = [" MAS_HTTP", "MAS_ HTTP_LISTENERS", "MAS_HTTP_LISTENERS\t"]
        .map(|k| (OsString::from(k), OsString::from("[]")));
    assert_eq!(listener_env_overrides(vars).len(), 3);
    // An empty part makes figment skip the variable.
    let vars = [("MAS_HTTP__LISTENERS", "[]")].map(|(k, v)| (OsString::from(k), OsString::from(v)));
    assert!(listener_env_overrides(vars).is_empty());
}

#[test]
fn every_type_error_says_how_to_write_the_value() {
    let listener = |extra: &str| {
        format!(
            "http:\n  listeners:\n    - name: web\n      resources: [{{name: health}}]\n{extra}"
        )
    };
    let cases = [
        (
            listener("      binds: [{port: 8080}]\n      proxy_protocol: \"true\"\n"),
            "`proxy_protocol` is a string, not true or false; write `true` or `false` without quotes",
        ),
        (
            listener("      binds: {port: 8080}\n"),
            "`binds` is a mapping, not a list of binds; write each bind as a `- ` item, e.g. `binds: [{host: localhost, port: 8080}]`",
        ),
        (
            listener("      binds: [{port: 8080}]\n      prefix: [a]\n"),
            "`prefix` is a list, not a path such as /auth; write one path, e.g. `prefix: /auth`",
        ),
        (
            "http:\n  listeners:\n    - name: [web]\n      resources: [{name: health}]\n      binds: [{port: 8080}]\n".to_owned(),
            "`name` is a list, not a string; write one name, e.g. `name: web`",
        ),
        (
            "http:\n  listeners:\n    - resources: {name: health}\n      binds: [{port: 8080}]\n".to_owned(),
            "`resources` is a mapping, not a list of `- name: ...` items; write each resource as a `- name: ...` item, e.g. `resources: [{name: health}]`",
        ),
        (
            "http:\n  trusted_proxies: 127.0.0.1/8\n  listeners:\n    - resources: [{name: health}]\n      binds: [{port: 8080}]\n".to_owned(),
            "`trusted_proxies` is a string, not a list of IP networks; write a list, e.g. `trusted_proxies: [127.0.0.1/8, \"::1/128\"]`",
        ),
        (
            with_binds(&["{host: [a], port: 8080}"]),
            "`host` is a list, not a host name or IP address; write one, e.g. `host: localhost` or `host: \"::1\"`",
        ),
        (
            with_binds(&["{socket: 3}"]),
            "`socket` is a number, not a path; write the path, e.g. `socket: /run/mas/web.sock`",
        ),
        (
            with_binds(&["{fd: 1, kind: udp}"]),
            "`kind: \"udp\"` is not tcp or unix; write `kind: tcp` or `kind: unix`",
        ),
    ];
    let mut failures = Vec::new();
    for (text, want) in &cases {
        let e = one_error(text);
        if !e.ends_with(want) {
            failures.push(format!("got:  {e}\nwant: ...{want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_resource_without_a_name_is_refused_where_it_is() {
    // MAS tells resources apart by `name`: without one it refuses the config.
    assert_eq!(
        one_error("http:\n  listeners:\n    - name: web\n      binds: [{port: 8080}]\n      resources:\n        - name: human\n        - nmae: health\n"),
        "c.yaml:7:11: http.listeners[0].resources[1].nmae: the resource has no `name` (is `nmae` meant to be `name`?), and MAS refuses a config with such a resource; write e.g. `- name: health`"
    );
    assert_eq!(
        one_error("http:\n  listeners:\n    - name: web\n      binds: [{port: 8080}]\n      resources:\n        - {}\n"),
        "c.yaml:6:11: http.listeners[0].resources[0]: the resource has no `name`, and MAS refuses a config with such a resource; write e.g. `- name: health`"
    );
    assert_eq!(
        one_error("http:\n  listeners:\n    - name: web\n      binds: [{port: 8080}]\n      resources: [health]\n"),
        "c.yaml:5:19: http.listeners[0].resources[0]: the resource is a string, not a mapping, and MAS refuses the config; write it as `- name: health`"
    );
    assert!(
        one_error("http:\n  listeners:\n    - name: web\n      binds: [{port: 8080}]\n      resources: [{name: 3}]\n")
            .starts_with("c.yaml:5:26: http.listeners[0].resources[0].name: `name` is a number, not a resource name"),
    );
}

#[test]
fn an_unknown_resource_name_is_only_warned_about() {
    // A newer MAS may know it.
    let plan = plan("http:\n  listeners:\n    - name: web\n      binds: [{port: 8080}]\n      resources:\n        - name: human\n        - name: newthing\n");
    assert_eq!(plan.listeners[0].resources, ["human", "newthing"]);
    assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
    assert!(
        plan.warnings[0].starts_with(
            "c.yaml:7:17: http.listeners[0].resources[1].name: resource `newthing` is not one MAS 1.22 knows"
        ),
        "{:?}",
        plan.warnings
    );
}

#[test]
fn a_bind_reports_each_of_its_problems() {
    let e = errors(&with_binds(&["{hots: localhost, port: 80810}"]));
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(
        e[0].starts_with("c.yaml:5:12: http.listeners[0].binds[0].hots: unknown key `hots` in a bind (did you mean `host`?)"),
        "{e:#?}"
    );
    assert!(
        e[1].starts_with(
            "c.yaml:5:35: http.listeners[0].binds[0].port: port 80810 is out of range"
        ),
        "{e:#?}"
    );
    // Every value that is wrong by itself, and every stray key.
    for (bind, count) in [
        ("{adress: '127.0.0.1:80', prot: 80}", 2),
        ("{host: '[::1]', port: 0}", 2),
        ("{host: nowhere.invalid, port: 0}", 2),
        ("{socket: '', mode: 'rw'}", 2),
        ("{socket: /run/a.sock, mode: 'rw', fd: x}", 3),
        ("{fd: x, kind: udp}", 2),
        ("{kind: udp}", 2),
    ] {
        let e = errors(&with_binds(&[bind]));
        assert_eq!(e.len(), count, "{bind}: {e:#?}");
    }
    // No follow-on of a stray key: it may be the missing one.
    for bind in [
        "{host: localhost, prot: 8080}",
        "{sockt: /run/a.sock, mode: '660'}",
        "{knd: unix, fd: 1}",
        "{fdd: 1, kind: unix}",
    ] {
        let e = errors(&with_binds(&[bind]));
        assert_eq!(e.len(), 1, "{bind}: {e:#?}");
        assert!(e[0].contains("unknown key"), "{bind}: {e:#?}");
    }
}

#[test]
fn a_mode_beyond_the_permission_bits_is_refused() {
    for mode in ["7777", "4660", "1777", "77777"] {
        let e = one_error(&with_binds(&[&format!(
            "{{socket: /run/a.sock, mode: '{mode}'}}"
        )]));
        assert_eq!(
            e,
            format!("c.yaml:5:39: http.listeners[0].binds[0].mode: `mode: {mode}` sets bits beyond 0777 (setuid, setgid, sticky), which mean nothing on a socket; give the permission bits only, e.g. `mode: \"660\"`")
        );
    }
}

#[test]
fn a_mode_that_lets_others_connect_is_warned_about() {
    // connect(2) on a Unix socket needs write permission on it.
    for mode in ["0777", "666", "602"] {
        let plan = plan(&with_binds(&[&format!(
            "{{socket: /run/a.sock, mode: '{mode}'}}"
        )]));
        assert_eq!(plan.warnings, [format!(
            "c.yaml:5:39: http.listeners[0].binds[0].mode: `mode: {mode}` lets any local user connect to MAS (connecting to a Unix socket needs write permission, and this mode gives it to others); use e.g. `mode: \"660\"` and give the clients the socket's group (generate-units --socket-group)"
        )]);
    }
    for mode in ["660", "0600", "664", "0775"] {
        let plan = plan(&with_binds(&[&format!(
            "{{socket: /run/a.sock, mode: '{mode}'}}"
        )]));
        assert!(plan.warnings.is_empty(), "{mode}: {:?}", plan.warnings);
    }
}

#[test]
fn a_prefix_mas_would_panic_on_is_refused_at_the_prefix() {
    assert_eq!(
        one_error("http:\n  listeners:\n    - name: web\n      prefix: auth\n      resources: [{name: human}]\n      binds: [{port: 8080}]\n"),
        "c.yaml:4:15: http.listeners[0].prefix: `prefix: auth` does not start with `/`: MAS nests its routes under `auth/`, and its router panics at start-up on a path without a leading `/`; write `prefix: /auth`"
    );
    let plan = plan("http:\n  listeners:\n    - name: web\n      prefix: /{tenant}\n      resources: [{name: human}]\n      binds: [{port: 8080}]\n");
    assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
    assert!(
        plan.warnings[0].starts_with("c.yaml:4:15: http.listeners[0].prefix: `prefix: /{tenant}` holds the capture `{tenant}`"),
        "{:?}",
        plan.warnings
    );
}

#[test]
fn a_near_miss_of_a_known_section_is_warned_about() {
    // MAS ignores `htpp:` and serves its built-in listeners instead.
    for key in ["htpp", "HTTP", "http_"] {
        let text = format!("{key}:\n  public_base: https://a/\n  listeners:\n    - resources: [{{name: health}}]\n      binds: [{{host: 127.0.0.1, port: 8080}}]\n");
        let plan = check_texts(&[("c.yaml", &text)], &FakeResolver).unwrap();
        assert!(plan.http_is_default);
        assert_eq!(plan.warnings, [format!(
            "c.yaml:1:1: {key}: `{key}` is not a section MAS knows (did you mean `http`?); MAS ignores it, and without an `http` section serves its built-in listeners on every address ([::]:8080); rename it to `http`"
        )]);
    }
    let plan = plan(&format!(
        "{}databse:\n  uri: postgresql:///mas\n",
        with_binds(&["{port: 8080}"])
    ));
    assert_eq!(plan.warnings, ["c.yaml:8:1: databse: `databse` is not a section MAS knows (did you mean `database`?); MAS ignores it, so none of its settings apply; rename it to `database`"]);
}

#[test]
fn other_tools_sections_stay_silent() {
    let plan = plan(&format!(
        "{}synapse:\n  a: 1\nlogging: {{}}\nx-anchors: &a {{}}\ndatabase: {{}}\n",
        with_binds(&["{port: 8080}"])
    ));
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
}

#[test]
fn a_near_miss_is_warned_about_beside_the_errors() {
    let text = format!("databse:\n  uri: x\n{}", with_binds(&["{port: 0}"]));
    let Err(LoadError::Invalid(refused)) = check_texts(&[BASE, ("c.yaml", &text)], &FakeResolver)
    else {
        panic!("config should be refused");
    };
    assert_eq!(refused.errors.len(), 1, "{:?}", refused.errors);
    assert_eq!(refused.warnings, ["c.yaml:1:1: databse: `databse` is not a section MAS knows (did you mean `database`?); MAS ignores it, so none of its settings apply; rename it to `database`"]);
    // Also when `http` itself is refused before its listeners are read.
    let Err(LoadError::Invalid(refused)) =
        check_texts(&[("c.yaml", "databse: {}\nhttp: 5\n")], &FakeResolver)
    else {
        panic!("config should be refused");
    };
    assert_eq!(refused.warnings.len(), 1, "{:?}", refused.warnings);
}

/// figment keeps an integer that fits neither i64 nor u64 as a 128-bit
/// number; MAS accepts it wherever it reads no setting from it.
#[test]
fn integers_beyond_64_bits_are_accepted_and_written_back_unchanged() {
    let text = format!(
        "{}weird:\n  big: 123456789012345678901234567890\n  neg: -9223372036854775809\n  max: 340282366920938463463374607431768211455\n  min: -170141183460469231731687303715884105728\n  hex: 0x1ffffffffffffffffffff\n  list: [18446744073709551616]\n  keyed: {{123456789012345678901234567890: a}}\n",
        with_binds(&["{port: 8080}"])
    );
    let plan = plan(&text);
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let weird = &plan.merged["weird"];
    assert_eq!(
        raw::big_int(&weird["big"]),
        Some("123456789012345678901234567890")
    );
    assert_eq!(
        raw::big_int(&weird["hex"]),
        Some("2417851639229258349412351")
    );
    let yaml = raw::to_yaml(&plan.merged).unwrap();
    for line in [
        "  big: 123456789012345678901234567890\n",
        "  neg: -9223372036854775809\n",
        "  max: 340282366920938463463374607431768211455\n",
        "  min: -170141183460469231731687303715884105728\n",
        "  hex: 2417851639229258349412351\n",
        "  - 18446744073709551616\n",
        "    123456789012345678901234567890: a\n",
    ] {
        assert!(yaml.contains(line), "{line:?} not in:\n{yaml}");
    }
    // Read back, it is the same config.
    let again = Document::parse(Path::new("rewritten.yaml"), &yaml).unwrap();
    assert_eq!(again.value, plan.merged);
}

/// Beyond 128 bits serde_norway, like figment's serde_yaml, reads a number
/// as a float, or as a string when no f64 holds it.
#[test]
fn integers_beyond_128_bits_read_as_figment_reads_them() {
    let digits = "9".repeat(400);
    let text = format!(
        "{}weird:\n  float: 340282366920938463463374607431768211456\n  text: {digits}\n",
        with_binds(&["{port: 8080}"])
    );
    let plan = plan(&text);
    assert_eq!(
        plan.merged["weird"]["float"].as_f64(),
        Some(3.402823669209385e38)
    );
    assert_eq!(plan.merged["weird"]["text"].as_str(), Some(digits.as_str()));
    let yaml = raw::to_yaml(&plan.merged).unwrap();
    let again = Document::parse(Path::new("rewritten.yaml"), &yaml).unwrap();
    assert_eq!(again.value, plan.merged);
}

#[test]
fn a_big_integer_where_mas_sockets_reads_a_setting_gets_the_usual_error() {
    assert_eq!(
        one_error(&with_binds(&["{port: 99999999999999999999}"])),
        "c.yaml:5:18: http.listeners[0].binds[0].port: port 99999999999999999999 is out of range, and MAS would read the bind as `fd: 0`; use 1 to 65535"
    );
    assert_eq!(
        one_error(&with_binds(&["{fd: 99999999999999999999}"])),
        "c.yaml:5:16: http.listeners[0].binds[0].fd: `fd: 99999999999999999999` is not a non-negative number; write the index into LISTEN_FDS, e.g. `fd: 0`"
    );
    assert_eq!(
        one_error(&with_binds(&["{fd: -9223372036854775809}"])),
        "c.yaml:5:16: http.listeners[0].binds[0].fd: `fd: -9223372036854775809` is not a non-negative number; write the index into LISTEN_FDS, e.g. `fd: 0`"
    );
    assert_eq!(
        one_error(&with_binds(&["{socket: /run/mas.sock, mode: 123456789012345678901234567890}"])),
        "c.yaml:5:41: http.listeners[0].binds[0].mode: `mode: 123456789012345678901234567890` is not an octal permission string; write it quoted, e.g. `mode: \"660\"`"
    );
    assert!(one_error(&with_binds(&[
        "{host: 123456789012345678901234567890, port: 8080}"
    ]))
    .contains("`host` is a number, not a host name or IP address"),);
}

#[test]
fn socket_paths_compare_as_the_kernel_resolves_them() {
    use super::plan::same_path;
    let same = |a: &str, b: &str| same_path(Path::new(a), Path::new(b));
    // Directories that do not exist here (made at boot): `..`, `.` and
    // `//` as the kernel would apply them.
    assert!(same(
        "/nonexistent-mas/../nonexistent-mas/web.sock",
        "/nonexistent-mas/web.sock"
    ));
    assert!(same(
        "/nonexistent-mas//./web.sock",
        "/nonexistent-mas/web.sock"
    ));
    assert!(!same(
        "/nonexistent-mas/../web.sock",
        "/nonexistent-mas/web.sock"
    ));
    assert!(!same("/nonexistent-mas/web.sock/..", "/nonexistent-mas"));
    // `..` after a symlink is the parent of its target, as the kernel walks it.
    let dir = std::env::temp_dir().join(format!("mas-sockets-same-path-{}", std::process::id()));
    let real = dir.join("real/run");
    std::fs::create_dir_all(&real).unwrap();
    let link = dir.join("link");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert!(same_path(
        &link.join("../run/web.sock"),
        &real.join("web.sock")
    ));
    assert!(!same_path(
        &link.join("../run/web.sock"),
        &dir.join("run/web.sock")
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A listener under `http` with `extra` lines after it, and the
/// `public_base` of BASE unless the test sets its own.
fn listener_with(extra: &str) -> String {
    format!("http:\n  listeners:\n    - name: web\n      resources: [{{name: health}}]\n      binds: [{{port: 8080}}]\n{extra}")
}

#[test]
fn a_public_base_or_issuer_mas_cannot_parse_is_refused_with_the_full_url() {
    for (line, want) in [
        (
            "  public_base: auth.example.com\n",
            "c.yaml:6:16: http.public_base: `public_base: auth.example.com` is not a URL MAS can parse (relative URL without a base), so MAS refuses the config; write the full URL, like `public_base: https://auth.example.com/`",
        ),
        (
            "  public_base: /auth/\n",
            "c.yaml:6:16: http.public_base: `public_base: /auth/` is not a URL MAS can parse (relative URL without a base), so MAS refuses the config; write the full URL, like `public_base: https://auth.example.com/auth/`",
        ),
        (
            "  issuer: not a url\n",
            "c.yaml:6:11: http.issuer: `issuer: not a url` is not a URL MAS can parse (relative URL without a base), so MAS refuses the config; write the full URL, like `issuer: https://auth.example.com/`",
        ),
        (
            "  public_base: 8080\n",
            "c.yaml:6:16: http.public_base: `public_base` is a number, not a URL; write the full URL, like `https://auth.example.com/`",
        ),
        (
            "  public_base: \"https://\"\n",
            "c.yaml:6:16: http.public_base: `public_base: https://` is not a URL MAS can parse (empty host), so MAS refuses the config; write the full URL, like `public_base: https://auth.example.com/`",
        ),
    ] {
        assert_eq!(one_error(&listener_with(line)), want, "{line:?}");
    }
}

#[test]
fn urls_that_mas_parses_are_accepted_as_they_are() {
    // url::Url trims blanks, lowercases the scheme and host, and maps an
    // IDN host to punycode: MAS takes all of these.
    for line in [
        "  public_base: \" https://auth.example.com/ \"\n",
        "  public_base: HTTPS://AUTH.Example.COM/\n",
        "  public_base: https://äuth.example.com/\n",
        "  public_base: https://auth.example.com:8443/auth\n",
        "  public_base: http://[::1]:8080/\n",
        "  issuer: https://example.com\n",
        "  issuer: ~\n",
    ] {
        let plan = plan(&listener_with(line));
        assert!(plan.warnings.is_empty(), "{line:?}: {:?}", plan.warnings);
    }
    // The issuer may be any URL; MAS only names itself by it.
    let plan = plan(&listener_with("  issuer: urn:example:mas\n"));
    assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
}

/// MAS parses these, then stops at start-up: its links' base must be http
/// or https, without query, fragment or credentials (UrlBuilder::new).
#[test]
fn a_public_base_mas_stops_on_is_refused() {
    let at = "c.yaml:6:16: http.public_base: ";
    for (value, what, assertion, example) in [
        (
            "auth.example.com:8443",
            "is not an http or https URL",
            "base URL must be HTTP/HTTPS",
            "https://auth.example.com:8443/",
        ),
        (
            "wss://auth.example.com/",
            "is not an http or https URL",
            "base URL must be HTTP/HTTPS",
            "https://auth.example.com/",
        ),
        (
            "https://auth.example.com/?a=b",
            "has a query (`?...`)",
            "base URL must not contain a query",
            "https://auth.example.com/",
        ),
        (
            "https://auth.example.com/auth/#x",
            "has a fragment (`#...`)",
            "base URL must not contain a fragment",
            "https://auth.example.com/auth/",
        ),
        (
            "https://u:p@auth.example.com/",
            "has credentials (`user:password@`)",
            "base URL must not contain credentials",
            "https://auth.example.com/",
        ),
    ] {
        assert_eq!(
            one_error(&listener_with(&format!("  public_base: \"{value}\"\n"))),
            format!("{at}`public_base: {value}` {what}, and MAS stops at start-up on such a base for its links (\"{assertion}\"); write it as `public_base: {example}`"),
        );
    }
}

#[test]
fn a_tls_section_mas_refuses_is_refused_at_the_tls() {
    let tls = |t: &str| listener_with(&format!("      tls: {t}\n"));
    let at = "c.yaml:6:12: http.listeners[0].tls: ";
    assert_eq!(
        one_error(&tls("{certificate_file: /a}")),
        format!("{at}`tls` has no private key, and MAS refuses the config (\"TLS configuration is missing a private key\"); add e.g. `key_file: /etc/mas/key.pem`, or remove `tls` for plain http")
    );
    assert_eq!(
        errors(&tls("{}")),
        [
            format!("{at}`tls` has no certificate, and MAS refuses the config (\"TLS configuration is missing a certificate\"); add e.g. `certificate_file: /etc/mas/cert.pem`, or remove `tls` for plain http"),
            format!("{at}`tls` has no private key, and MAS refuses the config (\"TLS configuration is missing a private key\"); add e.g. `key_file: /etc/mas/key.pem`, or remove `tls` for plain http"),
        ]
    );
    assert_eq!(
        one_error(&tls("{certificate_file: /a, certificate: x, key_file: /b}")),
        format!("{at}`tls` sets both `certificate` and `certificate_file`, and MAS refuses the config (only one of them may be set); remove one")
    );
    assert_eq!(
        one_error(&tls("{certificate: x, key: y, key_file: /b}")),
        format!("{at}`tls` sets both `key` and `key_file`, and MAS refuses the config (only one of them may be set); remove one")
    );
    assert_eq!(
        one_error(&tls("{certificate: x, key: y, password: p, password_file: /p}")),
        format!("{at}`tls` sets both `password` and `password_file`, and MAS refuses the config (only one of them may be set); remove one")
    );
    assert!(
        one_error(&tls("{certificate-file: /a, key_file: /b}")).contains(
            "`tls` has no certificate (is `certificate-file` meant to be `certificate_file`?)"
        )
    );
    assert_eq!(
        one_error(&tls("{certificate: 1, key_file: /b}")),
        "c.yaml:6:26: http.listeners[0].tls.certificate: `certificate` is a number, not a string; write the text, quoted if it looks like a number or a boolean"
    );
    assert_eq!(
        one_error(&tls("\"yes\"")),
        format!("{at}`tls` is a string, not a mapping; write e.g. `tls: {{certificate_file: /etc/mas/cert.pem, key_file: /etc/mas/key.pem}}`, or remove it for plain http")
    );
    // What MAS takes: one of each, a null as no value, no `tls` at all.
    for t in [
        "{certificate: x, key: y}",
        "{certificate_file: /a, key_file: /b, password_file: /p}",
        "{certificate_file: ~, certificate: x, key_file: /b, password: ~}",
        "~",
    ] {
        plan(&tls(t));
    }
}

#[test]
fn resource_fields_of_the_wrong_type_are_refused() {
    let res = |r: &str| {
        format!("http:\n  listeners:\n    - name: web\n      resources: [{r}]\n      binds: [{{port: 8080}}]\n")
    };
    assert_eq!(
        one_error(&res("{name: graphql, playground: \"true\"}")),
        "c.yaml:4:47: http.listeners[0].resources[0].playground: `playground` is a string, not true or false; write `true` or `false` without quotes, or remove it for `false`"
    );
    assert!(one_error(&res("{name: graphql, undocumented_oauth2_access: ~}"))
        .contains("resources[0].undocumented_oauth2_access: `undocumented_oauth2_access` is empty, not true or false"));
    assert_eq!(
        one_error(&res("{name: assets, path: ~}")),
        "c.yaml:4:40: http.listeners[0].resources[0].path: `path` is empty, not a path; write the directory of MAS's assets, e.g. `path: /usr/share/mas/assets/`, or remove it for MAS's default"
    );
    for r in [
        "{name: graphql, playground: true, undocumented_oauth2_access: false}",
        "{name: assets, path: /usr/share/mas/assets/}",
        // Other resources have no such fields; MAS ignores them.
        "{name: health, playground: \"true\"}",
    ] {
        plan(&res(r));
    }
}

#[test]
fn a_merge_key_in_http_is_warned_about_as_mas_ignores_it() {
    let merged = plan(
        "x-listener: &lst\n  proxy_protocol: true\n  prefix: /auth\n  name: other\nhttp:\n  listeners:\n    - <<: *lst\n      name: web\n      resources: [{name: health}]\n      binds: [{socket: /run/mas/web.sock}]\n",
    );
    // What MAS reads: the listener without the merged keys.
    assert!(!merged.listeners[0].proxy_protocol);
    assert_eq!(merged.listeners[0].prefix, None);
    assert_eq!(merged.warnings, ["c.yaml:7:7: http.listeners[0].<<: `<<` is a YAML merge key, and MAS reads YAML without merge keys, so it ignores `<<` and `proxy_protocol`, `prefix` from it do not apply here; write them out in this mapping"]);
    // Anchors and aliases alone are fine: MAS reads them.
    let aliased = plan(
        "x: &res [{name: health}]\nhttp:\n  listeners:\n    - name: web\n      resources: *res\n      binds: [{port: 8080}]\n",
    );
    assert!(aliased.warnings.is_empty(), "{:?}", aliased.warnings);
}

#[test]
fn a_required_key_given_only_by_a_merge_key_is_refused_as_such() {
    let e = check_texts(
        &[(
            "c.yaml",
            "x: &h\n  public_base: https://a/\nhttp:\n  <<: *h\n  listeners:\n    - resources: [{name: health}]\n      binds: [{port: 8080}]\n",
        )],
        &FakeResolver,
    )
    .unwrap_err();
    let LoadError::Invalid(refused) = e else {
        panic!("{e}")
    };
    assert_eq!(refused.errors.len(), 1, "{:?}", refused.errors);
    assert_eq!(refused.errors[0].to_string(), "c.yaml:4:3: http: `http` has `public_base` only through the merge key `<<`, which MAS does not apply (it reads YAML without merge keys), so it has no `public_base`, which MAS requires; write `public_base:` in `http` itself");
    assert_eq!(refused.warnings, ["c.yaml:4:3: http.<<: `<<` is a YAML merge key, and MAS reads YAML without merge keys, so it ignores `<<` and `public_base` from it does not apply here; write it out in this mapping"]);
    assert_eq!(
        one_error("x: &l\n  resources: [{name: health}]\nhttp:\n  listeners:\n    - <<: *l\n      binds: [{port: 8080}]\n"),
        "c.yaml:5:7: http.listeners[0]: the listener has `resources` only through the merge key `<<`, which MAS does not apply (it reads YAML without merge keys), so it has no `resources`, which MAS requires; write `resources:` in the listener itself"
    );
    assert!(one_error(&with_binds(&["{<<: {port: 8080}}"]))
        .contains("unknown key `<<` in a bind (a YAML merge key, which MAS does not apply)"));
}

#[test]
fn a_near_miss_of_a_listener_or_http_key_is_warned_about() {
    let plan = plan(
        "http:\n  trusted_proxy: [10.0.0.0/8]\n  listeners:\n    - name: web\n      proxy-protocol: true\n      perfix: /auth\n      tsl: {certificate_file: /a, key_file: /b}\n      x-note: kept silently, as MAS ignores it\n      resources: [{name: health}]\n      binds: [{socket: /run/mas/web.sock}]\n",
    );
    assert!(!plan.listeners[0].proxy_protocol && !plan.listeners[0].tls);
    assert_eq!(
        plan.warnings,
        [
            "c.yaml:2:3: http.trusted_proxy: unknown key `trusted_proxy` in `http` (did you mean `trusted_proxies`?); MAS ignores it, so `http` has no `trusted_proxies` from it; rename it to `trusted_proxies`",
            "c.yaml:5:7: http.listeners[0].proxy-protocol: unknown key `proxy-protocol` in a listener (did you mean `proxy_protocol`?); MAS ignores it, so the listener has no `proxy_protocol` from it; rename it to `proxy_protocol`",
            "c.yaml:6:7: http.listeners[0].perfix: unknown key `perfix` in a listener (did you mean `prefix`?); MAS ignores it, so the listener has no `prefix` from it; rename it to `prefix`",
            "c.yaml:7:7: http.listeners[0].tsl: unknown key `tsl` in a listener (did you mean `tls`?); MAS ignores it, so the listener has no `tls` from it; rename it to `tls`",
        ]
    );
}

#[test]
fn a_socket_path_mas_or_a_socket_unit_cannot_take_is_refused_at_the_path() {
    assert_eq!(
        one_error(&with_binds(&["{socket: /run/mas/}"])),
        "c.yaml:5:20: http.listeners[0].binds[0].socket: the Unix socket path `/run/mas/` ends with `/`, as a directory does: MAS binds a socket beside it and fails at start-up to rename that onto the directory; give the socket's own file name, e.g. `/run/mas/web.sock`"
    );
    for (path, normal) in [
        ("/run/mas/../mas/web.sock", "/run/mas/web.sock"),
        ("/run//mas/./web.sock", "/run/mas/web.sock"),
        ("/run/./mas.sock", "/run/mas.sock"),
    ] {
        assert_eq!(
            one_error(&with_binds(&[&format!("{{socket: \"{path}\"}}")])),
            format!("c.yaml:5:20: http.listeners[0].binds[0].socket: the Unix socket path `{path}` is not normalized (it has `//`, `.` or `..`): systemd refuses such a path in a socket unit, so generate-units could not write it; write `{normal}`")
        );
    }
    // Dots inside a name are no `.` segment; a relative path is only warned
    // about by check.
    for path in ["/run/mas/web..sock", "/run/.mas/web.sock", "web.sock"] {
        plan(&with_binds(&[&format!("{{socket: \"{path}\"}}")]));
    }
}

/// MAS merges the routes of each resource into one router, and axum stops
/// it at start-up on a route given twice: a resource listed twice in one
/// listener is refused, naming both places. In two listeners it is fine.
#[test]
fn a_resource_listed_twice_in_one_listener_is_refused() {
    let twice = "http:\n  public_base: https://auth.example.com/\n  listeners:\n    - name: web\n      resources: [{name: health}, {name: human}, {name: health}]\n      binds: [{port: 8080}]\n";
    assert_eq!(
        one_error(twice),
        "c.yaml:5:57: http.listeners[0].resources[2].name: resource `health` is listed twice in this listener (first at c.yaml:5:26: http.listeners[0].resources[0].name); MAS merges each resource's routes into one router and stops at start-up on routes given twice (\"Overlapping method route\"); list it once"
    );
    plan("http:\n  public_base: https://auth.example.com/\n  listeners:\n    - name: a\n      resources: [{name: health}]\n      binds: [{port: 8080}]\n    - name: b\n      resources: [{name: health}]\n      binds: [{port: 8081}]\n");
}

/// A resource field near one MAS knows is warned about with the one meant.
#[test]
fn a_misspelt_resource_field_is_warned_about() {
    let p = plan("http:\n  public_base: https://auth.example.com/\n  listeners:\n    - name: web\n      resources: [{name: graphql, playgrund: true}, {name: assets, pth: /x}, {name: human, extra: 1}]\n      binds: [{port: 8080}]\n");
    assert_eq!(
        p.warnings,
        [
            "c.yaml:5:35: http.listeners[0].resources[0].playgrund: unknown key `playgrund` in resource `graphql` (did you mean `playground`?); MAS ignores it, so the resource has its default `playground`; rename it to `playground`",
            "c.yaml:5:68: http.listeners[0].resources[1].pth: unknown key `pth` in resource `assets` (did you mean `path`?); MAS ignores it, so the resource has its default `path`; rename it to `path`",
        ]
    );
}

/// A relative config path is MAS's `Yaml::file`: from the working directory,
/// else from the nearest directory above it that has the file.
#[test]
fn a_relative_path_is_found_where_figment_finds_it() {
    let root = std::env::temp_dir().join(format!("mas-sockets-find.{}", std::process::id()));
    let deep = root.join("a/b");
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(root.join("up.yaml"), "").unwrap();
    std::fs::write(root.join("a/both.yaml"), "").unwrap();
    std::fs::write(deep.join("both.yaml"), "").unwrap();
    std::fs::create_dir(deep.join("dir.yaml")).unwrap();
    std::fs::write(root.join("a/dir.yaml"), "").unwrap();
    let find = |p: &str| find_as_figment_does(Path::new(p), Some(&deep));
    assert_eq!(find("up.yaml"), root.join("up.yaml"));
    assert_eq!(
        find("both.yaml"),
        PathBuf::from("both.yaml"),
        "the working directory's first"
    );
    // A directory is no file to figment: the search goes on above it.
    assert_eq!(find("dir.yaml"), root.join("a/dir.yaml"));
    assert_eq!(find("none.yaml"), PathBuf::from("none.yaml"));
    assert_eq!(find("/abs/none.yaml"), PathBuf::from("/abs/none.yaml"));
    assert_eq!(
        find_as_figment_does(Path::new("up.yaml"), None),
        PathBuf::from("up.yaml")
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// `listeners: []`, said outright, is what MAS runs (its background jobs,
/// no HTTP): a plan with no listener, and a warning.
#[test]
fn an_empty_listener_list_is_a_plan_without_sockets() {
    let p = plan("http:\n  public_base: https://auth.example.com/\n  listeners: []\n");
    assert!(p.listeners.is_empty());
    assert_eq!(
        p.warnings,
        ["c.yaml:3:14: http.listeners: `listeners: []`: MAS serves no HTTP at all, only its background jobs, and there is no socket for mas-sockets to hold; add a listener if MAS should serve"]
    );
}

/// A clash names the socket both binds would take, so that a host name's
/// share of it (`localhost` stands for 127.0.0.1 and [::1]) shows.
#[test]
fn a_clash_names_the_socket_both_would_take() {
    let e = one_error("http:\n  public_base: https://a/\n  listeners:\n    - name: a\n      resources: [{name: human}]\n      binds: [{host: localhost, port: 8080}, {address: \"[::1]:8080\"}]\n");
    assert!(
        e.ends_with("and both would take tcp [::1]:8080; each address may be bound once, so remove one of them"),
        "{e}"
    );
    let e = one_error("http:\n  public_base: https://a/\n  listeners:\n    - name: a\n      resources: [{name: human}]\n      binds: [{fd: 1}, {fd: 1, kind: unix}]\n");
    assert!(
        e.contains("and both would take the fd at index 1 of LISTEN_FDS;"),
        "{e}"
    );
    // In either order, neither is said to hold the other.
    let e = one_error("http:\n  public_base: https://a/\n  listeners:\n    - name: a\n      resources: [{name: human}]\n      binds: [{address: \"0.0.0.0:8080\"}, {address: \"[::]:8080\"}]\n");
    assert!(e.contains(", which overlap;"), "{e}");
}
