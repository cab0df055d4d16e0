//! `--report FILE`: a versioned JSON record of the run (schema in
//! `schemas/run-report.schema.json`), built from the same masked events.

use std::sync::Mutex;
use std::time::SystemTime;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::events::{Event, RunStatus, Sink, StepStatus};

/// The report format version; bumped on incompatible changes.
pub const REPORT_VERSION: u32 = 1;

/// A record of one `runner run`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "runner run report")]
pub struct RunReport {
    /// Format version (currently 1).
    pub version: u32,
    /// Workflow name.
    pub workflow: String,
    /// Workflow file.
    pub file: String,
    /// Whether writes were only reported.
    pub dry_run: bool,
    /// `ok`, `failed`, `cancelled` or `skipped`.
    pub status: Option<RunStatus>,
    /// The process exit code.
    pub exit_code: Option<i32>,
    /// Why the run failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// When it finished (RFC 3339, UTC).
    pub finished_at: String,
    /// Time taken, in milliseconds.
    pub duration_ms: u64,
    /// The concurrency key and what happened to it, when contended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<LockRecord>,
    /// The workflow's outputs.
    pub outputs: Value,
    /// Every step that finished or was planned, in the order they ended.
    pub steps: Vec<StepRecord>,
}

/// What happened to the concurrency key.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LockRecord {
    /// The rendered key.
    pub key: String,
    /// `waited`, `skipped` or `held`.
    pub outcome: String,
}

/// One step.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StepRecord {
    /// Where the step is (`probe[2].queue`).
    pub path: String,
    /// Display name.
    pub name: String,
    /// Step kind.
    pub kind: String,
    /// Final status.
    pub status: StepStatus,
    /// Time taken, in milliseconds.
    pub duration_ms: u64,
    /// Attempts made.
    pub attempts: u32,
    /// One-line result.
    pub summary: String,
    /// The error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a planned write: exactly what it would have done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned: Option<Value>,
    /// Failed attempts that were retried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retries: Vec<RetryRecord>,
}

/// A retried attempt.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RetryRecord {
    /// The attempt that failed.
    pub attempt: u32,
    /// Delay before the next one, in milliseconds.
    pub delay_ms: u64,
    /// Why it failed.
    pub error: String,
}

/// Collects events into a [`RunReport`].
#[derive(Debug)]
pub struct Collector {
    report: Mutex<RunReport>,
    retries: Mutex<Vec<(String, RetryRecord)>>,
}

impl Default for Collector {
    fn default() -> Self {
        Collector {
            report: Mutex::new(RunReport {
                version: REPORT_VERSION,
                started_at: super::timestamp(SystemTime::now()),
                outputs: Value::Null,
                ..RunReport::default()
            }),
            retries: Mutex::new(Vec::new()),
        }
    }
}

impl Collector {
    /// The report so far.
    pub fn report(&self) -> RunReport {
        self.report.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Set what is known before the first event (for runs that end before starting).
    pub fn set_file(&self, file: &str) {
        if let Ok(mut report) = self.report.lock()
            && report.file.is_empty()
        {
            report.file = file.to_string();
        }
    }
}

impl Sink for Collector {
    fn event(&self, event: &Event) {
        let Ok(mut report) = self.report.lock() else { return };
        match event {
            Event::RunStarted { workflow, file, dry_run } => {
                report.workflow = workflow.clone();
                report.file = file.clone();
                report.dry_run = *dry_run;
            }
            Event::Lock { key, outcome } => {
                report.lock = Some(LockRecord { key: key.clone(), outcome: outcome.clone() });
            }
            Event::StepRetry { path, attempt, delay_ms, error } => {
                if let Ok(mut retries) = self.retries.lock() {
                    retries.push((
                        path.clone(),
                        RetryRecord { attempt: *attempt, delay_ms: *delay_ms, error: error.clone() },
                    ));
                }
            }
            Event::StepPlanned { path, name, kind, action } => {
                report.steps.push(StepRecord {
                    path: path.clone(),
                    name: name.clone(),
                    kind: kind.clone(),
                    status: StepStatus::Planned,
                    duration_ms: 0,
                    attempts: 0,
                    summary: crate::report::human::describe_action(kind, action),
                    error: None,
                    planned: Some(action.clone()),
                    retries: Vec::new(),
                });
            }
            Event::StepFinished { path, name, kind, status, duration_ms, attempts, summary, error } => {
                if *status == StepStatus::Planned
                    && let Some(last) = report.steps.iter_mut().rev().find(|s| &s.path == path)
                {
                    last.duration_ms = *duration_ms;
                    return;
                }
                let retries = self
                    .retries
                    .lock()
                    .map(|mut all| {
                        let (mine, rest): (Vec<_>, Vec<_>) = all.drain(..).partition(|(p, _)| p == path);
                        *all = rest;
                        mine.into_iter().map(|(_, r)| r).collect()
                    })
                    .unwrap_or_default();
                report.steps.push(StepRecord {
                    path: path.clone(),
                    name: name.clone(),
                    kind: kind.clone(),
                    status: *status,
                    duration_ms: *duration_ms,
                    attempts: *attempts,
                    summary: summary.clone(),
                    error: error.clone(),
                    planned: None,
                    retries,
                });
            }
            Event::RunFinished { status, exit_code, duration_ms, outputs, error } => {
                report.status = Some(*status);
                report.exit_code = Some(*exit_code);
                report.duration_ms = *duration_ms;
                report.outputs = outputs.clone();
                report.error = error.clone();
                report.finished_at = super::timestamp(SystemTime::now());
            }
            Event::StepStarted { .. } | Event::Emit { .. } => {}
        }
    }
}

/// The JSON Schema of the run report.
pub fn schema() -> Value {
    schemars::schema_for!(RunReport).to_value()
}

impl RunStatus {
    /// Whether the run counts as successful.
    pub fn is_success(self) -> bool {
        matches!(self, RunStatus::Ok | RunStatus::Skipped)
    }
}
