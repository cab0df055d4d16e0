//! `--report FILE`: a versioned JSON record of the run (schema in
//! `schemas/run-report.schema.json`), built from the same masked events.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::events::{Event, RunStatus, Sink, StepStatus};

/// The report format version; bumped on incompatible changes. Version 2 added the run
/// id, the runner version, the (masked) inputs and each step's start time.
pub(crate) const REPORT_VERSION: u32 = 2;

/// A record of one `runner run`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "runner run report")]
pub struct RunReport {
    /// Format version (currently 2).
    pub version: u32,
    /// The run's id in the run history (`runner show ID`); empty with `--no-history`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_id: String,
    /// The version of runner that ran it.
    #[serde(default)]
    pub runner_version: String,
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
    /// The inputs the run was given, typed, secrets masked.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub inputs: serde_json::Map<String, Value>,
    /// The workflow's outputs.
    pub outputs: Value,
    /// Every step that finished or was planned, in the order they ended.
    pub steps: Vec<StepRecord>,
    /// Which steps ran at the same time: groups of steps directly inside one step (the
    /// top level, a `parallel` block, all iterations of a `for_each`, all stages of a
    /// `stages` step, a called workflow) whose run times overlapped, derived from when
    /// each step started and ended. Absent when nothing overlapped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overlaps: Vec<super::overlap::Overlap>,
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
    /// When the step started (RFC 3339, UTC).
    #[serde(default)]
    pub started_at: String,
    /// When the step started, in milliseconds after the run started: steps whose
    /// `[start_ms, start_ms + duration_ms)` intervals meet ran at the same time.
    #[serde(default)]
    pub start_ms: u64,
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
pub(crate) struct Collector {
    report: Mutex<RunReport>,
    retries: Mutex<Vec<(String, RetryRecord)>>,
    /// When each running step started, by path.
    starts: Mutex<HashMap<String, (SystemTime, Instant)>>,
    /// Each finished step's span, for [`RunReport::overlaps`].
    spans: Mutex<Vec<super::overlap::Span>>,
    begun: Instant,
}

impl Default for Collector {
    fn default() -> Self {
        Collector {
            report: Mutex::new(RunReport {
                version: REPORT_VERSION,
                runner_version: env!("CARGO_PKG_VERSION").to_string(),
                started_at: super::timestamp(SystemTime::now()),
                outputs: Value::Null,
                ..RunReport::default()
            }),
            retries: Mutex::new(Vec::new()),
            starts: Mutex::new(HashMap::new()),
            spans: Mutex::new(Vec::new()),
            begun: Instant::now(),
        }
    }
}

impl Collector {
    /// The report so far.
    pub(crate) fn report(&self) -> RunReport {
        self.report.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Set what is known before the first event (for runs that end before starting).
    pub(crate) fn set_file(&self, file: &str) {
        if let Ok(mut report) = self.report.lock()
            && report.file.is_empty()
        {
            report.file = file.to_string();
        }
    }
}

impl Collector {
    /// Record the run's id and its (already masked) inputs.
    pub(crate) fn set_identity(&self, run_id: &str, inputs: serde_json::Map<String, Value>) {
        if let Ok(mut report) = self.report.lock() {
            report.run_id = run_id.to_string();
            report.inputs = inputs;
        }
    }

    /// When the step at `path` started (now, if no start was seen), and how long after
    /// the run's start that was.
    fn start_of(&self, path: &str) -> (String, u64) {
        let (wall, at) = self
            .starts
            .lock()
            .ok()
            .and_then(|mut starts| starts.remove(path))
            .unwrap_or_else(|| (SystemTime::now(), Instant::now()));
        (super::timestamp(wall), self.offset(at))
    }

    /// Milliseconds from the run's start to `at` (rounded down, so a step that ended
    /// before another started never seems to overlap it).
    fn offset(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.begun).as_millis()).unwrap_or(u64::MAX)
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
                let (started_at, start_ms) = self.start_of(path);
                report.steps.push(StepRecord {
                    started_at,
                    start_ms,
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
                let (started_at, start_ms) = self.start_of(path);
                if let Ok(mut spans) = self.spans.lock() {
                    let end_ms = self.offset(Instant::now()).max(start_ms);
                    spans.push(super::overlap::Span { path: path.clone(), start_ms, end_ms });
                }
                report.steps.push(StepRecord {
                    started_at,
                    start_ms,
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
                report.overlaps =
                    self.spans.lock().map(|spans| super::overlap::overlaps(&spans)).unwrap_or_default();
            }
            Event::StepStarted { path, .. } => {
                if let Ok(mut starts) = self.starts.lock() {
                    starts.insert(path.clone(), (SystemTime::now(), Instant::now()));
                }
            }
            Event::Emit { .. } => {}
        }
    }
}

/// The JSON Schema of the run report.
pub(crate) fn schema() -> Value {
    schemars::schema_for!(RunReport).to_value()
}

impl RunStatus {
    /// Whether the run counts as successful.
    pub fn is_success(self) -> bool {
        matches!(self, RunStatus::Ok | RunStatus::Skipped)
    }
}

/// How deep a step path is nested: `probe[2].queue` is 1 (dots outside brackets).
pub(crate) fn depth(path: &str) -> usize {
    let mut level = 0usize;
    let mut brackets = 0usize;
    for c in path.chars() {
        match c {
            '[' => brackets += 1,
            ']' => brackets = brackets.saturating_sub(1),
            '.' if brackets == 0 => level += 1,
            _ => {}
        }
    }
    level
}

/// The steps in the order they started (parents before their children).
pub(crate) fn by_start(report: &RunReport) -> Vec<&StepRecord> {
    let mut steps: Vec<&StepRecord> = report.steps.iter().collect();
    steps.sort_by(|a, b| a.start_ms.cmp(&b.start_ms).then(depth(&a.path).cmp(&depth(&b.path))));
    steps
}
