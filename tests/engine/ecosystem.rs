//! Fitting the ecosystem: diagrams Mermaid's own parser accepts, schemas that
//! third-party validators accept, CLI conventions (completions, man page, list,
//! workflow help, CI output formats).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{code, root, runner, shipped_yaml, stderr, stdout};

/// Run `command` to completion, killing it after `limit`.
fn output_within(mut command: Command, limit: Duration) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).expect("read stdout"),
        stderr: std::fs::read(&err_path).expect("read stderr"),
    }
}

/// Whether `node` runs on this machine.
fn node_available() -> bool {
    Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Mermaid parser check needs Node and `npm ci` in tests/mermaid (done by .ci/run).
fn mermaid_parser() -> Option<PathBuf> {
    if !node_available() {
        eprintln!(
            "SKIPPED: Mermaid's parser needs `node`, which is not on this machine; \
             the grammar-level unit test (src/mermaid.rs) still ran"
        );
        return None;
    }
    let dir = root().join("tests/mermaid");
    assert!(
        dir.join("node_modules/mermaid").is_dir(),
        "node is installed but Mermaid is not: run `npm ci --prefix tests/mermaid` (as .ci/run does)"
    );
    Some(dir.join("parse.mjs"))
}

fn parse_with_mermaid(script: &Path, files: &[PathBuf]) -> Output {
    let mut command = Command::new("node");
    command.arg(script).args(files);
    output_within(command, Duration::from_secs(120))
}

#[test]
fn every_shipped_graph_parses_with_mermaid() {
    let Some(script) = mermaid_parser() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut diagrams = Vec::new();
    for file in shipped_yaml() {
        let relative = file.strip_prefix(root()).unwrap_or(&file).display().to_string();
        let output = runner(&["graph", &relative]);
        match code(&output) {
            0 => {
                let path = dir.path().join(format!("{}.mmd", relative.replace('/', "_")));
                std::fs::write(&path, stdout(&output)).expect("write diagram");
                diagrams.push(path);
            }
            64 => {} // not a workflow or lifecycle (lanes, prompts, tests)
            other => panic!("runner graph {relative}: exit {other}\n{}", stderr(&output)),
        }
    }
    assert!(diagrams.len() >= 12, "only {} diagrams", diagrams.len());
    let output = parse_with_mermaid(&script, &diagrams);
    let report = stdout(&output);
    assert!(output.status.success(), "{report}{}", stderr(&output));
    assert_eq!(report.lines().filter(|l| l.starts_with("ok ")).count(), diagrams.len(), "{report}");
}

#[test]
fn graph_labels_with_every_delimiter_parse_with_mermaid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workflow = dir.path().join("nasty.yaml");
    std::fs::write(
        &workflow,
        r#"name: 'quotes " and `ticks` | pipes; #hash <b>'
inputs:
  x: {type: string, default: "a"}
steps:
  - id: pick
    type: switch
    cases:
      - when: "(inputs.x | upper) == '\"A\"; #b: `c` <d>'"
        steps:
          - {id: said, type: emit, text: "x"}
  - id: each
    type: for_each
    items: "[1, 2] | list"
    steps:
      - {id: inner, type: emit, text: "{{ item }}", when: "item > 1 and '|' in 'a|b'"}
"#,
    )
    .expect("write");
    let output = runner(&["graph", workflow.to_str().expect("utf8")]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let diagram = stdout(&output);
    assert!(diagram.contains("#quot;A#quot;#59; #35;b#58; #96;c#96; #lt;d#gt;"), "{diagram}");
    let Some(script) = mermaid_parser() else { return };
    let path = dir.path().join("nasty.mmd");
    std::fs::write(&path, &diagram).expect("write");
    let parsed = parse_with_mermaid(&script, &[path]);
    assert!(parsed.status.success(), "{}\n{diagram}", stdout(&parsed));
}

// ---------------------------------------------------------------------------
// CLI conventions

#[test]
fn no_arguments_is_a_usage_error_with_the_usage() {
    let output = runner(&[]);
    assert_eq!(code(&output), 64);
    assert!(stderr(&output).contains("Usage: runner <COMMAND>"), "{}", stderr(&output));
    assert!(stdout(&output).is_empty());
}

/// `runner ARGS...` with a fixed help width (clap reads COLUMNS).
fn runner_100_columns(args: &[&str]) -> Output {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin!("runner"));
    command
        .current_dir(root())
        .args(args)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env("RUNNER_CACHE_DIR", crate::test_state_dir().join("cache"));
    output_within(command, Duration::from_secs(60))
}

