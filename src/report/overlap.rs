//! Which steps of a run overlapped in time, derived from the steps' start and end
//! times as the run report collected them.
//!
//! Steps are compared with their siblings only: the steps directly inside the same
//! step (a `parallel` block, a `for_each` — all its iterations together —, a `stages`
//! step — all its stages together, so prefetched reads of later stages count —, a
//! called workflow, or the workflow's top level). A step always overlaps the steps
//! inside it, so comparing across levels would say nothing. Among siblings, steps
//! whose `[start, end)` intervals chain together form one group; a group of two or
//! more steps is reported. A step that took no measurable time overlaps nothing.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Steps of one block that ran at the same time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Overlap {
    /// The block the steps are directly inside: a step path (`gather`, `probes` for
    /// every iteration of a `for_each`), or empty for the workflow's top level.
    pub within: String,
    /// The steps (paths), in the order they started (then ended). Each overlapped at least one other
    /// step of the list, and the list is connected: there is no moment between its
    /// first start and its last end when none of them was running.
    pub steps: Vec<String>,
    /// When the first of them started, in milliseconds after the run started.
    pub start_ms: u64,
    /// When the last of them ended, in milliseconds after the run started.
    pub end_ms: u64,
}

/// One step's time span, as measured by the collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    /// The step's path (`gather.probes[2].probe`).
    pub path: String,
    /// Start, milliseconds after the run started.
    pub start_ms: u64,
    /// End, milliseconds after the run started (not before `start_ms`).
    pub end_ms: u64,
}

/// The block a step path is directly inside: the path without its last step name, and
/// without a trailing `[index]` (so all iterations of a loop are one block).
pub(crate) fn parent(path: &str) -> &str {
    let head = match last_separator(path) {
        Some(at) => &path[..at],
        None => "",
    };
    match head.strip_suffix(']').and_then(|h| h.rfind('[').map(|at| &h[..at])) {
        Some(loop_path) => loop_path,
        None => head,
    }
}

/// The byte index of the `.` before a path's last step name, skipping dots inside
/// `[...]`.
fn last_separator(path: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (at, c) in path.char_indices().rev() {
        match c {
            ']' => depth += 1,
            '[' => depth = depth.saturating_sub(1),
            '.' if depth == 0 => return Some(at),
            _ => {}
        }
    }
    None
}

/// The nearest enclosing path that is itself a step of the run (a stage id, for one,
/// is not), or empty for the top level.
fn enclosing_step<'a>(path: &'a str, steps: &std::collections::HashSet<&str>) -> &'a str {
    let mut candidate = parent(path);
    while !candidate.is_empty() && !steps.contains(candidate) {
        candidate = parent(candidate);
    }
    candidate
}

/// The groups of sibling steps that ran at the same time, ordered by block and start.
pub(crate) fn overlaps(spans: &[Span]) -> Vec<Overlap> {
    let steps: std::collections::HashSet<&str> = spans.iter().map(|s| s.path.as_str()).collect();
    let mut by_block: std::collections::BTreeMap<&str, Vec<&Span>> = std::collections::BTreeMap::new();
    for span in spans.iter().filter(|s| s.end_ms > s.start_ms) {
        by_block.entry(enclosing_step(&span.path, &steps)).or_default().push(span);
    }
    let mut found = Vec::new();
    for (within, mut siblings) in by_block {
        siblings.sort_by(|a, b| (a.start_ms, a.end_ms, &a.path).cmp(&(b.start_ms, b.end_ms, &b.path)));
        let mut group: Vec<&Span> = Vec::new();
        let mut group_end = 0u64;
        for span in siblings {
            if !group.is_empty() && span.start_ms >= group_end {
                push_group(&mut found, within, &group, group_end);
                group.clear();
            }
            group_end = if group.is_empty() { span.end_ms } else { group_end.max(span.end_ms) };
            group.push(span);
        }
        push_group(&mut found, within, &group, group_end);
    }
    found
}

fn push_group(found: &mut Vec<Overlap>, within: &str, group: &[&Span], end_ms: u64) {
    if let [first, _, ..] = group {
        found.push(Overlap {
            within: within.to_string(),
            steps: group.iter().map(|s| s.path.clone()).collect(),
            start_ms: first.start_ms,
            end_ms,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(path: &str, start_ms: u64, end_ms: u64) -> Span {
        Span { path: path.into(), start_ms, end_ms }
    }

    #[test]
    fn parents_strip_the_last_name_and_the_iteration() {
        assert_eq!(parent("announce"), "");
        assert_eq!(parent("gather.beat"), "gather");
        assert_eq!(parent("gather.probes[2].probe"), "gather.probes");
        assert_eq!(parent("gather.probes[2].probe.preflight"), "gather.probes[2].probe");
        assert_eq!(parent("fan[0].get"), "fan");
        assert_eq!(parent("decision.prfix.return#3"), "decision.prfix");
    }

    #[test]
    fn siblings_that_overlap_are_grouped() {
        let spans = [
            span("announce", 0, 1),
            span("gather", 1, 90),
            span("gather.beat", 1, 40),
            span("gather.probes", 2, 90),
            span("gather.probes[0].probe", 3, 80),
            span("gather.probes[1].probe", 3, 85),
            span("gather.grooming", 45, 60),
            span("result", 90, 91),
            span("print_result", 91, 91),
        ];
        let found = overlaps(&spans);
        assert_eq!(
            found,
            vec![
                Overlap {
                    within: "gather".into(),
                    steps: vec!["gather.beat".into(), "gather.probes".into(), "gather.grooming".into()],
                    start_ms: 1,
                    end_ms: 90,
                },
                Overlap {
                    within: "gather.probes".into(),
                    steps: vec!["gather.probes[0].probe".into(), "gather.probes[1].probe".into()],
                    start_ms: 3,
                    end_ms: 85,
                },
            ]
        );
    }

    #[test]
    fn steps_of_different_stages_are_siblings() {
        // `decision.queue` and `decision.prfix` are stages, not steps: a prefetched read
        // of the queue stage overlapping the PR-fix read is reported within `decision`.
        let spans = [
            span("decision", 0, 50),
            span("decision.prfix.prfix", 1, 30),
            span("decision.queue.queue", 1, 25),
            span("decision.prfix.return#3", 30, 30),
        ];
        assert_eq!(
            overlaps(&spans),
            vec![Overlap {
                within: "decision".into(),
                steps: vec!["decision.queue.queue".into(), "decision.prfix.prfix".into()],
                start_ms: 1,
                end_ms: 30,
            }]
        );
    }

    #[test]
    fn one_after_another_is_no_overlap() {
        // Touching intervals (one ends in the millisecond the next starts) did not overlap,
        // and a step inside another is not compared with it.
        let spans = [span("a", 0, 10), span("b", 10, 20), span("b.inner", 11, 19), span("c", 20, 20)];
        assert!(overlaps(&spans).is_empty());
    }

    #[test]
    fn chains_form_one_group_and_gaps_split_groups() {
        let spans =
            [span("a", 0, 10), span("b", 5, 15), span("c", 12, 30), span("d", 30, 40), span("e", 35, 36)];
        let found = overlaps(&spans);
        let groups: Vec<(Vec<String>, u64, u64)> =
            found.into_iter().map(|o| (o.steps, o.start_ms, o.end_ms)).collect();
        assert_eq!(
            groups,
            vec![(vec!["a".into(), "b".into(), "c".into()], 0, 30), (vec!["d".into(), "e".into()], 30, 40),]
        );
    }
}
