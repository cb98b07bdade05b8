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
use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_norway::value::{Tag, TaggedValue};
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
    /// What is worth saying about the file itself (keys given twice), each
    /// line with its position.
    pub warnings: Vec<String>,
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
    #[error("{path}:{line}:{column}: invalid YAML: {message}; {fix}", path = path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        /// The parser's words (MAS's too), without the position already shown.
        message: String,
        /// What to do, for what the parser was reading when it stopped.
        fix: String,
    },
    #[error("{path}:{line}:{column}: a second YAML document starts here{how}, and MAS reads one document per file and refuses the file; {fix}", path = path.display(), how = if *explicit { " (`---`)" } else { " (after the `...` that ends the first)" }, fix = if *empty { "remove it" } else { "remove it, or move what follows it into a file of its own, given with another --config" })]
    SecondDocument {
        path: PathBuf,
        line: usize,
        column: usize,
        /// Whether it starts with `---`.
        explicit: bool,
        /// Whether it holds nothing (a stray `---` at the end).
        empty: bool,
    },
    #[error("{path}:{line}:{column}: the config is {found}, not a mapping of sections such as `http:`; MAS cannot read it either; write each section as a key at the start of a line, with its settings indented below it", path = path.display())]
    NotAMapping {
        path: PathBuf,
        line: usize,
        column: usize,
        found: &'static str,
    },
    #[error("{path}:{line}:{column}: the config is `{text}`, a null, not a mapping of sections such as `http:`; MAS refuses it (\"invalid type: unit value, expected a map\"), though it reads an empty file as no settings; remove `{text}` to leave the file empty, or write its sections, e.g. `http:`", path = path.display())]
    NullDocument {
        path: PathBuf,
        line: usize,
        column: usize,
        text: String,
    },
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
            } else if error.kind() == std::io::ErrorKind::NotFound && path.is_relative() {
                " (nor in a directory above the working directory, where MAS looks for a relative path too)".to_owned()
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
        let syntax =
            |line: usize, column: usize, message: String, fix: String| DocumentError::Syntax {
                path: path.to_owned(),
                line,
                column,
                message,
                fix,
            };
        let value = parse_value(text).map_err(|e| {
            if e.to_string().contains("more than one document") {
                if let Some(second) = second_document(text) {
                    return DocumentError::SecondDocument {
                        path: path.to_owned(),
                        line: second.pos.line,
                        column: second.pos.column,
                        explicit: second.explicit,
                        empty: second.empty,
                    };
                }
            }
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            let (message, mut fix) = explain_syntax_error(&e.to_string());
            if char_at(text, line, column) == Some('\t') {
                fix = format!("this is a tab, which YAML does not allow for indentation; replace the tab at {line}:{column} with spaces");
            }
            syntax(line, column, message, fix)
        })?;
        let value = match value {
            Value::Mapping(_) => value,
            // An empty file, one of comments only, or a bare `---` is an
            // empty mapping to figment too; a written null (`~`, `null`) is
            // not: figment refuses a unit value where it expects a map.
            Value::Null => match root_scalar(text) {
                Some((text, pos)) if !text.is_empty() => {
                    return Err(DocumentError::NullDocument {
                        path: path.to_owned(),
                        line: pos.line,
                        column: pos.column,
                        text: super::plan::escape_controls(&text),
                    })
                }
                _ => Value::Mapping(Mapping::new()),
            },
            other => {
                let pos = root_position(text).unwrap_or(Pos { line: 1, column: 1 });
                return Err(DocumentError::NotAMapping {
                    path: path.to_owned(),
                    line: pos.line,
                    column: pos.column,
                    found: kind_of(&other),
                });
            }
        };
        // serde_norway accepted the text; where the event parser disagrees
        // (see walk_events), we lose positions, not correctness.
        let walked = walk_events(text);
        let warnings = walked
            .iter()
            .flat_map(|w| &w.repeated)
            .map(|r| {
                let at = if r.mapping.as_str().is_empty() {
                    String::new()
                } else {
                    format!("{}: ", r.mapping)
                };
                format!(
                    "{path}:{}:{}: {at}`{}` is given twice in one mapping, here and at {path}:{}:{}; MAS takes this last value and drops the first without a word, as mas-sockets does; remove one of them",
                    r.again.line,
                    r.again.column,
                    super::plan::escape_controls(&r.key),
                    r.first.line,
                    r.first.column,
                    path = path.display()
                )
            })
            .collect();
        Ok(Document {
            path: path.to_owned(),
            value,
            positions: walked.map(|w| w.positions).unwrap_or_default(),
            warnings,
        })
    }

    /// Where the node at `key_path` (as written by [`KeyPath`]) starts, if it exists.
    pub fn position(&self, key_path: &str) -> Option<Pos> {
        self.positions.get(key_path).copied()
    }
}

