//! `transition`: move a work item through the lifecycle state machine (by event, to a
//! state, by a role's completion result, or by routing labels/fields).

use serde_json::{Value as Json, json};

use crate::model::step::TransitionStep;
use crate::steps::api::{StepCall, StepResult};

/// Render the fields, choose the kind of move and apply it to the lifecycle.
pub(crate) fn run(call: &StepCall<'_>, transition: &TransitionStep) -> StepResult {
    let StepCall { engine, inv, context, .. } = *call;
    let Some((lifecycle, lifecycle_roles)) = &inv.unit.lifecycle else {
        return StepResult::failed("a transition step needs a lifecycle", Json::Null);
    };
    let render = |field: &str, text: &Option<String>| -> Result<Option<String>, String> {
        text.as_ref()
            .map(|t| engine.eval().render_text(t, context))
            .transpose()
            .map_err(|e| format!("{field}: {e}"))
    };
    let state = match engine.eval().render_text(&transition.state, context) {
        Ok(s) => s,
        Err(e) => return StepResult::failed(format!("state: {e}"), Json::Null),
    };
    let parts = (|| -> Result<_, String> {
        Ok((
            render("event", &transition.event)?,
            render("to", &transition.to)?,
            render("role", &transition.role)?,
            render("result", &transition.result)?,
        ))
    })();
    let route = (|| -> Result<_, String> {
        Ok((render("labels", &transition.labels)?, render("fields", &transition.fields)?))
    })();
    let parts = match (parts, route) {
        (Ok((None, None, None, None)), Ok((labels, fields))) if labels.is_some() || fields.is_some() => {
            let labels: Vec<String> = match labels.as_deref().map(str::trim) {
                Some(text) if text.starts_with('[') => match serde_json::from_str::<Vec<String>>(text) {
                    Ok(list) => list,
                    Err(e) => {
                        return StepResult::failed(format!("labels: not a list of text: {e}"), Json::Null);
                    }
                },
                Some(text) => {
                    text.split(',').map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
                }
                None => Vec::new(),
            };
            let fields = match fields.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
                Some(text) => match serde_json::from_str::<Json>(text) {
                    Ok(value) => value,
                    Err(e) => {
                        return StepResult::failed(format!("fields: not a JSON object: {e}"), Json::Null);
                    }
                },
                None => Json::Null,
            };
            let roles = lifecycle_roles.as_deref().or(inv.unit.roles.as_deref());
            let how = crate::lifecycle::Move::Route { labels, fields };
            return match crate::lifecycle::step(lifecycle, roles, &state, &how) {
                Ok(moved) => StepResult::ok(serde_json::to_value(moved).unwrap_or(Json::Null)),
                Err(e) => StepResult::failed(e, json!({"from": state})),
            };
        }
        (parts, Ok(_)) => parts,
        (_, Err(e)) => Err(e),
    };
    let how = match parts {
        Ok((Some(event), None, None, None)) => crate::lifecycle::Move::Event(event),
        Ok((None, Some(to), None, None)) => crate::lifecycle::Move::To(to),
        Ok((None, None, Some(role), Some(result))) => crate::lifecycle::Move::Completion { role, result },
        Ok(_) => {
            return StepResult::failed(
                "give exactly one of `event`, `to`, or `role` with `result`",
                Json::Null,
            );
        }
        Err(e) => return StepResult::failed(e, Json::Null),
    };
    let roles = lifecycle_roles.as_deref().or(inv.unit.roles.as_deref());
    match crate::lifecycle::step(lifecycle, roles, &state, &how) {
        Ok(moved) => StepResult::ok(serde_json::to_value(moved).unwrap_or(Json::Null)),
        Err(e) => StepResult::failed(e, json!({"from": state})),
    }
}
