//! Problems found in files: where (file, line, column, byte range), what, and how to
//! fix it; rendered in one place, for people (snippet with a caret) or as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use serde::Serialize;

/// A position in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// Byte offset.
    pub offset: usize,
}

/// A byte range with its start position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Range {
    /// Where it starts.
    pub start: Pos,
    /// Byte offset just past the end.
    pub end: usize,
}

/// A second place that explains a diagnostic (first definition, alias use site).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Related {
    /// Byte range in the same file.
    pub range: Range,
    /// What it is.
    pub label: String,
}

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Diagnostic {
    /// The file, as given or found.
    pub file: String,
    /// Where in it.
    pub range: Range,
    /// Stable problem class, e.g. `schema`, `unknown-field`, `template`.
    pub code: &'static str,
    /// What is wrong and what was expected.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
    /// Other places involved.
    pub related: Vec<Related>,
}

impl Diagnostic {
    /// A diagnostic at `range` of `file`.
    pub(crate) fn new(file: &str, range: Range, code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_string(),
            range,
            code,
            message: message.into(),
            hint: None,
            related: Vec::new(),
        }
    }

    /// Add a hint.
    #[must_use]
    pub(crate) fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// Add a related place.
    #[must_use]
    pub(crate) fn with_related(mut self, range: Range, label: impl Into<String>) -> Self {
        self.related.push(Related { range, label: label.into() });
        self
    }

    /// 1-based line.
    pub(crate) fn line(&self) -> usize {
        self.range.start.line
    }

    /// 1-based column.
    pub(crate) fn column(&self) -> usize {
        self.range.start.col
    }
}

/// The JSON form of a diagnostic (`runner validate --output json`).
#[derive(Debug, Serialize)]
pub(crate) struct JsonDiagnostic<'a> {
    /// File path.
    pub file: &'a str,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Problem class.
    pub code: &'a str,
    /// What is wrong.
    pub message: &'a str,
    /// How to fix it, or null.
    pub hint: Option<&'a str>,
    /// Other places involved (an alias or merge use site, a first definition).
    pub related: Vec<JsonRelated<'a>>,
    /// `error` (the file is invalid) or `warning` (worth knowing; never changes the
    /// exit code).
    pub severity: &'static str,
}

/// A related place in the JSON form.
#[derive(Debug, Serialize)]
pub(crate) struct JsonRelated<'a> {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What it is.
    pub label: &'a str,
}

/// Render diagnostics as a JSON array.
#[cfg(test)]
pub(crate) fn to_json(diagnostics: &[Diagnostic]) -> String {
    to_json_with_warnings(diagnostics, &[])
}

/// Render errors, then warnings, as one JSON array; each object says its `severity`.
pub(crate) fn to_json_with_warnings(errors: &[Diagnostic], warnings: &[Diagnostic]) -> String {
    let tagged = errors.iter().map(|d| (d, "error")).chain(warnings.iter().map(|d| (d, "warning")));
    let items: Vec<JsonDiagnostic<'_>> = tagged
        .map(|(d, severity)| JsonDiagnostic {
            file: &d.file,
            line: d.line(),
            column: d.column(),
            code: d.code,
            message: &d.message,
            hint: d.hint.as_deref(),
            related: d
                .related
                .iter()
                .map(|r| JsonRelated { line: r.range.start.line, column: r.range.start.col, label: &r.label })
                .collect(),
            severity,
        })
        .collect();
    serde_json::to_string_pretty(&items).unwrap_or_else(|_| "[]".to_string())
}

/// Renders diagnostics with source snippets. Sources are looked up by file name.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    texts: BTreeMap<String, String>,
}

impl Sources {
    /// Remember the text of `file`.
    pub(crate) fn insert(&mut self, file: &str, text: String) {
        self.texts.insert(file.to_string(), text);
    }

    /// The text of `file`, if known.
    pub(crate) fn get(&self, file: &str) -> Option<&str> {
        self.texts.get(file).map(String::as_str)
    }
}

