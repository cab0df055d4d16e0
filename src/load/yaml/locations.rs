//! The location of every node of a parsed document, in one flat list in document
//! order (each node followed by its subtree), found by JSON pointer when asked.
//!
//! A JSON pointer string per node in a hash map cost an allocation and a hash per
//! node of every file while almost no pointer is ever asked for (only the ones a
//! diagnostic or a reference names); walking the list by a pointer's segments costs
//! nothing until then. Positions are stored in 32 bits (files are at most 8 MiB).

use super::{Location, Pos, Range};

/// What a node is, to read a pointer segment as an item number or a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Scalar,
    Seq,
    Map,
}

/// A range in 32 bits per number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Packed {
    line: u32,
    col: u32,
    offset: u32,
    end: u32,
}

fn small(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Packed {
    pub(super) fn new(range: Range) -> Self {
        Packed {
            line: small(range.start.line),
            col: small(range.start.col),
            offset: small(range.start.offset),
            end: small(range.end),
        }
    }

    pub(super) fn range(self) -> Range {
        Range {
            start: Pos { line: self.line as usize, col: self.col as usize, offset: self.offset as usize },
            end: self.end as usize,
        }
    }
}

/// One node: where its value is, the key it is stored under (text and place), the
/// alias or merge key it was reached through itself (not inherited), and how many
/// entries its subtree takes (itself included).
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub(super) value: Packed,
    pub(super) key: Option<Packed>,
    pub(super) via: Option<Packed>,
    pub(super) size: u32,
    /// The key's text in [`Locations::keys`] (start, length), for a map's children.
    pub(super) key_text: (u32, u32),
    pub(super) kind: Kind,
}

impl Entry {
    pub(super) fn new(value: Range, kind: Kind) -> Self {
        Entry { value: Packed::new(value), key: None, via: None, size: 1, key_text: (0, 0), kind }
    }
}

/// Locations of every node of a document.
#[derive(Debug, Clone, Default)]
pub struct Locations {
    pub(super) entries: Vec<Entry>,
    /// Every map key's text, one after the other.
    pub(super) keys: String,
}

impl Locations {
    /// The entry at `pointer`, or its nearest ancestor's, with the alias or merge key
    /// through which it was reached (its own or its nearest ancestor's), and whether
    /// the whole pointer was found.
    fn walk(&self, pointer: &str) -> Option<(usize, Option<Packed>, bool)> {
        let root = self.entries.first()?;
        if pointer.is_empty() {
            return Some((0, root.via, true));
        }
        let rest = pointer.strip_prefix('/')?;
        let (mut at, mut via) = (0, root.via);
        for segment in rest.split('/') {
            match self.child(at, segment) {
                Some(child) => {
                    at = child;
                    via = self.entries[child].via.or(via);
                }
                None => return Some((at, via, false)),
            }
        }
        Some((at, via, true))
    }

    /// The child of entry `at` named by one pointer segment.
    fn child(&self, at: usize, segment: &str) -> Option<usize> {
        let parent = self.entries.get(at)?;
        let end = at + parent.size as usize;
        let mut child = at + 1;
        match parent.kind {
            Kind::Scalar => None,
            Kind::Seq => {
                // The canonical decimal form only (`01` and `-` name nothing).
                let valid = !segment.is_empty()
                    && segment.bytes().all(|b| b.is_ascii_digit())
                    && (segment == "0" || !segment.starts_with('0'));
                let mut index: usize = if valid { segment.parse().ok()? } else { return None };
                while child < end {
                    if index == 0 {
                        return Some(child);
                    }
                    index -= 1;
                    child += self.entries[child].size.max(1) as usize;
                }
                None
            }
            Kind::Map => {
                while child < end {
                    let entry = &self.entries[child];
                    let (start, len) = (entry.key_text.0 as usize, entry.key_text.1 as usize);
                    let key = self.keys.get(start..start + len).unwrap_or_default();
                    if escaped_eq(segment, key) {
                        return Some(child);
                    }
                    child += entry.size.max(1) as usize;
                }
                None
            }
        }
    }

    /// The location at `pointer`, or at its nearest ancestor that has one.
    pub(super) fn locate(&self, pointer: &str) -> Location {
        match self.walk(pointer) {
            Some((at, via, _)) => {
                let entry = &self.entries[at];
                Location {
                    value: entry.value.range(),
                    key: entry.key.map(Packed::range),
                    via: via.map(Packed::range),
                }
            }
            None => Location::default(),
        }
    }

    /// Whether a node sits exactly at `pointer` (`""` is the root).
    pub fn contains_key(&self, pointer: &str) -> bool {
        self.walk(pointer).is_some_and(|(_, _, whole)| whole)
    }

    /// Every node's JSON pointer, in document order.
    #[cfg(test)]
    pub(super) fn pointers(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.entries.len());
        // (pointer, end of subtree, kind, next item number) of each open collection.
        let mut open: Vec<(String, usize, Kind, usize)> = Vec::new();
        for (at, entry) in self.entries.iter().enumerate() {
            while open.last().is_some_and(|(_, end, _, _)| *end <= at) {
                open.pop();
            }
            let pointer = match open.last_mut() {
                None => String::new(),
                Some((parent, _, kind, next)) => {
                    let segment = if *kind == Kind::Map {
                        let (start, len) = (entry.key_text.0 as usize, entry.key_text.1 as usize);
                        super::escape_pointer(&self.keys[start..start + len])
                    } else {
                        next.to_string()
                    };
                    *next += 1;
                    format!("{parent}/{segment}")
                }
            };
            out.push(pointer.clone());
            if entry.kind != Kind::Scalar {
                open.push((pointer, at + entry.size as usize, entry.kind, 0));
            }
        }
        out
    }
}

/// Whether a pointer segment names `key` (`~0` is `~`, `~1` is `/`).
fn escaped_eq(segment: &str, key: &str) -> bool {
    if !segment.contains('~') {
        // A key holding `~` or `/` is written with `~`, and a segment never holds `/`.
        return segment == key;
    }
    let mut rest = segment;
    for c in key.chars() {
        let expected = match c {
            '~' => "~0",
            '/' => "~1",
            _ => {
                let mut buffer = [0u8; 4];
                let text: &str = c.encode_utf8(&mut buffer);
                match rest.strip_prefix(text) {
                    Some(after) => {
                        rest = after;
                        continue;
                    }
                    None => return false,
                }
            }
        };
        match rest.strip_prefix(expected) {
            Some(after) => rest = after,
            None => return false,
        }
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_compare_escaped() {
        assert!(escaped_eq("a~1b~0c", "a/b~c"));
        assert!(escaped_eq("plain", "plain"));
        assert!(!escaped_eq("a~1b", "a~1b"));
        assert!(!escaped_eq("a~2", "a~"));
        assert!(!escaped_eq("a~0", "a~0"));
        assert!(escaped_eq("é~0", "é~"));
        assert!(!escaped_eq("a~0x", "a~"));
    }
}
