//! The names generate-units gives: the `--name` prefix of every unit, the
//! label of each bind's socket unit (`<name>-<label>.socket`, which is also
//! its `FileDescriptorName=`), and the service's runtime directory under /run.
//!
//! Follows the unit name rules of systemd.unit(5) and the directory rules of
//! `RuntimeDirectory=` in systemd.exec(5). The 255-character limit on a
//! whole unit name is checked where the name is put together, in
//! `generate`; writing the names into the units is left to `socket` and
//! `service`.

use crate::config::Plan;

/// The label of each bind's socket unit (`<name>-<label>.socket`, and its
/// `FileDescriptorName=`), listener by listener.
///
/// A listener's label is its name made safe for a unit name, or
/// `listener<index>` when it has none; a listener with several binds adds
/// `-<bind index>` for each. So that no unit can pass for another listener's,
/// a label that equals an earlier listener's, or differs from it only by a
/// `-<digits>` ending (which reads as a bind index), gets `-listener<index>`
/// added, as often as it takes.
pub(super) fn socket_labels(plan: &Plan) -> Vec<Vec<String>> {
    let mut taken: Vec<String> = Vec::new();
    plan.listeners
        .iter()
        .map(|listener| {
            let base = listener_label(listener.name.as_deref(), listener.index);
            let suffix = format!("-listener{}", listener.index);
            let label = (0..)
                .map(|k| format!("{base}{}", suffix.repeat(k)))
                .find(|candidate| !taken.iter().any(|t| confusable(candidate, t)))
                .expect("finitely many labels are taken");
            taken.push(label.clone());
            if listener.binds.len() > 1 {
                listener
                    .binds
                    .iter()
                    .map(|bind| format!("{label}-{}", bind.index))
                    .collect()
            } else {
                vec![label]
            }
        })
        .collect()
}

/// A listener's name made safe for a unit name: letters, digits, `_` and
/// `-`, every other character `-`, no `-` at either end; `listener<index>`
/// when that leaves nothing.
fn listener_label(name: Option<&str>, index: usize) -> String {
    let label: String = name
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let label = label.trim_matches('-');
    if label.is_empty() {
        format!("listener{index}")
    } else {
        label.to_owned()
    }
}

/// Whether two listeners' labels could be taken for each other: equal, or
/// one is the other with `-<digits>` added, which reads as a bind index.
fn confusable(a: &str, b: &str) -> bool {
    let bind_of = |x: &str, y: &str| {
        x.strip_prefix(y)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
    };
    a == b || bind_of(a, b) || bind_of(b, a)
}

