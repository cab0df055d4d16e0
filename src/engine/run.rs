//! Running a workflow: inputs, secrets, environment and vars, the concurrency lock,
//! every step kind with timeouts, retries and error policies, `finally`, outputs and
//! the exit code. Everything observable goes out as masked [`Event`]s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use minijinja::Value;
use serde_json::{Map, Value as Json, json};
use tokio_util::sync::CancellationToken;

use super::events::{Event, RunStatus, Sink, StepStatus};
use super::lock;
use super::mask::Masker;
use super::project::{Project, Unit};
use super::scope::Scope;
use super::values::{Evaluator, to_mj};
use crate::model::step::{OnError, Step, StepKind};
use crate::model::workflow::ConcurrencyPolicy;
use crate::steps::{self, Outcome, Retry, StepCtx};

/// Default time limit of a step attempt that has none.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `finally` steps may run after a signal cancelled the run; a second
/// signal ends them at once.
pub const FINALLY_GRACE: Duration = Duration::from_secs(10);

/// How a run is carried out.
#[derive(Debug, Clone, Default)]
pub struct Options {
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
pub enum CancelReason {
    /// SIGINT.
    Interrupt,
    /// SIGTERM.
    Terminate,
}

/// The outcome of a whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    /// How it ended.
    pub status: RunStatus,
    /// The process exit code.
    pub exit_code: i32,
    /// The workflow's outputs.
    pub outputs: Json,
    /// Why it failed.
    pub error: Option<String>,
}

/// Shared state of one `runner run`.
pub struct Engine {
    pub(crate) eval: Evaluator,
    masker: RwLock<Masker>,
    sink: Arc<dyn Sink>,
    /// Cancelled on SIGINT/SIGTERM.
    pub cancel: CancellationToken,
    cancel_reason: RwLock<Option<CancelReason>>,
    /// Cancelled by a second signal: ends `finally` steps too.
    cancel_finally: CancellationToken,
    pub(crate) clients: steps::http::Clients,
    pub(crate) options: Options,
    project: Project,
    /// The `openclaw` cron backend's job states, read once per run and keyed by the
    /// backend's program (a failed read is kept too, so it is not retried per lane).
    pub(crate) cron_jobs: tokio::sync::Mutex<HashMap<String, Result<steps::cron::JobStates, String>>>,
}

impl Engine {
    /// The loaded workflows.
    pub fn project(&self) -> &Project {
        &self.project
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("options", &self.options).finish_non_exhaustive()
    }
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
    pub(crate) apis: IndexMap<String, steps::http::ApiConfig>,
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

    fn planned() -> Self {
        StepResult {
            status: StepStatus::Planned,
            output: Json::Null,
            error: None,
            attempts: 0,
            proceed: false,
        }
    }
}

/// What every step kind receives from the engine loop: the engine (template
/// evaluation, the masked event sink, clients, the project), the invocation, the step
/// (its compiled form), its scope, its path in the run and the scope's template context.
#[derive(Clone, Copy)]
pub(crate) struct StepCall<'a> {
    pub(crate) engine: &'a Arc<Engine>,
    pub(crate) inv: &'a Invocation<'a>,
    pub(crate) step: &'a Step,
    pub(crate) scope: &'a Arc<Scope>,
    pub(crate) path: &'a str,
    pub(crate) context: &'a Value,
}

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

