//! Two questions every traversal of a step tree asks, answered once: which steps sit
//! directly inside a step ([`Step::child_lists`], [`Step::children`]), and whether a step changes the world
//! ([`Step::own_effect`] for the step itself, [`Step::writes`] for it and its children).

use super::step::{Effect, Step, StepKind};

/// Where a list of child steps sits inside its step, as the start of a JSON pointer
/// relative to the step (`cases/0/steps`, `default/steps`, `steps`, `stages/1/steps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildList {
    /// The steps of a switch case.
    Case(usize),
    /// The steps of a switch's default.
    Default,
    /// The body of a `for_each` or `parallel`.
    Steps,
    /// The steps of a stage.
    Stage(usize),
}

impl std::fmt::Display for ChildList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildList::Case(index) => write!(f, "cases/{index}/steps"),
            ChildList::Default => f.write_str("default/steps"),
            ChildList::Steps => f.write_str("steps"),
            ChildList::Stage(index) => write!(f, "stages/{index}/steps"),
        }
    }
}

impl Step {
    /// The lists of steps directly inside this one, in order, each with where it sits:
    /// switch cases then the default, loop bodies, parallel blocks, stages. Empty for a
    /// leaf. The one place that knows which kinds hold steps.
    pub(crate) fn child_lists(&self) -> Vec<(ChildList, &[Step])> {
        match &self.kind {
            StepKind::Switch(switch) => switch
                .cases
                .iter()
                .enumerate()
                .map(|(index, case)| (ChildList::Case(index), case.steps.as_slice()))
                .chain(switch.default.iter().map(|default| (ChildList::Default, default.steps.as_slice())))
                .collect(),
            StepKind::ForEach(each) => vec![(ChildList::Steps, each.steps.as_slice())],
            StepKind::Parallel(parallel) => vec![(ChildList::Steps, parallel.steps.as_slice())],
            StepKind::Stages(stages) => stages
                .stages
                .iter()
                .enumerate()
                .map(|(index, stage)| (ChildList::Stage(index), stage.steps.as_slice()))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The steps directly inside this one, in order (see [`Step::child_lists`]).
    pub(crate) fn children(&self) -> Vec<&Step> {
        self.child_lists().into_iter().flat_map(|(_, steps)| steps).collect()
    }

    /// This step's own effect, not counting its children: the declared `effect`, else
    /// the kind's default (HTTP GET/HEAD read, other methods write; `exec`, `cron` and
    /// `kubernetes` write; `render` to a file writes, to standard output reads; a `call` writes
    /// unless it runs in plan mode). Every other kind only reads.
    pub(crate) fn own_effect(&self) -> Effect {
        let default = match &self.kind {
            StepKind::Http(http) if http.method.is_read() => Effect::Read,
            // Reading the cron states never changes a job.
            StepKind::Cron(cron) if cron.read => return Effect::Read,
            StepKind::Http(_) | StepKind::Exec(_) | StepKind::Cron(_) | StepKind::Kubernetes(_) => {
                Effect::Write
            }
            // Printing is not a write, whatever `effect` says.
            StepKind::Render(render) if render.out.is_none() => return Effect::Read,
            StepKind::Render(_) => Effect::Write,
            // What a call does is decided by the callee's steps and its own plan flag.
            StepKind::Call(call) => return if call.plan { Effect::Read } else { Effect::Write },
            _ => return Effect::Read,
        };
        self.effect.unwrap_or(default)
    }

    /// Whether this step, or any step inside it, may change the world: a dry run
    /// reports such a step instead of running it.
    pub(crate) fn writes(&self) -> bool {
        self.own_effect() == Effect::Write || self.children().into_iter().any(Step::writes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(value: serde_json::Value) -> Step {
        serde_json::from_value(value).unwrap_or_else(|e| panic!("step: {e}"))
    }

    #[test]
    fn effects_by_kind_and_declaration() {
        assert!(!step(serde_json::json!({"type": "http", "url": "http://x"})).writes());
        assert!(step(serde_json::json!({"type": "http", "method": "POST", "url": "http://x"})).writes());
        assert!(
            !step(serde_json::json!({"type": "http", "method": "POST", "url": "http://x", "effect": "read"}))
                .writes()
        );
        assert!(step(serde_json::json!({"type": "http", "url": "http://x", "effect": "write"})).writes());
        assert!(step(serde_json::json!({"type": "exec", "argv": ["true"]})).writes());
        assert!(!step(serde_json::json!({"type": "exec", "argv": ["true"], "effect": "read"})).writes());
        assert!(!step(serde_json::json!({"type": "render", "template": "t"})).writes());
        assert!(step(serde_json::json!({"type": "render", "template": "t", "out": "o"})).writes());
        assert!(!step(serde_json::json!({"type": "set", "values": {}})).writes());
    }

    #[test]
    fn children_and_nested_writes() {
        let each = step(serde_json::json!({"type": "for_each", "items": "[1]", "steps": [
            {"type": "set", "values": {}},
            {"type": "exec", "argv": ["true"]},
        ]}));
        assert_eq!(each.children().len(), 2);
        assert!(each.writes());
        assert!(each.own_effect() == Effect::Read);
    }
}
