//! `runner run` against fake servers on 127.0.0.1 and real subprocesses.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::fake::{Response, Server};
use super::{code, stderr, stdout};

mod ecosystem;
mod lang;
mod schedule;

/// A temp dir holding one workflow (and anything else a test writes next to it).
struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new(workflow: &str) -> Case {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("wf.yaml"), workflow).expect("write workflow");
        Case { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).expect("write");
    }

    /// An executable `bin/NAME` with this shell script; returns a PATH that finds it first.
    fn program(&self, name: &str, script: &str) -> String {
        let bin = self.path("bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        let file = bin.join(name);
        std::fs::write(&file, script).expect("write");
        let mut permissions = std::fs::metadata(&file).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&file, permissions).expect("chmod");
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
    }

    /// `runner run wf.yaml ARGS...` with a private state dir and these env vars.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env).output().expect("runner runs")
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
        let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin!("runner"));
        command
            .current_dir(self.dir.path())
            .arg("run")
            .arg("wf.yaml")
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUNNER_STATE_DIR", self.path("state"));
        for (key, value) in env {
            command.env(key, value);
        }
        command
    }
}

fn events(output: &Output) -> Vec<Value> {
    stdout(output).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn finished(events: &[Value]) -> &Value {
    events.iter().rev().find(|e| e["event"] == "run_finished").expect("run_finished event")
}

fn step<'a>(events: &'a [Value], path: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == "step_finished" && e["path"] == path)
        .unwrap_or_else(|| panic!("no step_finished for {path}"))
}

fn http_workflow(url: &str, step: &str) -> String {
    format!(
        "name: t\napis:\n  fake:\n    base_url: {url}\n    timeout: 2s\nsteps:\n{step}\noutputs:\n  result: \"{{{{ steps.call.output }}}}\"\n"
    )
}

// ---------------------------------------------------------------------------
// HTTP outcomes

