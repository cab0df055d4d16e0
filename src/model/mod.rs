//! The typed file formats. Each type derives `JsonSchema`; its doc comments become the
//! schema descriptions editors show on hover, so they are written for users.

pub mod duration;
pub mod kubernetes;
pub mod lanes;
pub mod lifecycle;
pub mod prompts;
pub mod roles;
pub mod schedule;
pub mod step;
pub mod steps_iter;
pub mod test_file;
pub mod walk;
pub mod workflow;

pub use duration::Duration;
pub use lanes::LaneRegistry;
pub use lifecycle::Lifecycle;
pub use prompts::PromptManifest;
pub use roles::Roles;
pub use schedule::Schedule;
pub use step::{Step, StepKind};
pub use test_file::TestFile;
pub use workflow::Workflow;

/// A minijinja template string, e.g. `"/api/agents/{{ inputs.agent }}/queue"`.
/// A template that is exactly one `{{ expr }}` yields the expression's typed value.
pub type Template = String;

/// A bare minijinja expression (no `{{ }}`), e.g. `steps.probe.output.has_work and not inputs.dry`.
pub type Expr = String;

/// Any YAML value whose strings are templates: maps and lists keep their structure and
/// every string inside is rendered.
pub type Dyn = serde_json::Value;

/// The kinds of file runner reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKind {
    /// A workflow (`kind: workflow` or no `kind`).
    Workflow,
    /// The lane registry (`kind: lanes`).
    Lanes,
    /// The prompt manifest (`kind: prompts`).
    Prompts,
    /// A test file (`kind: test`).
    Test,
    /// A lifecycle (`kind: lifecycle`).
    Lifecycle,
    /// Roles, levels and completion rules (`kind: roles`).
    Roles,
    /// Workflows run on a schedule (`kind: schedule`).
    Schedule,
}

impl FileKind {
    /// Every kind, in the order `runner schema` lists them.
    pub const ALL: [FileKind; 7] = [
        FileKind::Workflow,
        FileKind::Lanes,
        FileKind::Prompts,
        FileKind::Test,
        FileKind::Lifecycle,
        FileKind::Roles,
        FileKind::Schedule,
    ];

    /// The name used for `kind:` values, `runner schema NAME` and schema file names.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Workflow => "workflow",
            FileKind::Lanes => "lanes",
            FileKind::Prompts => "prompts",
            FileKind::Test => "test",
            FileKind::Lifecycle => "lifecycle",
            FileKind::Roles => "roles",
            FileKind::Schedule => "schedule",
        }
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<FileKind> {
        FileKind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// The committed schema's file name, e.g. `workflow.schema.json`.
    pub fn schema_file(self) -> String {
        format!("{}.schema.json", self.name())
    }

    /// The JSON Schema generated from the Rust types.
    pub fn schema(self) -> serde_json::Value {
        let schema = match self {
            FileKind::Workflow => schemars::schema_for!(Workflow),
            FileKind::Lanes => schemars::schema_for!(LaneRegistry),
            FileKind::Prompts => schemars::schema_for!(PromptManifest),
            FileKind::Test => schemars::schema_for!(TestFile),
            FileKind::Lifecycle => schemars::schema_for!(Lifecycle),
            FileKind::Roles => schemars::schema_for!(Roles),
            FileKind::Schedule => schemars::schema_for!(Schedule),
        };
        let mut value = schema.to_value();
        forbid_null(&mut value);
        value
    }

    /// The schema as committed: pretty JSON with a trailing newline.
    pub fn schema_text(self) -> String {
        let mut text = serde_json::to_string_pretty(&self.schema()).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// Optional fields are written by leaving them out, never as `null`: schemars lets an
/// `Option` be `null`, so take that back out of every subschema. (An explicit `~` in a
/// file is then reported as a wrong type instead of being silently ignored.)
fn forbid_null(schema: &mut serde_json::Value) {
    use serde_json::Value;
    match schema {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                if types.len() > 1 {
                    types.retain(|t| t != "null");
                }
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(branches)) = map.get("anyOf") {
                let is_null = |b: &Value| b.get("type").and_then(Value::as_str) == Some("null");
                if branches.len() == 2 && branches.iter().any(is_null) {
                    let keep = branches.iter().find(|b| !is_null(b)).cloned();
                    map.remove("anyOf");
                    if let Some(Value::Object(inner)) = keep {
                        for (key, value) in inner {
                            map.entry(key).or_insert(value);
                        }
                    }
                }
            }
            for value in map.values_mut() {
                forbid_null(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(forbid_null),
        _ => {}
    }
}
