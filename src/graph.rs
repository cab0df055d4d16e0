//! Mermaid diagrams of a lifecycle (states and transitions) and of a workflow
//! (steps, branches, loops, calls), for `runner graph`. Drawing only: the state
//! machine itself is in `lifecycle`.

use crate::mermaid::{mermaid_id, mermaid_text};
use crate::model::lifecycle::{Lifecycle, StateType};
use crate::model::step::{Step, StepKind};
use crate::model::workflow::Workflow;

/// A Mermaid state diagram of a lifecycle.
pub(crate) fn mermaid_lifecycle(lifecycle: &Lifecycle) -> String {
    let mut out = String::from("stateDiagram-v2\n");
    out.push_str(&format!("    [*] --> {}\n", mermaid_id(&lifecycle.initial)));
    for (key, _) in lifecycle.states.iter().filter(|(k, s)| s.entry && **k != lifecycle.initial) {
        out.push_str(&format!("    [*] --> {}: entry\n", mermaid_id(key)));
    }
    for (key, state) in &lifecycle.states {
        let role = state.role.as_ref().map(|r| format!(" · {r}")).unwrap_or_default();
        out.push_str(&format!(
            "    state \"{} ({}{role})\" as {}\n",
            mermaid_text(&state.label),
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
                mermaid_text(event),
                mermaid_text(&actions)
            ));
        }
        if state.ty == StateType::Terminal {
            out.push_str(&format!("    {} --> [*]\n", mermaid_id(key)));
        }
    }
    for (key, state) in &lifecycle.states {
        let mut notes = Vec::new();
        if let Some(route) = &state.route {
            let by = route.policy.as_deref().or(route.field.as_deref()).unwrap_or_default();
            let mut cases: Vec<String> = route.cases.iter().map(|(v, e)| format!("{by}:{v} → {e}")).collect();
            if let Some(otherwise) = &route.otherwise {
                cases.push(format!("otherwise → {otherwise}"));
            }
            notes.push(format!("route: {}", cases.join(", ")));
        }
        if let Some(check) = &state.check {
            notes.push(format!(
                "check {}every {}",
                check.name.as_ref().map(|n| format!("{n} ")).unwrap_or_default(),
                check.every
            ));
        }
        if !notes.is_empty() {
            out.push_str(&format!(
                "    note right of {} : {}\n",
                mermaid_id(key),
                mermaid_text(&notes.join(" · "))
            ));
        }
    }
    out
}

/// A Mermaid flowchart of a workflow: steps in order, branches, loops and calls.
/// Every label is a quoted, escaped Mermaid string ([`crate::mermaid::mermaid_label`]),
/// so conditions like `a | dig('b')` and names with quotes parse.
pub(crate) fn mermaid_workflow(workflow: &Workflow) -> String {
    let mut out = String::from("flowchart TD\n");
    out.push_str(&format!("    start([{}])\n", label(&workflow.name)));
    let mut counter = 0;
    let last = steps_chart(&workflow.steps, "start", "", "", &mut out, &mut counter);
    out.push_str("    finish([\"end\"])\n");
    out.push_str(&format!("    {last} --> finish\n"));
    if !workflow.finally.is_empty() {
        out.push_str("    subgraph finally\n");
        steps_chart(&workflow.finally, "finish", "", "    ", &mut out, &mut counter);
        out.push_str("    end\n");
    }
    out
}

fn label(text: &str) -> String {
    crate::mermaid::mermaid_label(text)
}

