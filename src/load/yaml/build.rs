// Errors carry a message, a hint and a related place; they are rare and returned once,
// so their size does not matter.
#![allow(clippy::result_large_err)]
//! Parser events straight into the JSON value and the flat location list, without an
//! intermediate node tree: each scalar is resolved once and moved into its parent,
//! each node's location is appended once. Only anchors keep a copy (for their
//! aliases), and only maps with `<<` merge keys reorder their part of the list.

use std::collections::HashMap;

use serde_json::{Map, Value};
use serde_saphyr::granit_parser::{Event, Parser};

use super::locations::{Entry, Kind, Locations, Packed};
use super::scalar::resolve_scalar;
use super::{LineIndex, MAX_DEPTH, MAX_NODES, Range, YamlError};

/// An anchored value and its locations (its root first, sizes relative).
struct Anchor {
    value: Value,
    entries: Vec<Entry>,
}

/// A map key as read: its text, or a list/map (an error once the map is complete).
enum Key {
    Text {
        text: String,
        range: Range,
        /// Whether it was text (a `<<` in text is a merge key; `1` is not text).
        is_text: bool,
        /// Its text in the location list's key buffer.
        span: (u32, u32),
    },
    Complex(Range),
}

/// A key and value of a map being read, with the index of the value's location.
struct Pending {
    key: Key,
    value: Value,
    at: usize,
}

enum Frame {
    Seq { range: Range, anchor: usize, start: usize, items: Vec<Value> },
    Map { range: Range, anchor: usize, start: usize, pending: Vec<Pending>, key: Option<Key> },
}

struct Builder {
    locations: Locations,
    anchors: HashMap<usize, Anchor>,
    stack: Vec<Frame>,
    root: Option<Value>,
    /// Whether an alias was copied in (only then can the result nest deeper than the
    /// parser allows).
    aliased: bool,
}

/// Read `source` into its value (`None` for an empty document) and locations.
pub(super) fn build(source: &str, index: &LineIndex<'_>) -> Result<(Option<Value>, Locations), YamlError> {
    let mut parser = Parser::new_from_str(source);
    let mut builder = Builder {
        // About one node per 10 bytes of YAML; a guess only saves regrowing.
        locations: Locations { entries: Vec::with_capacity(source.len() / 10 + 1), keys: String::new() },
        anchors: HashMap::new(),
        stack: Vec::new(),
        root: None,
        aliased: false,
    };
    let mut documents = 0usize;
    let mut total = 0usize;
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|error| parser_error(source, index, &error))?;
        let range = index.span(&span);
        match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return Err(YamlError {
                        range,
                        message: "a second YAML document (`---`) in one file".into(),
                        hint: Some("keep one document per file".into()),
                        related: None,
                    });
                }
            }
            Event::Anchor(..) | Event::UnresolvedAlias(..) => return Err(undefined_alias(range)),
            Event::Alias(id) => {
                let Some(target) = builder.anchors.get(&id) else { return Err(undefined_alias(range)) };
                total += target.entries.len();
                if total > MAX_NODES {
                    return Err(too_many_nodes(range));
                }
                builder.alias(id, range);
            }
            Event::Scalar(text, style, anchor, tag) => {
                let tag_suffix = tag.as_ref().map(|t| {
                    if t.is_yaml_core_schema() {
                        t.suffix().to_string()
                    } else if t.handle() == "tag:yaml.org,2002:" {
                        format!("!!{}", t.suffix())
                    } else {
                        format!("!{}", t.suffix())
                    }
                });
                let value = resolve_scalar(&text, style, tag_suffix.as_deref())
                    .map_err(|message| YamlError { range, message, hint: None, related: None })?;
                total += 1;
                if anchor != 0 {
                    let entries = vec![Entry::new(range, Kind::Scalar)];
                    builder.anchors.insert(anchor, Anchor { value: value.clone(), entries });
                }
                if total > MAX_NODES {
                    return Err(too_many_nodes(range));
                }
                builder.scalar(value, range);
            }
            Event::SequenceStart(_, anchor, _) => {
                check_depth(builder.stack.len(), range)?;
                let start = builder.open(range, Kind::Seq);
                builder.stack.push(Frame::Seq { range, anchor, start, items: Vec::new() });
            }
            Event::MappingStart(_, anchor, _) => {
                check_depth(builder.stack.len(), range)?;
                let start = builder.open(range, Kind::Map);
                builder.stack.push(Frame::Map { range, anchor, start, pending: Vec::new(), key: None });
            }
            Event::SequenceEnd => match builder.stack.pop() {
                Some(Frame::Seq { range, anchor, start, items }) => {
                    total += 1;
                    let value = builder.close(Value::Array(items), anchor, start);
                    if total > MAX_NODES {
                        return Err(too_many_nodes(range));
                    }
                    builder.attach(value, range, start, true);
                }
                _ => return Err(internal(range)),
            },
            Event::MappingEnd => match builder.stack.pop() {
                Some(Frame::Map { range, anchor, start, pending, .. }) => {
                    total += 1;
                    let value = builder.finish_map(start, pending)?;
                    let value = builder.close(value, anchor, start);
                    if total > MAX_NODES {
                        return Err(too_many_nodes(range));
                    }
                    builder.attach(value, range, start, true);
                }
                _ => return Err(internal(range)),
            },
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
    if builder.aliased {
        builder.check_final_depth()?;
    }
    Ok((builder.root, builder.locations))
}

