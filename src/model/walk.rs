//! Two questions every traversal of a step tree asks, answered once: which steps sit
//! directly inside a step ([`Step::children`]), and whether a step changes the world
//! ([`Step::own_effect`] for the step itself, [`Step::writes`] for it and its children).

use super::step::{Effect, Step, StepKind};

impl Step {
    /// The steps directly inside this one, in order: switch cases then the default,
    /// loop bodies, stages, parallel blocks. Empty for a leaf.
    pub(crate) fn children(&self) -> Vec<&Step> {
        match &self.kind {
            StepKind::Switch(switch) => switch
                .cases
                .iter()
                .flat_map(|c| &c.steps)
                .chain(switch.default.iter().flat_map(|d| &d.steps))
                .collect(),
            StepKind::ForEach(each) => each.steps.iter().collect(),
            StepKind::Parallel(parallel) => parallel.steps.iter().collect(),
            StepKind::Stages(stages) => stages.stages.iter().flat_map(|s| &s.steps).collect(),
            _ => Vec::new(),
        }
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
