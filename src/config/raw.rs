//! The first stage of reading a MAS config: each file parsed as YAML, with the
//! position of every node, then all files merged the way MAS merges them.
//!
//! MAS loads its files with figment's *admerge*: maps merge key by key, arrays
//! are concatenated, and otherwise the later file wins (see mas-facts.md). This
//! module reproduces that on `serde_norway::Value`s and stops there: it gives no
//! meaning to any key. Giving meaning, and refusing what MAS would misread, is
//! the job of [`super::plan`].
//!
//! serde_norway reports a location only for syntax errors, so the positions of
//! nodes come from a second, event-level pass with saphyr-parser. Both parsers
//! see the same text; the second is only ever asked "where is this key path".

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use saphyr_parser::{Event, Parser};
use serde_norway::{Mapping, Value};

/// A line and column in one file, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// One config file: its path as given, its YAML value and where each node sits.
#[derive(Debug, Clone)]
pub struct Document {
    pub path: PathBuf,
    pub value: Value,
    positions: HashMap<String, Pos>,
}

/// A file that could not be turned into a [`Document`].
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("{path}: cannot read the config file: {error}{hint}; check the path given with --config or MAS_CONFIG", path = path.display())]
    Read {
        path: PathBuf,
        hint: String,
        error: std::io::Error,
    },
    #[error("{path}:{line}:{column}: invalid YAML: {message}; fix the syntax at that position", path = path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}:{line}:{column}: invalid YAML: {at}`{key}` is given twice in one mapping (first at line {first_line}); MAS would take the last one without a word, so remove one of them", path = path.display())]
    RepeatedKey {
        path: PathBuf,
        line: usize,
        column: usize,
        /// The mapping's key path and `: `, or nothing at the top level.
        at: String,
        key: String,
        first_line: usize,
    },
    #[error("{path}:1:1: the config is {found}, not a mapping of sections such as `http:`; MAS cannot read it either; write each section as a key at the start of a line, with its settings indented below it", path = path.display())]
    NotAMapping { path: PathBuf, found: &'static str },
}

impl Document {
    /// Reads and parses one file.
    ///
    /// # Errors
    ///
    /// A file that cannot be read, is not YAML, or is not a mapping at the top.
    pub fn read(path: &Path) -> Result<Document, DocumentError> {
        let text = std::fs::read_to_string(path).map_err(|error| DocumentError::Read {
            path: path.to_owned(),
            hint: if error.kind() == std::io::ErrorKind::PermissionDenied {
                format!(
                    "; the user running mas-sockets (uid {}) must be able to read it, as the service's User= must",
                    nix::unistd::geteuid()
                )
            } else {
                String::new()
            },
            error,
        })?;
        Document::parse(path, &text)
    }

    /// Parses `text` as the content of `path` (which is only used in messages).
    ///
    /// An empty file is an empty mapping, as it is for MAS.
    ///
    /// # Errors
    ///
    /// Invalid YAML, or a top level that is not a mapping.
    pub fn parse(path: &Path, text: &str) -> Result<Document, DocumentError> {
        let syntax = |line: usize, column: usize, message: String| DocumentError::Syntax {
            path: path.to_owned(),
            line,
            column,
            message,
        };
        let value: Value = serde_norway::from_str(text).map_err(|e| {
            // serde_norway points at the mapping, or at the document, and
            // quotes no line; the event walk finds the key where it repeats.
            if e.to_string().contains("duplicate entry") {
                if let Some(r) = walk_events(text).and_then(|w| w.repeated) {
                    return DocumentError::RepeatedKey {
                        path: path.to_owned(),
                        line: r.again.line,
                        column: r.again.column,
                        at: if r.mapping.as_str().is_empty() {
                            String::new()
                        } else {
                            format!("{}: ", r.mapping)
                        },
                        key: super::plan::escape_controls(&r.key),
                        first_line: r.first.line,
                    };
                }
            }
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            // The message repeats the position ("at line 3 column 5"): keep only the reason.
            let message = e.to_string();
            let message = match message.find(" at line ") {
                Some(at) => message[..at].to_owned(),
                None => message,
            };
            syntax(line, column, message)
        })?;
        let value = match value {
            Value::Null => Value::Mapping(Mapping::new()),
            Value::Mapping(_) => value,
            other => {
                return Err(DocumentError::NotAMapping {
                    path: path.to_owned(),
                    found: kind_of(&other),
                })
            }
        };
        // serde_norway accepted the text, so the event parser should too; if the two
        // ever disagree we lose positions, not correctness.
        let positions = index_positions(text).unwrap_or_default();
        Ok(Document {
            path: path.to_owned(),
            value,
            positions,
        })
    }

