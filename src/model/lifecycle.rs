//! Lifecycles (issue state machines), as data. Roles files are in `roles`.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An issue lifecycle: typed states, each one tracker label, with transitions on
/// events. Start the file with `# yaml-language-server: $schema=../schemas/lifecycle.schema.json`.
/// Top-level keys starting with `x-` are ignored (a place for YAML anchors).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "runner lifecycle", extend("patternProperties" = {"^x-": true}, "additionalProperties" = false))]
pub(crate) struct Lifecycle {
    /// Always `lifecycle`.
    pub kind: LifecycleKind,
    /// What the lifecycle is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A base lifecycle (path relative to this file) this file layers over. This file
    /// then overrides by key: top-level fields replace; `policies` are merged per
    /// policy and field; a state key of the base is overridden field by field (`on` per
    /// event, an event set to `false` is removed), `false` removes a base state, and a
    /// key not in the base is a new state and must be complete. `runner validate`,
    /// `graph` and `show-config` work on the merged result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<String>,
    /// The state new items start in.
    pub initial: String,
    /// The roles file (relative to this file) whose roles the states name and whose
    /// completion rules produce events; with it, `runner validate` checks that every
    /// event a role can produce is handled and every active transition can fire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<String>,
    /// Routing policies by name: each a set of values, a default, and per-item override
    /// labels `<policy>:<value>` (e.g. `review: {values: [human, agent, skip], default:
    /// human}` lets an item labelled `review:skip` skip review). States `route` by them.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub policies: IndexMap<String, Policy>,
    /// The states, by key.
    #[schemars(length(min = 1))]
    pub states: IndexMap<String, State>,
}

/// The only `kind` of a lifecycle file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LifecycleKind {
    /// A lifecycle.
    Lifecycle,
}

/// A state of the lifecycle.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct State {
    /// `hold` (waits for a person), `queue` (waits for a worker of `role`), `active`
    /// (a worker of `role` holds it) or `terminal` (finished; no transitions).
    #[serde(rename = "type")]
    pub ty: StateType,
    /// The tracker label that marks an item in this state (unique in the lifecycle).
    #[schemars(length(min = 1))]
    pub label: String,
    /// The label's colour: `"#0366d6"`, the short form `"#fff"`, or a CSS colour name
    /// such as `steelblue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub color: Option<String>,
    /// Items enter this state from outside the lifecycle (a tool, a person, an import),
    /// not only by a transition: reachability counts it as a root and `runner graph`
    /// draws it as an entry point.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub entry: bool,
    /// The role that picks items up (queue) or works on them (active). Required for
    /// queue and active states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Among the queues of one role, higher is picked first (default 0). Any number,
    /// fractions included (`1.5` sits between 1 and 2); used for ordering only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<serde_json::Number>,
    /// What the state means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Transitions: `EVENT: target` or `EVENT: {target, actions: [...]}`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub on: IndexMap<String, Transition>,
    /// How an item leaves this state depending on a routing policy's value for it (or
    /// an item field): each case names one of this state's events, or `wait` to stay.
    /// `runner validate` checks that every value of the policy has a case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
    /// A condition polled while items sit here (e.g. "the PR is approved or merged"),
    /// through a workflow whose `event` output names one of this state's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
}

/// A routing policy: the values an item can have, the default, and the labels that
/// override the default per item.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Policy {
    /// What the policy decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The values, e.g. `[human, agent, skip]`.
    #[schemars(length(min = 1))]
    pub values: Vec<String>,
    /// The value for items with no override label (one of `values`).
    pub default: String,
    /// The prefix of the per-item override labels (default `<policy name>:`, so
    /// `review:skip` sets the `review` policy to `skip` for that item).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_prefix: Option<String>,
}

impl Policy {
    /// The prefix of the override labels for the policy named `name`.
    pub(crate) fn prefix(&self, name: &str) -> String {
        self.label_prefix.clone().unwrap_or_else(|| format!("{name}:"))
    }
}

/// Conditional transitions: the policy value (or field value) picks the case.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Route {
    /// The routing policy whose value for the item picks the case (the item's
    /// override label, else the policy's default). Give `policy` or `field`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// An item field whose value picks the case (e.g. `type`); needs `otherwise`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Value -> one of this state's events, or `wait` (the item stays, e.g. for a
    /// person or a `check`).
    #[schemars(length(min = 1))]
    pub cases: IndexMap<String, String>,
    /// The event (or `wait`) for values with no case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otherwise: Option<String>,
}

/// A polled condition.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Check {
    /// What is checked, e.g. `prApproved`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The workflow (path relative to this file) that checks the condition; its
    /// `event` output is one of this state's events, or empty when nothing happened.
    pub workflow: String,
    /// How often to poll, e.g. `5m` (at least `10s`).
    pub every: crate::model::duration::Duration,
}

/// State types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StateType {
    /// Waits for a person.
    Hold,
    /// Waits for a worker of its role.
    Queue,
    /// A worker of its role holds the item.
    Active,
    /// Finished.
    Terminal,
}

impl StateType {
    /// The name used in files.
    pub(crate) fn name(self) -> &'static str {
        match self {
            StateType::Hold => "hold",
            StateType::Queue => "queue",
            StateType::Active => "active",
            StateType::Terminal => "terminal",
        }
    }
}

/// Where an event leads.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum Transition {
    /// Just the target state's key.
    Target(String),
    /// The target and the actions to run, in order.
    Full(FullTransition),
}

/// A transition with actions.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FullTransition {
    /// The target state's key.
    pub target: String,
    /// Actions to run with the move, in order (names your workflows act on, e.g.
    /// `closeIssue`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// What the transition means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Transition {
    /// The target state's key.
    pub(crate) fn target(&self) -> &str {
        match self {
            Transition::Target(target) => target,
            Transition::Full(full) => &full.target,
        }
    }

    /// The actions.
    pub(crate) fn actions(&self) -> &[String] {
        match self {
            Transition::Target(_) => &[],
            Transition::Full(full) => &full.actions,
        }
    }
}

impl Lifecycle {
    /// The state with this key, or else with this label (case-insensitive).
    pub(crate) fn find(&self, key_or_label: &str) -> Option<(&str, &State)> {
        if let Some((key, state)) = self.states.get_key_value(key_or_label) {
            return Some((key.as_str(), state));
        }
        self.states
            .iter()
            .find(|(_, s)| s.label.eq_ignore_ascii_case(key_or_label))
            .map(|(k, s)| (k.as_str(), s))
    }
}
