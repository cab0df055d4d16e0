//! The lane registry: every lane of the fleet, its cron, prompt and terminal texts,
//! plus the worker terminal contract shared by all lanes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Template;
use super::duration::Duration;

/// The lane registry. Every workflow and prompt takes lanes from here; no lane is
/// listed anywhere else. Start the file with
/// `# yaml-language-server: $schema=../schemas/lanes.schema.json`.
/// Top-level keys starting with `x-` are ignored (a place for YAML anchors).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "runner lane registry", extend("patternProperties" = {"^x-": true}, "additionalProperties" = false))]
pub(crate) struct LaneRegistry {
    /// Always `lanes`.
    pub kind: LanesKind,
    /// How `cron` steps switch a lane's worker cron on and off.
    pub cron_backend: CronBackend,
    /// The lanes, in the order workflows iterate them.
    #[schemars(length(min = 1))]
    pub lanes: Vec<Lane>,
    /// Dispatch settings of the whole fleet: old lane names and how the heartbeat
    /// grooms. Templates of a workflow with `lanes:` see this block as `lane_dispatch`
    /// (`lane_dispatch.aliases`, `lane_dispatch.grooming`), defaults filled in.
    #[serde(default)]
    pub dispatch: RegistryDispatch,
    /// Final forms a worker may end with, shown in prompts (`final_forms`). `{name}`
    /// slots are filled in by the worker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub final_forms: Vec<FinalForm>,
    /// Ordered rules deciding whether a worker's final text is a valid terminal result.
    /// Each lane's `terminal.clear` text is accepted before these rules are tried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub terminal_contract: Vec<GuardRule>,
    /// `lanes` as a template value, built once: every workflow run (each probe, each
    /// preflight it calls) shares it instead of converting the whole list again, which
    /// made memory grow with lanes x concurrent runs.
    #[serde(skip)]
    #[schemars(skip)]
    lanes_value: std::sync::OnceLock<minijinja::Value>,
}

/// The only `kind` of a lane registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LanesKind {
    /// A lane registry.
    Lanes,
}

/// How worker crons are switched.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum CronBackend {
    /// Reads the jobs' state once per run with `openclaw cron list --all --json`, then
    /// runs exactly `openclaw cron edit <cron id> --enable|--disable` for a job whose
    /// `enabled` flag differs, nothing else (an already matching job is left alone).
    Openclaw {
        /// Program to run (default `openclaw`, looked up on PATH).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        program: Option<String>,
        /// Time limit for the command (default `30s`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<Duration>,
    },
    /// Runs a command of your own. Each argv entry is a template that sees `lane`,
    /// `cron_id` and `enabled` (a boolean), e.g.
    /// `[crontab-toggle, "{{ cron_id }}", "{{ 'on' if enabled else 'off' }}"]`.
    /// With `list`, the jobs' state is read once per run first and only a job whose
    /// state differs is switched, as with `openclaw`.
    Command {
        /// Program and arguments (templates, one argument each).
        #[schemars(length(min = 1))]
        argv: Vec<Template>,
        /// Time limit for the command (default `30s`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<Duration>,
        /// A command that lists the jobs' state (program and arguments, plain text, run
        /// without a shell), e.g. `[crontab-toggle, list, --json]`. It must exit 0 and
        /// print one JSON object on stdout: `{"jobs": [{"id": "<cron id>", "enabled":
        /// true|false}, ...]}` (other fields are ignored; the shape of `openclaw cron
        /// list --all --json`). A lane whose cron id is not listed fails its `cron` step
        /// and nothing is changed. Without `list`, every `cron` step runs `argv`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1))]
        list: Option<Vec<String>>,
    },
    /// Each lane's worker is a Kubernetes CronJob: reads it (GET) and, only when its
    /// `spec.suspend` differs from the wanted state, sends one JSON merge patch
    /// `{"spec": {"suspend": <not enabled>}}`. Authenticates as the in-cluster service
    /// account, else the kubeconfig's current context (`KUBECONFIG`); needs `get` and
    /// `patch` on those CronJobs (`runner export kubernetes` writes that Role).
    Kubernetes {
        /// Namespace of the CronJobs (default: the service account's or context's
        /// namespace, else `default`): a DNS label.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 63))]
        namespace: Option<String>,
        /// The CronJob's name, a template that sees `lane` and `cron_id` (default
        /// `worker-{{ lane.id }}`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cronjob: Option<Template>,
        /// Time limit of each API request (default `30s`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<Duration>,
    },
}

/// The CronJob name template of the `kubernetes` cron backend when none is given.
pub(crate) const DEFAULT_CRONJOB_NAME: &str = "worker-{{ lane.id }}";

