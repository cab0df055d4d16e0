//! Rendering prompt templates: the values they see (manifest vars, the lane
//! registry, vars files, `--set`, named env variables), checking every placeholder
//! before rendering, and rendering every lane's prompt at once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use minijinja::Environment;
use serde_json::{Map, Value};

use crate::diagnostics::one_of;
use crate::model::lanes::{Lane, LaneRegistry};
use crate::template;

/// The manifest file name looked up next to a template.
pub(crate) const MANIFEST_NAME: &str = "prompts.yaml";

/// A problem in a template, at a 1-based line and column of its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateProblem {
    /// The template file (the included one, when the problem is inside an include).
    pub file: PathBuf,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// Byte length of the offending text, for the caret.
    pub len: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// A template environment that loads includes only from under `root`.
pub(crate) fn environment_for(root: &Path) -> Environment<'static> {
    let mut env = template::environment();
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    env.set_loader(move |name| {
        let Some(path) = safe_join(&root, name) else { return Ok(None) };
        // Refuse symlinks that lead out of the root.
        if let Ok(real) = std::fs::canonicalize(&path)
            && !real.starts_with(&root)
        {
            return Ok(None);
        }
        // The same capped reader as every other file: no FIFO, device or folder.
        match crate::fsutil::read_text(&path, crate::fsutil::MAX_READ_BYTES) {
            Ok(text) => Ok(Some(text)),
            Err(crate::fsutil::ReadFailure::Missing) => Ok(None),
            Err(failure) => Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("cannot read included template `{name}`: {failure}"),
            )),
        }
    });
    env
}

/// `out_dir` joined with a rendered output name, refused unless the result stays
/// inside `out_dir`: no absolute name, no `..`, no symlinked folder leading out.
pub(crate) fn inside_out_dir(out_dir: &Path, name: &str) -> Result<PathBuf, String> {
    use std::path::Component;
    if name.trim().is_empty() {
        return Err("is empty".into());
    }
    let relative = Path::new(name);
    for component in relative.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err("would write outside --out-dir (`..`)".into()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("is absolute; it would write outside --out-dir".into());
            }
        }
    }
    let path = out_dir.join(relative);
    // A folder inside out_dir that is a symlink to elsewhere also leads out.
    if let Ok(root) = std::fs::canonicalize(out_dir) {
        let mut existing = path.parent();
        while let Some(dir) = existing {
            if let Ok(real) = std::fs::canonicalize(dir) {
                if !real.starts_with(&root) {
                    return Err("would write outside --out-dir (through a symlink)".into());
                }
                break;
            }
            existing = dir.parent();
        }
    }
    Ok(path)
}

/// `root` joined with a template name, refusing `..`, hidden and absolute parts.
fn safe_join(root: &Path, name: &str) -> Option<PathBuf> {
    let mut path = root.to_path_buf();
    for segment in name.split('/') {
        if segment.is_empty() || segment.starts_with('.') || segment.contains('\\') || segment.contains(':') {
            return None;
        }
        path.push(segment);
    }
    Some(path)
}

/// The values a prompt sees: `vars` by name, `lanes`, `final_forms` and, when
/// rendering for a lane, `lane`.
pub(crate) fn prompt_context(
    vars: &IndexMap<String, Value>,
    registry: Option<&LaneRegistry>,
    lane: Option<&Lane>,
) -> Value {
    let mut map = Map::new();
    for (key, value) in vars {
        map.insert(key.clone(), value.clone());
    }
    if let Some(registry) = registry {
        map.insert("lanes".into(), serde_json::to_value(&registry.lanes).unwrap_or(Value::Null));
        map.insert("final_forms".into(), serde_json::to_value(&registry.final_forms).unwrap_or(Value::Null));
    }
    if let Some(lane) = lane {
        map.insert("lane".into(), serde_json::to_value(lane).unwrap_or(Value::Null));
    }
    Value::Object(map)
}

/// The placeholders a template uses (dotted paths, sorted).
pub(crate) fn placeholders(text: &str) -> Result<BTreeSet<String>, minijinja::Error> {
    template::template_variables(&template::environment(), text)
}

