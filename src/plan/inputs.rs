//! A workflow's inputs checked against its declarations (types, allowed values, lane
//! ids), defaults filled in. Used for the main workflow and for every `call`.

use serde_json::{Map, Value as Json};

use crate::model::lanes::LaneRegistry;
use crate::model::workflow::{InputType, Workflow};

/// Check typed input values against the declarations, filling defaults.
pub(crate) fn typed_inputs(
    workflow: &Workflow,
    registry: Option<&LaneRegistry>,
    mut given: Map<String, Json>,
) -> Result<Map<String, Json>, String> {
    let mut out = Map::new();
    for key in given.keys() {
        if !workflow.inputs.contains_key(key) {
            return Err(format!("`{}` has no input `{key}`", workflow.name));
        }
    }
    for (key, def) in &workflow.inputs {
        let value = match given.remove(key).or_else(|| def.default.clone()) {
            Some(v) => v,
            None => {
                return Err(format!(
                    "input `{key}` is required{}",
                    def.description.as_ref().map(|d| format!(" ({d})")).unwrap_or_default()
                ));
            }
        };
        if !def.ty.accepts(&value) {
            return Err(format!(
                "input `{key}` must be of type {}, found {}",
                def.ty.name(),
                crate::expr::values::describe(&value)
            ));
        }
        if let Some(allowed) = &def.allowed
            && !allowed.contains(&value)
        {
            let names: Vec<String> = allowed
                .iter()
                .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                .collect();
            return Err(format!("input `{key}` must be one of {}", crate::diagnostics::one_of(&names)));
        }
        if def.ty == InputType::Lane
            && let (Some(registry), Some(id)) = (registry, value.as_str())
            && registry.lane(id).is_none()
        {
            let ids = registry.ids();
            let hint = crate::diagnostics::did_you_mean(id, ids.iter().copied())
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            return Err(format!(
                "input `{key}`: no lane `{id}`; lanes: {}{hint}",
                crate::diagnostics::one_of(&ids)
            ));
        }
        out.insert(key.clone(), value);
    }
    Ok(out)
}
