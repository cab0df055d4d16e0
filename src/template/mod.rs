//! The minijinja environment every template and expression runs in, and the
//! analysis `runner validate` uses to check them before anything runs.

pub(crate) mod audit;
pub(crate) mod bounds;
pub(crate) mod cache;
pub(crate) mod collections;
pub(crate) mod filters;
mod paths;
pub(crate) mod text;

use std::collections::BTreeSet;

use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};

/// Our syntax: `{##`/`##}` comments, trailing newlines kept.
pub(crate) fn syntax() -> Option<SyntaxConfig> {
    SyntaxConfig::builder().comment_delimiters("{##", "##}").keep_trailing_newline(true).build().ok()
}

/// Globals (functions) our environment provides; not variables a file must define.
pub(crate) const GLOBAL_FUNCTIONS: &[&str] =
    &["range", "dict", "namespace", "debug", "get_lane", "now_utc", "select_level", "which"];

/// A template environment: strict undefined (a typo is an error, never an empty
/// string), no auto-escaping, trailing newlines kept, and `{##`/`##}` as comment
/// delimiters so shell snippets like `${#arr[@]}` pass through untouched.
pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    if let Some(syntax) = syntax() {
        env.set_syntax(syntax);
    }
    // Bound the work one template may do, so no file can hang a run.
    env.set_fuel(Some(FUEL));
    filters::register(&mut env);
    audit::register(&mut env);
    text::register(&mut env);
    collections::register(&mut env);
    env.set_formatter(|out, state, value| match display_override(value) {
        Some(text) => out.write_str(text).map_err(minijinja::Error::from),
        None => {
            check_depth(value)?;
            minijinja::escape_formatter(out, state, value)
        }
    });
    env
}

/// The standard [`environment`], built once per process, for checks that only compile
/// templates and read what they use (building one costs as much as compiling dozens of
/// small templates, and `runner validate` built one per workflow file).
pub(crate) fn shared_environment() -> &'static Environment<'static> {
    static SHARED: std::sync::OnceLock<Environment<'static>> = std::sync::OnceLock::new();
    SHARED.get_or_init(environment)
}

/// The work one template evaluation may do (minijinja instructions).
pub(crate) const FUEL: u64 = 50_000_000;

/// The largest text one template may produce (8 MiB), checked on its result.
pub(crate) const MAX_OUTPUT_BYTES: usize = 8 * 1024 * 1024;

/// Refuse a rendered text over [`MAX_OUTPUT_BYTES`].
pub(crate) fn check_output(text: &str) -> Result<(), String> {
    if text.len() > MAX_OUTPUT_BYTES {
        return Err(format!(
            "template output is {} bytes; the limit is {MAX_OUTPUT_BYTES} bytes",
            text.len()
        ));
    }
    Ok(())
}

/// The deepest nesting of lists and maps a template may print or hand back.
pub(crate) const MAX_VALUE_DEPTH: usize = 256;