    /// Where the node at `key_path` (as written by [`KeyPath`]) starts, if it exists.
    pub fn position(&self, key_path: &str) -> Option<Pos> {
        self.positions.get(key_path).copied()
    }
}

/// Names the kind of a YAML value for messages ("a string", "a list", ...).
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// A dotted key path such as `http.listeners[1].binds[0].port`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KeyPath(String);

impl KeyPath {
    pub fn root() -> KeyPath {
        KeyPath(String::new())
    }

    pub fn key(&self, key: &str) -> KeyPath {
        if self.0.is_empty() {
            KeyPath(key.to_owned())
        } else {
            KeyPath(format!("{}.{key}", self.0))
        }
    }

    pub fn index(&self, index: usize) -> KeyPath {
        KeyPath(format!("{}[{index}]", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key given twice in one mapping, which YAML forbids; MAS's loader lets the
/// last one win.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RepeatedKey {
    /// The mapping's path.
    mapping: KeyPath,
    key: String,
    first: Pos,
    again: Pos,
}

/// What a walk over the YAML events of a text found.
struct Walked {
    positions: HashMap<String, Pos>,
    /// The first key given twice in one mapping, if any.
    repeated: Option<RepeatedKey>,
}

/// Walks the YAML events of `text` and records where every node (and every
/// mapping key, under `<path>#key`) starts.
fn index_positions(text: &str) -> Option<HashMap<String, Pos>> {
    walk_events(text).map(|w| w.positions)
}

/// See [`index_positions`]; also finds the first key given twice.
fn walk_events(text: &str) -> Option<Walked> {
    enum Frame {
        Mapping {
            path: KeyPath,
            key: Option<String>,
            seen: HashMap<String, Pos>,
        },
        Sequence {
            path: KeyPath,
            next: usize,
        },
    }

    let mut positions = HashMap::new();
    let mut repeated = None;
    let mut stack: Vec<Frame> = Vec::new();
    let mut parser = Parser::new_from_str(text);
    while let Some(event) = parser.next_event() {
        let (event, span) = event.ok()?;
        let pos = Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        };
        let starts_node = matches!(
            event,
            Event::Scalar(..)
                | Event::Alias(_)
                | Event::MappingStart(..)
                | Event::SequenceStart(..)
        );
        if starts_node {
            // Decide which path this node occupies, or whether it is a mapping key.
            let path = match stack.last_mut() {
                None => Some(KeyPath::root()),
                Some(Frame::Sequence { path, next }) => {
                    let p = path.index(*next);
                    *next += 1;
                    Some(p)
                }
                Some(Frame::Mapping { path, key, seen }) => match key.take() {
                    Some(k) => Some(path.key(&k)),
                    None => {
                        // A key. Only scalar keys matter for MAS's config.
                        let name = match &event {
                            Event::Scalar(value, ..) => value.to_string(),
                            _ => String::from("?"),
                        };
                        if let Event::Scalar(..) = &event {
                            if let Some(&first) = seen.get(&name) {
                                repeated.get_or_insert_with(|| RepeatedKey {
                                    mapping: path.clone(),
                                    key: name.clone(),
                                    first,
                                    again: pos,
                                });
                            } else {
                                seen.insert(name.clone(), pos);
                            }
                        }
                        positions.insert(format!("{}#key", path.key(&name)), pos);
                        *key = Some(name);
                        None
                    }
                },
            };
            if let Some(path) = path {
                positions.entry(path.0.clone()).or_insert(pos);
                match event {
                    Event::MappingStart(..) => stack.push(Frame::Mapping {
                        path,
                        key: None,
                        seen: HashMap::new(),
                    }),
                    Event::SequenceStart(..) => stack.push(Frame::Sequence { path, next: 0 }),
                    _ => {}
                }
            } else if matches!(event, Event::MappingStart(..) | Event::SequenceStart(..)) {
                // A complex key: track nesting so the stack stays balanced.
                let path = KeyPath("?".into());
                match event {
                    Event::MappingStart(..) => stack.push(Frame::Mapping {
                        path,
                        key: None,
                        seen: HashMap::new(),
                    }),
                    _ => stack.push(Frame::Sequence { path, next: 0 }),
                }
            }
        } else if matches!(event, Event::MappingEnd | Event::SequenceEnd) {
            stack.pop();
        }
    }
    Some(Walked {
        positions,
        repeated,
    })
}

/// Merges `incoming` into `base` as figment's admerge does: mappings merge key by
/// key, sequences are concatenated, anything else is replaced by `incoming`.
pub fn admerge(base: Value, incoming: Value) -> Value {
    match (base, incoming) {
        (Value::Mapping(mut base), Value::Mapping(incoming)) => {
            for (key, value) in incoming {
                let merged = match base.remove(&key) {
                    Some(old) => admerge(old, value),
                    None => value,
                };
                base.insert(key, merged);
            }
            Value::Mapping(base)
        }
        (Value::Sequence(mut base), Value::Sequence(incoming)) => {
            base.extend(incoming);
            Value::Sequence(base)
        }
        (_, incoming) => incoming,
    }
}

/// The files merged in order, with the origin of each element of `http.listeners`.
#[derive(Debug, Clone)]
pub struct Merged {
    pub documents: Vec<Document>,
    pub value: Value,
    /// For each element of the merged `http.listeners` (when it is a list): the
    /// document it came from and its index there. Arrays concatenate, so each
    /// listener comes whole from one file.
    pub listener_origins: Vec<(usize, usize)>,
}

impl Merged {
    /// Merges `documents` in order.
    pub fn new(documents: Vec<Document>) -> Merged {
        // To learn where each merged listener came from, merge a copy of every
        // document in which each listener is replaced by a tag naming its origin.
        // The same merge then carries the tags to exactly the merged positions.
        let mut value = Value::Mapping(Mapping::new());
        let mut tagged = Value::Mapping(Mapping::new());
        for (d, doc) in documents.iter().enumerate() {
            value = admerge(value, doc.value.clone());
            tagged = admerge(tagged, tag_listeners(&doc.value, d));
        }
        let listener_origins = listeners_of(&tagged)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| {
                        let (d, j) = item.as_str()?.split_once(':')?;
                        Some((d.parse().ok()?, j.parse().ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Merged {
            documents,
            value,
            listener_origins,
        }
    }

    /// The position of `key_path` in the last document that has it (the one whose
    /// value won the merge, or the last to add to it).
    pub fn locate(&self, key_path: &str) -> Option<(&Path, Pos)> {
        self.documents
            .iter()
            .rev()
            .find_map(|d| d.position(key_path).map(|p| (d.path.as_path(), p)))
    }

    /// The position of a key path inside merged listener `index`, found in the
    /// document the listener came from. `rest` is the part after the listener,
    /// such as `.binds[0].port`, or empty for the listener itself.
    pub fn locate_in_listener(&self, index: usize, rest: &str) -> Option<(&Path, Pos)> {
        let &(d, j) = self.listener_origins.get(index)?;
        let doc = self.documents.get(d)?;
        let path = format!("http.listeners[{j}]{rest}");
        doc.position(&path).map(|p| (doc.path.as_path(), p))
    }
}

fn listeners_of(value: &Value) -> Option<&Vec<Value>> {
    value.get("http")?.get("listeners")?.as_sequence()
}

fn tag_listeners(value: &Value, document: usize) -> Value {
    let mut value = value.clone();
    if let Some(items) = value
        .get_mut("http")
        .and_then(|h| h.get_mut("listeners"))
        .and_then(Value::as_sequence_mut)
    {
        for (j, item) in items.iter_mut().enumerate() {
            *item = Value::String(format!("{document}:{j}"));
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(name: &str, text: &str) -> Document {
        Document::parse(Path::new(name), text).expect("valid yaml")
    }

    #[test]
    fn admerge_merges_maps_concatenates_lists_and_later_scalars_win() {
        let a = doc("a", "x: 1\nm: {a: 1, b: [1]}\nl: [1, 2]\n");
        let b = doc("b", "x: 2\nm: {b: [2], c: 3}\nl: [3]\n");
        let merged = Merged::new(vec![a, b]).value;
        let want: Value =
            serde_norway::from_str("x: 2\nm: {a: 1, b: [1, 2], c: 3}\nl: [1, 2, 3]\n").unwrap();
        assert_eq!(merged, want);
    }

    #[test]
    fn admerge_lets_a_different_type_replace() {
        let a = doc("a", "x: [1]\n");
        let b = doc("b", "x: {k: v}\n");
        let merged = Merged::new(vec![a, b]).value;
        assert_eq!(merged["x"]["k"], Value::String("v".into()));
    }

    #[test]
    fn listener_origins_follow_concatenation() {
        let a = doc("a", "http:\n  listeners:\n    - name: a0\n    - name: a1\n");
        let b = doc("b", "database: {}\n");
        let c = doc("c", "http:\n  listeners:\n    - name: c0\n");
        let merged = Merged::new(vec![a, b, c]);
        assert_eq!(merged.listener_origins, vec![(0, 0), (0, 1), (2, 0)]);
        let (path, pos) = merged.locate_in_listener(2, "").unwrap();
        assert_eq!(path, Path::new("c"));
        assert_eq!(pos, Pos { line: 3, column: 7 });
    }

    #[test]
    fn positions_cover_nested_keys_and_items() {
        let d = doc(
            "f",
            "http:\n  listeners:\n    - name: web\n      binds:\n        - host: localhost\n          port: 8080\n",
        );
        assert_eq!(
            d.position("http.listeners[0].binds[0]"),
            Some(Pos {
                line: 5,
                column: 11
            })
        );
        assert_eq!(
            d.position("http.listeners[0].binds[0].port"),
            Some(Pos {
                line: 6,
                column: 17
            })
        );
        assert_eq!(
            d.position("http.listeners[0].binds[0].port#key"),
            Some(Pos {
                line: 6,
                column: 11
            })
        );
    }

    #[test]
    fn empty_file_is_an_empty_mapping() {
        assert_eq!(doc("e", "").value, Value::Mapping(Mapping::new()));
    }

    #[test]
    fn syntax_error_names_file_line_and_column() {
        let err = Document::parse(Path::new("/etc/mas/config.yaml"), "http:\n  a: [1, 2\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/etc/mas/config.yaml:"),
            "unexpected error: {err}"
        );
        assert!(err.contains("invalid YAML"), "{err}");
    }

    #[test]
    fn a_key_given_twice_is_located_where_it_repeats() {
        let err = Document::parse(
            Path::new("c.yaml"),
            "database:\n  uri: a\nsecrets: {}\ndatabase:\n  uri: b\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "c.yaml:4:1: invalid YAML: `database` is given twice in one mapping (first at line 1); MAS would take the last one without a word, so remove one of them"
        );
        let err = Document::parse(
            Path::new("c.yaml"),
            "http:\n  listeners:\n    - binds:\n        - host: 127.0.0.1\n          port: 8080\n          port: 8081\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("c.yaml:6:11: invalid YAML: http.listeners[0].binds[0]: `port` is given twice in one mapping (first at line 5)"),
            "{err}"
        );
    }

    #[test]
    fn scalar_top_level_is_refused() {
        let err = Document::parse(Path::new("c.yaml"), "just text\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "c.yaml:1:1: the config is a string, not a mapping of sections such as `http:`; MAS cannot read it either; write each section as a key at the start of a line, with its settings indented below it"
        );
    }
}