/// The character at 1-based `line` and `column` of `text`, as the parser
/// counts them (in characters).
fn char_at(text: &str, line: usize, column: usize) -> Option<char> {
    text.lines()
        .nth(line.checked_sub(1)?)?
        .chars()
        .nth(column.checked_sub(1)?)
}

/// Splits a syntax error of serde_norway (libyaml's words, as MAS shows
/// them) into the message without the position shown before it, and the fix
/// for what the parser was reading when it stopped: `did not find expected
/// ',' or ']' at line 6 column 7, while parsing a flow sequence at line 5
/// column 18` names the `[` at 5:18 that was never closed.
fn explain_syntax_error(full: &str) -> (String, String) {
    // The first position is where the parser stopped, which the caller shows.
    let message = match full.find(" at line ") {
        Some(at) => {
            let rest = &full[at + " at line ".len()..];
            let end = rest.find(',').unwrap_or(rest.len());
            let is_position = rest[..end]
                .split(" column ")
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if is_position {
                format!("{}{}", &full[..at], &rest[end..])
            } else {
                full.to_owned()
            }
        }
        None => full.to_owned(),
    };
    let opened = |what: &str| -> Option<String> {
        let at = message.split_once(&format!("while {what} at line "))?.1;
        let (line, column) = at.split_once(" column ")?;
        let column: String = column.chars().take_while(char::is_ascii_digit).collect();
        Some(format!("{line}:{column}"))
    };
    let fix = if let Some(at) = opened("parsing a flow sequence") {
        format!("close the `[` at {at} with `]`, or put a `,` between its items")
    } else if let Some(at) = opened("parsing a flow mapping") {
        format!("close the `{{` at {at} with `}}`, or put a `,` between its entries")
    } else if let Some(at) = opened("scanning a quoted scalar") {
        format!("close the quote opened at {at}")
    } else if let Some(at) = opened("parsing a block collection") {
        format!("indent this line as the list that starts at {at} needs: its items each start with `- ` in that list's column, and an item's keys line up")
    } else if let Some(at) = opened("parsing a block mapping") {
        format!("indent this line as the mapping that starts at {at} needs: its keys line up in one column")
    } else {
        "fix the syntax there or just before it".to_owned()
    };
    (message, fix)
}

/// Where a text's second YAML document starts.
struct SecondDocument {
    pos: Pos,
    /// Whether it starts with `---`.
    explicit: bool,
    /// Whether it holds no node but an empty scalar.
    empty: bool,
}

/// Finds the second document of `text`, which serde_norway refuses without
/// saying where it is.
fn second_document(text: &str) -> Option<SecondDocument> {
    let mut parser = Parser::new_from_str(text);
    let mut starts = 0;
    let mut found: Option<SecondDocument> = None;
    let mut nodes = 0;
    while let Some(event) = parser.next_event() {
        let Ok((event, span)) = event else {
            break;
        };
        match (&event, &mut found) {
            (Event::DocumentStart(explicit), None) => {
                starts += 1;
                if starts == 2 {
                    found = Some(SecondDocument {
                        pos: Pos {
                            line: span.start.line(),
                            column: span.start.col() + 1,
                        },
                        explicit: *explicit,
                        empty: true,
                    });
                }
            }
            (Event::DocumentEnd, Some(_)) => break,
            (Event::Scalar(value, ..), Some(doc)) => {
                nodes += 1;
                doc.empty = nodes == 1 && value.is_empty();
            }
            (Event::MappingStart(..) | Event::SequenceStart(..) | Event::Alias(_), Some(doc)) => {
                nodes += 1;
                doc.empty = false;
            }
            _ => {}
        }
    }
    found
}

