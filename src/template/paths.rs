//! The variables of a template that only prints names (`Hello {{ inputs.who }}`),
//! read without compiling it.
//!
//! About half the templates a workflow holds are text with `{{ dotted.name }}` in it
//! and nothing else; compiling each (and parsing it a second time for its variables)
//! was most of what checking them cost. Such a template reads exactly the dotted
//! names it prints, uses no filter or test, and always compiles. Anything else (a
//! block, a comment, a filter, an operator, whitespace control, a literal) is left to
//! the compiler.

use std::collections::BTreeSet;

/// Names that are constants or operators, not variables.
const KEYWORDS: [&str; 13] =
    ["true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if", "else"];

/// The dotted names a template made only of text and `{{ name.name }}` prints, or
/// `None` when it holds anything else.
pub(crate) fn printed_paths(text: &str) -> Option<BTreeSet<String>> {
    if text.contains("{%") || text.contains("{#") {
        return None;
    }
    let mut paths = BTreeSet::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after.find("}}")?;
        paths.insert(dotted_path(&after[..close])?.to_string());
        rest = &after[close + 2..];
    }
    Some(paths)
}

/// `text` as a bare expression that is only a dotted name (for `if:` and
/// `for_each:`), trimmed, or `None`.
pub(crate) fn expression_path(text: &str) -> Option<&str> {
    dotted_path(text)
}

/// Whether `text` may apply a filter or perform a test: it holds a `|`, the word `is`
/// or `filter` (a `{% filter %}` block). Without any, compiling it cannot find one.
pub(crate) fn may_name_filters_or_tests(text: &str) -> bool {
    let word = |word: &str| {
        text.match_indices(word).any(|(at, _)| {
            let before = text[..at].chars().next_back();
            let after = text[at + word.len()..].chars().next();
            let outside = |c: Option<char>| !c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            outside(before) && outside(after)
        })
    };
    text.contains('|') || word("is") || text.contains("filter")
}

/// The dotted name inside `{{ }}`: ASCII identifiers joined by `.`, with spaces,
/// tabs or newlines around it (not `-`/`+` whitespace control, not a keyword).
fn dotted_path(inner: &str) -> Option<&str> {
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
    let path = inner.trim_matches(is_space);
    if path.is_empty() {
        return None;
    }
    for name in path.split('.') {
        let mut chars = name.chars();
        let first = chars.next()?;
        if !(first.is_ascii_alphabetic() || first == '_')
            || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            || KEYWORDS.contains(&name)
        {
            return None;
        }
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every case: the shortcut either declines or agrees with the compiler.
    #[test]
    fn printed_paths_agree_with_the_compiler_or_decline() {
        let env = crate::template::environment();
        let cases = [
            ("Hello {{ inputs.who }}!", true),
            ("{{a}}{{ b.c.d }} {{\n  steps.x.result \n}}", true),
            ("plain text } }} {", true),
            ("{{ true }}", false),
            ("{{ a.none }}", false),
            ("{{- a }}", false),
            ("{{ a -}}", false),
            ("{{ a | upper }}", false),
            ("{{ a.b[0] }}", false),
            ("{{ a.1 }}", false),
            ("{{ 'x' }}", false),
            ("{{ a }} {% if b %}{% endif %}", false),
            ("{{ a }} {## c ##}", false),
            ("{# x #} {{ a }}", false),
            ("{{{ a }}", false),
            ("{{ a", false),
            ("{{ }}", false),
            ("{{ a..b }}", false),
            ("{{ ünï }}", false),
            ("{{ a b }}", false),
            ("{{ range }}", true),
        ];
        for (text, simple) in cases {
            let fast = printed_paths(text);
            assert_eq!(fast.is_some(), simple, "{text:?}");
            if let Some(fast) = fast {
                let template = env.template_from_str(text).map_err(|e| format!("{e}"));
                let slow: Option<BTreeSet<String>> =
                    template.ok().map(|t| t.undeclared_variables(true).into_iter().collect());
                assert_eq!(Some(fast), slow, "{text:?}");
            }
        }
        for (text, may) in [
            ("{{ a.dispatch_id == 'this' }}", false),
            ("{{ a | nope }}", true),
            ("{{ a is nope }}", true),
            ("{{ a is\tnope }}", true),
            ("{% filter nope %}x{% endfilter %}", true),
            ("{{ (a)is nope }}", true),
        ] {
            assert_eq!(may_name_filters_or_tests(text), may, "{text:?}");
            if !may {
                let template = env.template_from_str(text);
                assert!(template.is_ok_and(|t| crate::template::unknown_names_in(&env, &t, text).is_empty()));
            } else {
                assert!(!crate::template::unknown_names(&env, text).is_empty(), "{text:?}");
            }
        }
        for (text, simple) in [("a.b", true), (" loop.index ", true), ("a | b", false), ("not a", false)] {
            let fast = expression_path(text);
            assert_eq!(fast.is_some(), simple, "{text:?}");
            if let Some(fast) = fast {
                let slow: Option<BTreeSet<String>> = env
                    .compile_expression(text)
                    .ok()
                    .map(|e| e.undeclared_variables(true).into_iter().collect());
                assert_eq!(Some(BTreeSet::from([fast.to_string()])), slow, "{text:?}");
            }
        }
    }
}
