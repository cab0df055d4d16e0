//! Control-flow kinds of the workflow language v2: first-match `stages` with one error
//! mapping, the scoped `return`, and the `parallel` block. They run nested steps
//! through the engine's [`Runtime`].

use std::sync::Arc;

use futures_util::StreamExt as _;
use futures_util::future::{FutureExt as _, Shared};
use minijinja::Value;
use serde_json::{Value as Json, json};

use super::api::{BoxFuture, Flow, Invocation, Runtime, StepCall, StepResult};
use super::events::StepStatus;
use crate::expr::scope::Scope;
use crate::expr::values::to_mj;
use crate::model::step::{ParallelStep, ReturnStep, Stage, StagesStep, Step};

/// A step started early; awaited (or dropped) when its stage is reached.
type Prefetched<'a> = Shared<BoxFuture<'a, Arc<(StepResult, Flow)>>>;

/// How one stage ended.
enum StageEnd {
    /// It decided nothing: go on with the next stage.
    Undecided,
    /// It decided with this result.
    Decided(Json),
    /// One of its steps failed: `step` is the failed step's id, `message` its error.
    Failed { step: Option<String>, message: String, flow: Flow },
    /// The run ends (a `stop` step, a cancellation).
    Ends(Flow),
}

/// `stages`: the kind's entry point.
pub(crate) async fn run(call: &StepCall<'_>, stages: &StagesStep, flow: &mut Option<Flow>) -> StepResult {
    call.engine.run_stages(call.inv, stages, call.scope, call.path, flow).await
}

/// `return`: the kind's entry point.
pub(crate) fn run_return(call: &StepCall<'_>, ret: &ReturnStep, flow: &mut Option<Flow>) -> StepResult {
    call.engine.run_return(ret, call.context, flow)
}

/// `parallel`: the kind's entry point.
pub(crate) async fn run_parallel(
    call: &StepCall<'_>,
    parallel: &ParallelStep,
    flow: &mut Option<Flow>,
) -> StepResult {
    call.engine.run_parallel(call.inv, parallel, call.scope, call.path, flow).await
}

