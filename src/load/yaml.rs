// Errors carry a message, a hint and a related place; they are rare and returned once,
// so their size does not matter.
#![allow(clippy::result_large_err)]
//! YAML text -> a JSON value plus the source position of every node.
//!
//! We read parser events ourselves instead of deserializing directly so that
//! every value keeps its position (for `file:line:col` diagnostics), aliases and
//! `<<` merge keys remember both where a value was defined and where it was used,
//! plain scalars resolve by the YAML 1.2 core schema (`no`, `on`, `yes` stay
//! strings), duplicate keys are errors, and alias bombs and absurd nesting are
//! refused instead of exhausting memory.

use std::collections::HashMap;

use serde_json::{Map, Value};
use serde_saphyr::granit_parser::{Event, Marker, Parser, Span};

/// The deepest nesting accepted.
pub(crate) const MAX_DEPTH: usize = 128;
/// The most nodes a document may expand to (after aliases and merges).
pub(crate) const MAX_NODES: usize = 1_000_000;

// The position types live in `diagnostics` (below the loader); re-exported here
// because every YAML node carries them.
pub(crate) use crate::diagnostics::{Pos, Range};

mod scalar;
use scalar::resolve_scalar;

/// Locations by JSON pointer.
pub(crate) type Locations = HashMap<String, Location, foldhash::fast::RandomState>;

/// Where a value sits in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Location {
    /// The value itself (for a collection: its first token).
    pub value: Range,
    /// The key it is stored under, when it is a map value.
    pub key: Option<Range>,
    /// The alias (`*name`) or merge key (`<<`) through which it was reached, when its
    /// text is defined elsewhere.
    pub via: Option<Range>,
}

/// A parsed document.
#[derive(Debug, Clone)]
pub struct Document {
    /// The document as JSON.
    pub value: Value,
    /// Location of every node by JSON pointer (`""` is the root). Hashed with foldhash:
    /// every node of every file is inserted once, and SipHash was a visible part of
    /// `runner validate`'s CPU.
    pub locations: Locations,
}

impl Document {
    /// The location of the node at `pointer`, or of its nearest ancestor that has one.
    pub fn locate(&self, pointer: &str) -> Location {
        let mut current = pointer;
        loop {
            if let Some(location) = self.locations.get(current) {
                return *location;
            }
            match current.rfind('/') {
                Some(index) => current = &current[..index],
                None => return Location::default(),
            }
        }
    }
}

/// A YAML error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// Where.
    pub range: Range,
    /// What went wrong.
    pub message: String,
    /// How to fix it, if we know.
    pub hint: Option<String>,
    /// A second place that matters (the first definition of a duplicate key).
    pub related: Option<(Range, String)>,
}

/// Line start offsets, to turn parser markers into byte offsets in O(1) amortised:
/// markers carry their byte offset; a character column is mapped directly on an ASCII
/// line, and otherwise by walking on from the last position asked for on that line
/// (the parser asks in order), never from the line start for every node.
#[derive(Debug)]
pub(crate) struct LineIndex<'a> {
    source: &'a str,
    starts: Vec<usize>,
    /// Whether each line is pure ASCII (then column = byte distance).
    ascii: Vec<bool>,
    /// The last (line, 0-based char column, byte offset) resolved on a non-ASCII line.
    cursor: std::cell::Cell<(usize, usize, usize)>,
}

impl<'a> LineIndex<'a> {
    /// Index `source`.
    pub(crate) fn new(source: &'a str) -> Self {
        // Line by line (the newline search and the ASCII test work on whole words), not
        // byte by byte: every file is indexed once, and the byte loop showed in profiles.
        let mut starts = vec![0];
        let mut ascii = Vec::new();
        let mut offset = 0;
        for line in source.split_inclusive('\n') {
            offset += line.len();
            ascii.push(line.is_ascii());
            if line.ends_with('\n') {
                starts.push(offset);
            }
        }
        // The (empty) line after a final newline, or the only line of an empty text.
        if ascii.len() < starts.len() {
            ascii.push(true);
        }
        LineIndex { source, starts, ascii, cursor: std::cell::Cell::new((0, 0, 0)) }
    }

