//! Hardening of everything the loader, the template engine and `render` read and write:
//! non-regular files, size caps, located errors, depth and memory bounds.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::{code, runner_in, stderr, stdout};

fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo").arg(path).status().expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", path.display());
}

/// `runner ARGS...` in `dir`, killed after 20 s.
fn runner_bounded(dir: &Path, args: &[&str]) -> std::process::Output {
    crate::runner_bounded(dir, args, Duration::from_secs(20))
}

fn json_diagnostics(output: &std::process::Output) -> Vec<Value> {
    match serde_json::from_slice::<Value>(&output.stdout) {
        Ok(Value::Array(items)) => items,
        other => panic!("not a JSON array: {other:?}\nstderr: {}", stderr(output)),
    }
}

const WORKFLOW_WITH_LANES: &str =
    "name: t\nlanes: LANES\nsteps:\n  - id: a\n    type: set\n    values: {x: 1}\n";

#[test]
fn lanes_naming_a_fifo_is_refused_at_the_reference_without_blocking() {
    let dir = tempfile::tempdir().expect("tempdir");
    mkfifo(&dir.path().join("pipe.yaml"));
    std::fs::write(dir.path().join("wf.yaml"), WORKFLOW_WITH_LANES.replace("LANES", "pipe.yaml"))
        .expect("write");
    let output = runner_bounded(dir.path(), &["validate", "--output", "json", "wf.yaml"]);
    assert_eq!(code(&output), 65, "{}", stderr(&output));
    let found = json_diagnostics(&output);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["file"], "wf.yaml");
    assert_eq!((found[0]["line"].as_u64(), found[0]["column"].as_u64()), (Some(2), Some(8)));
    let message = found[0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("pipe.yaml") && message.contains("FIFO"), "{message}");
}

#[test]
fn lanes_naming_dev_zero_is_refused_not_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("wf.yaml"), WORKFLOW_WITH_LANES.replace("LANES", "/dev/zero"))
        .expect("write");
    let output = runner_bounded(dir.path(), &["validate", "--output", "json", "wf.yaml"]);
    assert_eq!(code(&output), 65);
    let found = json_diagnostics(&output);
    assert_eq!(found[0]["line"], 2, "{found:?}");
    assert!(found[0]["message"].as_str().unwrap_or_default().contains("character device"), "{found:?}");
}

#[test]
fn a_reference_to_a_folder_points_at_the_referring_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("folder")).expect("mkdir");
    let workflow = "name: t\nsteps:\n  - id: r\n    type: render\n    template: folder\n";
    std::fs::write(dir.path().join("wf.yaml"), workflow).expect("write");
    let output = runner_bounded(dir.path(), &["validate", "--output", "json", "wf.yaml"]);
    assert_eq!(code(&output), 65);
    let found = json_diagnostics(&output);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0]["file"].as_str(), found[0]["line"].as_u64()), (Some("wf.yaml"), Some(5)));
    assert!(found[0]["message"].as_str().unwrap_or_default().contains("directory"), "{found:?}");
}

#[test]
fn input_from_a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().expect("tempdir");
    mkfifo(&dir.path().join("pipe"));
    let workflow = "name: t\ninputs:\n  who: {type: string}\nsteps:\n  - id: a\n    type: set\n    values: {x: \"{{ inputs.who }}\"}\n";
    std::fs::write(dir.path().join("wf.yaml"), workflow).expect("write");
    let output = runner_bounded(dir.path(), &["run", "wf.yaml", "--input", "who=@pipe"]);
    assert_eq!(code(&output), 64, "{}", stderr(&output));
    assert!(stderr(&output).contains("FIFO"), "{}", stderr(&output));
}

#[test]
fn render_vars_from_a_device_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("t.md"), "hi {{ who }}\n").expect("write");
    let output = runner_bounded(dir.path(), &["render", "t.md", "--vars", "/dev/zero", "--set", "who=x"]);
    assert_eq!(code(&output), 65, "{}{}", stdout(&output), stderr(&output));
    let text = stdout(&output) + &stderr(&output);
    assert!(text.contains("/dev/zero") && text.contains("character device"), "{text}");
}

#[test]
fn a_directory_on_the_command_line_of_run_is_named_without_a_zero_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("folder")).expect("mkdir");
    let output = runner_in(dir.path(), &["run", "folder"]);
    assert_ne!(code(&output), 0);
    let text = stdout(&output) + &stderr(&output);
    assert!(text.contains("directory") && !text.contains(":0:0"), "{text}");
}

fn render_all_with_out(out: &str) -> (tempfile::TempDir, std::process::Output) {
    let dir = tempfile::tempdir().expect("tempdir");
    let prompts = dir.path().join("prompts");
    std::fs::create_dir(&prompts).expect("mkdir");
    std::fs::write(prompts.join("a.md"), "hello {{ who }}\n").expect("write");
    std::fs::write(
        prompts.join("prompts.yaml"),
        format!("kind: prompts\nvars:\n  who: x\nprompts:\n  - template: a.md\n    out: \"{out}\"\n"),
    )
    .expect("write");
    let output = runner_bounded(
        dir.path(),
        &["render", "--all", "--manifest", "prompts/prompts.yaml", "--out-dir", "rendered"],
    );
    (dir, output)
}

