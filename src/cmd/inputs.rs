//! `--input KEY=VALUE` texts (`@path` reads a file, `@-` standard input) converted to
//! the declared input types, then checked like every other input.

use std::path::Path;

use serde_json::{Map, Value as Json};

use crate::model::lanes::LaneRegistry;
use crate::model::workflow::{InputType, Workflow};
use crate::plan::inputs::typed_inputs;

/// Convert `--input KEY=VALUE` texts to typed inputs and check them.
pub(crate) fn parse_cli_inputs(
    workflow: &Workflow,
    registry: Option<&LaneRegistry>,
    raw: &[(String, String)],
) -> Result<Map<String, Json>, String> {
    let mut given = Map::new();
    for (key, text) in raw {
        let Some(def) = workflow.inputs.get(key) else {
            let names: Vec<&str> = workflow.inputs.keys().map(String::as_str).collect();
            let hint = crate::diagnostics::did_you_mean(key, names.iter().copied())
                .map(|h| format!(" ({h})"))
                .unwrap_or_else(|| {
                    format!(" (inputs: {})", if names.is_empty() { "none".into() } else { names.join(", ") })
                });
            return Err(format!("`{}` has no input `{key}`{hint}", workflow.name));
        };
        let text = read_input_text(text).map_err(|e| format!("--input {key}: {e}"))?;
        let value = match def.ty {
            InputType::String | InputType::Lane => Json::String(text),
            InputType::Integer => text
                .trim()
                .parse::<i64>()
                .map(Json::from)
                .map_err(|_| format!("--input {key}: `{text}` is not a whole number"))?,
            InputType::Number => text
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Json::Number)
                .ok_or_else(|| format!("--input {key}: `{text}` is not a number"))?,
            InputType::Boolean => match text.trim() {
                "true" => Json::Bool(true),
                "false" => Json::Bool(false),
                other => return Err(format!("--input {key}: expected `true` or `false`, found `{other}`")),
            },
            InputType::List | InputType::Map => {
                serde_json::from_str(&text).map_err(|e| format!("--input {key}: not valid JSON: {e}"))?
            }
        };
        given.insert(key.clone(), value);
    }
    typed_inputs(workflow, registry, given)
}

/// `@-` reads standard input, `@path` a file; anything else is the value itself.
fn read_input_text(text: &str) -> Result<String, String> {
    match text.strip_prefix('@') {
        Some("-") => crate::fsutil::read_capped(std::io::stdin(), crate::fsutil::MAX_READ_BYTES)
            .and_then(crate::fsutil::utf8)
            .map_err(|e| format!("cannot read standard input: {e}")),
        Some(path) if !path.is_empty() => {
            crate::fsutil::read_text(Path::new(path), crate::fsutil::MAX_READ_BYTES)
                .map_err(|e| format!("cannot read {path}: {e}"))
        }
        _ => Ok(text.to_string()),
    }
}