#[test]
fn help_is_snapshotted_with_examples() {
    let short = runner_100_columns(&["--help"]);
    assert_eq!(code(&short), 0);
    insta::assert_snapshot!("help_long", stdout(&short));
    let run = runner(&["run", "--help"]);
    assert_eq!(code(&run), 0);
    assert!(!stdout(&run).contains("Workflow "), "no file, no workflow help");
}

#[test]
fn run_file_help_shows_the_workflows_inputs_secrets_and_env() {
    let output = runner_100_columns(&["run", "workflows/worker-preflight.yaml", "--help"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let text = stdout(&output);
    let workflow = &text[text.find("Workflow workflows/worker-preflight.yaml").expect("workflow section")..];
    insta::assert_snapshot!("run_file_help", workflow);
    // A file that is not there still gets clap's help, and says so.
    let missing = runner(&["run", "nope.yaml", "-h"]);
    assert_eq!(code(&missing), 0);
    assert!(stderr(&missing).contains("no such workflow: nope.yaml"), "{}", stderr(&missing));
}

#[test]
fn list_shows_workflows_with_descriptions_and_inputs() {
    let output = runner(&["list", "workflows"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    insta::assert_snapshot!("list_workflows", stdout(&output));
    let json = runner(&["list", "examples", "-o", "json"]);
    let items: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    let hello = items
        .as_array()
        .expect("list")
        .iter()
        .find(|i| i["file"] == "examples/hello.yaml")
        .expect("hello listed");
    assert_eq!(hello["inputs"][0]["name"], "who");
    assert_eq!(hello["inputs"][0]["default"], "world");
    // A broken workflow is listed as such, with exit 65.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bad.yaml"), "name: x\nsteps: []\n").expect("write");
    let broken = runner(&["list", dir.path().to_str().expect("utf8")]);
    assert_eq!(code(&broken), 65);
    assert!(stdout(&broken).contains("(invalid: "), "{}", stdout(&broken));
}

#[test]
fn completion_scripts_are_generated_and_bash_parses_them() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let output = runner(&["completions", shell]);
        assert_eq!(code(&output), 0, "{shell}: {}", stderr(&output));
        let script = stdout(&output);
        for word in ["validate", "run", "list", "completions"] {
            assert!(script.contains(word), "{shell} completes {word}");
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("runner.bash");
    std::fs::write(&path, stdout(&runner(&["completions", "bash"]))).expect("write");
    let mut bash = Command::new("bash");
    bash.arg("-n").arg(&path);
    let checked = output_within(bash, Duration::from_secs(30));
    assert!(checked.status.success(), "bash -n: {}", stderr(&checked));
    assert_eq!(code(&runner(&["completions", "tcsh"])), 64);
}

#[test]
fn committed_man_pages_match_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = runner(&["man", "--write", dir.path().to_str().expect("utf8")]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let mut generated: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    generated.sort();
    assert!(generated.contains(&"runner.1".to_string()) && generated.contains(&"runner-run.1".to_string()));
    for name in &generated {
        let fresh = std::fs::read_to_string(dir.path().join(name)).expect("read");
        let committed = std::fs::read_to_string(root().join("man").join(name)).unwrap_or_default();
        assert!(
            fresh == committed,
            "man/{name} is out of date with the command line; regenerate with:\n    cargo run -- man --write man"
        );
    }
    let committed = std::fs::read_dir(root().join("man")).expect("man/").count();
    assert_eq!(committed, generated.len(), "man/ holds a page for a command that is gone");
    let page = stdout(&runner(&["man"]));
    assert!(page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH runner 1"), "{page}");
}

#[test]
fn test_writes_junit_and_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junit = dir.path().join("junit.xml");
    let output = runner(&["test", "examples/devclaw", "--junit", junit.to_str().expect("utf8")]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites "), "{xml}");
    let cases = xml.matches("<testcase ").count();
    assert!(cases >= 12, "{xml}");
    assert!(xml.contains("failures=\"0\""), "{xml}");
    let json = runner(&["test", "examples/devclaw", "--output", "json"]);
    assert_eq!(code(&json), 0);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("one JSON document");
    assert_eq!(value["failed"], 0);
    assert_eq!(value["cases"].as_array().map(Vec::len), Some(cases));
    // A failing case is a <failure> with its mismatch.
    let case_dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        case_dir.path().join("wf.yaml"),
        "name: wf\nsteps:\n  - {id: say, type: emit, text: hi}\noutputs: {said: yes}\n",
    )
    .expect("write");
    std::fs::write(
        case_dir.path().join("wf.test.yaml"),
        "kind: test\nworkflow: wf.yaml\ncases:\n  - name: wrong <output>\n    expect: {outputs: {said: no}}\n",
    )
    .expect("write");
    let failing_xml = case_dir.path().join("out.xml");
    let failing = runner(&[
        "test",
        case_dir.path().to_str().expect("utf8"),
        "--junit",
        failing_xml.to_str().expect("utf8"),
    ]);
    assert_eq!(code(&failing), 1, "{}{}", stdout(&failing), stderr(&failing));
    let xml = std::fs::read_to_string(&failing_xml).expect("written");
    assert!(xml.contains("name=\"wrong &lt;output&gt;\"") && xml.contains("<failure message="), "{xml}");
}

#[test]
fn validate_writes_github_annotations() {
    let output = runner(&[
        "validate",
        "--output",
        "github",
        "tests/invalid/schema/02-unknown-step-field.yaml",
        "tests/invalid/meaning/01-duplicate-step-id.yaml",
    ]);
    assert_eq!(code(&output), 65);
    let text = stdout(&output);
    let annotations: Vec<&str> = text.lines().filter(|l| l.starts_with("::error file=")).collect();
    assert_eq!(annotations.len(), 2, "{text}");
    let expected = "::error file=tests/invalid/schema/02-unknown-step-field.yaml,line=6,col=5,title=runner unknown-field::unknown field `timout`";
    assert!(annotations.iter().any(|l| l.starts_with(expected)), "{text}");
    assert!(annotations.iter().all(|l| l.contains(",line=") && l.contains(",col=")), "{text}");
}

// ---------------------------------------------------------------------------
// human output

/// Durations vary run to run: `12ms`, `1.4s`, `2m03s` become `[T]`.
fn redact_durations(text: &str) -> String {
    let re = regex::Regex::new(r" *\b(\d+m\d\ds|\d+(\.\d)?(ms|s))\b").expect("regex");
    re.replace_all(text, " [T]").into_owned()
}

#[test]
fn human_output_shows_top_level_steps_aligned_with_counts() {
    let output = runner(&["run", "examples/hello.yaml"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    insta::assert_snapshot!("human_hello", redact_durations(&stderr(&output)));
    // Columns: glyph, step id padded to 24, duration right-aligned in 6, result.
    let duration = regex::Regex::new(r"^ *\d+(\.\d)?(ms|s)$").expect("regex");
    for line in stderr(&output).lines().filter(|l| l.starts_with("✓ ") && !l.starts_with("✓ ok")) {
        let chars: Vec<char> = line.chars().collect();
        let column: String = chars.get(27..33).map(|c| c.iter().collect()).unwrap_or_default();
        assert!(duration.is_match(&column), "{line:?}: {column:?}");
    }
    let verbose = runner(&["run", "examples/hello.yaml", "-v"]);
    assert!(stderr(&verbose).contains("colours[0].line"), "{}", stderr(&verbose));
    assert!(!stderr(&output).contains("colours[0].line"), "nested steps only with -v");
}

#[test]
fn human_output_of_a_replayed_heartbeat_is_the_heartbeats_own_lines() {
    let output =
        runner(&["run", "workflows/heartbeat.yaml", "--replay", "workflows/recordings/heartbeat.test.yaml"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let text = redact_durations(&stderr(&output));
    assert!(text.lines().next().is_some_and(|l| l.contains("· replay of workflows/recordings/")), "{text}");
    assert!(text.lines().count() < 45, "{text}");
    insta::assert_snapshot!("human_heartbeat_replay", text);
}

#[test]
fn a_failed_run_is_never_marked_ok_and_dry_runs_say_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("wf.yaml");
    std::fs::write(
        &file,
        "name: wf\nsteps:\n  - {id: try, type: exec, argv: [\"false\"], effect: read, on_error: continue}\n  - {id: write, type: exec, argv: [touch, x]}\n  - {id: out, type: stop, exit_code: 3}\n",
    )
    .expect("write");
    let output = runner(&["run", file.to_str().expect("utf8"), "--dry-run"]);
    assert_eq!(code(&output), 3, "{}", stderr(&output));
    let text = redact_durations(&stderr(&output).replace(&dir.path().display().to_string(), "[TMP]"));
    insta::assert_snapshot!("human_exit_3_dry_run", text);
    let last = text.lines().last().unwrap_or_default();
    assert!(last.starts_with("✗ exit 3"), "{text}");
}

#[test]
fn colour_follows_clicolor_force_no_color_and_term_dumb() {
    let run = |env: &[(&str, &str)]| {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin!("runner"));
        command
            .current_dir(root())
            .args(["validate", "tests/invalid/schema/02-unknown-step-field.yaml"])
            .env("RUNNER_CACHE_DIR", crate::test_state_dir().join("cache"));
        command
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .env_remove("CLICOLOR")
            .env("TERM", "xterm");
        for (key, value) in env {
            command.env(key, value);
        }
        // Problems go to stderr; stdout keeps only the summary of a clean run.
        stderr(&output_within(command, Duration::from_secs(60)))
    };
    assert!(!run(&[]).contains('\x1b'), "a pipe gets no colour");
    assert!(run(&[("CLICOLOR_FORCE", "1")]).contains("\x1b["), "CLICOLOR_FORCE colours a pipe");
    assert!(!run(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]).contains('\x1b'), "NO_COLOR wins");
    let json = {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin!("runner"));
        command
            .current_dir(root())
            .args(["run", "examples/hello.yaml", "-o", "json"])
            .env("RUNNER_STATE_DIR", crate::test_state_dir());
        stdout(&output_within(command, Duration::from_secs(60)))
    };
    for line in json.lines() {
        let event: serde_json::Value = serde_json::from_str(line).expect("json line");
        let time = event["time"].as_str().unwrap_or_default();
        assert!(time.len() == 24 && time.ends_with('Z') && time.contains('T'), "{line}");
    }
}

// ---------------------------------------------------------------------------
// validate at scale

#[test]
fn parallel_validation_reports_a_shared_broken_file_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("callee.yaml"),
        "name: callee\nsteps:\n  - {id: a, type: exec, argv: [echo], timout: 5s}\n",
    )
    .expect("write");
    for i in 0..70 {
        std::fs::write(
            dir.path().join(format!("caller-{i:02}.yaml")),
            "name: caller\nsteps:\n  - {id: c, type: call, workflow: callee.yaml}\n",
        )
        .expect("write");
    }
    let output = runner(&["validate", dir.path().to_str().expect("utf8")]);
    assert_eq!(code(&output), 65);
    let text = stderr(&output);
    assert_eq!(text.matches("unknown field `timout`").count(), 1, "{text}");
    assert!(text.ends_with("(71 files checked)\n"), "{text}");
}
