//! The workflow language v2 (issue 10): first-match `stages` with one error mapping,
//! scoped `return`, `set` values that see each other, `for_each` early exit and the
//! `parallel` block, run by the real binary against a fake server on 127.0.0.1.

use std::time::{Duration, Instant};

use serde_json::json;

use super::super::fake::{Response, Server};
use super::super::{code, root, runner_in, stderr, stdout};
use super::support::{outputs, run_ok};
use super::{Case, events, step};

/// A case whose workflow (`name: t`) has the API `fake` at `url` and then `rest`
/// (its `steps:` and `outputs:`, plain YAML).
fn api_case(url: &str, rest: &str) -> Case {
    Case::new(&format!("name: t\napis:\n  fake:\n    base_url: {url}\n    timeout: 10s\n{rest}"))
}

/// /a answers an empty list, /b one item, /c another: stage `b` decides, `c` never runs.
#[test]
fn stages_run_in_order_and_the_first_result_decides() {
    let server = Server::start(|request, _| match request.path() {
        "/a" => Response::json(200, &json!([])),
        "/b" => Response::json(200, &json!([{"x": 1}])),
        _ => Response::json(200, &json!([{"x": 2}])),
    });
    let case = api_case(
        &server.url,
        r#"steps:
  - id: decide
    type: stages
    stages:
      - id: a
        steps: [{id: read_a, type: http, api: fake, path: /a}]
        result: "{{ steps.read_a.output.body | first }}"
      - id: b
        steps: [{id: read_b, type: http, api: fake, path: /b}]
        result: "{{ steps.read_b.output.body | first }}"
      - id: c
        steps: [{id: read_c, type: http, api: fake, path: /c}]
        result: "{{ steps.read_c.output.body | first }}"
outputs:
  decided: "{{ steps.decide.output }}"
"#,
    );
    let events = run_ok(&case, &[]);
    assert_eq!(outputs(&events)["decided"], json!({"x": 1}));
    let paths: Vec<String> = server.requests().iter().map(|r| r.path().to_string()).collect();
    assert_eq!(paths, ["/a", "/b"], "stage c does not run once b decided");
    assert_eq!(step(&events, "decide.b.read_b")["status"], "ok");
}

/// A failed stage becomes the `catch` result (the message written once); later stages
/// do not run, and the run goes on.
#[test]
fn a_failed_stage_is_mapped_by_catch() {
    let server = Server::start(|request, _| match request.path() {
        "/a" => Response::raw(500, "boom"),
        _ => Response::json(200, &json!([1])),
    });
    let case = api_case(
        &server.url,
        r#"steps:
  - id: decide
    type: stages
    stages:
      - id: token
        result: "{{ none }}"
      - id: a
        steps: [{id: read_a, type: http, api: fake, path: /a}]
        result: "{{ steps.read_a.output.body | first }}"
      - id: b
        steps: [{id: read_b, type: http, api: fake, path: /b}]
        result: "{{ steps.read_b.output.body | first }}"
    catch:
      action: stuck
      terminal: "Stuck: {{ error.stage }}/{{ error.step }}: {{ error.message }}."
  - id: after
    type: set
    values: {seen: "{{ steps.decide.output.action }}"}
outputs:
  decided: "{{ steps.decide.output }}"
  after: "{{ steps.after.output.seen }}"
"#,
    );
    let events = run_ok(&case, &[]);
    let outputs = outputs(&events);
    assert_eq!(outputs["decided"]["action"], "stuck");
    let terminal = outputs["decided"]["terminal"].as_str().unwrap_or_default();
    assert!(terminal.starts_with("Stuck: a/read_a: "), "{terminal}");
    assert!(terminal.contains("500"), "{terminal}");
    assert_eq!(outputs["after"], "stuck");
    assert_eq!(server.requests().len(), 1, "stage b never ran");
}

/// Without `catch`, a failed stage fails the step and the run.
#[test]
fn a_failed_stage_without_catch_fails_the_run() {
    let server = Server::start(|_, _| Response::raw(500, "boom"));
    let case = api_case(
        &server.url,
        r#"steps:
  - id: decide
    type: stages
    stages:
      - id: a
        steps: [{id: read_a, type: http, api: fake, path: /a}]
        result: "{{ steps.read_a.output.body }}"
"#,
    );
    let output = case.run(&["-o", "json"], &[]);
    assert_eq!(code(&output), 1);
    assert_eq!(step(&events(&output), "decide")["status"], "failed");
}

/// `return` in a stage decides at once (the rest of the stage is skipped); `none`
/// returned means "next stage".
#[test]
fn return_decides_a_stage_early() {
    let case = Case::new(
        r#"name: t
inputs:
  n: {type: integer}
steps:
  - id: decide
    type: stages
    stages:
      - id: small
        steps:
          - type: return
            when: inputs.n < 10
            value: {size: small, n: "{{ inputs.n }}"}
          - type: return
        result: "{{ 'unreachable' }}"
      - id: big
        result: {size: big}
outputs:
  decided: "{{ steps.decide.output }}"
"#,
    );
    let small = run_ok(&case, &["--input", "n=3"]);
    assert_eq!(outputs(&small)["decided"], json!({"size": "small", "n": 3}));
    let big = run_ok(&case, &["--input", "n=30"]);
    assert_eq!(outputs(&big)["decided"], json!({"size": "big"}));
}

