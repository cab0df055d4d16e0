//! Small helpers the engine tests share to build and run their cases: a workflow run
//! that must succeed and its events, a command's JSON output, and the stateful fake
//! Dispatch with fake `gh`/`openclaw` on PATH.

use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use super::super::fake::dispatch::{Dispatch, fake_programs};
use super::super::{code, stderr, stdout};
use super::{Case, dispatch_run, events, finished, shipped};

/// `runner run wf.yaml -o json ARGS...`, which must exit 0; its JSON events.
pub(super) fn run_ok(case: &Case, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["-o", "json"];
    all.extend_from_slice(args);
    let output = case.run(&all, &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    events(&output)
}

/// The outputs of a finished run, from its events.
pub(super) fn outputs(events: &[Value]) -> &Value {
    &finished(events)["outputs"]
}

/// A command's standard output parsed as JSON (`-o json`).
pub(super) fn json_stdout(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("JSON on stdout ({e}): {}{}", stdout(output), stderr(output)))
}

/// The stateful fake Dispatch (no latency), with fake `gh` and `openclaw` programs on
/// a PATH in a temp dir where the shipped workflows run.
pub(super) struct Fleet {
    pub(super) dir: tempfile::TempDir,
    pub(super) path: String,
    pub(super) dispatch: Dispatch,
}

impl Fleet {
    pub(super) fn start() -> Fleet {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = fake_programs(dir.path());
        Fleet { dir, path, dispatch: Dispatch::start(Duration::ZERO) }
    }

    /// `runner run workflows/<workflow> ARGS...` against the fake.
    pub(super) fn run_args(&self, workflow: &str, args: &[&str]) -> Output {
        let workflow = shipped(workflow);
        let mut all = vec![workflow.as_str()];
        all.extend_from_slice(args);
        dispatch_run(self.dir.path(), &self.path, &self.dispatch.server.url, &all)
    }

    /// `runner run workflows/<workflow> -i k=v ...`; (exit code, stdout, stderr).
    pub(super) fn run(&self, workflow: &str, inputs: &[&str]) -> (i32, String, String) {
        let args: Vec<&str> = inputs.iter().flat_map(|input| ["-i", input]).collect();
        let output = self.run_args(workflow, &args);
        (code(&output), stdout(&output), stderr(&output))
    }
}
