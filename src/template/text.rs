//! Text helpers for workflows that compare or mine free text:
//!
//! | name | kind | what it does |
//! |---|---|---|
//! | `text_diff(new, old_name='old', new_name='new')` | filter | a unified diff (3 lines of context) from the value to `new`; empty when equal (e.g. a cron job's live prompt against the rendered one) |
//! | `find_all(pattern)` | filter | every match of a regex in a text (its first group when it has one), in order, without repeats |

use minijinja::{Environment, Error, ErrorKind, Value};

/// Add the filters to `env`.
pub(crate) fn register(env: &mut Environment<'_>) {
    env.add_filter("text_diff", text_diff);
    env.add_filter("find_all", find_all);
}

fn find_all(text: &Value, pattern: &str) -> Result<Vec<String>, Error> {
    let re = regex::Regex::new(pattern)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("find_all: bad pattern: {e}")))?;
    let Some(text) = text.as_str() else { return Ok(Vec::new()) };
    let mut out: Vec<String> = Vec::new();
    for caps in re.captures_iter(text) {
        if let Some(m) = caps.get(1).or_else(|| caps.get(0)) {
            let found = m.as_str().to_string();
            if !out.contains(&found) {
                out.push(found);
            }
        }
    }
    Ok(out)
}

fn text_diff(old: &Value, new: &Value, old_name: Option<&str>, new_name: Option<&str>) -> String {
    let as_text = |v: &Value| if v.is_none() || v.is_undefined() { String::new() } else { v.to_string() };
    unified(&as_text(old), &as_text(new), old_name.unwrap_or("old"), new_name.unwrap_or("new"))
}

/// The unified diff of two texts; `""` when they are equal.
pub(crate) fn unified(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    if old == new {
        return String::new();
    }
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified("a\nb\n", "a\nb\n", "x", "y"), "");
    }

    #[test]
    fn a_changed_line_is_shown_with_context() {
        let diff = unified("one\ntwo\nthree\n", "one\n2\nthree\n", "cron job", "rendered");
        assert_eq!(diff, "--- cron job\n+++ rendered\n@@ -1,3 +1,3 @@\n one\n-two\n+2\n three\n");
    }

    #[test]
    fn find_all_returns_groups_in_order_without_repeats() {
        let mut env = Environment::new();
        register(&mut env);
        let out = env.render_str(
            "{{ 'see `a.rs` and `b.toml`, again `a.rs`' | find_all('`([^`]+)`') | join(',') }}|{{ 7 | find_all('x') }}",
            (),
        );
        assert_eq!(out.ok().as_deref(), Some("a.rs,b.toml|[]"));
        assert!(env.render_str("{{ 'x' | find_all('(') }}", ()).is_err());
    }

    #[test]
    fn the_filter_takes_names_and_tolerates_none() {
        let mut env = Environment::new();
        register(&mut env);
        let out = env.render_str("{{ none | text_diff('a') }}", ());
        assert_eq!(
            out.ok().as_deref(),
            Some("--- old\n+++ new\n@@ -0,0 +1 @@\n+a\n\\ No newline at end of file\n")
        );
    }
}
