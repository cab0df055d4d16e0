//! Running a workflow: inputs, secrets, environment and vars, the concurrency lock,
//! every step kind with timeouts, retries and error policies, `finally`, outputs and
//! the exit code. Everything observable goes out as masked [`Event`]s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use indexmap::IndexMap;
use minijinja::Value;
use serde_json::{Map, Value as Json, json};
use tokio_util::sync::CancellationToken;

use super::events::{Event, RunStatus, Sink, StepStatus};
use super::lock;
use super::mask::Masker;
use super::project::{Project, Unit};
use super::scope::Scope;
use super::values::{Evaluator, to_json, to_mj};
use crate::load::sibling;
use crate::model::lanes::{CronBackend, LaneRegistry, Verdict};
use crate::model::step::{Effect, OnError, Step, StepKind};
use crate::model::workflow::{ConcurrencyPolicy, InputType, Workflow};
use crate::steps::{self, Outcome, Retry, StepCtx};

/// Default time limit of a step attempt that has none.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time limit of a cron toggle.
pub const DEFAULT_CRON_TIMEOUT: Duration = Duration::from_secs(30);
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
    clients: steps::http::Clients,
    options: Options,
    project: Project,
    /// The `openclaw` cron backend's job states, read once per run and keyed by the
    /// backend's program (a failed read is kept too, so it is not retried per lane).
    cron_jobs: tokio::sync::Mutex<HashMap<Vec<String>, Result<steps::cron::JobStates, String>>>,
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
    fn env_var(&self, name: &str) -> Option<String> {
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

    /// Run the main workflow with command-line inputs (`KEY=VALUE` text).
    pub async fn run_main(self: &Arc<Self>, main: &Path, raw_inputs: &[(String, String)]) -> RunResult {
        self.run_main_with(main, |unit| {
            parse_cli_inputs(&unit.workflow, unit.registry.as_deref(), raw_inputs)
        })
        .await
    }

    /// Run the main workflow with typed inputs (tests, replays).
    pub async fn run_main_typed(self: &Arc<Self>, main: &Path, inputs: Map<String, Json>) -> RunResult {
        self.run_main_with(main, |unit| typed_inputs(&unit.workflow, unit.registry.as_deref(), inputs)).await
    }

    async fn run_main_with(
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
    fn invoke<'a>(
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
                scope.set("lanes", registry.lanes_value());
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

    /// Execute the step's kind. Control flow that ends the run (`stop`, `fail`, a
    /// failure inside a branch) is returned through `flow`.
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
            match &step.kind {
                StepKind::Set(set) => {
                    // Each value sees the ones before it by name, typed.
                    let local = scope.child();
                    let mut out = Map::new();
                    for (name, value) in &set.values {
                        match self.eval.render_dyn(value, &local.context()) {
                            Ok(v) => {
                                local.set(name, to_mj(&v));
                                out.insert(name.clone(), v);
                            }
                            Err(e) => return StepResult::failed(format!("values.{name}: {e}"), Json::Null),
                        }
                    }
                    StepResult::ok(Json::Object(out))
                }
                StepKind::Emit(emit) => {
                    let (text, output) = match (&emit.text, &emit.json) {
                        (Some(text), _) => match self.eval.render_text(text, &context) {
                            Ok(t) => (t.clone(), Json::String(t)),
                            Err(e) => return StepResult::failed(format!("text: {e}"), Json::Null),
                        },
                        (None, Some(value)) => match self.eval.render_dyn(value, &context) {
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
                        crate::model::step::Stream::Stdout => "stdout",
                        crate::model::step::Stream::Stderr => "stderr",
                    };
                    self.emit(Event::Emit { stream: stream.into(), text });
                    StepResult::ok(output)
                }
                StepKind::Stop(stop) => {
                    let message =
                        match stop.message.as_ref().map(|m| self.eval.render_text(m, &context)).transpose() {
                            Ok(m) => m,
                            Err(e) => return StepResult::failed(format!("message: {e}"), Json::Null),
                        };
                    let exit_code = match stop.exit_code.as_ref() {
                        None => 0,
                        Some(code) => match self.eval.render_dyn(code, &context).map(|v| exit_code_of(&v, 0))
                        {
                            Ok(Ok(code)) => code,
                            Ok(Err(e)) | Err(e) => {
                                return StepResult::failed(format!("exit_code: {e}"), Json::Null);
                            }
                        },
                    };
                    let outputs = match self.render_map(&stop.outputs, &context) {
                        Ok(o) => o,
                        Err(e) => return StepResult::failed(e, Json::Null),
                    };
                    if let Some(text) = &message {
                        self.emit(Event::Emit { stream: "stderr".into(), text: text.clone() });
                    }
                    *flow = Some(Flow::Stop { exit_code, outputs, message: message.clone() });
                    StepResult::ok(json!({"message": message, "exit_code": exit_code}))
                }
                StepKind::Fail(fail) => {
                    let message = match self.eval.render_text(&fail.message, &context) {
                        Ok(m) => m,
                        Err(e) => format!("(message could not be rendered: {e})"),
                    };
                    let exit_code = match fail.exit_code.as_ref() {
                        None => 1,
                        Some(code) => match self.eval.render_dyn(code, &context).map(|v| exit_code_of(&v, 1))
                        {
                            Ok(Ok(code)) => code,
                            Ok(Err(_)) | Err(_) => 1,
                        },
                    };
                    let outputs = self.render_map(&fail.outputs, &context).unwrap_or(None);
                    *flow = Some(Flow::Fail { message: message.clone(), exit_code, outputs });
                    StepResult::failed(message, Json::Null)
                }
                StepKind::Switch(switch) => {
                    for (index, case) in switch.cases.iter().enumerate() {
                        match self.eval.truthy(&case.when, &context) {
                            Ok(false) => continue,
                            Ok(true) => {
                                let child = scope.child();
                                let (inner, last) = self
                                    .run_steps(inv, &case.steps, &child, &format!("{path}[{index}]"))
                                    .await;
                                return self.branch_result(inner, last, case.output.as_ref(), &child, flow);
                            }
                            Err(e) => {
                                return StepResult::failed(format!("cases[{index}].when: {e}"), Json::Null);
                            }
                        }
                    }
                    match &switch.default {
                        Some(default) => {
                            let child = scope.child();
                            let (inner, last) = self
                                .run_steps(inv, &default.steps, &child, &format!("{path}[default]"))
                                .await;
                            self.branch_result(inner, last, default.output.as_ref(), &child, flow)
                        }
                        None => StepResult::ok(Json::Null),
                    }
                }
                StepKind::ForEach(each) => self.run_for_each(inv, each, scope, path, flow).await,
                StepKind::Call(call) => {
                    let target = sibling(&inv.unit.path, &call.workflow);
                    let Some(unit) = self.project.unit(&target) else {
                        return StepResult::failed(
                            format!("workflow `{}` was not loaded", call.workflow),
                            Json::Null,
                        );
                    };
                    let given = match self.render_map(&call.inputs, &context) {
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
                    let result = self.invoke(unit, inputs, inv.plan || call.plan, false, path).await;
                    match result.status {
                        RunStatus::Ok | RunStatus::Skipped => StepResult::ok(result.outputs),
                        RunStatus::Cancelled => StepResult::failed("cancelled", result.outputs),
                        RunStatus::Failed => StepResult::failed(
                            result.error.unwrap_or_else(|| format!("`{}` failed", call.workflow)),
                            result.outputs,
                        ),
                    }
                }
                StepKind::Render(render) => self.run_render(inv, step, render, &context).await,
                StepKind::Guard(guard) => self.run_guard(inv, guard, &context),
                StepKind::Http(http) => {
                    let api = http.api.as_ref().and_then(|name| inv.apis.get(name));
                    let timeout = step
                        .timeout
                        .map(|t| t.get())
                        .or_else(|| api.and_then(|a| a.timeout))
                        .unwrap_or(steps::http::DEFAULT_TIMEOUT);
                    let masker = self.masker();
                    let ctx = self.ctx(inv, &context, &masker, timeout);
                    let request = match steps::http::prepare(&ctx, http, api) {
                        Ok(r) => r,
                        Err(e) => return StepResult::failed(e, Json::Null),
                    };
                    let write = match step.effect {
                        Some(effect) => effect == Effect::Write,
                        None => !http.method.is_read(),
                    };
                    if write && inv.plan {
                        return self.planned(step, path, steps::http::describe(&request, &masker));
                    }
                    let retry_allowed =
                        http.method.is_idempotent() || step.retry.as_ref().is_some_and(|r| r.unsafe_methods);
                    self.attempts(inv, step, path, retry_allowed, timeout, || {
                        steps::http::execute(&ctx, &self.clients, http, &request)
                    })
                    .await
                }
                StepKind::Exec(exec) => {
                    let timeout = step.timeout.map(|t| t.get()).unwrap_or(DEFAULT_STEP_TIMEOUT);
                    let masker = self.masker();
                    let ctx = self.ctx(inv, &context, &masker, timeout);
                    let spec = match steps::exec::prepare(&ctx, exec) {
                        Ok(s) => s,
                        Err(e) => return StepResult::failed(e, Json::Null),
                    };
                    let write = step.effect != Some(Effect::Read);
                    if write && inv.plan {
                        return self.planned(step, path, steps::exec::describe(&spec, &masker));
                    }
                    self.attempts(inv, step, path, true, timeout, || steps::exec::execute(&ctx, exec, &spec))
                        .await
                }
                StepKind::Cron(cron) => self.run_cron(inv, step, cron, &context, path).await,
                StepKind::Transition(transition) => self.run_transition(inv, transition, &context),
                StepKind::Stages(stages) => self.run_stages(inv, stages, scope, path, flow).await,
                StepKind::Return(ret) => self.run_return(ret, &context, flow),
                StepKind::Parallel(parallel) => self.run_parallel(inv, parallel, scope, path, flow).await,
                StepKind::Kubernetes(k8s) => {
                    let timeout = step.timeout.map(|t| t.get()).unwrap_or(steps::kubernetes::DEFAULT_TIMEOUT);
                    let masker = self.masker();
                    let ctx = self.ctx(inv, &context, &masker, timeout);
                    let prepared = match steps::kubernetes::prepare(&ctx, k8s, &|name| self.env_var(name)) {
                        Ok(p) => p,
                        Err(e) => return StepResult::failed(e, Json::Null),
                    };
                    if let (Some(token), Ok(mut known)) = (prepared.token(), self.masker.write()) {
                        known.add(token);
                    }
                    if inv.plan && step.effect != Some(Effect::Read) {
                        return self.planned(step, path, prepared.describe());
                    }
                    let retry_allowed = prepared.action == crate::model::kubernetes::KubernetesAction::Apply
                        || step.retry.as_ref().is_some_and(|r| r.unsafe_methods);
                    self.attempts(inv, step, path, retry_allowed, timeout, || {
                        steps::kubernetes::execute(&ctx, &prepared)
                    })
                    .await
                }
            }
        })
    }

    fn ctx<'a>(
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

    fn planned(&self, step: &Step, path: &str, action: Json) -> StepResult {
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
    async fn attempts<'a, F, Fut>(
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

    fn branch_result(
        &self,
        inner: Flow,
        last: Json,
        output: Option<&Json>,
        scope: &Arc<Scope>,
        flow: &mut Option<Flow>,
    ) -> StepResult {
        match inner {
            Flow::Continue => match output {
                Some(template) => match self.eval.render_dyn(template, &scope.context()) {
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

    async fn run_for_each(
        self: &Arc<Self>,
        inv: &Invocation<'_>,
        each: &crate::model::step::ForEachStep,
        scope: &Arc<Scope>,
        path: &str,
        flow: &mut Option<Flow>,
    ) -> StepResult {
        let items = match self.eval.eval(&each.items, &scope.context()) {
            Ok(v) => to_json(&v),
            Err(e) => return StepResult::failed(format!("items: {e}"), Json::Null),
        };
        let items = match items {
            Json::Array(items) => items,
            Json::Null => Vec::new(),
            other => {
                return StepResult::failed(
                    format!("items must be a list, found {}", crate::load::schema_check::describe(&other)),
                    Json::Null,
                );
            }
        };
        let variable = each.as_name.clone().unwrap_or_else(|| "item".to_string());
        let parallel =
            match crate::steps::width::resolve(&self.eval, each.parallel.as_ref(), &scope.context()) {
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
                let (inner, last) = self.run_steps(inv, &each.steps, &child, &iteration_path).await;
                let output = match (&inner, &each.output) {
                    // A `return` ends this iteration with its value.
                    (Flow::Return(value), _) => Ok(value.clone()),
                    (Flow::Continue, Some(template)) => self
                        .eval
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
                                match self.eval.truthy(until, &check.context()) {
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

    async fn run_render(
        &self,
        inv: &Invocation<'_>,
        step: &Step,
        render: &crate::model::step::RenderStep,
        context: &Value,
    ) -> StepResult {
        let template = sibling(&inv.unit.path, &render.template);
        let text = match crate::fsutil::read_text(&template, crate::fsutil::MAX_READ_BYTES) {
            Ok(t) => t,
            Err(e) => {
                return StepResult::failed(format!("cannot read {}: {e}", template.display()), Json::Null);
            }
        };
        let vars = match self.render_map(&render.vars, context) {
            Ok(v) => v.unwrap_or(Json::Object(Map::new())),
            Err(e) => return StepResult::failed(format!("vars.{e}"), Json::Null),
        };
        let root = template.parent().map(Path::to_path_buf).unwrap_or_default();
        let rendered = match crate::render::render_checked(&template, &text, &root, &vars) {
            Ok(r) => r,
            Err(problems) => {
                let first =
                    problems.first().map(|p| format!("{}:{}: {}", p.file.display(), p.line, p.message));
                return StepResult::failed(first.unwrap_or_else(|| "render failed".into()), Json::Null);
            }
        };
        let Some(out) = &render.out else {
            self.emit(Event::Emit { stream: "stdout".into(), text: rendered.clone() });
            return StepResult::ok(Json::String(rendered));
        };
        let out = match self.eval.render_text(out, context) {
            Ok(o) => PathBuf::from(o),
            Err(e) => return StepResult::failed(format!("out: {e}"), Json::Null),
        };
        let output = json!({"path": out.display().to_string(), "bytes": rendered.len()});
        if inv.plan && step.effect != Some(Effect::Read) {
            return self.planned(step, &out.display().to_string(), json!({"write": output}));
        }
        match crate::fsutil::write_atomic(&out, rendered.as_bytes()) {
            Ok(()) => StepResult::ok(output),
            Err(e) => StepResult::failed(format!("cannot write {}: {e}", out.display()), output),
        }
    }

    fn run_transition(
        &self,
        inv: &Invocation<'_>,
        transition: &crate::model::step::TransitionStep,
        context: &Value,
    ) -> StepResult {
        let Some((lifecycle, lifecycle_roles)) = &inv.unit.lifecycle else {
            return StepResult::failed("a transition step needs a lifecycle", Json::Null);
        };
        let render = |field: &str, text: &Option<String>| -> Result<Option<String>, String> {
            text.as_ref()
                .map(|t| self.eval.render_text(t, context))
                .transpose()
                .map_err(|e| format!("{field}: {e}"))
        };
        let state = match self.eval.render_text(&transition.state, context) {
            Ok(s) => s,
            Err(e) => return StepResult::failed(format!("state: {e}"), Json::Null),
        };
        let parts = (|| -> Result<_, String> {
            Ok((
                render("event", &transition.event)?,
                render("to", &transition.to)?,
                render("role", &transition.role)?,
                render("result", &transition.result)?,
            ))
        })();
        let route = (|| -> Result<_, String> {
            Ok((render("labels", &transition.labels)?, render("fields", &transition.fields)?))
        })();
        let parts = match (parts, route) {
            (Ok((None, None, None, None)), Ok((labels, fields))) if labels.is_some() || fields.is_some() => {
                let labels: Vec<String> = match labels.as_deref().map(str::trim) {
                    Some(text) if text.starts_with('[') => match serde_json::from_str::<Vec<String>>(text) {
                        Ok(list) => list,
                        Err(e) => {
                            return StepResult::failed(
                                format!("labels: not a list of text: {e}"),
                                Json::Null,
                            );
                        }
                    },
                    Some(text) => {
                        text.split(',').map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
                    }
                    None => Vec::new(),
                };
                let fields = match fields.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
                    Some(text) => match serde_json::from_str::<Json>(text) {
                        Ok(value) => value,
                        Err(e) => {
                            return StepResult::failed(format!("fields: not a JSON object: {e}"), Json::Null);
                        }
                    },
                    None => Json::Null,
                };
                let roles = lifecycle_roles.as_deref().or(inv.unit.roles.as_deref());
                let how = crate::lifecycle::Move::Route { labels, fields };
                return match crate::lifecycle::step(lifecycle, roles, &state, &how) {
                    Ok(moved) => StepResult::ok(serde_json::to_value(moved).unwrap_or(Json::Null)),
                    Err(e) => StepResult::failed(e, json!({"from": state})),
                };
            }
            (parts, Ok(_)) => parts,
            (_, Err(e)) => Err(e),
        };
        let how = match parts {
            Ok((Some(event), None, None, None)) => crate::lifecycle::Move::Event(event),
            Ok((None, Some(to), None, None)) => crate::lifecycle::Move::To(to),
            Ok((None, None, Some(role), Some(result))) => crate::lifecycle::Move::Completion { role, result },
            Ok(_) => {
                return StepResult::failed(
                    "give exactly one of `event`, `to`, or `role` with `result`",
                    Json::Null,
                );
            }
            Err(e) => return StepResult::failed(e, Json::Null),
        };
        let roles = lifecycle_roles.as_deref().or(inv.unit.roles.as_deref());
        match crate::lifecycle::step(lifecycle, roles, &state, &how) {
            Ok(moved) => StepResult::ok(serde_json::to_value(moved).unwrap_or(Json::Null)),
            Err(e) => StepResult::failed(e, json!({"from": state})),
        }
    }

    fn run_guard(
        &self,
        inv: &Invocation<'_>,
        guard: &crate::model::step::GuardStep,
        context: &Value,
    ) -> StepResult {
        let text = match self.eval.render_text(&guard.text, context) {
            Ok(t) => t.trim().to_string(),
            Err(e) => return StepResult::failed(format!("text: {e}"), Json::Null),
        };
        let lane = match guard.lane.as_ref().map(|l| self.eval.render_text(l, context)).transpose() {
            Ok(l) => l.filter(|l| !l.is_empty()),
            Err(e) => return StepResult::failed(format!("lane: {e}"), Json::Null),
        };
        let registry = inv.unit.registry.as_deref();
        let verdict = judge(&text, lane.as_deref(), guard.rules.as_deref(), registry);
        let verdict = match verdict {
            Ok(v) => v,
            Err(e) => return StepResult::failed(e, Json::Null),
        };
        let output = json!({
            "valid": verdict.valid, "rule": verdict.rule, "reason": verdict.reason, "text": text, "lane": lane,
        });
        if !verdict.valid && guard.fail_on_reject.unwrap_or(true) {
            return StepResult::failed(
                format!("INVALID_WORKER_RESULT: {}", verdict.reason.unwrap_or_default()),
                output,
            );
        }
        StepResult::ok(output)
    }

    async fn run_cron(
        &self,
        inv: &Invocation<'_>,
        step: &Step,
        cron: &crate::model::step::CronStep,
        context: &Value,
        path: &str,
    ) -> StepResult {
        let Some(registry) = inv.unit.registry.as_deref() else {
            return StepResult::failed("a cron step needs a lane registry", Json::Null);
        };
        let lane_id = match self.eval.render_text(&cron.lane, context) {
            Ok(l) => l,
            Err(e) => return StepResult::failed(format!("lane: {e}"), Json::Null),
        };
        let Some(lane) = registry.lane(&lane_id) else {
            return StepResult::failed(
                format!(
                    "no lane `{lane_id}` in the lane registry; lanes: {}",
                    crate::diagnostics::one_of(&registry.ids())
                ),
                Json::Null,
            );
        };
        let cron_id = match resolve_cron_id(lane, |name| self.env_var(name)) {
            Ok(id) => id,
            Err(e) => return StepResult::failed(e, Json::Null),
        };
        let enabled = match self.eval.render_dyn(&cron.enabled, context) {
            Ok(Json::Bool(b)) => b,
            Ok(other) => {
                return StepResult::failed(
                    format!(
                        "enabled must be true or false, found {}",
                        crate::load::schema_check::describe(&other)
                    ),
                    Json::Null,
                );
            }
            Err(e) => return StepResult::failed(format!("enabled: {e}"), Json::Null),
        };
        let reason = match cron.reason.as_ref().map(|r| self.eval.render_text(r, context)).transpose() {
            Ok(r) => r,
            Err(e) => return StepResult::failed(format!("reason: {e}"), Json::Null),
        };
        let mut current = None;
        let (argv, timeout) = match &registry.cron_backend {
            CronBackend::Openclaw { program, timeout } => {
                let program = program.clone().unwrap_or_else(|| "openclaw".into());
                let limit = step
                    .timeout
                    .map(|t| t.get())
                    .or(timeout.map(|t| t.get()))
                    .unwrap_or(DEFAULT_CRON_TIMEOUT);
                let states = self.cron_states(&steps::cron::list_argv(&program), limit, &inv.cancel).await;
                let unknown =
                    json!({"lane": lane.id, "cron_id": cron_id, "enabled": enabled, "changed": false});
                match states.as_ref().map(|s| s.get(&cron_id).copied()) {
                    Ok(Some(state)) => current = Some(state),
                    Ok(None) => {
                        return StepResult::failed(
                            format!(
                                "cron job {cron_id} of lane `{}` is not listed by `{program} cron list --all --json`; nothing changed",
                                lane.id
                            ),
                            unknown,
                        );
                    }
                    Err(e) => {
                        return StepResult::failed(
                            format!("reading the cron jobs failed, nothing changed: {e}"),
                            unknown,
                        );
                    }
                }
                (
                    vec![
                        program,
                        "cron".into(),
                        "edit".into(),
                        cron_id.clone(),
                        if enabled { "--enable" } else { "--disable" }.into(),
                    ],
                    limit,
                )
            }
            CronBackend::Kubernetes { namespace, cronjob, timeout } => {
                let masker = self.masker();
                let ctx = self.ctx(inv, context, &masker, DEFAULT_CRON_TIMEOUT);
                let request = crate::steps::kubernetes::cron::StepRequest {
                    lane,
                    cron_id: &cron_id,
                    enabled,
                    reason: reason.as_deref(),
                    namespace: namespace.as_deref(),
                    cronjob: cronjob.as_deref(),
                    timeout: step.timeout.or(*timeout).map_or(DEFAULT_CRON_TIMEOUT, |t| t.get()),
                    plan: inv.plan && step.effect != Some(Effect::Read),
                };
                return match crate::steps::kubernetes::cron::run_step(
                    &ctx,
                    &request,
                    &|name| self.env_var(name),
                    &|token| {
                        if let Ok(mut known) = self.masker.write() {
                            known.add(token);
                        }
                    },
                )
                .await
                {
                    crate::steps::kubernetes::cron::Toggled::Ok(output) => StepResult::ok(output),
                    crate::steps::kubernetes::cron::Toggled::Planned(output) => {
                        self.planned(step, path, output)
                    }
                    crate::steps::kubernetes::cron::Toggled::Failed(error, output) => {
                        StepResult::failed(error, output)
                    }
                };
            }
            CronBackend::Command { argv, timeout, list } => {
                if let Some(list) = list {
                    let limit = step.timeout.map(|t| t.get()).or(timeout.map(|t| t.get()));
                    let states =
                        self.cron_states(list, limit.unwrap_or(DEFAULT_CRON_TIMEOUT), &inv.cancel).await;
                    match steps::cron::known_state(states, &cron_id, &lane.id, list) {
                        Ok(state) => current = Some(state),
                        Err(e) => {
                            return StepResult::failed(
                                e,
                                json!({"lane": lane.id, "cron_id": cron_id, "enabled": enabled, "changed": false}),
                            );
                        }
                    }
                }
                let lane_value = to_mj(&serde_json::to_value(lane).unwrap_or(Json::Null));
                let backend_context = minijinja::context! { lane => lane_value, cron_id => cron_id.clone(), enabled => enabled };
                let mut rendered = Vec::with_capacity(argv.len());
                for (index, arg) in argv.iter().enumerate() {
                    match self.eval.render_text(arg, &backend_context) {
                        Ok(a) => rendered.push(a),
                        Err(e) => {
                            return StepResult::failed(
                                format!("cron_backend.argv[{index}]: {e}"),
                                Json::Null,
                            );
                        }
                    }
                }
                (rendered, timeout.map(|t| t.get()).unwrap_or(DEFAULT_CRON_TIMEOUT))
            }
        };
        let mut output = json!({
            "lane": lane.id, "cron_id": cron_id, "enabled": enabled, "reason": reason,
            "command": argv, "applied": false, "dry_run": inv.plan,
            "was_enabled": current, "changed": current.is_none_or(|c| c != enabled),
        });
        // Already in the wanted state: no edit (re-enabling resets openclaw's error count).
        if current == Some(enabled) {
            output["command"] = Json::Null;
            return StepResult::ok(output);
        }
        if inv.plan && step.effect != Some(Effect::Read) {
            return self.planned(step, path, output);
        }
        let spec = steps::exec::CommandSpec {
            argv: argv.clone(),
            env: Vec::new(),
            cwd: None,
            stdin: None,
            timeout: step.timeout.map(|t| t.get()).unwrap_or(timeout),
            max_output_bytes: 64 * 1024,
        };
        let program = argv.first().cloned().unwrap_or_default();
        let error = match steps::hooks::run_command(self.options.hooks.as_deref(), &spec, &inv.cancel).await {
            Ok(done) if done.exit_code == Some(0) => None,
            Ok(done) if done.timed_out => {
                Some(format!("`{program}` timed out after {}s", spec.timeout.as_secs()))
            }
            Ok(done) => {
                // Cut with a visible `…`, so a clipped message never reads as complete.
                let detail = steps::exec::clip(done.stderr.trim(), 200);
                let code = done.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "a signal".into());
                Some(format!("`{}` failed (exit {code}): {detail}", argv[..3.min(argv.len())].join(" ")))
            }
            Err(e) => Some(e),
        };
        match error {
            None => {
                output["applied"] = Json::Bool(true);
                let list = match &registry.cron_backend {
                    CronBackend::Openclaw { program, .. } => {
                        Some(steps::cron::list_argv(program.as_deref().unwrap_or("openclaw")))
                    }
                    CronBackend::Command { list, .. } => list.clone(),
                    // The Kubernetes backend returns before running a command.
                    CronBackend::Kubernetes { .. } => None,
                };
                if let Some(list) = list
                    && let Some(Ok(states)) = self.cron_jobs.lock().await.get_mut(&list)
                {
                    states.insert(cron_id.clone(), enabled);
                }
                StepResult::ok(output)
            }
            Some(error) => {
                output["error"] = Json::String(error.clone());
                StepResult::failed(error, output)
            }
        }
    }
}

impl Engine {
    /// The job states listed by the backend's list command `list` (`openclaw cron list
    /// --all --json`, or a `command` backend's `list`), read once the first time a run
    /// needs them (also in a dry run: it only reads). The lock is held during the read,
    /// so concurrent toggles share it.
    async fn cron_states(
        &self,
        list: &[String],
        timeout: std::time::Duration,
        cancel: &CancellationToken,
    ) -> Result<steps::cron::JobStates, String> {
        let mut cache = self.cron_jobs.lock().await;
        if let Some(known) = cache.get(list) {
            return known.clone();
        }
        let program = steps::cron::list_label(list);
        let spec = steps::exec::CommandSpec {
            argv: list.to_vec(),
            env: Vec::new(),
            cwd: None,
            stdin: None,
            timeout,
            max_output_bytes: 4 * 1024 * 1024,
        };
        let read = match steps::hooks::run_command(self.options.hooks.as_deref(), &spec, cancel).await {
            Ok(done) if done.exit_code == Some(0) => steps::cron::parse_jobs_of(&program, &done.stdout),
            Ok(done) if done.timed_out => Err(format!("`{program}` timed out after {}s", timeout.as_secs())),
            Ok(done) => {
                let code = done.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "a signal".into());
                Err(format!(
                    "`{program}` failed (exit {code}): {}",
                    steps::cron::list_failure(&done.stdout, &done.stderr)
                ))
            }
            Err(e) => Err(e),
        };
        // A cancelled read is not remembered as the run's answer.
        if !cancel.is_cancelled() {
            cache.insert(list.to_vec(), read.clone());
        }
        read
    }
}

fn is_external(kind: &StepKind) -> bool {
    matches!(kind, StepKind::Http(_) | StepKind::Exec(_) | StepKind::Cron(_) | StepKind::Kubernetes(_))
}

fn config_error(message: String) -> RunResult {
    RunResult {
        status: RunStatus::Failed,
        exit_code: crate::exit::CONFIG,
        outputs: Json::Null,
        error: Some(message),
    }
}

/// The cron id of a lane: the `id_env` override when set (it must be a UUID, so an
/// environment value can never smuggle an option into the command), else the registry's.
pub fn resolve_cron_id(
    lane: &crate::model::lanes::Lane,
    env: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    if let Some(name) = &lane.cron.id_env
        && let Some(value) = env(name).filter(|v| !v.trim().is_empty())
    {
        let value = value.trim().to_string();
        if !is_uuid(&value) {
            return Err(format!(
                "{name} is set but is not a UUID; refusing to use it as the cron id of lane `{}`",
                lane.id
            ));
        }
        return Ok(value);
    }
    Ok(lane.cron.id.clone())
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    groups.len() == 5
        && groups.iter().zip(lengths).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A guard verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// Whether the text is a valid terminal result.
    pub valid: bool,
    /// The rule that decided.
    pub rule: Option<String>,
    /// Why it was rejected.
    pub reason: Option<String>,
}

/// Check a (trimmed) text against a lane's clear text and the contract rules.
pub fn judge(
    text: &str,
    lane: Option<&str>,
    rules: Option<&[crate::model::lanes::GuardRule]>,
    registry: Option<&LaneRegistry>,
) -> Result<Judgement, String> {
    if text.is_empty() {
        return Ok(Judgement { valid: false, rule: None, reason: Some("empty worker result".into()) });
    }
    if let Some(registry) = registry {
        let lanes: Vec<&crate::model::lanes::Lane> = match lane {
            Some(id) => match registry.lane(id) {
                Some(l) => vec![l],
                None => return Err(format!("no lane `{id}` in the lane registry")),
            },
            None => registry.lanes.iter().collect(),
        };
        if lanes.iter().any(|l| l.terminal.clear == text) {
            return Ok(Judgement { valid: true, rule: Some("lane_clear".into()), reason: None });
        }
    }
    let rules: &[crate::model::lanes::GuardRule] = match (rules, registry) {
        (Some(rules), _) => rules,
        (None, Some(registry)) => &registry.terminal_contract,
        (None, None) => return Err("no contract: give `rules` or a lane registry".into()),
    };
    for rule in rules {
        let applies = rule.lanes.is_empty() || lane.is_some_and(|l| rule.lanes.iter().any(|r| r == l));
        if !applies {
            continue;
        }
        let regex = crate::load::check_workflow::compile_rule(rule)
            .map_err(|e| format!("rule `{}`: {e}", rule.id))?;
        if regex.is_match(text) {
            return Ok(match rule.verdict {
                Verdict::Accept => Judgement { valid: true, rule: Some(rule.id.clone()), reason: None },
                Verdict::Reject => Judgement {
                    valid: false,
                    rule: Some(rule.id.clone()),
                    reason: Some(
                        rule.reason.clone().unwrap_or_else(|| format!("rejected by rule `{}`", rule.id)),
                    ),
                },
            });
        }
    }
    Ok(Judgement {
        valid: false,
        rule: None,
        reason: Some("worker result does not match the terminal contract".into()),
    })
}

/// A value as an exit code (0–63, at least `min`).
fn exit_code_of(value: &Json, min: i64) -> Result<i32, String> {
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

/// Convert `--input KEY=VALUE` texts to typed inputs and check them.
pub fn parse_cli_inputs(
    workflow: &Workflow,
    registry: Option<&LaneRegistry>,
    raw: &[(String, String)],
) -> Result<Map<String, Json>, String> {
    let mut given = Map::new();
    for (key, text) in raw {
        let Some(def) = workflow.inputs.get(key) else {
            let names: Vec<&str> = workflow.inputs.keys().map(String::as_str).collect();
            let hint = crate::diagnostics::did_you_mean(key, names.iter().copied())
                .map(|h| format!(" ({h})"))
                .unwrap_or_else(|| {
                    format!(" (inputs: {})", if names.is_empty() { "none".into() } else { names.join(", ") })
                });
            return Err(format!("`{}` has no input `{key}`{hint}", workflow.name));
        };
        let text = read_input_text(text).map_err(|e| format!("--input {key}: {e}"))?;
        let value = match def.ty {
            InputType::String | InputType::Lane => Json::String(text),
            InputType::Integer => text
                .trim()
                .parse::<i64>()
                .map(Json::from)
                .map_err(|_| format!("--input {key}: `{text}` is not a whole number"))?,
            InputType::Number => text
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Json::Number)
                .ok_or_else(|| format!("--input {key}: `{text}` is not a number"))?,
            InputType::Boolean => match text.trim() {
                "true" => Json::Bool(true),
                "false" => Json::Bool(false),
                other => return Err(format!("--input {key}: expected `true` or `false`, found `{other}`")),
            },
            InputType::List | InputType::Map => {
                serde_json::from_str(&text).map_err(|e| format!("--input {key}: not valid JSON: {e}"))?
            }
        };
        given.insert(key.clone(), value);
    }
    typed_inputs(workflow, registry, given)
}

/// `@-` reads standard input, `@path` a file; anything else is the value itself.
fn read_input_text(text: &str) -> Result<String, String> {
    match text.strip_prefix('@') {
        Some("-") => crate::fsutil::read_capped(std::io::stdin(), crate::fsutil::MAX_READ_BYTES)
            .and_then(crate::fsutil::utf8)
            .map_err(|e| format!("cannot read standard input: {e}")),
        Some(path) if !path.is_empty() => {
            crate::fsutil::read_text(Path::new(path), crate::fsutil::MAX_READ_BYTES)
                .map_err(|e| format!("cannot read {path}: {e}"))
        }
        _ => Ok(text.to_string()),
    }
}

/// Check typed input values against the declarations, filling defaults.
pub fn typed_inputs(
    workflow: &Workflow,
    registry: Option<&LaneRegistry>,
    mut given: Map<String, Json>,
) -> Result<Map<String, Json>, String> {
    let mut out = Map::new();
    for key in given.keys() {
        if !workflow.inputs.contains_key(key) {
            return Err(format!("`{}` has no input `{key}`", workflow.name));
        }
    }
    for (key, def) in &workflow.inputs {
        let value = match given.remove(key).or_else(|| def.default.clone()) {
            Some(v) => v,
            None => {
                return Err(format!(
                    "input `{key}` is required{}",
                    def.description.as_ref().map(|d| format!(" ({d})")).unwrap_or_default()
                ));
            }
        };
        if !def.ty.accepts(&value) {
            return Err(format!(
                "input `{key}` must be of type {}, found {}",
                def.ty.name(),
                crate::load::schema_check::describe(&value)
            ));
        }
        if let Some(allowed) = &def.allowed
            && !allowed.contains(&value)
        {
            let names: Vec<String> = allowed
                .iter()
                .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                .collect();
            return Err(format!("input `{key}` must be one of {}", crate::diagnostics::one_of(&names)));
        }
        if def.ty == InputType::Lane
            && let (Some(registry), Some(id)) = (registry, value.as_str())
            && registry.lane(id).is_none()
        {
            let ids = registry.ids();
            let hint = crate::diagnostics::did_you_mean(id, ids.iter().copied())
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            return Err(format!(
                "input `{key}`: no lane `{id}`; lanes: {}{hint}",
                crate::diagnostics::one_of(&ids)
            ));
        }
        out.insert(key.clone(), value);
    }
    Ok(out)
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
    fn uuids() {
        assert!(is_uuid("6b09bed4-cfbe-4c35-bbee-2b66c5ef17aa"));
        assert!(!is_uuid("--help"));
        assert!(!is_uuid("6b09bed4-cfbe-4c35-bbee-2b66c5ef17a"));
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code_of(&json!(3), 0), Ok(3));
        assert_eq!(exit_code_of(&json!("2"), 0), Ok(2));
        assert!(exit_code_of(&json!(64), 0).is_err());
        assert!(exit_code_of(&json!(0), 1).is_err());
    }
}
