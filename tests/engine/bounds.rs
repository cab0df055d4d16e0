//! Depth and memory bounds of template evaluation: a template that grows without
//! bound fails its step with an error at the template's place, `finally` runs and the
//! report is written; the runner itself never aborts.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::{code, stderr, stdout};

/// `runner ARGS...` in `dir`, killed after 90 s (the deep case takes a few seconds in a debug build).
fn runner_bounded(dir: &Path, args: &[&str]) -> std::process::Output {
    crate::runner_bounded(dir, args, Duration::from_secs(90))
}

/// A workflow whose one step sets `v` to `template`, with a `finally` step.
fn workflow(template: &str) -> String {
    format!(
        "name: bounded\nsteps:\n  - id: grow\n    type: set\n    values:\n      v: \"{template}\"\nfinally:\n  - id: after\n    type: set\n    values: {{done: true}}\n"
    )
}

/// Run `template` in a workflow; the output and the report.
fn run_template(template: &str) -> (std::process::Output, Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("wf.yaml"), workflow(template)).expect("write");
    let output = runner_bounded(dir.path(), &["run", "wf.yaml", "--report", "report.json"]);
    let report = std::fs::read_to_string(dir.path().join("report.json")).unwrap_or_default();
    (output, serde_json::from_str(&report).unwrap_or(Value::Null))
}

fn assert_failed_at_the_template_and_finally_ran(output: &std::process::Output, report: &Value, what: &str) {
    assert_eq!(code(output), 1, "{}", stderr(output));
    let err = stderr(output);
    // Line 6 of the workflow, column 11: the first character inside the quotes.
    assert!(err.contains(&format!("values.v: wf.yaml:6:11: {what}")), "{err}");
    assert!(!err.contains("panicked") && !err.contains("has overflowed its stack"), "{err}");
    let steps = report["steps"].as_array().cloned().unwrap_or_default();
    let status = |path: &str| {
        steps.iter().find(|s| s["path"] == path).and_then(|s| s["status"].as_str()).map(str::to_string)
    };
    assert_eq!(status("grow").as_deref(), Some("failed"), "{report}");
    assert_eq!(status("finally.after").as_deref(), Some("ok"), "{report}");
    assert_eq!(report["status"], "failed");
}

#[test]
fn a_string_doubled_forty_times_fails_its_step_at_the_template_instead_of_aborting() {
    let (output, report) = run_template(
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
    );
    assert_failed_at_the_template_and_finally_ran(
        &output,
        &report,
        "template needs more than the 1024 MiB memory limit",
    );
}

#[test]
fn a_value_nested_millions_deep_in_one_template_fails_its_step_instead_of_aborting() {
    // Two million levels: ten per assignment, 200,000 assignments.
    let (output, report) = run_template(
        "{% set ns = namespace(v=1) %}{% for i in range(200) %}{% for j in range(1000) %}{% set ns.v = [[[[[[[[[[ns.v]]]]]]]]]] %}{% endfor %}{% endfor %}{{ ns.v | length }}",
    );
    assert_failed_at_the_template_and_finally_ran(
        &output,
        &report,
        "template builds a value nested too deeply",
    );
}

#[test]
fn a_value_nested_thirty_thousand_deep_in_one_template_no_longer_aborts() {
    let (output, report) = run_template(
        "{% set ns = namespace(v=1) %}{% for i in range(30000) %}{% set ns.v = [ns.v] %}{% endfor %}{{ ns.v | length }}",
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(report["steps"][0]["summary"], "{\"v\":\"1\"}", "{report}");
}

#[test]
fn templates_that_loop_give_the_same_values_through_the_bounded_evaluator() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workflow = "name: same\ninputs:\n  n: {type: integer, default: 3}\nsteps:\n  - id: a\n    type: set\n    values:\n      text: \"{% for i in range(inputs.n) %}<{{ i }}>{% endfor %}\"\n      list: \"{{ range(inputs.n) | map('string') | join('-') }}\"\n      typed: \"{{ range(inputs.n) | map('string') | list }}\"\n  - id: b\n    when: \"steps.a.output.list | replace('-', '') == '012'\"\n    type: set\n    values: {ran: true}\n";
    std::fs::write(dir.path().join("wf.yaml"), workflow).expect("write");
    let output = runner_bounded(dir.path(), &["run", "wf.yaml", "--output", "json"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let out = stdout(&output);
    // Step summaries are JSON inside the JSON events.
    assert!(out.contains(r#"\"text\":\"<0><1><2>\""#), "{out}");
    assert!(out.contains(r#"\"list\":\"0-1-2\""#), "{out}");
    assert!(out.contains(r#"\"typed\":[\"0\",\"1\",\"2\"]"#), "{out}");
    assert!(out.contains(r#"\"ran\":true"#), "{out}");
}

#[test]
fn a_roles_file_extending_a_folder_is_reported_at_its_extends_line() {
    // Found by the mutation test: `extends: ""` names the file's own folder.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("roles.yaml"), "kind: roles\nextends: \"\"\nroles: {}\n").expect("write");
    let output = runner_bounded(dir.path(), &["validate", "roles.yaml"]);
    assert_ne!(code(&output), 0, "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("found a directory"), "{err}");
    assert!(err.contains("roles.yaml:2:10") && !err.contains("cannot read file:"), "{err}");
}

#[test]
fn rendering_a_prompt_that_doubles_a_string_fails_at_the_file_instead_of_aborting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let grow = "Hello {{ name }}\n{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}\n";
    std::fs::write(dir.path().join("grow.md"), grow).expect("write");
    // A looping prompt with an include renders the same through the bounded evaluator.
    std::fs::write(
        dir.path().join("ok.md"),
        "{% for i in range(3) %}{{ name }}{{ i }} {% endfor %}{% include 'part.md' %}\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("part.md"), "part {{ name }}").expect("write");
    let output = runner_bounded(dir.path(), &["render", "grow.md", "--set", "name=a"]);
    assert_eq!(code(&output), 65, "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("template needs more than the 1024 MiB memory limit"), "{err}");
    assert!(err.contains("--> grow.md:1:1"), "{err}");
    let output = runner_bounded(dir.path(), &["render", "ok.md", "--set", "name=a"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output).trim_end(), "a0 a1 a2 part a");
}

#[test]
fn templates_too_big_to_compile_fail_validation_at_their_line_instead_of_aborting() {
    let dir = tempfile::tempdir().expect("tempdir");
    // minijinja folds constants while compiling: this would build 1.2 GB in validate.
    let folded = ["('x' * 100000000)"; 12].join(" ~ ");
    // A 100,000-term chain compiles as a tree 100,000 levels deep.
    let chain = vec!["x"; 100_000].join(" ~ ");
    for (template, what) in [
        (folded, "cannot compile this template within the limits: template needs more than the 1024 MiB"),
        (chain, "the template has more than 2000 operators"),
    ] {
        std::fs::write(dir.path().join("wf.yaml"), workflow(&format!("{{{{ {template} }}}}")))
            .expect("write");
        let output = runner_bounded(dir.path(), &["validate", "wf.yaml"]);
        assert_eq!(code(&output), 65, "{}", stderr(&output));
        let err = stderr(&output);
        assert!(err.contains(what) && err.contains("--> wf.yaml:6:10"), "{}", &err[..err.len().min(400)]);
    }
}