/// Names the kind of a YAML value for messages ("a string", "a list", ...).
pub fn kind_of(value: &Value) -> &'static str {
    if big_int(value).is_some() {
        return "a number";
    }
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

/// The tag that marks an integer beyond 64 bits. serde_norway's `Number` holds
/// 64 bits, but figment keeps such an integer (up to 128 bits) as a number,
/// so it must reach the rewritten config as the same plain integer. It is
/// held as this tag around its decimal digits; YAML text could spell the tag
/// only as a verbatim tag with an escaped blank (`!<mas-sockets%20...>`).
const BIG_INT_TAG: &str = "mas-sockets big integer";

/// The decimal digits of an integer that fits neither i64 nor u64 but i128
/// or u128, if `value` is one.
pub fn big_int(value: &Value) -> Option<&str> {
    match value {
        Value::Tagged(t) if t.tag == BIG_INT_TAG => t.value.as_str(),
        _ => None,
    }
}

fn big_int_value(digits: String) -> Value {
    Value::Tagged(Box::new(TaggedValue {
        tag: Tag::new(BIG_INT_TAG),
        value: Value::String(digits),
    }))
}

/// Parses one YAML document into a [`Value`] as serde_norway's own `Value`
/// does, but keeping integers beyond 64 bits (which serde_norway's `Value`
/// refuses) as [`big_int`]s. Beyond 128 bits, serde_norway reads a number as
/// a float, or a string, as figment does.
fn parse_value(text: &str) -> Result<Value, serde_norway::Error> {
    serde_norway::from_str::<ConfigValue>(text).map(|v| v.0)
}

/// A [`Value`] read by [`parse_value`].
struct ConfigValue(Value);

impl<'de> Deserialize<'de> for ConfigValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ConfigVisitor).map(ConfigValue)
    }
}

struct ConfigVisitor;

impl<'de> Visitor<'de> for ConfigVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Number(i.into()))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        Ok(Value::Number(u.into()))
    }

    fn visit_i128<E: de::Error>(self, i: i128) -> Result<Value, E> {
        Ok(match (i64::try_from(i), u64::try_from(i)) {
            (Ok(i), _) => Value::Number(i.into()),
            (_, Ok(u)) => Value::Number(u.into()),
            _ => big_int_value(i.to_string()),
        })
    }

    fn visit_u128<E: de::Error>(self, u: u128) -> Result<Value, E> {
        Ok(match u64::try_from(u) {
            Ok(u) => Value::Number(u.into()),
            Err(_) => big_int_value(u.to_string()),
        })
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Number(f.into()))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        ConfigValue::deserialize(deserializer).map(|v| v.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(ConfigValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Sequence(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut mapping = Mapping::new();
        while let Some(ConfigValue(key)) = map.next_key()? {
            // A key given twice: the last value wins, as in figment's
            // reading (MAS's); Document::parse warns of it.
            let ConfigValue(value) = map.next_value()?;
            mapping.insert(key, value);
        }
        Ok(Value::Mapping(mapping))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (tag, contents) = data.variant_seed(TagSeed)?;
        let ConfigValue(value) = contents.newtype_variant()?;
        Ok(Value::Tagged(Box::new(TaggedValue { tag, value })))
    }
}

/// Reads a `!tag` as serde_norway's `Value` does.
struct TagSeed;

impl<'de> DeserializeSeed<'de> for TagSeed {
    type Value = Tag;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Tag, D::Error> {
        let tag = String::deserialize(deserializer)?;
        if tag.is_empty() {
            return Err(de::Error::custom("empty YAML tag is not allowed"));
        }
        Ok(Tag::new(tag))
    }
}

/// Writes a [`Value`] as YAML, each [`big_int`] as the plain integer it was.
///
/// # Errors
///
/// As `serde_norway::to_string`.
pub fn to_yaml(value: &Value) -> Result<String, serde_norway::Error> {
    serde_norway::to_string(&Yaml(value))
}

/// A [`Value`] that serializes its [`big_int`]s as integers.
struct Yaml<'a>(&'a Value);

