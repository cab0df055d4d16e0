//! `--output json`: one JSON object per event, one per line, on stdout.

use std::io::Write as _;
use std::sync::Mutex;

use crate::engine::events::{Event, Sink};

/// Writes events as JSON lines to stdout.
#[derive(Debug, Default)]
pub(crate) struct JsonLines {
    lock: Mutex<()>,
}

impl Sink for JsonLines {
    fn event(&self, event: &Event) {
        let Ok(line) = line(event, std::time::SystemTime::now()) else { return };
        let _guard = self.lock.lock();
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    }
}

/// One event as a JSON line, with `"time"` (RFC 3339, UTC, milliseconds) right after
/// `"event"`, so a log of a long run says when each step started and ended.
pub(crate) fn line(event: &Event, now: std::time::SystemTime) -> Result<String, serde_json::Error> {
    let value = serde_json::to_value(event)?;
    let serde_json::Value::Object(fields) = value else { return serde_json::to_string(&value) };
    let mut ordered = serde_json::Map::new();
    for (key, field) in fields {
        let is_event = key == "event";
        ordered.insert(key, field);
        if is_event {
            ordered.insert("time".into(), serde_json::Value::String(super::timestamp(now)));
        }
    }
    serde_json::to_string(&ordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_has_a_time() {
        let event = Event::Lock { key: "k".into(), outcome: "acquired".into() };
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_764_547_200_123);
        let text = line(&event, at).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"event":"lock","time":"2025-12-01T00:00:00.123Z","key":"k","outcome":"acquired"}"#
        );
    }
}
