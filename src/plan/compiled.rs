//! The plan: a loaded [`Project`] compiled once before it runs. Every step's effect is
//! decided here (not per execution), the guard rules are compiled, and each unit's
//! lifecycle and roles are turned into the template values the run sees. The engine
//! runs a `Plan`, never a bare project.
//!
//! Templates and bare expressions are compiled into the evaluator's cache at their
//! first evaluation, once per run, not here: a run evaluates only the branches it
//! takes (the heartbeat loads five workflows and runs a fraction of their templates),
//! and the loader has already compiled each one once to check it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::Value;
use serde_json::Value as Json;

use super::project::{Project, Unit};
use crate::expr::values::{Evaluator, to_mj};
use crate::model::Roles;
use crate::model::step::{Effect, Step, StepKind};

/// What the plan decided about one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StepPlan {
    /// The step's own effect ([`Step::own_effect`]).
    pub effect: Effect,
    /// Whether it or a step inside it writes ([`Step::writes`]).
    pub writes: bool,
    /// Whether a `stages` block may start it early: an independent read.
    pub prefetchable: bool,
}

impl StepPlan {
    fn of(step: &Step) -> StepPlan {
        StepPlan { effect: step.own_effect(), writes: step.writes(), prefetchable: prefetchable(step) }
    }
}

/// What the plan resolved for one workflow unit.
#[derive(Debug, Clone, Default)]
pub(crate) struct UnitPlan {
    /// `lifecycle` as templates see it.
    pub lifecycle: Option<Value>,
    /// The roles file in force (the workflow's own, else its lifecycle's).
    pub roles: Option<Arc<Roles>>,
    /// `roles` as templates see it.
    pub roles_value: Option<Value>,
}

impl UnitPlan {
    /// Resolve `unit`'s lifecycle and roles.
    pub(crate) fn of(unit: &Unit) -> UnitPlan {
        let roles = unit.roles.clone().or_else(|| unit.lifecycle.as_ref().and_then(|(_, r)| r.clone()));
        UnitPlan {
            lifecycle: unit
                .lifecycle
                .as_ref()
                .map(|(lifecycle, _)| to_mj(&serde_json::to_value(&**lifecycle).unwrap_or(Json::Null))),
            roles_value: roles.as_ref().map(|r| to_mj(&serde_json::to_value(&r.roles).unwrap_or(Json::Null))),
            roles,
        }
    }
}

/// A project compiled for running.
#[derive(Debug)]
pub(crate) struct Plan {
    project: Project,
    eval: Evaluator,
    /// Keyed by the step's address inside `project`, which the plan owns and never
    /// changes, so the address is stable for the plan's life.
    steps: HashMap<usize, StepPlan>,
    units: HashMap<PathBuf, UnitPlan>,
}

impl Plan {
    /// Compile `project`.
    pub(crate) fn compile(project: Project) -> Plan {
        let eval = Evaluator::default();
        let mut steps = HashMap::new();
        let mut units = HashMap::new();
        for unit in project.units() {
            let workflow = &unit.workflow;
            for step in workflow.steps.iter().chain(&workflow.finally) {
                plan_step(step, &mut steps);
            }
            // The lane registry's terminal contract, for guards that give no rules.
            for rule in unit.registry.iter().flat_map(|r| &r.terminal_contract) {
                let _ = super::rules::compiled(rule);
            }
            units.insert(unit.path.clone(), UnitPlan::of(unit));
        }
        Plan { project, eval, steps, units }
    }

    /// The loaded workflows.
    pub(crate) fn project(&self) -> &Project {
        &self.project
    }

    /// The evaluator; its cache compiles each template at its first evaluation.
    pub(crate) fn eval(&self) -> &Evaluator {
        &self.eval
    }

    /// What was decided for `step`; a step from outside the project is decided now.
    pub(crate) fn step(&self, step: &Step) -> StepPlan {
        self.steps.get(&address(step)).copied().unwrap_or_else(|| StepPlan::of(step))
    }

