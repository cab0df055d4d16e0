//! Small filesystem helpers: the one reader every file the runner reads goes through,
//! and atomic writes.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Largest file runner reads (8 MiB): workflows, registries, templates, `--vars`,
/// `--input k=@FILE`, recordings, and standard input given as `@-`.
pub(crate) const MAX_READ_BYTES: u64 = 8 * 1024 * 1024;

/// Why a file could not be read.
#[derive(Debug)]
pub(crate) enum ReadFailure {
    /// Nothing at that path.
    Missing,
    /// Something that is not a regular file: a directory, a FIFO, a device, a socket.
    NotAFile(&'static str),
    /// Larger than the cap.
    TooLarge {
        /// Bytes seen (at least `limit + 1` when the size was not known in advance).
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// Not UTF-8 text; `bytes` holds what was read.
    NotUtf8 {
        /// The bytes read.
        bytes: Vec<u8>,
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// Any other I/O error (permissions, ...).
    Io(std::io::Error),
}

impl std::fmt::Display for ReadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadFailure::Missing => write!(f, "no such file"),
            ReadFailure::NotAFile(what) => write!(f, "expected a regular file, found {what}"),
            ReadFailure::TooLarge { size, limit } => {
                write!(f, "file is {size} bytes or more; runner reads files up to {limit} bytes")
            }
            ReadFailure::NotUtf8 { valid_up_to, .. } => {
                write!(f, "not UTF-8 text (invalid byte at offset {valid_up_to})")
            }
            ReadFailure::Io(e) => write!(f, "{e}"),
        }
    }
}

fn describe_type(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "something that is not a regular file"
    }
}

fn io_failure(e: std::io::Error) -> ReadFailure {
    if e.kind() == std::io::ErrorKind::NotFound { ReadFailure::Missing } else { ReadFailure::Io(e) }
}

/// Read a regular file of at most `limit` bytes. Anything else (a directory, a FIFO,
/// `/dev/zero`) is refused before it is opened, and the file is opened non-blocking and
/// checked again, so a FIFO swapped in never blocks and a device never streams forever.
/// While `runner validate` logs what its checks read, the read is logged (see
/// [`crate::readlog`]).
pub(crate) fn read_bytes(path: &Path, limit: u64) -> Result<Vec<u8>, ReadFailure> {
    let result = read_regular(path, limit);
    crate::readlog::record(path, result.as_ref().ok().map(Vec::as_slice));
    result
}

fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, ReadFailure> {
    let metadata = std::fs::metadata(path).map_err(io_failure)?;
    if !metadata.is_file() {
        return Err(ReadFailure::NotAFile(describe_type(metadata.file_type())));
    }
    if metadata.len() > limit {
        return Err(ReadFailure::TooLarge { size: metadata.len(), limit });
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io_failure)?;
    let opened = file.metadata().map_err(ReadFailure::Io)?;
    if !opened.is_file() {
        return Err(ReadFailure::NotAFile(describe_type(opened.file_type())));
    }
    read_capped(file, limit)
}

/// Read at most `limit` bytes from any reader (standard input); more is an error.
pub(crate) fn read_capped(reader: impl std::io::Read, limit: u64) -> Result<Vec<u8>, ReadFailure> {
    let mut bytes = Vec::new();
    reader.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(ReadFailure::Io)?;
    let size = bytes.len() as u64;
    if size > limit {
        return Err(ReadFailure::TooLarge { size, limit });
    }
    Ok(bytes)
}

/// [`read_bytes`] as UTF-8 text.
pub(crate) fn read_text(path: &Path, limit: u64) -> Result<String, ReadFailure> {
    utf8(read_bytes(path, limit)?)
}

/// Bytes as UTF-8 text, or [`ReadFailure::NotUtf8`].
pub(crate) fn utf8(bytes: Vec<u8>) -> Result<String, ReadFailure> {
    String::from_utf8(bytes).map_err(|e| {
        let valid_up_to = e.utf8_error().valid_up_to();
        ReadFailure::NotUtf8 { bytes: e.into_bytes(), valid_up_to }
    })
}

/// Write `contents` to `path` atomically: a temporary file in the same directory,
/// then a rename, so readers never see half a file.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(contents)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/out.txt");
        write_atomic(&path, b"one").expect("write");
        write_atomic(&path, b"two").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "two");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("dir")).expect("list").collect();
        assert_eq!(leftovers.len(), 1);
    }

    #[test]
    fn refuses_directories_and_devices_without_reading() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(read_text(dir.path(), 10), Err(ReadFailure::NotAFile("a directory"))));
        assert!(matches!(
            read_text(Path::new("/dev/zero"), MAX_READ_BYTES),
            Err(ReadFailure::NotAFile("a character device"))
        ));
        assert!(matches!(read_text(&dir.path().join("nope"), 10), Err(ReadFailure::Missing)));
    }

    #[test]
    fn never_blocks_on_a_fifo() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
        assert!(made.success());
        // No writer: an ordinary open would block forever here.
        let result = read_text(&fifo, MAX_READ_BYTES);
        assert!(matches!(result, Err(ReadFailure::NotAFile("a FIFO (named pipe)"))), "{result:?}");
    }

    #[test]
    fn caps_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big");
        std::fs::write(&path, b"12345").expect("write");
        assert!(matches!(read_text(&path, 4), Err(ReadFailure::TooLarge { size: 5, limit: 4 })));
        assert_eq!(read_text(&path, 5).expect("read"), "12345");
        assert!(matches!(read_capped(&b"123456789"[..], 4), Err(ReadFailure::TooLarge { limit: 4, .. })));
    }

    #[test]
    fn reports_invalid_utf8_with_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bin");
        std::fs::write(&path, b"ab\xffcd").expect("write");
        assert!(matches!(read_text(&path, 10), Err(ReadFailure::NotUtf8 { valid_up_to: 2, .. })));
    }
}