/// One worker lane.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Lane {
    /// Lane id used everywhere (`local`, `cloud`, `frontier`): lower case letters,
    /// digits and `-`.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]*$"))]
    pub id: String,
    /// Dispatch agent name of the lane's worker, e.g. `saffron-local`.
    #[schemars(length(min = 1))]
    pub agent: String,
    /// Model the worker runs on, e.g. `litellm/nvidia`.
    #[schemars(length(min = 1))]
    pub model: String,
    /// What work belongs in this lane.
    #[schemars(length(min = 1))]
    pub purpose: String,
    /// The worker cron.
    pub cron: LaneCron,
    /// The lane's worker runbook (a path or name the prompt points the worker to).
    #[schemars(length(min = 1))]
    pub runbook: String,
    /// The worker prompt template, relative to this file, e.g. `../cron-prompts/worker.md`.
    /// `runner render --all` renders it once for every lane that names it.
    #[schemars(length(min = 1))]
    pub prompt: String,
    /// Terminal texts of the lane.
    pub terminal: LaneTerminal,
    /// The kinds of action a worker of this lane may take in one run (shown in its prompt).
    #[serde(default)]
    pub actions: Vec<String>,
    /// Extra rules for this lane's workers (shown in its prompt).
    #[serde(default)]
    pub rules: Vec<String>,
    /// Issue labels (lower case) that mark work as belonging to this lane when the item
    /// carries no explicit lane; used to verify active work.
    #[serde(default)]
    pub infer_labels: Vec<String>,
    /// How today's Dispatch serves this lane (default: the `NORMAL` PR-fix lane and the
    /// `preflight` loop). Templates see it filled in, e.g. `lane.dispatch.loop`.
    #[serde(default)]
    pub dispatch: LaneDispatch,
}

/// A lane's Dispatch settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LaneDispatch {
    /// The Dispatch PR-fix lane that serves this lane (`GET /api/pr-fix-queue/queued
    /// ?lane=...`): `NORMAL` (the default-role lane; the default) or `ESCALATED` (the
    /// escalation-role lane).
    #[serde(default)]
    pub pr_fix_lane: PrFixLane,
    /// The worker loop `worker-task.yaml` runs for this lane: `preflight` (the 2026-06
    /// worker preflight, `worker-preflight.yaml`; the default) or `next-task` (today's
    /// `GET next-task` -> `ack` -> `tasks/report` loop).
    #[serde(default, rename = "loop")]
    pub worker_loop: WorkerLoop,
}

/// A Dispatch PR-fix lane a registry lane maps to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum PrFixLane {
    /// The default-role lane (the default).
    #[default]
    Normal,
    /// The escalation-role lane.
    Escalated,
}

/// The worker loop of a lane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum WorkerLoop {
    /// The 2026-06 worker preflight (`worker-preflight.yaml`, claim on), unchanged (the
    /// default).
    #[default]
    Preflight,
    /// Today's loop: `GET next-task`, `ack` a PR-fix hand-out or claim an issue, then
    /// `tasks/report` (`worker-task.yaml`, `task-report.yaml`).
    NextTask,
}

/// Dispatch settings of the whole registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegistryDispatch {
    /// Old lane names Dispatch or a caller may still use, each mapped to the registry
    /// lane it means, e.g. `{normal: local, escalated: frontier}`. An alias must not be
    /// a lane id, and must name a lane of this registry. Default: none.
    #[serde(default)]
    #[schemars(extend(
        "propertyNames" = {"pattern": "^[a-z][a-z0-9-]*$"},
        "additionalProperties" = {"type": "string", "pattern": "^[a-z][a-z0-9-]*$"}
    ))]
    pub aliases: indexmap::IndexMap<String, String>,
    /// How the heartbeat grooms (default `auto`).
    #[serde(default)]
    pub grooming: Grooming,
}

impl RegistryDispatch {
    /// The fields templates can read as `lane_dispatch.<field>` (checked at load time).
    pub(crate) const FIELDS: &[&str] = &["aliases", "grooming"];
}

/// The heartbeat's grooming mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Grooming {
    /// Ask `next-task?mode=groom` and print the hint of a `groom` task; when Dispatch
    /// answers 410 (v0.5.69 and later), run `POST /api/groomer/run` once (the default).
    #[default]
    Auto,
    /// Always run `POST /api/groomer/run`, without asking `next-task?mode=groom`.
    Groomer,
    /// Only the 2026-06 hint from `next-task?mode=groom`; never run the groomer.
    Hint,
}

/// A lane's worker cron.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LaneCron {
    /// The cron job's display name, e.g. `(Saffron): Dispatch - Local`.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The cron job's id (a UUID).
    #[schemars(regex(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ))]
    pub id: String,
    /// Environment variable that overrides `id` when set (its value must be a UUID too).
    #[serde(default)]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub id_env: Option<String>,
}

/// Terminal texts of a lane.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LaneTerminal {
    /// What the worker answers when the lane has no work, e.g. `Pipeline is clear.`
    #[schemars(length(min = 1))]
    pub clear: String,
}

/// A final form a worker may end with.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FinalForm {
    /// Identifier of the form, e.g. `pr_opened`.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9_]*$"))]
    pub id: String,
    /// The form with `{slot}` placeholders, e.g. `Done. PR #{pr} opened for {repo} #{number}: {pr_url}.`
    #[schemars(length(min = 1))]
    pub text: String,
}

