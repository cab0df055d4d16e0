//! Checking a document against the generated JSON Schema and turning the raw
//! validator errors into one clear message per problem: a step's variant is picked
//! by its `type`, `oneOf` noise is reduced to what was expected, and unknown keys
//! get a "did you mean".

use std::collections::BTreeSet;
use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use crate::diagnostics::{did_you_mean, one_of};
use crate::model::FileKind;
use crate::model::duration::{DURATION_PATTERN, parse_duration};

/// A problem found by the schema, located by JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// JSON pointer of the offending value (or key).
    pub pointer: String,
    /// Point at the key rather than the value (unknown fields).
    pub on_key: bool,
    /// Problem class.
    pub code: &'static str,
    /// What is wrong and what was expected.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl Problem {
    fn new(pointer: &str, code: &'static str, message: String) -> Self {
        Problem { pointer: pointer.to_string(), on_key: false, code, message, hint: None }
    }
}

/// A compiled schema for one file kind.
#[derive(Debug)]
pub(crate) struct Checker {
    schema: Value,
    validator: Option<Validator>,
}

/// The checker for `kind`, compiled once per process.
pub(crate) fn checker(kind: FileKind) -> &'static Checker {
    static CHECKERS: [OnceLock<Checker>; FileKind::ALL.len()] =
        [const { OnceLock::new() }; FileKind::ALL.len()];
    let slot = FileKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
    CHECKERS[slot].get_or_init(|| Checker::new(kind.schema()))
}

/// Compile a validator for `schema` with runner's formats (`duration`).
pub fn compile(schema: &Value) -> Result<Validator, String> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .with_format("duration", |text: &str| parse_duration(text).is_ok())
        .build(schema)
        .map_err(|e| e.to_string())
}

impl Checker {
    /// A checker for `schema`.
    pub(crate) fn new(schema: Value) -> Self {
        let validator = compile(&schema).ok();
        Checker { schema, validator }
    }

    /// All problems of `instance`, in document order of their pointers.
    pub(crate) fn check(&self, instance: &Value) -> Vec<Problem> {
        let Some(validator) = &self.validator else {
            return vec![Problem::new("", "internal", "the built-in schema failed to compile".into())];
        };
        // Almost every file is valid: answering yes or no is much cheaper than
        // collecting errors, which are only looked for when there are some.
        if validator.is_valid(instance) {
            return Vec::new();
        }
        let mut problems = Vec::new();
        for error in validator.iter_errors(instance) {
            self.explain(&error, instance, &mut problems);
        }
        let mut seen = BTreeSet::new();
        problems.retain(|p| seen.insert((p.pointer.clone(), p.on_key, p.message.clone())));
        problems
    }

