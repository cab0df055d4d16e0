//! Meaning checks of the v2 language kinds: `stages` (unique stage ids, every stage
//! able to decide, what `catch` and `default` may see), `return` and `parallel`
//! (steps of one block may not read each other).

use std::collections::BTreeSet;

use super::{Checker, Scope};
use crate::model::step::{Step, StepKind};

impl Checker<'_> {
    pub(super) fn check_v2(&mut self, kind: &StepKind, pointer: &str, scope: &Scope) {
        match kind {
            StepKind::Stages(stages) => {
                // A later stage sees the steps of the earlier ones.
                let mut inner = scope.clone();
                let mut seen = BTreeSet::new();
                for (index, stage) in stages.stages.iter().enumerate() {
                    let stage_pointer = format!("{pointer}/stages/{index}");
                    if !seen.insert(stage.id.clone()) {
                        self.report(
                            &format!("{stage_pointer}/id"),
                            "duplicate-stage",
                            format!("duplicate stage id `{}`", stage.id),
                            Some("stage ids must be unique within a `stages` step".into()),
                        );
                    }
                    if stage.prefetch {
                        // Writes never start early: a prefetched stage only reads.
                        for (step_index, step) in stage.steps.iter().enumerate() {
                            if step.writes() {
                                self.report(
                                    &format!("{stage_pointer}/steps/{step_index}/type"),
                                    "prefetch-write",
                                    format!(
                                        "stage `{}` is prefetched, but this `{}` step may change the world",
                                        stage.id,
                                        step.kind.type_name()
                                    ),
                                    Some(
                                        "move the write to a stage without `prefetch`, or mark a read-only \
                                         step `effect: read`"
                                            .into(),
                                    ),
                                );
                            }
                        }
                    }
                    self.check_steps(&stage.steps, &format!("{stage_pointer}/steps"), &mut inner);
                    match &stage.result {
                        Some(result) => self.check_dyn(result, &format!("{stage_pointer}/result"), &inner),
                        None if !returns(&stage.steps) => self.report(
                            &format!("{stage_pointer}/id"),
                            "stage-result",
                            format!(
                                "stage `{}` can never decide: it has no `result`, `return` or `fail` step",
                                stage.id
                            ),
                            Some("add `result: ...` (`none` means \"next stage\") or a `return` step".into()),
                        ),
                        None => {}
                    }
                }
                // `catch` and `default` see what the step itself sees (a failed stage's
                // later steps never ran), plus `error` for `catch`.
                if let Some(catch) = &stages.catch {
                    let mut with_error = scope.clone();
                    with_error.extra.insert("error".into());
                    self.check_dyn(catch, &format!("{pointer}/catch"), &with_error);
                }
                if let Some(default) = &stages.default {
                    self.check_dyn(default, &format!("{pointer}/default"), scope);
                }
                if let Some(when) = &stages.prefetch_when {
                    self.check_expression(when, &format!("{pointer}/prefetch_when"), scope);
                }
            }
            StepKind::Return(ret) => {
                if let Some(value) = &ret.value {
                    self.check_dyn(value, &format!("{pointer}/value"), scope);
                }
            }
            StepKind::Parallel(parallel) => {
                // Every step sees only what was there before the block.
                for (index, step) in parallel.steps.iter().enumerate() {
                    let step_pointer = format!("{pointer}/steps/{index}");
                    if matches!(step.kind, StepKind::Return(_)) {
                        self.report(
                            &format!("{step_pointer}/type"),
                            "parallel-return",
                            "a `return` cannot run in a `parallel` block: which step ends first is not defined"
                                .into(),
                            None,
                        );
                    }
                    self.check_step(step, &step_pointer, scope);
                }
            }
            _ => {}
        }
    }
}

/// Whether the steps can decide: a `return` or a `fail` (mapped by `catch`), directly
/// or in a switch branch.
fn returns(steps: &[Step]) -> bool {
    steps.iter().any(|step| match &step.kind {
        StepKind::Return(_) | StepKind::Fail(_) => true,
        StepKind::Switch(switch) => {
            switch.cases.iter().any(|c| returns(&c.steps))
                || switch.default.as_ref().is_some_and(|d| returns(&d.steps))
        }
        _ => false,
    })
}
