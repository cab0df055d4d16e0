//! `stop`: end the run early with an exit code, optional outputs and a message.

use serde_json::{Value as Json, json};

use crate::model::step::StopStep;
use crate::steps::api::{Flow, StepCall, StepResult, exit_code_of};
use crate::steps::events::Event;

/// Render the message, the exit code and the outputs; the run ends through `flow`.
pub(crate) fn run(call: &StepCall<'_>, stop: &StopStep, flow: &mut Option<Flow>) -> StepResult {
    let engine = call.engine;
    let context = call.context;
    let message = match stop.message.as_ref().map(|m| engine.eval().render_text(m, context)).transpose() {
        Ok(m) => m,
        Err(e) => return StepResult::failed(format!("message: {e}"), Json::Null),
    };
    let exit_code = match stop.exit_code.as_ref() {
        None => 0,
        Some(code) => match engine.eval().render_dyn(code, context).map(|v| exit_code_of(&v, 0)) {
            Ok(Ok(code)) => code,
            Ok(Err(e)) | Err(e) => {
                return StepResult::failed(format!("exit_code: {e}"), Json::Null);
            }
        },
    };
    let outputs = match engine.render_map(&stop.outputs, context) {
        Ok(o) => o,
        Err(e) => return StepResult::failed(e, Json::Null),
    };
    if let Some(text) = &message {
        engine.emit(Event::Emit { stream: "stderr".into(), text: text.clone() });
    }
    *flow = Some(Flow::Stop { exit_code, outputs, message: message.clone() });
    StepResult::ok(json!({"message": message, "exit_code": exit_code}))
}
