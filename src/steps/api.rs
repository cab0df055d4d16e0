//! What the step kinds share with the engine that runs them, defined below both: a
//! step's result, how a list of steps ended, the invocation a step runs in, the
//! [`StepCall`] every kind receives, and the [`Runtime`] the engine implements so the
//! kinds that run nested steps (switch, for_each, call, stages, parallel) call back
//! into it without importing it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use indexmap::IndexMap;
use minijinja::Value;
use serde_json::{Map, Value as Json};
use tokio_util::sync::CancellationToken;

use super::StepCtx;
use super::events::{Event, RunStatus, StepStatus};
use crate::expr::mask::Masker;
use crate::expr::scope::Scope;
use crate::expr::values::Evaluator;
use crate::model::step::Step;
use crate::plan::Plan;
use crate::plan::project::{Project, Unit};

/// Default time limit of a step attempt that has none.
pub(crate) const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// A boxed, sendable future (the recursion between steps and the engine goes
/// through these).
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The outcome of a whole run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunResult {
    /// How it ended.
    pub status: RunStatus,
    /// The process exit code.
    pub exit_code: i32,
    /// The workflow's outputs.
    pub outputs: Json,
    /// Why it failed.
    pub error: Option<String>,
}

/// How a list of steps ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Flow {
    /// Go on with the next step.
    Continue,
    /// A `stop` step: end the run with this code and these outputs.
    Stop { exit_code: i32, outputs: Option<Json>, message: Option<String> },
    /// A failure that ends the run.
    Fail { message: String, exit_code: i32, outputs: Option<Json> },
    /// Cancelled (signal or run timeout).
    Cancelled,
    /// A `return` step: end the enclosing stage, iteration or workflow with this value.
    Return(Json),
}

/// One invocation of a workflow (the main one or a `call`).
pub(crate) struct Invocation<'a> {
    pub(crate) unit: &'a Unit,
    pub(crate) dir: PathBuf,
    pub(crate) plan: bool,
    pub(crate) apis: IndexMap<String, super::http::ApiConfig>,
    pub(crate) cancel: CancellationToken,
}

/// What a step produced.
pub(crate) struct StepResult {
    pub(crate) status: StepStatus,
    pub(crate) output: Json,
    pub(crate) error: Option<String>,
    pub(crate) attempts: u32,
    /// Continue the run despite a failure (`on: {...: continue}`).
    pub(crate) proceed: bool,
}

impl StepResult {
    pub(crate) fn ok(output: Json) -> Self {
        StepResult { status: StepStatus::Ok, output, error: None, attempts: 1, proceed: false }
    }

    pub(crate) fn failed(error: impl Into<String>, output: Json) -> Self {
        StepResult {
            status: StepStatus::Failed,
            output,
            error: Some(error.into()),
            attempts: 1,
            proceed: false,
        }
    }

    pub(crate) fn planned() -> Self {
        StepResult {
            status: StepStatus::Planned,
            output: Json::Null,
            error: None,
            attempts: 0,
            proceed: false,
        }
    }
}

/// The `openclaw` cron backend's job states, read once per run and keyed by the
/// backend's program (a failed read is kept too, so it is not retried per lane).
pub(crate) type CronJobCache =
    tokio::sync::Mutex<HashMap<Vec<String>, Result<super::cron::JobStates, String>>>;

