//! Comparing what a run did with what a case expects.

use serde_json::Value as Json;

/// Where `actual` does not contain `expected`: maps may have more keys, lists must
/// have the same length, numbers compare by value, and an expected `"***"` (a masked
/// secret in a recording) matches any text. Each difference is one line.
pub(crate) fn subset_errors(expected: &Json, actual: &Json, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    walk(expected, actual, path, &mut out);
    out
}

fn walk(expected: &Json, actual: &Json, path: &str, out: &mut Vec<String>) {
    let here = if path.is_empty() { "(root)".to_string() } else { path.to_string() };
    match (expected, actual) {
        (Json::Object(want), Json::Object(have)) => {
            for (key, value) in want {
                let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match have.get(key) {
                    Some(found) => walk(value, found, &child, out),
                    None => out.push(format!("{child}: expected {}, but it is missing", show(value))),
                }
            }
        }
        (Json::Array(want), Json::Array(have)) => {
            if want.len() != have.len() {
                out.push(format!(
                    "{here}: expected {} items, got {}: {}",
                    want.len(),
                    have.len(),
                    show(actual)
                ));
                return;
            }
            for (index, (w, h)) in want.iter().zip(have).enumerate() {
                walk(w, h, &format!("{path}[{index}]"), out);
            }
        }
        (Json::Number(a), Json::Number(b)) if a.as_f64() == b.as_f64() => {}
        (Json::String(mask), Json::String(_)) if mask == crate::engine::mask::MASK => {}
        (want, have) if want == have => {}
        (want, have) => out.push(format!("{here}: expected {}, got {}", show(want), show(have))),
    }
}

fn show(value: &Json) -> String {
    let text = value.to_string();
    if text.chars().count() > 200 {
        format!("{}…", text.chars().take(199).collect::<String>())
    } else {
        text
    }
}

/// A unified diff of two line lists, or `None` when equal.
pub(crate) fn line_diff(expected: &[String], actual: &[String]) -> Option<String> {
    if expected == actual {
        return None;
    }
    let want = expected.join("\n") + "\n";
    let have = actual.join("\n") + "\n";
    let diff = similar::TextDiff::from_lines(&want, &have);
    let mut out = String::new();
    for change in diff.iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => "- ",
            similar::ChangeTag::Insert => "+ ",
            similar::ChangeTag::Equal => "  ",
        };
        out.push_str(sign);
        out.push_str(change.value());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subsets() {
        assert!(subset_errors(&json!({"a": 1}), &json!({"a": 1.0, "b": 2}), "").is_empty());
        assert_eq!(
            subset_errors(&json!({"a": {"b": "x"}}), &json!({"a": {"b": "y"}}), ""),
            vec!["a.b: expected \"x\", got \"y\"".to_string()]
        );
        assert_eq!(
            subset_errors(&json!({"z": 1}), &json!({}), "outputs"),
            vec!["outputs.z: expected 1, but it is missing".to_string()]
        );
        assert_eq!(subset_errors(&json!([1]), &json!([1, 2]), "xs").len(), 1);
        assert!(subset_errors(&json!({"t": "***"}), &json!({"t": "anything"}), "").is_empty());
    }

    #[test]
    fn diffs_mark_lines() {
        let want = vec!["GET /a".to_string(), "POST /b".to_string()];
        let have = vec!["GET /a".to_string(), "POST /c".to_string()];
        assert_eq!(line_diff(&want, &have).as_deref(), Some("  GET /a\n- POST /b\n+ POST /c\n"));
        assert_eq!(line_diff(&want, &want), None);
    }
}
