//! `runner test` cases with readable failures, and a run recorded with `--record`
//! replayed offline and run as a test.

use super::*;

const QUEUE_WORKFLOW: &str = "name: q\nsecrets:\n  token: {env: TEST_TOKEN}\nenv:\n  BASE: {default: \"http://127.0.0.1:9\"}\napis:\n  d: {base_url: \"{{ env.BASE }}\", bearer: \"{{ secrets.token }}\"}\nsteps:\n  - id: queue\n    type: http\n    api: d\n    path: /queue\n    retry: {attempts: 2, backoff: 10s}\n  - id: claim\n    type: http\n    api: d\n    method: POST\n    path: /claim\n    body: {number: \"{{ steps.queue.output.body[0].number }}\", token: \"{{ secrets.token }}\"}\n    on: {\"409\": {value: conflict}}\n  - id: look\n    type: exec\n    effect: read\n    argv: [gh, issue, view, \"{{ steps.queue.output.body[0].number }}\"]\noutputs:\n  claim: \"{{ steps.claim.output }}\"\n";

#[test]
fn runner_test_runs_cases_and_shows_readable_failures() {
    let case = Case::new(QUEUE_WORKFLOW);
    let tests = "kind: test\nworkflow: wf.yaml\ndefaults:\n  env: {TEST_TOKEN: t}\n  commands:\n    - match: [gh, issue, view, '*']\n      stdout: '{}'\ncases:\n  - name: a 503 is retried, the 409 maps to a value\n    http:\n      - match: {method: GET, path: /queue}\n        respond: {status: 503}\n        times: 1\n      - match: {method: GET, path: /queue}\n        respond: {json: [{number: 7}]}\n      - match: {method: POST, path: /claim, body: {number: 7}}\n        respond: {status: 409, json: {error: leased}}\n    expect:\n      outputs: {claim: conflict}\n      requests: [GET /queue, GET /queue, POST /claim]\n      commands: [[gh, issue, view, '7']]\n      steps: {queue: ok, claim: ok}\n  - name: a timeout fault fails the run quickly\n    http:\n      - match: {path: /queue}\n        respond: {fault: timeout}\n    expect:\n      exit_code: 1\n      stderr_contains: [no response from GET]\n";
    case.write("wf.test.yaml", tests);
    let started = Instant::now();
    let output = super::super::runner_in(case.dir.path(), &["test", "wf.test.yaml"]);
    assert_eq!(code(&output), 0, "{}{}", stdout(&output), stderr(&output));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "virtual time: the 10s backoff and 30s timeout cost nothing"
    );
    assert!(stdout(&output).ends_with("2 passed, 0 failed\n"), "{}", stdout(&output));

    // Break one expectation: the failure names what differs, with a diff.
    case.write(
        "wf.test.yaml",
        &tests.replace(
            "requests: [GET /queue, GET /queue, POST /claim]",
            "requests: [GET /queue, POST /claim]",
        ),
    );
    let output = super::super::runner_in(case.dir.path(), &["test", "wf.test.yaml"]);
    assert_eq!(code(&output), 1);
    let text = stdout(&output);
    assert!(text.contains("FAIL wf.test.yaml › a 503 is retried"), "{text}");
    assert!(
        text.contains("requests differ (in order; - expected, + made):") && text.contains("+ GET /queue"),
        "{text}"
    );
    assert!(text.ends_with("1 passed, 1 failed\n"), "{text}");

    // A request no fixture answers is named.
    case.write(
        "wf.test.yaml",
        &tests.replace("path: /claim, body: {number: 7}", "path: /claim, body: {number: 8}"),
    );
    let output = super::super::runner_in(case.dir.path(), &["test", "wf.test.yaml"]);
    assert!(
        stdout(&output).contains("no fixture answers the request POST /claim with body"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_recorded_run_replays_offline_and_runs_as_a_test() {
    let secret = "tok-record-5531";
    let server = Server::start(|request, _| match request.method.as_str() {
        "GET" => Response::json(200, &json!([{"number": 7}])),
        _ => Response::json(201, &json!({"claimed": true})),
    });
    let case = Case::new(QUEUE_WORKFLOW);
    let path = case.program("gh", "#!/bin/sh\necho '{\"title\": \"x\"}'\n");
    let env = [("TEST_TOKEN", secret), ("BASE", server.url.as_str()), ("PATH", path.as_str())];
    let recorded = case.run(&["--record", "rec.test.yaml"], &env);
    assert_eq!(code(&recorded), 0, "{}", stderr(&recorded));
    let recording = std::fs::read_to_string(case.path("rec.test.yaml")).expect("recording");
    assert!(!recording.contains(secret), "{recording}");
    assert!(!recording.to_ascii_lowercase().contains("authorization"), "{recording}");
    drop(server);
    // Offline now: the server is gone and gh is not on PATH.
    let replayed = case.run(&["--replay", "rec.test.yaml", "-o", "json"], &[("BASE", "http://127.0.0.1:9")]);
    assert_eq!(code(&replayed), 0, "{}", stdout(&replayed));
    assert_eq!(finished(&events(&replayed))["outputs"]["claim"]["body"], json!({"claimed": true}));
    let tested = super::super::runner_in(case.dir.path(), &["test", "rec.test.yaml"]);
    assert_eq!(code(&tested), 0, "{}", stdout(&tested));
}
