//! `fail`: end the run as failed with a message, an exit code and optional outputs.

use serde_json::Value as Json;

use crate::model::step::FailStep;
use crate::steps::api::{Flow, StepCall, StepResult, exit_code_of};

/// Render what can be rendered (a broken message or code still fails the run) and end
/// the run through `flow`.
pub(crate) fn run(call: &StepCall<'_>, fail: &FailStep, flow: &mut Option<Flow>) -> StepResult {
    let engine = call.engine;
    let context = call.context;
    let message = match engine.eval().render_text(&fail.message, context) {
        Ok(m) => m,
        Err(e) => format!("(message could not be rendered: {e})"),
    };
    let exit_code = match fail.exit_code.as_ref() {
        None => 1,
        Some(code) => match engine.eval().render_dyn(code, context).map(|v| exit_code_of(&v, 1)) {
            Ok(Ok(code)) => code,
            Ok(Err(_)) | Err(_) => 1,
        },
    };
    let outputs = engine.render_map(&fail.outputs, context).unwrap_or(None);
    *flow = Some(Flow::Fail { message: message.clone(), exit_code, outputs });
    StepResult::failed(message, Json::Null)
}
