//! `runner schema`: print or write the JSON Schemas generated from the types.

use crate::cli::SchemaArgs;
use crate::cmd::Out;
use crate::error::Error;
use serde_json::{Map, Value};

use crate::model::FileKind;
use crate::model::duration::DURATION_PATTERN;

/// Run `runner schema`.
pub(crate) fn run(args: &SchemaArgs, out: &mut Out) -> Result<(), Error> {
    if let Some(dir) = &args.write {
        for kind in FileKind::ALL {
            let path = dir.join(kind.schema_file());
            if let Err(e) = crate::fsutil::write_atomic(&path, published_text(kind).as_bytes()) {
                return Err(Error::Internal(format!("cannot write {}: {e}", path.display())));
            }
            out.out(&format!("wrote {}\n", path.display()));
        }
        let path = dir.join(RUN_REPORT_FILE);
        if let Err(e) = crate::fsutil::write_atomic(&path, run_report_text().as_bytes()) {
            return Err(Error::Internal(format!("cannot write {}: {e}", path.display())));
        }
        out.out(&format!("wrote {}\n", path.display()));
        return Ok(());
    }
    match &args.kind {
        None => {
            let mut text = String::from("file kinds (runner schema KIND prints one):\n");
            for kind in FileKind::ALL {
                text.push_str(&format!("  {:<10} {}\n", kind.name(), kind.schema_file()));
            }
            text.push_str(&format!(
                "  {:<10} {RUN_REPORT_FILE} (the format of `runner run --report`)\n",
                "run-report"
            ));
            out.out(&text);
            Ok(())
        }
        Some(name) if name == "run-report" => {
            out.out(&run_report_text());
            Ok(())
        }
        Some(name) => match FileKind::from_name(name) {
            Some(kind) => {
                out.out(&published_text(kind));
                Ok(())
            }
            None => {
                let mut names: Vec<&str> = FileKind::ALL.iter().map(|k| k.name()).collect();
                names.push("run-report");
                Err(Error::Usage(format!(
                    "unknown file kind `{name}`; expected one of {}",
                    crate::diagnostics::one_of(&names)
                )))
            }
        },
    }
}

/// The committed file name of the run report schema.
pub(crate) const RUN_REPORT_FILE: &str = "run-report.schema.json";

/// The run report schema as committed.
pub(crate) fn run_report_text() -> String {
    let mut schema = crate::report::run_report::schema();
    portable(&mut schema, "run-report");
    pretty(&schema)
}

/// Where the committed schemas say they live (`$id`): a name, not a download address.
pub(crate) const ID_BASE: &str = "urn:runner:schema:";

/// `kind`'s schema as published (committed in `schemas/`, printed by `runner schema`):
/// the generated schema made portable with [`portable`].
pub(crate) fn published(kind: FileKind) -> Value {
    let mut schema = kind.schema();
    portable(&mut schema, kind.name());
    crate::load::layers::add_overlay_variant(&mut schema, kind);
    schema
}

/// [`published`] as committed: pretty JSON with a trailing newline.
pub(crate) fn published_text(kind: FileKind) -> String {
    pretty(&published(kind))
}

fn pretty(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Make a generated schema mean the same to every editor and validator, not only to
/// draft 2020-12 implementations with runner's own formats (runner's built-in checker
/// keeps the generated form, whose `duration` format gives better messages):
///
/// - an `$id` (`urn:runner:schema:<kind>`);
/// - no `format` outside the standard vocabulary: `duration` (whose standard meaning is
///   ISO 8601's `PT5S`, not `5s`) and schemars' `uint32`-style integer formats go; the
///   `pattern` and `minimum` next to them keep the same constraint;
/// - steps become one closed object per `type` (`additionalProperties: false`, the
///   common fields repeated in each) instead of the `unevaluatedProperties` that editors
///   without draft 2019-09 support (yaml-language-server 1.x) ignore, so a typo like
///   `timout:` is flagged everywhere;
/// - the duration pattern refuses zero too ([`NONZERO_DURATION_PATTERN`]);
/// - every tagged union's `type` constant gets its variant's description, and every
///   `description` a `markdownDescription` copy, which VS Code renders on hover.
pub(crate) fn portable(schema: &mut Value, name: &str) {
    if let Value::Object(map) = schema {
        let mut ordered = Map::new();
        if let Some(dialect) = map.remove("$schema") {
            ordered.insert("$schema".into(), dialect);
        }
        ordered.insert("$id".into(), Value::String(format!("{ID_BASE}{name}")));
        ordered.append(map);
        *map = ordered;
    }
    close_tagged_unions(schema);
    walk(schema);
}

/// [`DURATION_PATTERN`] that also refuses zero (`0s`), which runner's `duration`
/// format refuses: at least one number has a non-zero digit. The 7-day maximum is
/// left to runner.
pub(crate) const NONZERO_DURATION_PATTERN: &str =
    "^([0-9]+(ms|s|m|h|d))*[0-9]*[1-9][0-9]*(ms|s|m|h|d)([0-9]+(ms|s|m|h|d))*$";

/// Standard `format` values (JSON Schema 2020-12 and ajv-formats) that may stay.
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration-iso8601",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "uuid",
    "regex",
];

