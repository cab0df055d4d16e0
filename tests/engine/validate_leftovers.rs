//! `runner validate`: warnings in the JSON output, and references that cannot be read
//! (a folder named as a file) reported at the line that names them, never at `:0:0`.

use serde_json::Value;

use super::super::{code, runner_in, stderr, stdout};
use super::Case;

const ARGV_WARNING: &str = "name: t\ninputs:\n  rev: {type: string}\nsteps:\n  - type: exec\n    argv: [git, log, \"{{ inputs.rev }}\"]\n";

fn json(output: &std::process::Output) -> Vec<Value> {
    let value: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("JSON on stdout ({e}): {}", stdout(output)));
    value.as_array().cloned().unwrap_or_default()
}

#[test]
fn validate_json_output_carries_warnings_with_their_severity() {
    let case = Case::new(ARGV_WARNING);
    let output = runner_in(case.dir.path(), &["validate", "--output", "json", "wf.yaml"]);
    assert_eq!(code(&output), 0, "a warning is not an error: {}", stderr(&output));
    let items = json(&output);
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["severity"], "warning");
    assert_eq!(items[0]["code"], "argv-option");
    assert_eq!(items[0]["file"], "wf.yaml");
    assert_eq!((items[0]["line"].as_u64(), items[0]["column"].as_u64()), (Some(6), Some(22)));
    assert!(items[0]["hint"].as_str().unwrap_or_default().contains("--"), "{}", items[0]);
    // Said once, in the JSON: not repeated on stderr.
    assert!(!stderr(&output).contains("warning["), "{}", stderr(&output));
}

#[test]
fn validate_json_output_lists_errors_before_warnings() {
    let case = Case::new(ARGV_WARNING);
    case.write("bad.yaml", "name: b\nsteps:\n  - type: exec\n    argv: [echo]\n    timout: 5s\n");
    let output = runner_in(case.dir.path(), &["validate", "--output", "json", "wf.yaml", "bad.yaml"]);
    assert_eq!(code(&output), 65, "{}", stderr(&output));
    let items = json(&output);
    let order: Vec<(String, String)> =
        items.iter().map(|d| (d["severity"].to_string(), d["code"].to_string())).collect();
    let expected = [("\"error\"", "\"unknown-field\""), ("\"warning\"", "\"argv-option\"")];
    assert_eq!(order, expected.map(|(s, c)| (s.to_string(), c.to_string())), "{items:?}");
}

const LIFECYCLE: &str = "kind: lifecycle\ninitial: todo\nroles: roles\nstates:\n  todo: {type: queue, role: developer, label: To Do, on: {PICKUP: done}}\n  done: {type: terminal, label: Done}\n";

/// Every diagnostic of `validate --output json ARGS` in `case`, which must fail.
fn problems(case: &Case, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["validate", "--output", "json"];
    all.extend(args);
    let output = runner_in(case.dir.path(), &all);
    assert_eq!(code(&output), 65, "{}", stderr(&output));
    let items = json(&output);
    for item in &items {
        assert!(item["line"].as_u64() > Some(0), "a diagnostic without a location: {item}");
    }
    items
}

#[test]
fn a_lifecycle_roles_folder_is_reported_at_its_roles_line_when_a_workflow_names_it() {
    let case = Case::new("name: w\nlifecycle: lifecycle.yaml\nsteps:\n  - type: emit\n    text: hi\n");
    case.write("lifecycle.yaml", LIFECYCLE);
    std::fs::create_dir(case.path("roles")).expect("mkdir");
    let items = problems(&case, &["wf.yaml"]);
    let unreadable: Vec<&Value> = items.iter().filter(|d| d["code"] == "io").collect();
    assert_eq!(unreadable.len(), 1, "{items:?}");
    assert_eq!(unreadable[0]["file"], "lifecycle.yaml");
    assert_eq!((unreadable[0]["line"].as_u64(), unreadable[0]["column"].as_u64()), (Some(3), Some(8)));
    assert!(unreadable[0]["message"].as_str().unwrap_or_default().contains("`roles`"), "{}", unreadable[0]);
}

#[test]
fn an_overlay_whose_base_is_a_folder_is_reported_at_its_extends_line() {
    let case = Case::new("name: unused\nsteps:\n  - type: emit\n    text: hi\n");
    std::fs::create_dir(case.path("base")).expect("mkdir");
    case.write(
        "overlay.yaml",
        "# a project layer\nkind: lifecycle\nextends: base\nstates:\n  todo: {label: Ready}\n",
    );
    let items = problems(&case, &["overlay.yaml"]);
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["file"], "overlay.yaml");
    assert_eq!(items[0]["code"], "io");
    assert_eq!((items[0]["line"].as_u64(), items[0]["column"].as_u64()), (Some(3), Some(10)));
}
