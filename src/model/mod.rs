//! The typed file formats. Each type derives `JsonSchema`; its doc comments become the
//! schema descriptions editors show on hover, so they are written for users.

pub(crate) mod duration;
pub(crate) mod kubernetes;
pub(crate) mod lanes;
pub(crate) mod lifecycle;
pub(crate) mod prompts;
pub(crate) mod roles;
pub(crate) mod schedule;
pub(crate) mod step;
pub(crate) mod steps_iter;
pub(crate) mod test_file;
pub(crate) mod walk;
pub(crate) mod workflow;

pub(crate) use duration::Duration;
pub(crate) use lanes::LaneRegistry;
pub(crate) use lifecycle::Lifecycle;
pub(crate) use prompts::PromptManifest;
pub(crate) use roles::Roles;
pub(crate) use schedule::Schedule;
pub(crate) use test_file::TestFile;
pub(crate) use workflow::Workflow;

/// A minijinja template string, e.g. `"/api/agents/{{ inputs.agent }}/queue"`.
/// A template that is exactly one `{{ expr }}` yields the expression's typed value.
pub(crate) type Template = String;

/// A bare minijinja expression (no `{{ }}`), e.g. `steps.probe.output.has_work and not inputs.dry`.
pub(crate) type Expr = String;

/// Any YAML value whose strings are templates: maps and lists keep their structure and
/// every string inside is rendered.
pub(crate) type Dyn = serde_json::Value;

/// The kinds of file runner reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum FileKind {
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
    pub(crate) const ALL: [FileKind; 7] = [
        FileKind::Workflow,
        FileKind::Lanes,
        FileKind::Prompts,
        FileKind::Test,
        FileKind::Lifecycle,
        FileKind::Roles,
        FileKind::Schedule,
    ];

    /// The name used for `kind:` values, `runner schema NAME` and schema file names.
    pub(crate) fn name(self) -> &'static str {
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
    pub(crate) fn from_name(name: &str) -> Option<FileKind> {
        FileKind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// The committed schema's file name, e.g. `workflow.schema.json`.
    pub(crate) fn schema_file(self) -> String {
        format!("{}.schema.json", self.name())
    }

    /// The JSON Schema generated from the Rust types.
    pub(crate) fn schema(self) -> serde_json::Value {
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
