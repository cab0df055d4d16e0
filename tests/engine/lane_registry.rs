//! The lane registry's Dispatch settings drive the shipped workflows: a copy of
//! `workflows/` whose `lanes.yaml` says otherwise runs the shipped workflows
//! differently (`runner test` against canned responses, no server).

use std::path::Path;

use super::super::{code, root, runner_in, stdout};

/// A copy of the shipped workflows and prompts with `lanes.yaml` edited by `edit`.
fn shipped_copy(edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for folder in ["workflows", "cron-prompts"] {
        std::fs::create_dir(dir.path().join(folder)).expect("mkdir");
        for entry in std::fs::read_dir(root().join(folder)).expect("read dir").flatten() {
            if entry.path().is_file() {
                std::fs::copy(entry.path(), dir.path().join(folder).join(entry.file_name())).expect("copy");
            }
        }
    }
    let lanes = dir.path().join("workflows/lanes.yaml");
    let text = std::fs::read_to_string(&lanes).expect("lanes.yaml");
    let edited = edit(text.clone());
    assert_ne!(edited, text, "the edit changes the registry");
    std::fs::write(&lanes, edited).expect("write lanes.yaml");
    dir
}

/// The shipped heartbeat test file's `defaults` (fixtures every case needs) with these cases.
fn heartbeat_tests(cases: &str) -> String {
    let shipped = std::fs::read_to_string(root().join("workflows/heartbeat.test.yaml")).expect("test file");
    let (head, _) = shipped.split_once("\ncases:\n").expect("a cases list");
    format!("{head}\ncases:\n{cases}")
}

fn runner_test(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join("workflows").join(file), text).expect("write test file");
    let output = runner_in(dir, &["test", &format!("workflows/{file}")]);
    assert_eq!(code(&output), 0, "{}", stdout(&output));
    assert!(stdout(&output).contains(", 0 failed"), "{}", stdout(&output));
}

#[test]
fn grooming_groomer_runs_the_groomer_without_asking_next_task() {
    let dir = shipped_copy(|text| text.replace("  grooming: auto\n", "  grooming: groomer\n"));
    let cases = r#"
  - name: grooming groomer - no mode=groom read, the groomer runs once
    inputs: {no_probe: true}
    http:
      - match: {method: POST, path: /api/groomer/run, body: {dryRun: false}}
        respond: {json: {candidateNumber: null, dryRun: false}}
    expect:
      exit_code: 0
      stdout_contains: ["[*] Groomer: nothing to groom"]
      any_order: true
      requests: [POST /api/agents/saffron/heartbeat, POST /api/groomer/run, POST /api/agent-runs]
"#;
    runner_test(dir.path(), "groomer.test.yaml", &heartbeat_tests(cases));
}

#[test]
fn grooming_hint_never_runs_the_groomer() {
    let dir = shipped_copy(|text| text.replace("  grooming: auto\n", "  grooming: hint\n"));
    let cases = r#"
  - name: grooming hint - a 410 on mode=groom does not start the groomer
    inputs: {no_probe: true}
    http:
      - match: {method: GET, path: /api/agents/saffron/next-task, query: {mode: groom}}
        respond: {status: 410, json: {error: retired}}
    expect:
      exit_code: 0
      any_order: true
      requests: [POST /api/agents/saffron/heartbeat, GET /api/agents/saffron/next-task, POST /api/agent-runs]
"#;
    runner_test(dir.path(), "hint.test.yaml", &heartbeat_tests(cases));
}

#[test]
fn a_lanes_pr_fix_lane_loop_and_aliases_come_from_the_registry() {
    // cloud moves to the escalation lane and today's loop; `big` becomes its alias.
    let dir = shipped_copy(|text| {
        text.replace("gpt: frontier}", "gpt: frontier, big: cloud}").replacen(
            "      clear: Cloud lane is clear.\n    dispatch: {pr_fix_lane: NORMAL, loop: preflight}",
            "      clear: Cloud lane is clear.\n    dispatch: {pr_fix_lane: ESCALATED, loop: next-task}",
            1,
        )
    });
    let queue = r#"kind: test
workflow: pr-fix-queue.yaml
defaults:
  env: {DISPATCH_AGENT_TOKEN: test-token}
cases:
  - name: the alias reaches the lane's PR-fix lane
    inputs: {op: next, lane: big}
    http:
      - match: {method: GET, path: /api/pr-fix-queue/queued, query: {lane: ESCALATED}}
        respond: {json: []}
    expect:
      exit_code: 0
      stdout: "PR fix queue is clear for big.\n"
  - name: the unknown-lane message lists the registry's aliases
    inputs: {op: next, lane: huge}
    expect:
      exit_code: 2
      stderr_contains: ["expected one of cloud, frontier, local, big, escalated, gpt, normal, needs-human"]
      requests: []
"#;
    runner_test(dir.path(), "queue.test.yaml", queue);
    let task = r#"kind: test
workflow: worker-task.yaml
defaults:
  env: {DISPATCH_AGENT_TOKEN: test-token}
cases:
  - name: a lane on today's loop asks next-task instead of running the preflight
    inputs: {lane: cloud}
    http:
      - match: {method: GET, path: /api/agents/saffron-cloud/next-task, query: {lane: cloud}}
        respond: {json: {type: idle, shouldRun: false}}
    expect:
      exit_code: 0
      stdout: "Cloud lane is clear.\n"
      requests: [GET /api/agents/saffron-cloud/next-task]
      commands: []
"#;
    runner_test(dir.path(), "task.test.yaml", task);
}