    /// The position of 1-based `line` and 0-based character column `col`.
    pub(crate) fn pos(&self, line: usize, col: usize) -> Pos {
        let line = line.max(1).min(self.starts.len());
        let start = self.starts[line - 1];
        let end = self.starts.get(line).copied().unwrap_or(self.source.len());
        let text = &self.source[start..end];
        let content_end = start + text.trim_end_matches(['\n', '\r']).len();
        let offset = if self.ascii.get(line - 1).copied().unwrap_or(false) {
            if col < text.len() { start + col } else { content_end }
        } else {
            // Resume from the cursor when it is on this line at or before `col`.
            let (cursor_line, cursor_col, cursor_offset) = self.cursor.get();
            let (mut at_col, mut at) = if cursor_line == line && cursor_col <= col {
                (cursor_col, cursor_offset)
            } else {
                (0, start)
            };
            let mut chars = self.source[at..end].chars();
            while at_col < col {
                match chars.next() {
                    Some(c) => {
                        at += c.len_utf8();
                        at_col += 1;
                    }
                    None => break,
                }
            }
            if at_col == col && at < end {
                self.cursor.set((line, col, at));
                at
            } else {
                content_end
            }
        };
        Pos { line, col: col + 1, offset }
    }

    fn marker(&self, marker: &Marker) -> Pos {
        match marker.byte_offset() {
            Some(offset) if offset <= self.source.len() && self.source.is_char_boundary(offset) => {
                let line = marker.line().max(1).min(self.starts.len());
                Pos { line, col: marker.col() + 1, offset }
            }
            _ => self.pos(marker.line(), marker.col()),
        }
    }

    fn span(&self, span: &Span) -> Range {
        let start = self.marker(&span.start);
        let end = self.marker(&span.end).offset.max(start.offset);
        Range { start, end }
    }

    /// The position of a byte offset.
    pub(crate) fn pos_of_offset(&self, offset: usize) -> Pos {
        let offset = offset.min(self.source.len());
        let line = match self.starts.binary_search(&offset) {
            Ok(index) => index + 1,
            Err(index) => index,
        };
        let start = self.starts[line - 1];
        let col = self.source[start..offset].chars().count();
        Pos { line, col: col + 1, offset }
    }
}

#[derive(Debug, Clone)]
enum Data {
    Scalar(Value),
    Seq(Vec<Node>),
    Map(Vec<(String, Range, Node)>),
}

#[derive(Debug, Clone)]
struct Node {
    data: Data,
    range: Range,
    via: Option<Range>,
    size: usize,
}

enum Frame {
    Seq { range: Range, anchor: usize, items: Vec<Node> },
    Map { range: Range, anchor: usize, entries: Vec<(Node, Node)>, key: Option<Node> },
}

/// Parse one YAML document.
pub fn parse(source: &str) -> Result<Document, YamlError> {
    let index = LineIndex::new(source);
    let root = build_tree(source, &index)?;
    // One location per node: size the map once.
    let mut locations = Locations::with_capacity_and_hasher(
        root.as_ref().map_or(1, |node| node.size.min(MAX_NODES)),
        foldhash::fast::RandomState::default(),
    );
    let value = match root {
        Some(node) => flatten(node, &mut String::new(), None, None, &mut locations, 0)?,
        None => {
            locations.insert(
                String::new(),
                Location { value: Range { start: index.pos(1, 0), end: 0 }, key: None, via: None },
            );
            Value::Null
        }
    };
    Ok(Document { value, locations })
}