/// One rule of a text contract. Rules are tried in order; the first whose pattern
/// matches the **whole** (trimmed) text decides.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GuardRule {
    /// Identifier of the rule, reported in the verdict.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9_]*$"))]
    pub id: String,
    /// Regular expression (Rust `regex` syntax) that must match the whole text; it is
    /// anchored for you.
    #[schemars(length(min = 1))]
    pub pattern: String,
    /// `accept` or `reject` when the pattern matches.
    pub verdict: Verdict,
    /// Reason given with a rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Match without regard to case (default `false`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_case: bool,
    /// Apply the rule only when checking a result of these lanes (ids from the
    /// registry). Empty: every lane.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lanes: Vec<String>,
}

/// A guard rule's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Verdict {
    /// The text is a valid result.
    Accept,
    /// The text is not a valid result.
    Reject,
}

impl LaneRegistry {
    /// The lane with this id.
    pub(crate) fn lane(&self, id: &str) -> Option<&Lane> {
        self.lanes.iter().find(|lane| lane.id == id)
    }

    /// The lanes as the template value `lanes`, converted once and then shared.
    pub(crate) fn lanes_value(&self) -> minijinja::Value {
        self.lanes_value
            .get_or_init(|| {
                minijinja::Value::from(minijinja::value::Serde(
                    &serde_json::to_value(&self.lanes).unwrap_or_default(),
                ))
            })
            .clone()
    }

    /// The registry's `dispatch` block as the template value `lane_dispatch`.
    pub(crate) fn dispatch_value(&self) -> minijinja::Value {
        minijinja::Value::from(minijinja::value::Serde(
            &serde_json::to_value(&self.dispatch).unwrap_or_default(),
        ))
    }

    /// All lane ids, in order.
    pub(crate) fn ids(&self) -> Vec<&str> {
        self.lanes.iter().map(|lane| lane.id.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn registry(dispatch: serde_json::Value, lane_dispatch: Option<serde_json::Value>) -> LaneRegistry {
        let mut lane = json!({
            "id": "local", "agent": "a", "model": "m", "purpose": "p",
            "cron": {"name": "n", "id": "6b09bed4-cfbe-4c35-bbee-2b66c5ef17aa"},
            "runbook": "r", "prompt": "p.md", "terminal": {"clear": "Clear."},
        });
        if let Some(value) = lane_dispatch {
            lane["dispatch"] = value;
        }
        let mut file = json!({"kind": "lanes", "cron_backend": {"type": "openclaw"}, "lanes": [lane]});
        if !dispatch.is_null() {
            file["dispatch"] = dispatch;
        }
        serde_json::from_value(file).expect("a valid registry")
    }

    #[test]
    fn templates_see_the_dispatch_settings_with_defaults_filled_in() {
        let registry = registry(serde_json::Value::Null, None);
        assert_eq!(registry.lanes[0].dispatch, LaneDispatch::default());
        let lanes = registry.lanes_value();
        let lane = lanes.get_item_by_index(0).expect("one lane");
        let dispatch = lane.get_attr("dispatch").expect("dispatch");
        assert_eq!(dispatch.get_attr("pr_fix_lane").expect("field").as_str(), Some("NORMAL"));
        assert_eq!(dispatch.get_attr("loop").expect("field").as_str(), Some("preflight"));
        let fleet = registry.dispatch_value();
        assert_eq!(fleet.get_attr("grooming").expect("field").as_str(), Some("auto"));
        assert_eq!(fleet.get_attr("aliases").expect("field").len(), Some(0));
    }

    #[test]
    fn dispatch_settings_are_read_as_written() {
        let registry = registry(
            json!({"aliases": {"gpt": "local"}, "grooming": "hint"}),
            Some(json!({"pr_fix_lane": "ESCALATED", "loop": "next-task"})),
        );
        assert_eq!(registry.lanes[0].dispatch.pr_fix_lane, PrFixLane::Escalated);
        assert_eq!(registry.lanes[0].dispatch.worker_loop, WorkerLoop::NextTask);
        assert_eq!(registry.dispatch.grooming, Grooming::Hint);
        assert_eq!(registry.dispatch.aliases.get("gpt").map(String::as_str), Some("local"));
    }

    #[test]
    fn the_dispatch_blocks_are_closed() {
        let file = |dispatch: serde_json::Value| json!({"kind": "lanes", "cron_backend": {"type": "openclaw"}, "lanes": [], "dispatch": dispatch});
        assert!(serde_json::from_value::<LaneRegistry>(file(json!({"grooming": "sometimes"}))).is_err());
        assert!(serde_json::from_value::<LaneRegistry>(file(json!({"alias": {}}))).is_err());
        assert!(serde_json::from_value::<LaneDispatch>(json!({"pr_fix_lane": "NEEDS_HUMAN"})).is_err());
        assert!(serde_json::from_value::<LaneDispatch>(json!({"loop": "next_task"})).is_err());
    }

    #[test]
    fn the_checked_template_fields_are_the_dispatch_blocks_fields() {
        let value = serde_json::to_value(RegistryDispatch::default()).expect("serializes");
        let keys: Vec<&str> = value.as_object().expect("a map").keys().map(String::as_str).collect();
        assert_eq!(keys, RegistryDispatch::FIELDS);
    }
}
