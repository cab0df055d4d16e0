//! Issue 10 leftovers: the run report's `overlaps`, a `for_each` width from a template,
//! and a `command` cron backend that reads the jobs' state first (`list`).

use serde_json::{Value, json};

use super::{Case, code, events, finished, registry, stderr, step};

fn report(case: &Case, args: &[&str]) -> Value {
    let file = case.path("report.json");
    let mut all = vec!["--report", file.to_str().expect("utf8")];
    all.extend_from_slice(args);
    let output = case.run(&all, &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    serde_json::from_str(&std::fs::read_to_string(&file).expect("report written")).expect("report is JSON")
}

/// The overlap groups as (within, sorted step paths).
fn groups(report: &Value) -> Vec<(String, Vec<String>)> {
    report["overlaps"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|g| {
                    let mut steps: Vec<String> = g["steps"]
                        .as_array()
                        .map(|s| s.iter().filter_map(|p| p.as_str().map(str::to_string)).collect())
                        .unwrap_or_default();
                    steps.sort();
                    assert!(g["start_ms"].as_u64() < g["end_ms"].as_u64(), "{g}");
                    (g["within"].as_str().unwrap_or_default().to_string(), steps)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_run_report_lists_the_steps_that_overlapped() {
    // Two one-second commands in a parallel block overlap; the steps before and after
    // the block, and the block with the steps inside it, do not count.
    let case = Case::new(
        "name: t\nsteps:\n  - id: first\n    type: exec\n    argv: [sleep, \"0.1\"]\n  - id: both\n    type: parallel\n    steps:\n      - {id: a, type: exec, argv: [sleep, \"1\"]}\n      - {id: b, type: exec, argv: [sleep, \"1\"]}\n  - id: last\n    type: exec\n    argv: [sleep, \"0.1\"]\n",
    );
    let parallel = report(&case, &[]);
    assert_eq!(
        groups(&parallel),
        vec![("both".to_string(), vec!["both.a".to_string(), "both.b".to_string()])]
    );
    // One after another: no `overlaps` at all.
    let sequential = Case::new(
        "name: t\nsteps:\n  - {id: a, type: exec, argv: [sleep, \"0.1\"]}\n  - {id: b, type: exec, argv: [sleep, \"0.1\"]}\n",
    );
    let one_by_one = report(&sequential, &[]);
    assert!(one_by_one.get("overlaps").is_none(), "{one_by_one}");
}

#[test]
fn a_for_each_width_can_come_from_an_input() {
    let case = Case::new(
        "name: t\ninputs:\n  width: {type: integer, default: 1}\nsteps:\n  - id: fan\n    type: for_each\n    items: range(2)\n    parallel: \"{{ inputs.width }}\"\n    steps:\n      - {id: nap, type: exec, argv: [sleep, \"1\"]}\n",
    );
    // Width 1: one after another, by construction.
    assert_eq!(groups(&report(&case, &[])), vec![]);
    // Width 2: both iterations at once.
    assert_eq!(
        groups(&report(&case, &["-i", "width=2"])),
        vec![("fan".to_string(), vec!["fan[0].nap".to_string(), "fan[1].nap".to_string()])]
    );
    // Not a number: the loop fails with the reason, before any item runs.
    let bad = Case::new(
        "name: t\ninputs:\n  width: {type: string}\nsteps:\n  - id: fan\n    type: for_each\n    items: range(2)\n    parallel: \"{{ inputs.width }}\"\n    steps:\n      - {id: nap, type: exec, argv: [sleep, \"0\"]}\n",
    );
    let output = bad.run(&["-o", "json", "-i", "width=many"], &[]);
    assert_eq!(code(&output), 1);
    assert_eq!(
        step(&events(&output), "fan")["error"],
        json!("parallel: expected a whole number, found `many`")
    );
}

const TOGGLE_BOTH: &str = "name: t\nlanes: lanes.yaml\nsteps:\n  - id: local\n    type: cron\n    lane: local\n    enabled: true\n  - id: cloud\n    type: cron\n    lane: cloud\n    enabled: true\noutputs:\n  local: \"{{ steps.local.output }}\"\n  cloud: \"{{ steps.cloud.output }}\"\n";

/// A `command` backend whose toggles and list append to `calls.log`; the list says
/// local's job is disabled and cloud's enabled (`jobs` as given).
fn command_backend(case: &Case, jobs: &str) {
    registry(
        case,
        &format!(
            "{{type: command, argv: [sh, -c, 'echo \"toggle $0 $1\" >> calls.log', \"{{{{ cron_id }}}}\", \"{{{{ 'on' if enabled else 'off' }}}}\"], list: [sh, -c, 'echo list >> calls.log; echo ''{jobs}''']}}"
        ),
    );
}

#[test]
fn a_command_cron_backend_with_a_list_reads_once_and_toggles_only_what_differs() {
    let case = Case::new(TOGGLE_BOTH);
    command_backend(
        &case,
        r#"{"jobs": [{"id": "6b09bed4-cfbe-4c35-bbee-2b66c5ef17aa", "enabled": false}, {"id": "8a6daaff-641b-4e1c-a263-f3814b043539", "enabled": true, "name": "C"}]}"#,
    );
    let output = case.run(&["-o", "json"], &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(
        std::fs::read_to_string(case.path("calls.log")).expect("called"),
        "list\ntoggle 6b09bed4-cfbe-4c35-bbee-2b66c5ef17aa on\n"
    );
    let outputs = finished(&events(&output))["outputs"].clone();
    assert_eq!(
        (outputs["local"]["changed"].clone(), outputs["local"]["applied"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(
        (outputs["cloud"]["changed"].clone(), outputs["cloud"]["command"].clone()),
        (json!(false), Value::Null)
    );
    // A dry run reads (the list) and plans only the edit that would happen.
    std::fs::remove_file(case.path("calls.log")).expect("rm");
    let output = case.run(&["-o", "json", "--dry-run"], &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(case.path("calls.log")).expect("called"), "list\n");
}

#[test]
fn a_command_cron_backend_changes_nothing_when_its_list_does_not_know_the_job() {
    let case = Case::new(TOGGLE_BOTH);
    command_backend(&case, r#"{"jobs": [{"id": "8a6daaff-641b-4e1c-a263-f3814b043539", "enabled": false}]}"#);
    let output = case.run(&["-o", "json"], &[]);
    assert_eq!(code(&output), 1);
    let error = step(&events(&output), "local")["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.starts_with(
            "cron job 6b09bed4-cfbe-4c35-bbee-2b66c5ef17aa of lane `local` is not listed by `sh -c "
        ),
        "{error}"
    );
    assert!(error.ends_with("; nothing changed"), "{error}");
    assert_eq!(std::fs::read_to_string(case.path("calls.log")).expect("called"), "list\n");
    // Unreadable output: also nothing changed.
    let case = Case::new(TOGGLE_BOTH);
    command_backend(&case, "not json");
    let output = case.run(&["-o", "json"], &[]);
    assert_eq!(code(&output), 1);
    let error = step(&events(&output), "local")["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.starts_with("reading the cron jobs failed, nothing changed: `sh` printed no JSON"),
        "{error}"
    );
    assert_eq!(std::fs::read_to_string(case.path("calls.log")).expect("called"), "list\n");
}
