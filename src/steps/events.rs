//! What the engine tells the world. The engine never prints: it emits these events
//! (already masked) and reporters decide how to show them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A step's final status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// It ran and succeeded.
    Ok,
    /// It ran and failed.
    Failed,
    /// Its `when` was false, or the run ended before it.
    Skipped,
    /// A write step in a dry run or plan-mode call: reported, not done.
    Planned,
}

impl StepStatus {
    /// The name used in templates and output.
    pub fn name(self) -> &'static str {
        match self {
            StepStatus::Ok => "ok",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Planned => "planned",
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every step that ran succeeded (or failures were allowed to continue).
    Ok,
    /// A step failed, a `fail` step ran, or the run timed out.
    Failed,
    /// Interrupted by SIGINT or SIGTERM.
    Cancelled,
    /// Another run held the concurrency key and the policy was `skip`.
    Skipped,
}

impl RunStatus {
    /// The name used in templates (`run.status`) and output.
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Skipped => "skipped",
        }
    }
}

/// One engine event. Serialized as one JSON line with `--output json`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum Event {
    /// The run begins (after inputs, secrets and the lock were settled).
    RunStarted {
        /// Workflow name.
        workflow: String,
        /// Workflow file.
        file: String,
        /// Whether writes are only reported.
        dry_run: bool,
    },
    /// The concurrency key was contended.
    Lock {
        /// The rendered key.
        key: String,
        /// `acquired`, `waited`, `skipped` or `held` (policy fail).
        outcome: String,
    },
    /// A step starts.
    StepStarted {
        /// Where the step is: its id, with enclosing steps and loop indexes, e.g. `probe[2].queue`.
        path: String,
        /// Display name.
        name: String,
        /// Step kind.
        kind: String,
    },
    /// A failed attempt that will be retried.
    StepRetry {
        /// Step path.
        path: String,
        /// The attempt that failed (1-based).
        attempt: u32,
        /// Delay before the next attempt, in milliseconds.
        delay_ms: u64,
        /// Why the attempt failed.
        error: String,
    },
    /// A write step that a dry run did not perform: exactly what it would have done.
    StepPlanned {
        /// Step path.
        path: String,
        /// Display name.
        name: String,
        /// Step kind.
        kind: String,
        /// The request, command or change it would make (secrets masked).
        action: Value,
    },
    /// A step ended.
    StepFinished {
        /// Step path.
        path: String,
        /// Display name.
        name: String,
        /// Step kind.
        kind: String,
        /// Final status.
        status: StepStatus,
        /// Time taken, in milliseconds.
        duration_ms: u64,
        /// Attempts made.
        attempts: u32,
        /// A one-line summary of the result.
        summary: String,
        /// The error, when it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// Text an `emit` step prints.
    Emit {
        /// `stdout` or `stderr`.
        stream: String,
        /// The text (a trailing newline is added when printing if missing).
        text: String,
    },
    /// The run ended.
    RunFinished {
        /// How it ended.
        status: RunStatus,
        /// The process exit code.
        exit_code: i32,
        /// Time taken, in milliseconds.
        duration_ms: u64,
        /// The workflow's outputs.
        outputs: Value,
        /// Why it failed, if it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// Receives events. Reporters implement it.
pub(crate) trait Sink: Send + Sync {
    /// Handle one event.
    fn event(&self, event: &Event);
}

/// A sink that forwards to several.
#[derive(Default)]
pub(crate) struct Fanout {
    sinks: Vec<Box<dyn Sink>>,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fanout({} sinks)", self.sinks.len())
    }
}

impl Fanout {
    /// Add a sink.
    pub(crate) fn push(&mut self, sink: Box<dyn Sink>) {
        self.sinks.push(sink);
    }
}

impl Sink for Fanout {
    fn event(&self, event: &Event) {
        for sink in &self.sinks {
            sink.event(event);
        }
    }
}
