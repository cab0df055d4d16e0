//! `runner validate`'s result cache: a file found valid is skipped until a file its
//! check read changes; only clean runs write it; templates that may read more than the
//! log sees are never cached; `--no-cache` checks everything.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use super::super::{code, stderr, stdout};
use super::Case;

const CALLER: &str = "name: caller\nsteps:\n  - id: child\n    type: call\n    workflow: child.yaml\n";
const CHILD: &str = "name: child\nsteps:\n  - type: emit\n    text: hi\n";
const BROKEN_CHILD: &str = "name: child\nsteps:\n  - type: emit\n    text: hi\n    timout: 5s\n";

/// `runner validate ARGS...` in the case's folder, with its own cache folder.
fn validate(case: &Case, args: &[&str]) -> Output {
    std::process::Command::new(assert_cmd::cargo::cargo_bin!("runner"))
        .current_dir(case.dir.path())
        .arg("validate")
        .args(args)
        .env("NO_COLOR", "1")
        .env("RUNNER_CACHE_DIR", case.path("cache"))
        .output()
        .expect("runner runs")
}

/// The one cache file of the case's project, if written.
fn cache_file(case: &Case) -> Option<PathBuf> {
    let dir = case.path("cache").join("validate");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).collect();
    assert!(files.len() <= 1, "one cache file per project: {files:?}");
    files.pop()
}

fn entries(case: &Case) -> serde_json::Map<String, Value> {
    let file = cache_file(case).expect("a cache file");
    let cache: Value = serde_json::from_slice(&std::fs::read(file).expect("read")).expect("json");
    cache["entries"].as_object().cloned().expect("entries")
}

