//! Steps: the common fields every step has and one struct per step kind.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::Duration;
use super::{Dyn, Expr, Template};

/// One step of a workflow. `type` selects the kind; the other keys are the common
/// fields below plus the fields of that kind.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Step {
    /// Identifier, unique in the workflow: lower case letters, digits, `_` and `-`.
    /// Later steps read this step's result as `steps.<id>.output`, `.status`, `.error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z][a-z0-9_]*$"))]
    pub id: Option<String>,
    /// Human-readable name shown in run output (defaults to the id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Expression; the step runs only when it is true, otherwise it is `skipped`.
    /// E.g. `not inputs.no_probe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Expr>,
    /// Time limit for the step (each attempt). HTTP steps default to their API's
    /// timeout or `30s`, `exec` to `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Retry policy for failed attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// What a failure of this step does to the run: `fail` (default) stops the steps and
    /// runs `finally`; `continue` records the failure and goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<OnError>,
    /// Whether the step changes the world (`write`) or only looks (`read`). `--dry-run`
    /// runs reads and only reports writes. Defaults by kind: HTTP GET/HEAD read, other
    /// methods write; `exec` write; `cron` write; `render` to a file write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<Effect>,
    /// The kind of step and its fields.
    #[serde(flatten)]
    pub kind: StepKind,
}

/// A step failure's effect on the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OnError {
    /// Stop running steps, run `finally`, exit 1 (or the code given by a `fail` step).
    Fail,
    /// Record the failure in `steps.<id>` and continue with the next step.
    Continue,
}

/// A step's effect, which decides what `--dry-run` does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Effect {
    /// Only reads: runs during a dry run too.
    Read,
    /// Changes something: a dry run reports exactly what it would do instead.
    Write,
}

/// Retry policy.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Retry {
    /// Total attempts including the first (2–10).
    #[schemars(range(min = 2, max = 10))]
    pub attempts: u32,
    /// Delay before the first retry; doubles after each attempt (default `1s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Duration>,
    /// Upper bound for the delay between attempts (default `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<Duration>,
    /// Randomise each delay by up to ±50% so many runners do not retry in step
    /// (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<bool>,
    /// Retry even non-idempotent HTTP methods (POST, PATCH). Off by default: a POST
    /// that timed out may already have been applied.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsafe_methods: bool,
}

/// The step kinds.
// Steps are built once at load time and never moved in hot loops; boxing the large
// variants would only add noise to every match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum StepKind {
    /// Send an HTTP request and decode the response.
    Http(HttpStep),
    /// Run a program with an argument list (never through a shell).
    Exec(ExecStep),
    /// Run another workflow file with inputs and return its outputs.
    Call(CallStep),
    /// Compute values.
    Set(SetStep),
    /// Ordered cases: the first whose `when` is true runs its steps.
    Switch(SwitchStep),
    /// Run steps once per item of a list, optionally in parallel.
    ForEach(ForEachStep),
    /// Print text or JSON.
    Emit(EmitStep),
    /// Render a template to a file or stdout.
    Render(RenderStep),
    /// End the run successfully (or with the given exit code) and set outputs.
    Stop(StopStep),
    /// End the run as failed with a message and an exit code.
    Fail(FailStep),
    /// Enable or disable a lane's worker cron through the registry's cron backend.
    Cron(CronStep),
    /// Check a text against an ordered allow/deny contract.
    Guard(GuardStep),
    /// Move an item through the workflow's lifecycle: from a state, by an event (or to
    /// a target, or by a role's completion result), to the next state and its labels.
    Transition(TransitionStep),
    /// First-match stages: run the stages in order; the first whose result is not
    /// `none` decides, and the later ones do not run. The step's output is that result.
    Stages(StagesStep),
    /// End the enclosing stage, `for_each` iteration or (called) workflow with a
    /// value, without ending the whole run.
    Return(ReturnStep),
    /// Run the steps at the same time; each is recorded under its id as usual.
    Parallel(ParallelStep),
    /// Create or server-side-apply a templated Kubernetes object (effect `write`).
    Kubernetes(super::kubernetes::KubernetesStep),
}

