//! `runner run` with the cron step (openclaw and command backends, reads and toggles),
//! the result guard, the whole-run timeout and render steps.

use super::*;

#[test]
fn cron_runs_exactly_openclaw_cron_edit() {
    let case = Case::new(CRON_WORKFLOW);
    registry(&case, "{type: openclaw}");
    let path = fake_openclaw(&case, 0);
    let output = case.run(&["-o", "json", "-i", "lane=local", "-i", "on=true"], &[("PATH", &path)]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let calls = std::fs::read_to_string(case.path("calls.log")).expect("called");
    // The state is read first; local's cron is disabled, so one edit follows.
    assert_eq!(calls, "cron list --all --json\ncron edit 6b09bed4-cfbe-4c35-bbee-2b66c5ef17aa --enable\n");
    let result = finished(&events(&output))["outputs"]["result"].clone();
    assert_eq!(result["applied"], true);
    assert_eq!(result["enabled"], true);

    // The env override is used only when it is a UUID: never an option smuggled in.
    let output = case.run(
        &["-o", "json", "-i", "lane=local", "-i", "on=false"],
        &[("PATH", &path), ("TEST_LOCAL_CRON_ID", "--help")],
    );
    assert_eq!(code(&output), 1);
    assert!(step(&events(&output), "toggle")["error"].as_str().unwrap_or_default().contains("not a UUID"));
    let calls = std::fs::read_to_string(case.path("calls.log")).expect("called");
    assert_eq!(calls.lines().count(), 2, "nothing ran");
}

#[test]
fn a_failed_cron_toggle_is_a_failed_step() {
    let case = Case::new(CRON_WORKFLOW);
    registry(&case, "{type: openclaw}");
    let path = fake_openclaw(&case, 3);
    let output = case.run(&["-o", "json", "-i", "lane=cloud", "-i", "on=false"], &[("PATH", &path)]);
    assert_eq!(code(&output), 1);
    let error = step(&events(&output), "toggle")["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("exit 3") && error.contains("gateway unreachable"), "{error}");
    // A dry run reads the state and shows the exact edit it would send, without sending it.
    let dry =
        case.run(&["--dry-run", "-o", "json", "-i", "lane=cloud", "-i", "on=false"], &[("PATH", &path)]);
    assert_eq!(code(&dry), 0);
    let plan = events(&dry).into_iter().find(|e| e["event"] == "step_planned").expect("plan");
    assert_eq!(
        plan["action"]["command"],
        json!(["openclaw", "cron", "edit", "8a6daaff-641b-4e1c-a263-f3814b043539", "--disable"])
    );
    let calls = std::fs::read_to_string(case.path("calls.log")).expect("log");
    assert_eq!(calls.lines().filter(|l| l.starts_with("cron edit")).count(), 1, "{calls}");
    // A dry run whose job is already in the wanted state plans nothing.
    let dry = case.run(&["--dry-run", "-o", "json", "-i", "lane=cloud", "-i", "on=true"], &[("PATH", &path)]);
    assert_eq!(code(&dry), 0, "{}", stderr(&dry));
    assert!(events(&dry).iter().all(|e| e["event"] != "step_planned"));
    assert_eq!(finished(&events(&dry))["outputs"]["result"]["changed"], false);
}

#[test]
fn a_cron_already_in_the_wanted_state_is_not_edited() {
    let case = Case::new(CRON_WORKFLOW);
    registry(&case, "{type: openclaw}");
    let path = fake_openclaw(&case, 0);
    let output = case.run(&["-o", "json", "-i", "lane=cloud", "-i", "on=true"], &[("PATH", &path)]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let result = finished(&events(&output))["outputs"]["result"].clone();
    assert_eq!(result["changed"], false);
    assert_eq!(result["was_enabled"], true);
    assert_eq!(std::fs::read_to_string(case.path("calls.log")).expect("called"), "cron list --all --json\n");
}

#[test]
fn a_failed_cron_list_fails_the_toggle_with_one_line_and_edits_nothing() {
    let case = Case::new(CRON_WORKFLOW);
    registry(&case, "{type: openclaw}");
    let path = case.program(
        "openclaw",
        &format!(
            "#!/bin/sh\necho \"$@\" >> \"{}\"\necho '{{\"ok\": false, \"error\": {{\"type\": \"cli_error\", \"message\": \"Gateway not reachable\"}}}}'\necho 'Gateway not reachable' >&2\necho 'second line' >&2\nexit 1\n",
            case.path("calls.log").display()
        ),
    );
    let output = case.run(&["-o", "json", "-i", "lane=local", "-i", "on=true"], &[("PATH", &path)]);
    assert_eq!(code(&output), 1);
    let error = step(&events(&output), "toggle")["error"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        error,
        "reading the cron jobs failed, nothing changed: `openclaw cron list` failed (exit 1): Gateway not reachable"
    );
    assert_eq!(std::fs::read_to_string(case.path("calls.log")).expect("called"), "cron list --all --json\n");
}

#[test]
fn a_command_cron_backend_gets_its_argv_from_templates() {
    let case = Case::new(CRON_WORKFLOW);
    registry(
        &case,
        "{type: command, argv: [sh, -c, 'echo \"$0 $1\" > toggled', \"{{ cron_id }}\", \"{{ 'on' if enabled else 'off' }}\"]}",
    );
    let output = case.run(&["-i", "lane=local", "-i", "on=false"], &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(
        std::fs::read_to_string(case.path("toggled")).expect("toggled"),
        "6b09bed4-cfbe-4c35-bbee-2b66c5ef17aa off\n"
    );
}

#[test]
fn the_guard_matches_whole_texts_per_lane() {
    let case = Case::new(
        "name: t\nlanes: lanes.yaml\ninputs:\n  text: {type: string}\n  lane: {type: lane}\nsteps:\n  - id: guard\n    type: guard\n    text: \"{{ inputs.text }}\"\n    lane: \"{{ inputs.lane }}\"\n    fail_on_reject: false\noutputs:\n  verdict: \"{{ steps.guard.output }}\"\n",
    );
    registry(&case, "{type: openclaw}");
    let judge = |text: &str, lane: &str| {
        let output =
            case.run(&["-o", "json", "-i", &format!("text={text}"), "-i", &format!("lane={lane}")], &[]);
        assert_eq!(code(&output), 0, "{}", stderr(&output));
        finished(&events(&output))["outputs"]["verdict"].clone()
    };
    assert_eq!(judge("  Cloud lane is clear.\n", "cloud")["valid"], true);
    assert_eq!(judge("Cloud lane is clear.", "local")["valid"], false, "only the lane's own clear text");
    assert_eq!(judge("Stuck: no token.", "local")["rule"], "stuck");
    assert_eq!(judge("Stuck: no token.\nAnd then I kept going", "local")["valid"], false, "whole text");
    let narration = judge("Let me check the queue", "local");
    assert_eq!((narration["valid"].clone(), narration["reason"].clone()), (json!(false), json!("narration")));
    assert_eq!(judge("", "local")["reason"], "empty worker result");
    // Text from stdin, and failing on rejection by default.
    let case2 = Case::new(
        "name: t\nlanes: lanes.yaml\ninputs:\n  text: {type: string}\nsteps:\n  - type: guard\n    text: \"{{ inputs.text }}\"\n",
    );
    registry(&case2, "{type: openclaw}");
    let mut child = case2
        .command(&["-i", "text=@-"], &[])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), b"Now I will look\n").expect("write");
    drop(child.stdin.take());
    let output = child.wait_with_output().expect("wait");
    assert_eq!(code(&output), 1);
    assert!(stderr(&output).contains("INVALID_WORKER_RESULT: narration"), "{}", stderr(&output));
}

#[test]
fn the_whole_run_timeout_cancels_and_runs_finally() {
    let case = Case::new(
        "name: t\ntimeout: 500ms\nsteps:\n  - type: exec\n    timeout: 30s\n    argv: [sleep, '30']\nfinally:\n  - type: emit\n    text: \"finally {{ run.status }}: {{ run.error }}\"\n",
    );
    let started = Instant::now();
    let output = case.run(&[], &[]);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(code(&output), 1);
    assert_eq!(stdout(&output), "finally failed: the run timed out after 500ms\n");
}

#[test]
fn render_steps_write_files_and_dry_runs_only_plan_them() {
    let case = Case::new(
        "name: t\nsteps:\n  - type: render\n    template: prompt.md\n    vars: {who: \"{{ 'Ada' | upper }}\"}\n    out: out/prompt.txt\n",
    );
    case.write("prompt.md", "Hello {{ who }}; n=${#xs[@]}\n");
    let dry = case.run(&["--dry-run", "-o", "json"], &[]);
    assert_eq!(code(&dry), 0, "{}", stderr(&dry));
    assert!(!case.path("out/prompt.txt").exists());
    assert!(events(&dry).iter().any(|e| e["event"] == "step_planned"));
    let output = case.run(&[], &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(
        std::fs::read_to_string(case.path("out/prompt.txt")).expect("written"),
        "Hello ADA; n=${#xs[@]}\n"
    );
}