/// What the step kinds need from the engine that runs them. The engine implements
/// it; the kinds see only this.
pub(crate) trait Runtime: Send + Sync {
    /// Template evaluation (with its cache).
    fn eval(&self) -> &Evaluator;
    /// The secrets known so far (a copy).
    fn masker(&self) -> Masker;
    /// The secrets, for adding one found during the run.
    fn secrets(&self) -> &RwLock<Masker>;
    /// Send an event, with every secret masked.
    fn emit(&self, event: Event);
    /// An environment variable as the run sees it (unset and empty are the same).
    fn env_var(&self, name: &str) -> Option<String>;
    /// Fixtures or a recorder between the steps and the world.
    fn hooks(&self) -> Option<&dyn super::hooks::Hooks>;
    /// The shared HTTP clients.
    fn clients(&self) -> &super::http::Clients;
    /// The cron backend's job states, cached for the run.
    fn cron_jobs(&self) -> &CronJobCache;
    /// The loaded workflows.
    fn project(&self) -> &Project;
    /// What was decided about the project before running.
    fn plan(&self) -> &Plan;
    /// Run steps in order; returns how they ended and the last step's output.
    fn run_steps<'a>(
        &'a self,
        inv: &'a Invocation<'a>,
        steps: &'a [Step],
        scope: &'a Arc<Scope>,
        prefix: &'a str,
    ) -> BoxFuture<'a, (Flow, Json)>;
    /// Run one step with `when`, its timeout, events and `on_error`.
    fn run_step<'a>(
        &'a self,
        inv: &'a Invocation<'a>,
        step: &'a Step,
        scope: &'a Arc<Scope>,
        path: &'a str,
    ) -> BoxFuture<'a, (StepResult, Flow)>;
    /// Run a whole workflow (a `call`).
    fn invoke<'a>(
        &'a self,
        unit: &'a Unit,
        inputs: Map<String, Json>,
        plan: bool,
        main: bool,
        prefix: &'a str,
    ) -> BoxFuture<'a, RunResult>;
}

impl dyn Runtime + '_ {
    /// The context an external step runs with.
    pub(crate) fn ctx<'a>(
        &'a self,
        inv: &'a Invocation<'a>,
        context: &'a Value,
        masker: &'a Masker,
        timeout: Duration,
    ) -> StepCtx<'a> {
        StepCtx {
            eval: self.eval(),
            context,
            masker,
            timeout,
            cancel: &inv.cancel,
            dir: &inv.dir,
            hooks: self.hooks(),
        }
    }

    /// Report what a write would have done (dry run or `plan`).
    pub(crate) fn planned(&self, step: &Step, path: &str, action: Json) -> StepResult {
        let kind = step.kind.type_name().to_string();
        let name = step.name.clone().or_else(|| step.id.clone()).unwrap_or_else(|| kind.clone());
        self.emit(Event::StepPlanned { path: path.to_string(), name, kind, action: action.clone() });
        // Later steps (and a plan-mode caller) can see what would have been done.
        StepResult { output: action, ..StepResult::planned() }
    }

    /// Render each value of a map against the context; `None` for an empty map.
    pub(crate) fn render_map(
        &self,
        map: &IndexMap<String, Json>,
        context: &Value,
    ) -> Result<Option<Json>, String> {
        if map.is_empty() {
            return Ok(None);
        }
        let mut out = Map::new();
        for (name, value) in map {
            out.insert(
                name.clone(),
                self.eval().render_dyn(value, context).map_err(|e| format!("{name}: {e}"))?,
            );
        }
        Ok(Some(Json::Object(out)))
    }
}

/// What every step kind receives from the engine loop: the runtime (template
/// evaluation, the masked event sink, clients, the project, nested runs), the
/// invocation, the step (its compiled form), its scope, its path in the run and the
/// scope's template context.
#[derive(Clone, Copy)]
pub(crate) struct StepCall<'a> {
    pub(crate) engine: &'a dyn Runtime,
    pub(crate) inv: &'a Invocation<'a>,
    pub(crate) step: &'a Step,
    pub(crate) scope: &'a Arc<Scope>,
    pub(crate) path: &'a str,
    pub(crate) context: &'a Value,
}

/// A value as an exit code (0–63, at least `min`).
pub(crate) fn exit_code_of(value: &Json, min: i64) -> Result<i32, String> {
    let number = match value {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match number {
        Some(n) if (min..=63).contains(&n) => Ok(n as i32),
        Some(n) => Err(format!("exit code {n} is outside {min}–63")),
        None => Err(format!("expected an exit code, found {}", crate::expr::values::describe(value))),
    }
}

/// A duration in whole milliseconds (saturating).
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code_of(&json!(3), 0), Ok(3));
        assert_eq!(exit_code_of(&json!("2"), 0), Ok(2));
        assert!(exit_code_of(&json!(64), 0).is_err());
        assert!(exit_code_of(&json!(0), 1).is_err());
    }
}