/// Render one diagnostic for people: `error[code]: message`, the location, a snippet
/// with a caret, related places and the hint.
pub(crate) fn render(diagnostic: &Diagnostic, sources: &Sources, color: bool) -> String {
    // A file that could not be read at all has no line to point at: name the file.
    let location = if diagnostic.line() == 0 {
        diagnostic.file.clone()
    } else {
        format!("{}:{}:{}", diagnostic.file, diagnostic.line(), diagnostic.column())
    };
    let title = format!("{location}: {}", diagnostic.message);
    let renderer = if color { Renderer::styled() } else { Renderer::plain() };
    let Some(source) =
        sources.get(&diagnostic.file).filter(|s| !s.is_empty() && diagnostic.range.start.line > 0)
    else {
        let mut out = format!("error[{}]: {title}\n", diagnostic.code);
        if let Some(hint) = &diagnostic.hint {
            let _ = writeln!(out, "  = help: {hint}");
        }
        return out;
    };
    let span = clamp_span(source, diagnostic.range.start.offset, diagnostic.range.end);
    let primary = AnnotationKind::Primary.span(span);
    let primary = if diagnostic.related.is_empty() { primary } else { primary.label("here") };
    let mut snippet = Snippet::source(source).path(diagnostic.file.as_str()).annotation(primary);
    for related in &diagnostic.related {
        let span = clamp_span(source, related.range.start.offset, related.range.end);
        snippet = snippet.annotation(AnnotationKind::Context.span(span).label(related.label.as_str()));
    }
    let mut groups =
        vec![Level::ERROR.primary_title(diagnostic.message.as_str()).id(diagnostic.code).element(snippet)];
    if let Some(hint) = &diagnostic.hint {
        groups.push(Group::with_title(Level::HELP.secondary_title(hint.as_str())));
    }
    let mut out = renderer.render(&groups);
    out.push('\n');
    out
}

/// Keep a span inside the text, on one line, at least one character wide, and on
/// character boundaries.
fn clamp_span(source: &str, start: usize, end: usize) -> std::ops::Range<usize> {
    let mut start = start.min(source.len());
    while start > 0 && !source.is_char_boundary(start) {
        start -= 1;
    }
    let line_end = source[start..].find('\n').map(|i| start + i).unwrap_or(source.len());
    let mut end = end.min(line_end).max(start);
    if end == start {
        end = source[start..line_end].chars().next().map(|c| start + c.len_utf8()).unwrap_or(start);
    }
    while end < source.len() && !source.is_char_boundary(end) {
        end += 1;
    }
    start..end
}

/// Sort diagnostics by file, line and column, and drop exact duplicates.
pub(crate) fn sort(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by(|a, b| {
        (a.file.as_str(), a.line(), a.column(), a.message.as_str()).cmp(&(
            b.file.as_str(),
            b.line(),
            b.column(),
            b.message.as_str(),
        ))
    });
    diagnostics.dedup_by(|a, b| a.file == b.file && a.range == b.range && a.message == b.message);
}

/// The closest of `candidates` to `word`, if close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        // Optimal string alignment: swapping two neighbouring letters (`agnet`) is one edit.
        let distance = strsim::osa_distance(&word.to_lowercase(), &candidate.to_lowercase());
        let limit = (candidate.chars().count().max(word.chars().count()) / 3).max(1);
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

/// Join names as `` `a`, `b` or `c` ``.
pub(crate) fn one_of<S: AsRef<str>>(names: &[S]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{}`", n.as_ref())).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        n => format!("{} or {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_names_only() {
        assert_eq!(did_you_mean("timout", ["timeout", "retry"]), Some("did you mean `timeout`?".into()));
        assert_eq!(did_you_mean("xyz", ["timeout", "retry"]), None);
        assert_eq!(did_you_mean("Steps", ["steps"]), Some("did you mean `steps`?".into()));
        assert_eq!(did_you_mean("agnet", ["agent", "lane"]), Some("did you mean `agent`?".into()));
        assert_eq!(did_you_mean("cluod", ["local", "cloud"]), Some("did you mean `cloud`?".into()));
    }

    #[test]
    fn lists_read_naturally() {
        assert_eq!(one_of(&["a"]), "`a`");
        assert_eq!(one_of(&["a", "b", "c"]), "`a`, `b` or `c`");
    }

    #[test]
    fn clamps_spans_to_one_line() {
        let src = "ab\ncd";
        assert_eq!(clamp_span(src, 0, 5), 0..2);
        assert_eq!(clamp_span(src, 2, 2), 2..2);
        assert_eq!(clamp_span(src, 10, 12), 5..5);
        assert_eq!(clamp_span("é", 1, 1), 0..2);
    }
}