fn build_tree(source: &str, index: &LineIndex<'_>) -> Result<Option<Node>, YamlError> {
    let mut parser = Parser::new_from_str(source);
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    let mut total = 0usize;
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|error| {
            let pos = index.marker(error.marker());
            let info = error.info();
            let mut pos = pos;
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
        })?;
        let range = index.span(&span);
        let node = match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => continue,
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
                continue;
            }
            Event::Anchor(..) | Event::UnresolvedAlias(..) => {
                return Err(YamlError {
                    range,
                    message: "alias refers to an anchor that is not defined before it".into(),
                    hint: Some("define `&name` before using `*name`".into()),
                    related: None,
                });
            }
            Event::Alias(id) => {
                let Some(target) = anchors.get(&id) else {
                    return Err(YamlError {
                        range,
                        message: "alias refers to an anchor that is not defined before it".into(),
                        hint: Some("define `&name` before using `*name`".into()),
                        related: None,
                    });
                };
                total += target.size;
                if total > MAX_NODES {
                    return Err(too_many_nodes(range));
                }
                let mut node = target.clone();
                node.via = Some(range);
                node
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
                let node = Node { data: Data::Scalar(value), range, via: None, size: 1 };
                if anchor != 0 {
                    anchors.insert(anchor, node.clone());
                }
                node
            }
            Event::SequenceStart(_, anchor, _) => {
                check_depth(stack.len(), range)?;
                stack.push(Frame::Seq { range, anchor, items: Vec::new() });
                continue;
            }
            Event::MappingStart(_, anchor, _) => {
                check_depth(stack.len(), range)?;
                stack.push(Frame::Map { range, anchor, entries: Vec::new(), key: None });
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq { range, anchor, items }) => {
                    total += 1;
                    let size = 1 + items.iter().map(|n| n.size).sum::<usize>();
                    let node = Node { data: Data::Seq(items), range, via: None, size };
                    if anchor != 0 {
                        anchors.insert(anchor, node.clone());
                    }
                    node
                }
                _ => return Err(internal(range)),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map { range, anchor, entries, .. }) => {
                    total += 1;
                    let node = merge_map(range, entries)?;
                    if anchor != 0 {
                        anchors.insert(anchor, node.clone());
                    }
                    node
                }
                _ => return Err(internal(range)),
            },
            #[allow(unreachable_patterns)]
            _ => continue,
        };
        if total > MAX_NODES {
            return Err(too_many_nodes(node.range));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
    Ok(root)
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

fn check_depth(depth: usize, range: Range) -> Result<(), YamlError> {
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

/// Turn a key node into a string key.
fn key_text(node: Node) -> Result<String, YamlError> {
    match node.data {
        Data::Scalar(Value::String(s)) => Ok(s),
        Data::Scalar(Value::Null) => Ok(String::new()),
        Data::Scalar(other) => Ok(other.to_string()),
        _ => Err(YamlError {
            range: node.range,
            message: "a map key must be a plain value, not a list or map".into(),
            hint: None,
            related: None,
        }),
    }
}

/// Entries up to which a map's duplicate keys are found without a hash map.
const SMALL_MAP: usize = 16;

/// Build a map node, applying `<<` merge keys: explicit keys win over merged ones,
/// and earlier merge sources win over later ones.
fn merge_map(range: Range, entries: Vec<(Node, Node)>) -> Result<Node, YamlError> {
    type Seen = HashMap<String, Range, foldhash::fast::RandomState>;
    let mut explicit: Vec<(String, Range, Node)> = Vec::with_capacity(entries.len());
    // Duplicate keys of a small map (almost all of them) are found by comparing with
    // the keys kept so far, without hashing or copying them; a large one uses a map.
    let mut seen: Option<Seen> = (entries.len() > SMALL_MAP)
        .then(|| Seen::with_capacity_and_hasher(entries.len(), foldhash::fast::RandomState::default()));
    let mut merges: Vec<(Range, Node)> = Vec::new();
    for (key_node, value) in entries {
        let key_range = key_node.range;
        let is_text = matches!(&key_node.data, Data::Scalar(Value::String(_)));
        let key = key_text(key_node)?;
        if is_text && key == "<<" {
            merges.push((key_range, value));
            continue;
        }
        let first = match &seen {
            Some(seen) => seen.get(&key).copied(),
            None => explicit.iter().find(|(k, _, _)| *k == key).map(|(_, r, _)| *r),
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
        explicit.push((key, key_range, value));
    }
    let mut merged: Vec<(String, Range, Node)> = Vec::new();
    let mut seen = match seen {
        Some(seen) => seen,
        None if merges.is_empty() => Seen::default(),
        None => explicit.iter().map(|(k, r, _)| (k.clone(), *r)).collect(),
    };
    for (merge_range, source) in merges {
        let sources = match source.data {
            Data::Map(_) => vec![source],
            Data::Seq(items) => items,
            Data::Scalar(_) => {
                return Err(YamlError {
                    range: source.range,
                    message: "`<<` must be followed by a map or a list of maps (usually `*anchor`)".into(),
                    hint: None,
                    related: None,
                });
            }
        };
        for source in sources {
            let Data::Map(source_entries) = source.data else {
                return Err(YamlError {
                    range: source.range,
                    message: "`<<` merges only maps".into(),
                    hint: None,
                    related: None,
                });
            };
            for (key, key_range, mut value) in source_entries {
                if seen.contains_key(&key) {
                    continue;
                }
                seen.insert(key.clone(), key_range);
                if value.via.is_none() {
                    value.via = Some(merge_range);
                }
                merged.push((key, key_range, value));
            }
        }
    }
    explicit.extend(merged);
    let size = 1 + explicit.iter().map(|(_, _, n)| n.size).sum::<usize>();
    Ok(Node { data: Data::Map(explicit), range, via: None, size })
}

/// Turn the node tree into a JSON value, recording every node's location under its
/// JSON pointer. One pointer buffer is extended and cut back while walking, so each
/// node costs one allocation (its key in `locations`), not one per level.
fn flatten(
    node: Node,
    pointer: &mut String,
    key: Option<Range>,
    inherited_via: Option<Range>,
    locations: &mut Locations,
    depth: usize,
) -> Result<Value, YamlError> {
    if depth > MAX_DEPTH * 4 {
        return Err(check_depth(usize::MAX, node.range).err().unwrap_or_else(|| internal(node.range)));
    }
    let via = node.via.or(inherited_via);
    locations.insert(pointer.clone(), Location { value: node.range, key, via });
    let parent = pointer.len();
    Ok(match node.data {
        Data::Scalar(value) => value,
        Data::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                pointer.push('/');
                pointer.push_str(itoa_usize(i, &mut [0u8; 20]));
                let value = flatten(item, pointer, None, via, locations, depth + 1);
                pointer.truncate(parent);
                out.push(value?);
            }
            Value::Array(out)
        }
        Data::Map(entries) => {
            let mut out = Map::with_capacity(entries.len());
            for (k, key_range, value) in entries {
                pointer.push('/');
                push_escaped(pointer, &k);
                let child_via = value.via.or(via);
                let v = flatten(value, pointer, Some(key_range), child_via, locations, depth + 1);
                pointer.truncate(parent);
                out.insert(k, v?);
            }
            Value::Object(out)
        }
    })
}

/// `n` in decimal, written into `buffer` (no allocation).
fn itoa_usize(mut n: usize, buffer: &mut [u8; 20]) -> &str {
    let mut at = buffer.len();
    loop {
        at -= 1;
        buffer[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buffer[at..]).unwrap_or("0")
}

/// Append `key` escaped for a JSON pointer (`~` -> `~0`, `/` -> `~1`).
fn push_escaped(pointer: &mut String, key: &str) {
    if !key.contains(['~', '/']) {
        pointer.push_str(key);
        return;
    }
    for c in key.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            other => pointer.push(other),
        }
    }
}

