//! Test files (`*.test.yaml`): offline cases for a workflow, with canned HTTP
//! exchanges and command results, and what the run must do.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::Duration;

/// A test file: cases that run one workflow offline. Start the file with
/// `# yaml-language-server: $schema=../schemas/test.schema.json`.
/// Top-level keys starting with `x-` are ignored (a place for YAML anchors).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "runner test file", extend("patternProperties" = {"^x-": true}, "additionalProperties" = false))]
pub(crate) struct TestFile {
    /// Always `test`.
    pub kind: TestKind,
    /// The workflow under test, relative to this file.
    #[schemars(length(min = 1))]
    pub workflow: String,
    /// Environment, HTTP exchanges and commands shared by every case; a case's own
    /// entries come first (and win).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Fixtures>,
    /// The cases.
    #[schemars(length(min = 1))]
    pub cases: Vec<TestCase>,
}

/// The only `kind` of a test file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TestKind {
    /// A test file.
    Test,
}

/// Canned world: environment, HTTP exchanges, command results.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Fixtures {
    /// Environment variables the run sees (only these, plus PATH and HOME).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, String>,
    /// HTTP exchanges: the first entry whose `match` fits answers a request. A request
    /// nothing matches fails the case and is named in the report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpFixture>,
    /// Command results: the first entry whose `match` fits answers a command. A command
    /// nothing matches fails the case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<CommandFixture>,
}

/// One test case.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestCase {
    /// What the case checks, shown in the results.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Inputs, as typed values.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub inputs: IndexMap<String, serde_json::Value>,
    /// Run with `--dry-run`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// This case's environment, exchanges and commands.
    #[serde(flatten)]
    pub fixtures: Fixtures,
    /// What must happen.
    pub expect: Expectations,
}

/// An HTTP exchange.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpFixture {
    /// Which requests it answers.
    #[serde(rename = "match")]
    pub matcher: HttpMatch,
    /// The answer.
    pub respond: HttpRespond,
    /// Answer at most this many requests (default: any number); later ones fall
    /// through to the next matching entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub times: Option<u32>,
}

/// Request matching. Every given part must match.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpMatch {
    /// Method (default: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path, decoded, without the query; `*` matches within one segment and `**` across
    /// segments.
    pub path: String,
    /// Query parameters that must be present with these values (others may be too).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub query: IndexMap<String, String>,
    /// JSON the body must contain (a subset: maps may have more keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

/// An HTTP answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpRespond {
    /// Status (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 599))]
    pub status: Option<u16>,
    /// JSON body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Value>,
    /// Raw body (instead of `json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Response headers.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
    /// Wait this long before answering (counts against the step's timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    /// Fail instead of answering: `timeout` (no answer in time), `reset` (connection
    /// reset) or `refused` (connection refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
}

/// A transport failure to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Fault {
    /// No answer before the step's timeout.
    Timeout,
    /// The connection was reset.
    Reset,
    /// The connection was refused.
    Refused,
}

/// A command result.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommandFixture {
    /// The argv to match, entry by entry: `*` matches one argument, `**` any number
    /// (as the last entry), and `*` inside an entry matches any text.
    #[serde(rename = "match")]
    #[schemars(length(min = 1))]
    pub matcher: Vec<String>,
    /// Exit code (default 0).
    #[serde(default)]
    pub exit_code: i32,
    /// Standard output.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stdout: String,
    /// Standard error.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr: String,
    /// Behave as a command that never finishes (it hits the step's timeout).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hang: bool,
    /// Behave as a program that is not installed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub missing: bool,
    /// Answer at most this many commands (default: any number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub times: Option<u32>,
}

/// What a case expects. Everything given is checked.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Expectations {
    /// The exit code (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Outputs that must be present with these values (a subset: maps may have more keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<serde_json::Value>,
    /// The requests made, in order, as `METHOD /path` (decoded path, no query). The run
    /// must make exactly these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<Vec<String>>,
    /// The commands run, in order, each as its argv (same wildcards as `match`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<Vec<Vec<String>>>,
    /// Compare `requests` and `commands` regardless of order (for workflows whose steps
    /// run in parallel). Recordings set it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub any_order: bool,
    /// Texts stdout must contain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stdout_contains: Vec<String>,
    /// Texts stderr (progress and errors) must contain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stderr_contains: Vec<String>,
    /// Exactly what stdout must be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    /// Steps (by path) and the status each must end with (`ok`, `failed`, `skipped`, `planned`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub steps: IndexMap<String, String>,
}
