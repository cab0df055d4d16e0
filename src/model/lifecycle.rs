//! Lifecycles (issue state machines) and roles (levels, models, completion rules,
//! level selection), as data.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An issue lifecycle: typed states, each one tracker label, with transitions on
/// events. Start the file with `# yaml-language-server: $schema=../schemas/lifecycle.schema.json`.
/// Top-level keys starting with `x-` are ignored (a place for YAML anchors).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "runner lifecycle", extend("patternProperties" = {"^x-": true}, "additionalProperties" = false))]
pub struct Lifecycle {
    /// Always `lifecycle`.
    pub kind: LifecycleKind,
    /// What the lifecycle is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The state new items start in.
    pub initial: String,
    /// The roles file (relative to this file) whose roles the states name and whose
    /// completion rules produce events; with it, `runner validate` checks that every
    /// event a role can produce is handled and every active transition can fire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<String>,
    /// The states, by key.
    #[schemars(length(min = 1))]
    pub states: IndexMap<String, State>,
}

/// The only `kind` of a lifecycle file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleKind {
    /// A lifecycle.
    Lifecycle,
}

/// A state of the lifecycle.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// `hold` (waits for a person), `queue` (waits for a worker of `role`), `active`
    /// (a worker of `role` holds it) or `terminal` (finished; no transitions).
    #[serde(rename = "type")]
    pub ty: StateType,
    /// The tracker label that marks an item in this state (unique in the lifecycle).
    #[schemars(length(min = 1))]
    pub label: String,
    /// The label's colour, e.g. `"#0366d6"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^#[0-9a-fA-F]{6}$"))]
    pub color: Option<String>,
    /// The role that picks items up (queue) or works on them (active). Required for
    /// queue and active states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Among the queues of one role, higher is picked first (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// What the state means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Transitions: `EVENT: target` or `EVENT: {target, actions: [...]}`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub on: IndexMap<String, Transition>,
}

/// State types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateType {
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
    pub fn name(self) -> &'static str {
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
pub enum Transition {
    /// Just the target state's key.
    Target(String),
    /// The target and the actions to run, in order.
    Full(FullTransition),
}

/// A transition with actions.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FullTransition {
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
    pub fn target(&self) -> &str {
        match self {
            Transition::Target(target) => target,
            Transition::Full(full) => &full.target,
        }
    }

    /// The actions.
    pub fn actions(&self) -> &[String] {
        match self {
            Transition::Target(_) => &[],
            Transition::Full(full) => &full.actions,
        }
    }
}

impl Lifecycle {
    /// The state with this key, or else with this label (case-insensitive).
    pub fn find(&self, key_or_label: &str) -> Option<(&str, &State)> {
        if let Some((key, state)) = self.states.get_key_value(key_or_label) {
            return Some((key.as_str(), state));
        }
        self.states
            .iter()
            .find(|(_, s)| s.label.eq_ignore_ascii_case(key_or_label))
            .map(|(k, s)| (k.as_str(), s))
    }
}

/// Roles: levels mapped to models, completion rules and level selection. Start the
/// file with `# yaml-language-server: $schema=../schemas/roles.schema.json`.
/// Top-level keys starting with `x-` are ignored (a place for YAML anchors).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "runner roles", extend("patternProperties" = {"^x-": true}, "additionalProperties" = false))]
pub struct Roles {
    /// Always `roles`.
    pub kind: RolesKind,
    /// The roles, by id.
    #[schemars(length(min = 1))]
    pub roles: IndexMap<String, Role>,
}

/// The only `kind` of a roles file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RolesKind {
    /// A roles file.
    Roles,
}

/// A role.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// What the role does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Levels, in order from least to most capable, each with its model: a model id, or
    /// `{model, max_workers}`.
    #[schemars(length(min = 1))]
    pub levels: IndexMap<String, LevelModel>,
    /// The level used when no rule decides (must be one of `levels`).
    pub default_level: String,
    /// Completion rules: each result a worker of this role may report, and the lifecycle
    /// event it fires, e.g. `done: COMPLETE`, `blocked: BLOCKED`.
    #[schemars(length(min = 1))]
    pub completion: IndexMap<String, String>,
    /// How the level of a new piece of work is chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level_selection: Option<LevelSelection>,
}

/// A level's model.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum LevelModel {
    /// Just the model id.
    Model(String),
    /// The model and how many workers may run at this level at once.
    Full {
        /// The model id.
        model: String,
        /// Workers at this level at once (default 2).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 1))]
        max_workers: Option<u32>,
    },
}

impl LevelModel {
    /// The model id.
    pub fn model(&self) -> &str {
        match self {
            LevelModel::Model(model) => model,
            LevelModel::Full { model, .. } => model,
        }
    }
}

/// The level-selection pipeline: an explicit level label wins; then (optionally)
/// another role's level label; then the rules in order; then `default_level`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LevelSelection {
    /// Take the level from another role's `<role>:<level>` label when that level
    /// exists for this role (e.g. a `developer:senior` item gets a senior tester).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inherit: bool,
    /// Rules tried in order; the first whose conditions all hold decides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<LevelRule>,
}

/// One level rule. Every condition given must hold.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LevelRule {
    /// A name for the rule, shown by `runner roles select`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The level this rule picks.
    pub level: String,
    /// Any of these words or phrases, matched whole-word and case-insensitively.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    /// Where to look for keywords and count words (default: title and body).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<TextField>,
    /// At least this many words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_words: Option<u32>,
    /// At most this many words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_words: Option<u32>,
}

/// A field of a work item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TextField {
    /// The title.
    Title,
    /// The body.
    Body,
}
