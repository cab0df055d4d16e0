//! Lifecycle moves, level selection and Mermaid diagrams: pure functions over the
//! lifecycle and roles models, used by the engine, `runner roles` and `runner graph`.

use serde::Serialize;

use crate::model::lifecycle::{Lifecycle, Role, Roles, StateType, TextField};
use crate::model::step::{Step, StepKind};
use crate::model::workflow::Workflow;

/// How an item should move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Move {
    /// By this event.
    Event(String),
    /// To this state (key or label), by whichever transition leads there.
    To(String),
    /// By the event a role's completion result fires.
    Completion {
        /// The role.
        role: String,
        /// Its result.
        result: String,
    },
}

/// A move the lifecycle allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Moved {
    /// The state it was in.
    pub from: String,
    /// Its label.
    pub from_label: String,
    /// The event that moved it.
    pub event: String,
    /// The state it is in now.
    pub to: String,
    /// Its label.
    pub to_label: String,
    /// The new state's type.
    pub to_type: String,
    /// The new state's role, if any.
    pub to_role: Option<String>,
    /// Actions to run with the move, in order.
    pub actions: Vec<String>,
    /// Labels to add to the item.
    pub add_labels: Vec<String>,
    /// Labels to remove from the item.
    pub remove_labels: Vec<String>,
}

