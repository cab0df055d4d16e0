//! The minijinja environment every template and expression runs in, and the
//! analysis `runner validate` uses to check them before anything runs.

pub mod collections;
pub mod filters;

use std::collections::BTreeSet;

use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};

/// Globals (functions) our environment provides; not variables a file must define.
pub const GLOBAL_FUNCTIONS: &[&str] =
    &["range", "dict", "namespace", "debug", "get_lane", "now_utc", "select_level", "which"];

/// A template environment: strict undefined (a typo is an error, never an empty
/// string), no auto-escaping, trailing newlines kept, and `{##`/`##}` as comment
/// delimiters so shell snippets like `${#arr[@]}` pass through untouched.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    if let Ok(syntax) =
        SyntaxConfig::builder().comment_delimiters("{##", "##}").keep_trailing_newline(true).build()
    {
        env.set_syntax(syntax);
    }
    // Bound the work one template may do, so no file can hang a run.
    env.set_fuel(Some(50_000_000));
    filters::register(&mut env);
    collections::register(&mut env);
    env.set_formatter(|out, state, value| match display_override(value) {
        Some(text) => out.write_str(text).map_err(minijinja::Error::from),
        None => minijinja::escape_formatter(out, state, value),
    });
    env
}

/// How values print in text: booleans as `true`/`false` (as in YAML and JSON, not
/// Python's `True`), and `none` as nothing.
pub fn display_override(value: &minijinja::Value) -> Option<&'static str> {
    if value.is_none() {
        return Some("");
    }
    match value.kind() {
        minijinja::value::ValueKind::Bool => Some(if value.is_true() { "true" } else { "false" }),
        _ => None,
    }
}

/// If `text` is exactly one `{{ expr }}` (surrounding whitespace allowed), the
/// expression inside; such a template yields the expression's typed value.
pub fn single_expression(text: &str) -> Option<&str> {
    let trimmed = text.trim();
    let inner = trimmed.strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    // Braces must balance outside string literals, so `{{ {'a': {'b': 1}} }}` (nested
    // map literals) is one expression while `{{ x }} and {{ y }}` is not.
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut previous = ' ';
    for c in inner.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => quote = Some(c),
                '%' if previous == '{' => return None,
                '}' if previous == '%' => return None,
                '{' => depth += 1,
                '}' => depth = depth.checked_sub(1)?,
                _ => {}
            },
        }
        previous = c;
    }
    (depth == 0 && quote.is_none()).then(|| inner.trim())
}

/// Whether `text` contains template syntax at all.
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{##")
}

/// Compile a template string and return the variables it reads from outside
/// (dotted paths such as `steps.probe.output`), without globals.
pub fn template_variables(env: &Environment<'_>, text: &str) -> Result<BTreeSet<String>, minijinja::Error> {
    let template = env.template_from_str(text)?;
    Ok(strip_globals(template.undeclared_variables(true)))
}

/// Compile a bare expression and return the variables it reads.
pub fn expression_variables(env: &Environment<'_>, text: &str) -> Result<BTreeSet<String>, minijinja::Error> {
    let expression = env.compile_expression(text)?;
    Ok(strip_globals(expression.undeclared_variables(true)))
}

fn strip_globals(names: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    names
        .into_iter()
        .filter(|name| {
            let root = name.split('.').next().unwrap_or(name);
            !GLOBAL_FUNCTIONS.contains(&root)
        })
        .collect()
}

/// The byte offset of the first use of `name` as a whole word inside a `{{ }}` or
/// `{% %}` tag of `text`.
pub fn find_in_tags(text: &str, name: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut search_from = 0;
    while let Some(found) = text.get(search_from..)?.find(name) {
        let offset = search_from + found;
        let before_ok = !text[..offset].chars().next_back().is_some_and(|c| is_ident(c) || c == '.');
        let after_ok = !text[offset + name.len()..].chars().next().is_some_and(is_ident);
        let head = &text[..offset];
        let open = head.rfind("{{").max(head.rfind("{%"));
        let close = head.rfind("}}").max(head.rfind("%}"));
        if before_ok && after_ok && open.is_some() && open > close {
            return Some(offset);
        }
        search_from = offset + name.len();
    }
    None
}

