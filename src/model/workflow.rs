//! The workflow file: metadata, inputs, secrets, environment, APIs, steps, outputs.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::Duration;
use super::step::Step;
use super::{Dyn, Template};

/// A runner workflow: typed inputs, declared secrets and environment, named HTTP APIs,
/// and an ordered list of steps. Start the file with
/// `# yaml-language-server: $schema=../schemas/workflow.schema.json` for editor support.
///
/// Top-level keys starting with `x-` are ignored, so they can hold YAML anchors
/// (`x-defaults: &defaults {...}`) for `<<: *defaults` merges.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "runner workflow", extend("patternProperties" = {"^x-": true}, "additionalProperties" = false))]
pub(crate) struct Workflow {
    /// The file kind. Optional for workflows: a file without `kind` is a workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<WorkflowKind>,
    /// Short name of the workflow, shown in run output and reports.
    #[schemars(length(min = 1))]
    pub name: String,
    /// What the workflow does and when to run it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Path of the lane registry this workflow uses, relative to this file
    /// (e.g. `lanes.yaml`). Makes `lanes` (the list of lanes), `lane_dispatch` (the
    /// registry's `dispatch` block: `aliases`, `grooming`) and `get_lane(id)` available to templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lanes: Option<String>,
    /// Path of a lifecycle file, relative to this file: `transition` steps move items
    /// through it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<String>,
    /// Path of a roles file, relative to this file: makes `select_level(role, title,
    /// body, labels)` available to templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<String>,
    /// Typed inputs, given on the command line with `--input NAME=VALUE` or by a `call`
    /// step. An input without a `default` is required.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub inputs: IndexMap<String, InputDef>,
    /// Secrets read from the environment, available as `secrets.NAME`. Their values
    /// never appear in any output: logs, JSON events, reports, plans or errors.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub secrets: IndexMap<String, SecretDef>,
    /// Environment variables the workflow reads, available as `env.NAME`. Only declared
    /// variables are visible to templates.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, EnvDef>,
    /// Values computed once before the first step, in order, available as `vars.NAME`.
    /// Strings are templates; a later var may use an earlier one.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub vars: IndexMap<String, Dyn>,
    /// Named HTTP APIs that `http` steps call with `api: NAME`: base URL, bearer token,
    /// default headers and timeout, one connection pool each.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub apis: IndexMap<String, ApiDef>,
    /// Overlap control: runs that render the same `key` never run at the same time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    /// Time limit for the whole run, e.g. `10m`. When it passes, running steps are
    /// cancelled and the `finally` steps run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// The steps, run in order.
    #[schemars(length(min = 1))]
    pub steps: Vec<Step>,
    /// Steps that always run after `steps`, whether they succeeded, failed or were
    /// cancelled (e.g. reporting). `run.status` tells them how the run went.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finally: Vec<Step>,
    /// The workflow's outputs, evaluated after the steps. Strings are templates; a
    /// template that is exactly one `{{ expr }}` keeps the expression's type.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub outputs: IndexMap<String, Dyn>,
    /// Exit code of a run that finishes without `stop` or `fail`: a number 0–63 or a
    /// template yielding one, e.g. `"{{ 1 if steps.beat.output.status == 'error' else 0 }}"`.
    /// Defaults to 0, or 1 when a step failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<Dyn>,
}

/// The only `kind` a workflow file may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WorkflowKind {
    /// A workflow file.
    Workflow,
}

/// A declared input.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InputDef {
    /// The value's type; command-line values are converted to it and checked before
    /// anything runs.
    #[serde(rename = "type")]
    pub ty: InputType,
    /// What the input is for (shown by `runner run --help`-style listings and editors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Value used when the input is not given. Without a default the input is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// The only values allowed, if set.
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<serde_json::Value>>,
}

/// Types an input can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum InputType {
    /// Any text.
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// `true` or `false` (on the command line also exactly `true`/`false`).
    Boolean,
    /// A list (JSON on the command line).
    List,
    /// A map (JSON on the command line).
    Map,
    /// The id of a lane in the workflow's lane registry.
    Lane,
}

impl InputType {
    /// Whether a value has this type (a lane id is text; the registry check is separate).
    pub(crate) fn accepts(self, value: &serde_json::Value) -> bool {
        match self {
            InputType::String | InputType::Lane => value.is_string(),
            InputType::Integer => value.is_i64() || value.is_u64(),
            InputType::Number => value.is_number(),
            InputType::Boolean => value.is_boolean(),
            InputType::List => value.is_array(),
            InputType::Map => value.is_object(),
        }
    }

    /// The name used in files and messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            InputType::String => "string",
            InputType::Integer => "integer",
            InputType::Number => "number",
            InputType::Boolean => "boolean",
            InputType::List => "list",
            InputType::Map => "map",
            InputType::Lane => "lane",
        }
    }
}

/// A secret read from an environment variable.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecretDef {
    /// Name of the environment variable holding the secret, e.g. `DISPATCH_AGENT_TOKEN`.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub env: String,
    /// What the secret is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When `true`, a missing variable is allowed and `secrets.NAME` is `none`.
    /// Otherwise a missing secret stops the run before any step.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

/// An environment variable the workflow reads.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnvDef {
    /// Value used when the variable is unset or empty. Without a default, `env.NAME`
    /// is `none` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// What the variable is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A named HTTP API.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiDef {
    /// Base URL (template), e.g. `"{{ env.DISPATCH_URL }}"`. A trailing `/` is ignored.
    pub base_url: Template,
    /// Bearer token (template), sent as `Authorization: Bearer ...`, e.g.
    /// `"{{ secrets.dispatch_token }}"`. The header is always redacted in output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer: Option<Template>,
    /// Headers sent with every request (templates), e.g. `X-Agent-Name`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, Template>,
    /// Default timeout of each request to this API (default `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Largest response body accepted, in bytes (default 10 MiB). Larger bodies fail
    /// the step with a clear error instead of filling memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_073_741_824))]
    pub max_response_bytes: Option<u64>,
    /// Which redirects requests to this API follow (default `follow`); `same_origin`
    /// refuses a redirect to another scheme, host or port. See the step's `redirects`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirects: Option<super::step::Redirects>,
}

/// Overlap control for a workflow.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Concurrency {
    /// Lock key (template), e.g. `"preflight-{{ inputs.lane }}"`. Runs with the same key
    /// never overlap; the lock is an OS file lock under the state directory.
    pub key: Template,
    /// What a run does when another run holds the key: `skip` (exit 0 with a clear
    /// line), `wait` (until the lock is free or `wait_timeout` passes) or `fail` (exit 75).
    #[serde(default)]
    pub policy: ConcurrencyPolicy,
    /// How long `wait` waits before giving up (default `10m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_timeout: Option<Duration>,
}

/// What to do when the concurrency key is held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ConcurrencyPolicy {
    /// Do nothing and exit 0.
    #[default]
    Skip,
    /// Wait for the other run to finish.
    Wait,
    /// Exit 75.
    Fail,
}