#[test]
fn a_slow_response_hits_the_step_timeout() {
    let server = Server::start(|_, _| Response::json(200, &json!({})).after(Duration::from_secs(5)));
    let case = Case::new(&http_workflow(
        &server.url,
        "  - id: call\n    type: http\n    api: fake\n    path: /slow\n    timeout: 300ms\n",
    ));
    let started = Instant::now();
    let output = case.run(&["-o", "json"], &[]);
    assert!(started.elapsed() < Duration::from_secs(4), "the timeout cut the wait short");
    assert_eq!(code(&output), 1);
    let events = events(&output);
    let error = step(&events, "call")["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("within"), "{error}");
}

#[test]
fn a_503_is_retried_until_a_200() {
    let server = Server::start(|_, n| {
        if n < 2 { Response::raw(503, "busy") } else { Response::json(200, &json!({"ok": true})) }
    });
    let case = Case::new(&http_workflow(
        &server.url,
        "  - id: call\n    type: http\n    api: fake\n    path: /x\n    retry: {attempts: 4, backoff: 10ms, jitter: false}\n",
    ));
    let output = case.run(&["-o", "json"], &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let events = events(&output);
    assert_eq!(step(&events, "call")["attempts"], 3);
    assert_eq!(events.iter().filter(|e| e["event"] == "step_retry").count(), 2);
    assert_eq!(finished(&events)["outputs"]["result"]["body"], json!({"ok": true}));
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn a_post_is_not_retried_unless_allowed() {
    let server = Server::start(|_, _| Response::raw(503, "busy"));
    let case = Case::new(&http_workflow(
        &server.url,
        "  - id: call\n    type: http\n    api: fake\n    method: POST\n    path: /x\n    body: {a: 1}\n    retry: {attempts: 3, backoff: 10ms}\n",
    ));
    let output = case.run(&["-o", "json"], &[]);
    assert_eq!(code(&output), 1);
    assert_eq!(server.requests().len(), 1, "a POST that failed may have been applied: no retry");
}

#[test]
fn a_429_honours_retry_after() {
    let server = Server::start(|_, n| {
        if n == 0 {
            Response::raw(429, "slow down").header("retry-after", "1")
        } else {
            Response::json(200, &json!(1))
        }
    });
    let case = Case::new(&http_workflow(
        &server.url,
        "  - id: call\n    type: http\n    api: fake\n    path: /x\n    retry: {attempts: 2, backoff: 10ms, jitter: false}\n",
    ));
    let started = Instant::now();
    let output = case.run(&["-o", "json"], &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited for Retry-After: {:?}",
        started.elapsed()
    );
    let events = events(&output);
    let retry = events.iter().find(|e| e["event"] == "step_retry").expect("retry event");
    assert!(retry["delay_ms"].as_u64().unwrap_or(0) >= 1000);
}

#[test]
fn a_409_maps_to_a_value() {
    let server = Server::start(|_, _| Response::json(409, &json!({"error": "leased"})));
    let case = Case::new(&http_workflow(
        &server.url,
        "  - id: call\n    type: http\n    api: fake\n    method: POST\n    path: /claim\n    on:\n      \"409\": {value: {action: claim-conflict, status: \"{{ response.status }}\", why: \"{{ response.body.error }}\"}}\n",
    ));
    let output = case.run(&["-o", "json"], &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let events = events(&output);
    assert_eq!(
        finished(&events)["outputs"]["result"],
        json!({"action": "claim-conflict", "status": 409, "why": "leased"})
    );
}

#[test]
fn malformed_json_is_a_decode_error() {
    let server = Server::start(|_, _| Response::raw(200, "{not json"));
    let case =
        Case::new(&http_workflow(&server.url, "  - id: call\n    type: http\n    api: fake\n    path: /x\n"));
    let output = case.run(&["-o", "json"], &[]);
    assert_eq!(code(&output), 1);
    let events = events(&output);
    assert!(step(&events, "call")["error"].as_str().unwrap_or_default().contains("not valid JSON"));
}

#[test]
fn a_50_megabyte_body_is_capped_with_a_clear_error() {
    let body = vec![b'x'; 50 * 1024 * 1024];
    let server = Server::start(move |_, _| Response::raw(200, body.clone()));
    let case = Case::new(&http_workflow(
        &server.url,
        "  - id: call\n    type: http\n    api: fake\n    path: /big\n    decode: text\n    max_response_bytes: 1048576\n",
    ));
    let output = case.run(&["-o", "json"], &[]);
    assert_eq!(code(&output), 1);
    let events = events(&output);
    let error = step(&events, "call")["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("larger than") && error.contains("1048576"), "{error}");
}

#[test]
fn connection_refused_is_a_transport_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let case = Case::new(&http_workflow(
        &format!("http://127.0.0.1:{port}"),
        "  - id: call\n    type: http\n    api: fake\n    path: /x\n    on: {transport: {value: unreachable}}\n",
    ));
    let output = case.run(&["-o", "json"], &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(finished(&events(&output))["outputs"]["result"], "unreachable");
}

#[test]
fn an_empty_2xx_body_is_null() {
    let server = Server::start(|_, _| Response::raw(204, ""));
    let case = Case::new(&http_workflow(
        &server.url,
        "  - id: call\n    type: http\n    api: fake\n    method: PUT\n    path: /x\n",
    ));
    let output = case.run(&["-o", "json"], &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(finished(&events(&output))["outputs"]["result"]["body"], Value::Null);
}

// ---------------------------------------------------------------------------
// Safety

#[test]
fn hostile_values_stay_data_in_argv_urls_and_headers() {
    let server = Server::start(|_, _| Response::json(200, &json!({})));
    let evil = "$(touch pwned); rm -rf x";
    let case = Case::new(&format!(
        "name: t\ninputs:\n  v: {{type: string}}\napis:\n  fake: {{base_url: \"{}\"}}\nsteps:\n  - id: argv\n    type: exec\n    argv: [printf, \"%s\", \"{{{{ inputs.v }}}}\"]\n  - id: call\n    type: http\n    api: fake\n    path: \"/agents/{{{{ inputs.v }}}}/queue\"\n    query: {{q: \"{{{{ inputs.v }}}}\"}}\n    headers: {{X-Value: \"{{{{ inputs.v }}}}\"}}\noutputs:\n  printed: \"{{{{ steps.argv.output.stdout }}}}\"\n",
        server.url
    ));
    let output = case.run(&["-o", "json", "--input", &format!("v={evil}")], &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(!case.path("pwned").exists(), "nothing went through a shell");
    assert_eq!(finished(&events(&output))["outputs"]["printed"], evil);
    let request = &server.requests()[0];
    assert_eq!(request.path(), "/agents/%24%28touch%20pwned%29%3B%20rm%20-rf%20x/queue");
    assert!(!request.target.contains(' '));
    assert_eq!(request.headers.get("x-value").map(String::as_str), Some(evil));

    // A line break in a header value is refused before any request.
    let before = server.requests().len();
    let output = case.run(&["-o", "json", "--input", "v=a\r\nX-Injected: 1"], &[]);
    assert_eq!(code(&output), 1);
    let events = events(&output);
    assert!(step(&events, "call")["error"].as_str().unwrap_or_default().contains("line break"));
    assert_eq!(server.requests().len(), before, "no request was sent");
}

#[test]
fn an_exec_timeout_kills_grandchildren() {
    let case = Case::new(
        "name: t\nsteps:\n  - id: slow\n    type: exec\n    timeout: 300ms\n    argv: [sh, -c, 'sleep 30 & echo $! > grandchild.pid; wait']\n",
    );
    let output = case.run(&["-o", "json"], &[]);
    assert_eq!(code(&output), 1);
    let pid: i32 =
        std::fs::read_to_string(case.path("grandchild.pid")).expect("pid file").trim().parse().expect("pid");
    let deadline = Instant::now() + Duration::from_secs(3);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(pid), "grandchild {pid} survived the timeout");
}

fn alive(pid: i32) -> bool {
    // A zombie has exited; only a running or sleeping process counts.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.split_whitespace().nth(2).is_none_or(|state| state != "Z"),
        Err(_) => false,
    }
}

#[test]
fn secrets_never_reach_any_channel() {
    let secret = "tok-3f9a81c2e7d6";
    let server = Server::start(move |request, _| {
        // The server echoes what it received, as a careless API might.
        Response::json(500, &json!({"seen": request.headers.get("authorization"), "body": request.body}))
    });
    let case = Case::new(&format!(
        "name: t\nsecrets:\n  token: {{env: TEST_TOKEN}}\napis:\n  fake:\n    base_url: \"{}\"\n    bearer: \"{{{{ secrets.token }}}}\"\nsteps:\n  - id: echo\n    type: exec\n    effect: read\n    argv: [echo, \"token is {{{{ secrets.token }}}}\"]\n  - id: emit\n    type: emit\n    text: \"emitting {{{{ secrets.token }}}}\"\n  - id: write\n    type: http\n    api: fake\n    method: POST\n    path: /x\n    body: {{token: \"{{{{ secrets.token }}}}\"}}\n  - id: call\n    type: http\n    api: fake\n    path: /y\noutputs:\n  leaked: \"{{{{ secrets.token }}}}\"\n",
        server.url
    ));
    let env = [("TEST_TOKEN", secret)];
    let report = case.path("report.json");
    let report_arg = report.to_str().expect("utf8");
    let human = case.run(&["--report", report_arg], &env);
    assert_eq!(code(&human), 1, "the run fails on the 500");
    let json_run = case.run(&["-o", "json"], &env);
    let dry = case.run(&["--dry-run", "-v", "-o", "json"], &env);
    let dry_human = case.run(&["--dry-run", "-v"], &env);
    let channels = [
        ("human stdout", stdout(&human)),
        ("human stderr", stderr(&human)),
        ("json events", stdout(&json_run)),
        ("json stderr", stderr(&json_run)),
        ("report", std::fs::read_to_string(&report).expect("report written")),
        ("dry-run plan", stdout(&dry)),
        ("dry-run human", stderr(&dry_human)),
    ];
    for (name, text) in &channels {
        assert!(!text.is_empty() || name.contains("stderr"), "{name} is empty");
        assert!(!text.contains(secret), "{name} leaks the secret:\n{text}");
    }
    assert!(channels[0].1.contains("emitting ***"), "{}", channels[0].1);
    // The plan shows the write it would send, with the token masked and auth redacted.
    let plan = events(&dry).into_iter().find(|e| e["event"] == "step_planned").expect("planned write");
    assert_eq!(plan["action"]["body"], json!({"token": "***"}));
    assert_eq!(plan["action"]["headers"]["Authorization"], "<redacted>", "{plan}");
}

#[test]
fn a_missing_secret_stops_the_run_before_any_step() {
    let case = Case::new(
        "name: t\nsecrets:\n  token: {env: TEST_MISSING_TOKEN}\nsteps:\n  - type: exec\n    argv: [touch, ran]\n",
    );
    let output = case.run(&[], &[]);
    assert_eq!(code(&output), 78);
    assert!(stderr(&output).contains("TEST_MISSING_TOKEN"), "{}", stderr(&output));
    assert!(!case.path("ran").exists());
}

// ---------------------------------------------------------------------------
// Dry run

#[test]
fn a_dry_run_runs_reads_and_reports_writes_exactly() {
    let server = Server::start(|request, _| match request.method.as_str() {
        "GET" => Response::json(200, &json!([{"number": 7}])),
        _ => Response::json(201, &json!({})),
    });
    let case = Case::new(&format!(
        "name: t\napis:\n  fake: {{base_url: \"{}\"}}\nsteps:\n  - id: queue\n    type: http\n    api: fake\n    path: /queue\n  - id: claim\n    type: http\n    api: fake\n    method: POST\n    path: /claim/{{{{ steps.queue.output.body[0].number }}}}\n    body: {{number: \"{{{{ steps.queue.output.body[0].number }}}}\"}}\n  - id: touch\n    type: exec\n    argv: [touch, written]\n",
        server.url
    ));
    let output = case.run(&["--dry-run", "-o", "json"], &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let methods: Vec<String> = server.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, vec!["GET"], "only the read reached the server");
    assert!(!case.path("written").exists());
    let events = events(&output);
    let planned: Vec<&Value> = events.iter().filter(|e| e["event"] == "step_planned").collect();
    assert_eq!(planned.len(), 2);
    assert_eq!(planned[0]["action"]["method"], "POST");
    assert_eq!(planned[0]["action"]["url"], format!("{}/claim/7", server.url));
    assert_eq!(planned[0]["action"]["body"], json!({"number": 7}));
    assert_eq!(planned[1]["action"]["argv"], json!(["touch", "written"]));
    assert_eq!(step(&events, "claim")["status"], "planned");
}

// ---------------------------------------------------------------------------
// Concurrency, signals, fan-out

#[test]
fn two_runs_with_one_concurrency_key_never_overlap() {
    let server = Server::start(|_, _| Response::json(200, &json!({})).after(Duration::from_millis(1500)));
    let workflow = |policy: &str| {
        format!(
            "name: t\nconcurrency: {{key: heartbeat, policy: {policy}}}\napis:\n  fake: {{base_url: \"{}\"}}\nsteps:\n  - type: http\n    api: fake\n    path: /beat\n",
            server.url
        )
    };
    let case = Case::new(&workflow("skip"));
    let mut first = case.command(&[], &[]).spawn().expect("spawn");
    // Wait until the first run is inside its request.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.requests().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = case.run(&[], &[]);
    assert_eq!(code(&second), 0);
    assert!(
        stderr(&second).contains("another run holds the concurrency key `heartbeat`"),
        "{}",
        stderr(&second)
    );
    case.write("wf.yaml", &workflow("fail"));
    let third = case.run(&[], &[]);
    assert_eq!(code(&third), 75);
    assert!(first.wait().expect("first run").success());
    assert_eq!(server.requests().len(), 1, "exactly one run reached the server");

    // `wait` runs after the holder finishes.
    case.write("wf.yaml", &workflow("wait"));
    let mut holder = case.command(&[], &[]).spawn().expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.requests().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let waiter = case.run(&[], &[]);
    assert_eq!(code(&waiter), 0, "{}", stderr(&waiter));
    assert!(holder.wait().expect("holder").success());
    assert_eq!(server.requests().len(), 3);
    assert_eq!(server.max_in_flight(), 1, "the two runs never overlapped");
}

#[test]
fn sigterm_cancels_kills_children_and_reports() {
    let case = Case::new(
        "name: t\nsteps:\n  - id: slow\n    type: exec\n    timeout: 30s\n    argv: [sh, -c, 'sleep 30 & echo $! > grandchild.pid; wait']\nfinally:\n  - id: report\n    type: emit\n    to: stderr\n    text: \"finally saw {{ run.status }}\"\n",
    );
    let report = case.path("report.json");
    let child = case
        .command(&["--report", report.to_str().expect("utf8")], &[])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !case.path("grandchild.pid").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .expect("signal");
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(143), "{}", stderr(&output));
    assert!(stderr(&output).contains("finally saw cancelled"), "{}", stderr(&output));
    let pid: i32 =
        std::fs::read_to_string(case.path("grandchild.pid")).expect("pid").trim().parse().expect("pid");
    let deadline = Instant::now() + Duration::from_secs(3);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(pid), "grandchild survived SIGTERM");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    assert_eq!(report["status"], "cancelled");
    assert_eq!(report["exit_code"], 143);
}

#[test]
fn for_each_parallel_overlaps_requests_up_to_the_cap() {
    let server = Server::start(|_, _| Response::json(200, &json!({})).after(Duration::from_millis(50)));
    let case = Case::new(&format!(
        "name: t\napis:\n  fake: {{base_url: \"{}\"}}\nsteps:\n  - id: fan\n    type: for_each\n    items: range(64)\n    parallel: 8\n    steps:\n      - id: get\n        type: http\n        api: fake\n        path: /item/{{{{ item }}}}\n    output: \"{{{{ item }}}}\"\noutputs:\n  order: \"{{{{ steps.fan.output }}}}\"\n",
        server.url
    ));
    let output = case.run(&["-o", "json"], &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(server.requests().len(), 64);
    let max = server.max_in_flight();
    assert!(max > 1 && max <= 8, "max in flight {max}");
    let order = finished(&events(&output))["outputs"]["order"].clone();
    assert_eq!(order, json!((0..64).collect::<Vec<_>>()), "results keep item order");
}

#[test]
fn inputs_are_typed_and_checked_before_anything_runs() {
    let case = Case::new(
        "name: t\ninputs:\n  count: {type: integer}\n  flag: {type: boolean, default: false}\nsteps:\n  - type: exec\n    argv: [touch, ran]\n",
    );
    for (args, message) in [
        (vec!["--input", "count=three"], "not a whole number"),
        (vec![], "input `count` is required"),
        (vec!["--input", "count=1", "--input", "flga=true"], "did you mean `flag`?"),
        (vec!["--input", "count=1", "--input", "flag=yes"], "expected `true` or `false`"),
    ] {
        let output = case.run(&args, &[]);
        assert_eq!(code(&output), 64, "{args:?}");
        assert!(stderr(&output).contains(message), "{args:?}: {}", stderr(&output));
        assert!(!case.path("ran").exists());
    }
    let output = case.run(&["--input", "count=1"], &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(case.path("ran").exists());
}

#[test]
fn an_invalid_workflow_runs_nothing() {
    let case = Case::new("name: t\nsteps:\n  - type: exec\n    argv: [touch, ran]\n    timout: 5s\n");
    let output = case.run(&[], &[]);
    assert_eq!(code(&output), 65);
    assert!(stderr(&output).contains("did you mean `timeout`?"));
    assert!(!case.path("ran").exists());
}

#[test]
fn stop_fail_finally_and_exit_codes() {
    let case = Case::new(
        "name: t\ninputs:\n  mode: {type: string}\nsteps:\n  - type: switch\n    cases:\n      - when: inputs.mode == 'stop'\n        steps:\n          - type: stop\n            exit_code: 3\n            outputs: {how: stopped}\n      - when: inputs.mode == 'fail'\n        steps:\n          - type: fail\n            message: \"failing on purpose\"\n            exit_code: 7\n  - type: emit\n    text: after\nfinally:\n  - type: emit\n    text: \"finally {{ run.status }}\"\noutputs:\n  how: normal\nexit_code: \"{{ 5 if inputs.mode == 'five' else 0 }}\"\n",
    );
    let stop = case.run(&["-i", "mode=stop"], &[]);
    assert_eq!(code(&stop), 3);
    assert_eq!(stdout(&stop), "finally ok\n");
    let fail = case.run(&["-i", "mode=fail"], &[]);
    assert_eq!(code(&fail), 7);
    assert_eq!(stdout(&fail), "finally failed\n");
    assert!(stderr(&fail).contains("failing on purpose"));
    let five = case.run(&["-i", "mode=five"], &[]);
    assert_eq!(code(&five), 5);
    assert_eq!(stdout(&five), "after\nfinally ok\n");
}

#[test]
fn on_error_continue_records_the_failure_and_goes_on() {
    let case = Case::new(
        "name: t\nsteps:\n  - id: bad\n    type: exec\n    on_error: continue\n    argv: [sh, -c, 'echo oops >&2; exit 4']\n  - type: emit\n    text: \"{{ steps.bad.status }} {{ steps.bad.output.exit_code }}\"\n",
    );
    let output = case.run(&[], &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "failed 4\n");
    assert!(stderr(&output).contains("oops"), "{}", stderr(&output));
}

#[test]
fn call_runs_a_sub_workflow_in_plan_mode() {
    let case = Case::new(
        "name: t\nsteps:\n  - id: sub\n    type: call\n    workflow: sub.yaml\n    plan: true\n    inputs: {name: x}\n  - type: emit\n    text: \"{{ steps.sub.output.greeting }}\"\n",
    );
    case.write(
        "sub.yaml",
        "name: sub\ninputs:\n  name: {type: string}\nsteps:\n  - id: write\n    type: exec\n    argv: [touch, \"{{ inputs.name }}\"]\noutputs:\n  greeting: \"hello {{ inputs.name }} ({{ steps.write.status }})\"\n",
    );
    let output = case.run(&[], &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "hello x (planned)\n");
    assert!(!case.path("x").exists(), "plan mode did not write");
}

#[test]
fn the_report_is_versioned_and_matches_its_schema() {
    let case = Case::new("name: t\nsteps:\n  - id: a\n    type: set\n    values: {x: 1}\n");
    let report = case.path("out/report.json");
    let output = case.run(&["--report", report.to_str().expect("utf8")], &[]);
    assert_eq!(code(&output), 0);
    let value: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    assert_eq!(value["version"], 2);
    assert_eq!(value["status"], "ok");
    assert_eq!(value["steps"][0]["path"], "a");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(super::root().join("schemas/run-report.schema.json"))
            .expect("committed schema"),
    )
    .expect("schema json");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    assert!(validator.is_valid(&value), "{value}");
}

// ---------------------------------------------------------------------------
// cron helpers (the tests are in cron_guard.rs, cron_read.rs, kubernetes.rs, ...)

/// A registry next to the workflow; `backend` is the cron_backend YAML.
fn registry(case: &Case, backend: &str) {
    case.write("prompt.md", "x\n");
    case.write(
        "lanes.yaml",
        &format!(
            "kind: lanes\ncron_backend: {backend}\nlanes:\n  - id: local\n    agent: a-local\n    model: m\n    purpose: p\n    cron: {{name: L, id: 6b09bed4-cfbe-4c35-bbee-2b66c5ef17aa, id_env: TEST_LOCAL_CRON_ID}}\n    runbook: r.md\n    prompt: prompt.md\n    terminal: {{clear: Pipeline is clear.}}\n  - id: cloud\n    agent: a-cloud\n    model: m\n    purpose: p\n    cron: {{name: C, id: 8a6daaff-641b-4e1c-a263-f3814b043539}}\n    runbook: r.md\n    prompt: prompt.md\n    terminal: {{clear: Cloud lane is clear.}}\nterminal_contract:\n  - {{id: stuck, pattern: 'Stuck: [^\\n]+\\.', verdict: accept}}\n  - {{id: narration, pattern: '(?s)(let me|now)\\b.*', verdict: reject, reason: narration, ignore_case: true}}\n  - {{id: no_match, pattern: '(?s).*', verdict: reject, reason: no match}}\n"
        ),
    );
}

/// A fake `openclaw` on PATH that records its arguments and exits with `code`.
/// What the fake `openclaw cron list --all --json` answers (the real CLI's shape):
/// local's cron disabled, cloud's enabled.
const JOBS: &str = r#"{"jobs": [{"id": "6b09bed4-cfbe-4c35-bbee-2b66c5ef17aa", "name": "L", "enabled": false}, {"id": "8a6daaff-641b-4e1c-a263-f3814b043539", "name": "C", "enabled": true}], "total": 2, "hasMore": false}"#;

/// A fake `openclaw` logging its arguments to `calls.log`: the list answers [`JOBS`],
/// any other command fails with `code` (0: succeeds).
fn fake_openclaw(case: &Case, code: i32) -> String {
    case.program(
        "openclaw",
        &format!(
            "#!/bin/sh\necho \"$@\" >> \"{}\"\nif [ \"$*\" = \"cron list --all --json\" ]; then\n  echo '{JOBS}'\n  exit 0\nfi\necho 'gateway unreachable' >&2\nexit {code}\n",
            case.path("calls.log").display()
        ),
    )
}

const CRON_WORKFLOW: &str = "name: t\nlanes: lanes.yaml\ninputs:\n  lane: {type: lane}\n  on: {type: boolean}\nsteps:\n  - id: toggle\n    type: cron\n    lane: \"{{ inputs.lane }}\"\n    enabled: \"{{ inputs.on }}\"\n    reason: test\noutputs:\n  result: \"{{ steps.toggle.output }}\"\n";

// ---------------------------------------------------------------------------
// End to end: the shipped Dispatch workflows against a stateful fake Dispatch

fn shipped(name: &str) -> String {
    super::root().join("workflows").join(name).display().to_string()
}

fn dispatch_run(dir: &Path, path: &str, url: &str, args: &[&str]) -> Output {
    std::process::Command::new(assert_cmd::cargo::cargo_bin!("runner"))
        .current_dir(dir)
        .arg("run")
        .args(args)
        .env("NO_COLOR", "1")
        .env("PATH", path)
        .env("DISPATCH_URL", url)
        .env("DISPATCH_AGENT_TOKEN", "e2e-token-77")
        .env("RUNNER_STATE_DIR", dir.join("state"))
        .env_remove("DISPATCH_AGENT_NAME")
        .env_remove("DISPATCH_LOCAL_CRON_ID")
        .env_remove("DISPATCH_CLOUD_CRON_ID")
        .env_remove("DISPATCH_FRONTIER_CRON_ID")
        .env_remove("GH")
        .output()
        .expect("runner runs")
}

#[test]
fn heartbeat_and_worker_preflight_against_a_stateful_dispatch() {
    use super::fake::dispatch::{Dispatch, checkout, cron_state, fake_programs};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = fake_programs(dir.path());
    let dispatch = Dispatch::start(Duration::ZERO);
    // local: nothing to do; cloud: a ready issue; frontier: active work to resume.
    dispatch.add_ready("cloud", "iss-42", "misospace/widgets", 42);
    dispatch.set_active("saffron-frontier", "frontier", "misospace/widgets", 7);

    let beat = dispatch_run(dir.path(), &path, &dispatch.server.url, &[&shipped("heartbeat.yaml")]);
    assert_eq!(code(&beat), 0, "{}\n{}", stdout(&beat), stderr(&beat));
    let crons = cron_state(dir.path());
    assert_eq!(
        crons.get("6b09bed4-cfbe-4c35-bbee-2b66c5ef17aa").map(String::as_str),
        Some("disabled"),
        "local: clear"
    );
    assert_eq!(
        crons.get("1723278d-2eaa-435b-9fda-0efe8febb30b").map(String::as_str),
        Some("enabled"),
        "frontier: active work"
    );
    // cloud's issue has no checkout under /data/git: the probe needs attention, cron untouched.
    assert_eq!(crons.get("8a6daaff-641b-4e1c-a263-f3814b043539"), None, "{crons:?}");
    let out = stdout(&beat);
    assert!(out.contains("cloud lane needs attention; leaving cron unchanged"), "{out}");
    let requests = dispatch.server.requests();
    // The heartbeat POST runs alongside the probes and the grooming read (one
    // `parallel` block), so it is not necessarily the first request; it is sent once.
    assert_eq!(
        requests.iter().filter(|r| r.method == "POST" && r.path() == "/api/agents/saffron/heartbeat").count(),
        1
    );
    assert!(
        requests
            .iter()
            .all(|r| r.headers.get("authorization").map(String::as_str) == Some("Bearer e2e-token-77"))
    );
    assert!(requests.iter().all(|r| r.path() != "/api/issues/claim"), "a probe never claims");
    {
        let state = dispatch.state.lock().expect("state");
        assert_eq!(state.heartbeats, vec!["saffron"]);
        assert_eq!(state.runs.len(), 1, "one run recorded");
        assert_eq!(state.runs[0]["runType"], "heartbeat");
        assert!(state.claims.is_empty());
    }

    // A cloud worker claims the issue (its checkout exists under the given root).
    let root = dir.path().join("git");
    checkout(&root, "misospace/widgets");
    let root_arg = format!("workspace_root={}", root.display());
    let preflight = shipped("worker-preflight.yaml");
    let worker = dispatch_run(
        dir.path(),
        &path,
        &dispatch.server.url,
        &[&preflight, "-i", "lane=cloud", "-i", "claim=true", "-i", "json=true", "-i", &root_arg],
    );
    assert_eq!(code(&worker), 0, "{}", stderr(&worker));
    let packet: Value = serde_json::from_str(stdout(&worker).trim()).expect("packet JSON");
    assert_eq!(packet["action"], "claim-ready-issue", "{packet}");
    assert_eq!(packet["issueKey"], "misospace/widgets#42");
    assert_eq!(
        dispatch.state.lock().expect("state").claims.get("iss-42").map(String::as_str),
        Some("saffron-cloud")
    );

    // Another agent on the same (stale) queue: the claim conflicts, exit 0, one-line terminal.
    let other = dispatch_run(
        dir.path(),
        &path,
        &dispatch.server.url,
        &[&preflight, "-i", "lane=cloud", "-i", "agent=saffron-cloud-2", "-i", "claim=true", "-i", &root_arg],
    );
    assert_eq!(code(&other), 0, "{}", stderr(&other));
    let terminal = stdout(&other);
    assert!(terminal.starts_with("Claim conflict on #42"), "{terminal}");
    assert_eq!(terminal.trim_end().lines().count(), 1, "{terminal}");
    assert_eq!(
        dispatch.state.lock().expect("state").claims.get("iss-42").map(String::as_str),
        Some("saffron-cloud")
    );

    // The local lane is clear: the worker's terminal text, exit 0.
    let clear = dispatch_run(dir.path(), &path, &dispatch.server.url, &[&preflight, "-i", "lane=local"]);
    assert_eq!(code(&clear), 0, "{}", stderr(&clear));
    assert_eq!(stdout(&clear), "Pipeline is clear.\n");
}

#[test]
fn templates_see_the_lifecycle_and_roles() {
    let case = Case::new(
        "name: t\nlifecycle: lifecycle.yaml\nsteps:\n  - type: emit\n    text: \"{{ lifecycle.states.todo.label }} {{ roles.developer.default_level }} {{ select_level('developer', 'Refactor it', '', []).max_workers }}\"\n",
    );
    case.write("roles.yaml", "kind: roles\nroles:\n  developer:\n    levels: {junior: haiku, senior: {model: opus, max_workers: 1}}\n    default_level: junior\n    completion: {done: COMPLETE}\n    level_selection:\n      rules: [{level: senior, keywords: [refactor]}]\n");
    case.write("lifecycle.yaml", "kind: lifecycle\ninitial: todo\nroles: roles.yaml\nstates:\n  todo: {type: queue, role: developer, label: To Do, on: {PICKUP: doing}}\n  doing: {type: active, role: developer, label: Doing, on: {COMPLETE: done}}\n  done: {type: terminal, label: Done}\n");
    let output = case.run(&[], &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "To Do junior 1\n");
}

mod bounds;
mod closed_stdout;
mod cron_guard;
mod cron_read;
mod devclaw;
mod fleet;
mod hardening_load;
mod hardening_net;
mod kubernetes;
mod lane_registry;
mod layers;
mod perf;
mod support;
mod template_pool;
mod test_and_replay;
mod validate_cache;
mod validate_leftovers;
mod walks;
