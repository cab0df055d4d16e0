//! `--output json`: one JSON object per event, one per line, on stdout.

use std::io::Write as _;
use std::sync::Mutex;

use crate::engine::events::{Event, Sink};

/// Writes events as JSON lines to stdout.
#[derive(Debug, Default)]
pub struct JsonLines {
    lock: Mutex<()>,
}

impl Sink for JsonLines {
    fn event(&self, event: &Event) {
        let Ok(line) = serde_json::to_string(event) else { return };
        let _guard = self.lock.lock();
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    }
}
