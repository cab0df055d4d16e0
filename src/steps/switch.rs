//! `switch`: run the steps of the first case whose `when` is true, else the default.

use std::sync::Arc;

use serde_json::Value as Json;

use crate::expr::scope::Scope;
use crate::model::step::SwitchStep;
use crate::steps::api::{Flow, StepCall, StepResult};

/// Pick the first true case (or the default) and run its steps in a child scope.
pub(crate) async fn run(call: &StepCall<'_>, switch: &SwitchStep, flow: &mut Option<Flow>) -> StepResult {
    let StepCall { engine, inv, scope, path, context, .. } = *call;
    for (index, case) in switch.cases.iter().enumerate() {
        match engine.eval().truthy(&case.when, context) {
            Ok(false) => continue,
            Ok(true) => {
                let child = scope.child();
                let (inner, last) =
                    engine.run_steps(inv, &case.steps, &child, &format!("{path}[{index}]")).await;
                return branch_result(call, inner, last, case.output.as_ref(), &child, flow);
            }
            Err(e) => {
                return StepResult::failed(format!("cases[{index}].when: {e}"), Json::Null);
            }
        }
    }
    match &switch.default {
        Some(default) => {
            let child = scope.child();
            let (inner, last) =
                engine.run_steps(inv, &default.steps, &child, &format!("{path}[default]")).await;
            branch_result(call, inner, last, default.output.as_ref(), &child, flow)
        }
        None => StepResult::ok(Json::Null),
    }
}

/// What a branch's steps mean for the `switch` step: its output (the branch's
/// `output` template or its last step's), or the flow that ends the run.
fn branch_result(
    call: &StepCall<'_>,
    inner: Flow,
    last: Json,
    output: Option<&Json>,
    scope: &Arc<Scope>,
    flow: &mut Option<Flow>,
) -> StepResult {
    match inner {
        Flow::Continue => match output {
            Some(template) => match call.engine.eval().render_dyn(template, &scope.context()) {
                Ok(v) => StepResult::ok(v),
                Err(e) => StepResult::failed(format!("output: {e}"), Json::Null),
            },
            None => StepResult::ok(last),
        },
        Flow::Fail { message, exit_code, outputs } => {
            // A failure inside the branch was already reported on its step; the
            // branch step fails with it and the run ends.
            *flow = Some(Flow::Fail { message: message.clone(), exit_code, outputs });
            StepResult::failed(message, Json::Null)
        }
        other => {
            *flow = Some(other);
            StepResult::ok(last)
        }
    }
}