    fn explain(&self, error: &ValidationError<'_>, instance: &Value, out: &mut Vec<Problem>) {
        let base = error.instance_path().as_str();
        let value = instance.pointer(base).unwrap_or(&Value::Null);
        let schema_path = error.schema_path().as_str();
        match error.kind() {
            ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
                self.explain_alternatives(base, value, schema_path, context, instance, out);
            }
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let known = self.known_properties(parent(schema_path), value);
                for key in unexpected {
                    let mut problem = unknown_field(base, key, &known, None);
                    let allows_extensions = self.schema.get("patternProperties").is_some();
                    if base.is_empty()
                        && allows_extensions
                        && !key.starts_with("x-")
                        && !problem.hint.as_deref().is_some_and(|h| h.starts_with("did you mean"))
                    {
                        let anchors =
                            format!("a key named `x-{key}` would be ignored (a place for YAML anchors)");
                        problem.hint = Some(match problem.hint.take() {
                            Some(known) => format!("{known}; {anchors}"),
                            None => anchors,
                        });
                    }
                    out.push(problem);
                }
            }
            ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                let object_schema = parent(schema_path);
                if self.is_tagged(object_schema) {
                    let Some(type_name) = value.get("type").and_then(Value::as_str) else { return };
                    if !self.tag_values(object_schema).iter().any(|t| t == type_name) {
                        // An unknown `type` is reported once, by the `oneOf`.
                        return;
                    }
                    let known = self.known_properties(object_schema, value);
                    for key in unexpected.iter().filter(|k| !known.contains(*k)) {
                        out.push(unknown_field(base, key, &known, Some(type_name)));
                    }
                } else {
                    let known = self.known_properties(object_schema, value);
                    for key in unexpected.iter().filter(|k| !known.contains(*k)) {
                        out.push(unknown_field(base, key, &known, None));
                    }
                }
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                let mut problem = Problem::new(
                    base,
                    "missing-field",
                    format!("missing required field `{name}`{}", self.within(base)),
                );
                let description = self
                    .resolve(&format!("{}/properties/{name}", parent(schema_path)))
                    .and_then(|s| s.get("description"))
                    .and_then(Value::as_str)
                    .map(first_sentence);
                problem.hint = description.map(|d| format!("`{name}`: {d}"));
                out.push(problem);
            }
            ValidationErrorKind::Type { .. } => {
                let expected =
                    self.resolve(schema_path).map(type_words).unwrap_or_else(|| "another type".into());
                let subschema = self.resolve(parent(schema_path));
                let mut problem = Problem::new(
                    base,
                    "type",
                    format!("{}expected {expected}, found {}", field_prefix(base), describe(value)),
                );
                if subschema.and_then(|s| s.get("format")).and_then(Value::as_str) == Some("duration") {
                    problem.message = format!(
                        "{}expected a duration with a unit, found {}",
                        field_prefix(base),
                        describe(value)
                    );
                    problem.hint = value.as_u64().map(|n| format!("write `{n}s` for {n} seconds"));
                }
                out.push(problem);
            }
            ValidationErrorKind::Enum { options } => {
                let names = enum_names(options);
                let mut problem = Problem::new(
                    base,
                    "enum",
                    format!(
                        "{}{} is not allowed; expected {}",
                        field_prefix(base),
                        describe(value),
                        one_of(&names)
                    ),
                );
                if let Some(text) = value.as_str() {
                    problem.hint = did_you_mean(text, names.iter().map(String::as_str));
                }
                out.push(problem);
            }
            ValidationErrorKind::Constant { expected_value } => {
                out.push(Problem::new(
                    base,
                    "enum",
                    format!(
                        "{}expected `{}`, found {}",
                        field_prefix(base),
                        plain(expected_value),
                        describe(value)
                    ),
                ));
            }
            ValidationErrorKind::Format { format } if format == "duration" => {
                let message = match value.as_str().map(parse_duration) {
                    Some(Err(e)) => e.to_string(),
                    _ => "invalid duration".to_string(),
                };
                out.push(Problem::new(base, "duration", format!("{}{message}", field_prefix(base))));
            }
            ValidationErrorKind::Pattern { pattern } => {
                if pattern == DURATION_PATTERN {
                    return; // the `duration` format explains it better
                }
                out.push(pattern_problem(base, value, pattern));
            }
            ValidationErrorKind::MinItems { limit } => {
                let noun = if *limit == 1 { "item" } else { "items" };
                out.push(Problem::new(
                    base,
                    "length",
                    format!("{}needs at least {limit} {noun}, found {}", field_prefix(base), describe(value)),
                ));
            }
            ValidationErrorKind::MinLength { .. } => {
                out.push(Problem::new(base, "length", format!("{}must not be empty", field_prefix(base))));
            }
            ValidationErrorKind::Minimum { limit } | ValidationErrorKind::ExclusiveMinimum { limit } => {
                out.push(Problem::new(
                    base,
                    "range",
                    format!("{}{} is below the minimum of {limit}", field_prefix(base), plain(value)),
                ));
            }
            ValidationErrorKind::Maximum { limit } | ValidationErrorKind::ExclusiveMaximum { limit } => {
                out.push(Problem::new(
                    base,
                    "range",
                    format!("{}{} is above the maximum of {limit}", field_prefix(base), plain(value)),
                ));
            }
            _ => out.push(Problem::new(base, "schema", format!("{}{error}", field_prefix(base)))),
        }
    }

    /// A `oneOf`/`anyOf` failed. For a tagged union (step kinds, cron backends) pick the
    /// branch by `type`; otherwise pick the one branch whose shape fits, or say what
    /// the alternatives were.
    fn explain_alternatives(
        &self,
        base: &str,
        value: &Value,
        schema_path: &str,
        context: &[Vec<ValidationError<'static>>],
        instance: &Value,
        out: &mut Vec<Problem>,
    ) {
        let object_schema = parent(schema_path);
        if self.is_tagged(object_schema) && value.is_object() {
            let tags = self.tag_values(object_schema);
            let what = self.union_noun(object_schema);
            match value.get("type") {
                None => {
                    let mut problem = Problem::new(
                        base,
                        "missing-field",
                        format!("missing required field `type`{}", self.within(base)),
                    );
                    problem.hint = Some(format!("`type` selects the {what}: one of {}", one_of(&tags)));
                    out.push(problem);
                }
                Some(Value::String(name)) if tags.iter().any(|t| t == name) => {
                    let type_path = format!("{base}/type");
                    for branch in context {
                        let rejects_type = branch.iter().any(|e| e.instance_path().as_str() == type_path);
                        if !rejects_type {
                            for error in branch {
                                self.explain(error, instance, out);
                            }
                            return;
                        }
                    }
                }
                Some(other) => {
                    let shown = other.as_str().map(|s| format!("`{s}`")).unwrap_or_else(|| describe(other));
                    let mut problem = Problem::new(
                        &format!("{base}/type"),
                        "unknown-type",
                        format!("unknown {what} {shown}; expected one of {}", one_of(&tags)),
                    );
                    problem.hint =
                        other.as_str().and_then(|s| did_you_mean(s, tags.iter().map(String::as_str)));
                    out.push(problem);
                }
            }
            return;
        }
        // Untagged: branches that fail only deeper down fit the value's shape.
        let fitting: Vec<&Vec<ValidationError<'static>>> = context
            .iter()
            .filter(|branch| {
                !branch.iter().any(|e| {
                    e.instance_path().as_str() == base
                        && matches!(
                            e.kind(),
                            ValidationErrorKind::Type { .. }
                                | ValidationErrorKind::Enum { .. }
                                | ValidationErrorKind::Constant { .. }
                                | ValidationErrorKind::OneOfNotValid { .. }
                        )
                })
            })
            .collect();
        if let [branch] = fitting.as_slice() {
            for error in branch.iter() {
                self.explain(error, instance, out);
            }
            return;
        }
        let mut expected: Vec<String> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for branch in context {
            for error in branch.iter().filter(|e| e.instance_path().as_str() == base) {
                match error.kind() {
                    ValidationErrorKind::Constant { expected_value } => {
                        names.push(plain(expected_value));
                        expected.push(format!("`{}`", plain(expected_value)));
                    }
                    ValidationErrorKind::Enum { options } => {
                        for name in enum_names(options) {
                            expected.push(format!("`{name}`"));
                            names.push(name);
                        }
                    }
                    ValidationErrorKind::Type { .. } => {
                        if let Some(words) = self.resolve(error.schema_path().as_str()).map(type_words) {
                            expected.push(words);
                        }
                    }
                    ValidationErrorKind::OneOfNotValid { context } => {
                        for inner in context.iter().flatten() {
                            if let ValidationErrorKind::Constant { expected_value } = inner.kind() {
                                names.push(plain(expected_value));
                                expected.push(format!("`{}`", plain(expected_value)));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        // Named values first, then kinds of value, each once: "one of `a` or `b`",
        // not "text, `a`, text, `b`" (one branch per name, each also saying "text").
        let mut seen = BTreeSet::new();
        expected.retain(|e| seen.insert(e.clone()));
        let (named, kinds): (Vec<String>, Vec<String>) =
            expected.into_iter().partition(|e| e.starts_with('`'));
        let join = |items: &[String]| match items.len() {
            0 => String::new(),
            1 => items[0].clone(),
            n => format!("{} or {}", items[..n - 1].join(", "), items[n - 1]),
        };
        let kinds: Vec<String> = if named.is_empty() {
            kinds
        } else {
            // The names are texts already; "text" adds nothing.
            kinds.into_iter().filter(|k| k != "text").collect()
        };
        let expected = match (named.len(), kinds.is_empty()) {
            (0, true) => "a different value".to_string(),
            (0, false) => join(&kinds),
            (1 | 2, true) => join(&named),
            (_, true) => format!("one of {}", join(&named)),
            (_, false) => format!("one of {}, or {}", join(&named), join(&kinds)),
        };
        let mut problem = Problem::new(
            base,
            if names.is_empty() { "type" } else { "enum" },
            format!("{}expected {expected}, found {}", field_prefix(base), describe(value)),
        );
        if let Some(text) = value.as_str() {
            problem.hint = did_you_mean(text, names.iter().map(String::as_str));
        }
        out.push(problem);
    }

    /// The schema at a schema location, following `$ref`s.
    fn resolve(&self, location: &str) -> Option<&Value> {
        let location = location.trim_start_matches('#');
        let mut node = &self.schema;
        for raw in location.split('/').skip(1) {
            let segment = raw.replace("~1", "/").replace("~0", "~");
            node = match node {
                Value::Object(map) => match map.get(&segment) {
                    Some(next) => next,
                    None => self.follow_ref(node)?.get(&segment)?,
                },
                Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    fn follow_ref(&self, node: &Value) -> Option<&Value> {
        let target = node.get("$ref")?.as_str()?.strip_prefix('#')?;
        self.schema.pointer(target)
    }

    /// Whether the object schema at `location` is a union tagged by `type`.
    fn is_tagged(&self, location: &str) -> bool {
        !self.tag_values(location).is_empty()
    }

    /// The `type` values of a tagged union at `location`.
    fn tag_values(&self, location: &str) -> Vec<String> {
        let Some(schema) = self.resolve(location) else { return Vec::new() };
        let schema = self.follow_ref(schema).unwrap_or(schema);
        let Some(Value::Array(branches)) = schema.get("oneOf") else { return Vec::new() };
        branches
            .iter()
            .filter_map(|b| b.pointer("/properties/type/const").and_then(Value::as_str).map(str::to_string))
            .collect()
    }

    /// "step type" or "cron backend type", from the union's definition name.
    fn union_noun(&self, location: &str) -> String {
        let name = location.rsplit('/').next().unwrap_or_default();
        let words = match name {
            "Step" => "step",
            "CronBackend" => "cron backend",
            _ => "kind",
        };
        format!("{words} type")
    }

    /// Property names allowed on the object schema at `location` for this value,
    /// including the properties of the union branch its `type` selects.
    fn known_properties(&self, location: &str, value: &Value) -> Vec<String> {
        let Some(schema) = self.resolve(location) else { return Vec::new() };
        let schema = self.follow_ref(schema).unwrap_or(schema);
        let mut names: Vec<String> = property_names(schema);
        if let Some(Value::Array(branches)) = schema.get("oneOf") {
            let tag = value.get("type").and_then(Value::as_str);
            for branch in branches {
                if branch.pointer("/properties/type/const").and_then(Value::as_str) != tag {
                    continue;
                }
                names.extend(property_names(branch));
                if let Some(target) = self.follow_ref(branch) {
                    names.extend(property_names(target));
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }

    /// " in step 3" style context for messages about an object.
    fn within(&self, pointer: &str) -> String {
        let segments: Vec<&str> = pointer.split('/').skip(1).collect();
        match segments.as_slice() {
            [] => String::new(),
            [.., list, index] if index.parse::<usize>().is_ok() => {
                format!(" in item {} of `{list}`", index.parse::<usize>().unwrap_or(0) + 1)
            }
            [.., last] => format!(" in `{last}`"),
        }
    }
}

fn property_names(schema: &Value) -> Vec<String> {
    match schema.get("properties") {
        Some(Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

fn unknown_field(base: &str, key: &str, known: &[String], type_name: Option<&str>) -> Problem {
    let pointer = format!("{base}/{}", crate::load::yaml::escape_pointer(key));
    let owner = match type_name {
        Some(t) => {
            let article = if t.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
            format!(" for {article} `{t}` step")
        }
        None => String::new(),
    };
    let known_here: Vec<&str> = known.iter().map(String::as_str).filter(|k| *k != "type").collect();
    let hint = did_you_mean(key, known_here.iter().copied()).or_else(|| {
        (!known_here.is_empty() && known_here.len() <= 16)
            .then(|| format!("known fields: {}", known_here.join(", ")))
    });
    Problem {
        pointer,
        on_key: true,
        code: "unknown-field",
        message: format!("unknown field `{key}`{owner}"),
        hint,
    }
}

fn parent(location: &str) -> &str {
    match location.rfind('/') {
        Some(index) => &location[..index],
        None => "",
    }
}

fn first_sentence(text: &str) -> String {
    let flat = text.replace('\n', " ");
    let mut from = 0;
    while let Some(found) = flat[from..].find(". ") {
        let end = from + found;
        let before = &flat[..end];
        if !(before.ends_with("e.g") || before.ends_with("i.e")) {
            return flat[..=end].to_string();
        }
        from = end + 2;
    }
    flat
}

/// "`timeout`: " for a named field, "" for list items and the root.
fn field_prefix(pointer: &str) -> String {
    match pointer.rsplit('/').next() {
        Some(last) if !last.is_empty() && last.parse::<usize>().is_err() => {
            format!("`{}`: ", last.replace("~1", "/").replace("~0", "~"))
        }
        _ => String::new(),
    }
}

fn enum_names(options: &Value) -> Vec<String> {
    match options {
        Value::Array(items) => items.iter().map(plain).collect(),
        other => vec![plain(other)],
    }
}

/// A value as a user would write it.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// "a string", "a list or a map", from a schema's `type`.
fn type_words(schema_type: &Value) -> String {
    let word = |t: &str| match t {
        "string" => "text",
        "integer" => "a whole number",
        "number" => "a number",
        "boolean" => "`true` or `false`",
        "array" => "a list",
        "object" => "a map",
        "null" => "nothing",
        _ => "a value",
    };
    match schema_type {
        Value::String(t) => word(t).to_string(),
        Value::Array(types) => {
            let words: Vec<&str> = types.iter().filter_map(Value::as_str).map(word).collect();
            words.join(" or ")
        }
        _ => "a value".to_string(),
    }
}

/// How a found value is described in messages (it lives with the expression values,
/// so the steps use it without importing the loader).
pub(crate) use crate::expr::values::describe;

fn pattern_problem(base: &str, value: &Value, pattern: &str) -> Problem {
    let text = plain(value);
    let last = base.rsplit('/').next().unwrap_or_default();
    let (message, hint) = match pattern {
        r"^[a-z][a-z0-9_]*$" => (
            format!("{}`{text}` is not a valid identifier", field_prefix(base)),
            Some("use lower case letters, digits and `_`, starting with a letter".to_string()),
        ),
        r"^[a-z][a-z0-9-]*$" => (
            format!("{}`{text}` is not a valid lane id", field_prefix(base)),
            Some("use lower case letters, digits and `-`, starting with a letter".to_string()),
        ),
        r"^[a-z_][a-z0-9_]*$" => (
            format!("{}`{text}` is not a valid variable name", field_prefix(base)),
            Some("use lower case letters, digits and `_`".to_string()),
        ),
        r"^[A-Za-z_][A-Za-z0-9_]*$" => (
            format!("{}`{text}` is not a valid environment variable name", field_prefix(base)),
            Some("use letters, digits and `_`, not starting with a digit".to_string()),
        ),
        p if p.contains("[0-9a-fA-F]{8}-") => (
            format!("{}`{text}` is not a UUID", field_prefix(base)),
            Some("cron ids look like `6b09bed4-cfbe-4c35-bbee-2b66c5ef17aa`".to_string()),
        ),
        _ => (format!("`{last}`: `{text}` does not match the pattern `{pattern}`"), None),
    };
    Problem { pointer: base.to_string(), on_key: false, code: "pattern", message, hint }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(kind: FileKind, value: Value) -> Vec<Problem> {
        let value = value;
        checker(kind).check(&value)
    }

    #[test]
    fn valid_workflow_has_no_problems() {
        let wf = json!({"name": "x", "steps": [{"id": "a", "type": "set", "values": {"x": 1}}]});
        assert_eq!(problems(FileKind::Workflow, wf), vec![]);
    }

    #[test]
    fn unknown_step_field_is_one_problem_with_a_suggestion() {
        let wf = json!({"name": "x", "steps": [{"type": "exec", "argv": ["a"], "timout": "1s"}]});
        let p = problems(FileKind::Workflow, wf);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].pointer, "/steps/0/timout");
        assert!(p[0].on_key);
        assert_eq!(p[0].hint.as_deref(), Some("did you mean `timeout`?"));
    }

    #[test]
    fn unknown_step_type_names_the_alternatives() {
        let wf = json!({"name": "x", "steps": [{"type": "ftp", "url": "x"}]});
        let p = problems(FileKind::Workflow, wf);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].pointer, "/steps/0/type");
        assert!(
            p[0].message.starts_with("unknown step type `ftp`; expected one of `http`"),
            "{}",
            p[0].message
        );
    }

    #[test]
    fn error_inside_a_variant_is_reported_alone() {
        let wf = json!({"name": "x", "steps": [{"type": "http", "url": "x", "method": "FETCH", "decode": "json"}]});
        let p = problems(FileKind::Workflow, wf);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].pointer, "/steps/0/method");
        assert!(p[0].message.contains("expected one of `GET`"), "{}", p[0].message);
    }

    #[test]
    fn missing_variant_field() {
        let wf = json!({"name": "x", "steps": [{"type": "exec"}]});
        let p = problems(FileKind::Workflow, wf);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].message, "missing required field `argv` in item 1 of `steps`");
    }

    #[test]
    fn durations_are_explained() {
        let wf = json!({"name": "x", "timeout": 30, "steps": [{"type": "exec", "argv": ["a"], "timeout": "10 sec"}]});
        let p = problems(FileKind::Workflow, wf);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p.iter()
                .any(|p| p.pointer == "/timeout" && p.hint.as_deref() == Some("write `30s` for 30 seconds"))
        );
        assert!(
            p.iter()
                .any(|p| p.pointer == "/steps/0/timeout" && p.message.contains("invalid duration `10 sec`"))
        );
    }

    #[test]
    fn enum_typo_gets_a_suggestion() {
        let wf = json!({"name": "x", "steps": [{"type": "exec", "argv": ["a"], "on_error": "contnue"}]});
        let p = problems(FileKind::Workflow, wf);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].hint.as_deref(), Some("did you mean `continue`?"));
    }
}
