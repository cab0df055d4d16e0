//! The integration tests: every test drives the real `runner` binary.
//! Snapshots redact temporary paths; validate output has no durations or times.

// A test fails by panicking; helpers here are test code too.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
// Test-crate helpers (tests/fake) are `pub` for their sibling modules; the library itself
// denies unreachable `pub` (Cargo.toml).
#![allow(unreachable_pub)]

mod engine;
mod fake;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

/// The crate root; tests run with it as the working directory.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `runner ARGS...` run in `dir`.
fn runner_in(dir: &Path, args: &[&str]) -> Output {
    let mut command = assert_cmd::cargo::cargo_bin_cmd!("runner");
    command
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env("RUNNER_STATE_DIR", test_state_dir())
        .env("RUNNER_CACHE_DIR", test_state_dir().join("cache"));
    command.output().expect("runner runs")
}

/// `runner ARGS...` in `dir` with its own state folder, killed after `limit` so a hang
/// fails the test instead of blocking the suite.
fn runner_bounded(dir: &Path, args: &[&str], limit: std::time::Duration) -> Output {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("runner"))
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .env("RUNNER_STATE_DIR", dir.join("state"))
        .env("RUNNER_CACHE_DIR", dir.join("cache"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runner starts");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("runner {args:?} still running after {} s", limit.as_secs());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// The state directory (locks, run history; `cache/` for validate's result cache) of
/// runs started by tests without one of their own: under cargo's scratch folder for
/// tests, never the user's own state or cache.
fn test_state_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("state")
}

/// `runner ARGS...` run in the crate root.
fn runner(args: &[&str]) -> Output {
    runner_in(&root(), args)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

/// Replace a temporary directory's path with `[TMP]`.
fn redact(text: &str, dir: &Path) -> String {
    text.replace(&dir.display().to_string(), "[TMP]")
}

fn shipped_yaml() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["workflows", "cron-prompts", "examples"] {
        let mut pending = vec![root().join(dir)];
        while let Some(current) = pending.pop() {
            for entry in std::fs::read_dir(&current).expect("read dir").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                    files.push(path);
                }
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "there are shipped files");
    files
}

fn kind_of(value: &Value) -> &str {
    value.get("kind").and_then(Value::as_str).unwrap_or("workflow")
}

fn committed_validator(kind: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("schemas").join(format!("{kind}.schema.json")))
        .unwrap_or_else(|e| panic!("schemas/{kind}.schema.json: {e}"));
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    runner::support::compile_schema(&schema).expect("committed schema compiles")
}

fn yaml_value(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    runner::support::parse_yaml(&text).ok().map(|d| d.value)
}

// ---------------------------------------------------------------------------
// validate

#[test]
fn every_shipped_file_validates() {
    let output = runner(&["validate"]);
    assert_eq!(code(&output), 0, "stdout:\n{}\nstderr:\n{}", stdout(&output), stderr(&output));
    assert!(stdout(&output).starts_with("ok: "), "{}", stdout(&output));
}

#[test]
fn committed_schemas_match_the_types() {
    for kind in ["workflow", "lanes", "prompts", "test", "lifecycle", "roles"] {
        let generated = stdout(&runner(&["schema", kind]));
        let committed = std::fs::read_to_string(root().join("schemas").join(format!("{kind}.schema.json")))
            .unwrap_or_default();
        assert!(
            generated == committed,
            "schemas/{kind}.schema.json is out of date with the Rust types; regenerate with:\n    cargo run -- schema --write schemas"
        );
    }
}

#[test]
fn committed_schemas_accept_every_shipped_file() {
    for path in shipped_yaml() {
        let value = yaml_value(&path).unwrap_or_else(|| panic!("{} parses", path.display()));
        // A layer that `extends` a base meets the schema's overlay variant.
        let validator = committed_validator(kind_of(&value));
        let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    }
}

/// One line of tests/invalid/EXPECTED.
struct Expected {
    path: String,
    line: usize,
    column: usize,
    code: String,
    file: Option<String>,
}

fn expected_corpus() -> Vec<Expected> {
    let text =
        std::fs::read_to_string(root().join("tests/invalid/EXPECTED")).expect("tests/invalid/EXPECTED");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let (l, c) = parts[1].split_once(':').expect("line:col");
            Expected {
                path: parts[0].to_string(),
                line: l.parse().expect("line"),
                column: c.parse().expect("column"),
                code: parts[2].to_string(),
                file: parts.get(3).map(|s| s.to_string()),
            }
        })
        .collect()
}

