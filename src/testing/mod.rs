//! `runner test`: run workflow test cases offline, with canned HTTP exchanges and
//! command results, and compare what happened with what each case expects.

pub(crate) mod compare;
pub(crate) mod fixtures;
pub(crate) mod record;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value as Json};

use crate::engine::events::{Event, Fanout, Sink};
use crate::engine::project::{Project, ProjectError};
use crate::engine::run::{Engine, Options};
use crate::error::Error;
use crate::load::{Loader, sibling};
use crate::model::test_file::{Fixtures, TestCase, TestFile};
use crate::report::human::Human;
use fixtures::FixtureHooks;

/// The result of one case.
#[derive(Debug, Clone)]
pub(crate) struct CaseResult {
    /// The case's name.
    pub name: String,
    /// Every way the run differed from the expectations (empty: passed).
    pub failures: Vec<String>,
}

/// Records step statuses and the run's end, beside the human view.
#[derive(Debug, Default)]
struct Outcome {
    steps: Mutex<Vec<(String, String)>>,
    finished: Mutex<Option<(i32, Json)>>,
}

struct OutcomeSink(Arc<Outcome>);

impl Sink for OutcomeSink {
    fn event(&self, event: &Event) {
        match event {
            Event::StepFinished { path, status, .. } => {
                if let Ok(mut steps) = self.0.steps.lock() {
                    steps.push((path.clone(), status.name().to_string()));
                }
            }
            Event::StepPlanned { path, .. } => {
                if let Ok(mut steps) = self.0.steps.lock() {
                    steps.push((path.clone(), "planned".to_string()));
                }
            }
            Event::RunFinished { exit_code, outputs, .. } => {
                if let Ok(mut finished) = self.0.finished.lock() {
                    *finished = Some((*exit_code, outputs.clone()));
                }
            }
            _ => {}
        }
    }
}