impl Serialize for Yaml<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if let Some(digits) = big_int(self.0) {
            return match (digits.parse::<i128>(), digits.parse::<u128>()) {
                (_, Ok(u)) => serializer.serialize_u128(u),
                (Ok(i), _) => serializer.serialize_i128(i),
                _ => Err(serde::ser::Error::custom(format_args!(
                    "`{digits}` is not a 128-bit integer"
                ))),
            };
        }
        match self.0 {
            Value::Sequence(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Yaml(item))?;
                }
                seq.end()
            }
            Value::Mapping(mapping) => {
                let mut map = serializer.serialize_map(Some(mapping.len()))?;
                for (k, v) in mapping {
                    map.serialize_entry(&Yaml(k), &Yaml(v))?;
                }
                map.end()
            }
            // As serde_norway writes a tagged value: a one-entry map whose key
            // is the tag.
            Value::Tagged(tagged) => {
                struct TagText<'a>(&'a Tag);
                impl Serialize for TagText<'_> {
                    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                        serializer.collect_str(self.0)
                    }
                }
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry(&TagText(&tagged.tag), &Yaml(&tagged.value))?;
                map.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// The root scalar of `text`'s first document, as written, and where it
/// starts; `None` when the root is a collection or there is no document.
fn root_scalar(text: &str) -> Option<(String, Pos)> {
    let mut parser = Parser::new_from_str(text);
    while let Some(event) = parser.next_event() {
        let (event, span) = event.ok()?;
        let pos = Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        };
        match event {
            Event::Scalar(value, _, _, tag) => {
                // A bare `---` or empty document is an empty untagged scalar.
                if value.is_empty() && tag.is_none() {
                    return Some((String::new(), pos));
                }
                let written: String = text
                    .chars()
                    .skip(span.start.index())
                    .take(span.end.index().saturating_sub(span.start.index()))
                    .collect();
                let written = written.trim();
                let shown = if written.is_empty() {
                    value.into_owned()
                } else {
                    written.to_owned()
                };
                return Some((shown, pos));
            }
            Event::MappingStart(..) | Event::SequenceStart(..) | Event::Alias(_) => return None,
            _ => {}
        }
    }
    None
}

/// Where the root node of `text`'s first document starts.
fn root_position(text: &str) -> Option<Pos> {
    index_positions(text)?.get("").copied()
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
    /// Every key given twice in one mapping, in order.
    repeated: Vec<RepeatedKey>,
}

/// Walks the YAML events of `text` and records where every node (and every
/// mapping key, under `<path>#key`) starts.
fn index_positions(text: &str) -> Option<HashMap<String, Pos>> {
    walk_events(text).map(|w| w.positions)
}

/// See [`index_positions`]; also finds the first key given twice.
///
/// Only a text that serde_norway (libyaml's grammar, as MAS reads YAML)
/// accepted is walked, but saphyr's parser is stricter about tabs: it
/// refuses one after `key:` that libyaml takes as a separator. Such a text
/// is walked again with each tab as a space, which keeps every line and
/// column; and where a walk still fails, the positions found before the
/// failure are kept, so that only the nodes after it are not located.
fn walk_events(text: &str) -> Option<Walked> {
    match walk_text(text) {
        Ok(walked) => Some(walked),
        Err(partial) if text.contains('\t') => {
            Some(walk_text(&text.replace('\t', " ")).unwrap_or(partial))
        }
        Err(partial) => Some(partial),
    }
}