fn sha256(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn ok(output: &Output) {
    assert_eq!(code(output), 0, "{}{}", stdout(output), stderr(output));
}

#[test]
fn a_valid_file_is_checked_again_when_a_file_it_calls_changes() {
    let case = Case::new(CALLER);
    case.write("child.yaml", CHILD);
    ok(&validate(&case, &["wf.yaml"]));
    let reads: Vec<String> = entries(&case)["named wf.yaml"]["reads"]
        .as_array()
        .expect("reads")
        .iter()
        .map(|read| read["path"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(reads, ["wf.yaml", "child.yaml"]);
    ok(&validate(&case, &["wf.yaml"]));
    // Files whose checks reuse another's result of the same file (checked once per
    // process) still list what that check read.
    for name in ["a.yaml", "b.yaml", "c.yaml"] {
        case.write(name, CALLER);
    }
    ok(&validate(&case, &["a.yaml", "b.yaml", "c.yaml", "child.yaml"]));
    let entries = entries(&case);
    for key in ["named a.yaml", "named b.yaml", "named c.yaml", "named child.yaml"] {
        let reads = entries[key]["reads"].as_array().expect("reads");
        assert!(reads.iter().any(|read| read["path"] == "child.yaml"), "{key}: {reads:?}");
    }

    // The caller did not change, the workflow it calls did: checked again.
    case.write("child.yaml", BROKEN_CHILD);
    let broken = validate(&case, &["wf.yaml"]);
    assert_eq!(code(&broken), 65, "{}", stdout(&broken));
    assert!(stderr(&broken).contains("child.yaml:5:5"), "{}", stderr(&broken));
    // Gone: checked again too.
    std::fs::remove_file(case.path("child.yaml")).expect("remove");
    let missing = validate(&case, &["wf.yaml"]);
    assert_eq!(code(&missing), 65, "{}", stderr(&missing));
    assert!(stderr(&missing).contains("child.yaml"), "{}", stderr(&missing));
    case.write("child.yaml", CHILD);
    ok(&validate(&case, &["wf.yaml"]));
}

#[test]
fn a_remembered_result_is_reused_and_no_cache_checks_anyway() {
    let case = Case::new(CHILD);
    ok(&validate(&case, &["wf.yaml"]));
    // Break the file and forge its entry to name the broken text: only a run that
    // trusts the cache calls it valid. (So the cache file must be writable only by
    // its owner: see the README.)
    case.write("wf.yaml", BROKEN_CHILD);
    let file = cache_file(&case).expect("written");
    let mut cache: Value = serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    cache["entries"]["named wf.yaml"]["reads"][0]["digest"] = Value::from(sha256(BROKEN_CHILD.as_bytes()));
    std::fs::write(&file, serde_json::to_vec(&cache).expect("json")).expect("write");
    ok(&validate(&case, &["wf.yaml"]));
    let checked = validate(&case, &["--no-cache", "wf.yaml"]);
    assert_eq!(code(&checked), 65, "{}", stdout(&checked));
    assert!(stderr(&checked).contains("timout"), "{}", stderr(&checked));
}

#[test]
fn a_run_with_problems_or_warnings_writes_nothing() {
    let case = Case::new(BROKEN_CHILD);
    assert_eq!(code(&validate(&case, &["wf.yaml"])), 65);
    assert_eq!(cache_file(&case), None);
    let warning = "name: t\ninputs:\n  rev: {type: string}\nsteps:\n  - type: exec\n    argv: [git, log, \"{{ inputs.rev }}\"]\n";
    case.write("wf.yaml", warning);
    let output = validate(&case, &["wf.yaml"]);
    ok(&output);
    assert!(stderr(&output).contains("warning[argv-option]"), "{}", stderr(&output));
    assert_eq!(cache_file(&case), None);
    // The warning is said every time, not remembered away.
    assert!(stderr(&validate(&case, &["wf.yaml"])).contains("warning[argv-option]"));
    ok(&validate(&case, &["--no-cache", "wf.yaml"]));
}

#[test]
fn a_template_that_includes_another_is_never_cached() {
    let case = Case::new("name: r\nsteps:\n  - type: render\n    template: t.md\n    vars: {who: x}\n");
    case.write("t.md", "Hello {{ who }}\n{% include 'part.md' %}\n");
    case.write("part.md", "part\n");
    case.write("plain.yaml", "name: r\nsteps:\n  - type: render\n    template: p.md\n    vars: {who: x}\n");
    case.write("p.md", "Hello {{ who }}\n");
    ok(&validate(&case, &["wf.yaml", "plain.yaml"]));
    let entries = entries(&case);
    assert!(!entries.contains_key("named wf.yaml"), "{entries:?}");
    assert!(entries.contains_key("named plain.yaml"), "{entries:?}");
}

#[test]
fn a_cache_file_others_may_write_is_not_trusted() {
    use std::os::unix::fs::PermissionsExt as _;
    let case = Case::new(CHILD);
    ok(&validate(&case, &["wf.yaml"]));
    let file = cache_file(&case).expect("written");
    let mode = std::fs::metadata(&file).expect("stat").permissions().mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
    case.write("wf.yaml", BROKEN_CHILD);
    let mut cache: Value = serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    cache["entries"]["named wf.yaml"]["reads"][0]["digest"] = Value::from(sha256(BROKEN_CHILD.as_bytes()));
    std::fs::write(&file, serde_json::to_vec(&cache).expect("json")).expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    assert_eq!(code(&validate(&case, &["wf.yaml"])), 65, "a forged, world-writable cache is ignored");
    assert!(Path::new(&file).exists());
}

#[test]
fn a_symlink_pointed_elsewhere_is_noticed_even_when_its_target_was_checked_under_another_name() {
    // The second call reaches child.yaml again through a link: the loader reuses the
    // first result (same file), and must still log the link's name.
    let case = Case::new(
        "name: caller\nsteps:\n  - id: a\n    type: call\n    workflow: child.yaml\n  - id: b\n    type: call\n    workflow: link.yaml\n",
    );
    case.write("child.yaml", CHILD);
    case.write("broken.yaml", BROKEN_CHILD);
    std::os::unix::fs::symlink("child.yaml", case.path("link.yaml")).expect("symlink");
    ok(&validate(&case, &["wf.yaml"]));
    std::fs::remove_file(case.path("link.yaml")).expect("remove");
    std::os::unix::fs::symlink("broken.yaml", case.path("link.yaml")).expect("symlink");
    let output = validate(&case, &["wf.yaml"]);
    assert_eq!(code(&output), 65, "{}{}", stdout(&output), stderr(&output));
}