impl Builder {
    /// Whether the next node is a map key.
    fn expects_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }

    /// The key the next node is stored under, when it is a map value.
    fn key_of_next(&self) -> Option<(Range, (u32, u32))> {
        match self.stack.last() {
            Some(Frame::Map { key: Some(Key::Text { range, span, .. }), .. }) => Some((*range, *span)),
            Some(Frame::Map { key: Some(Key::Complex(range)), .. }) => Some((*range, (0, 0))),
            _ => None,
        }
    }

    /// Append a node's location, under the key it is stored at.
    fn push_entry(&mut self, mut entry: Entry) -> usize {
        if let Some((range, span)) = self.key_of_next() {
            entry.key = Some(Packed::new(range));
            entry.key_text = span;
        }
        self.locations.entries.push(entry);
        self.locations.entries.len() - 1
    }

    /// Start a list or map: its location now, its value when it ends.
    fn open(&mut self, range: Range, kind: Kind) -> usize {
        self.push_entry(Entry::new(range, kind))
    }

    /// A list or map is complete: size its location and remember it for its aliases.
    fn close(&mut self, value: Value, anchor: usize, start: usize) -> Value {
        let size = self.locations.entries.len() - start;
        self.locations.entries[start].size = u32::try_from(size).unwrap_or(u32::MAX);
        if anchor != 0 {
            let entries = self.locations.entries[start..].to_vec();
            self.anchors.insert(anchor, Anchor { value: value.clone(), entries });
        }
        value
    }

    /// A scalar: a map key, or a value with its location.
    fn scalar(&mut self, value: Value, range: Range) {
        if self.expects_key() {
            self.set_key(value, range);
            return;
        }
        let at = self.push_entry(Entry::new(range, Kind::Scalar));
        self.attach(value, range, at, false);
    }

    /// The next map key is the scalar `value` defined at `range`.
    fn set_key(&mut self, value: Value, range: Range) {
        let is_text = value.is_string();
        let text = match value {
            Value::String(text) => text,
            Value::Null => String::new(),
            other => other.to_string(),
        };
        let start = self.locations.keys.len();
        self.locations.keys.push_str(&text);
        let span = (u32::try_from(start).unwrap_or(u32::MAX), u32::try_from(text.len()).unwrap_or(0));
        if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
            *key = Some(Key::Text { text, range, is_text, span });
        }
    }

    /// An alias: a copy of the anchored value and its locations, reached through `range`.
    fn alias(&mut self, id: usize, range: Range) {
        let Some(target) = self.anchors.get(&id) else { return };
        let root = target.entries.first().copied().unwrap_or_else(|| Entry::new(range, Kind::Scalar));
        if self.expects_key() {
            // The key's place is where its text is defined.
            if root.kind == Kind::Scalar {
                let value = target.value.clone();
                self.set_key(value, root.value.range());
            } else if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                *key = Some(Key::Complex(root.value.range()));
            }
            return;
        }
        self.aliased = true;
        let value = target.value.clone();
        let at = self.locations.entries.len();
        self.locations.entries.extend_from_slice(&target.entries);
        let key = self.key_of_next();
        let entry = &mut self.locations.entries[at];
        entry.key = key.map(|(range, _)| Packed::new(range));
        entry.key_text = key.map_or((0, 0), |(_, span)| span);
        entry.via = Some(Packed::new(range));
        self.attach(value, root.value.range(), at, root.kind != Kind::Scalar);
    }

    /// Hand a complete node (its location at `at`) to the collection it belongs to.
    fn attach(&mut self, value: Value, range: Range, at: usize, collection: bool) {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { pending, key, .. }) => match key.take() {
                Some(key) => pending.push(Pending { key, value, at }),
                None => {
                    // A list or map used as a key: refused when the map is complete.
                    if collection {
                        self.locations.entries.truncate(at);
                    }
                    *key = Some(Key::Complex(range));
                }
            },
        }
    }

    /// Build a map's value, applying `<<` merge keys (explicit keys win over merged
    /// ones, earlier merge sources over later ones) and reordering its locations the
    /// same way.
    fn finish_map(&mut self, start: usize, pending: Vec<Pending>) -> Result<Value, YamlError> {
        type Seen = HashMap<String, Range, foldhash::fast::RandomState>;
        let mut explicit: Vec<(String, Range, Value, usize)> = Vec::with_capacity(pending.len());
        // Duplicate keys of a small map (almost all of them) are found by comparing with
        // the keys kept so far, without hashing or copying them; a large one uses a map.
        let mut seen: Option<Seen> = (pending.len() > SMALL_MAP)
            .then(|| Seen::with_capacity_and_hasher(pending.len(), foldhash::fast::RandomState::default()));
        let mut merges: Vec<(Range, Value, usize)> = Vec::new();
        for Pending { key, value, at } in pending {
            let (key, key_range, is_text) = match key {
                Key::Text { text, range, is_text, .. } => (text, range, is_text),
                Key::Complex(range) => {
                    return Err(YamlError {
                        range,
                        message: "a map key must be a plain value, not a list or map".into(),
                        hint: None,
                        related: None,
                    });
                }
            };
            if is_text && key == "<<" {
                merges.push((key_range, value, at));
                continue;
            }
            let first = match &seen {
                Some(seen) => seen.get(&key).copied(),
                None => explicit.iter().find(|(k, _, _, _)| *k == key).map(|(_, r, _, _)| *r),
            };
            if let Some(first) = first {
                return Err(YamlError {
                    range: key_range,
                    message: format!("duplicate key `{key}`"),
                    hint: Some("each key may appear once in a map; remove or rename one".into()),
                    related: Some((first, format!("`{key}` first defined here"))),
                });
            }
            if let Some(seen) = &mut seen {
                seen.insert(key.clone(), key_range);
            }
            explicit.push((key, key_range, value, at));
        }
        let mut map = Map::with_capacity(explicit.len());
        if merges.is_empty() {
            for (key, _, value, _) in explicit {
                map.insert(key, value);
            }
            return Ok(Value::Object(map));
        }
        let mut seen = match seen {
            Some(seen) => seen,
            None => explicit.iter().map(|(k, r, _, _)| (k.clone(), *r)).collect(),
        };
        // The map's children, taken out and put back in the merged order.
        let base = start + 1;
        let old: Vec<Entry> = self.locations.entries.drain(base..).collect();
        let subtree = |at: usize| {
            let from = at.saturating_sub(base).min(old.len());
            let size = old.get(from).map_or(0, |e| e.size.max(1) as usize);
            &old[from..(from + size).min(old.len())]
        };
        for (key, _, value, at) in explicit {
            self.locations.entries.extend_from_slice(subtree(at));
            map.insert(key, value);
        }
        for (merge_range, source, at) in merges {
            let source_entry = subtree(at).first().copied();
            let source_range = source_entry.map_or(merge_range, |e| e.value.range());
            let sources: Vec<(Value, usize)> = match source {
                Value::Object(_) => vec![(source, at)],
                Value::Array(items) => {
                    let mut child = at + 1;
                    let mut sources = Vec::with_capacity(items.len());
                    for item in items {
                        sources.push((item, child));
                        child += subtree(child).len().max(1);
                    }
                    sources
                }
                _ => {
                    return Err(YamlError {
                        range: source_range,
                        message: "`<<` must be followed by a map or a list of maps (usually `*anchor`)"
                            .into(),
                        hint: None,
                        related: None,
                    });
                }
            };
            for (source, source_at) in sources {
                let Value::Object(source_map) = source else {
                    let range = subtree(source_at).first().map_or(source_range, |e| e.value.range());
                    return Err(YamlError {
                        range,
                        message: "`<<` merges only maps".into(),
                        hint: None,
                        related: None,
                    });
                };
                let mut child = source_at + 1;
                for (key, value) in source_map {
                    let entries = subtree(child);
                    child += entries.len().max(1);
                    if seen.contains_key(&key) {
                        continue;
                    }
                    let key_range =
                        entries.first().and_then(|e| e.key).map(Packed::range).unwrap_or_default();
                    seen.insert(key.clone(), key_range);
                    let at = self.locations.entries.len();
                    self.locations.entries.extend_from_slice(entries);
                    if let Some(root) = self.locations.entries.get_mut(at) {
                        root.via = root.via.or(Some(Packed::new(merge_range)));
                    }
                    map.insert(key, value);
                }
            }
        }
        Ok(Value::Object(map))
    }

    /// Refuse a document that aliases nest deeper than [`MAX_DEPTH`] allows four times
    /// over, at its first node that deep.
    fn check_final_depth(&self) -> Result<(), YamlError> {
        let mut open: Vec<usize> = Vec::new();
        for (at, entry) in self.locations.entries.iter().enumerate() {
            while open.last().is_some_and(|end| *end <= at) {
                open.pop();
            }
            if open.len() > MAX_DEPTH * 4 {
                return Err(check_depth(usize::MAX, entry.value.range())
                    .err()
                    .unwrap_or_else(|| internal(entry.value.range())));
            }
            if entry.size > 1 {
                open.push(at + entry.size as usize);
            }
        }
        Ok(())
    }
}

