//! Meaning checks for a lane registry: unique ids, agents and cron ids, prompt
//! templates that exist and compile, contract patterns that compile.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use super::yaml::{Document, escape_pointer};
use super::{Loader, ReadError, display, sibling};
use crate::diagnostics::{did_you_mean, one_of};
use crate::model::lanes::{CronBackend, LaneRegistry};
use crate::template;

/// Check a lane registry; problems go to the loader.
pub(crate) fn check(
    loader: &mut Loader,
    path: &Path,
    name: &str,
    document: &Document,
    registry: &LaneRegistry,
) {
    let mut seen: [HashMap<String, usize>; 4] = Default::default();
    for (index, lane) in registry.lanes.iter().enumerate() {
        let pointer = format!("/lanes/{index}");
        let fields = [
            ("id", lane.id.clone(), "/id"),
            ("agent", lane.agent.clone(), "/agent"),
            ("cron id", lane.cron.id.to_lowercase(), "/cron/id"),
            ("cron name", lane.cron.name.clone(), "/cron/name"),
        ];
        for (slot, (what, value, suffix)) in fields.into_iter().enumerate() {
            if let Some(first) = seen[slot].insert(value.clone(), index) {
                let first_range = document.locate(&format!("/lanes/{first}{suffix}")).value;
                let location = document.locate(&format!("{pointer}{suffix}"));
                let diagnostic = crate::diagnostics::Diagnostic::new(
                    name,
                    location.value,
                    "duplicate",
                    format!("duplicate lane {what} `{value}`"),
                )
                .with_hint(Some(format!("each lane needs its own {what}")))
                .with_related(first_range, "first used here");
                loader.diagnostics.push(diagnostic);
            }
        }
        let prompt = sibling(path, &lane.prompt);
        let at = document.locate(&format!("{pointer}/prompt")).value;
        match loader.read_from(&prompt, Some((name, at))) {
            Ok(text) => {
                super::check_prompts::check_template_text(loader, &display(&prompt), &text, &BTreeSet::new());
            }
            Err(ReadError::Missing) => loader.report(
                name,
                document,
                &format!("{pointer}/prompt"),
                "missing-file",
                format!("prompt template `{}` does not exist", display(&prompt)),
                Some("the path is relative to the lane registry".into()),
            ),
            Err(ReadError::Reported) => {}
        }
    }
    check_aliases(loader, name, document, registry);
    let mut form_ids = HashMap::new();
    for (index, form) in registry.final_forms.iter().enumerate() {
        if let Some(first) = form_ids.insert(form.id.as_str(), index) {
            loader.report(
                name,
                document,
                &format!("/final_forms/{index}/id"),
                "duplicate",
                format!("duplicate final form id `{}` (first used by form {})", form.id, first + 1),
                None,
            );
        }
    }
    super::check_workflow::check_rules(
        loader,
        name,
        document,
        &registry.terminal_contract,
        "/terminal_contract",
    );
    if let CronBackend::Command { argv, .. } = &registry.cron_backend {
        let env = template::shared_environment();
        for (index, arg) in argv.iter().enumerate() {
            let pointer = format!("/cron_backend/argv/{index}");
            match template::template_variables(env, arg) {
                Ok(variables) => {
                    for variable in variables {
                        let root = variable.split('.').next().unwrap_or_default();
                        if !matches!(root, "lane" | "cron_id" | "enabled") {
                            loader.report(
                                name,
                                document,
                                &pointer,
                                "undefined",
                                format!("unknown variable `{root}`; a cron command sees `lane`, `cron_id` and `enabled`"),
                                None,
                            );
                        }
                    }
                }
                Err(error) => {
                    loader.report(
                        name,
                        document,
                        &pointer,
                        "template",
                        template::describe_error(&error),
                        None,
                    );
                }
            }
        }
    }
}

/// Each alias names a lane of the registry and is not itself a lane id (a lane id
/// always means its own lane, so such an alias could never apply).
fn check_aliases(loader: &mut Loader, name: &str, document: &Document, registry: &LaneRegistry) {
    let ids = registry.ids();
    for (alias, lane) in &registry.dispatch.aliases {
        let pointer = format!("/dispatch/aliases/{}", escape_pointer(alias));
        if let Some(index) = registry.lanes.iter().position(|lane| &lane.id == alias) {
            let location = document.locate(&pointer);
            let diagnostic = crate::diagnostics::Diagnostic::new(
                name,
                location.key.unwrap_or(location.value),
                "duplicate",
                format!("alias `{alias}` is a lane id; a lane id always means its own lane"),
            )
            .with_hint(Some(format!("remove the alias, or rename lane `{alias}`")))
            .with_related(document.locate(&format!("/lanes/{index}/id")).value, "the lane");
            loader.diagnostics.push(diagnostic);
        }
        if registry.lane(lane).is_none() {
            loader.report(
                name,
                document,
                &pointer,
                "unknown-lane",
                format!("alias `{alias}`: no lane `{lane}` in the lane registry; lanes: {}", one_of(&ids)),
                did_you_mean(lane, ids.iter().copied()),
            );
        }
    }
}
