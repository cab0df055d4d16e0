//! Durations written with units (`30s`, `5m`, `1h30m`, `250ms`).

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The pattern every duration must match; also used by the schema.
pub(crate) const DURATION_PATTERN: &str = "^([0-9]+(ms|s|m|h|d))+$";

/// The longest duration runner accepts anywhere (7 days).
pub(crate) const MAX_DURATION_MS: u64 = 7 * 24 * 3600 * 1000;

/// A span of time written as a number with a unit: `250ms`, `30s`, `5m`, `2h`, `1d`,
/// or a sum of them such as `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Duration(pub std::time::Duration);

impl Duration {
    /// The duration as a `std::time::Duration`.
    pub(crate) fn get(self) -> std::time::Duration {
        self.0
    }
}

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DurationError {
    /// The text is not a sequence of `<number><unit>` parts.
    #[error("invalid duration `{0}`; expected a number with a unit, like `30s`, `5m`, `1h30m` or `250ms`")]
    Syntax(String),
    /// The value is zero.
    #[error("duration `{0}` is zero; expected a positive duration")]
    Zero(String),
    /// The value is longer than [`MAX_DURATION_MS`].
    #[error("duration `{0}` is longer than the maximum of 7 days")]
    TooLong(String),
}

/// Parse a duration such as `1h30m`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let syntax = || DurationError::Syntax(text.to_string());
    if text.is_empty() {
        return Err(syntax());
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut total_ms: u64 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(syntax());
        }
        let number: u64 = text[start..i].parse().map_err(|_| DurationError::TooLong(text.to_string()))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let factor: u64 = match &text[unit_start..i] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(syntax()),
        };
        let part = number.checked_mul(factor).ok_or_else(|| DurationError::TooLong(text.to_string()))?;
        total_ms = total_ms.checked_add(part).ok_or_else(|| DurationError::TooLong(text.to_string()))?;
    }
    if total_ms == 0 {
        return Err(DurationError::Zero(text.to_string()));
    }
    if total_ms > MAX_DURATION_MS {
        return Err(DurationError::TooLong(text.to_string()));
    }
    Ok(Duration(std::time::Duration::from_millis(total_ms)))
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "format": "duration",
            "description": "A duration: a number with a unit (`ms`, `s`, `m`, `h`, `d`), or several summed, e.g. `30s`, `5m`, `1h30m`, `250ms`.",
            "examples": ["30s", "5m", "1h30m"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse_duration("250ms").map(|d| d.0.as_millis()), Ok(250));
        assert_eq!(parse_duration("30s").map(|d| d.0.as_secs()), Ok(30));
        assert_eq!(parse_duration("1h30m").map(|d| d.0.as_secs()), Ok(5400));
        assert_eq!(parse_duration("1d").map(|d| d.0.as_secs()), Ok(86400));
    }

    #[test]
    fn rejects_bad_text() {
        for bad in ["", "10", "s", "10 s", "10sec", "1.5s", "-1s", "10S"] {
            assert!(matches!(parse_duration(bad), Err(DurationError::Syntax(_))), "{bad}");
        }
        assert!(matches!(parse_duration("0s"), Err(DurationError::Zero(_))));
        assert!(matches!(parse_duration("8d"), Err(DurationError::TooLong(_))));
        assert!(matches!(parse_duration("99999999999999999999s"), Err(DurationError::TooLong(_))));
    }

    #[test]
    fn displays_canonically() {
        let d = parse_duration("90m").map(|d| d.to_string());
        assert_eq!(d.as_deref(), Ok("1h30m"));
    }

    #[test]
    fn pattern_agrees_with_parser() {
        let re = regex::Regex::new(DURATION_PATTERN).expect("pattern compiles");
        for ok in ["1s", "1h30m", "250ms"] {
            assert!(re.is_match(ok));
        }
        for bad in ["10", "1.5s", "10 s"] {
            assert!(!re.is_match(bad));
        }
    }
}