impl dyn Runtime + '_ {
    /// Run stages in order until one decides; map a failed stage through `catch`.
    pub(crate) async fn run_stages(
        &self,
        inv: &Invocation<'_>,
        stages: &StagesStep,
        scope: &Arc<Scope>,
        path: &str,
        flow: &mut Option<Flow>,
    ) -> StepResult {
        // One scope for all stages: a later stage sees the steps of earlier ones.
        let shared = scope.child();
        let step_paths: Vec<Vec<String>> = stages
            .stages
            .iter()
            .map(|stage| {
                let stage_path = format!("{path}.{}", stage.id);
                stage.steps.iter().enumerate().map(|(i, s)| step_path(&stage_path, i, s)).collect()
            })
            .collect();
        // Independent reads of prefetched stages start now; a stage that is reached
        // awaits them in place, one that is not drops them (cancelling what is in flight).
        // A prefetched step runs as a copy named "... (prefetched)", so the progress
        // view, the JSON events and the run report show what started early.
        // `prefetch_when` (evaluated once, here) may switch prefetching off for this run.
        let prefetch_on = match &stages.prefetch_when {
            None => true,
            Some(when) => match self.eval().truthy(when, &scope.context()) {
                Ok(on) => on,
                Err(e) => return StepResult::failed(format!("prefetch_when: {e}"), Json::Null),
            },
        };
        let early_steps: Vec<Vec<Option<Step>>> = stages
            .stages
            .iter()
            .enumerate()
            .map(|(index, stage)| {
                stage
                    .steps
                    .iter()
                    .map(|step| {
                        (prefetch_on && index > 0 && stage.prefetch && self.plan().step(step).prefetchable)
                            .then(|| {
                                let label = step.name.clone().or_else(|| step.id.clone()).unwrap_or_default();
                                Step { name: Some(format!("{label} (prefetched)")), ..step.clone() }
                            })
                    })
                    .collect()
            })
            .collect();
        let mut prefetched: Vec<Vec<Option<Prefetched<'_>>>> = Vec::with_capacity(stages.stages.len());
        for (index, steps) in early_steps.iter().enumerate() {
            let mut slots = Vec::with_capacity(steps.len());
            for (early, step_path) in steps.iter().zip(&step_paths[index]) {
                slots.push(early.as_ref().map(|step| {
                    let run: BoxFuture<'_, Arc<(StepResult, Flow)>> =
                        Box::pin(self.run_step(inv, step, &shared, step_path).map(Arc::new));
                    run.shared()
                }));
            }
            prefetched.push(slots);
        }
        let all: Vec<Prefetched<'_>> = prefetched.iter().flatten().flatten().cloned().collect();
        if all.is_empty() {
            return self.decide(inv, stages, &shared, &step_paths, &prefetched, flow).await;
        }
        let driver = async move {
            futures_util::future::join_all(all).await;
            std::future::pending::<()>().await;
        };
        tokio::select! {
            biased;
            result = self.decide(inv, stages, &shared, &step_paths, &prefetched, flow) => result,
            () = driver => StepResult::failed("prefetch ended unexpectedly", Json::Null),
        }
    }

    /// The first-match loop over the stages.
    async fn decide(
        &self,
        inv: &Invocation<'_>,
        stages: &StagesStep,
        shared: &Arc<Scope>,
        step_paths: &[Vec<String>],
        prefetched: &[Vec<Option<Prefetched<'_>>>],
        flow: &mut Option<Flow>,
    ) -> StepResult {
        for (index, stage) in stages.stages.iter().enumerate() {
            match self.run_stage(inv, stage, shared, &step_paths[index], &prefetched[index]).await {
                StageEnd::Undecided => continue,
                StageEnd::Decided(result) => return StepResult::ok(result),
                StageEnd::Ends(end) => {
                    *flow = Some(end);
                    return StepResult::ok(Json::Null);
                }
                StageEnd::Failed { step, message, flow: failure } => {
                    let Some(catch) = &stages.catch else {
                        *flow = Some(failure);
                        return StepResult::failed(message, Json::Null);
                    };
                    let context = shared.child();
                    context
                        .set("error", to_mj(&json!({"stage": stage.id, "step": step, "message": message})));
                    return match self.eval().render_dyn(catch, &context.context()) {
                        Ok(result) => StepResult::ok(result),
                        Err(e) => StepResult::failed(format!("catch: {e}"), Json::Null),
                    };
                }
            }
        }
        match &stages.default {
            Some(default) => match self.eval().render_dyn(default, &shared.context()) {
                Ok(result) => StepResult::ok(result),
                Err(e) => StepResult::failed(format!("default: {e}"), Json::Null),
            },
            None => StepResult::ok(Json::Null),
        }
    }

    async fn run_stage(
        &self,
        inv: &Invocation<'_>,
        stage: &Stage,
        scope: &Arc<Scope>,
        step_paths: &[String],
        prefetched: &[Option<Prefetched<'_>>],
    ) -> StageEnd {
        let path = stage.id.as_str();
        let inner = self.run_stage_steps(inv, stage, scope, step_paths, prefetched).await;
        match inner {
            Flow::Continue => match &stage.result {
                None => StageEnd::Undecided,
                Some(template) => match self.eval().render_dyn(template, &scope.context()) {
                    Ok(Json::Null) => StageEnd::Undecided,
                    Ok(result) => StageEnd::Decided(result),
                    Err(e) => {
                        let message = format!("result: {e}");
                        let flow = Flow::Fail {
                            message: format!("stage `{path}` failed: {message}"),
                            exit_code: 1,
                            outputs: None,
                        };
                        StageEnd::Failed { step: None, message, flow }
                    }
                },
            },
            Flow::Return(Json::Null) => StageEnd::Undecided,
            Flow::Return(result) => StageEnd::Decided(result),
            Flow::Fail { message, exit_code, outputs } => {
                let (step, own) = failed_step(&stage.steps, scope).unzip();
                StageEnd::Failed {
                    step,
                    message: own.unwrap_or_else(|| message.clone()),
                    flow: Flow::Fail { message, exit_code, outputs },
                }
            }
            other => StageEnd::Ends(other),
        }
    }

    /// The stage's steps in order, as `run_steps` runs them, taking a prefetched
    /// step's result instead of running it again.
    async fn run_stage_steps(
        &self,
        inv: &Invocation<'_>,
        stage: &Stage,
        scope: &Arc<Scope>,
        step_paths: &[String],
        prefetched: &[Option<Prefetched<'_>>],
    ) -> Flow {
        for ((step, step_path), early) in stage.steps.iter().zip(step_paths).zip(prefetched) {
            if inv.cancel.is_cancelled() {
                return Flow::Cancelled;
            }
            let (result, step_flow) = match early {
                Some(run) => {
                    let done = run.clone().await;
                    let (result, step_flow) = &*done;
                    let copy = StepResult {
                        status: result.status,
                        output: result.output.clone(),
                        error: result.error.clone(),
                        attempts: result.attempts,
                        proceed: result.proceed,
                    };
                    (copy, step_flow.clone())
                }
                None => self.run_step(inv, step, scope, step_path).await,
            };
            if let Some(id) = &step.id {
                scope.set_step(
                    id,
                    to_mj(&json!({"output": result.output, "status": result.status.name(), "error": result.error})),
                );
            }
            if step_flow != Flow::Continue {
                return step_flow;
            }
        }
        Flow::Continue
    }

    /// `return`: hand the value to the enclosing stage, iteration or workflow.
    pub(crate) fn run_return(
        &self,
        ret: &ReturnStep,
        context: &Value,
        flow: &mut Option<Flow>,
    ) -> StepResult {
        let value = match ret.value.as_ref().map(|v| self.eval().render_dyn(v, context)).transpose() {
            Ok(value) => value.unwrap_or(Json::Null),
            Err(e) => return StepResult::failed(format!("value: {e}"), Json::Null),
        };
        *flow = Some(Flow::Return(value.clone()));
        StepResult::ok(value)
    }

    /// `parallel`: run the steps together; record them in order once all have ended.
    pub(crate) async fn run_parallel(
        &self,
        inv: &Invocation<'_>,
        parallel: &ParallelStep,
        scope: &Arc<Scope>,
        path: &str,
        flow: &mut Option<Flow>,
    ) -> StepResult {
        let paths: Vec<String> =
            parallel.steps.iter().enumerate().map(|(index, step)| step_path(path, index, step)).collect();
        let limit = parallel.limit.map(|l| l as usize).unwrap_or(parallel.steps.len()).max(1);
        // Built eagerly: a lazy iterator of borrowing closures is not `Send` here.
        let mut runs = Vec::with_capacity(paths.len());
        for (step, step_path) in parallel.steps.iter().zip(&paths) {
            runs.push(self.run_step(inv, step, scope, step_path));
        }
        let finished: Vec<(StepResult, Flow)> =
            futures_util::stream::iter(runs).buffered(limit).collect().await;
        let mut outputs = Vec::with_capacity(finished.len());
        let mut end: Option<(Flow, Option<String>)> = None;
        for (step, (result, step_flow)) in parallel.steps.iter().zip(finished) {
            if let Some(id) = &step.id {
                scope.set_step(
                    id,
                    to_mj(&json!({"output": result.output, "status": result.status.name(), "error": result.error})),
                );
            }
            if end.is_none() && step_flow != Flow::Continue {
                let error =
                    (result.status == StepStatus::Failed).then(|| result.error.clone().unwrap_or_default());
                end = Some((step_flow, error));
            }
            outputs.push(result.output);
        }
        match end {
            None => StepResult::ok(Json::Array(outputs)),
            Some((end, error)) => {
                *flow = Some(end);
                match error {
                    Some(error) => StepResult::failed(error, Json::Array(outputs)),
                    None => StepResult::ok(Json::Array(outputs)),
                }
            }
        }
    }
}

/// A child step's path below `parent` (as `run_steps` names it): its id, else `<type>#<position>`.
fn step_path(parent: &str, index: usize, step: &Step) -> String {
    let label = step.id.clone().unwrap_or_else(|| format!("{}#{}", step.kind.type_name(), index + 1));
    format!("{parent}.{label}")
}

/// The step of a stage that failed and stopped it: the last one with a result.
fn failed_step(steps: &[Step], scope: &Arc<Scope>) -> Option<(String, String)> {
    let last =
        steps.iter().rev().filter_map(|s| s.id.as_ref()).find_map(|id| scope.step(id).map(|r| (id, r)))?;
    let (id, result) = last;
    let json = crate::expr::values::to_json(&result);
    if json.get("status").and_then(Json::as_str) != Some("failed") {
        return None;
    }
    let error = json.get("error").and_then(Json::as_str).unwrap_or_default().to_string();
    Some((id.clone(), error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::compiled::prefetchable;

    fn writes(step: &Step) -> bool {
        step.writes()
    }

    fn step(value: serde_json::Value) -> Step {
        serde_json::from_value(value).unwrap_or_else(|e| panic!("step: {e}"))
    }

    #[test]
    fn only_independent_reads_are_prefetched() {
        assert!(prefetchable(&step(json!({"type": "http", "api": "d", "path": "/q/{{ inputs.lane }}"}))));
        assert!(!prefetchable(&step(json!({"type": "http", "api": "d", "path": "/q", "method": "POST"}))));
        assert!(!prefetchable(&step(json!({"type": "http", "api": "d", "path": "/q/{{ steps.a.output }}"}))));
        assert!(!prefetchable(&step(
            json!({"type": "http", "api": "d", "path": "/q", "when": "steps.a.status == 'ok'"})
        )));
        assert!(!prefetchable(&step(json!({"type": "exec", "argv": ["gh", "pr", "list"]}))));
        assert!(prefetchable(&step(json!({"type": "exec", "argv": ["gh", "pr", "list"], "effect": "read"}))));
        assert!(!prefetchable(&step(json!({"type": "set", "values": {"a": 1}}))));
    }

    #[test]
    fn writes_are_found_inside_blocks() {
        assert!(writes(&step(json!({"type": "http", "api": "d", "path": "/c", "method": "POST"}))));
        assert!(!writes(&step(json!({"type": "http", "api": "d", "path": "/c"}))));
        assert!(writes(&step(json!({"type": "exec", "argv": ["rm", "x"]}))));
        let nested = json!({"type": "switch", "cases": [{"when": "true", "steps": [{"type": "cron", "lane": "local", "enabled": true}]}]});
        assert!(writes(&step(nested)));
        assert!(!writes(&step(json!({"type": "call", "workflow": "p.yaml", "plan": true}))));
        assert!(writes(&step(json!({"type": "call", "workflow": "p.yaml"}))));
    }
}