/// Refuse a value nested deeper than [`MAX_VALUE_DEPTH`], checked without recursion,
/// so printing or converting it cannot overflow the stack.
pub(crate) fn check_depth(value: &minijinja::Value) -> Result<(), minijinja::Error> {
    use minijinja::value::ValueKind;
    let mut pending: Vec<(minijinja::Value, usize)> = vec![(value.clone(), 0)];
    let mut visited = 0usize;
    while let Some((current, depth)) = pending.pop() {
        if depth > MAX_VALUE_DEPTH {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("value nested deeper than {MAX_VALUE_DEPTH} levels"),
            ));
        }
        visited += 1;
        if visited > 1_000_000 {
            break;
        }
        match current.kind() {
            ValueKind::Seq | ValueKind::Iterable => {
                if let Ok(items) = current.try_iter() {
                    pending.extend(items.take(100_000).map(|item| (item, depth + 1)));
                }
            }
            ValueKind::Map => {
                if let Ok(keys) = current.try_iter() {
                    for key in keys.take(100_000) {
                        if let Ok(item) = current.get_item(&key) {
                            pending.push((item, depth + 1));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// How values print in text: booleans as `true`/`false` (as in YAML and JSON, not
/// Python's `True`), and `none` as nothing.
pub(crate) fn display_override(value: &minijinja::Value) -> Option<&'static str> {
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
pub(crate) fn single_expression(text: &str) -> Option<&str> {
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
pub(crate) fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{##")
}

/// Compile a template string and return the variables it reads from outside
/// (dotted paths such as `steps.probe.output`), without globals.
pub(crate) fn template_variables(
    env: &Environment<'_>,
    text: &str,
) -> Result<BTreeSet<String>, minijinja::Error> {
    bounds::check_compile(bounds::Mode::Text, text).map_err(limit_error)?;
    let template = env.template_from_str(text)?;
    Ok(strip_globals(template.undeclared_variables(true)))
}

/// Compile a bare expression and return the variables it reads.
pub(crate) fn expression_variables(
    env: &Environment<'_>,
    text: &str,
) -> Result<BTreeSet<String>, minijinja::Error> {
    bounds::check_compile(bounds::Mode::Expression, text).map_err(limit_error)?;
    if let Some(path) = paths::expression_path(text) {
        return Ok(strip_globals([path.to_string()]));
    }
    let expression = env.compile_expression(text)?;
    Ok(strip_globals(expression.undeclared_variables(true)))
}

/// A limit of [`bounds::check_compile`] as a minijinja error, for the callers that
/// report compilation errors.
fn limit_error(message: String) -> minijinja::Error {
    minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message)
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

/// A filter or test that a template uses and the environment does not provide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnknownName {
    /// `filter` or `test`.
    pub kind: &'static str,
    /// The name as written.
    pub name: String,
    /// Byte range of the name in the template text (or of its expression).
    pub span: std::ops::Range<usize>,
}

/// Every filter and test `text` uses that `env` does not have, found in the compiled
/// instructions (minijinja resolves them only when the instruction runs, so an
/// unknown one would otherwise fail a run half-way). Unparsable text yields nothing:
/// its syntax error is reported elsewhere.
pub(crate) fn unknown_names(env: &Environment<'_>, text: &str) -> Vec<UnknownName> {
    if bounds::check_compile(bounds::Mode::Text, text).is_err() || !paths::may_name_filters_or_tests(text) {
        return Vec::new();
    }
    let Ok(template) = env.template_from_str(text) else { return Vec::new() };
    unknown_names_in(env, &template, text)
}

/// [`unknown_names`] of `template`, already compiled from `text` with `env`.
pub(crate) fn unknown_names_of(
    env: &Environment<'_>,
    template: &minijinja::Template<'_, '_>,
    text: &str,
) -> Vec<UnknownName> {
    if bounds::check_compile(bounds::Mode::Text, text).is_err() {
        return Vec::new();
    }
    unknown_names_in(env, template, text)
}

/// [`template_variables`] and [`unknown_names`] of one template string, compiled once.
pub(crate) fn template_variables_and_unknown_names(
    env: &Environment<'_>,
    text: &str,
) -> Result<(BTreeSet<String>, Vec<UnknownName>), minijinja::Error> {
    bounds::check_compile(bounds::Mode::Text, text).map_err(limit_error)?;
    if let Some(paths) = paths::printed_paths(text) {
        return Ok((strip_globals(paths), Vec::new()));
    }
    let template = env.template_from_str(text)?;
    let unknown = unknown_names_in(env, &template, text);
    Ok((strip_globals(template.undeclared_variables(true)), unknown))
}

/// [`unknown_names`] of a compiled template whose source is `text`.
fn unknown_names_in(
    env: &Environment<'_>,
    template: &minijinja::Template<'_, '_>,
    text: &str,
) -> Vec<UnknownName> {
    use minijinja::machinery::{Instruction, Instructions, get_compiled_template};
    let compiled = get_compiled_template(template);
    let mut state = env.empty_state();
    let mut found = Vec::new();
    let mut scan = |instructions: &Instructions<'_>| {
        let mut index = 0u32;
        while let Some(instruction) = instructions.get(index) {
            let used = match instruction {
                Instruction::ApplyFilter(name, ..) => Some(("filter", *name)),
                Instruction::PerformTest(name, ..) => Some(("test", *name)),
                _ => None,
            };
            if let Some((kind, name)) = used {
                // Called with no arguments, a known filter or test fails for another
                // reason (a missing argument) or succeeds; nothing here has effects.
                let missing = match kind {
                    "filter" => state
                        .apply_filter(name, &[])
                        .is_err_and(|e| e.kind() == minijinja::ErrorKind::UnknownFilter),
                    _ => state
                        .perform_test(name, &[])
                        .is_err_and(|e| e.kind() == minijinja::ErrorKind::UnknownTest),
                };
                if missing && !found.iter().any(|u: &UnknownName| u.kind == kind && u.name == name) {
                    let whole = instructions
                        .get_span(index)
                        .map(|span| span.start_offset as usize..span.end_offset as usize)
                        .filter(|r| r.start <= r.end && r.end <= text.len())
                        .unwrap_or(0..text.len());
                    let span = text
                        .get(whole.clone())
                        .and_then(|part| find_word(part, name))
                        .map(|at| whole.start + at..whole.start + at + name.len())
                        .or_else(|| find_word(text, name).map(|at| at..at + name.len()))
                        .unwrap_or(whole);
                    found.push(UnknownName { kind, name: name.to_string(), span });
                }
            }
            index += 1;
        }
    };
    scan(&compiled.instructions);
    for block in compiled.blocks.values() {
        scan(block);
    }
    found
}

/// Filters and tests every template here has: minijinja's built-ins and ours.
const KNOWN_FILTERS: &[&str] = &[
    "abs",
    "attr",
    "batch",
    "bool",
    "capitalize",
    "chain",
    "count",
    "d",
    "default",
    "dictsort",
    "e",
    "escape",
    "first",
    "float",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "lines",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "pprint",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "slice",
    "sort",
    "split",
    "string",
    "sum",
    "title",
    "tojson",
    "trim",
    "unique",
    "upper",
    "urlencode",
    "zip",
    "dig",
    "to_int",
    "label_names",
    "compact",
    "fromjson",
    "regex_find",
    "one_line",
];
const KNOWN_TESTS: &[&str] = &[
    "boolean",
    "defined",
    "divisibleby",
    "endingwith",
    "eq",
    "even",
    "false",
    "filter",
    "float",
    "ge",
    "gt",
    "in",
    "integer",
    "iterable",
    "le",
    "lower",
    "lt",
    "mapping",
    "ne",
    "none",
    "number",
    "odd",
    "safe",
    "sameas",
    "sequence",
    "startingwith",
    "string",
    "test",
    "true",
    "undefined",
    "upper",
    "matching",
];

/// "did you mean `upper`?" for an unknown filter or test, among those `env` has.
pub(crate) fn suggest_name(env: &Environment<'_>, kind: &str, name: &str) -> Option<String> {
    let candidates = if kind == "filter" { KNOWN_FILTERS } else { KNOWN_TESTS };
    let mut state = env.empty_state();
    let available: Vec<&str> = candidates
        .iter()
        .copied()
        .filter(|candidate| {
            if kind == "filter" {
                !state
                    .apply_filter(candidate, &[])
                    .is_err_and(|e| e.kind() == minijinja::ErrorKind::UnknownFilter)
            } else {
                !state
                    .perform_test(candidate, &[])
                    .is_err_and(|e| e.kind() == minijinja::ErrorKind::UnknownTest)
            }
        })
        .collect();
    crate::diagnostics::did_you_mean(name, available)
}

/// The byte offset of `name` as a whole word in `text`.
fn find_word(text: &str, name: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(found) = text.get(from..)?.find(name) {
        let at = from + found;
        let before_ok = !text[..at].chars().next_back().is_some_and(is_ident);
        let after_ok = !text[at + name.len()..].chars().next().is_some_and(is_ident);
        if before_ok && after_ok {
            return Some(at);
        }
        from = at + name.len();
    }
    None
}

/// The byte offset of the first use of `name` as a whole word inside a `{{ }}` or
/// `{% %}` tag of `text`.
pub(crate) fn find_in_tags(text: &str, name: &str) -> Option<usize> {
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
pub(crate) fn describe_error(error: &minijinja::Error) -> String {
    if error.kind() == minijinja::ErrorKind::OutOfFuel {
        return format!(
            "template work limit reached ({FUEL} steps); is a loop unbounded or nested too deeply?"
        );
    }
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
    fn unknown_filters_and_tests_are_found_before_running() {
        let env = environment();
        let text = "{{ x | upper | shout }} {% if x is frobbed %}{{ y | default('a') }}{% endif %}";
        let found = unknown_names(&env, text);
        let names: Vec<(&str, &str, &str)> =
            found.iter().map(|u| (u.kind, u.name.as_str(), &text[u.span.clone()])).collect();
        assert_eq!(names, vec![("filter", "shout", "shout"), ("test", "frobbed", "frobbed")]);
        assert!(unknown_names(&env, "{{ x | tojson }} {{ x is defined }} {{ x | to_int }}").is_empty());
        assert!(unknown_names(&env, "{{ unclosed").is_empty());
    }

    #[test]
    fn deep_values_and_endless_work_end_with_a_named_limit() {
        let env = environment();
        let deep = "{% set ns = namespace(v=1) %}{% for i in range(2000) %}{% set ns.v = [ns.v] %}{% endfor %}{{ ns.v }}";
        let error = env.render_str(deep, minijinja::context! {}).err().map(|e| describe_error(&e));
        assert!(error.as_deref().is_some_and(|e| e.contains("nested deeper than 256")), "{error:?}");
        // The real limit takes a minute in a debug build; the message is the same.
        let mut env = env;
        env.set_fuel(Some(100_000));
        let endless = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
        let error = env.render_str(endless, minijinja::context! {}).err().map(|e| describe_error(&e));
        assert!(
            error.as_deref().is_some_and(|e| e.starts_with("template work limit reached (")),
            "{error:?}"
        );
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
