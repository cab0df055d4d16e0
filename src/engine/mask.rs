//! Secret masking: every string that leaves the engine passes through here.

use serde_json::Value;

/// What a masked secret is replaced with.
pub const MASK: &str = "***";

/// Header names whose values are always redacted, whatever they hold.
pub const SENSITIVE_HEADERS: &[&str] =
    &["authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token"];

/// Replaces every known secret value with `***`.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    secrets: Vec<String>,
}

impl Masker {
    /// Remember a secret value (empty values are ignored).
    pub fn add(&mut self, secret: &str) {
        if !secret.is_empty() && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_string());
            // Longest first, so a secret containing another is masked whole.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// Whether there is anything to mask.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Mask a string.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }

    /// Mask every string (and key) inside a JSON value.
    pub fn value(&self, value: &Value) -> Value {
        if self.secrets.is_empty() {
            return value.clone();
        }
        match value {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.value(v)).collect()),
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (self.text(k), self.value(v))).collect())
            }
            other => other.clone(),
        }
    }
}

/// Whether a header's value must never be shown.
pub fn is_sensitive_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SENSITIVE_HEADERS.contains(&lower.as_str()) || lower.contains("token") || lower.contains("secret")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_strings_keys_and_nested_values() {
        let mut masker = Masker::default();
        masker.add("s3cret");
        masker.add("s3cret-long");
        masker.add("");
        assert_eq!(masker.text("a s3cret-long b s3cret"), "a *** b ***");
        let value = serde_json::json!({"k": ["x s3cret"], "s3cret": 1});
        assert_eq!(masker.value(&value), serde_json::json!({"k": ["x ***"], "***": 1}));
    }

    #[test]
    fn sensitive_headers_by_name() {
        assert!(is_sensitive_header("Authorization"));
        assert!(is_sensitive_header("X-Dispatch-Token"));
        assert!(!is_sensitive_header("X-Agent-Name"));
    }
}
