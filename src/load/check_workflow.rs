//! Meaning checks for a workflow that passed the schema: identifiers, references
//! between steps, templates and expressions and the variables they use, lanes,
//! `call` targets and their inputs, regexes, exit codes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::Environment;
use serde_json::Value;

use super::yaml::{Document, escape_pointer};
use super::{Loaded, Loader, ReadError, display, refine, sibling};
use crate::diagnostics::{did_you_mean, one_of};
use crate::model::FileKind;
use crate::model::lanes::{GuardRule, LaneRegistry};
use crate::model::step::{HttpStep, Step, StepKind};
use crate::model::workflow::{InputDef, InputType, Workflow};
use crate::template::{self, expression_variables, template_variables};

// The v2 language kinds (stages, return, parallel) are checked in their own file.
#[path = "check_stages.rs"]
mod check_stages;

/// Names templates may not use for loop variables: they are taken.
const RESERVED: &[&str] = &[
    "inputs",
    "secrets",
    "env",
    "vars",
    "steps",
    "lanes",
    "lifecycle",
    "roles",
    "run",
    "loop",
    "response",
    "error",
];

/// The fields of a step result.
const RESULT_FIELDS: &[&str] = &["output", "status", "error"];

/// Check a workflow; problems go to the loader.
pub fn check(
    loader: &mut Loader,
    path: &Path,
    name: &str,
    document: &Document,
    source: &str,
    workflow: &Workflow,
) {
    let registry = load_registry(loader, path, name, document, workflow);
    let lifecycle = workflow
        .lifecycle
        .as_ref()
        .and_then(|relative| super::check_lifecycle::load_lifecycle(loader, path, name, document, relative));
    let roles = workflow.roles.as_ref().and_then(|relative| {
        super::check_lifecycle::load_workflow_roles(loader, path, name, document, relative)
    });
    let mut checker = Checker {
        lifecycle,
        roles,
        loader,
        path,
        name,
        document,
        source,
        workflow,
        registry,
        env: template::environment(),
        ids: BTreeMap::new(),
    };
    checker.run();
    warn_unguarded_argv(loader, name, document, workflow);
}

fn load_registry(
    loader: &mut Loader,
    path: &Path,
    name: &str,
    document: &Document,
    workflow: &Workflow,
) -> Option<Arc<LaneRegistry>> {
    let relative = workflow.lanes.as_ref()?;
    match loader.load_reference(
        path,
        name,
        document,
        "/lanes",
        relative,
        FileKind::Lanes,
        "lane registry",
        false,
    ) {
        Some(Loaded::Lanes(registry)) => Some(registry),
        _ => None,
    }
}

/// What a template may refer to at one place in the workflow.
#[derive(Debug, Clone, Default)]
struct Scope {
    /// Root names available besides the workflow-wide ones (loop variables, `run`, ...).
    extra: BTreeSet<String>,
    /// Step ids whose results are available.
    /// Shared until changed: a `set` or a stage clones the scope for a few names, and
    /// copying every step id each time made validation quadratic in the step count.
    steps: Arc<BTreeSet<String>>,
    /// Whether `steps` may be used at all.
    steps_allowed: bool,
    /// `vars` names available (all of them, except inside `vars` itself).
    vars: BTreeSet<String>,
}

struct Checker<'a> {
    loader: &'a mut Loader,
    path: &'a Path,
    name: &'a str,
    document: &'a Document,
    source: &'a str,
    workflow: &'a Workflow,
    registry: Option<Arc<LaneRegistry>>,
    lifecycle: Option<(Arc<crate::model::Lifecycle>, Option<Arc<crate::model::Roles>>)>,
    roles: Option<Arc<crate::model::Roles>>,
    env: Environment<'static>,
    /// Every step id in the file and where it is.
    ids: BTreeMap<String, String>,
}

