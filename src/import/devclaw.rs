//! The conversion behind `runner import devclaw`: a DevClaw `workflow.yaml` (one
//! configuration layer, with DevClaw's built-in roles and states under it, as DevClaw
//! resolves it) into a runner lifecycle, a roles file and the PR-check workflows its
//! `check` states poll.
//! Whatever cannot be carried, and every key DevClaw does not know, is reported with
//! its line and column; nothing is dropped silently.

use indexmap::IndexMap;
use serde_json::{Map, Value, json};

use crate::load::yaml::{Document, escape_pointer};

/// One line of the import report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note {
    /// Line of the key in the DevClaw file (0 when it is about a built-in default).
    pub line: usize,
    /// Column of the key.
    pub col: usize,
    /// `not carried`, `unknown key` or `adapted`.
    pub kind: &'static str,
    /// The key's path, e.g. `workflow.roleExecution`.
    pub key: String,
    /// What happened and why.
    pub text: String,
}

/// The converted files.
#[derive(Debug, Clone)]
pub(crate) struct Conversion {
    /// lifecycle.yaml, as a value.
    pub lifecycle: Value,
    /// roles.yaml, as a value.
    pub roles: Value,
    /// The check workflows to write: (relative path, text).
    pub checks: Vec<(String, String)>,
    /// What was not carried or was adapted.
    pub notes: Vec<Note>,
}

struct Ctx<'a> {
    document: &'a Document,
    notes: Vec<Note>,
}

impl Ctx<'_> {
    fn note(&mut self, pointer: &str, kind: &'static str, text: impl Into<String>) {
        let (line, col) = if pointer.is_empty() {
            (0, 0)
        } else {
            let location = self.document.locate(pointer);
            let range = location.key.unwrap_or(location.value);
            (range.start.line, range.start.col)
        };
        let key = pointer.trim_start_matches('/').split('/').map(unescape).collect::<Vec<_>>().join(".");
        self.notes.push(Note { line, col, kind, key, text: text.into() });
    }

    /// Report every key of the map at `pointer` that is not in `known`.
    fn unknown_keys(&mut self, pointer: &str, map: &Map<String, Value>, known: &[&str], what: &str) {
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                let hint = crate::diagnostics::did_you_mean(key, known.iter().copied())
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                self.note(
                    &format!("{pointer}/{}", escape_pointer(key)),
                    "unknown key",
                    format!("{what} has no key `{key}`{hint}; not carried (known: {})", known.join(", ")),
                );
            }
        }
    }
}

fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// A built-in role: (id, levels, default level, models, completion results).
type BuiltinRole = (&'static str, Vec<&'static str>, &'static str, Vec<&'static str>, Vec<&'static str>);

/// DevClaw's built-in role registry.
fn registry() -> Vec<BuiltinRole> {
    let haiku = "anthropic/claude-haiku-4-5";
    let sonnet = "anthropic/claude-sonnet-4-5";
    let opus = "anthropic/claude-opus-4-6";
    vec![
        (
            "developer",
            vec!["junior", "medior", "senior"],
            "medior",
            vec![haiku, sonnet, opus],
            vec!["done", "blocked"],
        ),
        (
            "tester",
            vec!["junior", "medior", "senior"],
            "medior",
            vec![haiku, sonnet, opus],
            vec!["pass", "fail", "refine", "blocked"],
        ),
        ("architect", vec!["junior", "senior"], "junior", vec![sonnet, opus], vec!["done", "blocked"]),
        (
            "reviewer",
            vec!["junior", "senior"],
            "junior",
            vec![haiku, sonnet],
            vec!["approve", "reject", "blocked"],
        ),
    ]
}

/// DevClaw's built-in workflow states (spec devclaw.md §3.6).
fn builtin_states() -> Map<String, Value> {
    let states = json!({
        "planning": {"type": "hold", "label": "Planning", "color": "#95a5a6", "on": {"APPROVE": "todo"}},
        "todo": {"type": "queue", "role": "developer", "label": "To Do", "color": "#428bca", "priority": 1,
                 "on": {"PICKUP": "doing"}},
        "doing": {"type": "active", "role": "developer", "label": "Doing", "color": "#f0ad4e",
                  "on": {"COMPLETE": {"target": "toReview", "actions": ["detectPr"]}, "BLOCKED": "refining"}},
        "toReview": {"type": "queue", "role": "reviewer", "label": "To Review", "color": "#7057ff", "priority": 2,
                     "check": "prApproved",
                     "on": {"PICKUP": "reviewing",
                            "APPROVED": {"target": "toTest", "actions": ["mergePr", "gitPull"]},
                            "SKIP": {"target": "toTest", "actions": ["mergePr", "gitPull"]},
                            "MERGE_FAILED": "toImprove", "CHANGES_REQUESTED": "toImprove",
                            "MERGE_CONFLICT": "toImprove",
                            "PR_CLOSED": {"target": "rejected", "actions": ["closeIssue"]}}},
        "reviewing": {"type": "active", "role": "reviewer", "label": "Reviewing", "color": "#c5def5",
                      "on": {"APPROVE": {"target": "toTest", "actions": ["mergePr", "gitPull"]},
                             "REJECT": "toImprove", "BLOCKED": "refining"}},
        "toTest": {"type": "queue", "role": "tester", "label": "To Test", "color": "#5bc0de", "priority": 2,
                   "on": {"PICKUP": "testing", "SKIP": {"target": "done", "actions": ["closeIssue"]}}},
        "testing": {"type": "active", "role": "tester", "label": "Testing", "color": "#9b59b6",
                    "on": {"PASS": {"target": "done", "actions": ["closeIssue"]},
                           "FAIL": {"target": "toImprove", "actions": ["reopenIssue"]},
                           "REFINE": "refining", "BLOCKED": "refining"}},
        "done": {"type": "terminal", "label": "Done", "color": "#5cb85c"},
        "rejected": {"type": "terminal", "label": "Rejected", "color": "#e11d48"},
        "toImprove": {"type": "queue", "role": "developer", "label": "To Improve", "color": "#d9534f", "priority": 3,
                      "on": {"PICKUP": "doing"}},
        "refining": {"type": "hold", "label": "Refining", "color": "#f39c12", "on": {"APPROVE": "todo"}},
        "toResearch": {"type": "queue", "role": "architect", "label": "To Research", "color": "#0075ca",
                       "priority": 1, "on": {"PICKUP": "researching"}},
        "researching": {"type": "active", "role": "architect", "label": "Researching", "color": "#4a90e2",
                        "on": {"COMPLETE": {"target": "done", "actions": ["closeIssue"]}, "BLOCKED": "refining"}}
    });
    match states {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

const SIMPLE: &[&str] = &[
    "typo",
    "fix typo",
    "rename",
    "update text",
    "change color",
    "minor",
    "small",
    "css",
    "style",
    "copy",
    "wording",
];
const COMPLEX: &[&str] = &[
    "architect",
    "refactor",
    "redesign",
    "system-wide",
    "migration",
    "database schema",
    "security",
    "performance",
    "infrastructure",
    "multi-service",
];

/// An error message with the line and column of the value at `pointer`.
fn at(document: &Document, pointer: &str, message: &str) -> String {
    let start = document.locate(pointer).value.start;
    format!("{}:{}: {message}", start.line, start.col)
}

/// Convert a parsed DevClaw workflow file.
pub(crate) fn convert(document: &Document, source: &str) -> Result<Conversion, String> {
    let empty = Map::new();
    let root = match &document.value {
        Value::Object(map) => map,
        Value::Null => &empty,
        _ => return Err(at(document, "", "expected a map at the top of the DevClaw workflow file")),
    };
    let mut ctx = Ctx { document, notes: Vec::new() };
    ctx.unknown_keys("", root, &["roles", "workflow", "timeouts", "instance"], "DevClaw's workflow.yaml");
    let workflow = match root.get("workflow") {
        Some(Value::Object(map)) => map.clone(),
        Some(Value::Null) | None => Map::new(),
        Some(_) => return Err(at(document, "/workflow", "`workflow` must be a map")),
    };
    ctx.unknown_keys(
        "/workflow",
        &workflow,
        &["initial", "reviewPolicy", "testPolicy", "roleExecution", "maxWorkersPerLevel", "states"],
        "`workflow`",
    );
    let per_level = workflow.get("maxWorkersPerLevel").and_then(Value::as_u64).unwrap_or(2);
    if let Some(mode) = workflow.get("roleExecution").and_then(Value::as_str)
        && mode != "parallel"
    {
        ctx.note(
            "/workflow/roleExecution",
            "not carried",
            format!("`{mode}` role execution has no lifecycle equivalent; enforce it in the tick workflow (dispatch a role only when no other role has an active item)"),
        );
    }
    // Timeouts and the instance are runtime settings, not lifecycle data.
    if let Some(Value::Object(timeouts)) = root.get("timeouts") {
        for (key, value) in timeouts {
            let known = [
                "gitPullMs",
                "gatewayMs",
                "sessionPatchMs",
                "dispatchMs",
                "staleWorkerHours",
                "sessionContextBudget",
                "stallTimeoutMinutes",
            ];
            let pointer = format!("/timeouts/{}", escape_pointer(key));
            if known.contains(&key.as_str()) {
                ctx.note(
                    &pointer,
                    "not carried",
                    format!("`{key}: {value}` is a runtime timeout; in runner it is the `timeout:` of the step that does this work (e.g. the gitPull exec step)"),
                );
            } else {
                ctx.note(&pointer, "unknown key", format!("`timeouts` has no key `{key}`; not carried"));
            }
        }
    }
    if let Some(Value::Object(instance)) = root.get("instance") {
        for key in instance.keys() {
            ctx.note(
                &format!("/instance/{}", escape_pointer(key)),
                if key == "name" { "not carried" } else { "unknown key" },
                "the instance name is runtime state (owner labels); pass it to the tick workflow as an input",
            );
        }
    }
    let roles = convert_roles(&mut ctx, root.get("roles"), per_level)?;
    let (lifecycle, checks) = convert_lifecycle(&mut ctx, &workflow, source)?;
    let mut notes = ctx.notes;
    notes.sort_by_key(|n| (n.line == 0, n.line, n.col));
    Ok(Conversion { lifecycle, roles, checks, notes })
}

fn convert_roles(ctx: &mut Ctx<'_>, roles: Option<&Value>, per_level: u64) -> Result<Value, String> {
    let empty = Map::new();
    let overlay = match roles {
        Some(Value::Object(map)) => map,
        Some(Value::Null) | None => &empty,
        Some(_) => return Err(at(ctx.document, "/roles", "`roles` must be a map")),
    };
    let mut out = Map::new();
    let mut order: Vec<String> = registry().iter().map(|r| r.0.to_string()).collect();
    let custom: Vec<String> = overlay.keys().filter(|k| !order.contains(k)).cloned().collect();
    order.extend(custom);
    for id in order {
        let pointer = format!("/roles/{}", escape_pointer(&id));
        let builtin = registry().into_iter().find(|r| r.0 == id);
        let (mut levels, mut default_level, mut models, mut results): (
            Vec<String>,
            String,
            IndexMap<String, Value>,
            Vec<String>,
        ) = match &builtin {
            Some((_, levels, default, models, results)) => (
                levels.iter().map(|s| s.to_string()).collect(),
                default.to_string(),
                levels.iter().zip(models).map(|(l, m)| (l.to_string(), json!(m))).collect(),
                results.iter().map(|s| s.to_string()).collect(),
            ),
            None => (Vec::new(), String::new(), IndexMap::new(), vec!["done".into(), "blocked".into()]),
        };
        let mut enabled = true;
        match overlay.get(&id) {
            Some(Value::Bool(false)) => enabled = false,
            Some(Value::Object(role)) => {
                ctx.unknown_keys(
                    &pointer,
                    role,
                    &["levels", "defaultLevel", "models", "emoji", "completionResults", "maxWorkers"],
                    &format!("role `{id}`"),
                );
                if let Some(Value::Array(list)) = role.get("levels") {
                    levels = list.iter().filter_map(|v| v.as_str().map(String::from)).collect();
                }
                if let Some(Value::String(level)) = role.get("defaultLevel") {
                    default_level = level.clone();
                }
                if let Some(Value::Object(map)) = role.get("models") {
                    for (level, model) in map {
                        if let Value::Object(full) = model {
                            ctx.unknown_keys(
                                &format!("{pointer}/models/{}", escape_pointer(level)),
                                full,
                                &["model", "maxWorkers"],
                                "a model entry",
                            );
                        }
                        models.insert(level.clone(), model.clone());
                    }
                }
                if let Some(Value::Array(list)) = role.get("completionResults") {
                    results = list.iter().filter_map(|v| v.as_str().map(String::from)).collect();
                }
                if role.contains_key("emoji") {
                    ctx.note(
                        &format!("{pointer}/emoji"),
                        "not carried",
                        "announcement emoji belong in your notification templates; runner's roles file has none",
                    );
                }
                if role.contains_key("maxWorkers") {
                    ctx.note(
                        &format!("{pointer}/maxWorkers"),
                        "not carried",
                        "deprecated in DevClaw (parsed and ignored); capacity is per level (`max_workers`)",
                    );
                }
            }
            Some(Value::Null) | None => {}
            Some(_) => {
                return Err(at(ctx.document, &pointer, &format!("role `{id}` must be a map or `false`")));
            }
        }
        if builtin.is_none() && models.is_empty() {
            ctx.note(
                &pointer,
                "not carried",
                format!("custom role `{id}` has no models; it cannot be imported"),
            );
            continue;
        }
        if levels.is_empty() {
            levels = models.keys().cloned().collect();
        }
        let mut level_map = Map::new();
        for level in &levels {
            let (model, max) = match models.get(level) {
                Some(Value::String(model)) => (model.clone(), per_level),
                Some(Value::Object(full)) => (
                    full.get("model").and_then(Value::as_str).unwrap_or(level).to_string(),
                    full.get("maxWorkers").and_then(Value::as_u64).unwrap_or(per_level),
                ),
                _ => {
                    ctx.note(
                        &format!("{pointer}/levels"),
                        "adapted",
                        format!("level `{level}` of `{id}` has no model: DevClaw gives it no worker slots; imported with the level name as the model id (DevClaw's pass-through), 1 worker"),
                    );
                    (level.clone(), 1)
                }
            };
            level_map.insert(
                level.clone(),
                if max == 2 { json!(model) } else { json!({"model": model, "max_workers": max.max(1)}) },
            );
        }
        for level in models.keys().filter(|l| !levels.contains(l)) {
            ctx.note(
                &format!("{pointer}/models/{}", escape_pointer(level)),
                "not carried",
                format!(
                    "`{level}` is not one of the levels of `{id}` ({}); its model is not imported",
                    levels.join(", ")
                ),
            );
        }
        if !levels.contains(&default_level) {
            let chosen = levels.get(levels.len() / 2).cloned().unwrap_or_default();
            ctx.note(
                &format!("{pointer}/defaultLevel"),
                "adapted",
                format!("default level `{default_level}` of `{id}` is not one of its levels; imported as `{chosen}` (the middle level, as DevClaw's heuristic falls back to)"),
            );
            default_level = chosen;
        }
        let mut aliases = Map::new();
        let mut alias = |name: &str, target: &str| {
            if levels.iter().any(|l| l == target) && !levels.iter().any(|l| l == name) {
                aliases.insert(name.into(), json!(target));
            }
        };
        alias("mid", "medior");
        match id.as_str() {
            "tester" => {
                alias("reviewer", "medior");
                alias("tester", "junior");
            }
            "architect" => {
                alias("opus", "senior");
                alias("sonnet", "junior");
            }
            _ => {}
        }
        let completion: Map<String, Value> = results
            .iter()
            .map(|r| (r.clone(), json!(if r == "done" { "COMPLETE".to_string() } else { r.to_uppercase() })))
            .collect();
        let rules = match levels.len() {
            0 | 1 => json!([]),
            2 => json!([{"name": "complex", "level": "highest", "keywords": COMPLEX}]),
            _ => json!([
                {"name": "simple", "level": "lowest", "keywords": SIMPLE, "max_words": 99},
                {"name": "complex", "level": "highest", "keywords": COMPLEX},
                {"name": "long", "level": "highest", "min_words": 501}
            ]),
        };
        let mut role = Map::new();
        if !enabled {
            role.insert("enabled".into(), json!(false));
        }
        role.insert("levels".into(), Value::Object(level_map));
        if !aliases.is_empty() {
            role.insert("aliases".into(), Value::Object(aliases));
        }
        role.insert("default_level".into(), json!(default_level));
        role.insert("completion".into(), Value::Object(completion));
        role.insert("level_selection".into(), json!({"inherit": true, "rules": rules}));
        out.insert(id, Value::Object(role));
    }
    Ok(json!({
        "kind": "roles",
        "role_aliases": {"dev": "developer", "qa": "tester"},
        "roles": out,
    }))
}

fn convert_lifecycle(
    ctx: &mut Ctx<'_>,
    workflow: &Map<String, Value>,
    source: &str,
) -> Result<(Value, Vec<(String, String)>), String> {
    let mut states = builtin_states();
    let mut from_file: Vec<String> = Vec::new();
    match workflow.get("states") {
        Some(Value::Object(map)) => {
            for (key, state) in map {
                let pointer = format!("/workflow/states/{}", escape_pointer(key));
                let Value::Object(fields) = state else {
                    ctx.note(&pointer, "not carried", "a state must be a map; this one is skipped");
                    continue;
                };
                ctx.unknown_keys(
                    &pointer,
                    fields,
                    &["type", "role", "label", "color", "priority", "description", "check", "on"],
                    &format!("state `{key}`"),
                );
                if let Some(Value::Object(on)) = fields.get("on") {
                    for (event, transition) in on {
                        if let Value::Object(full) = transition {
                            ctx.unknown_keys(
                                &format!("{pointer}/on/{}", escape_pointer(event)),
                                full,
                                &["target", "actions", "description"],
                                "a transition",
                            );
                        }
                    }
                }
                // DevClaw merges per whole state: the file's state replaces the built-in one.
                states.insert(key.clone(), state.clone());
                from_file.push(key.clone());
            }
        }
        Some(Value::Null) | None => {}
        Some(_) => return Err(at(ctx.document, "/workflow/states", "`workflow.states` must be a map")),
    }
    let builtin_kept: Vec<&String> = states.keys().filter(|k| !from_file.contains(k)).collect();
    if !from_file.is_empty() && !builtin_kept.is_empty() {
        ctx.note(
            "/workflow/states",
            "adapted",
            format!(
                "DevClaw always keeps its built-in states under the file's; imported too: {}",
                builtin_kept.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            ),
        );
    }
    let initial = workflow.get("initial").and_then(Value::as_str).unwrap_or("planning").to_string();
    let review = policy_value(ctx, workflow, "reviewPolicy", &["human", "agent", "skip"], "human");
    let test = policy_value(ctx, workflow, "testPolicy", &["skip", "agent"], "skip");
    let mut out_states = Map::new();
    let mut checks: Vec<(String, String)> = Vec::new();
    for (key, state) in &states {
        let Value::Object(fields) = state else { continue };
        let pointer = format!("/workflow/states/{}", escape_pointer(key));
        let mut converted = Map::new();
        for name in ["type", "role", "label", "color", "priority", "description"] {
            if let Some(value) = fields.get(name) {
                converted.insert(name.into(), value.clone());
            }
        }
        let on: Map<String, Value> = match fields.get("on") {
            Some(Value::Object(on)) => on
                .iter()
                .map(|(event, t)| {
                    let t = match t {
                        Value::Object(full) => Value::Object(
                            full.iter()
                                .filter(|(k, _)| ["target", "actions", "description"].contains(&k.as_str()))
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect(),
                        ),
                        other => other.clone(),
                    };
                    (event.clone(), t)
                })
                .collect(),
            _ => Map::new(),
        };
        if let Some(check) = fields.get("check") {
            match check.as_str() {
                Some(condition @ ("prApproved" | "prMerged")) => {
                    let file = if condition == "prApproved" { "checks/pr-approved.yaml" } else { "checks/pr-merged.yaml" };
                    if !checks.iter().any(|(f, _)| f == file) {
                        checks.push((file.to_string(), check_workflow(condition, source)));
                    }
                    converted.insert("check".into(), json!({"name": condition, "workflow": file, "every": "1m"}));
                }
                _ => ctx.note(
                    &format!("{pointer}/check"),
                    "not carried",
                    format!(
                        "check `{}` is not one DevClaw polls (prApproved, prMerged); write a check workflow for it",
                        check.as_str().map(String::from).unwrap_or_else(|| check.to_string())
                    ),
                ),
            }
        }
        let role = fields.get("role").and_then(Value::as_str);
        let queue = fields.get("type").and_then(Value::as_str) == Some("queue");
        let event_or_wait =
            |event: &str| if on.contains_key(event) { event.to_string() } else { "wait".to_string() };
        if queue && role == Some("reviewer") {
            let skip = event_or_wait("SKIP");
            if skip == "wait" {
                ctx.note(
                    &pointer,
                    "adapted",
                    format!("`{key}` has no SKIP transition, so `review:skip` items wait there (DevClaw leaves them too)"),
                );
            }
            converted.insert(
                "route".into(),
                json!({"policy": "review", "cases": {"human": "wait", "agent": event_or_wait("PICKUP"), "skip": skip}}),
            );
        }
        if queue && role == Some("tester") {
            let skip = event_or_wait("SKIP");
            if skip == "wait" {
                ctx.note(
                    &pointer,
                    "adapted",
                    format!("`{key}` has no SKIP transition, so `test:skip` items wait there (DevClaw leaves them too)"),
                );
            }
            converted.insert(
                "route".into(),
                json!({"policy": "test", "cases": {"skip": skip, "agent": event_or_wait("PICKUP")}}),
            );
        }
        if !on.is_empty() {
            converted.insert("on".into(), Value::Object(on));
        }
        out_states.insert(key.clone(), Value::Object(converted));
    }
    // States only a tool or a person puts items in become entry states: walk from the
    // initial state, then from each state still unseen (in file order), marking it.
    let mut seen: Vec<String> = Vec::new();
    let keys: Vec<String> = out_states.keys().cloned().collect();
    let mut roots = vec![initial.clone()];
    roots.extend(keys.iter().cloned());
    for root in roots {
        if seen.contains(&root) {
            continue;
        }
        if root != initial {
            if let Some(Value::Object(state)) = out_states.get_mut(&root) {
                state.insert("entry".into(), json!(true));
            }
            let pointer = format!("/workflow/states/{}", escape_pointer(&root));
            ctx.note(
                if from_file.contains(&root) { &pointer } else { "" },
                "adapted",
                format!("no transition leads into `{root}`: items enter it from outside (in DevClaw, a tool such as research_task); marked `entry: true`"),
            );
        }
        let mut queue = vec![root];
        while let Some(key) = queue.pop() {
            if seen.contains(&key) {
                continue;
            }
            if let Some(Value::Object(on)) = out_states.get(&key).and_then(|s| s.get("on")) {
                for t in on.values() {
                    let target =
                        t.as_str().or_else(|| t.get("target").and_then(Value::as_str)).unwrap_or_default();
                    queue.push(target.to_string());
                }
            }
            seen.push(key);
        }
    }
    let lifecycle = json!({
        "kind": "lifecycle",
        "description": format!("Imported from {source} by `runner import devclaw`."),
        "initial": initial,
        "roles": "roles.yaml",
        "policies": {
            "review": {
                "description": "Who reviews a PR: a person (merged on approval by the check), the reviewer agent, or nobody. Per item: a `review:<value>` label.",
                "values": ["human", "agent", "skip"],
                "default": review,
            },
            "test": {
                "description": "Whether the tester agent tests the change after review. Per item: a `test:<value>` label.",
                "values": ["skip", "agent"],
                "default": test,
            },
        },
        "states": out_states,
    });
    Ok((lifecycle, checks))
}

fn policy_value(
    ctx: &mut Ctx<'_>,
    workflow: &Map<String, Value>,
    key: &str,
    values: &[&str],
    default: &str,
) -> String {
    match workflow.get(key) {
        None | Some(Value::Null) => default.to_string(),
        Some(Value::String(value)) if values.contains(&value.as_str()) => value.clone(),
        Some(other) => {
            ctx.note(
                &format!("/workflow/{key}"),
                "adapted",
                format!(
                    "`{}` is not a value DevClaw still accepts ({}); imported as `{default}`",
                    other.as_str().map(String::from).unwrap_or_else(|| other.to_string()),
                    values.join(", ")
                ),
            );
            default.to_string()
        }
    }
}

/// The workflow a `check` state polls: it reads the issue's PR through `gh` and
/// names the event the state should take (empty when nothing happened yet).
fn check_workflow(condition: &str, source: &str) -> String {
    let met = if condition == "prMerged" {
        "pr.state == 'MERGED'"
    } else {
        "pr.state == 'MERGED' or pr.reviewDecision == 'APPROVED'"
    };
    format!(
        r##"# The `{condition}` check of a DevClaw queue (imported from {source}): reads the
# issue's PR and names the event the state takes, in DevClaw's order: changes requested,
# a merge conflict, a closed PR, then the condition itself. Empty: nothing happened yet.
name: devclaw-check-{condition}
description: Poll an issue's PR for the {condition} condition and name the event to fire.

inputs:
  repo:
    type: string
    description: The repository, owner/name.
  issue:
    type: integer
    description: The issue number.
  gh:
    type: string
    default: gh
    description: The gh program.

steps:
  - id: pr
    type: exec
    effect: read
    timeout: 30s
    argv: ["{{{{ inputs.gh }}}}", pr, list, "--repo={{{{ inputs.repo }}}}", --state, all,
           --search, "#{{{{ inputs.issue }}}}", --json, "state,reviewDecision,mergeable,url", --limit, "1"]
    parse: json

  - id: decide
    type: set
    values:
      event: >-
        {{%- set prs = steps.pr.output.stdout -%}}
        {{%- if prs -%}}{{%- set pr = prs[0] -%}}
        {{%- if pr.state == 'CLOSED' -%}}PR_CLOSED
        {{%- elif pr.state != 'MERGED' and pr.reviewDecision == 'CHANGES_REQUESTED' -%}}CHANGES_REQUESTED
        {{%- elif pr.state != 'MERGED' and pr.mergeable == 'CONFLICTING' -%}}MERGE_CONFLICT
        {{%- elif {met} -%}}APPROVED
        {{%- endif -%}}{{%- endif -%}}
      pr: "{{{{ (steps.pr.output.stdout | first).url if steps.pr.output.stdout else '' }}}}"

outputs:
  event: "{{{{ steps.decide.output.event }}}}"
  pr: "{{{{ steps.decide.output.pr }}}}"
"##
    )
}
