//! `call`: run another workflow file (a sibling of the caller) with typed inputs and
//! take its outputs as this step's output.

use serde_json::{Map, Value as Json};

use crate::load::sibling;
use crate::model::step::CallStep;
use crate::plan::inputs::typed_inputs;
use crate::steps::api::{StepCall, StepResult};
use crate::steps::events::RunStatus;

/// Check the inputs against the callee's declarations and invoke it (in plan mode when
/// the caller is, or when the step asks for it).
pub(crate) async fn run(call: &StepCall<'_>, step: &CallStep) -> StepResult {
    let StepCall { engine, inv, path, context, .. } = *call;
    let target = sibling(&inv.unit.path, &step.workflow);
    let Some(unit) = engine.project().unit(&target) else {
        return StepResult::failed(format!("workflow `{}` was not loaded", step.workflow), Json::Null);
    };
    let given = match engine.render_map(&step.inputs, context) {
        Ok(given) => given.unwrap_or(Json::Object(Map::new())),
        Err(e) => return StepResult::failed(e, Json::Null),
    };
    let Json::Object(given) = given else {
        return StepResult::failed("inputs must be a map", Json::Null);
    };
    let inputs = match typed_inputs(&unit.workflow, unit.registry.as_deref(), given) {
        Ok(inputs) => inputs,
        Err(e) => return StepResult::failed(e, Json::Null),
    };
    let result = engine.invoke(unit, inputs, inv.plan || step.plan, false, path).await;
    match result.status {
        RunStatus::Ok | RunStatus::Skipped => StepResult::ok(result.outputs),
        RunStatus::Cancelled => StepResult::failed("cancelled", result.outputs),
        RunStatus::Failed => StepResult::failed(
            result.error.unwrap_or_else(|| format!("`{}` failed", step.workflow)),
            result.outputs,
        ),
    }
}