impl StepKind {
    /// The `type` value of this kind.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            StepKind::Http(_) => "http",
            StepKind::Exec(_) => "exec",
            StepKind::Call(_) => "call",
            StepKind::Set(_) => "set",
            StepKind::Switch(_) => "switch",
            StepKind::ForEach(_) => "for_each",
            StepKind::Emit(_) => "emit",
            StepKind::Render(_) => "render",
            StepKind::Stop(_) => "stop",
            StepKind::Fail(_) => "fail",
            StepKind::Cron(_) => "cron",
            StepKind::Guard(_) => "guard",
            StepKind::Transition(_) => "transition",
            StepKind::Stages(_) => "stages",
            StepKind::Return(_) => "return",
            StepKind::Parallel(_) => "parallel",
            StepKind::Kubernetes(_) => "kubernetes",
        }
    }
}

/// HTTP methods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum HttpMethod {
    /// GET (read, idempotent).
    #[default]
    Get,
    /// HEAD (read, idempotent).
    Head,
    /// POST (write, not idempotent).
    Post,
    /// PUT (write, idempotent).
    Put,
    /// PATCH (write, not idempotent).
    Patch,
    /// DELETE (write, idempotent).
    Delete,
}

impl HttpMethod {
    /// The method as sent on the wire, e.g. `GET`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }

    /// Whether repeating the request is safe.
    pub(crate) fn is_idempotent(self) -> bool {
        matches!(self, HttpMethod::Get | HttpMethod::Head | HttpMethod::Put | HttpMethod::Delete)
    }

    /// Whether the method only reads.
    pub(crate) fn is_read(self) -> bool {
        matches!(self, HttpMethod::Get | HttpMethod::Head)
    }
}

/// How an HTTP response body is decoded into `output.body`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Decode {
    /// Parse as JSON; an empty body is `none`.
    #[default]
    Json,
    /// Keep as text.
    Text,
    /// Ignore the body.
    None,
}

/// `type: http`: one HTTP request.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct HttpStep {
    /// Name of an API declared under `apis`; the request goes to its base URL plus
    /// `path`, with its auth, headers and timeout. Give either `api` or `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// Full URL (template), for calls outside a declared API. Interpolated values are
    /// percent-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Template>,
    /// HTTP method (default `GET`).
    #[serde(default)]
    pub method: HttpMethod,
    /// Path under the API's base URL (template), e.g.
    /// `/api/agents/{{ inputs.agent }}/queue`. Each interpolated value is
    /// percent-encoded as one path segment, so `/` or `?` in a value cannot change the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Template>,
    /// Query parameters (values are templates; a list value repeats the parameter;
    /// a `none` value omits it). Values are percent-encoded.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub query: IndexMap<String, Dyn>,
    /// Extra headers (templates). Values containing CR or LF are refused.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, Template>,
    /// JSON body, written as YAML; strings inside are templates and keep their types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Dyn>,
    /// Status codes that count as success (default: any 2xx).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(range(min = 100, max = 599)))]
    pub expect: Option<Vec<u16>>,
    /// How to decode the body (default `json`).
    #[serde(default)]
    pub decode: Decode,
    /// What to do per outcome instead of failing. Keys: a status (`"409"`), a status
    /// class (`"4xx"`, `"5xx"`), `http_error` (any unexpected status), `transport`
    /// (connection failed), `timeout`, `decode` (body is not valid JSON). Values:
    /// `fail`, `continue`, or `{value: ...}` to succeed with that output; templates in
    /// the value see `response.status`, `response.body` (decoded), `response.text` (the
    /// body as received, for an unexpected status) and `error`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub on: IndexMap<String, OutcomeAction>,
    /// Largest response body accepted, in bytes (default: the API's, else 10 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_073_741_824))]
    pub max_response_bytes: Option<u64>,
    /// Which redirects to follow (default: the API's, else `follow`). `follow` follows
    /// up to 5, but a hop to another origin (scheme, host or port) never carries
    /// credentials, cookies, `Referer`, any header holding a secret, or a body;
    /// `same_origin` fails the step on a redirect to another origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirects: Option<Redirects>,
}

/// Which HTTP redirects are followed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Redirects {
    /// Follow up to 5 redirects. Crossing to another origin drops `Authorization`,
    /// cookies, `Referer` and every header that is sensitive or holds a secret; a
    /// redirect that would re-send a body (307/308) to another origin fails instead.
    #[default]
    Follow,
    /// Follow redirects within the same origin only; any other fails the step.
    SameOrigin,
}

/// What an HTTP outcome turns into.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum OutcomeAction {
    /// `fail` or `continue`.
    Simple(SimpleOutcome),
    /// `{value: ...}`: the step succeeds with this output.
    Value(ValueOutcome),
}

/// `fail` or `continue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SimpleOutcome {
    /// The step fails (then `on_error` decides).
    Fail,
    /// The step is recorded as failed and the run continues.
    Continue,
}