/// Check that every placeholder of `text` exists in `context`, then render it.
/// `file` is the template's path; `root` bounds its includes.
pub(crate) fn render_checked(
    file: &Path,
    text: &str,
    root: &Path,
    context: &Value,
) -> Result<String, Vec<TemplateProblem>> {
    if let Err(message) = template::bounds::check_compile(template::bounds::Mode::Text, text) {
        return Err(vec![TemplateProblem {
            file: file.to_path_buf(),
            line: 1,
            column: 1,
            len: 1,
            message,
            hint: None,
        }]);
    }
    let env = environment_for(root);
    let name = file.to_string_lossy().into_owned();
    let compiled = match env.template_from_named_str(&name, text) {
        Ok(t) => t,
        Err(error) => return Err(vec![problem_from_error(file, text, &error)]),
    };
    let variables = compiled.undeclared_variables(true);
    if crate::readlog::active() && reads_outside(text, &variables) {
        crate::readlog::mark_uncacheable();
    }
    let mut problems = Vec::new();
    let available: Vec<String> = match context {
        Value::Object(map) => map.keys().cloned().collect(),
        _ => Vec::new(),
    };
    let mut sorted: Vec<&String> = variables.iter().collect();
    sorted.sort();
    for path in sorted {
        let root_name = path.split('.').next().unwrap_or(path);
        if template::GLOBAL_FUNCTIONS.contains(&root_name) {
            continue;
        }
        if let Some(missing) = missing_part(context, path) {
            let (line, column) = find_in_template(text, &missing);
            let (message, hint) = if missing.contains('.') {
                let (parent, field) = missing.rsplit_once('.').unwrap_or((&missing, ""));
                let fields = context_fields(context, parent);
                (
                    format!("undefined placeholder `{missing}`: `{parent}` has no field `{field}`"),
                    crate::diagnostics::did_you_mean(field, fields.iter().map(String::as_str)).or_else(
                        || (!fields.is_empty()).then(|| format!("its fields: {}", fields.join(", "))),
                    ),
                )
            } else {
                let hint = crate::diagnostics::did_you_mean(&missing, available.iter().map(String::as_str));
                let lane_hint = (missing == "lane")
                    .then(|| "this template is rendered per lane: pass `--lane ID`".to_string());
                (
                    format!(
                        "undefined placeholder `{missing}`; available: {}",
                        if available.is_empty() { "none".to_string() } else { available.join(", ") }
                    ),
                    lane_hint.or(hint),
                )
            };
            problems.push(TemplateProblem {
                file: file.to_path_buf(),
                line,
                column,
                len: missing.len(),
                message,
                hint,
            });
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let at_start = |message| {
        vec![TemplateProblem { file: file.to_path_buf(), line: 1, column: 1, len: 1, message, hint: None }]
    };
    // A template that could grow without bound renders in a child with limits.
    let rendered = match template::bounds::isolated_file(text, context, root) {
        Some(result) => result.map_err(at_start)?,
        None => compiled
            .render(minijinja::Value::from(minijinja::value::Serde(context)))
            .map_err(|error| vec![problem_from_error(file, text, &error)])?,
    };
    template::check_output(&rendered).map_err(|message| {
        vec![TemplateProblem { file: file.to_path_buf(), line: 1, column: 1, len: 1, message, hint: None }]
    })?;
    Ok(rendered)
}

/// Whether rendering `text` may depend on more than its text and context: another
/// template (`include`, `import`, `from`, `extends`; perhaps loaded in a child process,
/// where `runner validate`'s read log cannot see it) or the environment (`which`
/// looks at PATH, `now_utc` at the clock). `variables` are its undeclared names.
fn reads_outside(text: &str, variables: &std::collections::HashSet<String>) -> bool {
    let asks_environment = variables.iter().any(|name| {
        let root = name.split('.').next().unwrap_or(name);
        matches!(root, "which" | "now_utc")
    });
    asks_environment
        || text.split("{%").skip(1).any(|tag| {
            let word = tag.trim_start_matches(['-', '+']).split_whitespace().next().unwrap_or("");
            matches!(word, "include" | "import" | "from" | "extends")
        })
}

/// The first prefix of a dotted path that the context does not have.
fn missing_part(context: &Value, path: &str) -> Option<String> {
    let mut current = context;
    let mut walked: Vec<&str> = Vec::new();
    for part in path.split('.') {
        walked.push(part);
        match current {
            Value::Object(map) => match map.get(part) {
                Some(next) => current = next,
                None => return Some(walked.join(".")),
            },
            // Lists, strings and numbers have methods and indexes; stop checking.
            _ => return None,
        }
    }
    None
}

fn context_fields(context: &Value, dotted: &str) -> Vec<String> {
    let mut current = context;
    for part in dotted.split('.') {
        match current.get(part) {
            Some(next) => current = next,
            None => return Vec::new(),
        }
    }
    match current {
        Value::Object(map) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Where a name is first used inside a `{{ }}` or `{% %}` tag of the template.
fn find_in_template(text: &str, name: &str) -> (usize, usize) {
    match template::find_in_tags(text, name) {
        Some(offset) => {
            let line = text[..offset].matches('\n').count() + 1;
            let line_start = text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
            (line, text[line_start..offset].chars().count() + 1)
        }
        None => (0, 0),
    }
}

/// Turn a minijinja error into a problem, following includes to the real place.
pub(crate) fn problem_from_error(file: &Path, text: &str, error: &minijinja::Error) -> TemplateProblem {
    // An error inside an include is wrapped; the innermost one knows the real place.
    let mut innermost: &minijinja::Error = error;
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(next) = source {
        if let Some(inner) = next.downcast_ref::<minijinja::Error>() {
            innermost = inner;
        }
        source = next.source();
    }
    let in_include = innermost.name().is_some_and(|n| n != file.to_string_lossy());
    let problem_file = match (in_include, innermost.name()) {
        (true, Some(name)) => file.parent().unwrap_or(Path::new("")).join(name),
        _ => file.to_path_buf(),
    };
    let line = innermost.line().or(error.line()).unwrap_or(0);
    let column = match (innermost.range(), in_include) {
        (Some(range), false) => {
            let line_start = text[..range.start.min(text.len())].rfind('\n').map(|i| i + 1).unwrap_or(0);
            text.get(line_start..range.start).map(|s| s.chars().count() + 1).unwrap_or(1)
        }
        _ => usize::from(line > 0),
    };
    let len = innermost.range().map(|r| r.end.saturating_sub(r.start)).unwrap_or(1);
    let mut message = template::describe_error(innermost);
    if let Some(pos) = message.find(" (template line") {
        message.truncate(pos);
    }
    let hint = match innermost.kind() {
        minijinja::ErrorKind::SyntaxError if message.contains("comment") => {
            Some("comments are `{## ... ##}` here, so `{#` can appear in shell snippets".to_string())
        }
        minijinja::ErrorKind::TemplateNotFound => {
            Some("templates may include only files under their own directory".to_string())
        }
        _ => None,
    };
    TemplateProblem { file: problem_file, line, column, len, message, hint }
}

/// Parse `KEY=VALUE` from `--set`.
pub(crate) fn parse_assignment(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

/// The output file name of a lane's prompt: `<lane>-<template file name>`.
pub(crate) fn lane_output_name(lane: &Lane, template: &Path) -> String {
    let file =
        template.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "prompt.md".into());
    format!("{}-{file}", lane.id)
}

/// Describe the lanes for messages.
pub(crate) fn lane_list(registry: &LaneRegistry) -> String {
    one_of(&registry.ids())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_that_read_other_templates_or_the_environment_are_found() {
        let env = crate::template::environment();
        let outside = |text: &str| {
            let compiled = env.template_from_str(text).expect("compiles");
            reads_outside(text, &compiled.undeclared_variables(true))
        };
        for text in [
            "{% include 'part.md' %}",
            "{%- import 'macros.md' as m %}{{ m }}",
            "{%+ from 'm.md' import x %}",
            "{% extends 'base.md' %}",
            "{{ which('gh') }}",
            "{% if now_utc() %}x{% endif %}",
        ] {
            assert!(outside(text), "{text}");
        }
        for text in ["from {{ lane.id }} include this", "{% if x %}import{% endif %}", "{{ x | upper }}"] {
            assert!(!outside(text), "{text}");
        }
    }

    #[test]
    fn output_names_never_leave_the_out_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        std::fs::create_dir(&out).expect("mkdir");
        assert_eq!(inside_out_dir(&out, "a/b.md").ok(), Some(out.join("a/b.md")));
        for bad in ["../x.md", "../..", "/etc/passwd", "a/../../x", ""] {
            assert!(inside_out_dir(&out, bad).is_err(), "{bad}");
        }
        std::os::unix::fs::symlink(dir.path(), out.join("link")).expect("symlink");
        assert!(inside_out_dir(&out, "link/x.md").is_err());
    }
    use serde_json::json;

    #[test]
    fn missing_parts_are_found() {
        let ctx = json!({"lane": {"id": "local", "cron": {"id": "x"}}, "workflow_dir": "/w"});
        assert_eq!(missing_part(&ctx, "lane.id"), None);
        assert_eq!(missing_part(&ctx, "lane.agnet"), Some("lane.agnet".into()));
        assert_eq!(missing_part(&ctx, "lane.cron.nme"), Some("lane.cron.nme".into()));
        assert_eq!(missing_part(&ctx, "WORKFLOW_DIR"), Some("WORKFLOW_DIR".into()));
    }

    #[test]
    fn names_are_found_inside_tags_only() {
        let text = "lane here\nuse {{ lane.id }}\n";
        assert_eq!(find_in_template(text, "lane"), (2, 8));
    }

    #[test]
    fn undefined_placeholder_names_the_alternatives() {
        let dir = std::env::temp_dir();
        let ctx = json!({"workflow_dir": "/w"});
        let err = render_checked(Path::new("t.md"), "a\n{{ workflow_dri }}\n", &dir, &ctx).unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!((err[0].line, err[0].column), (2, 4));
        assert!(err[0].message.contains("available: workflow_dir"));
        assert_eq!(err[0].hint.as_deref(), Some("did you mean `workflow_dir`?"));
    }

    #[test]
    fn renders_and_keeps_shell_and_slots() {
        let dir = std::env::temp_dir();
        let ctx = json!({"n": 2});
        let out = render_checked(Path::new("t.md"), "${#a[@]} {pr} {{ n }}\n", &dir, &ctx);
        assert_eq!(out.as_deref(), Ok("${#a[@]} {pr} 2\n"));
    }
}
