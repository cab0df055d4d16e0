//! The prompt manifest: which cron prompt templates exist, the values they are
//! rendered with, and where their rendered copies go.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Template;

/// The prompt manifest (`cron-prompts/prompts.yaml`). `runner render` reads it for
/// every template in its directory; `runner render --all` renders everything it lists
/// plus every lane's worker prompt.
/// Top-level keys starting with `x-` are ignored (a place for YAML anchors).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "runner prompt manifest", extend("patternProperties" = {"^x-": true}, "additionalProperties" = false))]
pub(crate) struct PromptManifest {
    /// Always `prompts`.
    pub kind: PromptsKind,
    /// Path of the lane registry, relative to this file. Each lane's `prompt` template is
    /// rendered once per lane, with `lane` set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lanes: Option<String>,
    /// Values every template sees by name, e.g. `workflow_dir`. Lists and maps are allowed.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub vars: IndexMap<String, serde_json::Value>,
    /// Templates that are not lane worker prompts, each rendered once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<PromptEntry>,
}

/// The only `kind` of a prompt manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PromptsKind {
    /// A prompt manifest.
    Prompts,
}

/// A template rendered once.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PromptEntry {
    /// Template file, relative to this manifest.
    #[schemars(length(min = 1))]
    pub template: String,
    /// What the prompt is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Extra values for this template only (override the manifest's `vars`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub vars: IndexMap<String, serde_json::Value>,
    /// Output file name under `--out-dir` (template; default: the template's file name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out: Option<Template>,
}