fn walk(node: &mut Value) {
    match node {
        Value::Object(map) => {
            let standard =
                map.get("format").and_then(Value::as_str).is_some_and(|f| STANDARD_FORMATS.contains(&f));
            if !standard {
                map.remove("format");
            }
            if map.get("pattern").and_then(Value::as_str) == Some(DURATION_PATTERN) {
                map.insert("pattern".into(), Value::String(NONZERO_DURATION_PATTERN.into()));
            }
            describe_tag(map);
            if let Some(Value::String(text)) = map.get("description")
                && !map.contains_key("markdownDescription")
            {
                let text = text.clone();
                map.insert("markdownDescription".into(), Value::String(text));
            }
            // Inside `properties` every key is a property name, not a keyword.
            for (key, value) in map.iter_mut() {
                if key == "properties" {
                    if let Value::Object(properties) = value {
                        properties.values_mut().for_each(walk);
                    }
                } else if !matches!(key.as_str(), "default" | "examples" | "const" | "enum") {
                    walk(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(walk),
        _ => {}
    }
}

/// A union branch `{properties: {type: {const: "http"}}, description: "…"}`: give the
/// `type` property the branch's description, so hovering `type: http` explains it.
fn describe_tag(map: &mut Map<String, Value>) {
    let Some(description) = map.get("description").and_then(Value::as_str).map(str::to_string) else {
        return;
    };
    let Some(Value::Object(tag)) = map.get_mut("properties").and_then(|p| p.get_mut("type")) else {
        return;
    };
    let Some(name) = tag.get("const").and_then(Value::as_str).map(str::to_string) else { return };
    tag.entry("description").or_insert_with(|| Value::String(format!("`{name}`: {description}")));
}

/// Rewrite every `$defs` entry of the shape schemars gives a flattened struct with a
/// tagged enum (common `properties`, `oneOf` of `$ref`+`type` const branches,
/// `unevaluatedProperties: false`) into a `oneOf` of closed objects, and drop the
/// variant definitions only those branches used.
fn close_tagged_unions(schema: &mut Value) {
    let Some(Value::Object(defs)) = schema.get("$defs").cloned() else { return };
    let mut inlined: Vec<String> = Vec::new();
    let mut rewritten: Vec<(String, Value)> = Vec::new();
    for (name, def) in &defs {
        if def.get("unevaluatedProperties") != Some(&Value::Bool(false)) {
            continue;
        }
        let Some(Value::Array(branches)) = def.get("oneOf") else { continue };
        let common = def.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
        let common_required: Vec<Value> =
            def.get("required").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut closed = Vec::new();
        for branch in branches {
            let target = branch
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/$defs/"))
                .map(str::to_string);
            let variant = target.as_ref().and_then(|t| defs.get(t));
            let mut properties = common.clone();
            if let Some(Value::Object(tag)) = branch.get("properties") {
                properties.extend(tag.clone());
            }
            if let Some(Value::Object(own)) = variant.and_then(|v| v.get("properties")) {
                properties.extend(own.clone());
            }
            let mut required = common_required.clone();
            for list in
                [branch.get("required"), variant.and_then(|v| v.get("required"))].into_iter().flatten()
            {
                for item in list.as_array().into_iter().flatten() {
                    if !required.contains(item) {
                        required.push(item.clone());
                    }
                }
            }
            let mut object = Map::new();
            object.insert("type".into(), Value::String("object".into()));
            if let Some(description) =
                branch.get("description").or_else(|| variant.and_then(|v| v.get("description")))
            {
                object.insert("description".into(), description.clone());
            }
            object.insert("properties".into(), Value::Object(properties));
            object.insert("required".into(), Value::Array(required));
            object.insert("additionalProperties".into(), Value::Bool(false));
            closed.push(Value::Object(object));
            inlined.extend(target);
        }
        let mut union = Map::new();
        union.insert("type".into(), Value::String("object".into()));
        if let Some(description) = def.get("description") {
            union.insert("description".into(), description.clone());
        }
        union.insert("oneOf".into(), Value::Array(closed));
        rewritten.push((name.clone(), Value::Object(union)));
    }
    if rewritten.is_empty() {
        return;
    }
    let Some(Value::Object(defs)) = schema.get_mut("$defs") else { return };
    for (name, union) in rewritten {
        defs.insert(name, union);
    }
    let text = serde_json::to_string(&*defs).unwrap_or_default();
    for name in inlined {
        // Drop a variant definition only when nothing else refers to it any more.
        let reference = format!("\"#/$defs/{name}\"");
        if !text.contains(&reference) {
            defs.shift_remove(&name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_portable_duration_pattern_matches_what_runner_accepts() {
        let re = regex::Regex::new(NONZERO_DURATION_PATTERN).expect("compiles");
        for text in ["30s", "1h30m", "250ms", "0s1ms", "10m", "01s", "7d"] {
            assert!(re.is_match(text), "{text}");
            assert!(crate::model::duration::parse_duration(text).is_ok(), "{text}");
        }
        for text in ["0s", "00m0s", "5", "s", "", "1x", "1.5s"] {
            assert!(!re.is_match(text), "{text}");
            assert!(crate::model::duration::parse_duration(text).is_err(), "{text}");
        }
    }

    #[test]
    fn published_schemas_are_closed_described_and_standard() {
        for kind in FileKind::ALL {
            let schema = published(kind);
            assert_eq!(schema["$id"], format!("{ID_BASE}{}", kind.name()));
            let text = serde_json::to_string(&schema).unwrap_or_default();
            assert!(!text.contains("unevaluatedProperties"), "{}", kind.name());
            assert!(!text.contains("\"format\""), "{}", kind.name());
            check_described(&schema, kind.name());
        }
        let workflow = published(FileKind::Workflow);
        let steps = workflow["$defs"]["Step"]["oneOf"].as_array().cloned().unwrap_or_default();
        let mut types: Vec<&str> =
            steps.iter().filter_map(|s| s["properties"]["type"]["const"].as_str()).collect();
        types.sort_unstable();
        assert_eq!(
            types,
            [
                "call",
                "cron",
                "emit",
                "exec",
                "fail",
                "for_each",
                "guard",
                "http",
                "kubernetes",
                "parallel",
                "render",
                "return",
                "set",
                "stages",
                "stop",
                "switch",
                "transition"
            ],
            "one closed object per step type"
        );
        for step in &steps {
            assert_eq!(step["additionalProperties"], false);
            for common in ["id", "when", "timeout", "retry", "on_error", "effect", "type"] {
                assert!(step["properties"].get(common).is_some(), "{common} in {step}");
            }
            let tag = &step["properties"]["type"];
            assert!(tag["const"].is_string() && tag["description"].is_string(), "{tag}");
            assert!(tag["markdownDescription"].is_string(), "{tag}");
        }
    }

    /// Every property has a description and a markdownDescription.
    fn check_described(node: &Value, at: &str) {
        match node {
            Value::Object(map) => {
                if let Some(Value::Object(properties)) = map.get("properties") {
                    for (name, property) in properties {
                        let place = format!("{at}/{name}");
                        assert!(property.get("description").is_some(), "{place} has no description");
                        assert!(property.get("markdownDescription").is_some(), "{place}");
                    }
                }
                for (key, value) in map {
                    check_described(value, &format!("{at}/{key}"));
                }
            }
            Value::Array(items) => items.iter().for_each(|v| check_described(v, at)),
            _ => {}
        }
    }
}