/// The environment a case sees: PATH and HOME from this process, then the file's
/// defaults, then the case's own.
fn case_env(defaults: Option<&Fixtures>, case: &TestCase) -> HashMap<String, String> {
    let mut env = HashMap::new();
    for name in ["PATH", "HOME"] {
        if let Ok(value) = std::env::var(name) {
            env.insert(name.to_string(), value);
        }
    }
    if let Some(defaults) = defaults {
        env.extend(defaults.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    env.extend(case.fixtures.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// Run every case of a loaded test file. `file` is the test file's path. A workflow
/// that cannot be loaded is [`Error::NoInput`] when it is missing, else
/// [`Error::Invalid`] (its problems are in the loader's diagnostics).
pub(crate) fn run_file(loader: &mut Loader, file: &Path, tests: &TestFile) -> Result<Vec<CaseResult>, Error> {
    let workflow = sibling(file, &tests.workflow);
    let (project_template, main) = Project::load(loader, &workflow).map_err(|e| load_error(&workflow, &e))?;
    drop(project_template);
    let mut results = Vec::new();
    for case in &tests.cases {
        let (project, _) = Project::load(loader, &main).map_err(|e| load_error(&main, &e))?;
        results.push(run_case(project, &main, tests.defaults.as_ref(), case));
    }
    Ok(results)
}

/// Why the workflow at `path` could not be loaded, as the crate error.
fn load_error(path: &Path, error: &ProjectError) -> Error {
    let message = format!("cannot load {}", path.display());
    match error {
        ProjectError::Missing(_) => Error::NoInput(message),
        ProjectError::Invalid => Error::Invalid(message),
    }
}

fn run_case(project: Project, main: &Path, defaults: Option<&Fixtures>, case: &TestCase) -> CaseResult {
    let mut http = case.fixtures.http.clone();
    let mut commands = case.fixtures.commands.clone();
    if let Some(defaults) = defaults {
        http.extend(defaults.http.iter().cloned());
        commands.extend(defaults.commands.iter().cloned());
    }
    let hooks = Arc::new(FixtureHooks::new(http, commands));
    let state = match tempfile::Builder::new().prefix("runner-test-").tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            return CaseResult {
                name: case.name.clone(),
                failures: vec![format!("cannot make a temp dir: {e}")],
            };
        }
    };
    let stdout = Arc::new(Mutex::new(String::new()));
    let stderr = Arc::new(Mutex::new(String::new()));
    let outcome = Arc::new(Outcome::default());
    let mut fanout = Fanout::default();
    fanout.push(Box::new(Human::to_buffers(stdout.clone(), stderr.clone())));
    fanout.push(Box::new(OutcomeSink(outcome.clone())));
    let options = Options {
        dry_run: case.dry_run,
        state_dir: state.path().to_path_buf(),
        env: Some(case_env(defaults, case)),
        hooks: Some(hooks.clone()),
    };
    let engine = Engine::new(crate::plan::Plan::compile(project), options, Arc::new(fanout));
    let inputs: Map<String, Json> = case.inputs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    // Virtual time: delays and timeouts in fixtures take no real time.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return CaseResult {
                name: case.name.clone(),
                failures: vec![format!("cannot start a runtime: {e}")],
            };
        }
    };
    let result = runtime.block_on(engine.run_main_typed(main, inputs));
    let stdout = stdout.lock().map(|s| s.clone()).unwrap_or_default();
    let stderr = stderr.lock().map(|s| s.clone()).unwrap_or_default();
    let log = hooks.log();
    let mut failures = Vec::new();
    for unmatched in &log.unmatched {
        failures.push(format!("no fixture answers the {unmatched}"));
    }
    let expect = &case.expect;
    let want_code = expect.exit_code.unwrap_or(0);
    if result.exit_code != want_code {
        let why = result.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default();
        failures.push(format!("exit code: expected {want_code}, got {}{why}", result.exit_code));
    }
    if let Some(outputs) = &expect.outputs {
        failures.extend(compare::subset_errors(outputs, &result.outputs, "outputs"));
    }
    let order = |mut list: Vec<String>| {
        if expect.any_order {
            list.sort();
        }
        list
    };
    if let Some(requests) = &expect.requests
        && let Some(diff) = compare::line_diff(&order(requests.clone()), &order(log.requests.clone()))
    {
        let how = if expect.any_order { "in any order" } else { "in order" };
        failures.push(format!("requests differ ({how}; - expected, + made):\n{diff}"));
    }
    if let Some(commands) = &expect.commands {
        let mut want: Vec<Vec<String>> = commands.clone();
        let mut have: Vec<Vec<String>> = log.commands;
        if expect.any_order {
            want.sort();
            have.sort();
        }
        let matches = want.len() == have.len()
            && if expect.any_order {
                // Each expected pattern takes one distinct command it matches.
                let mut free: Vec<bool> = vec![true; have.len()];
                want.iter().all(|pattern| {
                    let slot = have
                        .iter()
                        .enumerate()
                        .position(|(i, argv)| free[i] && fixtures::argv_matches(pattern, argv));
                    slot.map(|i| free[i] = false).is_some()
                })
            } else {
                want.iter().zip(&have).all(|(pattern, argv)| fixtures::argv_matches(pattern, argv))
            };
        if !matches {
            let show = |list: &[Vec<String>]| {
                list.iter().map(|argv| crate::steps::hooks::quote_argv(argv)).collect::<Vec<_>>()
            };
            let diff = compare::line_diff(&show(&want), &show(&have)).unwrap_or_default();
            failures.push(format!("commands differ (- expected, + run):\n{diff}"));
        }
    }
    for text in &expect.stdout_contains {
        if !stdout.contains(text.as_str()) {
            failures.push(format!("stdout does not contain {text:?}; stdout was:\n{}", indent(&stdout)));
        }
    }
    for text in &expect.stderr_contains {
        if !stderr.contains(text.as_str()) {
            failures.push(format!("stderr does not contain {text:?}; stderr was:\n{}", indent(&stderr)));
        }
    }
    if let Some(want) = &expect.stdout
        && &stdout != want
    {
        let diff = similar::TextDiff::from_lines(want.as_str(), stdout.as_str())
            .unified_diff()
            .header("expected", "actual")
            .to_string();
        failures.push(format!("stdout differs:\n{diff}"));
    }
    let steps = outcome.steps.lock().map(|s| s.clone()).unwrap_or_default();
    for (path, want) in &expect.steps {
        let have = steps.iter().rev().find(|(p, _)| p == path).map(|(_, s)| s.as_str());
        match have {
            Some(have) if have == want => {}
            Some(have) => failures.push(format!("step `{path}`: expected status {want}, got {have}")),
            None => failures.push(format!("step `{path}` did not run (expected status {want})")),
        }
    }
    if !failures.is_empty() && !stderr.is_empty() {
        let lines: Vec<&str> = stderr.lines().collect();
        let tail = &lines[lines.len().saturating_sub(30)..];
        let cut = if tail.len() < lines.len() {
            format!("(last {} of {} lines)", tail.len(), lines.len())
        } else {
            String::new()
        };
        failures.push(format!("run output (stderr) {cut}:\n{}", indent(&tail.join("\n"))));
    }
    CaseResult { name: case.name.clone(), failures }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

/// Every `*.test.yaml` under `path` (or `path` itself), sorted.
pub(crate) fn test_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    crate::load::yaml_files(path)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".test.yaml")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_file(workflow: &str) -> TestFile {
        let value = serde_json::json!({"kind": "test", "workflow": workflow, "cases": [{"name": "one", "expect": {}}]});
        serde_json::from_value(value).unwrap_or_else(|e| panic!("test file: {e}"))
    }

    #[test]
    fn a_workflow_that_cannot_load_says_why_by_kind() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let file = dir.path().join("t.test.yaml");
        let missing = run_file(&mut Loader::new(), &file, &test_file("missing.yaml"));
        let path = crate::load::normalize(&dir.path().join("missing.yaml"));
        assert_eq!(missing.err(), Some(Error::NoInput(format!("cannot load {}", path.display()))));

        std::fs::write(dir.path().join("bad.yaml"), "name: b\nsteps:\n  - type: nope\n")
            .unwrap_or_else(|e| panic!("write: {e}"));
        let invalid = run_file(&mut Loader::new(), &file, &test_file("bad.yaml"));
        assert!(
            matches!(&invalid, Err(Error::Invalid(m)) if m.starts_with("cannot load ") && m.ends_with("bad.yaml"))
        );
    }
}
