//! `for_each`: run steps once per item of a list, up to `parallel` at a time, with an
//! optional per-item `output` and an early exit (`until`).

use futures_util::StreamExt as _;
use serde_json::{Value as Json, json};

use crate::expr::values::{to_json, to_mj};
use crate::model::step::ForEachStep;
use crate::steps::api::{Flow, StepCall, StepResult};

/// Evaluate the items and run the iterations; the output is the list of their outputs.
pub(crate) async fn run(call: &StepCall<'_>, each: &ForEachStep, flow: &mut Option<Flow>) -> StepResult {
    let StepCall { engine, inv, scope, path, .. } = *call;
    let items = match engine.eval().eval(&each.items, &scope.context()) {
        Ok(v) => to_json(&v),
        Err(e) => return StepResult::failed(format!("items: {e}"), Json::Null),
    };
    let items = match items {
        Json::Array(items) => items,
        Json::Null => Vec::new(),
        other => {
            return StepResult::failed(
                format!("items must be a list, found {}", crate::expr::values::describe(&other)),
                Json::Null,
            );
        }
    };
    let variable = each.as_name.clone().unwrap_or_else(|| "item".to_string());
    let parallel = match crate::steps::width::resolve(engine.eval(), each.parallel.as_ref(), &scope.context())
    {
        Ok(width) => width,
        Err(e) => return StepResult::failed(format!("parallel: {e}"), Json::Null),
    };
    let length = items.len();
    let iterations = items.into_iter().enumerate().map(|(index, item)| {
        let child = scope.child();
        child.set(&variable, to_mj(&item));
        child.set(
            "loop",
            to_mj(&json!({
                "index": index + 1, "index0": index, "first": index == 0,
                "last": index + 1 == length, "length": length,
            })),
        );
        let iteration_path = format!("{path}[{index}]");
        async move {
            let (inner, last) = engine.run_steps(inv, &each.steps, &child, &iteration_path).await;
            let output = match (&inner, &each.output) {
                // A `return` ends this iteration with its value.
                (Flow::Return(value), _) => Ok(value.clone()),
                (Flow::Continue, Some(template)) => engine
                    .eval()
                    .render_dyn(template, &child.context())
                    .map_err(|e| format!("item {index}: output: {e}")),
                _ => Ok(last),
            };
            let inner = if let Flow::Return(_) = inner { Flow::Continue } else { inner };
            (index, inner, output)
        }
    });
    let mut stream = futures_util::stream::iter(iterations).buffered(parallel);
    let mut results = Vec::with_capacity(length);
    while let Some((index, inner, output)) = stream.next().await {
        match inner {
            Flow::Continue => match output {
                Ok(value) => {
                    let done = match &each.until {
                        Some(until) => {
                            let check = scope.child();
                            check.set("result", to_mj(&value));
                            match engine.eval().truthy(until, &check.context()) {
                                Ok(done) => done,
                                Err(e) => {
                                    return StepResult::failed(
                                        format!("item {index}: until: {e}"),
                                        Json::Array(results),
                                    );
                                }
                            }
                        }
                        None => false,
                    };
                    results.push(value);
                    if done {
                        // Early exit: dropping the stream cancels the items in flight.
                        drop(stream);
                        return StepResult::ok(Json::Array(results));
                    }
                }
                Err(e) => return StepResult::failed(e, Json::Array(results)),
            },
            Flow::Fail { message, exit_code, outputs } => {
                // Stop starting new items; dropping the stream cancels those in flight.
                drop(stream);
                *flow = Some(Flow::Fail { message: message.clone(), exit_code, outputs });
                return StepResult::failed(format!("item {index}: {message}"), Json::Array(results));
            }
            other => {
                drop(stream);
                *flow = Some(other);
                return StepResult::ok(Json::Array(results));
            }
        }
    }
    StepResult::ok(Json::Array(results))
}