/// Succeed with a value.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ValueOutcome {
    /// The step's output (strings are templates).
    pub value: Dyn,
}

/// How `exec` turns stdout into `output.stdout`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Parse {
    /// Keep the text as is.
    #[default]
    Text,
    /// Parse as JSON (empty output is `none`).
    Json,
    /// Split into a list of non-empty lines.
    Lines,
    /// Discard stdout.
    None,
}

/// `type: exec`: run a program. Never goes through a shell: each argv entry is one
/// argument, whatever it contains.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct ExecStep {
    /// Program and arguments (templates, one argument each), e.g.
    /// `[gh, pr, view, "{{ item.url }}", --json, state]`.
    #[schemars(length(min = 1))]
    pub argv: Vec<Template>,
    /// Extra environment variables for the program (templates).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, Template>,
    /// Working directory (template; default: the current directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<Template>,
    /// Text written to the program's standard input (template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<Template>,
    /// How to parse stdout (default `text`).
    #[serde(default)]
    pub parse: Parse,
    /// Exit codes that count as success (default `[0]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(range(min = 0, max = 255)))]
    pub ok_codes: Option<Vec<i32>>,
    /// Let interpolated arguments start with `-` (default `false`). Without it, an argv
    /// entry whose template produced text starting with `-` (`--output=/x` from an
    /// input) is refused, so a value can never become an option of the program. For a
    /// program that accepts `--`, prefer putting `--` before the interpolated values.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub options_from_input: bool,
    /// Keep going when stdout or stderr passes the 10 MiB capture limit: the rest is
    /// dropped and the output has `truncated: true` (default `false`: the step fails).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncate: bool,
}

/// `type: call`: run another workflow.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct CallStep {
    /// Path of the workflow file, relative to this file.
    #[schemars(length(min = 1))]
    pub workflow: String,
    /// Inputs for it (strings are templates). Its required inputs must be given.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub inputs: IndexMap<String, Dyn>,
    /// Run it in plan mode: its reads run, its writes are only reported (as in
    /// `--dry-run`). This is how a probe reuses a preflight without claiming.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plan: bool,
}

/// `type: set`: compute values. The output is the map of values.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct SetStep {
    /// Values (strings are templates; a template that is one `{{ expr }}` keeps its type).
    /// Each value sees the ones before it by name, typed: `count: "{{ items | length }}"`
    /// after `items: "{{ ... }}"`.
    #[schemars(length(min = 1))]
    pub values: IndexMap<String, Dyn>,
}

/// `type: switch`: ordered cases, first match wins.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct SwitchStep {
    /// Cases, tried in order.
    #[schemars(length(min = 1))]
    pub cases: Vec<Case>,
    /// Runs when no case matches. Without it, the switch's output is `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Branch>,
}

/// One case of a switch.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Case {
    /// Expression; the first case where it is true runs.
    pub when: Expr,
    /// Steps of this case (may be empty when `output` says it all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// The switch's output when this case runs (strings are templates; they see the
    /// case's steps). Default: the output of the case's last step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Dyn>,
}

/// The default branch of a switch.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Branch {
    /// Steps of the branch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// The switch's output when this branch runs. Default: the last step's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Dyn>,
}

/// `type: for_each`: run steps once per item.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct ForEachStep {
    /// Expression yielding the list to iterate, e.g. `lanes`.
    pub items: Expr,
    /// Name of the loop variable (default `item`). `loop.index0` and `loop.index` are
    /// also available.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z_][a-z0-9_]*$"))]
    pub as_name: Option<String>,
    /// How many items run at once (default 1: one after another): a number, or a
    /// template evaluated when the loop starts, e.g. `"{{ inputs.parallel or (lanes |
    /// length) }}"`, so the width can come from inputs or the lane registry (clamped to
    /// 1..=256). Results keep the order of the items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<Width>,
    /// Steps run for each item. Their ids are scoped to one iteration.
    #[schemars(length(min = 1))]
    pub steps: Vec<Step>,
    /// Each item's result (strings are templates seeing the loop variable and the
    /// iteration's steps). Default: the output of the last step. The step's output is
    /// the list of results, in item order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Dyn>,
    /// Expression: stop at the first item whose result makes it true. It sees the
    /// item's `result`. Items still running are cancelled and
    /// later items are not started; the output ends with the matching item's result.
    /// E.g. `result.evidence` stops at the first PR with evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Expr>,
}

/// Output stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Stream {
    /// Standard output.
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
}