impl Engine {
    /// An engine for a loaded project.
    pub fn new(project: Project, options: Options, sink: Arc<dyn Sink>) -> Arc<Engine> {
        Arc::new(Engine {
            eval: Evaluator::default(),
            masker: RwLock::new(Masker::default()),
            sink,
            cancel: CancellationToken::new(),
            cancel_reason: RwLock::new(None),
            cancel_finally: CancellationToken::new(),
            clients: steps::http::Clients::new(),
            options,
            project,
            cron_jobs: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Cancel the run (from a signal handler). The first call cancels the steps and
    /// lets `finally` run (for at most [`FINALLY_GRACE`]); a second one ends `finally`
    /// too.
    pub fn cancel(&self, reason: CancelReason) {
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
    pub fn masker(&self) -> Masker {
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
    pub async fn run_main_typed(self: &Arc<Self>, main: &Path, inputs: Map<String, Json>) -> RunResult {
        self.run_main_with(main, |unit| {
            crate::plan::inputs::typed_inputs(&unit.workflow, unit.registry.as_deref(), inputs)
        })
        .await
    }

    /// Run the main workflow with inputs made by `inputs` from its loaded unit (the
    /// command parses `--input` texts against the declarations this way).
    pub async fn run_main_with(
        self: &Arc<Self>,
        main: &Path,
        inputs: impl FnOnce(&Unit) -> Result<Map<String, Json>, String>,
    ) -> RunResult {
        let started = Instant::now();
        let mut result = match self.project.unit(main) {
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
                Some(CancelReason::Terminate) => 143,
                _ => 130,
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

    /// Run one workflow invocation to its end, `finally` included.
    pub(crate) fn invoke<'a>(
        self: &'a Arc<Self>,
        unit: &'a Unit,
        inputs: Map<String, Json>,
        plan: bool,
        main: bool,
        prefix: &'a str,
    ) -> BoxFuture<'a, RunResult> {
        Box::pin(async move {
            let workflow = &unit.workflow;
            let scope = Scope::root();
            scope.set("inputs", to_mj(&Json::Object(inputs)));
            let mut env_values = Map::new();
            for (name, def) in &workflow.env {
                let value = self.env_var(name).or_else(|| def.default.clone());
                env_values.insert(name.clone(), value.map(Json::String).unwrap_or(Json::Null));
            }
            scope.set("env", to_mj(&Json::Object(env_values)));
            let mut secrets = Map::new();
            for (name, def) in &workflow.secrets {
                match self.env_var(&def.env) {
                    Some(value) => {
                        if let Ok(mut masker) = self.masker.write() {
                            masker.add(&value);
                        }
                        secrets.insert(name.clone(), Json::String(value));
                    }
                    None if def.optional => {
                        secrets.insert(name.clone(), Json::Null);
                    }
                    None => {
                        return config_error(format!(
                            "secret `{name}` needs the environment variable {} (it is unset or empty)",
                            def.env
                        ));
                    }
                }
            }
            scope.set("secrets", to_mj(&Json::Object(secrets)));
            {
                let hooks = self.options.hooks.clone();
                let search = self.env_var("PATH");
                self.eval.add_global(
                    "which",
                    Value::from_function(move |name: &str| {
                        match hooks.as_ref().and_then(|h| h.which(name)) {
                            Some(true) => Value::from(name),
                            Some(false) => Value::from(()),
                            None => crate::template::collections::which_in(
                                name,
                                search.as_deref().map(std::ffi::OsStr::new),
                            ),
                        }
                    }),
                );
            }
            if let Some(registry) = &unit.registry {
                scope.set("lanes", to_mj(&serde_json::to_value(&registry.lanes).unwrap_or(Json::Null)));
                let lanes = registry.clone();
                self.eval.add_global(
                    "get_lane",
                    Value::from_function(move |id: &str| -> Result<Value, minijinja::Error> {
                        match lanes.lane(id) {
                            Some(lane) => Ok(to_mj(&serde_json::to_value(lane).unwrap_or(Json::Null))),
                            None => Err(minijinja::Error::new(
                                minijinja::ErrorKind::InvalidOperation,
                                format!("no lane `{id}` in the lane registry"),
                            )),
                        }
                    }),
                );
            }
            if let Some(roles) =
                unit.roles.clone().or_else(|| unit.lifecycle.as_ref().and_then(|(_, r)| r.clone()))
            {
                self.eval.add_global(
                    "select_level",
                    Value::from_function(
                        move |role: &str,
                              title: &str,
                              body: Option<&str>,
                              labels: Option<Vec<String>>|
                              -> Result<Value, minijinja::Error> {
                            match crate::lifecycle::select_level_in(
                                &roles,
                                role,
                                title,
                                body.unwrap_or_default(),
                                &labels.unwrap_or_default(),
                            ) {
                                Some(chosen) => {
                                    Ok(to_mj(&serde_json::to_value(chosen).unwrap_or(Json::Null)))
                                }
                                None => Err(minijinja::Error::new(
                                    minijinja::ErrorKind::InvalidOperation,
                                    format!("no role `{role}` in the roles file"),
                                )),
                            }
                        },
                    ),
                );
            }
            if let Some((lifecycle, _)) = &unit.lifecycle {
                scope.set("lifecycle", to_mj(&serde_json::to_value(&**lifecycle).unwrap_or(Json::Null)));
            }
            if let Some(roles) =
                unit.roles.clone().or_else(|| unit.lifecycle.as_ref().and_then(|(_, r)| r.clone()))
            {
                scope.set("roles", to_mj(&serde_json::to_value(&roles.roles).unwrap_or(Json::Null)));
            }
            let mut vars = Map::new();
            scope.set("vars", to_mj(&Json::Object(vars.clone())));
            for (name, value) in &workflow.vars {
                match self.eval.render_dyn(value, &scope.context()) {
                    Ok(v) => {
                        vars.insert(name.clone(), v);
                        scope.set("vars", to_mj(&Json::Object(vars.clone())));
                    }
                    Err(e) => return config_error(format!("vars.{name}: {e}")),
                }
            }
            let mut apis = IndexMap::new();
            for (name, def) in &workflow.apis {
                match steps::http::ApiConfig::render(name, def, &self.eval, &scope.context()) {
                    Ok(api) => {
                        apis.insert(name.clone(), api);
                    }
                    Err(e) => return config_error(format!("apis.{name}: {e}")),
                }
            }
            // The lock: only runs that write take it; a dry run or plan-mode call never
            // blocks, and is never blocked by, a real run.
            let _guard = match (&workflow.concurrency, plan) {
                (Some(concurrency), false) => {
                    let key = match self.eval.render_text(&concurrency.key, &scope.context()) {
                        Ok(key) => key,
                        Err(e) => return config_error(format!("concurrency.key: {e}")),
                    };
                    match self.take_lock(&key, concurrency.policy, concurrency.wait_timeout).await {
                        Ok(guard) => Some(guard),
                        Err(result) => return *result,
                    }
                }
                _ => None,
            };
            let cancel = self.cancel.child_token();
            let invocation = Invocation {
                unit,
                dir: unit.path.parent().map(Path::to_path_buf).unwrap_or_default(),
                plan,
                apis,
                cancel: cancel.clone(),
            };
            if main {
                self.emit(Event::RunStarted {
                    workflow: workflow.name.clone(),
                    file: crate::load::display(&unit.path),
                    dry_run: plan,
                });
            }
            let timed_out = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let timer = workflow.timeout.map(|limit| {
                let cancel = cancel.clone();
                let timed_out = timed_out.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(limit.get()).await;
                    timed_out.store(true, std::sync::atomic::Ordering::SeqCst);
                    cancel.cancel();
                })
            });
            let (flow, _) = self.run_steps(&invocation, &workflow.steps, &scope, prefix).await;
            if let Some(timer) = timer {
                timer.abort();
            }
            let timed_out = timed_out.load(std::sync::atomic::Ordering::SeqCst);
            let (mut status, mut error) = match &flow {
                Flow::Continue | Flow::Stop { .. } | Flow::Return(_) => (RunStatus::Ok, None),
                Flow::Fail { message, .. } => (RunStatus::Failed, Some(message.clone())),
                Flow::Cancelled if timed_out => (
                    RunStatus::Failed,
                    Some(format!(
                        "the run timed out after {}",
                        workflow.timeout.map(|t| t.to_string()).unwrap_or_default()
                    )),
                ),
                Flow::Cancelled => (RunStatus::Cancelled, Some("cancelled by a signal".to_string())),
            };
            // `finally` always runs, with its own token: a cancelled run still reports.
            // After a signal it gets FINALLY_GRACE, and a second signal ends it.
            if !workflow.finally.is_empty() {
                scope.set("run", to_mj(&json!({"status": status.name(), "error": error})));
                let finally_cancel = self.cancel_finally.child_token();
                let grace = (status == RunStatus::Cancelled).then(|| {
                    let token = finally_cancel.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(FINALLY_GRACE).await;
                        token.cancel();
                    })
                });
                let finally_invocation = Invocation { cancel: finally_cancel, ..invocation };
                let (finally_flow, _) =
                    self.run_steps(&finally_invocation, &workflow.finally, &scope, "finally").await;
                if let Some(grace) = grace {
                    grace.abort();
                }
                if let Flow::Fail { message, .. } = &finally_flow
                    && status == RunStatus::Ok
                {
                    status = RunStatus::Failed;
                    error = Some(message.clone());
                }
            }
            let end_context = scope.context();
            let outputs = match &flow {
                Flow::Stop { outputs: Some(outputs), .. }
                | Flow::Fail { outputs: Some(outputs), .. }
                | Flow::Return(outputs @ Json::Object(_)) => outputs.clone(),
                _ => {
                    let mut out = Map::new();
                    for (name, value) in &workflow.outputs {
                        match self.eval.render_dyn(value, &end_context) {
                            Ok(v) => {
                                out.insert(name.clone(), v);
                            }
                            Err(e) if status == RunStatus::Ok => {
                                status = RunStatus::Failed;
                                error = Some(format!("outputs.{name}: {e}"));
                            }
                            Err(_) => {
                                out.insert(name.clone(), Json::Null);
                            }
                        }
                    }
                    Json::Object(out)
                }
            };
            let exit_code = match (&flow, status) {
                (_, RunStatus::Cancelled) => 130,
                (Flow::Stop { exit_code, .. }, RunStatus::Ok) => *exit_code,
                (Flow::Fail { exit_code, .. }, _) => *exit_code,
                (_, RunStatus::Failed) => 1,
                _ => match &workflow.exit_code {
                    None => 0,
                    Some(code) => match self.eval.render_dyn(code, &end_context).map(|v| exit_code_of(&v, 0))
                    {
                        Ok(Ok(code)) => code,
                        Ok(Err(e)) | Err(e) => {
                            status = RunStatus::Failed;
                            error = Some(format!("exit_code: {e}"));
                            1
                        }
                    },
                },
            };
            let masker = self.masker();
            RunResult {
                status,
                exit_code,
                outputs: masker.value(&outputs),
                error: error.map(|e| masker.text(&e)),
            }
        })
    }

    async fn take_lock(
        &self,
        key: &str,
        policy: ConcurrencyPolicy,
        wait: Option<crate::model::Duration>,
    ) -> Result<lock::LockGuard, Box<RunResult>> {
        let state = &self.options.state_dir;
        let io_error = |e: std::io::Error| {
            Box::new(RunResult {
                status: RunStatus::Failed,
                exit_code: crate::exit::SOFTWARE,
                outputs: Json::Null,
                error: Some(format!("cannot use the lock directory {}: {e}", state.display())),
            })
        };
        if let Some(guard) = lock::try_lock(state, key).map_err(io_error)? {
            return Ok(guard);
        }
        match policy {
            ConcurrencyPolicy::Skip => {
                self.emit(Event::Lock { key: key.to_string(), outcome: "skipped".into() });
                Err(Box::new(RunResult {
                    status: RunStatus::Skipped,
                    exit_code: 0,
                    outputs: Json::Null,
                    error: Some(format!("skipped: another run holds the concurrency key `{key}`")),
                }))
            }
            ConcurrencyPolicy::Fail => {
                self.emit(Event::Lock { key: key.to_string(), outcome: "held".into() });
                Err(Box::new(RunResult {
                    status: RunStatus::Failed,
                    exit_code: crate::exit::TEMPFAIL,
                    outputs: Json::Null,
                    error: Some(format!("another run holds the concurrency key `{key}`")),
                }))
            }
            ConcurrencyPolicy::Wait => {
                let limit = wait.map(|w| w.get()).unwrap_or(Duration::from_secs(600));
                let waited = tokio::select! {
                    result = lock::wait_lock(state, key, limit) => result.map_err(io_error)?,
                    () = self.cancel.cancelled() => None,
                };
                match waited {
                    Some(guard) => {
                        self.emit(Event::Lock { key: key.to_string(), outcome: "waited".into() });
                        Ok(guard)
                    }
                    None if self.cancel.is_cancelled() => Err(Box::new(RunResult {
                        status: RunStatus::Cancelled,
                        exit_code: 130,
                        outputs: Json::Null,
                        error: Some("cancelled while waiting for the concurrency key".into()),
                    })),
                    None => Err(Box::new(RunResult {
                        status: RunStatus::Failed,
                        exit_code: crate::exit::TEMPFAIL,
                        outputs: Json::Null,
                        error: Some(format!(
                            "gave up waiting for the concurrency key `{key}` after {}",
                            crate::model::Duration(limit)
                        )),
                    })),
                }
            }
        }
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
                match self.eval.truthy(when, &context) {
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
                StepKind::Stages(stages) => self.run_stages(inv, stages, scope, path, flow).await,
                StepKind::Return(ret) => self.run_return(ret, &context, flow),
                StepKind::Parallel(parallel) => self.run_parallel(inv, parallel, scope, path, flow).await,
            }
        })
    }

    pub(crate) fn ctx<'a>(
        &'a self,
        inv: &'a Invocation<'a>,
        context: &'a Value,
        masker: &'a Masker,
        timeout: Duration,
    ) -> StepCtx<'a> {
        StepCtx {
            eval: &self.eval,
            context,
            masker,
            timeout,
            cancel: &inv.cancel,
            dir: &inv.dir,
            hooks: self.options.hooks.as_deref(),
        }
    }

    pub(crate) fn planned(&self, step: &Step, path: &str, action: Json) -> StepResult {
        let kind = step.kind.type_name().to_string();
        let name = step.name.clone().or_else(|| step.id.clone()).unwrap_or_else(|| kind.clone());
        self.emit(Event::StepPlanned { path: path.to_string(), name, kind, action: action.clone() });
        // Later steps (and a plan-mode caller) can see what would have been done.
        StepResult { output: action, ..StepResult::planned() }
    }

    /// Run attempts with the step's retry policy: exponential backoff with jitter,
    /// honouring a server's `Retry-After` up to `max_backoff`. A server asking for a
    /// wait longer than the step's `timeout` (the limit of one attempt) ends the step
    /// instead: the run is not parked on a server's say-so.
    pub(crate) async fn attempts<'a, F, Fut>(
        &'a self,
        inv: &'a Invocation<'a>,
        step: &Step,
        path: &str,
        retry_allowed: bool,
        timeout: Duration,
        attempt: F,
    ) -> StepResult
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Outcome>,
    {
        let policy = step.retry.as_ref();
        let max_attempts = policy.map(|p| p.attempts).unwrap_or(1).max(1);
        let base = policy.and_then(|p| p.backoff).map(|d| d.get()).unwrap_or(Duration::from_secs(1));
        let cap = policy.and_then(|p| p.max_backoff).map(|d| d.get()).unwrap_or(Duration::from_secs(30));
        let jitter = policy.and_then(|p| p.jitter).unwrap_or(true);
        let mut number = 1;
        loop {
            let outcome = tokio::select! {
                outcome = attempt() => outcome,
                () = inv.cancel.cancelled() => Outcome::Failed {
                    error: "cancelled".into(),
                    output: Json::Null,
                    retry: Retry::No,
                    proceed: false,
                },
            };
            match outcome {
                Outcome::Ok(output) => {
                    return StepResult { attempts: number, ..StepResult::ok(output) };
                }
                Outcome::Failed { error, output, retry, proceed } => {
                    let after = match retry {
                        Retry::Yes { after }
                            if retry_allowed && number < max_attempts && !inv.cancel.is_cancelled() =>
                        {
                            Some(after)
                        }
                        _ => None,
                    };
                    let Some(after) = after else {
                        return StepResult {
                            status: StepStatus::Failed,
                            output,
                            error: Some(error),
                            attempts: number,
                            proceed,
                        };
                    };
                    let exponent = (number - 1).min(16);
                    let mut delay = base.saturating_mul(1 << exponent).min(cap);
                    if jitter {
                        delay = jittered(delay);
                    }
                    if let Some(server) = after {
                        let asked = server.min(cap);
                        if asked > timeout {
                            return StepResult {
                                status: StepStatus::Failed,
                                output,
                                error: Some(format!(
                                    "{error}; the server asked to retry after {} (Retry-After), longer than the step's timeout of {}: gave up after attempt {number}",
                                    crate::model::Duration(asked),
                                    crate::model::Duration(timeout)
                                )),
                                attempts: number,
                                proceed,
                            };
                        }
                        delay = delay.max(asked);
                    }
                    self.emit(Event::StepRetry {
                        path: path.to_string(),
                        attempt: number,
                        delay_ms: millis(delay),
                        error: error.clone(),
                    });
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = inv.cancel.cancelled() => {
                            return StepResult { attempts: number, ..StepResult::failed("cancelled", output) };
                        }
                    }
                    number += 1;
                }
            }
        }
    }

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
                self.eval.render_dyn(value, context).map_err(|e| format!("{name}: {e}"))?,
            );
        }
        Ok(Some(Json::Object(out)))
    }
}

fn is_external(kind: &StepKind) -> bool {
    matches!(kind, StepKind::Http(_) | StepKind::Exec(_) | StepKind::Cron(_))
}

fn config_error(message: String) -> RunResult {
    RunResult {
        status: RunStatus::Failed,
        exit_code: crate::exit::CONFIG,
        outputs: Json::Null,
        error: Some(message),
    }
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
        None => Err(format!("expected an exit code, found {}", crate::load::schema_check::describe(value))),
    }
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

/// `delay` spread by ±50%, so many runners do not retry in step.
fn jittered(delay: Duration) -> Duration {
    delay.mul_f64(0.5 + fastrand::f64())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code_of(&json!(3), 0), Ok(3));
        assert_eq!(exit_code_of(&json!("2"), 0), Ok(2));
        assert!(exit_code_of(&json!(64), 0).is_err());
        assert!(exit_code_of(&json!(0), 1).is_err());
    }
}
