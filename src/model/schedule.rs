//! The schedule file (`kind: schedule`): which workflows `runner schedule` runs, when,
//! with which inputs, and what happens on overlap and after downtime.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::Duration;

/// Workflows run on a schedule by `runner schedule`. Start the file with
/// `# yaml-language-server: $schema=../schemas/schedule.schema.json`.
/// Top-level keys starting with `x-` are ignored (a place for YAML anchors).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "runner schedule", extend("patternProperties" = {"^x-": true}, "additionalProperties" = false))]
pub(crate) struct Schedule {
    /// Always `schedule`.
    pub kind: ScheduleKind,
    /// The time zone cron expressions are read in, unless an entry names its own: an
    /// IANA name such as `Europe/Berlin` (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// What to run and when.
    #[schemars(length(min = 1))]
    pub entries: Vec<ScheduleEntry>,
}

/// The only `kind` of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ScheduleKind {
    /// A schedule.
    Schedule,
}

/// One scheduled workflow.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleEntry {
    /// A unique name for the entry, used in logs, locks and the saved fire times.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]*$"), length(max = 64))]
    pub id: String,
    /// The workflow file, relative to this schedule file.
    pub workflow: String,
    /// When to run: a cron expression with 5 fields (`*/5 * * * *`: minute hour
    /// day-of-month month day-of-week) or 6 (seconds first), a shorthand (`@hourly`,
    /// `@daily`, `@weekly`, `@monthly`, `@yearly`), or `@every 5m` (any duration;
    /// fires at whole multiples of it since 1970-01-01 UTC).
    pub cron: String,
    /// The time zone the cron expression is read in (IANA name); default: the file's
    /// `time_zone`, else `UTC`. Across DST changes, a job at a fixed time runs once
    /// (at the first occurrence of a repeated time, just after a skipped one); an
    /// interval job runs at every matching instant of real time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The workflow's inputs. Texts are passed as they are; other values as JSON.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub inputs: IndexMap<String, serde_json::Value>,
    /// Start each firing up to this much later (a delay derived from the entry and
    /// the fire time), so many machines with one schedule do not all start at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Duration>,
    /// End a run that takes longer (SIGTERM, then SIGKILL 10s later). Default `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// What to do when the entry fires while its previous run is still going.
    #[serde(default)]
    pub overlap: Overlap,
    /// What to do, when the scheduler starts, about firings missed while it was not
    /// running (the last fire times are kept in the state directory).
    #[serde(default)]
    pub missed: Missed,
    /// With `missed: all`, run at most this many missed firings (the newest). Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_missed: Option<u32>,
    /// Run with `--dry-run`: read steps run, write steps are only reported.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// Overlap policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Overlap {
    /// Skip the new firing (logged).
    #[default]
    Skip,
    /// Run it when the previous run ends (at most 10 waiting).
    Queue,
    /// End the previous run (SIGTERM) and start the new one.
    Replace,
}

/// Missed-run policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Missed {
    /// Forget them (logged); wait for the next firing.
    #[default]
    None,
    /// Run once for all of them.
    Last,
    /// Run each (up to `max_missed`, the newest), one after another.
    All,
}

impl ScheduleEntry {
    /// The run time limit (default one hour).
    pub(crate) fn timeout(&self) -> std::time::Duration {
        self.timeout.map_or(std::time::Duration::from_secs(3600), Duration::get)
    }

    /// The bound for `missed: all`.
    pub(crate) fn max_missed(&self) -> usize {
        self.max_missed.unwrap_or(10).clamp(1, 100) as usize
    }
}
