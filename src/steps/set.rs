//! `set`: name values for later steps. Each value sees the ones before it by name, typed.

use serde_json::{Map, Value as Json};

use crate::expr::values::to_mj;
use crate::model::step::SetStep;
use crate::steps::api::{StepCall, StepResult};

/// Render the values in order into a child scope; the output is the map of them.
pub(crate) fn run(call: &StepCall<'_>, set: &SetStep) -> StepResult {
    let local = call.scope.child();
    let mut out = Map::new();
    for (name, value) in &set.values {
        match call.engine.eval().render_dyn(value, &local.context()) {
            Ok(v) => {
                local.set(name, to_mj(&v));
                out.insert(name.clone(), v);
            }
            Err(e) => return StepResult::failed(format!("values.{name}: {e}"), Json::Null),
        }
    }
    StepResult::ok(Json::Object(out))
}
