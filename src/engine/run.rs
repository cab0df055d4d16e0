//! Running a workflow: inputs, secrets, environment and vars, the concurrency lock,
//! every step kind with timeouts, retries and error policies, `finally`, outputs and
//! the exit code. Everything observable goes out as masked [`Event`]s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Map, Value as Json, json};
use tokio_util::sync::CancellationToken;

use super::events::{Event, RunStatus, Sink, StepStatus};
use super::project::{Project, Unit};
use crate::expr::mask::Masker;
use crate::expr::scope::Scope;
use crate::expr::values::{Evaluator, to_mj};
use crate::model::step::{OnError, Step, StepKind};
use crate::plan::Plan;
use crate::steps;
pub(crate) use crate::steps::api::RunResult;
pub(crate) use crate::steps::api::{BoxFuture, Flow, Invocation, StepCall, StepResult, exit_code_of, millis};
use crate::steps::api::{CronJobCache, Runtime};

/// How long `finally` steps may run after a signal cancelled the run; a second
/// signal ends them at once.
pub(crate) const FINALLY_GRACE: Duration = Duration::from_secs(10);

/// How a run is carried out.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// Report writes instead of doing them.
    pub dry_run: bool,
    /// Where concurrency locks live.
    pub state_dir: PathBuf,
    /// The environment the run sees; `None` is the process environment. Tests give a
    /// fixed one so they never depend on the machine.
    pub env: Option<std::collections::HashMap<String, String>>,
    /// Fixtures or a recorder between the steps and the world.
    pub hooks: Option<Arc<dyn steps::hooks::Hooks>>,
}

/// Why the run was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelReason {
    /// SIGINT.
    Interrupt,
    /// SIGTERM.
    Terminate,
}

/// Shared state of one `runner run`.
pub(crate) struct Engine {
    pub(crate) masker: RwLock<Masker>,
    sink: Arc<dyn Sink>,
    /// Cancelled on SIGINT/SIGTERM.
    pub cancel: CancellationToken,
    pub(crate) cancel_reason: RwLock<Option<CancelReason>>,
    /// Cancelled by a second signal: ends `finally` steps too.
    pub(crate) cancel_finally: CancellationToken,
    pub(crate) clients: steps::http::Clients,
    pub(crate) options: Options,
    /// The compiled project.
    pub(crate) plan: Plan,
    /// The `openclaw` cron backend's job states, read once per run and keyed by the
    /// backend's program (a failed read is kept too, so it is not retried per lane).
    pub(crate) cron_jobs: CronJobCache,
}

