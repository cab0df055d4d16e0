//! Meaning checks of the step kinds that reach outside the workflow: `http`
//! (apis, urls, headers), `transition` (lifecycle and roles), `call` (the called
//! workflow's inputs), `render`, exit codes, lanes and identifiers.

use std::collections::BTreeSet;

use indexmap::IndexMap;
use serde_json::Value;

use super::{Checker, Scope, describe, valid_outcome_key};
use crate::diagnostics::{did_you_mean, one_of};
use crate::load::yaml::escape_pointer;
use crate::load::{Loaded, ReadError, display, sibling};
use crate::model::FileKind;
use crate::model::step::HttpStep;
use crate::template;

impl Checker<'_> {
    pub(super) fn check_http(&mut self, http: &HttpStep, pointer: &str, scope: &Scope) {
        match (&http.api, &http.url) {
            (Some(api), None) => {
                if !self.workflow.apis.contains_key(api) {
                    let names: Vec<&str> = self.workflow.apis.keys().map(String::as_str).collect();
                    let hint = did_you_mean(api, names.iter().copied()).or_else(|| {
                        if names.is_empty() {
                            Some("declare it under `apis:` with a `base_url`".into())
                        } else {
                            Some(format!("declared APIs: {}", one_of(&names)))
                        }
                    });
                    self.report(
                        &format!("{pointer}/api"),
                        "unknown-api",
                        format!("no API named `{api}`"),
                        hint,
                    );
                }
                match &http.path {
                    Some(path) => {
                        if !path.starts_with('/') {
                            self.report(
                                &format!("{pointer}/path"),
                                "http",
                                "`path` must start with `/`".into(),
                                Some(format!("write `/{path}`")),
                            );
                        }
                        self.check_template(path, &format!("{pointer}/path"), scope);
                    }
                    None => self.report(
                        pointer,
                        "missing-field",
                        "an `http` step with `api` needs a `path`".into(),
                        Some("e.g. `path: /api/agents/{{ inputs.agent }}/queue`".into()),
                    ),
                }
            }
            (None, Some(url)) => {
                self.check_template(url, &format!("{pointer}/url"), scope);
                if http.path.is_some() {
                    self.report_key(
                        &format!("{pointer}/path"),
                        "http",
                        "`path` is only used with `api`; put the whole address in `url`".into(),
                        None,
                    );
                }
                if !(template::is_template(url) || url.starts_with("http://") || url.starts_with("https://"))
                {
                    self.report(
                        &format!("{pointer}/url"),
                        "http",
                        format!("`{url}` is not an http:// or https:// URL"),
                        None,
                    );
                }
            }
            (Some(_), Some(_)) => self.report_key(
                &format!("{pointer}/url"),
                "http",
                "give either `api` or `url`, not both".into(),
                None,
            ),
            (None, None) => self.report(
                pointer,
                "missing-field",
                "an `http` step needs `api` (a declared API) or `url`".into(),
                None,
            ),
        }
        for (key, value) in &http.query {
            self.check_dyn(value, &format!("{pointer}/query/{}", escape_pointer(key)), scope);
        }
        self.check_headers(&http.headers, &format!("{pointer}/headers"), scope);
        if let Some(body) = &http.body {
            self.check_dyn(body, &format!("{pointer}/body"), scope);
        }
        let mut outcome_scope = scope.clone();
        outcome_scope.extra.insert("response".into());
        outcome_scope.extra.insert("error".into());
        for (key, action) in &http.on {
            let key_pointer = format!("{pointer}/on/{}", escape_pointer(key));
            if !valid_outcome_key(key) {
                self.report_key(
                    &key_pointer,
                    "outcome",
                    format!("unknown outcome `{key}`"),
                    did_you_mean(key, ["http_error", "transport", "timeout", "decode"]).or_else(|| {
                        Some("use a status (`\"409\"`), a class (`\"5xx\"`), `http_error`, `transport`, `timeout` or `decode`".into())
                    }),
                );
            }
            if let crate::model::step::OutcomeAction::Value(value) = action {
                self.check_dyn(&value.value, &format!("{key_pointer}/value"), &outcome_scope);
            }
        }
    }

    pub(super) fn check_transition(
        &mut self,
        step: &crate::model::step::TransitionStep,
        pointer: &str,
        scope: &Scope,
    ) {
        self.check_template(&step.state, &format!("{pointer}/state"), scope);
        for (field, value) in
            [("event", &step.event), ("to", &step.to), ("role", &step.role), ("result", &step.result)]
        {
            if let Some(value) = value {
                self.check_template(value, &format!("{pointer}/{field}"), scope);
            }
        }
        for (field, value) in [("labels", &step.labels), ("fields", &step.fields)] {
            if let Some(value) = value {
                self.check_template(value, &format!("{pointer}/{field}"), scope);
            }
        }
        let ways = [
            step.event.is_some(),
            step.to.is_some(),
            step.role.is_some() || step.result.is_some(),
            step.labels.is_some() || step.fields.is_some(),
        ];
        if ways.iter().filter(|w| **w).count() != 1 {
            self.report(
                pointer,
                "transition",
                "a `transition` step needs exactly one of `event`, `to`, `role` with `result`, or `labels`/`fields` (its state's `route`)".into(),
                None,
            );
        }
        if step.role.is_some() != step.result.is_some() {
            self.report(pointer, "transition", "`role` and `result` go together".into(), None);
        }
        let Some((lifecycle, roles)) = self.lifecycle.clone() else {
            if self.workflow.lifecycle.is_none() {
                self.report(
                    pointer,
                    "lifecycle",
                    "a `transition` step needs a lifecycle".into(),
                    Some(
                        "add `lifecycle: lifecycle.yaml` (the path of the lifecycle file) to the workflow"
                            .into(),
                    ),
                );
            }
            return;
        };
        let keys: Vec<String> = lifecycle.states.keys().cloned().collect();
        let mut from: Vec<(String, String)> =
            step.from.iter().enumerate().map(|(i, s)| (s.clone(), format!("{pointer}/from/{i}"))).collect();
        if !template::is_template(&step.state) {
            from.push((step.state.clone(), format!("{pointer}/state")));
        }
        for (state, at) in &from {
            if lifecycle.find(state).is_none() {
                self.report(
                    at,
                    "lifecycle",
                    format!("no state `{state}` in the lifecycle (by key or label)"),
                    did_you_mean(state, keys.iter().map(String::as_str)),
                );
            }
        }
        if let Some(event) = step.event.as_ref().filter(|e| !template::is_template(e)) {
            let states: Vec<&(String, String)> =
                from.iter().filter(|(s, _)| lifecycle.find(s).is_some()).collect();
            if states.is_empty() {
                let known = lifecycle.states.values().any(|s| s.on.contains_key(event));
                if !known {
                    let mut events: Vec<&str> =
                        lifecycle.states.values().flat_map(|s| s.on.keys().map(String::as_str)).collect();
                    events.sort();
                    events.dedup();
                    self.report(
                        &format!("{pointer}/event"),
                        "lifecycle",
                        format!("no state of the lifecycle has an event `{event}`"),
                        did_you_mean(event, events.iter().copied()),
                    );
                }
            }
            for (state, _) in states {
                if let Some((key, found)) = lifecycle.find(state)
                    && !found.on.contains_key(event)
                {
                    let events: Vec<&str> = found.on.keys().map(String::as_str).collect();
                    self.report(
                        &format!("{pointer}/event"),
                        "lifecycle",
                        format!(
                            "state `{key}` has no transition for `{event}`; its events: {}",
                            if events.is_empty() { "none".to_string() } else { events.join(", ") }
                        ),
                        did_you_mean(event, events.iter().copied()),
                    );
                }
            }
        }
        if let (Some(role), Some(result)) = (step.role.as_ref(), step.result.as_ref())
            && !template::is_template(role)
        {
            let roles = roles.or_else(|| self.roles.clone());
            match roles.as_ref().and_then(|r| r.roles.get(role.as_str())) {
                None => {
                    let ids: Vec<String> =
                        roles.map(|r| r.roles.keys().cloned().collect()).unwrap_or_default();
                    self.report(
                        &format!("{pointer}/role"),
                        "lifecycle",
                        format!("no role `{role}` (the lifecycle's roles file gives the completion rules)"),
                        did_you_mean(role, ids.iter().map(String::as_str)),
                    );
                }
                Some(definition) => {
                    if !template::is_template(result) && !definition.completion.contains_key(result.as_str())
                    {
                        let results: Vec<&str> = definition.completion.keys().map(String::as_str).collect();
                        self.report(
                            &format!("{pointer}/result"),
                            "lifecycle",
                            format!(
                                "{role} cannot complete with `{result}`; its results: {}",
                                one_of(&results)
                            ),
                            did_you_mean(result, results.iter().copied()),
                        );
                    }
                }
            }
        }
    }

    pub(super) fn check_headers(&mut self, headers: &IndexMap<String, String>, base: &str, scope: &Scope) {
        for (key, value) in headers {
            let pointer = format!("{base}/{}", escape_pointer(key));
            let token = !key.is_empty()
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                self.report_key(&pointer, "header", format!("`{key}` is not a valid header name"), None);
            }
            if value.contains('\r') || value.contains('\n') {
                self.report(&pointer, "header", "header values must not contain line breaks".into(), None);
            }
            self.check_template(value, &pointer, scope);
        }
    }

    pub(super) fn check_call(&mut self, call: &crate::model::step::CallStep, pointer: &str, scope: &Scope) {
        for (key, value) in &call.inputs {
            self.check_dyn(value, &format!("{pointer}/inputs/{}", escape_pointer(key)), scope);
        }
        let target = sibling(self.path, &call.workflow);
        if self.loader.in_progress(&target) {
            let mut chain: Vec<String> = self.loader.chain().to_vec();
            chain.push(display(&target));
            self.report(
                &format!("{pointer}/workflow"),
                "call-cycle",
                format!("`call` forms a cycle: {}", chain.join(" -> ")),
                None,
            );
            return;
        }
        let called = match self.loader.load_reference(
            self.path,
            self.name,
            self.document,
            &format!("{pointer}/workflow"),
            &call.workflow,
            FileKind::Workflow,
            "called workflow",
            true,
        ) {
            Some(Loaded::Workflow(workflow)) => workflow,
            _ => return,
        };
        for key in call.inputs.keys() {
            if !called.inputs.contains_key(key) {
                let names: Vec<&str> = called.inputs.keys().map(String::as_str).collect();
                self.report_key(
                    &format!("{pointer}/inputs/{}", escape_pointer(key)),
                    "call-input",
                    format!("`{}` has no input `{key}`", call.workflow),
                    did_you_mean(key, names.iter().copied())
                        .or_else(|| (!names.is_empty()).then(|| format!("its inputs: {}", one_of(&names)))),
                );
            }
        }
        let missing: Vec<&str> = called
            .inputs
            .iter()
            .filter(|(key, input)| input.default.is_none() && !call.inputs.contains_key(*key))
            .map(|(key, _)| key.as_str())
            .collect();
        if !missing.is_empty() {
            let plural = if missing.len() == 1 { "input" } else { "inputs" };
            self.report(
                &format!("{pointer}/workflow"),
                "call-input",
                format!(
                    "`{}` requires {plural} {} that the call does not give",
                    call.workflow,
                    one_of(&missing)
                ),
                Some(format!("add {} under `inputs:`", if missing.len() == 1 { "it" } else { "them" })),
            );
        }
    }

    pub(super) fn check_render(
        &mut self,
        render: &crate::model::step::RenderStep,
        pointer: &str,
        scope: &Scope,
    ) {
        for (key, value) in &render.vars {
            self.check_dyn(value, &format!("{pointer}/vars/{}", escape_pointer(key)), scope);
        }
        if let Some(out) = &render.out {
            self.check_template(out, &format!("{pointer}/out"), scope);
        }
        let target = sibling(self.path, &render.template);
        let at = self.document.locate(&format!("{pointer}/template")).value;
        match self.loader.read_from(&target, Some((self.name, at))) {
            Ok(text) => {
                let name = display(&target);
                let known: BTreeSet<String> = render.vars.keys().cloned().collect();
                crate::load::check_prompts::check_template_text(self.loader, &name, &text, &known);
            }
            Err(ReadError::Missing) => self.report(
                &format!("{pointer}/template"),
                "missing-file",
                format!("template `{}` does not exist", display(&target)),
                Some("the path is relative to this workflow file".into()),
            ),
            Err(ReadError::Reported) => {}
        }
    }

    pub(super) fn check_exit_code(&mut self, code: &Value, pointer: &str, scope: &Scope, min: i64) {
        // Report numbers as written (`99999999999999999999`, not `1e+20`).
        let written = |this: &Self, fallback: String| {
            let range = this.document.locate(pointer).value;
            this.source
                .get(range.start.offset..range.end)
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .unwrap_or(fallback)
        };
        match code {
            Value::Number(n) => match n.as_i64() {
                None if n.as_f64().is_some_and(|f| f.fract() != 0.0) => {
                    let text = written(self, n.to_string());
                    self.report(
                        pointer,
                        "exit-code",
                        format!("exit code {text} is not a whole number; expected {min}–63"),
                        None,
                    )
                }
                None => {
                    let text = written(self, n.to_string());
                    self.report(pointer, "exit-code", format!("exit code {text} is outside {min}–63"), None)
                }
                Some(v) if !(min..=63).contains(&v) => self.report(
                    pointer,
                    "exit-code",
                    format!("exit code {} is outside {min}–63", written(self, v.to_string())),
                    (v > 63).then(|| "codes 64 and up are runner's own (see the README)".into()),
                ),
                Some(_) => {}
            },
            Value::String(text) if template::is_template(text) => self.check_template(text, pointer, scope),
            // Not a template: `.nan`, `-.inf`, `1e999999` (too large for a number) or a
            // quoted `"70"` would silently become exit 1 at run time.
            Value::String(text) => {
                let shown = written(self, text.clone());
                let quoted = text.trim().parse::<i64>().is_ok();
                self.report(
                    pointer,
                    "exit-code",
                    format!("exit code {shown} is not a whole number in {min}–63"),
                    Some(if quoted {
                        format!("write it without quotes: `exit_code: {}`", text.trim())
                    } else {
                        format!("give a whole number in {min}–63, or a `{{{{ }}}}` template that yields one")
                    }),
                )
            }
            other => self.report(
                pointer,
                "type",
                format!("expected an exit code ({min}–63) or a template, found {}", describe(other)),
                None,
            ),
        }
    }

    pub(super) fn require_registry(&mut self, pointer: &str, what: &str) {
        if self.workflow.lanes.is_none() {
            self.report(
                pointer,
                "lanes",
                format!("{what} needs a lane registry"),
                Some("add `lanes: lanes.yaml` (the path of the registry) to the workflow".into()),
            );
        }
    }

    pub(super) fn check_lane_id(&mut self, id: &str, pointer: &str) {
        let Some(registry) = &self.registry else { return };
        if registry.lane(id).is_none() {
            let ids = registry.ids();
            self.report(
                pointer,
                "unknown-lane",
                format!("no lane `{id}` in the lane registry; lanes: {}", one_of(&ids)),
                did_you_mean(id, ids.iter().copied()),
            );
        }
    }

    pub(super) fn identifier(&mut self, base: &str, key: &str, what: &str) {
        let valid = key.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            self.report_key(
                &format!("{base}/{}", escape_pointer(key)),
                "identifier",
                format!("`{key}` is not a valid {what} name"),
                Some("use lower case letters, digits and `_` so templates can write `name.field`".into()),
            );
        }
    }
}