/// Escape a key for use in a JSON pointer.
pub(crate) fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(src: &str) -> Document {
        match parse(src) {
            Ok(d) => d,
            Err(e) => panic!("parse failed: {e:?}"),
        }
    }

    #[test]
    fn norway_words_stay_strings() {
        let d = doc("a: no\nb: on\nc: yes\nd: off\ne: true\nf: ~\ng: 0755\nh: 1.5\ni: '1'\n");
        assert_eq!(
            d.value,
            serde_json::json!({"a": "no", "b": "on", "c": "yes", "d": "off", "e": true, "f": null, "g": 755, "h": 1.5, "i": "1"})
        );
    }

    #[test]
    fn positions_are_one_based() {
        let d = doc("name: x\nsteps:\n  - id: a\n    type: set\n");
        let loc = d.locate("/steps/0/type");
        assert_eq!((loc.value.start.line, loc.value.start.col), (4, 11));
        assert_eq!(loc.key.map(|k| (k.start.line, k.start.col)), Some((4, 5)));
        // Unknown pointers fall back to the nearest ancestor.
        assert_eq!(d.locate("/steps/0/nope").value.start.line, 3);
    }

    #[test]
    fn merge_keys_record_definition_and_use() {
        let src = "defaults: &d\n  timeout: 5s\n  retry: 2\nsteps:\n  - <<: *d\n    retry: 3\n";
        let d = doc(src);
        assert_eq!(d.value["steps"][0], serde_json::json!({"retry": 3, "timeout": "5s"}));
        let loc = d.locate("/steps/0/timeout");
        assert_eq!(loc.value.start.line, 2);
        assert_eq!(loc.via.map(|v| v.start.line), Some(5));
        assert_eq!(d.locate("/steps/0/retry").via, None);
    }

    #[test]
    fn aliases_record_use_site() {
        let d = doc("a: &x [1, 2]\nb: *x\n");
        assert_eq!(d.value["b"], serde_json::json!([1, 2]));
        let loc = d.locate("/b/1");
        assert_eq!(loc.value.start.line, 1);
        assert_eq!(loc.via.map(|v| v.start.line), Some(2));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let Err(e) = parse("a: 1\nb: 2\na: 3\n") else { panic!("expected an error") };
        assert_eq!(e.range.start.line, 3);
        assert!(e.message.contains("duplicate key `a`"));
        assert_eq!(e.related.map(|r| r.0.start.line), Some(1));
    }

    #[test]
    fn duplicate_keys_of_large_maps_and_merged_keys_are_found_the_same_way() {
        // More keys than a small map holds: the duplicate is found through the hash map.
        let mut src: String = (0..40).map(|i| format!("k{i}: {i}\n")).collect();
        src.push_str("k7: again\n");
        let Err(e) = parse(&src) else { panic!("expected an error") };
        assert_eq!(e.range.start.line, 41);
        assert!(e.message.contains("duplicate key `k7`"), "{e:?}");
        assert_eq!(e.related.map(|r| r.0.start.line), Some(8));
        // A small map with a merge: explicit keys win, merged ones fill in.
        let d = doc("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n");
        assert_eq!(d.value["m"], serde_json::json!({"y": 3, "x": 1}));
        // A large map with a merge.
        let mut src = String::from("base: &b {x: 1, k3: old}\nm:\n  <<: *b\n");
        src.extend((0..30).map(|i| format!("  k{i}: {i}\n")));
        let d = doc(&src);
        assert_eq!(d.value["m"]["k3"], serde_json::json!(3));
        assert_eq!(d.value["m"]["x"], serde_json::json!(1));
    }

    #[test]
    fn the_line_index_marks_each_line_start_and_ascii_line() {
        for text in ["", "a", "a\n", "a\nb", "é\nb\n", "\n\n", "x\r\né", "ab\ncd\n\nü"] {
            let index = LineIndex::new(text);
            // The same index, byte by byte.
            let mut starts = vec![0];
            let mut ascii = vec![true];
            for (at, byte) in text.bytes().enumerate() {
                if byte == b'\n' {
                    starts.push(at + 1);
                    ascii.push(true);
                } else if !byte.is_ascii() {
                    *ascii.last_mut().unwrap_or(&mut true) = false;
                }
            }
            assert_eq!(index.starts, starts, "{text:?}");
            assert_eq!(index.ascii, ascii, "{text:?}");
        }
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let Err(e) = parse(&src) else { panic!("expected an error") };
        assert!(e.message.contains("more than"));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let src = "[".repeat(500) + &"]".repeat(500);
        let Err(e) = parse(&src) else { panic!("expected an error") };
        assert!(e.message.contains("nesting"), "{e:?}");
    }

    #[test]
    fn tabs_get_a_hint() {
        let Err(e) = parse("a:\n\t- b\n") else { panic!("expected an error") };
        assert_eq!(e.range.start.line, 2);
        assert!(e.hint.is_some(), "{e:?}");
    }

    #[test]
    fn positions_count_characters_and_offsets_count_bytes() {
        let src = "a: \"é😀\"\nb: [ü, x, \"ß\"]\nc: {k: 1}\n";
        let d = doc(src);
        let loc = d.locate("/b/2").value;
        assert_eq!((loc.start.line, loc.start.col), (2, 11));
        assert_eq!(&src[loc.start.offset..loc.end], "\"ß\"");
        let loc = d.locate("/b/1").value;
        assert_eq!((loc.start.line, loc.start.col, &src[loc.start.offset..loc.end]), (2, 8, "x"));
        let loc = d.locate("/c/k").value;
        assert_eq!((loc.start.line, loc.start.col, &src[loc.start.offset..loc.end]), (3, 8, "1"));
        // The fallback mapping (markers without byte offsets) agrees, asked in any order.
        let index = LineIndex::new(src);
        for (line, col, offset) in
            [(2, 10, 23), (2, 3, 15), (2, 7, 20), (2, 11, 24), (1, 4, 4), (1, 5, 6), (1, 99, 11)]
        {
            assert_eq!(index.pos(line, col).offset, offset, "line {line} col {col}");
        }
    }

    #[test]
    fn pointers_escape_keys_and_number_items() {
        let d = doc("a/b~c:\n  - x\n  - [y, z]\nk: 1\n");
        let mut pointers: Vec<&str> = d.locations.keys().map(String::as_str).collect();
        pointers.sort_unstable();
        assert_eq!(
            pointers,
            ["", "/a~1b~0c", "/a~1b~0c/0", "/a~1b~0c/1", "/a~1b~0c/1/0", "/a~1b~0c/1/1", "/k"]
        );
        assert_eq!(d.locate("/a~1b~0c/1/1").value.start.line, 3);
        assert_eq!(d.locate("/k").key.map(|k| k.start.col), Some(1));
        let mut buffer = [0u8; 20];
        assert_eq!(itoa_usize(0, &mut buffer), "0");
        assert_eq!(itoa_usize(1_000_007, &mut [0u8; 20]), "1000007");
    }

    #[test]
    fn empty_document_is_null() {
        assert_eq!(doc("").value, Value::Null);
        assert_eq!(doc("# only a comment\n").value, Value::Null);
    }
}
