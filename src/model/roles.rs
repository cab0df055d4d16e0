//! Roles (levels, models, completion rules, level selection), as data.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Roles: levels mapped to models, completion rules and level selection. Start the
/// file with `# yaml-language-server: $schema=../schemas/roles.schema.json`.
/// Top-level keys starting with `x-` are ignored (a place for YAML anchors).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "runner roles", extend("patternProperties" = {"^x-": true}, "additionalProperties" = false))]
pub(crate) struct Roles {
    /// Always `roles`.
    pub kind: RolesKind,
    /// A base roles file (path relative to this file) this file layers over: a role of
    /// the base is overridden field by field (`levels`, `aliases` and `completion` per
    /// key, a level set to `false` removed), `false` switches a role off, and a new
    /// role must be complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<String>,
    /// Old role names that still work in labels, e.g. `dev: developer`, `qa: tester`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub role_aliases: IndexMap<String, String>,
    /// The roles, by id.
    #[schemars(length(min = 1))]
    pub roles: IndexMap<String, Role>,
}

/// The only `kind` of a roles file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RolesKind {
    /// A roles file.
    Roles,
}

/// A role.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Role {
    /// What the role does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `false` when the role is switched off (an extending file writes `role: false`):
    /// it keeps its definition, but no work should be dispatched to it.
    #[serde(default = "yes", skip_serializing_if = "Clone::clone")]
    pub enabled: bool,
    /// Levels, in order from least to most capable, each with its model: a model id, or
    /// `{model, max_workers}`.
    #[schemars(length(min = 1))]
    pub levels: IndexMap<String, LevelModel>,
    /// Old level names that keep working in labels and rules, e.g. `mid: medior`,
    /// `opus: senior`. An alias must not be a level's own name.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub aliases: IndexMap<String, String>,
    /// The level used when no rule decides (must be one of `levels`, or an alias).
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
#[serde(untagged, deny_unknown_fields)]
pub(crate) enum LevelModel {
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

fn yes() -> bool {
    true
}

impl Role {
    /// The level a name means: a level, an alias of one, or `lowest` / `highest`.
    pub(crate) fn resolve_level(&self, name: &str) -> Option<&str> {
        let name = name.trim();
        if let Some((key, _)) = self.levels.get_key_value(name) {
            return Some(key);
        }
        let lower = name.to_lowercase();
        if let Some((key, _)) = self.levels.iter().find(|(k, _)| k.to_lowercase() == lower) {
            return Some(key);
        }
        if let Some(target) = self.aliases.iter().find(|(a, _)| a.to_lowercase() == lower).map(|(_, t)| t) {
            return self.levels.get_key_value(target.as_str()).map(|(k, _)| k.as_str());
        }
        match lower.as_str() {
            "lowest" => self.levels.keys().next().map(String::as_str),
            "highest" => self.levels.keys().next_back().map(String::as_str),
            _ => None,
        }
    }
}

impl LevelModel {
    /// The model id.
    pub(crate) fn model(&self) -> &str {
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
pub(crate) struct LevelSelection {
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
pub(crate) struct LevelRule {
    /// A name for the rule, shown by `runner roles select`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The level this rule picks: a level, an alias, or `lowest` / `highest` (the
    /// first / last of `levels`).
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
pub(crate) enum TextField {
    /// The title.
    Title,
    /// The body.
    Body,
}
