//! The files a check read, for `runner validate`'s result cache (see
//! `cmd::validate_cache`): while a frame is open on a thread, every file read through
//! [`crate::fsutil::read_bytes`] on that thread is logged with the SHA-256 of its bytes
//! (or as absent), into every open frame, so a file's frame also holds what the files it
//! references read. A check that depends on something the log cannot see (a template
//! that may include others or asks the environment, rendered perhaps in a child
//! process) marks its frames uncacheable. With no frame open (every command but
//! `validate`) logging costs one thread-local borrow per read.

use std::cell::RefCell;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One file a check read: its path as the checker named it (relative to the working
/// directory, unless given absolute) and the SHA-256 of its bytes in hex (`None`: it did
/// not exist or could not be read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Read {
    pub(crate) path: String,
    pub(crate) digest: Option<String>,
}

/// Everything one check depended on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Reads {
    /// The files read, each once, in the order first read.
    pub(crate) files: Vec<Read>,
    /// The result depends on something not in `files`; never reuse it.
    pub(crate) uncacheable: bool,
}

impl Reads {
    fn add(&mut self, read: &Read) {
        if !self.files.iter().any(|known| known.path == read.path) {
            self.files.push(read.clone());
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

thread_local! {
    static FRAMES: RefCell<Vec<Reads>> = const { RefCell::new(Vec::new()) };
}

/// An open frame of this thread: closed by [`Frame::end`], or dropped (a panic while
/// checking) without leaving its reads behind.
#[derive(Debug)]
pub(crate) struct Frame {
    depth: usize,
    ended: bool,
}

impl Frame {
    /// Open a frame: the reads from now until [`Frame::end`] are logged into it.
    pub(crate) fn begin() -> Frame {
        let depth = FRAMES.with_borrow_mut(|frames| {
            frames.push(Reads::default());
            frames.len()
        });
        Frame { depth, ended: false }
    }

    /// Open a frame only when one is open already (inside a logged check), so code
    /// shared with other commands pays nothing.
    pub(crate) fn nested() -> Option<Frame> {
        active().then(Frame::begin)
    }

    /// Close the frame and return what was read in it.
    pub(crate) fn end(mut self) -> Reads {
        self.ended = true;
        FRAMES.with_borrow_mut(|frames| {
            let mut reads = Reads::default();
            // Frames close innermost first; one left open inside (a panic) goes too.
            while frames.len() >= self.depth {
                match frames.pop() {
                    Some(frame) => reads = frame,
                    None => break,
                }
            }
            reads
        })
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        if !self.ended {
            FRAMES.with_borrow_mut(|frames| frames.truncate(self.depth.saturating_sub(1)));
        }
    }
}

/// Whether a frame is open on this thread.
pub(crate) fn active() -> bool {
    FRAMES.with_borrow(|frames| !frames.is_empty())
}

/// Log a file read at `path`: `Some(bytes)` read, `None` absent or unreadable.
pub(crate) fn record(path: &Path, bytes: Option<&[u8]>) {
    if active() {
        record_digest(path, bytes.map(digest));
    }
}

/// Log a file whose digest is already known (another name of a file read before).
pub(crate) fn record_digest(path: &Path, digest: Option<String>) {
    let read = Read { path: path.to_string_lossy().into_owned(), digest };
    FRAMES.with_borrow_mut(|frames| frames.iter_mut().for_each(|frame| frame.add(&read)));
}

/// Add what another check read (a file checked earlier or by another thread, whose
/// result is reused) to every open frame.
pub(crate) fn extend(reads: &Reads) {
    FRAMES.with_borrow_mut(|frames| {
        for frame in frames.iter_mut() {
            reads.files.iter().for_each(|read| frame.add(read));
            frame.uncacheable |= reads.uncacheable;
        }
    });
}

/// Mark every open frame uncacheable.
pub(crate) fn mark_uncacheable() {
    FRAMES.with_borrow_mut(|frames| frames.iter_mut().for_each(|frame| frame.uncacheable = true));
}

/// SHA-256 of `bytes`, in lowercase hex.
pub(crate) fn digest(bytes: &[u8]) -> String {
    let sum = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut hex = String::with_capacity(2 * sum.as_ref().len());
    for byte in sum.as_ref() {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &str, bytes: Option<&[u8]>) -> Read {
        Read { path: path.into(), digest: bytes.map(digest) }
    }

    #[test]
    fn nothing_is_logged_without_a_frame() {
        record(Path::new("a"), Some(b"x"));
        assert!(!active());
        let frame = Frame::begin();
        assert!(frame.end().files.is_empty());
    }

    #[test]
    fn reads_go_to_every_open_frame_once() {
        let outer = Frame::begin();
        record(Path::new("job.yaml"), Some(b"job"));
        let inner = Frame::nested().expect("nested inside a frame");
        record(Path::new("lanes.yaml"), Some(b"lanes"));
        record(Path::new("lanes.yaml"), Some(b"lanes"));
        record(Path::new("gone.yaml"), None);
        let inner = inner.end();
        assert_eq!(inner.files, [read("lanes.yaml", Some(b"lanes")), read("gone.yaml", None)]);
        let outer = outer.end();
        assert_eq!(
            outer.files,
            [read("job.yaml", Some(b"job")), read("lanes.yaml", Some(b"lanes")), read("gone.yaml", None)]
        );
        assert!(!outer.uncacheable);
        assert!(!active());
        assert!(Frame::nested().is_none());
    }

    #[test]
    fn reused_reads_and_the_uncacheable_mark_reach_the_outer_frames() {
        let outer = Frame::begin();
        let inner = Frame::begin();
        extend(&Reads { files: vec![read("p.md", Some(b"p"))], uncacheable: true });
        assert!(inner.end().uncacheable);
        let outer = outer.end();
        assert_eq!(outer.files, [read("p.md", Some(b"p"))]);
        assert!(outer.uncacheable);
        let other = Frame::begin();
        mark_uncacheable();
        assert!(other.end().uncacheable);
    }

    #[test]
    fn a_dropped_frame_leaves_nothing_open() {
        let outer = Frame::begin();
        {
            let _inner = Frame::begin();
            let _forgotten = Frame::begin();
        }
        record(Path::new("after.yaml"), Some(b""));
        assert_eq!(outer.end().files, [read("after.yaml", Some(b""))]);
        assert!(!active());
    }

    #[test]
    fn digests_are_sha256() {
        assert_eq!(digest(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
