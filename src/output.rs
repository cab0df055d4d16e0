//! Where runner's own output goes: stdout and stderr, each write flushed, a closed
//! pipe ignored (`runner ... | head` ends quietly with the command's usual code).

use std::io::Write;

/// Writes to stdout and stderr, ignoring a closed pipe (`runner ... | head`).
#[derive(Debug, Default)]
pub(crate) struct Out;

impl Out {
    /// Print to stdout.
    pub(crate) fn out(&mut self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }

    /// Print to stderr.
    pub(crate) fn err(&mut self, text: &str) {
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(text.as_bytes());
        let _ = stderr.flush();
    }
}