/// An edge from `from` to `to`, labelled when `guard` is not empty.
fn edge(out: &mut String, indent: &str, from: &str, guard: &str, to: &str) {
    if guard.is_empty() {
        out.push_str(&format!("{indent}    {from} --> {to}\n"));
    } else {
        out.push_str(&format!("{indent}    {from} -->|{}| {to}\n", label(guard)));
    }
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
            labels.push(format!("when {when}"));
        }
        let guard = labels.join("; ");
        match &step.kind {
            StepKind::Switch(switch) => {
                out.push_str(&format!("{indent}    {node}{{{}}}\n", label(&format!("{name} (switch)"))));
                edge(out, indent, &previous, &guard, &node);
                *counter += 1;
                let join = format!("j{counter}");
                out.push_str(&format!("{indent}    {join}((\" \"))\n"));
                for case in &switch.cases {
                    if case.steps.is_empty() {
                        edge(out, indent, &node, &case.when, &join);
                    } else {
                        let tail = steps_chart(&case.steps, &node, &case.when, indent, out, counter);
                        edge(out, indent, &tail, "", &join);
                    }
                }
                match &switch.default {
                    Some(default) if !default.steps.is_empty() => {
                        let tail = steps_chart(&default.steps, &node, "otherwise", indent, out, counter);
                        edge(out, indent, &tail, "", &join);
                    }
                    _ => edge(out, indent, &node, "otherwise", &join),
                }
                previous = join;
            }
            StepKind::ForEach(each) => {
                let title = format!(
                    "{name} (for each {}{})",
                    each.items,
                    each.parallel.as_ref().map(|p| format!(", {p} at a time")).unwrap_or_default()
                );
                out.push_str(&format!("{indent}    subgraph {node}[{}]\n", label(&title)));
                *counter += 1;
                let entry = format!("e{counter}");
                out.push_str(&format!("{indent}        {entry}[\" \"]\n"));
                let deeper = format!("{indent}    ");
                steps_chart(&each.steps, &entry, "", &deeper, out, counter);
                out.push_str(&format!("{indent}    end\n"));
                edge(out, indent, &previous, &guard, &node);
                previous = node;
            }
            StepKind::Call(call) => {
                let plan = if call.plan { ", plan mode" } else { "" };
                let text = format!("{name} (call {}{plan})", call.workflow);
                out.push_str(&format!("{indent}    {node}[[{}]]\n", label(&text)));
                edge(out, indent, &previous, &guard, &node);
                previous = node;
            }
            StepKind::Stages(stages) => {
                // Each stage in turn; "next" edges are taken while no stage decided.
                out.push_str(&format!(
                    "{indent}    subgraph {node}[{}]\n",
                    label(&format!("{name} (stages, first match)"))
                ));
                *counter += 1;
                let mut entry = format!("e{counter}");
                out.push_str(&format!("{indent}        {entry}[\" \"]\n"));
                let deeper = format!("{indent}    ");
                for (stage_index, stage) in stages.stages.iter().enumerate() {
                    *counter += 1;
                    let stage_node = format!("g{counter}");
                    let prefetch = if stage.prefetch { ", prefetched" } else { "" };
                    out.push_str(&format!(
                        "{deeper}    {stage_node}{{{}}}\n",
                        label(&format!("{} (stage{prefetch})", stage.id))
                    ));
                    edge(out, &deeper, &entry, if stage_index == 0 { "" } else { "next" }, &stage_node);
                    entry = steps_chart(&stage.steps, &stage_node, "", &deeper, out, counter);
                }
                out.push_str(&format!("{indent}    end\n"));
                edge(out, indent, &previous, &guard, &node);
                previous = node;
            }
            StepKind::Parallel(parallel) => {
                out.push_str(&format!(
                    "{indent}    subgraph {node}[{}]\n",
                    label(&format!("{name} (parallel)"))
                ));
                *counter += 1;
                let entry = format!("e{counter}");
                out.push_str(&format!("{indent}        {entry}[\" \"]\n"));
                let deeper = format!("{indent}    ");
                for inner in &parallel.steps {
                    steps_chart(std::slice::from_ref(inner), &entry, "", &deeper, out, counter);
                }
                out.push_str(&format!("{indent}    end\n"));
                edge(out, indent, &previous, &guard, &node);
                previous = node;
            }
            StepKind::Stop(_) | StepKind::Fail(_) => {
                let text = format!("{name} ({})", step.kind.type_name());
                out.push_str(&format!("{indent}    {node}([{}])\n", label(&text)));
                edge(out, indent, &previous, &guard, &node);
                previous = node;
            }
            kind => {
                let text = format!("{name} ({})", kind.type_name());
                out.push_str(&format!("{indent}    {node}[{}]\n", label(&text)));
                edge(out, indent, &previous, &guard, &node);
                previous = node;
            }
        }
    }
    previous
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;
    use crate::mermaid::grammar::check_flowchart;

    /// Every shipped workflow's diagram follows the grammar (the Node test in
    /// tests/engine/ecosystem.rs runs Mermaid's real parser on the same diagrams).
    #[test]
    fn every_shipped_workflow_graph_follows_the_grammar() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut pending = vec![root.join("workflows"), root.join("examples")];
        let mut drawn = 0;
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for path in entries.flatten().map(|e| e.path()) {
                if path.is_dir() {
                    pending.push(path);
                    continue;
                }
                let name = path.to_string_lossy();
                if !name.ends_with(".yaml") || name.ends_with(".test.yaml") {
                    continue;
                }
                let mut loader = crate::load::Loader::new();
                if let Ok(Some(crate::load::Loaded::Workflow(workflow))) = loader.load(&path) {
                    let diagram = mermaid_workflow(&workflow);
                    if let Err(e) = check_flowchart(&diagram) {
                        panic!("{name}: {e}\n{diagram}");
                    }
                    drawn += 1;
                }
            }
        }
        assert!(drawn >= 10, "only {drawn} workflows drawn");
    }
}