/// `return` ends a called workflow with its outputs, and only that workflow: the caller
/// goes on with its next step.
#[test]
fn return_ends_a_called_workflow_not_the_run() {
    let case = Case::new(
        r#"name: main
steps:
  - id: sub
    type: call
    workflow: sub.yaml
  # A call inside a stage and inside a parallel block is loaded too.
  - id: decide
    type: stages
    stages:
      - id: ask
        steps:
          - {id: staged, type: call, workflow: staged.yaml}
          - type: parallel
            steps: [{id: side, type: call, workflow: side.yaml}]
        result: "{{ steps.staged.output.answer + steps.side.output.answer }}"
  - id: after
    type: emit
    text: "caller continues with {{ steps.sub.output.answer }}"
outputs:
  answer: "{{ steps.sub.output.answer }}"
"#,
    );
    case.write(
        "sub.yaml",
        r#"name: sub
steps:
  - id: compute
    type: set
    values: {answer: 42}
  - type: return
    value: {answer: "{{ steps.compute.output.answer }}"}
  - type: emit
    text: not reached
outputs:
  answer: 0
"#,
    );
    let sub = std::fs::read_to_string(case.path("sub.yaml")).expect("sub.yaml");
    case.write("staged.yaml", &sub);
    case.write("side.yaml", &sub);
    let events = run_ok(&case, &[]);
    assert_eq!(outputs(&events)["answer"], 42);
    assert_eq!(step(&events, "decide")["summary"], "84");
    let texts: Vec<&str> =
        events.iter().filter(|e| e["event"] == "emit").filter_map(|e| e["text"].as_str()).collect();
    assert_eq!(texts, ["caller continues with 42"]);
}

/// `until` stops at the first matching item: the slow items in flight are cancelled
/// and the output ends with the match.
#[test]
fn for_each_until_stops_at_the_first_match_and_cancels_the_rest() {
    let server = Server::start(|request, _| match request.path() {
        "/item/1" => Response::json(200, &json!({"hit": false})),
        "/item/2" => Response::json(200, &json!({"hit": true})),
        _ => Response::json(200, &json!({"hit": true})).after(Duration::from_secs(8)),
    });
    let case = api_case(
        &server.url,
        r#"steps:
  - id: scan
    type: for_each
    items: "[1, 2, 3, 4]"
    parallel: 4
    steps:
      - {id: get, type: http, api: fake, path: "/item/{{ item }}"}
    output: {n: "{{ item }}", hit: "{{ steps.get.output.body.hit }}"}
    until: result.hit
outputs:
  scanned: "{{ steps.scan.output }}"
"#,
    );
    let started = Instant::now();
    let events = run_ok(&case, &[]);
    assert!(started.elapsed() < Duration::from_secs(6), "the slow items were cancelled");
    assert_eq!(outputs(&events)["scanned"], json!([{"n": 1, "hit": false}, {"n": 2, "hit": true}]));
}

/// Steps of a `parallel` block are in flight together and are available afterwards.
#[test]
fn parallel_runs_steps_together() {
    let server = Server::start(|request, _| {
        Response::json(200, &json!({"path": request.path()})).after(Duration::from_millis(500))
    });
    let case = api_case(
        &server.url,
        r#"steps:
  - id: both
    type: parallel
    steps:
      - {id: one, type: http, api: fake, path: /one}
      - {id: two, type: http, api: fake, path: /two}
      - {id: three, type: http, api: fake, path: /three}
outputs:
  paths: "{{ [steps.one.output.body.path, steps.two.output.body.path, steps.three.output.body.path] }}"
  count: "{{ steps.both.output | length }}"
"#,
    );
    let events = run_ok(&case, &[]);
    let outputs = outputs(&events);
    assert_eq!(outputs["paths"], json!(["/one", "/two", "/three"]));
    assert_eq!(outputs["count"], 3);
    assert_eq!(server.max_in_flight(), 3);
}

/// `set` values see the ones before them, typed (no JSON round trip).
#[test]
fn set_values_see_earlier_values_typed() {
    let case = Case::new(
        r#"name: t
steps:
  - id: calc
    type: set
    values:
      items: "{{ [{'k': 'b', 'n': 2}, {'k': 'a', 'n': 2}, {'k': 'c', 'n': 1}] }}"
      ordered: "{{ items | sort_by('-n', 'k') | map(attribute='k') | list }}"
      count: "{{ ordered | length }}"
      smallest: "{{ (items | min_by('n')).k }}"
outputs:
  calc: "{{ steps.calc.output }}"
"#,
    );
    let events = run_ok(&case, &[]);
    let calc = &outputs(&events)["calc"];
    assert_eq!(calc["ordered"], json!(["a", "b", "c"]));
    assert_eq!(calc["count"], 3);
    assert_eq!(calc["smallest"], "c");
}