    /// Whether `step` or a step inside it writes (a step from outside the project,
    /// such as a prefetched copy, is decided now, without the prefetch question).
    pub(crate) fn writes(&self, step: &Step) -> bool {
        self.steps.get(&address(step)).map_or_else(|| step.writes(), |p| p.writes)
    }

    /// What was resolved for the unit at `path`.
    pub(crate) fn unit(&self, path: &Path) -> Option<&UnitPlan> {
        self.units.get(path)
    }
}

/// Whether a step may start before its stage: it only reads, and nothing in it uses
/// the result of another step (so its outcome cannot depend on when it runs).
pub(crate) fn prefetchable(step: &Step) -> bool {
    let reads = matches!(step.kind, StepKind::Http(_) | StepKind::Exec(_)) && !step.writes();
    reads && serde_json::to_string(step).is_ok_and(|text| !text.contains("steps."))
}

fn address(step: &Step) -> usize {
    std::ptr::from_ref(step) as usize
}

/// Decide `step` and everything inside it, and compile its guard rules.
fn plan_step(step: &Step, steps: &mut HashMap<usize, StepPlan>) {
    steps.insert(address(step), StepPlan::of(step));
    if let StepKind::Guard(guard) = &step.kind {
        // A rule that does not compile was refused by the loader; the cache keeps the
        // error for the check to report.
        for rule in guard.rules.iter().flatten() {
            let _ = super::rules::compiled(rule);
        }
    }
    for child in step.children() {
        plan_step(child, steps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Loader;

    fn hello() -> (Plan, PathBuf) {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello.yaml");
        let mut loader = Loader::new();
        let (project, main) =
            Project::load(&mut loader, &file).unwrap_or_else(|_| panic!("hello.yaml loads"));
        (Plan::compile(project), main)
    }

    #[test]
    fn templates_and_expressions_are_compiled_at_their_first_evaluation() {
        let (plan, _) = hello();
        let eval = plan.eval();
        let text = "{% if inputs.shout %}HELLO, {{ inputs.who | upper }}!{% else %}Hello, {{ inputs.who }}!{% endif %}";
        // Nothing is compiled ahead: a branch the run never takes costs nothing.
        assert!(!eval.is_prepared(text));
        assert!(!eval.is_prepared_expression("inputs.shout"));
        let context = minijinja::context! { inputs => minijinja::context! { shout => true, who => "x" } };
        assert_eq!(eval.render_text(text, &context).as_deref(), Ok("HELLO, X!"));
        assert!(eval.truthy("inputs.shout", &context).unwrap_or(false));
        // Once evaluated, kept for the rest of the run.
        assert!(eval.is_prepared(text));
        assert!(eval.is_prepared_expression("inputs.shout"));
        assert!(!eval.is_prepared("plain text"));
    }

    #[test]
    fn effects_are_decided_once_per_step() {
        let (plan, main) = hello();
        let unit = plan.project().unit(&main).unwrap_or_else(|| panic!("main unit"));
        let echo = &unit.workflow.steps[1];
        // `effect: read` on an exec: a read, not prefetchable (it reads `steps.greeting`).
        assert_eq!(plan.step(echo), StepPlan { effect: Effect::Read, writes: false, prefetchable: false });
        assert!(plan.steps.contains_key(&address(echo)));
        // Nested steps are planned too.
        let StepKind::Switch(switch) = &unit.workflow.steps[2].kind else { panic!("a switch") };
        assert!(plan.steps.contains_key(&address(&switch.cases[1].steps[0])));
        // A step outside the project is decided on the spot, the same way.
        let outside: Step = serde_json::from_value(serde_json::json!({"type": "exec", "argv": ["true"]}))
            .unwrap_or_else(|e| panic!("step: {e}"));
        assert!(plan.writes(&outside));
        assert!(plan.unit(&main).is_some_and(|u| u.lifecycle.is_none() && u.roles.is_none()));
    }
}