impl Checker<'_> {
    fn run(&mut self) {
        let workflow = self.workflow;
        self.collect_ids(&workflow.steps, "/steps");
        self.collect_ids(&workflow.finally, "/finally");
        self.check_inputs();
        for (key, _) in &workflow.secrets {
            self.identifier("/secrets", key, "secret");
        }
        for (key, _) in &workflow.env {
            if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || key.starts_with(|c: char| c.is_ascii_digit())
            {
                self.report_key(
                    &format!("/env/{}", escape_pointer(key)),
                    "identifier",
                    format!("`{key}` is not a valid environment variable name"),
                    Some("use letters, digits and `_`, not starting with a digit".into()),
                );
            }
        }
        // vars: each sees the ones before it.
        let mut scope = Scope::default();
        for (key, value) in &workflow.vars {
            let pointer = format!("/vars/{}", escape_pointer(key));
            self.identifier("/vars", key, "var");
            self.check_dyn(value, &pointer, &scope);
            scope.vars.insert(key.clone());
        }
        let all_vars = scope.vars.clone();
        let base = Scope { vars: all_vars.clone(), ..Scope::default() };
        for (api_name, api) in &workflow.apis {
            let pointer = format!("/apis/{}", escape_pointer(api_name));
            self.identifier("/apis", api_name, "API");
            self.check_template(&api.base_url, &format!("{pointer}/base_url"), &base);
            if let Some(bearer) = &api.bearer {
                self.check_template(bearer, &format!("{pointer}/bearer"), &base);
            }
            self.check_headers(&api.headers, &format!("{pointer}/headers"), &base);
        }
        if let Some(concurrency) = &workflow.concurrency {
            self.check_template(&concurrency.key, "/concurrency/key", &base);
        }
        let mut scope = Scope { steps_allowed: true, vars: all_vars.clone(), ..Scope::default() };
        self.check_steps(&workflow.steps, "/steps", &mut scope);
        let top: BTreeSet<String> = workflow
            .steps
            .iter()
            .flat_map(|s| match &s.kind {
                StepKind::Parallel(p) => std::iter::once(s).chain(p.steps.iter()).collect::<Vec<_>>(),
                _ => vec![s],
            })
            .filter_map(|s| s.id.clone())
            .collect();
        let mut end_scope =
            Scope { steps_allowed: true, vars: all_vars, steps: Arc::new(top), extra: BTreeSet::new() };
        for (key, value) in &workflow.outputs {
            self.check_dyn(value, &format!("/outputs/{}", escape_pointer(key)), &end_scope);
        }
        if let Some(code) = &workflow.exit_code {
            self.check_exit_code(code, "/exit_code", &end_scope, 0);
        }
        end_scope.extra.insert("run".into());
        self.check_steps(&workflow.finally, "/finally", &mut end_scope);
    }

    fn collect_ids(&mut self, steps: &[Step], base: &str) {
        for (index, step) in steps.iter().enumerate() {
            let pointer = format!("{base}/{index}");
            if let Some(id) = &step.id {
                if let Some(first) = self.ids.get(id).cloned() {
                    let first_location = self.document.locate(&format!("{first}/id"));
                    let location = self.document.locate(&format!("{pointer}/id"));
                    let diagnostic = crate::diagnostics::Diagnostic::new(
                        self.name,
                        location.value,
                        "duplicate-id",
                        format!("duplicate step id `{id}`"),
                    )
                    .with_hint(Some("step ids must be unique in the whole workflow".into()))
                    .with_related(first_location.value, format!("`{id}` first used here"));
                    self.loader.diagnostics.push(diagnostic);
                } else {
                    self.ids.insert(id.clone(), pointer.clone());
                }
            }
            match &step.kind {
                StepKind::Switch(switch) => {
                    for (case_index, case) in switch.cases.iter().enumerate() {
                        self.collect_ids(&case.steps, &format!("{pointer}/cases/{case_index}/steps"));
                    }
                    if let Some(default) = &switch.default {
                        self.collect_ids(&default.steps, &format!("{pointer}/default/steps"));
                    }
                }
                StepKind::ForEach(each) => self.collect_ids(&each.steps, &format!("{pointer}/steps")),
                StepKind::Stages(_) | StepKind::Parallel(_) => self.collect_nested_ids(&step.kind, &pointer),
                _ => {}
            }
        }
    }

    fn check_inputs(&mut self) {
        let workflow = self.workflow;
        for (key, input) in &workflow.inputs {
            let pointer = format!("/inputs/{}", escape_pointer(key));
            self.identifier("/inputs", key, "input");
            if let Some(allowed) = &input.allowed {
                for (index, value) in allowed.iter().enumerate() {
                    if let Err(expected) = type_matches(input, value) {
                        self.report(
                            &format!("{pointer}/enum/{index}"),
                            "input-type",
                            format!("value does not match the input's type: expected {expected}"),
                            None,
                        );
                    }
                }
            }
            if let Some(default) = &input.default {
                let default_pointer = format!("{pointer}/default");
                if let Err(expected) = type_matches(input, default) {
                    self.report(
                        &default_pointer,
                        "input-type",
                        format!("default does not match the input's type: expected {expected}"),
                        None,
                    );
                } else if let Some(allowed) = &input.allowed
                    && !allowed.contains(default)
                {
                    let names: Vec<String> = allowed.iter().map(plain).collect();
                    self.report(
                        &default_pointer,
                        "input-enum",
                        format!("default is not one of the allowed values {}", one_of(&names)),
                        None,
                    );
                }
                if input.ty == InputType::Lane
                    && let Some(id) = default.as_str()
                {
                    self.check_lane_id(id, &default_pointer);
                }
            }
            if input.ty == InputType::Lane && self.workflow.lanes.is_none() {
                self.report(
                    &format!("{pointer}/type"),
                    "lanes",
                    "an input of type `lane` needs a lane registry".to_string(),
                    Some("add `lanes: lanes.yaml` (the path of the registry) to the workflow".into()),
                );
            }
        }
    }

    fn check_steps(&mut self, steps: &[Step], base: &str, scope: &mut Scope) {
        for (index, step) in steps.iter().enumerate() {
            let pointer = format!("{base}/{index}");
            self.check_step(step, &pointer, scope);
            if let Some(id) = &step.id {
                Arc::make_mut(&mut scope.steps).insert(id.clone());
            }
            // The steps of a `parallel` block are available after it.
            if let StepKind::Parallel(parallel) = &step.kind {
                Arc::make_mut(&mut scope.steps).extend(parallel.steps.iter().filter_map(|s| s.id.clone()));
            }
        }
    }

    fn check_step(&mut self, step: &Step, pointer: &str, scope: &Scope) {
        if let Some(when) = &step.when {
            self.check_expression(when, &format!("{pointer}/when"), scope);
        }
        if let Some(retry) = &step.retry
            && let (Some(backoff), Some(max)) = (retry.backoff, retry.max_backoff)
            && max < backoff
        {
            self.report(
                &format!("{pointer}/retry/max_backoff"),
                "retry",
                format!("`max_backoff` ({max}) is shorter than `backoff` ({backoff})"),
                None,
            );
        }
        match &step.kind {
            StepKind::Http(http) => self.check_http(http, pointer, scope),
            StepKind::Exec(exec) => {
                for (index, arg) in exec.argv.iter().enumerate() {
                    self.check_template(arg, &format!("{pointer}/argv/{index}"), scope);
                }
                if exec.argv.first().is_some_and(|a| a.trim().is_empty()) {
                    self.report(
                        &format!("{pointer}/argv/0"),
                        "exec",
                        "the program name is empty".into(),
                        None,
                    );
                }
                for (key, value) in &exec.env {
                    self.check_template(value, &format!("{pointer}/env/{}", escape_pointer(key)), scope);
                }
                if let Some(cwd) = &exec.cwd {
                    self.check_template(cwd, &format!("{pointer}/cwd"), scope);
                }
                if let Some(stdin) = &exec.stdin {
                    self.check_template(stdin, &format!("{pointer}/stdin"), scope);
                }
            }
            StepKind::Call(call) => self.check_call(call, pointer, scope),
            StepKind::Set(set) => {
                // Each value sees the ones before it by name.
                let mut inner = scope.clone();
                let last = set.values.len().saturating_sub(1);
                for (index, (key, value)) in set.values.iter().enumerate() {
                    self.check_dyn(value, &format!("{pointer}/values/{}", escape_pointer(key)), &inner);
                    if index < last && RESERVED.contains(&key.as_str()) {
                        self.report_key(
                            &format!("{pointer}/values/{}", escape_pointer(key)),
                            "reserved",
                            format!("`{key}` would hide `{key}` from the values after it in this `set`"),
                            Some("pick another name, or make it the last value".into()),
                        );
                    }
                    inner.extra.insert(key.clone());
                }
            }
            StepKind::Switch(switch) => {
                for (index, case) in switch.cases.iter().enumerate() {
                    let case_pointer = format!("{pointer}/cases/{index}");
                    self.check_expression(&case.when, &format!("{case_pointer}/when"), scope);
                    let mut inner = scope.clone();
                    self.check_steps(&case.steps, &format!("{case_pointer}/steps"), &mut inner);
                    if let Some(output) = &case.output {
                        self.check_dyn(output, &format!("{case_pointer}/output"), &inner);
                    }
                }
                if let Some(default) = &switch.default {
                    let mut inner = scope.clone();
                    self.check_steps(&default.steps, &format!("{pointer}/default/steps"), &mut inner);
                    if let Some(output) = &default.output {
                        self.check_dyn(output, &format!("{pointer}/default/output"), &inner);
                    }
                }
            }
            StepKind::ForEach(each) => {
                self.check_expression(&each.items, &format!("{pointer}/items"), scope);
                let variable = each.as_name.clone().unwrap_or_else(|| "item".to_string());
                if RESERVED.contains(&variable.as_str()) {
                    self.report(
                        &format!("{pointer}/as"),
                        "reserved",
                        format!("`{variable}` is a reserved name and cannot be a loop variable"),
                        Some("pick another name, e.g. `item`".into()),
                    );
                }
                let mut inner = scope.clone();
                inner.extra.insert(variable);
                inner.extra.insert("loop".into());
                self.check_steps(&each.steps, &format!("{pointer}/steps"), &mut inner);
                if let Some(output) = &each.output {
                    self.check_dyn(output, &format!("{pointer}/output"), &inner);
                }
                if let Some(crate::model::step::Width::Template(width)) = &each.parallel {
                    self.check_dyn(
                        &serde_json::Value::String(width.clone()),
                        &format!("{pointer}/parallel"),
                        scope,
                    );
                }
                if let Some(until) = &each.until {
                    let mut after = scope.clone();
                    after.extra.insert("result".into());
                    self.check_expression(until, &format!("{pointer}/until"), &after);
                }
            }
            StepKind::Emit(emit) => match (&emit.text, &emit.json) {
                (Some(text), None) => self.check_template(text, &format!("{pointer}/text"), scope),
                (None, Some(json)) => self.check_dyn(json, &format!("{pointer}/json"), scope),
                (Some(_), Some(_)) => self.report_key(
                    &format!("{pointer}/json"),
                    "emit",
                    "give either `text` or `json`, not both".into(),
                    None,
                ),
                (None, None) => self.report(
                    pointer,
                    "missing-field",
                    "an `emit` step needs `text` or `json`".into(),
                    Some("`text` prints a template; `json` prints a value as JSON".into()),
                ),
            },
            StepKind::Render(render) => self.check_render(render, pointer, scope),
            StepKind::Stop(stop) => {
                if let Some(message) = &stop.message {
                    self.check_template(message, &format!("{pointer}/message"), scope);
                }
                if let Some(code) = &stop.exit_code {
                    self.check_exit_code(code, &format!("{pointer}/exit_code"), scope, 0);
                }
                for (key, value) in &stop.outputs {
                    self.check_dyn(value, &format!("{pointer}/outputs/{}", escape_pointer(key)), scope);
                }
            }
            StepKind::Fail(fail) => {
                self.check_template(&fail.message, &format!("{pointer}/message"), scope);
                if let Some(code) = &fail.exit_code {
                    self.check_exit_code(code, &format!("{pointer}/exit_code"), scope, 1);
                }
                for (key, value) in &fail.outputs {
                    self.check_dyn(value, &format!("{pointer}/outputs/{}", escape_pointer(key)), scope);
                }
            }
            StepKind::Cron(cron) => {
                self.require_registry(&format!("{pointer}/lane"), "a `cron` step");
                if template::is_template(&cron.lane) {
                    self.check_template(&cron.lane, &format!("{pointer}/lane"), scope);
                } else {
                    self.check_lane_id(&cron.lane, &format!("{pointer}/lane"));
                }
                match &cron.enabled {
                    Value::Bool(_) => {}
                    Value::String(text) if template::is_template(text) => {
                        self.check_template(text, &format!("{pointer}/enabled"), scope);
                    }
                    other => self.report(
                        &format!("{pointer}/enabled"),
                        "type",
                        format!(
                            "`enabled`: expected `true`, `false` or a template, found {}",
                            describe(other)
                        ),
                        None,
                    ),
                }
                if let Some(reason) = &cron.reason {
                    self.check_template(reason, &format!("{pointer}/reason"), scope);
                }
            }
            StepKind::Transition(transition) => self.check_transition(transition, pointer, scope),
            StepKind::Stages(_) | StepKind::Return(_) | StepKind::Parallel(_) => {
                self.check_v2(&step.kind, pointer, scope)
            }
            StepKind::Guard(guard) => {
                self.check_template(&guard.text, &format!("{pointer}/text"), scope);
                if let Some(lane) = &guard.lane {
                    if template::is_template(lane) {
                        self.check_template(lane, &format!("{pointer}/lane"), scope);
                    } else {
                        self.require_registry(&format!("{pointer}/lane"), "a guard with `lane`");
                        self.check_lane_id(lane, &format!("{pointer}/lane"));
                    }
                }
                match &guard.rules {
                    Some(rules) => {
                        check_rules(self.loader, self.name, self.document, rules, &format!("{pointer}/rules"))
                    }
                    None => self.require_registry(&format!("{pointer}/text"), "a guard without `rules`"),
                }
            }
        }
    }

    fn check_http(&mut self, http: &HttpStep, pointer: &str, scope: &Scope) {
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

    fn check_transition(&mut self, step: &crate::model::step::TransitionStep, pointer: &str, scope: &Scope) {
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

    fn check_headers(&mut self, headers: &IndexMap<String, String>, base: &str, scope: &Scope) {
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

    fn check_call(&mut self, call: &crate::model::step::CallStep, pointer: &str, scope: &Scope) {
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

    fn check_render(&mut self, render: &crate::model::step::RenderStep, pointer: &str, scope: &Scope) {
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
                super::check_prompts::check_template_text(self.loader, &name, &text, &known);
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

    fn check_exit_code(&mut self, code: &Value, pointer: &str, scope: &Scope, min: i64) {
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

    fn require_registry(&mut self, pointer: &str, what: &str) {
        if self.workflow.lanes.is_none() {
            self.report(
                pointer,
                "lanes",
                format!("{what} needs a lane registry"),
                Some("add `lanes: lanes.yaml` (the path of the registry) to the workflow".into()),
            );
        }
    }

    fn check_lane_id(&mut self, id: &str, pointer: &str) {
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

    fn identifier(&mut self, base: &str, key: &str, what: &str) {
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

    /// Check every string inside a dynamic value as a template.
    fn check_dyn(&mut self, value: &Value, pointer: &str, scope: &Scope) {
        match value {
            Value::String(text) => self.check_template(text, pointer, scope),
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    self.check_dyn(item, &format!("{pointer}/{index}"), scope);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    self.check_dyn(item, &format!("{pointer}/{}", escape_pointer(key)), scope);
                }
            }
            _ => {}
        }
    }

    fn check_template(&mut self, text: &str, pointer: &str, scope: &Scope) {
        if !template::is_template(text) {
            return;
        }
        match template_variables(&self.env, text) {
            Ok(variables) => {
                self.check_variables(&variables, pointer, scope);
                self.check_names(text, text, 0, pointer);
            }
            Err(error) => self.report_template_error(text, pointer, &error),
        }
    }

    /// Unknown filters and tests in `compiled` (the field's `text`, or `{{ text }}` for
    /// an expression, whose offsets are `shift` bytes ahead).
    fn check_names(&mut self, text: &str, compiled: &str, shift: usize, pointer: &str) {
        for unknown in template::unknown_names(&self.env, compiled) {
            let location = self.document.locate(pointer);
            let span = unknown.span.start.saturating_sub(shift)..unknown.span.end.saturating_sub(shift);
            let range = super::refine_template_range(self.source, &location, text, span);
            let hint = template::suggest_name(&self.env, unknown.kind, &unknown.name);
            self.loader.push_at(
                self.name,
                self.document,
                range,
                location,
                "template",
                format!("unknown {} `{}`", unknown.kind, unknown.name),
                hint,
            );
        }
    }

    fn check_expression(&mut self, text: &str, pointer: &str, scope: &Scope) {
        if text.contains("{{") {
            self.report(
                pointer,
                "expression",
                "this field takes a bare expression, not a `{{ }}` template".into(),
                Some(format!(
                    "write `{}`",
                    text.trim().trim_start_matches("{{").trim_end_matches("}}").trim()
                )),
            );
            return;
        }
        match expression_variables(&self.env, text) {
            Ok(variables) => {
                self.check_variables(&variables, pointer, scope);
                self.check_names(text, &format!("{{{{ {text} }}}}"), 3, pointer);
            }
            Err(error) => self.report_template_error(text, pointer, &error),
        }
    }

    fn check_variables(&mut self, variables: &BTreeSet<String>, pointer: &str, scope: &Scope) {
        for path in variables {
            let mut parts = path.split('.');
            let root = parts.next().unwrap_or_default();
            let second = parts.next();
            let third = parts.next();
            let problem: Option<(String, Option<String>, String)> = match root {
                "inputs" => second.and_then(|key| {
                    let names: Vec<&str> = self.workflow.inputs.keys().map(String::as_str).collect();
                    (!self.workflow.inputs.contains_key(key)).then(|| {
                        (
                            format!("unknown input `{key}`"),
                            did_you_mean(key, names.iter().copied())
                                .or_else(|| Some(format!("declared inputs: {}", list_or_none(&names)))),
                            path.clone(),
                        )
                    })
                }),
                "secrets" => second.and_then(|key| {
                    let names: Vec<&str> = self.workflow.secrets.keys().map(String::as_str).collect();
                    (!self.workflow.secrets.contains_key(key)).then(|| {
                        (
                            format!("unknown secret `{key}`"),
                            did_you_mean(key, names.iter().copied())
                                .or_else(|| Some("declare it under `secrets:` with the `env` variable holding it".into())),
                            path.clone(),
                        )
                    })
                }),
                "env" => second.and_then(|key| {
                    let names: Vec<&str> = self.workflow.env.keys().map(String::as_str).collect();
                    (!self.workflow.env.contains_key(key)).then(|| {
                        (
                            format!("environment variable `{key}` is not declared"),
                            did_you_mean(key, names.iter().copied())
                                .or_else(|| Some(format!("declare it under `env:` (e.g. `{key}: {{default: ...}}`)"))),
                            path.clone(),
                        )
                    })
                }),
                "vars" => second.and_then(|key| {
                    let declared = self.workflow.vars.contains_key(key);
                    (!scope.vars.contains(key)).then(|| {
                        let names: Vec<&str> = scope.vars.iter().map(String::as_str).collect();
                        let message = if declared {
                            format!("`vars.{key}` is defined after this var")
                        } else {
                            format!("unknown var `{key}`")
                        };
                        (message, did_you_mean(key, names.iter().copied()), path.clone())
                    })
                }),
                "lifecycle" => self.workflow.lifecycle.is_none().then(|| {
                    (
                        "`lifecycle` needs a lifecycle file".to_string(),
                        Some("add `lifecycle: lifecycle.yaml` (its path) to the workflow".into()),
                        "lifecycle".to_string(),
                    )
                }),
                "roles" => (self.workflow.roles.is_none()
                    && self.lifecycle.as_ref().is_none_or(|(_, roles)| roles.is_none()))
                .then(|| {
                    (
                        "`roles` needs a roles file".to_string(),
                        Some("add `roles: roles.yaml` (its path) to the workflow, or name one in its lifecycle".into()),
                        "roles".to_string(),
                    )
                }),
                "lanes" => self.workflow.lanes.is_none().then(|| {
                    (
                        "`lanes` needs a lane registry".to_string(),
                        Some("add `lanes: lanes.yaml` (the path of the registry) to the workflow".into()),
                        "lanes".to_string(),
                    )
                }),
                "steps" if !scope.steps_allowed => Some((
                    "step results are not available here; only inputs, secrets, env, vars and lanes".to_string(),
                    None,
                    "steps".to_string(),
                )),
                "steps" => match second {
                    None => None,
                    Some(id) if scope.steps.contains(id) => third.and_then(|field| {
                        (!RESULT_FIELDS.contains(&field)).then(|| {
                            (
                                format!("a step result has no field `{field}`; expected {}", one_of(RESULT_FIELDS)),
                                did_you_mean(field, RESULT_FIELDS.iter().copied()),
                                format!("steps.{id}.{field}"),
                            )
                        })
                    }),
                    Some(id) if self.ids.contains_key(id) => Some((
                        format!("step `{id}` does not run before this point, so `steps.{id}` is not available here"),
                        Some("a step can use the results of steps before it, at its level or in enclosing steps".into()),
                        format!("steps.{id}"),
                    )),
                    Some(id) => {
                        let names: Vec<&str> = self.ids.keys().map(String::as_str).collect();
                        Some((
                            format!("no step with id `{id}`"),
                            did_you_mean(id, names.iter().copied()),
                            format!("steps.{id}"),
                        ))
                    }
                },
                other if scope.extra.contains(other) => None,
                other => {
                    let mut available: Vec<&str> = vec!["inputs", "secrets", "env", "vars"];
                    if self.workflow.lanes.is_some() {
                        available.push("lanes");
                    }
                    if self.workflow.lifecycle.is_some() {
                        available.push("lifecycle");
                    }
                    if self.workflow.roles.is_some() || self.lifecycle.as_ref().is_some_and(|(_, r)| r.is_some()) {
                        available.push("roles");
                    }
                    if scope.steps_allowed {
                        available.push("steps");
                    }
                    available.extend(scope.extra.iter().map(String::as_str));
                    Some((
                        format!("unknown variable `{other}`; available here: {}", available.join(", ")),
                        did_you_mean(other, available.iter().copied()),
                        other.to_string(),
                    ))
                }
            };
            if let Some((message, hint, needle)) = problem {
                let location = self.document.locate(pointer);
                let range = refine(self.source, &location, &needle);
                self.loader.push_at(self.name, self.document, range, location, "undefined", message, hint);
            }
        }
    }

    /// A template or expression that does not compile, pointed at the bad token.
    fn report_template_error(&mut self, text: &str, pointer: &str, error: &minijinja::Error) {
        let location = self.document.locate(pointer);
        let range = match error.range() {
            Some(range) => super::refine_template_range(self.source, &location, text, range),
            None => location.value,
        };
        let code = if error.kind() == minijinja::ErrorKind::SyntaxError { "template" } else { "expression" };
        let hint = text
            .contains("{#")
            .then(|| "comments are `{## ... ##}` here, so `{#` can appear in shell snippets".to_string());
        self.loader.push_at(
            self.name,
            self.document,
            range,
            location,
            code,
            template::describe_error(error),
            hint,
        );
    }

    fn report(&mut self, pointer: &str, code: &'static str, message: String, hint: Option<String>) {
        self.loader.report(self.name, self.document, pointer, code, message, hint);
    }

    fn report_key(&mut self, pointer: &str, code: &'static str, message: String, hint: Option<String>) {
        self.loader.report_key(self.name, self.document, pointer, code, message, hint);
    }
}

/// Check that each rule's pattern compiles (anchored, as the guard uses it).
pub fn check_rules(loader: &mut Loader, name: &str, document: &Document, rules: &[GuardRule], base: &str) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (index, rule) in rules.iter().enumerate() {
        let pointer = format!("{base}/{index}");
        if let Err(error) = compile_rule(rule) {
            loader.report(
                name,
                document,
                &format!("{pointer}/pattern"),
                "regex",
                format!("invalid regular expression: {error}"),
                None,
            );
        }
        if let Some(first) = seen.insert(rule.id.as_str(), index) {
            loader.report(
                name,
                document,
                &format!("{pointer}/id"),
                "duplicate-id",
                format!("duplicate rule id `{}` (first used by rule {})", rule.id, first + 1),
                None,
            );
        }
    }
}

/// Compile a rule's pattern so that it must match the whole text.
pub fn compile_rule(rule: &GuardRule) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(&format!("^(?:{})$", rule.pattern))
        .case_insensitive(rule.ignore_case)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            let text = e.to_string();
            let last = text.lines().last().unwrap_or("invalid pattern").trim();
            last.strip_prefix("error: ").unwrap_or(last).to_string()
        })
}

fn valid_outcome_key(key: &str) -> bool {
    if matches!(key, "http_error" | "transport" | "timeout" | "decode") {
        return true;
    }
    let bytes = key.as_bytes();
    if bytes.len() != 3 || !(b'1'..=b'5').contains(&bytes[0]) {
        return false;
    }
    (bytes[1].is_ascii_digit() && bytes[2].is_ascii_digit()) || &key[1..] == "xx"
}

fn type_matches(input: &InputDef, value: &Value) -> Result<(), &'static str> {
    if input.ty.accepts(value) {
        Ok(())
    } else {
        Err(match input.ty {
            InputType::String => "text",
            InputType::Lane => "a lane id (text)",
            InputType::Integer => "a whole number",
            InputType::Number => "a number",
            InputType::Boolean => "`true` or `false`",
            InputType::List => "a list",
            InputType::Map => "a map",
        })
    }
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn describe(value: &Value) -> String {
    super::schema_check::describe(value)
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() { "none".to_string() } else { one_of(names) }
}

/// Warn (a warning, never an error) where a workflow input can reach an `exec`
/// argument unguarded: at run time such an argument is refused when its value starts
/// with `-` (it would be read as an option), so say so before it happens. Guarded:
/// an argument after a literal `--`, one whose template starts with literal text (so
/// `--repo={{ inputs.repo }}` is the way to pass an option's value), a step with
/// `options_from_input: true`, and boolean or lane inputs.
pub fn warn_unguarded_argv(loader: &mut Loader, name: &str, document: &Document, workflow: &Workflow) {
    let env = template::environment();
    let mut pending: Vec<(&[Step], String)> =
        vec![(&workflow.steps, "/steps".to_string()), (&workflow.finally, "/finally".to_string())];
    while let Some((steps, base)) = pending.pop() {
        for (index, step) in steps.iter().enumerate() {
            let pointer = format!("{base}/{index}");
            let exec = match &step.kind {
                StepKind::Switch(switch) => {
                    for (case_index, case) in switch.cases.iter().enumerate() {
                        pending.push((&case.steps, format!("{pointer}/cases/{case_index}/steps")));
                    }
                    if let Some(default) = &switch.default {
                        pending.push((&default.steps, format!("{pointer}/default/steps")));
                    }
                    continue;
                }
                StepKind::ForEach(each) => {
                    pending.push((&each.steps, format!("{pointer}/steps")));
                    continue;
                }
                StepKind::Exec(exec) if !exec.options_from_input => exec,
                _ => continue,
            };
            let program = exec.argv.first().map(String::as_str).unwrap_or_default();
            for (position, arg) in exec.argv.iter().enumerate().skip(1) {
                if arg == "--" {
                    break;
                }
                // Only a value that starts with the interpolation can start with `-`:
                // `repos/{{ inputs.repo }}` or `--repo={{ inputs.repo }}` cannot.
                if !(arg.starts_with("{{") || arg.starts_with("{%")) || !template::is_template(arg) {
                    continue;
                }
                let Ok(variables) = template_variables(&env, arg) else { continue };
                let input = variables.iter().find_map(|variable| {
                    let input = variable.strip_prefix("inputs.")?.split('.').next()?;
                    let def = workflow.inputs.get(input)?;
                    (!matches!(def.ty, InputType::Boolean | InputType::Lane)).then_some(input)
                });
                let Some(input) = input else { continue };
                let location = document.locate(&format!("{pointer}/argv/{position}"));
                loader.warnings.push(
                    crate::diagnostics::Diagnostic::new(
                        name,
                        location.value,
                        "argv-option",
                        format!(
                            "input `{input}` reaches argument {position} of `{program}` unguarded: a value starting with `-` is refused at run time"
                        ),
                    )
                    .with_hint(Some(
                        "put `--` before it in argv if the program accepts that, or set `options_from_input: true` on the step".into(),
                    )),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_keys() {
        for ok in ["409", "5xx", "4xx", "http_error", "transport", "timeout", "decode"] {
            assert!(valid_outcome_key(ok), "{ok}");
        }
        for bad in ["40", "6xx", "4x", "conflict", "0xx"] {
            assert!(!valid_outcome_key(bad), "{bad}");
        }
    }

    #[test]
    fn rules_match_whole_text() {
        let rule = GuardRule {
            id: "stuck".into(),
            pattern: "Stuck: [^\\n]+\\.".into(),
            verdict: crate::model::lanes::Verdict::Accept,
            reason: None,
            ignore_case: false,
            lanes: Vec::new(),
        };
        let re = compile_rule(&rule).expect("compiles");
        assert!(re.is_match("Stuck: no token."));
        assert!(!re.is_match("Stuck: no token.\nand more"));
        assert!(!re.is_match("x Stuck: no token."));
    }
}