impl Engine {
    /// The loaded workflows.
    pub(crate) fn project(&self) -> &Project {
        self.plan.project()
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("options", &self.options).finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine for a compiled project.
    pub(crate) fn new(plan: Plan, options: Options, sink: Arc<dyn Sink>) -> Arc<Engine> {
        Arc::new(Engine {
            masker: RwLock::new(Masker::default()),
            sink,
            cancel: CancellationToken::new(),
            cancel_reason: RwLock::new(None),
            cancel_finally: CancellationToken::new(),
            clients: steps::http::Clients::new(),
            options,
            plan,
            cron_jobs: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Cancel the run (from a signal handler). The first call cancels the steps and
    /// lets `finally` run (for at most [`FINALLY_GRACE`]); a second one ends `finally`
    /// too.
    pub(crate) fn cancel(&self, reason: CancelReason) {
        if let Ok(mut slot) = self.cancel_reason.write() {
            slot.get_or_insert(reason);
        }
        if self.cancel.is_cancelled() {
            self.cancel_finally.cancel();
        }
        self.cancel.cancel();
    }

    /// An environment variable as the run sees it (unset and empty are the same).
    pub(crate) fn env_var(&self, name: &str) -> Option<String> {
        match &self.options.env {
            Some(env) => env.get(name).cloned(),
            None => std::env::var(name).ok(),
        }
        .filter(|v| !v.is_empty())
    }

    /// The secrets known so far, for masking text written outside the event stream.
    pub(crate) fn masker(&self) -> Masker {
        self.masker.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// Send an event, with every secret masked.
    pub(crate) fn emit(&self, event: Event) {
        let masker = self.masker();
        if masker.is_empty() {
            self.sink.event(&event);
            return;
        }
        let masked = serde_json::to_value(&event)
            .ok()
            .map(|v| masker.value(&v))
            .and_then(|v| serde_json::from_value::<Event>(v).ok())
            .unwrap_or(event);
        self.sink.event(&masked);
    }

    /// Run the main workflow with typed inputs (tests, replays).
    pub(crate) async fn run_main_typed(
        self: &Arc<Self>,
        main: &Path,
        inputs: Map<String, Json>,
    ) -> RunResult {
        self.run_main_with(main, |unit| {
            crate::plan::inputs::typed_inputs(&unit.workflow, unit.registry.as_deref(), inputs)
        })
        .await
    }

    /// Run the main workflow with inputs made by `inputs` from its loaded unit (the
    /// command parses `--input` texts against the declarations this way).
    pub(crate) async fn run_main_with(
        self: &Arc<Self>,
        main: &Path,
        inputs: impl FnOnce(&Unit) -> Result<Map<String, Json>, String>,
    ) -> RunResult {
        let started = Instant::now();
        let mut result = match self.plan.project().unit(main) {
            None => RunResult {
                status: RunStatus::Failed,
                exit_code: crate::exit::SOFTWARE,
                outputs: Json::Null,
                error: Some("the workflow was not loaded".into()),
            },
            Some(unit) => match inputs(unit) {
                Ok(inputs) => self.invoke(unit, inputs, self.options.dry_run, true, "").await,
                Err(message) => RunResult {
                    status: RunStatus::Failed,
                    exit_code: crate::exit::USAGE,
                    outputs: Json::Null,
                    error: Some(message),
                },
            },
        };
        if result.status == RunStatus::Cancelled {
            let reason = self.cancel_reason.read().ok().and_then(|r| *r);
            result.exit_code = match reason {
                Some(CancelReason::Terminate) => crate::exit::TERMINATED,
                _ => crate::exit::INTERRUPTED,
            };
        }
        self.emit(Event::RunFinished {
            status: result.status,
            exit_code: result.exit_code,
            duration_ms: millis(started.elapsed()),
            outputs: result.outputs.clone(),
            error: result.error.clone(),
        });
        result
    }

    /// Run steps in order; returns how they ended and the last step's output.
    pub(crate) fn run_steps<'a>(
        self: &'a Arc<Self>,
        inv: &'a Invocation<'a>,
        steps: &'a [Step],
        scope: &'a Arc<Scope>,
        prefix: &'a str,
    ) -> BoxFuture<'a, (Flow, Json)> {
        Box::pin(async move {
            let mut last = Json::Null;
            for (index, step) in steps.iter().enumerate() {
                if inv.cancel.is_cancelled() {
                    return (Flow::Cancelled, last);
                }
                let label =
                    step.id.clone().unwrap_or_else(|| format!("{}#{}", step.kind.type_name(), index + 1));
                let path = if prefix.is_empty() { label } else { format!("{prefix}.{label}") };
                let (result, flow) = self.run_step(inv, step, scope, &path).await;
                if let Some(id) = &step.id {
                    scope.set_step(
                        id,
                        to_mj(&json!({"output": result.output, "status": result.status.name(), "error": result.error})),
                    );
                }
                if result.status != StepStatus::Skipped {
                    last = result.output;
                }
                if flow != Flow::Continue {
                    return (flow, last);
                }
            }
            (Flow::Continue, last)
        })
    }

    /// Run one step: `when`, the kind, the timeout, events, and what its result
    /// means for the run.
    pub(crate) fn run_step<'a>(
        self: &'a Arc<Self>,
        inv: &'a Invocation<'a>,
        step: &'a Step,
        scope: &'a Arc<Scope>,
        path: &'a str,
    ) -> BoxFuture<'a, (StepResult, Flow)> {
        Box::pin(async move {
            let kind = step.kind.type_name().to_string();
            let name = step.name.clone().or_else(|| step.id.clone()).unwrap_or_else(|| kind.clone());
            let context = scope.context();
            if let Some(when) = &step.when {
                match self.plan.eval().truthy(when, &context) {
                    Ok(true) => {}
                    Ok(false) => {
                        self.emit(Event::StepFinished {
                            path: path.to_string(),
                            name,
                            kind,
                            status: StepStatus::Skipped,
                            duration_ms: 0,
                            attempts: 0,
                            summary: "when is false".into(),
                            error: None,
                        });
                        let result = StepResult {
                            status: StepStatus::Skipped,
                            output: Json::Null,
                            error: None,
                            attempts: 0,
                            proceed: false,
                        };
                        return (result, Flow::Continue);
                    }
                    Err(e) => {
                        let result = StepResult::failed(format!("when: {e}"), Json::Null);
                        return self.finish(step, path, name, kind, Instant::now(), result);
                    }
                }
            }
            self.emit(Event::StepStarted { path: path.to_string(), name: name.clone(), kind: kind.clone() });
            let started = Instant::now();
            let mut flow_override: Option<Flow> = None;
            let body = self.run_kind(inv, step, scope, path, &mut flow_override);
            let result = match step.timeout {
                // External steps apply their timeout to each attempt themselves.
                Some(limit) if !is_external(&step.kind) => {
                    match tokio::time::timeout(limit.get(), body).await {
                        Ok(result) => result,
                        Err(_) => StepResult::failed(format!("timed out after {limit}"), Json::Null),
                    }
                }
                _ => body.await,
            };
            if inv.cancel.is_cancelled() && result.status == StepStatus::Failed {
                let (result, _) = self.finish(step, path, name, kind, started, result);
                return (result, Flow::Cancelled);
            }
            let (result, flow) = self.finish(step, path, name, kind, started, result);
            let flow = match flow_override {
                None => flow,
                // A failure inside a branch or loop: this step's own `on_error` decides.
                Some(Flow::Fail { .. })
                    if !matches!(step.kind, StepKind::Fail(_))
                        && step.on_error == Some(OnError::Continue) =>
                {
                    Flow::Continue
                }
                Some(flow) => flow,
            };
            (result, flow)
        })
    }

    fn finish(
        &self,
        step: &Step,
        path: &str,
        name: String,
        kind: String,
        started: Instant,
        result: StepResult,
    ) -> (StepResult, Flow) {
        let masker = self.masker();
        let summary = summarize(&result);
        self.emit(Event::StepFinished {
            path: path.to_string(),
            name,
            kind,
            status: result.status,
            duration_ms: millis(started.elapsed()),
            attempts: result.attempts,
            summary,
            error: result.error.clone(),
        });
        let flow = match (&result.status, step.on_error) {
            (StepStatus::Failed, _) if result.proceed => Flow::Continue,
            (StepStatus::Failed, Some(OnError::Continue)) => Flow::Continue,
            (StepStatus::Failed, _) => Flow::Fail {
                message: masker
                    .text(&format!("step `{path}` failed: {}", result.error.clone().unwrap_or_default())),
                exit_code: 1,
                outputs: None,
            },
            _ => Flow::Continue,
        };
        (result, flow)
    }

    /// Execute the step's kind (each kind lives in its own `steps::<kind>` module
    /// behind the same call: the [`StepCall`], the compiled step, and — for kinds that
    /// can end the run or their block — the `flow` slot).
    fn run_kind<'a>(
        self: &'a Arc<Self>,
        inv: &'a Invocation<'a>,
        step: &'a Step,
        scope: &'a Arc<Scope>,
        path: &'a str,
        flow: &'a mut Option<Flow>,
    ) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let context = scope.context();
            let call = StepCall { engine: self, inv, step, scope, path, context: &context };
            match &step.kind {
                StepKind::Set(set) => steps::set::run(&call, set),
                StepKind::Emit(emit) => steps::emit::run(&call, emit),
                StepKind::Stop(stop) => steps::stop::run(&call, stop, flow),
                StepKind::Fail(fail) => steps::fail::run(&call, fail, flow),
                StepKind::Switch(switch) => steps::switch::run(&call, switch, flow).await,
                StepKind::ForEach(each) => steps::for_each::run(&call, each, flow).await,
                StepKind::Call(called) => steps::call::run(&call, called).await,
                StepKind::Render(render) => steps::render::run(&call, render),
                StepKind::Guard(guard) => steps::guard::run(&call, guard),
                StepKind::Http(http) => steps::http::run(&call, http).await,
                StepKind::Exec(exec) => steps::exec::run(&call, exec).await,
                StepKind::Cron(cron) => steps::cron::run(&call, cron).await,
                StepKind::Transition(transition) => steps::transition::run(&call, transition),
                StepKind::Stages(stages) => steps::stages::run(&call, stages, flow).await,
                StepKind::Return(ret) => steps::stages::run_return(&call, ret, flow),
                StepKind::Parallel(parallel) => steps::stages::run_parallel(&call, parallel, flow).await,
                StepKind::Kubernetes(k8s) => steps::kubernetes::run(&call, k8s).await,
            }
        })
    }
}

