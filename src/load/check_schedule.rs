//! Meaning checks for a schedule: unique entry ids, workflows that exist and are valid,
//! inputs the workflow declares (and all it requires), cron expressions and time
//! zones that parse.

use std::collections::HashMap;
use std::path::Path;

use super::yaml::{Document, escape_pointer};
use super::{Loaded, Loader};
use crate::diagnostics::{did_you_mean, one_of};
use crate::model::FileKind;
use crate::model::schedule::Schedule;
use crate::schedule::cron;

/// Some zone names people write, for "did you mean".
const COMMON_ZONES: [&str; 8] = [
    "UTC",
    "Europe/Berlin",
    "Europe/London",
    "Europe/Paris",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Australia/Sydney",
];

/// Check a schedule; problems go to the loader.
pub(crate) fn check(loader: &mut Loader, path: &Path, name: &str, document: &Document, schedule: &Schedule) {
    let file_zone = match schedule.time_zone.as_deref() {
        None => Some(chrono_tz::Tz::UTC),
        Some(text) => check_zone(loader, name, document, "/time_zone", text),
    };
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (index, entry) in schedule.entries.iter().enumerate() {
        let pointer = format!("/entries/{index}");
        if let Some(first) = ids.insert(entry.id.as_str(), index) {
            let first_range = document.locate(&format!("/entries/{first}/id")).value;
            let location = document.locate(&format!("{pointer}/id"));
            loader.diagnostics.push(
                crate::diagnostics::Diagnostic::new(
                    name,
                    location.value,
                    "duplicate",
                    format!("duplicate entry id `{}`", entry.id),
                )
                .with_hint(Some("each entry needs its own id: it names its lock and saved fire times".into()))
                .with_related(first_range, "first used here"),
            );
        }
        let zone = match entry.time_zone.as_deref() {
            None => file_zone,
            Some(text) => check_zone(loader, name, document, &format!("{pointer}/time_zone"), text),
        };
        if let Some(zone) = zone
            && let Err(message) = cron::parse(&entry.cron, zone)
        {
            loader.report(
                name,
                document,
                &format!("{pointer}/cron"),
                "cron",
                message,
                Some("e.g. `*/5 * * * *` (every 5 minutes), `0 3 * * *` (03:00 daily), `@hourly`, `@every 10m`".into()),
            );
        }
        let workflow = match loader.load_reference(
            path,
            name,
            document,
            &format!("{pointer}/workflow"),
            &entry.workflow,
            FileKind::Workflow,
            "scheduled workflow",
            true,
        ) {
            Some(Loaded::Workflow(workflow)) => workflow,
            _ => continue,
        };
        let names: Vec<&str> = workflow.inputs.keys().map(String::as_str).collect();
        for key in entry.inputs.keys() {
            if !workflow.inputs.contains_key(key) {
                loader.report_key(
                    name,
                    document,
                    &format!("{pointer}/inputs/{}", escape_pointer(key)),
                    "schedule-input",
                    format!("`{}` has no input `{key}`", entry.workflow),
                    did_you_mean(key, names.iter().copied())
                        .or_else(|| (!names.is_empty()).then(|| format!("its inputs: {}", one_of(&names)))),
                );
            }
        }
        let missing: Vec<&str> = workflow
            .inputs
            .iter()
            .filter(|(key, input)| input.default.is_none() && !entry.inputs.contains_key(*key))
            .map(|(key, _)| key.as_str())
            .collect();
        if !missing.is_empty() {
            let plural = if missing.len() == 1 { "input" } else { "inputs" };
            loader.report(
                name,
                document,
                &format!("{pointer}/workflow"),
                "schedule-input",
                format!(
                    "`{}` requires {plural} {} that the entry does not give",
                    entry.workflow,
                    one_of(&missing)
                ),
                Some(format!("add {} under `inputs:`", if missing.len() == 1 { "it" } else { "them" })),
            );
        }
    }
}

fn check_zone(
    loader: &mut Loader,
    name: &str,
    document: &Document,
    pointer: &str,
    text: &str,
) -> Option<chrono_tz::Tz> {
    match cron::zone(text) {
        Ok(zone) => Some(zone),
        Err(message) => {
            loader.report(name, document, pointer, "time-zone", message, did_you_mean(text, COMMON_ZONES));
            None
        }
    }
}