/// Entries up to which a map's duplicate keys are found without a hash map.
const SMALL_MAP: usize = 16;

fn undefined_alias(range: Range) -> YamlError {
    YamlError {
        range,
        message: "alias refers to an anchor that is not defined before it".into(),
        hint: Some("define `&name` before using `*name`".into()),
        related: None,
    }
}

/// A parser error, with a clearer message for the common ones.
fn parser_error(
    source: &str,
    index: &LineIndex<'_>,
    error: &serde_saphyr::granit_parser::ScanError,
) -> YamlError {
    let mut pos = index.marker(error.marker());
    let info = error.info();
    let (message, hint) = if info.contains("recursion limit") {
        (format!("nesting deeper than {MAX_DEPTH} levels"), Some("flatten the structure".to_string()))
    } else if info.contains("unknown anchor") {
        let name: String = source[pos.offset.min(source.len())..]
            .trim_start_matches('*')
            .chars()
            .take_while(|c| !c.is_whitespace() && !",[]{}".contains(*c))
            .collect();
        (
            format!("alias `*{name}` refers to an anchor that is not defined before it"),
            Some(format!("define `&{name}` on a value above this line")),
        )
    } else if info.contains("tab") {
        // The parser reports the position after the tab.
        if pos.offset > 0 && source.as_bytes().get(pos.offset - 1) == Some(&b'\t') {
            pos = index.pos_of_offset(pos.offset - 1);
        }
        (
            format!("YAML syntax error: {info}"),
            Some("indent YAML with spaces; tabs are not allowed for indentation".to_string()),
        )
    } else {
        (format!("YAML syntax error: {info}"), None)
    };
    YamlError { range: Range { start: pos, end: pos.offset + 1 }, message, hint, related: None }
}

fn internal(range: Range) -> YamlError {
    YamlError { range, message: "YAML structure could not be read".into(), hint: None, related: None }
}

fn too_many_nodes(range: Range) -> YamlError {
    YamlError {
        range,
        message: format!("document expands to more than {MAX_NODES} values through aliases"),
        hint: Some("this looks like an alias bomb; use fewer nested aliases".into()),
        related: None,
    }
}

pub(super) fn check_depth(depth: usize, range: Range) -> Result<(), YamlError> {
    if depth >= MAX_DEPTH {
        return Err(YamlError {
            range,
            message: format!("nesting deeper than {MAX_DEPTH} levels"),
            hint: Some("flatten the structure".into()),
            related: None,
        });
    }
    Ok(())
}