fn is_external(kind: &StepKind) -> bool {
    matches!(kind, StepKind::Http(_) | StepKind::Exec(_) | StepKind::Cron(_) | StepKind::Kubernetes(_))
}

fn summarize(result: &StepResult) -> String {
    match result.status {
        StepStatus::Failed => result.error.clone().unwrap_or_default(),
        StepStatus::Planned => "planned (dry run)".into(),
        StepStatus::Skipped => "skipped".into(),
        StepStatus::Ok => short(&result.output),
    }
}

/// A short one-line rendering of a value for progress output.
fn short(value: &Json) -> String {
    let text = match value {
        Json::Null => return String::new(),
        Json::String(s) => s.clone(),
        Json::Object(map) if map.contains_key("status") && map.contains_key("body") => {
            format!("HTTP {}", map.get("status").cloned().unwrap_or(Json::Null))
        }
        Json::Object(map) if map.contains_key("exit_code") => {
            format!("exit {}", map.get("exit_code").cloned().unwrap_or(Json::Null))
        }
        other => other.to_string(),
    };
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > 80 {
        format!("{}…", line.chars().take(79).collect::<String>())
    } else {
        line.to_string()
    }
}

/// The engine as the step kinds see it.
impl Runtime for Arc<Engine> {
    fn eval(&self) -> &Evaluator {
        self.plan.eval()
    }

