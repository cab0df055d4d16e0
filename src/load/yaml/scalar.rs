//! Plain and tagged scalars resolved by the YAML 1.2 core schema: `no`, `on` and `yes`
//! stay strings; `~`/`null`, `true`/`false`, integers (decimal, `0x`, `0o`) and floats
//! (incl. `.inf`, `.nan`) are typed.

use serde_json::{Number, Value};
use serde_saphyr::granit_parser::ScalarStyle;

/// Resolve a scalar by the YAML 1.2 core schema.
pub(super) fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> Result<Value, String> {
    match tag {
        Some("str") => return Ok(Value::String(text.to_string())),
        Some("null") => return Ok(Value::Null),
        Some("bool") => {
            return plain_bool(text).map(Value::Bool).ok_or_else(|| format!("`{text}` is not a boolean"));
        }
        Some("int") => return plain_int(text).ok_or_else(|| format!("`{text}` is not an integer")),
        Some("float") => {
            return plain_float(text)
                .or_else(|| plain_int(text))
                .ok_or_else(|| format!("`{text}` is not a number"));
        }
        Some("seq") | Some("map") | None => {}
        Some(other) => {
            return Err(format!("unsupported YAML tag `{other}`; runner files use plain YAML values"));
        }
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.to_string()));
    }
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Ok(Value::Null);
    }
    if let Some(b) = plain_bool(text) {
        return Ok(Value::Bool(b));
    }
    if let Some(n) = plain_int(text) {
        return Ok(n);
    }
    if let Some(n) = plain_float(text) {
        return Ok(n);
    }
    Ok(Value::String(text.to_string()))
}

fn plain_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn plain_int(text: &str) -> Option<Value> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let parsed: Option<i128> = if let Some(oct) = text.strip_prefix("0o") {
        if oct.is_empty() || !oct.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return None;
        }
        i128::from_str_radix(oct, 8).ok()
    } else if let Some(hex) = text.strip_prefix("0x") {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        i128::from_str_radix(hex, 16).ok()
    } else {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<i128>().ok().map(|n| if negative { -n } else { n })
    };
    match parsed {
        Some(n) => {
            if let Ok(small) = i64::try_from(n) {
                Some(Value::Number(small.into()))
            } else if let Ok(big) = u64::try_from(n) {
                Some(Value::Number(big.into()))
            } else {
                Number::from_f64(n as f64).map(Value::Number)
            }
        }
        // Too many digits for i128: a number all the same, as a float.
        None => text.parse::<f64>().ok().and_then(Number::from_f64).map(Value::Number),
    }
}

fn plain_float(text: &str) -> Option<Value> {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    if matches!(body, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN") {
        // JSON has no infinities or NaN: keep the text.
        return Some(Value::String(text.to_string()));
    }
    let bytes = body.as_bytes();
    let mut i = 0;
    let mut digits = 0;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        i += 1;
        if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if exp_start == i {
            return None;
        }
    }
    if i != bytes.len() {
        return None;
    }
    text.parse::<f64>().ok().and_then(Number::from_f64).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(text: &str) -> Value {
        resolve_scalar(text, ScalarStyle::Plain, None).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn plain_scalars_follow_the_core_schema() {
        for word in ["no", "yes", "on", "off", "y", "n"] {
            assert_eq!(plain(word), Value::String(word.into()), "{word}");
        }
        assert_eq!(plain("true"), Value::Bool(true));
        assert_eq!(plain("~"), Value::Null);
        assert_eq!(plain("0x1f"), serde_json::json!(31));
        assert_eq!(plain("-12"), serde_json::json!(-12));
        assert!(plain("1.5").is_f64());
        // Quoted text is never typed.
        assert_eq!(
            resolve_scalar("true", ScalarStyle::DoubleQuoted, None).ok(),
            Some(Value::String("true".into()))
        );
    }
}
