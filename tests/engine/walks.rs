//! Checks that visit every step reach the steps inside `stages` and `parallel` blocks
//! too, and report them at their own line.

use serde_json::Value;

use super::super::{code, runner_in, stderr, stdout};
use super::Case;

const NESTED: &str = "\
name: t
inputs:
  rev: {type: string}
steps:
  - id: both
    type: parallel
    steps:
      - type: exec
        argv: [git, log, \"{{ inputs.rev }}\"]
  - id: staged
    type: stages
    stages:
      - id: first
        result: none
        steps:
          - type: exec
            argv: [git, show, \"{{ inputs.rev }}\"]
";

fn items(output: &std::process::Output) -> Vec<Value> {
    let value: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("JSON on stdout ({e}): {}", stdout(output)));
    value.as_array().cloned().unwrap_or_default()
}

#[test]
fn unguarded_argv_is_found_inside_parallel_and_stages() {
    let case = Case::new(NESTED);
    let output = runner_in(case.dir.path(), &["validate", "--output", "json", "wf.yaml"]);
    assert_eq!(code(&output), 0, "a warning is not an error: {}", stderr(&output));
    let found: Vec<(String, u64, u64)> = items(&output)
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap_or_default().to_string(),
                d["line"].as_u64().unwrap_or_default(),
                d["column"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(found, [("argv-option".to_string(), 9, 26), ("argv-option".to_string(), 17, 31)]);
}

#[test]
fn duplicate_ids_are_found_inside_parallel_and_stages() {
    let text = "\
name: t
steps:
  - type: parallel
    steps:
      - id: same
        type: set
        values: {a: 1}
  - type: stages
    stages:
      - id: first
        result: none
        steps:
          - id: same
            type: set
            values: {b: 2}
";
    let case = Case::new(text);
    let output = runner_in(case.dir.path(), &["validate", "--output", "json", "wf.yaml"]);
    assert_eq!(code(&output), 65, "{}", stderr(&output));
    let found = items(&output);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["code"], "duplicate-id");
    assert_eq!((found[0]["line"].as_u64(), found[0]["column"].as_u64()), (Some(13), Some(17)));
}