#[test]
fn invalid_corpus_reports_exact_positions() {
    let corpus = expected_corpus();
    assert!(corpus.len() >= 30, "the corpus has at least 30 files, found {}", corpus.len());
    // Every corpus file is listed (and nothing listed is missing).
    let mut listed: Vec<&str> = corpus.iter().map(|e| e.path.as_str()).collect();
    listed.sort();
    let mut on_disk = Vec::new();
    for dir in ["yaml", "schema", "meaning", "lifecycle"] {
        for entry in std::fs::read_dir(root().join("tests/invalid").join(dir)).expect("dir").flatten() {
            if entry.path().is_file() {
                on_disk.push(format!("tests/invalid/{dir}/{}", entry.file_name().to_string_lossy()));
            } else if entry.path().join("prompts.yaml").is_file() {
                on_disk.push(format!(
                    "tests/invalid/{dir}/{}/prompts.yaml",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    on_disk.sort();
    assert_eq!(
        listed,
        on_disk.iter().map(String::as_str).collect::<Vec<_>>(),
        "EXPECTED lists every corpus file"
    );

    for expected in &corpus {
        let output = runner(&["validate", "--output", "json", &expected.path]);
        assert_eq!(code(&output), 65, "{}: exit code; stderr: {}", expected.path, stderr(&output));
        let diagnostics: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{}: JSON output: {e}", expected.path));
        let first = &diagnostics[0];
        let got = (
            first["line"].as_u64().unwrap_or(0) as usize,
            first["column"].as_u64().unwrap_or(0) as usize,
            first["code"].as_str().unwrap_or_default(),
        );
        assert_eq!(
            got,
            (expected.line, expected.column, expected.code.as_str()),
            "{}: first diagnostic {first}",
            expected.path
        );
        let file = expected.file.as_deref().unwrap_or(&expected.path);
        assert_eq!(first["file"].as_str(), Some(file), "{}", expected.path);
        assert!(!first["message"].as_str().unwrap_or_default().is_empty());
    }
}

#[test]
fn invalid_corpus_snapshots() {
    for expected in expected_corpus() {
        let output = runner(&["validate", &expected.path]);
        let name = expected.path.trim_start_matches("tests/invalid/").replace(['/', '.'], "_");
        // Problems are on stderr; stdout stays empty when there are any.
        assert_eq!(stdout(&output), "", "{}", expected.path);
        insta::assert_snapshot!(name, stderr(&output));
    }
}

#[test]
fn committed_schemas_reject_the_schema_corpus_and_accept_the_meaning_corpus() {
    for expected in expected_corpus() {
        let Some(value) = yaml_value(&root().join(&expected.path)) else { continue };
        if !value.is_object() {
            continue;
        }
        let kind = kind_of(&value);
        // A layer that `extends` a base is checked by the schema's overlay variant.
        if !["workflow", "lanes", "prompts", "test", "lifecycle", "roles", "schedule"].contains(&kind) {
            continue;
        }
        let valid = committed_validator(kind).is_valid(&value);
        if expected.path.starts_with("tests/invalid/schema/") {
            assert!(!valid, "{}: the committed schema should reject it", expected.path);
        } else if expected.path.starts_with("tests/invalid/meaning/")
            || expected.path.starts_with("tests/invalid/lifecycle/")
        {
            assert!(valid, "{}: only the meaning checks should reject it", expected.path);
        }
    }
}

#[test]
fn a_five_megabyte_file_is_read_and_its_error_located() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::from("name: big\nsteps:\n");
    let mut lines = 2;
    while text.len() < 5 * 1024 * 1024 {
        text.push_str(&format!(
            "  - id: s{lines}\n    type: set\n    values: {{x: \"{}\"}}\n",
            "y".repeat(60)
        ));
        lines += 3;
    }
    text.push_str("  - type: exec\n    argv: [echo]\n    timout: 5s\n");
    let path = dir.path().join("big.yaml");
    std::fs::write(&path, &text).expect("write");
    let output = runner(&["validate", "--output", "json", path.to_str().expect("utf8")]);
    assert_eq!(code(&output), 65);
    let diagnostics: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(diagnostics.as_array().map(Vec::len), Some(1), "{diagnostics}");
    assert_eq!(diagnostics[0]["line"], lines + 3);
    assert_eq!(diagnostics[0]["column"], 5);
    assert_eq!(diagnostics[0]["code"], "unknown-field");
}

#[test]
fn a_file_over_the_size_limit_is_refused_not_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("huge.yaml");
    std::fs::write(&path, vec![b'#'; 9 * 1024 * 1024]).expect("write");
    let output = runner(&["validate", path.to_str().expect("utf8")]);
    assert_eq!(code(&output), 65);
    assert!(stderr(&output).contains("runner reads files up to"), "{}", stderr(&output));
}

#[test]
fn all_problems_of_all_files_are_reported_in_one_pass() {
    let output = runner(&[
        "validate",
        "--output",
        "json",
        "tests/invalid/schema",
        "tests/invalid/meaning",
        "tests/invalid/lifecycle",
    ]);
    assert_eq!(code(&output), 65);
    let diagnostics: Value = serde_json::from_slice(&output.stdout).expect("json");
    let files: std::collections::BTreeSet<&str> =
        diagnostics.as_array().expect("array").iter().filter_map(|d| d["file"].as_str()).collect();
    let listed = expected_corpus().iter().filter(|e| !e.path.starts_with("tests/invalid/yaml/")).count();
    assert!(files.len() >= listed, "{} files with problems, {listed} expected", files.len());
}

#[test]
fn a_missing_path_exits_66() {
    let output = runner(&["validate", "no/such/file.yaml"]);
    assert_eq!(code(&output), 66);
    assert!(stderr(&output).contains("no such file or directory: no/such/file.yaml"));
}

#[test]
fn validate_json_output_has_the_documented_fields() {
    let output = runner(&["validate", "--output", "json", "tests/invalid/schema"]);
    let diagnostics: Value = serde_json::from_slice(&output.stdout).expect("json");
    let first = &diagnostics[0];
    for field in ["file", "line", "column", "code", "message", "hint"] {
        assert!(first.get(field).is_some(), "field {field} in {first}");
    }
    let clean = runner(&["validate", "--output", "json", "examples"]);
    assert_eq!(code(&clean), 0);
    assert_eq!(stdout(&clean).trim(), "[]");
}

#[test]
fn usage_errors_exit_64() {
    assert_eq!(code(&runner(&["validate", "--output", "xml"])), 64);
    assert_eq!(code(&runner(&["no-such-command"])), 64);
    assert_eq!(code(&runner(&["--help"])), 0);
}

// ---------------------------------------------------------------------------
// schema

#[test]
fn schema_prints_each_kind_and_rejects_unknown_ones() {
    for kind in ["workflow", "lanes", "prompts", "test", "lifecycle", "roles"] {
        let output = runner(&["schema", kind]);
        assert_eq!(code(&output), 0);
        let schema: Value = serde_json::from_slice(&output.stdout).expect("schema is JSON");
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert!(schema["description"].as_str().is_some_and(|d| !d.is_empty()));
    }
    let output = runner(&["schema", "workflo"]);
    assert_eq!(code(&output), 64);
    assert!(stderr(&output).contains("unknown file kind `workflo`"));
}

// ---------------------------------------------------------------------------
// render

fn lane_ids() -> Vec<String> {
    let value = yaml_value(&root().join("workflows/lanes.yaml")).expect("lanes.yaml");
    value["lanes"]
        .as_array()
        .expect("lanes")
        .iter()
        .map(|l| l["id"].as_str().expect("id").to_string())
        .collect()
}

#[test]
fn every_prompt_renders_for_every_lane() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("rendered");
    let output = runner(&["render", "--all", "--out-dir", out_dir.to_str().expect("utf8")]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let lanes = yaml_value(&root().join("workflows/lanes.yaml")).expect("lanes.yaml");
    for lane in lanes["lanes"].as_array().expect("lanes") {
        let id = lane["id"].as_str().expect("id");
        let text = std::fs::read_to_string(out_dir.join(format!("{id}-worker.md"))).expect("lane prompt");
        assert!(text.contains(lane["agent"].as_str().expect("agent")), "{id}: agent name");
        assert!(text.contains(lane["terminal"]["clear"].as_str().expect("clear")), "{id}: clear text");
        assert!(text.contains("${#"), "{id}: shell snippets survive rendering");
        assert!(!text.contains("{{"), "{id}: nothing left unrendered");
        assert!(text.ends_with('\n'));
    }
    for name in ["daily-pr-review.md", "weekly-audit.md", "nightly-audit-decomposer.md"] {
        let text = std::fs::read_to_string(out_dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!text.trim().is_empty() && !text.contains("{{"), "{name}");
    }
    // Each lane also renders on its own, to stdout.
    for id in lane_ids() {
        let single = runner(&["render", "cron-prompts/worker.md", "--lane", &id]);
        assert_eq!(code(&single), 0, "{id}: {}", stderr(&single));
        let from_all = std::fs::read_to_string(out_dir.join(format!("{id}-worker.md"))).expect("file");
        assert_eq!(stdout(&single), from_all, "{id}: single render equals --all");
    }
}

#[test]
fn render_check_detects_a_one_character_drift() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("rendered");
    let out = out_dir.to_str().expect("utf8");
    assert_eq!(code(&runner(&["render", "--all", "--out-dir", out])), 0);
    let clean = runner(&["render", "--all", "--out-dir", out, "--check"]);
    assert_eq!(code(&clean), 0, "{}", stdout(&clean));

    let target = out_dir.join("cloud-worker.md");
    let text = std::fs::read_to_string(&target).expect("read");
    let changed = text.replacen("Cloud lane is clear.", "Cloud lane is clear!", 1);
    assert_ne!(text, changed);
    std::fs::write(&target, changed).expect("write");
    let drift = runner(&["render", "--all", "--out-dir", out, "--check"]);
    assert_eq!(code(&drift), 1);
    let report = redact(&stdout(&drift), dir.path());
    assert!(report.contains("drift: [TMP]/rendered/cloud-worker.md differs"), "{report}");
    assert!(report.contains("-") && report.contains("+"), "{report}");
    assert!(report.contains("Cloud lane is clear!") && report.contains("Cloud lane is clear."), "{report}");
    assert!(!report.contains("local-worker.md"), "only the drifted file is listed: {report}");
    // --check never writes.
    assert!(std::fs::read_to_string(&target).expect("read").contains("clear!"));
}

#[test]
fn undefined_placeholders_name_the_line_and_what_is_available() {
    let dir = tempfile::tempdir().expect("tempdir");
    let template = dir.path().join("t.md");
    std::fs::write(&template, "Hello\n{{ who }} and {{ lane_nme }}\n").expect("write");
    let output =
        runner(&["render", template.to_str().expect("utf8"), "--set", "who=me", "--set", "lane_name=x"]);
    assert_eq!(code(&output), 65);
    let text = redact(&stderr(&output), dir.path());
    assert!(text.contains("[TMP]/t.md:2:18"), "{text}");
    assert!(text.contains("undefined placeholder `lane_nme`; available: who, lane_name"), "{text}");
    assert!(text.contains("did you mean `lane_name`?"), "{text}");
    assert!(stdout(&output).is_empty(), "nothing is rendered");
}

#[test]
fn render_values_come_from_vars_files_set_and_named_env() {
    let dir = tempfile::tempdir().expect("tempdir");
    let template = dir.path().join("t.md");
    std::fs::write(&template, "{{ a }} {{ b }} {{ c | join(',') }} {{ HOME_DIR }}\n").expect("write");
    let vars = dir.path().join("vars.yaml");
    std::fs::write(&vars, "a: from-file\nb: no\nc: [x, y]\n").expect("write");
    let mut command = assert_cmd::cargo::cargo_bin_cmd!("runner");
    command.current_dir(root()).env("HOME_DIR", "/home/x").args([
        "render",
        template.to_str().expect("utf8"),
        "--vars",
        vars.to_str().expect("utf8"),
        "--set",
        "a=from-set",
        "--env",
        "HOME_DIR",
    ]);
    let output = command.output().expect("runs");
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "from-set no x,y /home/x\n");
    // Env is used only when named.
    let unnamed =
        runner(&["render", template.to_str().expect("utf8"), "--vars", vars.to_str().expect("utf8")]);
    assert_eq!(code(&unnamed), 65);
}

#[test]
fn render_list_prints_the_placeholders() {
    let output = runner(&["render", "cron-prompts/worker.md", "--list"]);
    assert_eq!(code(&output), 0);
    let names = stdout(&output);
    assert!(names.lines().any(|l| l == "lane.agent"), "{names}");
    assert!(names.lines().any(|l| l == "workflow_dir"), "{names}");
}

#[test]
fn includes_stay_under_the_templates_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("prompts/parts")).expect("mkdir");
    std::fs::write(dir.path().join("secret.md"), "outside\n").expect("write");
    std::fs::write(dir.path().join("prompts/parts/footer.md"), "footer {{ x }}\n").expect("write");
    std::fs::write(dir.path().join("prompts/ok.md"), "{% include 'parts/footer.md' %}").expect("write");
    std::fs::write(dir.path().join("prompts/bad.md"), "{% include '../secret.md' %}").expect("write");
    let ok = runner(&["render", dir.path().join("prompts/ok.md").to_str().expect("utf8"), "--set", "x=1"]);
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    assert_eq!(stdout(&ok), "footer 1\n");
    let bad = runner(&["render", dir.path().join("prompts/bad.md").to_str().expect("utf8")]);
    assert_eq!(code(&bad), 65);
    assert!(!stdout(&bad).contains("outside"));
    assert!(
        stderr(&bad).contains("templates may include only files under their own directory"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn render_errors_for_unknown_lane_and_missing_template() {
    let unknown = runner(&["render", "cron-prompts/worker.md", "--lane", "locl"]);
    assert_eq!(code(&unknown), 64);
    assert!(stderr(&unknown).contains("did you mean `local`?"), "{}", stderr(&unknown));
    let missing = runner(&["render", "cron-prompts/nope.md"]);
    assert_eq!(code(&missing), 66);
    let no_lane = runner(&["render", "cron-prompts/worker.md"]);
    assert_eq!(code(&no_lane), 65);
    assert!(stderr(&no_lane).contains("pass `--lane ID`"), "{}", stderr(&no_lane));
}

#[test]
fn render_out_writes_atomically_and_check_compares() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("local.md");
    let out_str = out.to_str().expect("utf8");
    assert_eq!(code(&runner(&["render", "cron-prompts/worker.md", "--lane", "local", "--out", out_str])), 0);
    assert!(std::fs::read_to_string(&out).expect("written").contains("saffron-local"));
    let same = runner(&["render", "cron-prompts/worker.md", "--lane", "local", "--out", out_str, "--check"]);
    assert_eq!(code(&same), 0);
    let other = runner(&["render", "cron-prompts/worker.md", "--lane", "cloud", "--out", out_str, "--check"]);
    assert_eq!(code(&other), 1);
}

// ---------------------------------------------------------------------------
// README

#[test]
fn the_readme_workflow_example_validates() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let start = readme.find("### Workflow\n\n```yaml\n").expect("workflow example")
        + "### Workflow\n\n```yaml\n".len();
    let end = start + readme[start..].find("```").expect("end of example");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("wf")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("cron-prompts")).expect("mkdir");
    std::fs::write(dir.path().join("wf/probe.yaml"), &readme[start..end]).expect("write");
    std::fs::copy(root().join("workflows/lanes.yaml"), dir.path().join("wf/lanes.yaml")).expect("copy");
    std::fs::copy(root().join("cron-prompts/worker.md"), dir.path().join("cron-prompts/worker.md"))
        .expect("copy");
    let output = runner_in(dir.path(), &["validate", "wf/probe.yaml"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
}

// ---------------------------------------------------------------------------
// The shipped Dispatch workflows

#[test]
fn the_shipped_workflow_tests_pass() {
    assert_tests_pass("workflows", 30);
}

/// `runner test DIR` passes at least `minimum` cases and fails none.
fn assert_tests_pass(dir: &str, minimum: usize) {
    let output = runner(&["test", dir]);
    let text = stdout(&output);
    assert_eq!(code(&output), 0, "{text}{}", stderr(&output));
    let last = text.lines().last().unwrap_or_default().to_string();
    let passed: usize = last.split(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(passed >= minimum, "{last}");
    assert!(last.ends_with(" passed, 0 failed"), "{last}");
}

// ---------------------------------------------------------------------------
// roles and graph

#[test]
fn roles_select_explains_its_choice() {
    let roles = "tests/invalid/lifecycle/support/roles.yaml";
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("roles.yaml");
    std::fs::write(
        &file,
        "kind: roles\nroles:\n  architect:\n    levels: {sonnet: anthropic/claude-sonnet-4-5, opus: {model: anthropic/claude-opus-4-6, max_workers: 1}}\n    default_level: sonnet\n    completion: {done: COMPLETE, blocked: BLOCKED}\n    level_selection:\n      inherit: true\n      rules:\n        - {name: complex, level: opus, keywords: [redesign, migration, database schema]}\n        - {name: long, level: opus, min_words: 300, fields: [body]}\n",
    )
    .expect("write");
    let file = file.to_str().expect("utf8");
    let select = |args: &[&str]| {
        let mut all = vec!["roles", "select", "--roles", file, "--role", "architect", "-o", "json"];
        all.extend_from_slice(args);
        let output = runner(&all);
        assert_eq!(code(&output), 0, "{}", stderr(&output));
        serde_json::from_slice::<Value>(&output.stdout).expect("json")
    };
    let hit = select(&["--title", "Redesign the Database Schema"]);
    assert_eq!(
        (hit["level"].as_str(), hit["model"].as_str()),
        (Some("opus"), Some("anthropic/claude-opus-4-6"))
    );
    assert_eq!(hit["rule"], "rule complex");
    // Whole words only: "architecture" is not "architect", "migrations" is not "migration".
    assert_eq!(select(&["--title", "Document the migrations folder"])["rule"], "default");
    assert_eq!(select(&["--title", "Redesign", "--labels", "architect:sonnet"])["rule"], "label");
    let inherited = select(&["--title", "x", "--labels", "bug,developer:opus"]);
    assert_eq!((inherited["level"].as_str(), inherited["rule"].as_str()), (Some("opus"), Some("inherited")));
    let body = dir.path().join("body.md");
    std::fs::write(&body, "word ".repeat(301)).expect("write");
    assert_eq!(select(&["--title", "x", "--body-file", body.to_str().expect("utf8")])["rule"], "rule long");
    let human = runner(&["roles", "select", "--roles", file, "--role", "architect", "--title", "small fix"]);
    assert_eq!(
        stdout(&human),
        "level: sonnet\nmodel: anthropic/claude-sonnet-4-5\nrule:  default (no label or rule decided)\n"
    );
    let unknown = runner(&["roles", "select", "--roles", roles, "--role", "developr", "--title", "x"]);
    assert_eq!(code(&unknown), 64);
    assert!(stderr(&unknown).contains("did you mean `developer`?"));
}

#[test]
fn graph_draws_lifecycles_and_workflows() {
    let lifecycle = runner(&["graph", "tests/invalid/lifecycle/support/lifecycle.yaml"]);
    assert_eq!(code(&lifecycle), 0, "{}", stderr(&lifecycle));
    insta::assert_snapshot!("graph_lifecycle", stdout(&lifecycle));
    let workflow = runner(&["graph", "examples/hello.yaml"]);
    assert_eq!(code(&workflow), 0);
    let text = stdout(&workflow);
    assert!(text.starts_with("flowchart TD\n"), "{text}");
    assert!(
        text.contains("remark (switch)") && text.contains("for each vars.colours, 2 at a time"),
        "{text}"
    );
    let invalid = runner(&["graph", "tests/invalid/lifecycle/01-initial-missing.yaml"]);
    assert_eq!(code(&invalid), 65);
    assert_eq!(code(&runner(&["graph", "workflows/lanes.yaml"])), 64);
}

#[test]
fn the_devclaw_example_tests_pass() {
    assert_tests_pass("examples/devclaw", 12);
}

#[test]
fn the_readme_shows_the_shipped_lifecycle_diagram() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let diagram = stdout(&runner(&["graph", "workflows/lifecycle.yaml"]));
    assert!(
        readme.contains(&diagram),
        "README's diagram is out of date; paste `runner graph workflows/lifecycle.yaml`"
    );
}

#[test]
fn the_readme_roles_example_is_true() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let output = runner(&[
        "roles",
        "select",
        "--roles",
        "examples/devclaw/roles.yaml",
        "--role",
        "architect",
        "--title",
        "Redesign the database schema",
    ]);
    assert!(
        readme.contains(&stdout(&output)),
        "README's roles select example is out of date:\n{}",
        stdout(&output)
    );
}
