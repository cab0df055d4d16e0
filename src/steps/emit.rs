//! `emit`: write a text or a JSON value to standard output or standard error (as an
//! event; the report prints it).

use serde_json::Value as Json;

use crate::model::step::{EmitStep, Stream};
use crate::steps::api::{StepCall, StepResult};
use crate::steps::events::Event;

/// Render the text (or the JSON value) and send it as an `emit` event.
pub(crate) fn run(call: &StepCall<'_>, emit: &EmitStep) -> StepResult {
    let eval = &call.engine.eval();
    let (text, output) = match (&emit.text, &emit.json) {
        (Some(text), _) => match eval.render_text(text, call.context) {
            Ok(t) => (t.clone(), Json::String(t)),
            Err(e) => return StepResult::failed(format!("text: {e}"), Json::Null),
        },
        (None, Some(value)) => match eval.render_dyn(value, call.context) {
            Ok(v) => {
                let text = if emit.pretty.unwrap_or(true) {
                    serde_json::to_string_pretty(&v)
                } else {
                    serde_json::to_string(&v)
                };
                (text.unwrap_or_default(), v)
            }
            Err(e) => return StepResult::failed(format!("json: {e}"), Json::Null),
        },
        (None, None) => (String::new(), Json::Null),
    };
    let stream = match emit.to {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    };
    call.engine.emit(Event::Emit { stream: stream.into(), text });
    StepResult::ok(output)
}