/// The README's language example (the preflight's shape) is a valid workflow.
#[test]
fn the_readme_language_example_validates() {
    let root = root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let heading = "### The language: stages, return, typed values, collections";
    let from = readme.find(heading).expect("language section");
    let start = from + readme[from..].find("```yaml\n").expect("example") + "```yaml\n".len();
    let end = start + readme[start..].find("```").expect("end of example");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("wf")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("cron-prompts")).expect("mkdir");
    std::fs::write(dir.path().join("wf/preflight.yaml"), &readme[start..end]).expect("write");
    std::fs::copy(root.join("workflows/lanes.yaml"), dir.path().join("wf/lanes.yaml")).expect("copy");
    std::fs::copy(root.join("cron-prompts/worker.md"), dir.path().join("cron-prompts/worker.md"))
        .expect("copy");
    let output = runner_in(dir.path(), &["validate", "wf/preflight.yaml"]);
    assert_eq!(code(&output), 0, "{}", stdout(&output));
}

/// With `prefetch`, a later stage's independent reads start at once; when an earlier
/// stage decides they are discarded. Reads that use another step's result and every
/// step of a stage without `prefetch` (here a POST) never start early.
#[test]
fn prefetched_reads_are_discarded_when_an_earlier_stage_decides() {
    let server = Server::start(|request, _| match request.path() {
        "/first" => Response::json(200, &json!({"decided": true})).after(Duration::from_millis(800)),
        // Slow enough that both requests are surely in flight together.
        _ => Response::json(200, &json!([1])).after(Duration::from_millis(300)),
    });
    let case = api_case(
        &server.url,
        r#"steps:
  - id: decide
    type: stages
    stages:
      - id: first
        steps: [{id: first, type: http, api: fake, path: /first}]
        result: "{{ steps.first.output.body }}"
      - id: later
        prefetch: true
        steps:
          - {id: early, type: http, api: fake, path: /early}
          - {id: dependent, type: http, api: fake, path: /dependent, query: {x: "{{ steps.early.output.body }}"}}
        result: "{{ steps.dependent.output.body }}"
      - id: write
        steps: [{id: post, type: http, api: fake, method: POST, path: /post}]
        result: "{{ steps.post.output.body }}"
outputs:
  decided: "{{ steps.decide.output }}"
"#,
    );
    let events = run_ok(&case, &[]);
    assert_eq!(outputs(&events)["decided"], json!({"decided": true}));
    // The progress view and the report show what started early.
    assert_eq!(step(&events, "decide.later.early")["name"], "early (prefetched)");
    let mut paths: Vec<String> = server.requests().iter().map(|r| r.path().to_string()).collect();
    paths.sort();
    assert_eq!(paths, ["/early", "/first"], "only the independent read was prefetched");
    assert_eq!(server.max_in_flight(), 2, "the prefetch overlapped the first stage");
}

/// A prefetched result is used (not fetched again) when its stage is reached.
#[test]
fn a_prefetched_read_is_used_once_its_stage_is_reached() {
    let server = Server::start(|request, _| match request.path() {
        "/first" => Response::json(200, &json!([])).after(Duration::from_millis(800)),
        _ => Response::json(200, &json!(["queued"])).after(Duration::from_millis(300)),
    });
    let case = api_case(
        &server.url,
        r#"steps:
  - id: decide
    type: stages
    stages:
      - id: first
        steps: [{id: first, type: http, api: fake, path: /first}]
        result: "{{ steps.first.output.body | first | default(none) }}"
      - id: queue
        prefetch: true
        steps: [{id: queue, type: http, api: fake, path: /queue}]
        result: "{{ steps.queue.output.body | first }}"
outputs:
  decided: "{{ steps.decide.output }}"
"#,
    );
    let events = run_ok(&case, &[]);
    assert_eq!(outputs(&events)["decided"], "queued");
    assert_eq!(server.requests().len(), 2, "the queue was read once");
    assert_eq!(server.max_in_flight(), 2);
}

/// `runner graph` draws stages in order (with "next" edges) and parallel blocks.
#[test]
fn graph_draws_stages_and_parallel_blocks() {
    let case = Case::new(
        r#"name: t
steps:
  - id: decide
    type: stages
    stages:
      - id: first
        result: "{{ none }}"
      - id: second
        prefetch: true
        steps: [{id: s, type: set, values: {a: 1}}]
        result: "{{ steps.s.output.a }}"
  - id: both
    type: parallel
    steps:
      - {id: one, type: set, values: {a: 1}}
      - {id: two, type: set, values: {a: 2}}
"#,
    );
    let output = runner_in(case.dir.path(), &["graph", "wf.yaml"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let chart = stdout(&output);
    for needle in [
        "decide (stages, first match)",
        "first (stage)",
        "second (stage, prefetched)",
        "-->|\"next\"|",
        "both (parallel)",
        "one (set)",
        "two (set)",
    ] {
        assert!(chart.contains(needle), "{needle} missing in:\n{chart}");
    }
}
