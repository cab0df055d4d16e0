//! One invocation of a workflow (the main one or a `call`): inputs, environment,
//! secrets (added to the masker), template globals, vars, APIs, the concurrency lock,
//! the run timeout, the steps, `finally`, outputs and the exit code.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use minijinja::Value;
use serde_json::{Map, Value as Json, json};

use super::error::SetupError;
use super::events::{Event, RunStatus};
use super::lock;
use super::project::Unit;
use super::run::{BoxFuture, Engine, FINALLY_GRACE, Flow, Invocation, RunResult, exit_code_of};
use crate::expr::scope::Scope;
use crate::expr::values::to_mj;
use crate::model::workflow::ConcurrencyPolicy;
use crate::plan::compiled::UnitPlan;
use crate::steps;

impl Engine {
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
            // Lifecycle and roles as resolved by the plan (a unit is always in it).
            let resolved = self.plan.unit(&unit.path).cloned().unwrap_or_else(|| UnitPlan::of(unit));
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
                        let error = SetupError::MissingSecret { name: name.clone(), env: def.env.clone() };
                        return error.into();
                    }
                }
            }
            scope.set("secrets", to_mj(&Json::Object(secrets)));
            {
                let hooks = self.options.hooks.clone();
                let search = self.env_var("PATH");
                self.plan.eval().add_global(
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
                scope.set("lane_dispatch", registry.dispatch_value());
                let lanes = registry.clone();
                self.plan.eval().add_global(
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
            if let Some(roles) = resolved.roles.clone() {
                self.plan.eval().add_global(
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
            if let Some(lifecycle) = &resolved.lifecycle {
                scope.set("lifecycle", lifecycle.clone());
            }
            if let Some(roles) = &resolved.roles_value {
                scope.set("roles", roles.clone());
            }
            let mut vars = Map::new();
            scope.set("vars", to_mj(&Json::Object(vars.clone())));
            for (name, value) in &workflow.vars {
                match self.plan.eval().render_dyn(value, &scope.context()) {
                    Ok(v) => {
                        vars.insert(name.clone(), v);
                        scope.set("vars", to_mj(&Json::Object(vars.clone())));
                    }
                    Err(e) => {
                        let field = format!("vars.{name}");
                        return SetupError::Template { field, message: e }.into();
                    }
                }
            }
            let mut apis = IndexMap::new();
            for (name, def) in &workflow.apis {
                match steps::http::ApiConfig::render(name, def, self.plan.eval(), &scope.context()) {
                    Ok(api) => {
                        apis.insert(name.clone(), api);
                    }
                    Err(e) => {
                        let field = format!("apis.{name}");
                        return SetupError::Template { field, message: e }.into();
                    }
                }
            }
            // The lock: only runs that write take it; a dry run or plan-mode call never
            // blocks, and is never blocked by, a real run.
            let _guard = match (&workflow.concurrency, plan) {
                (Some(concurrency), false) => {
                    let key = match self.plan.eval().render_text(&concurrency.key, &scope.context()) {
                        Ok(key) => key,
                        Err(e) => {
                            let field = "concurrency.key".to_string();
                            return SetupError::Template { field, message: e }.into();
                        }
                    };
                    match self.take_lock(&key, concurrency.policy, concurrency.wait_timeout).await {
                        Ok(guard) => Some(guard),
                        Err(error) => return error.into(),
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
                        match self.plan.eval().render_dyn(value, &end_context) {
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
                (_, RunStatus::Cancelled) => crate::exit::INTERRUPTED,
                (Flow::Stop { exit_code, .. }, RunStatus::Ok) => *exit_code,
                (Flow::Fail { exit_code, .. }, _) => *exit_code,
                (_, RunStatus::Failed) => 1,
                _ => match &workflow.exit_code {
                    None => 0,
                    Some(code) => {
                        match self.plan.eval().render_dyn(code, &end_context).map(|v| exit_code_of(&v, 0)) {
                            Ok(Ok(code)) => code,
                            Ok(Err(e)) | Err(e) => {
                                status = RunStatus::Failed;
                                error = Some(format!("exit_code: {e}"));
                                1
                            }
                        }
                    }
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

    pub(crate) async fn take_lock(
        &self,
        key: &str,
        policy: ConcurrencyPolicy,
        wait: Option<crate::model::Duration>,
    ) -> Result<lock::LockGuard, SetupError> {
        let state = &self.options.state_dir;
        let io_error =
            |e: std::io::Error| SetupError::LockDirectory { dir: state.clone(), message: e.to_string() };
        if let Some(guard) = lock::try_lock(state, key).map_err(io_error)? {
            return Ok(guard);
        }
        match policy {
            ConcurrencyPolicy::Skip => {
                self.emit(Event::Lock { key: key.to_string(), outcome: "skipped".into() });
                Err(SetupError::LockSkipped { key: key.to_string() })
            }
            ConcurrencyPolicy::Fail => {
                self.emit(Event::Lock { key: key.to_string(), outcome: "held".into() });
                Err(SetupError::LockHeld { key: key.to_string() })
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
                    None if self.cancel.is_cancelled() => Err(SetupError::LockCancelled),
                    None => Err(SetupError::LockGaveUp { key: key.to_string(), waited: limit }),
                }
            }
        }
    }
}
