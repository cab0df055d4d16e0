//! Secret masking: every string that leaves the engine passes through here.

use serde_json::Value;

/// What a masked secret is replaced with.
pub(crate) const MASK: &str = "***";

/// Secrets shorter than this are masked only as whole words.
pub(crate) const SHORT_SECRET: usize = 6;

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

/// Every form of `secret` the runner can produce, the raw value first:
/// - percent-encoded as a URL path segment (`%20` style, the encoding of
///   `render_url`) and as a form-encoded query value (`+` style, the encoding of
///   query parameters);
/// - JSON-escaped (a secret with `"`, `\` or a control character inside JSON text such
///   as `emit json` or `--output json`), once and twice (JSON quoted inside JSON);
/// - base64, at each of the three byte alignments, minus the characters shared with
///   its neighbours: this catches `user:secret` in a Basic `Authorization` value and a
///   secret inside any base64 text. Only fragments of at least 8 characters are kept,
///   so a short secret cannot turn unrelated base64 into `***`.
pub(crate) fn forms(secret: &str) -> Vec<String> {
    if secret.is_empty() {
        return Vec::new();
    }
    let mut out = vec![secret.to_string()];
    let mut push = |form: String| {
        if !form.is_empty() && !out.contains(&form) {
            out.push(form);
        }
    };
    push(crate::expr::values::encode_component(secret));
    push(form_encode(secret));
    let escaped = json_escape(secret);
    push(json_escape(&escaped));
    push(escaped);
    for offset in 0..3 {
        let fragment = base64_fragment(secret.as_bytes(), offset);
        if fragment.len() >= BASE64_MIN_FRAGMENT {
            push(fragment);
        }
    }
    out
}

/// Shortest base64 fragment of a secret that is masked.
const BASE64_MIN_FRAGMENT: usize = 8;

/// `application/x-www-form-urlencoded` of one value, as URL query pairs are written:
/// ASCII letters, digits and `*-._` kept, space as `+`, every other byte as `%XX`.
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(char::from(byte)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The text between the quotes of a JSON string holding `text`.
fn json_escape(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap_or_default();
    quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or_default().to_string()
}

/// The base64 characters that depend only on `bytes` when they start `offset` bytes
/// (0–2) into a 3-byte group: what any base64 text containing them must contain.
fn base64_fragment(bytes: &[u8], offset: usize) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut padded = vec![0u8; offset];
    padded.extend_from_slice(bytes);
    let mut chars = Vec::with_capacity(padded.len() / 3 * 4 + 4);
    for group in padded.chunks(3) {
        let mut word = [0u8; 3];
        word[..group.len()].copy_from_slice(group);
        let bits = u32::from(word[0]) << 16 | u32::from(word[1]) << 8 | u32::from(word[2]);
        for i in 0..4 {
            chars.push(ALPHABET[((bits >> (18 - 6 * i)) & 63) as usize]);
        }
    }
    // A character covers bits [6j, 6j + 6); keep those entirely inside the secret.
    let first = (8 * offset).div_ceil(6);
    let end = 8 * padded.len() / 6;
    chars.get(first..end).map(|c| String::from_utf8_lossy(c).into_owned()).unwrap_or_default()
}

/// Header names whose values are always redacted, whatever they hold.
pub(crate) const SENSITIVE_HEADERS: &[&str] =
    &["authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token"];

/// Replaces every known secret value with `***`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Masker {
    secrets: Vec<String>,
}

impl Masker {
    /// Remember a secret value (empty values are ignored), together with every form
    /// the runner itself may write it in: see [`forms`].
    pub(crate) fn add(&mut self, secret: &str) {
        for form in forms(secret) {
            if !self.secrets.contains(&form) {
                self.secrets.push(form);
            }
        }
        // Longest first, so a secret containing another is masked whole.
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// Whether there is anything to mask.
    pub(crate) fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Mask a string. Secrets of at least [`SHORT_SECRET`] characters are masked
    /// wherever they appear; shorter ones only where they stand as a whole word, so a
    /// one-letter test token does not turn every `t` into `***`.
    pub(crate) fn text(&self, text: &str) -> String {
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

    /// Whether `text` holds a known secret (in any form [`Masker::text`] masks).
    pub(crate) fn reveals(&self, text: &str) -> bool {
        !self.secrets.is_empty() && self.text(text) != text
    }

    /// Mask every string (and key) inside a JSON value.
    pub(crate) fn value(&self, value: &Value) -> Value {
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
pub(crate) fn is_sensitive_header(name: &str) -> bool {
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
    fn percent_encoded_secrets_are_masked_in_both_styles() {
        let mut masker = Masker::default();
        let secret = "ab+c/d=e f&g";
        masker.add(secret);
        let path = crate::expr::values::encode_component(secret);
        assert_eq!(path, "ab%2Bc%2Fd%3De%20f%26g");
        assert_eq!(masker.text(&format!("GET /x/{path}/y")), "GET /x/***/y");
        // The query encoding of the `url` crate (what `query:` values go through).
        let mut url = reqwest::Url::parse("http://h/p").unwrap();
        url.query_pairs_mut().append_pair("access_token", secret);
        assert_eq!(url.query(), Some("access_token=ab%2Bc%2Fd%3De+f%26g"));
        assert_eq!(masker.text(url.as_str()), "http://h/p?access_token=***");
    }

    #[test]
    fn json_escaped_secrets_are_masked() {
        let mut masker = Masker::default();
        let secret = "q\"uo\\te\u{1}tab\t";
        masker.add(secret);
        let once = serde_json::to_string(&serde_json::json!({"token": secret})).unwrap();
        assert_eq!(masker.text(&once), r#"{"token":"***"}"#);
        let twice = serde_json::to_string(&serde_json::json!({"line": once})).unwrap();
        assert_eq!(masker.text(&twice), r#"{"line":"{\"token\":\"***\"}"}"#);
    }

    #[test]
    fn base64_of_basic_auth_credentials_is_masked() {
        let mut masker = Masker::default();
        masker.add("hunter2-long-password");
        for user in ["", "a", "ab", "abc", "agent-7"] {
            let encoded = base64(format!("{user}:hunter2-long-password").as_bytes());
            let header = format!("Basic {encoded}");
            let masked = masker.text(&header);
            assert!(masked.contains(MASK), "{user}: {header} -> {masked}");
            // What is left cannot spell the password: at most 2 characters at each end.
            let rest = masked.trim_start_matches("Basic ").replace(MASK, " ");
            assert!(rest.split(' ').all(|part| part.len() <= 4 + user.len() * 4 / 3 + 2), "{masked}");
        }
        // Short secrets do not mask base64 at all.
        let mut short = Masker::default();
        short.add("abc");
        assert_eq!(short.text("YWJj"), "YWJj");
    }

    /// Standard padded base64, to check the fragments against.
    fn base64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for group in bytes.chunks(3) {
            let mut word = [0u8; 3];
            word[..group.len()].copy_from_slice(group);
            let bits = u32::from(word[0]) << 16 | u32::from(word[1]) << 8 | u32::from(word[2]);
            for i in 0..=group.len() {
                out.push(char::from(ALPHABET[((bits >> (18 - 6 * i)) & 63) as usize]));
            }
            out.push_str(&"=".repeat(3 - group.len()));
        }
        out
    }

    #[test]
    fn sensitive_headers_by_name() {
        assert!(is_sensitive_header("Authorization"));
        assert!(is_sensitive_header("X-Dispatch-Token"));
        assert!(!is_sensitive_header("X-Agent-Name"));
    }
}