/// Walks the events of `text`; what was found up to a parser error is the
/// error.
fn walk_text(text: &str) -> Result<Walked, Walked> {
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
    let mut repeated = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut parser = Parser::new_from_str(text);
    while let Some(event) = parser.next_event() {
        let Ok((event, span)) = event else {
            return Err(Walked {
                positions,
                repeated,
            });
        };
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
                                repeated.push(RepeatedKey {
                                    mapping: path.clone(),
                                    key: name.clone(),
                                    first,
                                    again: pos,
                                });
                                // The last value wins: positions are its.
                                let gone = path.key(&name).0;
                                positions.retain(|k: &String, _| {
                                    k.strip_prefix(gone.as_str()).is_none_or(|rest| {
                                        !(rest.is_empty() || rest.starts_with(['.', '[', '#']))
                                    })
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
    Ok(Walked {
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
    fn comments_only_and_a_bare_document_start_are_an_empty_mapping() {
        for text in [
            "# nothing yet\n",
            "---\n",
            "---\n# c\n",
            "\n\n",
            "--- # c\n...\n",
        ] {
            assert_eq!(
                doc("e", text).value,
                Value::Mapping(Mapping::new()),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_written_null_is_refused_as_figment_refuses_it() {
        for (text, at, shown) in [
            ("~\n", "1:1", "~"),
            ("null\n", "1:1", "null"),
            ("NULL\n", "1:1", "NULL"),
            ("# c\n--- ~\n", "2:5", "~"),
        ] {
            let err = Document::parse(Path::new("c.yaml"), text)
                .unwrap_err()
                .to_string();
            assert_eq!(
                err,
                format!("c.yaml:{at}: the config is `{shown}`, a null, not a mapping of sections such as `http:`; MAS refuses it (\"invalid type: unit value, expected a map\"), though it reads an empty file as no settings; remove `{shown}` to leave the file empty, or write its sections, e.g. `http:`"),
                "{text:?}"
            );
        }
    }

    #[test]
    fn an_integer_beyond_128_bits_is_no_syntax_error() {
        // serde_norway's own Value refuses what figment keeps as an i128/u128.
        let d = doc("b", "weird:\n  big: 123456789012345678901234567890\n");
        assert_eq!(
            big_int(&d.value["weird"]["big"]),
            Some("123456789012345678901234567890")
        );
        assert_eq!(kind_of(&d.value["weird"]["big"]), "a number");
        assert_eq!(
            to_yaml(&d.value).unwrap(),
            "weird:\n  big: 123456789012345678901234567890\n"
        );
        let d =
            Document::parse(Path::new("c.yaml"), "a: 1\nb: -9223372036854775809\nb: 2\n").unwrap();
        assert_eq!(d.value["b"], Value::from(2));
        assert!(
            d.warnings[0].starts_with("c.yaml:3:1: `b` is given twice"),
            "{:?}",
            d.warnings
        );
    }

    #[test]
    fn tagged_values_are_written_back_with_their_tag() {
        let d = doc("t", "a: !custom {big: 123456789012345678901234567890}\n");
        let yaml = to_yaml(&d.value).unwrap();
        assert_eq!(yaml, "a: !custom\n  big: 123456789012345678901234567890\n");
        assert_eq!(doc("t", &yaml).value, d.value);
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
    fn a_syntax_error_names_what_the_parser_was_reading_and_where_it_began() {
        let err = |text: &str| {
            Document::parse(Path::new("c.yaml"), text)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("http:\n  listeners:\n    - name: web\n      resources: [{name: health}\n      binds: [{port: 8080}]\n"),
            "c.yaml:5:7: invalid YAML: did not find expected ',' or ']', while parsing a flow sequence at line 4 column 18; close the `[` at 4:18 with `]`, or put a `,` between its items"
        );
        assert_eq!(
            err("a: {b: 1\nc: 2\n"),
            "c.yaml:2:2: invalid YAML: did not find expected ',' or '}', while parsing a flow mapping at line 1 column 4; close the `{` at 1:4 with `}`, or put a `,` between its entries"
        );
        assert_eq!(
            err("a: 1\nx: \"unterminated\n"),
            "c.yaml:3:1: invalid YAML: found unexpected end of stream, while scanning a quoted scalar at line 2 column 4; close the quote opened at 2:4"
        );
        assert!(err("http:\n  listeners:\n    - name: web\n     binds: []\n").ends_with(
            "while parsing a block collection at line 3 column 5; indent this line as the list that starts at 3:5 needs: its items each start with `- ` in that list's column, and an item's keys line up"
        ));
        // A tab where the parser stopped is named as one.
        assert_eq!(
            err("http:\n\tpublic_base: https://a/\n"),
            "c.yaml:2:1: invalid YAML: found character that cannot start any token, while scanning for the next token; this is a tab, which YAML does not allow for indentation; replace the tab at 2:1 with spaces"
        );
        assert!(err("a:\n  b:\n  \t- 1\n").ends_with("replace the tab at 3:3 with spaces"));
        // Without such context, no fix for brackets or quotes.
        assert_eq!(
            err("a: b: c\n"),
            "c.yaml:1:5: invalid YAML: mapping values are not allowed in this context; fix the syntax there or just before it"
        );
    }

    /// libyaml, as MAS reads YAML, takes a tab after `key:` as a separator;
    /// the positions are found for such a text too.
    #[test]
    fn nodes_after_a_tab_separator_are_located() {
        let d = Document::parse(
            Path::new("c.yaml"),
            "http:\n  public_base:\thttps://a/\n  x: [1,\t2]\ny: 3\n",
        )
        .expect("valid YAML to libyaml");
        assert_eq!(
            d.position("http.public_base"),
            Some(Pos {
                line: 2,
                column: 16
            })
        );
        assert_eq!(
            d.position("http.x[1]"),
            Some(Pos {
                line: 3,
                column: 10
            })
        );
        assert_eq!(d.position("y"), Some(Pos { line: 4, column: 4 }));
    }

    #[test]
    fn a_second_document_is_located_where_it_starts() {
        let err = |text: &str| {
            Document::parse(Path::new("c.yaml"), text)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("http:\n  public_base: https://a/\n---\n"),
            "c.yaml:3:1: a second YAML document starts here (`---`), and MAS reads one document per file and refuses the file; remove it"
        );
        assert_eq!(
            err("---\na: 1\n--- # more\nb: 2\n"),
            "c.yaml:3:1: a second YAML document starts here (`---`), and MAS reads one document per file and refuses the file; remove it, or move what follows it into a file of its own, given with another --config"
        );
        assert!(err("a: 1\n...\nb: 2\n").starts_with(
            "c.yaml:3:1: a second YAML document starts here (after the `...` that ends the first)"
        ));
        // One document, ended with `...`, is fine.
        doc("c", "a: 1\n...\n");
    }

    /// A key given twice: the last value wins, as MAS reads it, and a
    /// warning names both places; positions are the last value's.
    #[test]
    fn a_key_given_twice_takes_the_last_value_and_is_warned_about() {
        let d = Document::parse(
            Path::new("c.yaml"),
            "database:\n  uri: a\nsecrets: {}\ndatabase:\n  uri: b\n",
        )
        .unwrap();
        assert_eq!(d.value["database"]["uri"], Value::from("b"));
        assert_eq!(
            d.warnings,
            ["c.yaml:4:1: `database` is given twice in one mapping, here and at c.yaml:1:1; MAS takes this last value and drops the first without a word, as mas-sockets does; remove one of them"]
        );
        assert_eq!(d.position("database.uri"), Some(Pos { line: 5, column: 8 }));
        let d = Document::parse(
            Path::new("c.yaml"),
            "http:\n  listeners:\n    - binds:\n        - host: 127.0.0.1\n          port: 8080\n          port: 8081\nemail:\n  transport: smtp\n  transport: blackhole\n",
        )
        .unwrap();
        assert_eq!(
            d.value["http"]["listeners"][0]["binds"][0]["port"],
            Value::from(8081)
        );
        assert_eq!(d.warnings.len(), 2, "{:?}", d.warnings);
        assert!(
            d.warnings[0].starts_with("c.yaml:6:11: http.listeners[0].binds[0]: `port` is given twice in one mapping, here and at c.yaml:5:11;"),
            "{:?}",
            d.warnings
        );
        assert!(
            d.warnings[1].starts_with("c.yaml:9:3: email: `transport` is given twice"),
            "{:?}",
            d.warnings
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