    fn masker(&self) -> Masker {
        Engine::masker(self)
    }

    fn secrets(&self) -> &RwLock<Masker> {
        &self.masker
    }

    fn emit(&self, event: Event) {
        Engine::emit(self, event);
    }

    fn env_var(&self, name: &str) -> Option<String> {
        Engine::env_var(self, name)
    }

    fn hooks(&self) -> Option<&dyn steps::hooks::Hooks> {
        self.options.hooks.as_deref()
    }

    fn clients(&self) -> &steps::http::Clients {
        &self.clients
    }

    fn cron_jobs(&self) -> &CronJobCache {
        &self.cron_jobs
    }

    fn project(&self) -> &Project {
        Engine::project(self)
    }

    fn plan(&self) -> &Plan {
        &self.plan
    }

    fn run_steps<'a>(
        &'a self,
        inv: &'a Invocation<'a>,
        steps: &'a [Step],
        scope: &'a Arc<Scope>,
        prefix: &'a str,
    ) -> BoxFuture<'a, (Flow, Json)> {
        Engine::run_steps(self, inv, steps, scope, prefix)
    }

    fn run_step<'a>(
        &'a self,
        inv: &'a Invocation<'a>,
        step: &'a Step,
        scope: &'a Arc<Scope>,
        path: &'a str,
    ) -> BoxFuture<'a, (StepResult, Flow)> {
        Engine::run_step(self, inv, step, scope, path)
    }

    fn invoke<'a>(
        &'a self,
        unit: &'a Unit,
        inputs: Map<String, Json>,
        plan: bool,
        main: bool,
        prefix: &'a str,
    ) -> BoxFuture<'a, RunResult> {
        Engine::invoke(self, unit, inputs, plan, main, prefix)
    }
}
