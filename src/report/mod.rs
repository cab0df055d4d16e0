//! Reporters: they receive engine events and render them: a human progress view on
//! stderr (the workflow's own `emit` output on stdout), JSON lines, and the run report.

pub(crate) mod human;
pub(crate) mod json;
pub(crate) mod overlap;
pub(crate) mod run_report;

/// An RFC 3339 UTC timestamp (`2026-11-22T00:15:04.123Z`) for a system time.
pub fn timestamp(time: std::time::SystemTime) -> String {
    let at = jiff::Timestamp::try_from(time).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_millis(1_795_306_504_123)),
            "2026-11-22T00:15:04.123Z"
        );
        assert_eq!(timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00.000Z");
    }
}