/// Describe a minijinja error in one line, with the template line when known.
pub fn describe_error(error: &minijinja::Error) -> String {
    let mut text = match error.detail() {
        Some(detail) => format!("{}: {detail}", kind_text(error.kind())),
        None => kind_text(error.kind()).to_string(),
    };
    if let Some(line) = error.line().filter(|line| *line > 1) {
        text.push_str(&format!(" (template line {line})"));
    }
    text
}

fn kind_text(kind: minijinja::ErrorKind) -> &'static str {
    use minijinja::ErrorKind as K;
    match kind {
        K::SyntaxError => "template syntax error",
        K::UndefinedError => "undefined value",
        K::UnknownFilter => "unknown filter",
        K::UnknownTest => "unknown test",
        K::UnknownFunction => "unknown function",
        K::UnknownMethod => "unknown method",
        K::TemplateNotFound => "template not found",
        K::InvalidOperation => "invalid operation",
        K::BadInclude => "include failed",
        _ => "template error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_expression_detection() {
        assert_eq!(single_expression("{{ steps.a.output }}"), Some("steps.a.output"));
        assert_eq!(single_expression("  {{- x -}} "), Some("x"));
        assert_eq!(single_expression("a {{ x }}"), None);
        assert_eq!(single_expression("{{ x }}{{ y }}"), None);
        assert_eq!(single_expression("{{ x }} and {{ y }}"), None);
        assert_eq!(single_expression("{{ {'a': {'b': 1}} }}"), Some("{'a': {'b': 1}}"));
        assert_eq!(single_expression("{{ '}}' ~ x }}"), Some("'}}' ~ x"));
        assert_eq!(single_expression("{{ x }}{% if y %}{{ z }}{% endif %}"), None);
        assert_eq!(single_expression("{{ {'a': 1} }}"), Some("{'a': 1}"));
    }

    #[test]
    fn shell_snippets_survive() {
        let env = environment();
        let out = env.render_str("n=${#arr[@]} {pr} {{ x }}\n", minijinja::context! { x => 1 });
        assert_eq!(out.ok().as_deref(), Some("n=${#arr[@]} {pr} 1\n"));
    }

    #[test]
    fn names_are_found_in_tags_only() {
        assert_eq!(find_in_tags("colour {{ colour }}", "colour"), Some(10));
        assert_eq!(find_in_tags("{{ steps.a.output }}", "a"), None);
        assert_eq!(find_in_tags("{{ steps.a.output }}", "steps.a"), Some(3));
        assert_eq!(find_in_tags("{% if x %}x{% endif %}", "x"), Some(6));
    }

    #[test]
    fn booleans_and_none_print_like_yaml() {
        let env = environment();
        let out = env
            .render_str("{{ a }} {{ b }} [{{ c }}]", minijinja::context! { a => true, b => false, c => () });
        assert_eq!(out.ok().as_deref(), Some("true false []"));
    }

    #[test]
    fn undefined_is_an_error() {
        let env = environment();
        assert!(env.render_str("{{ nope }}", minijinja::context! {}).is_err());
    }

    #[test]
    fn variables_are_dotted_paths_without_globals() {
        let env = environment();
        let vars =
            template_variables(&env, "{{ steps.a.output.x }} {% for i in range(3) %}{{ i }}{% endfor %}");
        assert_eq!(vars.ok(), Some(BTreeSet::from(["steps.a.output.x".to_string()])));
        let vars = expression_variables(&env, "inputs.lane == 'x' and get_lane('y')");
        assert_eq!(vars.ok(), Some(BTreeSet::from(["inputs.lane".to_string()])));
    }
}