/// Whether `name` may be `--name`: a prefix of unit names, and one path
/// component of the runtime directory `/run/mas-sockets/<name>`. `:` would
/// split RuntimeDirectory= in two, `/` would add components, and a leading
/// `.` makes names such as `.` and `..` that systemd will not use as a
/// directory.
pub fn is_name_prefix(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// The `RuntimeDirectory=` of the service, relative to /run. Not `/run/<name>`:
/// systemd empties the runtime directory whenever the service stops, and that
/// is where an operator would put the Unix sockets, which belong to the socket
/// units and must survive a restart.
pub fn runtime_directory(name: &str) -> String {
    format!("mas-sockets/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::tests::{opts, units};

    /// The socket unit names for listeners of `names` ("" for none), each
    /// with as many binds as given.
    fn unit_names(listeners: &[(&str, usize)]) -> Vec<String> {
        let mut text = String::from("http:\n  listeners:\n");
        let mut port = 8080;
        for (name, binds) in listeners {
            if !name.is_empty() {
                text.push_str(&format!("    - name: \"{name}\"\n"));
                text.push_str("      resources: [{name: health}]\n");
            } else {
                text.push_str("    - resources: [{name: health}]\n");
            }
            text.push_str("      binds:\n");
            for _ in 0..*binds {
                text.push_str(&format!("        - {{host: 127.0.0.1, port: {port}}}\n"));
                port += 1;
            }
        }
        let files = units(&text, &opts()).unwrap();
        files
            .iter()
            .filter(|f| f.name.ends_with(".socket"))
            .map(|f| f.name.clone())
            .collect()
    }

    #[test]
    fn a_listener_that_could_pass_for_another_gets_its_index() {
        // A second `web` with two binds must not look like binds of the first.
        assert_eq!(
            unit_names(&[("web", 1), ("web", 2)]),
            [
                "mas-web.socket",
                "mas-web-listener1-0.socket",
                "mas-web-listener1-1.socket"
            ]
        );
        // A name ending in `-N` reads as a bind index of another listener.
        assert_eq!(
            unit_names(&[("web", 2), ("web-1", 1)]),
            [
                "mas-web-0.socket",
                "mas-web-1.socket",
                "mas-web-1-listener1.socket"
            ]
        );
        assert_eq!(
            unit_names(&[("web-0", 1), ("web", 2)]),
            [
                "mas-web-0.socket",
                "mas-web-listener1-0.socket",
                "mas-web-listener1-1.socket"
            ]
        );
        assert_eq!(
            unit_names(&[("web", 1), ("web-2", 1)]),
            ["mas-web.socket", "mas-web-2-listener1.socket"]
        );
        // Names that become the same label, and an unnamed listener's label.
        assert_eq!(
            unit_names(&[("web.", 1), ("web", 1)]),
            ["mas-web.socket", "mas-web-listener1.socket"]
        );
        assert_eq!(
            unit_names(&[("", 1), ("listener0", 1)]),
            ["mas-listener0.socket", "mas-listener0-listener1.socket"]
        );
        // Distinct names keep their plain units.
        assert_eq!(
            unit_names(&[("web", 1), ("admin", 2), ("", 1)]),
            [
                "mas-web.socket",
                "mas-admin-0.socket",
                "mas-admin-1.socket",
                "mas-listener2.socket"
            ]
        );
    }

    /// Whatever the names, no two units are the same, and no listener's
    /// label equals another's or another's with a `-N` bind index.
    #[test]
    fn unit_names_are_unambiguous_for_every_combination() {
        let names = [
            "web",
            "web-0",
            "web-1",
            "",
            "listener0",
            "listener1",
            "web-listener1",
            "web-listener1-listener1",
        ];
        for a in names {
            for b in names {
                for c in names {
                    for binds in [[1, 1, 1], [2, 1, 2], [1, 2, 1], [2, 2, 2]] {
                        let listeners = [(a, binds[0]), (b, binds[1]), (c, binds[2])];
                        let all = unit_names(&listeners);
                        let unique: std::collections::BTreeSet<_> = all.iter().collect();
                        assert_eq!(unique.len(), all.len(), "{listeners:?}: {all:?}");
                        // Each unit's label, less the bind index of a listener with several.
                        let mut labels = Vec::new();
                        let mut names = all.iter();
                        for (_, n) in listeners {
                            let name = names.next().unwrap();
                            let label = name
                                .strip_prefix("mas-")
                                .unwrap()
                                .strip_suffix(".socket")
                                .unwrap();
                            let label = if n > 1 {
                                label.rsplit_once('-').unwrap().0
                            } else {
                                label
                            };
                            labels.push(label.to_owned());
                            for _ in 1..n {
                                names.next();
                            }
                        }
                        for (i, x) in labels.iter().enumerate() {
                            for y in &labels[..i] {
                                assert!(!confusable(x, y), "{listeners:?}: {x} and {y} in {all:?}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn same_listener_names_get_distinct_units() {
        let files = units(
            "http:\n  listeners:\n    - name: web\n      resources: [{name: human}]\n      binds: [{port: 8080}]\n    - name: web\n      resources: [{name: health}]\n      binds: [{port: 8081}]\n    - resources: [{name: health}]\n      binds: [{port: 8082}]\n",
            &opts(),
        )
        .unwrap();
        let names: Vec<_> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "mas-web.socket",
                "mas-web-listener1.socket",
                "mas-listener2.socket",
                "mas.service"
            ]
        );
        assert!(files[1]
            .contents
            .contains("ListenStream=8081\nFileDescriptorName=web-listener1\n"));
    }
}
