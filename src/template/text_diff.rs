//! `old | text_diff(new, old_name='old', new_name='new')`: a unified diff (3 lines of
//! context) from `old` to `new`, empty when they are equal. Workflows use it to show
//! what drifted (e.g. a cron job's live prompt against the rendered one).

use minijinja::{Environment, Value};

/// Add the filter to `env`.
pub fn register(env: &mut Environment<'_>) {
    env.add_filter("text_diff", text_diff);
}

fn text_diff(old: &Value, new: &Value, old_name: Option<&str>, new_name: Option<&str>) -> String {
    let as_text = |v: &Value| if v.is_none() || v.is_undefined() { String::new() } else { v.to_string() };
    unified(&as_text(old), &as_text(new), old_name.unwrap_or("old"), new_name.unwrap_or("new"))
}

/// The unified diff of two texts; `""` when they are equal.
pub fn unified(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
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
