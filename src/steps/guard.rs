//! `guard`: check a worker's result text against the lane's clear text and the
//! terminal contract; reject (and by default fail) what does not match.

use serde_json::{Value as Json, json};

use crate::model::lanes::{GuardRule, Lane, LaneRegistry, Verdict};
use crate::model::step::GuardStep;
use crate::steps::api::{StepCall, StepResult};

/// Render the text and the lane, judge the text, and fail on a rejection unless
/// `fail_on_reject: false`.
pub(crate) fn run(call: &StepCall<'_>, guard: &GuardStep) -> StepResult {
    let StepCall { engine, inv, context, .. } = *call;
    let text = match engine.eval().render_text(&guard.text, context) {
        Ok(t) => t.trim().to_string(),
        Err(e) => return StepResult::failed(format!("text: {e}"), Json::Null),
    };
    let lane = match guard.lane.as_ref().map(|l| engine.eval().render_text(l, context)).transpose() {
        Ok(l) => l.filter(|l| !l.is_empty()),
        Err(e) => return StepResult::failed(format!("lane: {e}"), Json::Null),
    };
    let registry = inv.unit.registry.as_deref();
    let verdict = judge(&text, lane.as_deref(), guard.rules.as_deref(), registry);
    let verdict = match verdict {
        Ok(v) => v,
        Err(e) => return StepResult::failed(e, Json::Null),
    };
    let output = json!({
        "valid": verdict.valid, "rule": verdict.rule, "reason": verdict.reason, "text": text, "lane": lane,
    });
    if !verdict.valid && guard.fail_on_reject.unwrap_or(true) {
        return StepResult::failed(
            format!("INVALID_WORKER_RESULT: {}", verdict.reason.unwrap_or_default()),
            output,
        );
    }
    StepResult::ok(output)
}

/// A guard verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Judgement {
    /// Whether the text is a valid terminal result.
    pub valid: bool,
    /// The rule that decided.
    pub rule: Option<String>,
    /// Why it was rejected.
    pub reason: Option<String>,
}

/// Check a (trimmed) text against a lane's clear text and the contract rules.
pub(crate) fn judge(
    text: &str,
    lane: Option<&str>,
    rules: Option<&[GuardRule]>,
    registry: Option<&LaneRegistry>,
) -> Result<Judgement, String> {
    if text.is_empty() {
        return Ok(Judgement { valid: false, rule: None, reason: Some("empty worker result".into()) });
    }
    if let Some(registry) = registry {
        let lanes: Vec<&Lane> = match lane {
            Some(id) => match registry.lane(id) {
                Some(l) => vec![l],
                None => return Err(format!("no lane `{id}` in the lane registry")),
            },
            None => registry.lanes.iter().collect(),
        };
        if lanes.iter().any(|l| l.terminal.clear == text) {
            return Ok(Judgement { valid: true, rule: Some("lane_clear".into()), reason: None });
        }
    }
    let rules: &[GuardRule] = match (rules, registry) {
        (Some(rules), _) => rules,
        (None, Some(registry)) => &registry.terminal_contract,
        (None, None) => return Err("no contract: give `rules` or a lane registry".into()),
    };
    for rule in rules {
        let applies = rule.lanes.is_empty() || lane.is_some_and(|l| rule.lanes.iter().any(|r| r == l));
        if !applies {
            continue;
        }
        let regex = crate::plan::rules::compiled(rule).map_err(|e| format!("rule `{}`: {e}", rule.id))?;
        if regex.is_match(text) {
            return Ok(match rule.verdict {
                Verdict::Accept => Judgement { valid: true, rule: Some(rule.id.clone()), reason: None },
                Verdict::Reject => Judgement {
                    valid: false,
                    rule: Some(rule.id.clone()),
                    reason: Some(
                        rule.reason.clone().unwrap_or_else(|| format!("rejected by rule `{}`", rule.id)),
                    ),
                },
            });
        }
    }
    Ok(Judgement {
        valid: false,
        rule: None,
        reason: Some("worker result does not match the terminal contract".into()),
    })
}