#[test]
fn render_all_never_writes_outside_the_out_dir() {
    for out in ["../../escaped.md", "/tmp/runner-escape-test.md", "{{ '..' }}/escaped.md", ".."] {
        let (dir, output) = render_all_with_out(out);
        assert_eq!(code(&output), 65, "{out}: {}{}", stdout(&output), stderr(&output));
        let text = stderr(&output);
        assert!(
            text.contains("prompts/prompts.yaml:6:") && text.contains("outside --out-dir"),
            "{out}: {text}"
        );
        assert!(!dir.path().join("escaped.md").exists(), "{out}");
        assert!(!Path::new("/tmp/runner-escape-test.md").exists(), "{out}");
    }
    let (dir, output) = render_all_with_out("sub/ok.md");
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(dir.path().join("rendered/sub/ok.md").is_file());
}

fn validate_one(workflow: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("wf.yaml"), workflow).expect("write");
    let output = runner_bounded(dir.path(), &["validate", "--output", "json", "wf.yaml"]);
    json_diagnostics(&output)
}

#[test]
fn impossible_fail_exit_codes_are_rejected_at_validate() {
    for (code_text, expected) in [
        (".nan", "exit code .nan is not a whole number"),
        ("-.inf", "exit code -.inf is not a whole number"),
        ("1e999999", "exit code 1e999999 is not a whole number"),
        ("\"70\"", "exit code \"70\" is not a whole number"),
        ("99999999999999999999", "exit code 99999999999999999999 is outside 1–63"),
        ("2.5", "exit code 2.5 is not a whole number"),
    ] {
        let found = validate_one(&format!(
            "name: t\nsteps:\n  - id: f\n    type: fail\n    message: no\n    exit_code: {code_text}\n"
        ));
        assert_eq!(found.len(), 1, "{code_text}: {found:?}");
        assert_eq!(
            (found[0]["line"].as_u64(), found[0]["column"].as_u64()),
            (Some(6), Some(16)),
            "{code_text}"
        );
        let message = found[0]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(expected), "{code_text}: {message}");
    }
}

#[test]
fn unknown_filters_and_tests_fail_validate_not_the_run() {
    let found = validate_one(
        "name: t\nsteps:\n  - id: a\n    type: set\n    when: \"1 | lenght > 0\"\n    values:\n      x: \"{{ 'a' | uper }}{% if 1 is od %}y{% endif %}\"\n",
    );
    let got: Vec<(u64, u64, &str)> = found
        .iter()
        .map(|d| {
            (
                d["line"].as_u64().unwrap_or(0),
                d["column"].as_u64().unwrap_or(0),
                d["message"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (5, 16, "unknown filter `lenght`"),
            (7, 20, "unknown filter `uper`"),
            (7, 38, "unknown test `od`")
        ],
        "{found:?}"
    );
    assert_eq!(found[1]["hint"], "did you mean `upper`?");
}

#[test]
fn numbers_are_reported_as_written() {
    let found = validate_one(
        "name: t\nsteps:\n  - id: a\n    type: exec\n    argv: [echo]\n    retry:\n      attempts: 99999999999999999999\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    let message = found[0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("99999999999999999999") && !message.contains("e+20"), "{message}");
}

#[test]
fn a_wrong_kind_of_value_for_an_enum_reads_as_one_list() {
    let found = validate_one(
        "name: t\ninputs:\n  x: {type: 5}\nsteps:\n  - id: a\n    type: set\n    values: {x: 1}\n",
    );
    let message = found.first().and_then(|d| d["message"].as_str()).unwrap_or_default();
    assert_eq!(
        message,
        "`type`: expected one of `string`, `integer`, `number`, `boolean`, `list`, `map` or `lane`, found the number `5`"
    );
}

#[test]
fn validate_problems_go_to_stderr_and_stdout_keeps_the_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bad.yaml"), "name: t\nsteps: []\n").expect("write");
    std::fs::write(
        dir.path().join("good.yaml"),
        "name: t\nsteps:\n  - id: a\n    type: set\n    values: {x: 1}\n",
    )
    .expect("write");
    let bad = runner_bounded(dir.path(), &["validate", "bad.yaml"]);
    assert_eq!(code(&bad), 65);
    assert_eq!(stdout(&bad), "");
    assert!(
        stderr(&bad).contains("bad.yaml:2:") && stderr(&bad).contains("error: 1 problem"),
        "{}",
        stderr(&bad)
    );
    let good = runner_bounded(dir.path(), &["validate", "good.yaml"]);
    assert_eq!((code(&good), stdout(&good).as_str(), stderr(&good).as_str()), (0, "ok: 1 file valid\n", ""));
}

#[test]
fn a_deeply_nested_template_value_fails_the_step_instead_of_aborting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workflow = "name: deep\nsteps:\n  - id: a\n    type: set\n    values:\n      v: \"{% set ns = namespace(v=1) %}{% for i in range(300) %}{% set ns.v = [ns.v] %}{% endfor %}{{ ns.v }}\"\n";
    std::fs::write(dir.path().join("wf.yaml"), workflow).expect("write");
    let output = runner_bounded(dir.path(), &["run", "wf.yaml"]);
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert!(stderr(&output).contains("value nested deeper than 256 levels"), "{}", stderr(&output));
}

#[test]
fn validate_refuses_a_manifest_out_that_escapes() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a.md"), "hello\n").expect("write");
    std::fs::write(
        dir.path().join("prompts.yaml"),
        "kind: prompts\nprompts:\n  - template: a.md\n    out: \"{{ '..' }}/x.md\"\n",
    )
    .expect("write");
    let output = runner_bounded(dir.path(), &["validate", "--output", "json", "prompts.yaml"]);
    let found = json_diagnostics(&output);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0]["line"].as_u64(), found[0]["code"].as_str()), (Some(4), Some("out-path")));
}
