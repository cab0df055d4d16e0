//! Template and expression checks for a workflow: every string that is a template,
//! the variables it uses against what the scope provides, and how problems are
//! reported at a JSON pointer.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Checker, RESULT_FIELDS, Scope, list_or_none};
use crate::diagnostics::{did_you_mean, one_of};
use crate::load::refine;
use crate::load::yaml::escape_pointer;
use crate::template::{self, expression_variables};

impl Checker<'_> {
    /// Check every string inside a dynamic value as a template.
    pub(super) fn check_dyn(&mut self, value: &Value, pointer: &str, scope: &Scope) {
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

    pub(super) fn check_template(&mut self, text: &str, pointer: &str, scope: &Scope) {
        if !template::is_template(text) {
            return;
        }
        let analysis = template::cache::analysed(template::cache::Checked::Template, text, || {
            template::template_variables_and_unknown_names(self.env, text)
        });
        match analysis {
            Ok((variables, unknown)) => {
                self.check_variables(&variables, pointer, scope);
                self.report_unknown_names(text, 0, pointer, unknown);
            }
            Err(error) => self.report_template_error(text, pointer, &error),
        }
    }

    /// Report unknown filters and tests found in the field's `text` (or in `{{ text }}`
    /// for an expression, whose offsets are `shift` bytes ahead).
    fn report_unknown_names(
        &mut self,
        text: &str,
        shift: usize,
        pointer: &str,
        unknown: Vec<template::UnknownName>,
    ) {
        for unknown in unknown {
            let location = self.document.locate(pointer);
            let span = unknown.span.start.saturating_sub(shift)..unknown.span.end.saturating_sub(shift);
            let range = crate::load::refine_template_range(self.source, &location, text, span);
            let hint = template::suggest_name(self.env, unknown.kind, &unknown.name);
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

    pub(super) fn check_expression(&mut self, text: &str, pointer: &str, scope: &Scope) {
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
        let analysis = template::cache::analysed(template::cache::Checked::Expression, text, || {
            let variables = expression_variables(self.env, text)?;
            Ok((variables, template::unknown_names(self.env, &format!("{{{{ {text} }}}}"))))
        });
        match analysis {
            Ok((variables, unknown)) => {
                self.check_variables(&variables, pointer, scope);
                self.report_unknown_names(text, 3, pointer, unknown);
            }
            Err(error) => self.report_template_error(text, pointer, &error),
        }
    }

    pub(super) fn check_variables(&mut self, variables: &BTreeSet<String>, pointer: &str, scope: &Scope) {
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
                "lanes" | "lane_dispatch" if self.workflow.lanes.is_none() => Some((
                    format!("`{root}` needs a lane registry"),
                    Some("add `lanes: lanes.yaml` (the path of the registry) to the workflow".into()),
                    root.to_string(),
                )),
                "lanes" => None,
                "lane_dispatch" => second.and_then(|field| {
                    let fields = crate::model::lanes::RegistryDispatch::FIELDS;
                    (!fields.contains(&field)).then(|| {
                        (
                            format!("the lane registry's `dispatch` has no field `{field}`; expected {}", one_of(fields)),
                            did_you_mean(field, fields.iter().copied()),
                            format!("lane_dispatch.{field}"),
                        )
                    })
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
                        available.extend(["lanes", "lane_dispatch"]);
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
    pub(super) fn report_template_error(&mut self, text: &str, pointer: &str, error: &minijinja::Error) {
        let location = self.document.locate(pointer);
        let range = match error.range() {
            Some(range) => crate::load::refine_template_range(self.source, &location, text, range),
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

    pub(super) fn report(
        &mut self,
        pointer: &str,
        code: &'static str,
        message: String,
        hint: Option<String>,
    ) {
        self.loader.report(self.name, self.document, pointer, code, message, hint);
    }

    pub(super) fn report_key(
        &mut self,
        pointer: &str,
        code: &'static str,
        message: String,
        hint: Option<String>,
    ) {
        self.loader.report_key(self.name, self.document, pointer, code, message, hint);
    }
}
