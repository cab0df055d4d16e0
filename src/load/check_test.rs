//! Meaning checks for a test file: the workflow exists and is valid, inputs name
//! declared inputs, and expectations are well-formed.

use std::path::Path;

use super::yaml::{Document, escape_pointer};
use super::{Loaded, Loader};
use crate::diagnostics::{did_you_mean, one_of};
use crate::model::{FileKind, TestFile};

const STATUSES: [&str; 4] = ["ok", "failed", "skipped", "planned"];

/// Check a test file; problems go to the loader.
pub(crate) fn check(loader: &mut Loader, path: &Path, name: &str, document: &Document, tests: &TestFile) {
    let workflow = match loader.load_reference(
        path,
        name,
        document,
        "/workflow",
        &tests.workflow,
        FileKind::Workflow,
        "workflow under test",
        true,
    ) {
        Some(Loaded::Workflow(workflow)) => Some(workflow),
        _ => None,
    };
    for (index, case) in tests.cases.iter().enumerate() {
        let pointer = format!("/cases/{index}");
        if let Some(workflow) = &workflow {
            for key in case.inputs.keys() {
                if !workflow.inputs.contains_key(key) {
                    let names: Vec<&str> = workflow.inputs.keys().map(String::as_str).collect();
                    loader.report_key(
                        name,
                        document,
                        &format!("{pointer}/inputs/{}", escape_pointer(key)),
                        "test",
                        format!("the workflow has no input `{key}`"),
                        did_you_mean(key, names.iter().copied()).or_else(|| {
                            (!names.is_empty()).then(|| format!("its inputs: {}", one_of(&names)))
                        }),
                    );
                }
            }
        }
        for (step, status) in &case.expect.steps {
            if !STATUSES.contains(&status.as_str()) {
                loader.report(
                    name,
                    document,
                    &format!("{pointer}/expect/steps/{}", escape_pointer(step)),
                    "enum",
                    format!("unknown step status `{status}`; expected {}", one_of(&STATUSES)),
                    did_you_mean(status, STATUSES),
                );
            }
        }
        if let Some(requests) = &case.expect.requests {
            for (request_index, request) in requests.iter().enumerate() {
                let valid = request.split_once(' ').is_some_and(|(method, path)| {
                    !method.is_empty()
                        && method.chars().all(|c| c.is_ascii_uppercase())
                        && path.starts_with('/')
                });
                if !valid {
                    loader.report(
                        name,
                        document,
                        &format!("{pointer}/expect/requests/{request_index}"),
                        "test",
                        format!("`{request}` is not `METHOD /path`"),
                        Some("e.g. `GET /api/agents/saffron/queue`".into()),
                    );
                }
            }
        }
        let http = tests.defaults.iter().flat_map(|d| d.http.iter()).chain(case.fixtures.http.iter());
        for fixture in http {
            if fixture.respond.json.is_some() && fixture.respond.body.is_some() {
                loader.report(
                    name,
                    document,
                    &pointer,
                    "test",
                    "an HTTP answer has both `json` and `body`",
                    None,
                );
            }
        }
    }
}