/// Work out a move, or say why the lifecycle does not allow it.
pub fn step(lifecycle: &Lifecycle, roles: Option<&Roles>, state: &str, how: &Move) -> Result<Moved, String> {
    let Some((from, current)) = lifecycle.find(state) else {
        let keys: Vec<&str> = lifecycle.states.keys().map(String::as_str).collect();
        return Err(format!(
            "no state `{state}` in the lifecycle (by key or label); states: {}",
            keys.join(", ")
        ));
    };
    let events: Vec<&str> = current.on.keys().map(String::as_str).collect();
    let (event, transition) = match how {
        Move::Event(event) => match current.on.get_key_value(event.as_str()) {
            Some((event, transition)) => (event.clone(), transition),
            None => {
                return Err(format!(
                    "state `{from}` ({}) has no transition for `{event}`; its events: {}",
                    current.label,
                    if events.is_empty() { "none".to_string() } else { events.join(", ") }
                ));
            }
        },
        Move::To(target) => {
            let Some((target_key, _)) = lifecycle.find(target) else {
                return Err(format!("no state `{target}` in the lifecycle"));
            };
            match current.on.iter().find(|(_, t)| t.target() == target_key) {
                Some((event, transition)) => (event.clone(), transition),
                None => {
                    return Err(format!(
                        "the lifecycle does not allow `{from}` -> `{target_key}`; from `{from}` an item can go to: {}",
                        targets(current)
                    ));
                }
            }
        }
        Move::Completion { role, result } => {
            let Some(roles) = roles else { return Err("completion rules need a roles file".into()) };
            let Some(role_def) = roles.roles.get(role) else {
                return Err(format!(
                    "no role `{role}`; roles: {}",
                    roles.roles.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            };
            let Some(event) = role_def.completion.get(result) else {
                return Err(format!(
                    "{} cannot complete with `{result}`; its results: {}",
                    role,
                    role_def.completion.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            };
            if current.ty != StateType::Active || current.role.as_deref() != Some(role.as_str()) {
                return Err(format!("state `{from}` is not an active state of role `{role}`"));
            }
            match current.on.get_key_value(event.as_str()) {
                Some((event, transition)) => (event.clone(), transition),
                None => {
                    return Err(format!("state `{from}` has no transition for `{event}` ({role}:{result})"));
                }
            }
        }
    };
    let to = transition.target().to_string();
    let Some(next) = lifecycle.states.get(&to) else {
        return Err(format!("transition `{event}` of `{from}` targets the unknown state `{to}`"));
    };
    Ok(Moved {
        from: from.to_string(),
        from_label: current.label.clone(),
        event,
        to: to.clone(),
        to_label: next.label.clone(),
        to_type: next.ty.name().to_string(),
        to_role: next.role.clone(),
        actions: transition.actions().to_vec(),
        add_labels: if next.label == current.label { Vec::new() } else { vec![next.label.clone()] },
        remove_labels: if next.label == current.label { Vec::new() } else { vec![current.label.clone()] },
    })
}

fn targets(state: &crate::model::lifecycle::State) -> String {
    let list: Vec<String> = state.on.iter().map(|(e, t)| format!("{} (by {e})", t.target())).collect();
    if list.is_empty() { "nowhere (no transitions)".into() } else { list.join(", ") }
}

/// The level chosen for a piece of work, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selection {
    /// The role.
    pub role: String,
    /// The level.
    pub level: String,
    /// Its model.
    pub model: String,
    /// Workers allowed at this level at once (2 unless the roles file says otherwise).
    pub max_workers: u32,
    /// Which rule decided: `label`, `inherited`, `rule <name>` or `default`.
    pub rule: String,
    /// Why, in words.
    pub reason: String,
}

/// Choose a level: an explicit `<role>:<level>[:<name>]` label wins; then, if the role
/// inherits, another role's level label naming a level this role has; then the rules
/// in order; then the default level.
pub fn select_level(role_id: &str, role: &Role, title: &str, body: &str, labels: &[String]) -> Selection {
    let pick = |level: &str, rule: String, reason: String| Selection {
        role: role_id.to_string(),
        level: level.to_string(),
        model: role.levels.get(level).map(|m| m.model().to_string()).unwrap_or_else(|| level.to_string()),
        max_workers: match role.levels.get(level) {
            Some(crate::model::lifecycle::LevelModel::Full { max_workers: Some(n), .. }) => *n,
            _ => 2,
        },
        rule,
        reason,
    };
    let parsed: Vec<(String, String, &String)> = labels
        .iter()
        .filter_map(|label| {
            let mut parts = label.splitn(3, ':');
            Some((parts.next()?.trim().to_lowercase(), parts.next()?.trim().to_lowercase(), label))
        })
        .collect();
    for (owner, level, label) in &parsed {
        if owner == &role_id.to_lowercase() && role.levels.contains_key(level.as_str()) {
            return pick(level, "label".into(), format!("the item is labelled `{label}`"));
        }
    }
    let selection = role.level_selection.clone().unwrap_or_default();
    if selection.inherit {
        for (owner, level, label) in &parsed {
            if owner != &role_id.to_lowercase() && role.levels.contains_key(level.as_str()) {
                return pick(level, "inherited".into(), format!("inherited from the label `{label}`"));
            }
        }
    }
    for (index, rule) in selection.rules.iter().enumerate() {
        let fields = if rule.fields.is_empty() {
            vec![TextField::Title, TextField::Body]
        } else {
            rule.fields.clone()
        };
        let text: String = fields
            .iter()
            .map(|f| match f {
                TextField::Title => title,
                TextField::Body => body,
            })
            .collect::<Vec<_>>()
            .join(" ");
        let words = text.split_whitespace().count() as u32;
        let mut reasons = Vec::new();
        if !rule.keywords.is_empty() {
            match rule.keywords.iter().find(|k| contains_words(&text, k)) {
                Some(found) => reasons.push(format!("mentions \"{found}\"")),
                None => continue,
            }
        }
        if let Some(min) = rule.min_words {
            if words < min {
                continue;
            }
            reasons.push(format!("{words} words >= {min}"));
        }
        if let Some(max) = rule.max_words {
            if words > max {
                continue;
            }
            reasons.push(format!("{words} words <= {max}"));
        }
        let name = rule.name.clone().unwrap_or_else(|| format!("#{}", index + 1));
        let reason = if reasons.is_empty() { "always".to_string() } else { reasons.join(", ") };
        return pick(&rule.level, format!("rule {name}"), reason);
    }
    pick(&role.default_level, "default".into(), "no label or rule decided".into())
}

/// Whether `phrase` occurs in `text` as whole words, ignoring case ("css" does not match
/// "process", "architect" does not match "architecture").
pub fn contains_words(text: &str, phrase: &str) -> bool {
    let text = text.to_lowercase();
    let phrase = phrase.trim().to_lowercase();
    if phrase.is_empty() {
        return false;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(found) = text[from..].find(&phrase) {
        let start = from + found;
        let end = start + phrase.len();
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        if !before.is_some_and(is_word) && !after.is_some_and(is_word) {
            return true;
        }
        from = start + phrase.chars().next().map(char::len_utf8).unwrap_or(1);
    }
    false
}

/// A Mermaid state diagram of a lifecycle.
pub fn mermaid_lifecycle(lifecycle: &Lifecycle) -> String {
    let mut out = String::from("stateDiagram-v2\n");
    out.push_str(&format!("    [*] --> {}\n", mermaid_id(&lifecycle.initial)));
    for (key, state) in &lifecycle.states {
        let role = state.role.as_ref().map(|r| format!(" · {r}")).unwrap_or_default();
        out.push_str(&format!(
            "    state \"{} ({}{role})\" as {}\n",
            escape(&state.label),
            state.ty.name(),
            mermaid_id(key)
        ));
    }
    for (key, state) in &lifecycle.states {
        for (event, transition) in &state.on {
            let actions = if transition.actions().is_empty() {
                String::new()
            } else {
                format!(" / {}", transition.actions().join(", "))
            };
            out.push_str(&format!(
                "    {} --> {}: {}{}\n",
                mermaid_id(key),
                mermaid_id(transition.target()),
                escape(event),
                escape(&actions)
            ));
        }
        if state.ty == StateType::Terminal {
            out.push_str(&format!("    {} --> [*]\n", mermaid_id(key)));
        }
    }
    out
}

/// A Mermaid flowchart of a workflow: steps in order, branches, loops and calls.
pub fn mermaid_workflow(workflow: &Workflow) -> String {
    let mut out = String::from("flowchart TD\n");
    out.push_str(&format!("    start([\"{}\"])\n", escape(&workflow.name)));
    let mut counter = 0;
    let last = steps_chart(&workflow.steps, "start", "", "", &mut out, &mut counter);
    out.push_str("    finish([end])\n");
    out.push_str(&format!("    {last} --> finish\n"));
    if !workflow.finally.is_empty() {
        out.push_str("    subgraph finally\n");
        steps_chart(&workflow.finally, "finish", "", "    ", &mut out, &mut counter);
        out.push_str("    end\n");
    }
    out
}

/// Draw steps in sequence after `previous` (the first edge labelled `first_label`);
/// returns the last node.
fn steps_chart(
    steps: &[Step],
    previous: &str,
    first_label: &str,
    indent: &str,
    out: &mut String,
    counter: &mut usize,
) -> String {
    let mut previous = previous.to_string();
    for (index, step) in steps.iter().enumerate() {
        *counter += 1;
        let node = format!("s{counter}");
        let name = step
            .id
            .clone()
            .or_else(|| step.name.clone())
            .unwrap_or_else(|| step.kind.type_name().to_string());
        let mut labels: Vec<String> = Vec::new();
        if index == 0 && !first_label.is_empty() {
            labels.push(first_label.to_string());
        }
        if let Some(when) = &step.when {
            labels.push(format!("when {}", escape(when)));
        }
        let guard = if labels.is_empty() { String::new() } else { format!("|{}|", labels.join("; ")) };
        match &step.kind {
            StepKind::Switch(switch) => {
                out.push_str(&format!("{indent}    {node}{{\"{} (switch)\"}}\n", escape(&name)));
                out.push_str(&format!("{indent}    {previous} -->{guard} {node}\n"));
                *counter += 1;
                let join = format!("j{counter}");
                out.push_str(&format!("{indent}    {join}(( ))\n"));
                for case in &switch.cases {
                    let condition = escape(&case.when);
                    if case.steps.is_empty() {
                        out.push_str(&format!("{indent}    {node} -->|{condition}| {join}\n"));
                    } else {
                        let tail = steps_chart(&case.steps, &node, &condition, indent, out, counter);
                        out.push_str(&format!("{indent}    {tail} --> {join}\n"));
                    }
                }
                match &switch.default {
                    Some(default) if !default.steps.is_empty() => {
                        let tail = steps_chart(&default.steps, &node, "otherwise", indent, out, counter);
                        out.push_str(&format!("{indent}    {tail} --> {join}\n"));
                    }
                    _ => out.push_str(&format!("{indent}    {node} -->|otherwise| {join}\n")),
                }
                previous = join;
            }
            StepKind::ForEach(each) => {
                out.push_str(&format!(
                    "{indent}    subgraph {node}[\"{} (for each {}{})\"]\n",
                    escape(&name),
                    escape(&each.items),
                    each.parallel.map(|p| format!(", {p} at a time")).unwrap_or_default()
                ));
                *counter += 1;
                let entry = format!("e{counter}");
                out.push_str(&format!("{indent}        {entry}[ ]\n"));
                let deeper = format!("{indent}    ");
                steps_chart(&each.steps, &entry, "", &deeper, out, counter);
                out.push_str(&format!("{indent}    end\n"));
                out.push_str(&format!("{indent}    {previous} -->{guard} {node}\n"));
                previous = node;
            }
            StepKind::Call(call) => {
                let plan = if call.plan { ", plan mode" } else { "" };
                out.push_str(&format!(
                    "{indent}    {node}[[\"{} (call {}{plan})\"]]\n",
                    escape(&name),
                    escape(&call.workflow)
                ));
                out.push_str(&format!("{indent}    {previous} -->{guard} {node}\n"));
                previous = node;
            }
            StepKind::Stages(stages) => {
                // Each stage in turn; "next" edges are taken while no stage decided.
                out.push_str(&format!(
                    "{indent}    subgraph {node}[\"{} (stages, first match)\"]\n",
                    escape(&name)
                ));
                *counter += 1;
                let mut entry = format!("e{counter}");
                out.push_str(&format!("{indent}        {entry}[ ]\n"));
                let deeper = format!("{indent}    ");
                for (stage_index, stage) in stages.stages.iter().enumerate() {
                    *counter += 1;
                    let stage_node = format!("g{counter}");
                    let prefetch = if stage.prefetch { ", prefetched" } else { "" };
                    out.push_str(&format!(
                        "{deeper}    {stage_node}{{\"{} (stage{prefetch})\"}}\n",
                        escape(&stage.id)
                    ));
                    let label = if stage_index == 0 { "" } else { "|next|" };
                    out.push_str(&format!("{deeper}    {entry} -->{label} {stage_node}\n"));
                    entry = steps_chart(&stage.steps, &stage_node, "", &deeper, out, counter);
                }
                out.push_str(&format!("{indent}    end\n"));
                out.push_str(&format!("{indent}    {previous} -->{guard} {node}\n"));
                previous = node;
            }
            StepKind::Parallel(parallel) => {
                out.push_str(&format!("{indent}    subgraph {node}[\"{} (parallel)\"]\n", escape(&name)));
                *counter += 1;
                let entry = format!("e{counter}");
                out.push_str(&format!("{indent}        {entry}[ ]\n"));
                let deeper = format!("{indent}    ");
                for inner in &parallel.steps {
                    steps_chart(std::slice::from_ref(inner), &entry, "", &deeper, out, counter);
                }
                out.push_str(&format!("{indent}    end\n"));
                out.push_str(&format!("{indent}    {previous} -->{guard} {node}\n"));
                previous = node;
            }
            StepKind::Stop(_) | StepKind::Fail(_) => {
                out.push_str(&format!(
                    "{indent}    {node}([\"{} ({})\"])\n",
                    escape(&name),
                    step.kind.type_name()
                ));
                out.push_str(&format!("{indent}    {previous} -->{guard} {node}\n"));
                previous = node;
            }
            kind => {
                out.push_str(&format!("{indent}    {node}[\"{} ({})\"]\n", escape(&name), kind.type_name()));
                out.push_str(&format!("{indent}    {previous} -->{guard} {node}\n"));
                previous = node;
            }
        }
    }
    previous
}

fn mermaid_id(key: &str) -> String {
    key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

fn escape(text: &str) -> String {
    text.replace('"', "#quot;").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_words_only() {
        assert!(contains_words("Refactor the parser", "refactor"));
        assert!(!contains_words("process the file", "css"));
        assert!(!contains_words("the architecture doc", "architect"));
        assert!(contains_words("a database schema change", "database schema"));
        assert!(contains_words("fix typo.", "fix typo"));
    }
}
