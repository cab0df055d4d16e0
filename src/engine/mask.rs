//! Secret masking: every string that leaves the engine passes through here.

use serde_json::Value;

/// What a masked secret is replaced with.
pub const MASK: &str = "***";

/// Secrets shorter than this are masked only as whole words.
pub const SHORT_SECRET: usize = 6;

/// Replace `secret` where it is not part of a longer word.
fn mask_words(text: &str, secret: &str) -> String {
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut before: Option<char> = None;
    while let Some(found) = rest.find(secret) {
        let head = &rest[..found];
        let prev = head.chars().next_back().or(before);
        let next = rest[found + secret.len()..].chars().next();
        out.push_str(head);
        if is_word(prev) || is_word(next) {
            out.push_str(secret);
        } else {
            out.push_str(MASK);
        }
        before = secret.chars().next_back();
        rest = &rest[found + secret.len()..];
    }
    out.push_str(rest);
    out
}

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

    /// Mask a string. Secrets of at least [`SHORT_SECRET`] characters are masked
    /// wherever they appear; shorter ones only where they stand as a whole word, so a
    /// one-letter test token does not turn every `t` into `***`.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if !out.contains(secret.as_str()) {
                continue;
            }
            out = if secret.chars().count() >= SHORT_SECRET {
                out.replace(secret.as_str(), MASK)
            } else {
                mask_words(&out, secret)
            };
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
    fn short_secrets_are_masked_as_words_only() {
        let mut masker = Masker::default();
        masker.add("t");
        assert_eq!(masker.text("conflict t (t) at"), "conflict *** (***) at");
        assert_eq!(masker.value(&serde_json::json!("t")), serde_json::json!("***"));
    }

    #[test]
    fn sensitive_headers_by_name() {
        assert!(is_sensitive_header("Authorization"));
        assert!(is_sensitive_header("X-Dispatch-Token"));
        assert!(!is_sensitive_header("X-Agent-Name"));
    }
}