/// `type: emit`: print text or JSON.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct EmitStep {
    /// Text to print (template). Give `text` or `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Template>,
    /// Value to print as JSON (strings are templates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Dyn>,
    /// Pretty-print JSON (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretty: Option<bool>,
    /// Where to print (default `stdout`).
    #[serde(default)]
    pub to: Stream,
}

/// `type: render`: render a template file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct RenderStep {
    /// Template file, relative to this workflow file. It may include templates only
    /// from its own directory tree.
    #[schemars(length(min = 1))]
    pub template: String,
    /// Values for the template (strings are templates evaluated in the workflow).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub vars: IndexMap<String, Dyn>,
    /// File to write (template); written atomically. Without it the text is printed
    /// and the step only reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out: Option<Template>,
}

/// `type: stop`: end the run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct StopStep {
    /// Line printed when stopping (template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Template>,
    /// Exit code 0–63 (default 0) or a template yielding one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<Dyn>,
    /// Outputs of the run, replacing the workflow's `outputs` (strings are templates).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub outputs: IndexMap<String, Dyn>,
}

/// `type: fail`: end the run as failed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct FailStep {
    /// Why (template); shown in the output and the report.
    pub message: Template,
    /// Exit code 1–63 (default 1) or a template yielding one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<Dyn>,
    /// Outputs of the run (strings are templates).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub outputs: IndexMap<String, Dyn>,
}

/// `type: cron`: switch a lane's worker cron on or off, or (`read: true`) read every
/// job's state once so later toggles of the run need not wait for it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct CronStep {
    /// Lane id (template), e.g. `"{{ lane.id }}"`. Must name a lane of the registry; a
    /// literal id is checked by `runner validate`. Required unless `read` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<Template>,
    /// `true` to enable, `false` to disable, or a template yielding a boolean. Required
    /// unless `read` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<Dyn>,
    /// `true`: change nothing, only read the backend's job states (`openclaw cron list
    /// --all --json`, or a `command` backend's `list`) now, the one read of the run
    /// that every toggle after it uses. Put it beside slower work (e.g. in a `parallel`
    /// block) so the toggles start at once. Output: `{read, command, jobs}`. Takes
    /// neither `lane`, `enabled` nor `reason`; it only reads, also in a dry run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read: bool,
    /// Why (template); recorded in the output and the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Template>,
}

impl CronStep {
    /// Why this cron step's fields do not fit together, if they do not: a read takes no
    /// lane, state or reason; a toggle needs a lane and a state.
    pub(crate) fn shape_problem(&self) -> Option<String> {
        if self.read {
            let extra: Vec<&str> = [
                ("`lane`", self.lane.is_some()),
                ("`enabled`", self.enabled.is_some()),
                ("`reason`", self.reason.is_some()),
            ]
            .into_iter()
            .filter_map(|(name, set)| set.then_some(name))
            .collect();
            return (!extra.is_empty()).then(|| {
                format!(
                    "a cron step with `read: true` only reads the job states; remove {}",
                    extra.join(", ")
                )
            });
        }
        let missing: Vec<&str> = [("`lane`", self.lane.is_none()), ("`enabled`", self.enabled.is_none())]
            .into_iter()
            .filter_map(|(name, absent)| absent.then_some(name))
            .collect();
        (!missing.is_empty()).then(|| {
            format!(
                "a cron step needs {} (or `read: true` to only read the job states)",
                missing.join(" and ")
            )
        })
    }
}

/// `type: guard`: check a text against a contract of ordered rules.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct GuardStep {
    /// The text to check (template). Leading and trailing whitespace is trimmed.
    pub text: Template,
    /// Restrict the lane-specific rules (the lane's clear text) to this lane
    /// (template). Without it every lane's clear text is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<Template>,
    /// Rules to use instead of the registry's `terminal_contract`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<super::lanes::GuardRule>>,
    /// Fail the step when the text is rejected (default `true`); otherwise the
    /// verdict is only in the output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_on_reject: Option<bool>,
}

