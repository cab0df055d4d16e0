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

use serde_json::Value;
use serde_saphyr::granit_parser::{Marker, Span};

/// The deepest nesting accepted.
pub(crate) const MAX_DEPTH: usize = 128;
/// The most nodes a document may expand to (after aliases and merges).
pub(crate) const MAX_NODES: usize = 1_000_000;

// The position types live in `diagnostics` (below the loader); re-exported here
// because every YAML node carries them.
pub(crate) use crate::diagnostics::{Pos, Range};

mod build;
mod locations;
mod scalar;
pub(crate) use locations::Locations;

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
    /// Location of every node, found by JSON pointer (`""` is the root).
    pub locations: Locations,
}

impl Document {
    /// The location of the node at `pointer`, or of its nearest ancestor that has one.
    pub fn locate(&self, pointer: &str) -> Location {
        self.locations.locate(pointer)
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

/// Parse one YAML document.
pub fn parse(source: &str) -> Result<Document, YamlError> {
    let index = LineIndex::new(source);
    let (root, mut locations) = build::build(source, &index)?;
    let value = match root {
        Some(value) => value,
        None => {
            let range = Range { start: index.pos(1, 0), end: 0 };
            locations.entries.push(locations::Entry::new(range, locations::Kind::Scalar));
            Value::Null
        }
    };
    Ok(Document { value, locations })
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
        let mut pointers = d.locations.pointers();
        pointers.sort_unstable();
        assert_eq!(
            pointers,
            ["", "/a~1b~0c", "/a~1b~0c/0", "/a~1b~0c/1", "/a~1b~0c/1/0", "/a~1b~0c/1/1", "/k"]
        );
        assert_eq!(d.locate("/a~1b~0c/1/1").value.start.line, 3);
        assert_eq!(d.locate("/k").key.map(|k| k.start.col), Some(1));
    }

    #[test]
    fn merged_lists_aliased_keys_and_nested_aliases_are_located() {
        let d =
            doc("b: &b {x: 1, y: {z: 2}}\nm:\n  <<: [*b, {w: 1, x: 9}]\n  y: 3\n&k key: 1\nn: {*k : *b}\n");
        assert_eq!(d.value["m"], serde_json::json!({"y": 3, "x": 1, "w": 1}));
        // Merged from the alias: defined on line 1, reached through `<<` on line 3.
        let z = d.locate("/m/x");
        assert_eq!(
            (z.value.start.line, z.key.map(|k| k.start.line), z.via.map(|v| v.start.line)),
            (1, Some(1), Some(3))
        );
        assert_eq!(d.locate("/m/y").via, None);
        assert!(!d.locations.contains_key("/m/<<") && d.locations.contains_key("/m/w"));
        // A key written as an alias; its value's inner nodes are reached through the alias.
        assert_eq!(d.locate("/n/key/y/z").via.map(|v| (v.start.line, v.start.col)), Some((6, 10)));
        assert_eq!(d.locate("/n/key/y/z").value.start.line, 1);
        assert_eq!(d.locate("/n/key").key.map(|k| (k.start.line, k.start.col)), Some((5, 4)));
        // Item numbers are canonical; anything else falls back to the parent.
        let d = doc("l: [a, b]\n");
        assert_eq!(d.locate("/l/1").value.start.col, 8);
        assert_eq!(d.locate("/l/01").value.start.col, 4);
        assert_eq!(d.locate("nope").value, Range::default());
    }

    #[test]
    fn keys_that_are_lists_and_aliases_nested_too_deep_are_refused() {
        let Err(e) = parse("? [a, b]\n: 1\n") else { panic!("expected an error") };
        assert!(e.message.contains("plain value"), "{e:?}");
        let Err(e) = parse("m:\n  <<: [1]\n") else { panic!("expected an error") };
        assert!(e.message.contains("merges only maps"), "{e:?}");
        let mut src = String::from("a0: &a0 [[[[[[[[[[x]]]]]]]]]]\n");
        for i in 1..60 {
            src.push_str(&format!("a{i}: &a{i} [[[[[[[[[[*a{}]]]]]]]]]]\n", i - 1));
        }
        let Err(e) = parse(&src) else { panic!("expected an error") };
        assert!(e.message.contains("nesting deeper"), "{e:?}");
    }

    #[test]
    fn empty_document_is_null() {
        assert_eq!(doc("").value, Value::Null);
        assert_eq!(doc("# only a comment\n").value, Value::Null);
    }
}
