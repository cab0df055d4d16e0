//! Depth-first walks over a step tree, for traversals that only need to visit every
//! step (collecting ids, kinds or warnings) and not the tree's shape. Which steps sit
//! inside a step is answered by [`Step::child_lists`]; [`Step::children_at`] adds each
//! child's JSON pointer to that answer, for walks that report positions.

use super::step::Step;

/// Every step of `steps` and every step inside them, depth first in document order
/// (a step before its children, switch cases before the default).
pub(crate) fn walk_steps(steps: &[Step]) -> Steps<'_> {
    Steps { stack: steps.iter().rev().collect() }
}

/// Like [`walk_steps`], with each step's JSON pointer; `base` is the pointer of the list
/// itself, e.g. `/steps` or `/finally`.
pub(crate) fn walk_steps_at<'a>(steps: &'a [Step], base: &str) -> StepsAt<'a> {
    StepsAt {
        stack: steps
            .iter()
            .enumerate()
            .rev()
            .map(|(index, step)| (format!("{base}/{index}"), step))
            .collect(),
    }
}

/// The iterator of [`walk_steps`].
#[derive(Debug)]
pub(crate) struct Steps<'a> {
    stack: Vec<&'a Step>,
}

impl<'a> Iterator for Steps<'a> {
    type Item = &'a Step;

    fn next(&mut self) -> Option<&'a Step> {
        let step = self.stack.pop()?;
        self.stack.extend(step.children().into_iter().rev());
        Some(step)
    }
}

/// The iterator of [`walk_steps_at`]: `(pointer, step)` pairs.
#[derive(Debug)]
pub(crate) struct StepsAt<'a> {
    stack: Vec<(String, &'a Step)>,
}

impl<'a> Iterator for StepsAt<'a> {
    type Item = (String, &'a Step);

    fn next(&mut self) -> Option<(String, &'a Step)> {
        let (pointer, step) = self.stack.pop()?;
        self.stack.extend(
            step.children_at().into_iter().rev().map(|(rest, child)| (format!("{pointer}/{rest}"), child)),
        );
        Some((pointer, step))
    }
}

impl Step {
    /// [`Step::children`] with each child's JSON pointer relative to this step, e.g.
    /// `cases/0/steps/1`, `default/steps/0`, `steps/2` or `stages/1/steps/0`.
    pub(crate) fn children_at(&self) -> Vec<(String, &Step)> {
        self.child_lists()
            .into_iter()
            .flat_map(|(at, steps)| {
                steps.iter().enumerate().map(move |(index, step)| (format!("{at}/{index}"), step))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(value: serde_json::Value) -> Vec<Step> {
        serde_json::from_value(value).unwrap_or_else(|e| panic!("steps: {e}"))
    }

    fn tree() -> Vec<Step> {
        steps(serde_json::json!([
            {"id": "a", "type": "set", "values": {}},
            {"id": "b", "type": "switch", "cases": [
                {"when": "true", "steps": [{"id": "c", "type": "set", "values": {}}]},
                {"when": "false", "steps": [
                    {"id": "d", "type": "for_each", "items": "[1]", "steps": [
                        {"id": "e", "type": "exec", "argv": ["true"]},
                    ]},
                ]},
            ], "default": {"steps": [{"id": "f", "type": "set", "values": {}}]}},
            {"id": "g", "type": "parallel", "steps": [
                {"id": "h", "type": "set", "values": {}},
                {"id": "i", "type": "set", "values": {}},
            ]},
            {"id": "j", "type": "stages", "stages": [
                {"id": "one", "result": "none", "steps": [{"id": "k", "type": "set", "values": {}}]},
                {"id": "two", "result": "none", "steps": [{"id": "l", "type": "return"}]},
            ]},
            {"id": "m", "type": "set", "values": {}},
        ]))
    }

    fn id(step: &Step) -> &str {
        step.id.as_deref().unwrap_or("?")
    }

    #[test]
    fn visits_every_step_depth_first_in_document_order() {
        let tree = tree();
        let ids: Vec<&str> = walk_steps(&tree).map(id).collect();
        assert_eq!(ids, ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m"]);
        assert_eq!(walk_steps(&[]).count(), 0);
    }

    #[test]
    fn pointers_name_where_each_step_sits() {
        let tree = tree();
        let found: Vec<(String, &str)> = walk_steps_at(&tree, "/steps").map(|(p, s)| (p, id(s))).collect();
        let want = [
            ("/steps/0", "a"),
            ("/steps/1", "b"),
            ("/steps/1/cases/0/steps/0", "c"),
            ("/steps/1/cases/1/steps/0", "d"),
            ("/steps/1/cases/1/steps/0/steps/0", "e"),
            ("/steps/1/default/steps/0", "f"),
            ("/steps/2", "g"),
            ("/steps/2/steps/0", "h"),
            ("/steps/2/steps/1", "i"),
            ("/steps/3", "j"),
            ("/steps/3/stages/0/steps/0", "k"),
            ("/steps/3/stages/1/steps/0", "l"),
            ("/steps/4", "m"),
        ];
        let want: Vec<(String, &str)> = want.iter().map(|(p, i)| (p.to_string(), *i)).collect();
        assert_eq!(found, want);
    }
}
