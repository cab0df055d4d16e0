//! Meaning checks for a workflow that passed the schema: identifiers, references
//! between steps, templates and expressions and the variables they use, lanes,
//! `call` targets and their inputs, regexes, exit codes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use minijinja::Environment;
use serde_json::Value;

use super::yaml::{Document, escape_pointer};
use super::{Loaded, Loader};
use crate::diagnostics::one_of;
use crate::model::FileKind;
use crate::model::lanes::{GuardRule, LaneRegistry};
use crate::model::step::{Step, StepKind};
use crate::model::steps_iter::walk_steps_at;
use crate::model::workflow::{InputDef, InputType, Workflow};
use crate::template::{self, template_variables};

// The v2 language kinds (stages, return, parallel) are checked in their own file.
#[path = "check_stages.rs"]
mod check_stages;
// The step kinds that reach outside the workflow, and template checks, likewise.
#[path = "check_workflow_steps.rs"]
mod check_workflow_steps;
#[path = "check_workflow_templates.rs"]
mod check_workflow_templates;

// The `kubernetes` step is checked in its own file.
#[path = "check_kubernetes.rs"]
mod check_kubernetes;

/// Names templates may not use for loop variables: they are taken.
const RESERVED: &[&str] = &[
    "inputs",
    "secrets",
    "env",
    "vars",
    "steps",
    "lanes",
    "lane_dispatch",
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
pub(crate) fn check(
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
        env: template::shared_environment(),
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
    env: &'static Environment<'static>,
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

    /// Every step id in `steps` (nested ones included) and where it first appears.
    fn collect_ids(&mut self, steps: &[Step], base: &str) {
        for (pointer, step) in walk_steps_at(steps, base) {
            let Some(id) = &step.id else { continue };
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
                self.ids.insert(id.clone(), pointer);
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
            StepKind::Kubernetes(k8s) => self.check_kubernetes(k8s, pointer, scope),
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
                if let Some(problem) = cron.shape_problem() {
                    self.report(pointer, "cron", problem, None);
                }
                if let Some(lane) = &cron.lane {
                    if template::is_template(lane) {
                        self.check_template(lane, &format!("{pointer}/lane"), scope);
                    } else {
                        self.check_lane_id(lane, &format!("{pointer}/lane"));
                    }
                }
                match &cron.enabled {
                    None | Some(Value::Bool(_)) => {}
                    Some(Value::String(text)) if template::is_template(text) => {
                        self.check_template(text, &format!("{pointer}/enabled"), scope);
                    }
                    Some(other) => self.report(
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
}

/// Check that each rule's pattern compiles (anchored, as the guard uses it).
pub(crate) fn check_rules(
    loader: &mut Loader,
    name: &str,
    document: &Document,
    rules: &[GuardRule],
    base: &str,
) {
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
pub(crate) fn compile_rule(rule: &GuardRule) -> Result<regex::Regex, String> {
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
pub(crate) fn warn_unguarded_argv(loader: &mut Loader, name: &str, document: &Document, workflow: &Workflow) {
    let env = template::shared_environment();
    let all = walk_steps_at(&workflow.steps, "/steps").chain(walk_steps_at(&workflow.finally, "/finally"));
    for (pointer, step) in all {
        let StepKind::Exec(exec) = &step.kind else { continue };
        if exec.options_from_input {
            continue;
        }
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
            let Ok(variables) = template_variables(env, arg) else { continue };
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