/// `type: transition`: look up a move in the workflow's `lifecycle`. The output is
/// `{from, from_label, to, to_label, to_type, to_role, event, actions, add_labels,
/// remove_labels}` (with `labels`/`fields` also `route` and `waiting`); a move the
/// lifecycle does not allow fails the step. Give exactly one of `event`, `to`, `role`
/// with `result`, or `labels`/`fields` (take the state's `route`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct TransitionStep {
    /// The item's current state: a state key or its label (template).
    pub state: Template,
    /// The event, e.g. `PICKUP` (template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Template>,
    /// The target state (key or label): the move must be one transition away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Template>,
    /// A role whose completion `result` gives the event (from the lifecycle's roles file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Template>,
    /// The completion result reported by the role's worker, e.g. `done`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Template>,
    /// Take the state's `route`: the item's labels, as a template rendering a JSON list
    /// (`{{ issue.labels | tojson }}`) or comma-separated text; the routing policy's
    /// override label among them, else its default, picks the case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Template>,
    /// For a route by `field`: the item's fields, a template rendering a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Template>,
    /// The states the item can be in at this step. `runner validate` checks that a
    /// literal `event` is defined for each (and for a literal `state`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<String>,
}

/// `type: stages`: an ordered list of stages, first match wins. Each stage runs its
/// steps and yields a `result`; the first stage whose result is not `none` decides
/// and the stages after it do not run. A stage can also decide early with a `return`
/// step. The step's output is the deciding result (or `default`).
///
/// ```yaml
/// - id: decision
///   type: stages
///   stages:
///     - id: token
///       result: "{{ {'action': 'stuck'} if secrets.token is none else none }}"
///     - id: queue
///       steps: [{id: queue, type: http, api: dispatch, path: /api/queue}]
///       result: "{{ steps.queue.output.body | first }}"
///   catch: {action: stuck, reason: "{{ error.stage }}: {{ error.message }}"}
/// ```
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct StagesStep {
    /// The stages, tried in order. Steps of all stages share one scope, so a stage sees
    /// the steps of the stages before it.
    #[schemars(length(min = 1))]
    pub stages: Vec<Stage>,
    /// The result when a stage fails (one of its steps fails without
    /// `on_error: continue`): one error mapping for every stage, so each message is
    /// written once. It sees `error.stage` (the stage id), `error.step` (the failed
    /// step's id), `error.message` (that step's error). Without it a failed stage
    /// fails this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch: Option<Dyn>,
    /// The output when no stage decides (default `none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Dyn>,
    /// Expression deciding, when the step starts, whether stages marked `prefetch`
    /// are prefetched in this run (default: they always are), e.g. `inputs.prefetch`
    /// to let the caller choose between fewer requests and a shorter critical path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefetch_when: Option<Expr>,
}

/// One stage of a `stages` step.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Stage {
    /// Identifier of the stage (shown in the run output and in `error.stage`).
    #[schemars(regex(pattern = r"^[a-z][a-z0-9_]*$"))]
    pub id: String,
    /// Steps of the stage, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// The stage's result (strings are templates seeing the stage's steps); `none`
    /// means "this stage decides nothing" and the next stage runs. A stage needs a
    /// `result` or a `return` step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Dyn>,
    /// Start this stage's independent reads (HTTP GET/HEAD and `effect: read` exec
    /// steps whose templates use no `steps.`) as soon as the `stages` step starts,
    /// while earlier stages run. First-match is kept: if an earlier stage decides, the
    /// prefetched results are discarded (requests in flight are cancelled). A
    /// prefetched stage may contain no writes, so a write never starts early.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prefetch: bool,
}

/// `type: return`: end the enclosing stage, `for_each` iteration or workflow with
/// `value` (strings are templates). In a stage a non-`none` value decides; in a
/// `for_each` it is the item's result; at a workflow's top level a map value
/// replaces the workflow's `outputs`. A `switch` case is not a boundary: a `return`
/// inside one ends the block around the switch.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct ReturnStep {
    /// The value returned (default `none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Dyn>,
}

/// `type: parallel`: run independent steps at the same time. They see the steps
/// before the block (not each other); after it, each is available as `steps.<id>`.
/// The output is the list of the steps' outputs, in order. A failure (without
/// `on_error: continue`) fails the block once all its steps have finished.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct ParallelStep {
    /// The steps run together.
    #[schemars(length(min = 1))]
    pub steps: Vec<Step>,
    /// How many run at once (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub limit: Option<u32>,
}

/// A `for_each` width: a fixed count or a template yielding one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum Width {
    /// A fixed number of items at once.
    Count(#[schemars(range(min = 1, max = 256))] u32),
    /// A template yielding the number when the loop starts (a number below 1 means 1,
    /// above 256 means 256).
    Template(Template),
}

impl Width {
    /// The largest width a loop may have.
    pub(crate) const MAX: u32 = 256;
}

impl std::fmt::Display for Width {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Width::Count(count) => write!(f, "{count}"),
            Width::Template(text) => f.write_str(text),
        }
    }
}
