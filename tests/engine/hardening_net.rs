//! Issue 8, network, process and secrets half: regression tests named after what they
//! prevent. Servers are on 127.0.0.1 (two ports where origins matter); nothing depends
//! on timing tighter than seconds.

use std::time::{Duration, Instant};

use serde_json::json;

use super::super::fake::{Response, Server};
use super::super::{code, stderr, stdout};
use super::{Case, events, finished, step};

/// A token with every character the runner encodes differently in URLs and JSON.
const SECRET: &str = "tok+/=&? \"\\x-91f3";

/// Server A answers `/start` with `status` to `location`, any other path with 200.
fn redirecting(status: u16, location: String) -> Server {
    Server::start(move |request, _| {
        if request.path() == "/start" {
            Response::raw(status, "").header("location", &location)
        } else {
            Response::json(
                200,
                &json!({"at": request.path(), "method": request.method, "body": request.body}),
            )
        }
    })
}

fn landing() -> Server {
    Server::start(|request, _| {
        Response::json(
            200,
            &json!({"landed": request.path(), "method": request.method, "body": request.body}),
        )
    })
}

/// An API with every way a credential can ride on a request.
fn credential_workflow(base: &str, api_extra: &str, step_extra: &str) -> String {
    format!(
        "name: t\nsecrets:\n  token: {{env: TEST_TOKEN}}\napis:\n  a:\n    base_url: \"{base}\"\n    bearer: \"{{{{ secrets.token }}}}\"\n    headers:\n      X-Api-Key: \"{{{{ secrets.token }}}}\"\n      X-Custom: \"v1 {{{{ secrets.token }}}}\"\n      Cookie: \"session=abc\"\n      Referer: \"http://127.0.0.1/origin?access_token=x\"\n      X-Plain: hello\n{api_extra}steps:\n  - id: call\n    type: http\n    api: a\n    path: /start\n    query: {{access_token: \"{{{{ secrets.token }}}}\"}}\n{step_extra}outputs:\n  result: \"{{{{ steps.call.output.body }}}}\"\n"
    )
}

fn header<'a>(request: &'a super::super::fake::Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).map(String::as_str)
}

#[test]
fn a_cross_origin_redirect_never_forwards_credentials_cookies_referer_or_secret_headers() {
    let b = landing();
    for status in [301, 302, 303] {
        let a = redirecting(status, format!("{}/landing?n=1", b.url));
        let case = Case::new(&credential_workflow(&a.url, "", ""));
        let output = case.run(&["-o", "json"], &[("TEST_TOKEN", SECRET)]);
        assert_eq!(code(&output), 0, "{status}: {}", stdout(&output));
        assert_eq!(finished(&events(&output))["outputs"]["result"]["landed"], "/landing");
        // A received everything (same origin as configured).
        let first = a.requests().pop().expect("A was asked");
        assert!(header(&first, "authorization").is_some_and(|v| v.starts_with("Bearer ")));
        assert!(header(&first, "x-api-key").is_some());
        // B received none of it.
        let second = b.requests().pop().expect("B was asked");
        for name in ["authorization", "x-api-key", "x-custom", "cookie", "referer"] {
            assert_eq!(header(&second, name), None, "{status}: `{name}` reached the other origin");
        }
        assert_eq!(header(&second, "x-plain"), Some("hello"), "harmless headers still go");
        assert_eq!(second.target, "/landing?n=1");
    }
}

#[test]
fn a_redirect_to_localhost_counts_as_another_origin() {
    let b = landing();
    let port = b.url.rsplit(':').next().unwrap_or_default().to_string();
    let a = redirecting(302, format!("http://localhost:{port}/landing"));
    let case = Case::new(&credential_workflow(&a.url, "", ""));
    let output = case.run(&["-o", "json"], &[("TEST_TOKEN", SECRET)]);
    // localhost may resolve to ::1 first, where nothing listens: only what reached B matters.
    if let Some(second) = b.requests().pop() {
        assert_eq!(header(&second, "authorization"), None);
        assert_eq!(header(&second, "x-custom"), None);
    } else {
        assert_eq!(code(&output), 1, "{}", stdout(&output));
    }
}

#[test]
fn a_307_or_308_never_resends_a_body_to_another_origin() {
    let b = landing();
    for status in [307, 308] {
        let a = redirecting(status, format!("{}/landing", b.url));
        let case = Case::new(&credential_workflow(
            &a.url,
            "",
            "    method: POST\n    body: {token: \"{{ secrets.token }}\"}\n",
        ));
        let output = case.run(&["-o", "json"], &[("TEST_TOKEN", SECRET)]);
        assert_eq!(code(&output), 1, "{status}: {}", stdout(&output));
        let error = step(&events(&output), "call")["error"].as_str().unwrap_or_default().to_string();
        assert!(error.contains("re-send the request body"), "{error}");
        assert!(b.requests().is_empty(), "{status}: the body went to the other origin");
    }
}

#[test]
fn a_same_origin_307_keeps_method_body_and_credentials() {
    let a = Server::start(|request, _| {
        if request.path() == "/start" {
            Response::raw(307, "").header("location", "/next")
        } else {
            Response::json(200, &json!({"method": request.method, "body": request.body}))
        }
    });
    let case = Case::new(&credential_workflow(&a.url, "", "    method: POST\n    body: {n: 1}\n"));
    let output = case.run(&["-o", "json"], &[("TEST_TOKEN", SECRET)]);
    assert_eq!(code(&output), 0, "{}", stdout(&output));
    assert_eq!(
        finished(&events(&output))["outputs"]["result"],
        json!({"method": "POST", "body": "{\"n\":1}"})
    );
    let second = a.requests().pop().expect("second request");
    assert_eq!(second.path(), "/next");
    assert!(header(&second, "authorization").is_some(), "same origin keeps the credentials");
}

#[test]
fn a_303_after_a_post_becomes_a_get_without_the_body() {
    let a = Server::start(|request, _| {
        if request.path() == "/start" {
            Response::raw(303, "").header("location", "/done")
        } else {
            Response::json(200, &json!({"method": request.method, "body": request.body}))
        }
    });
    let case = Case::new(&credential_workflow(&a.url, "", "    method: POST\n    body: {n: 1}\n"));
    let output = case.run(&["-o", "json"], &[("TEST_TOKEN", SECRET)]);
    assert_eq!(code(&output), 0, "{}", stdout(&output));
    assert_eq!(finished(&events(&output))["outputs"]["result"], json!({"method": "GET", "body": ""}));
}

#[test]
fn same_origin_redirects_refuse_any_other_origin() {
    let b = landing();
    let a = redirecting(302, format!("{}/landing", b.url));
    for (api_extra, step_extra) in
        [("    redirects: same_origin\n", ""), ("", "    redirects: same_origin\n")]
    {
        let case = Case::new(&credential_workflow(&a.url, api_extra, step_extra));
        let output = case.run(&["-o", "json"], &[("TEST_TOKEN", SECRET)]);
        assert_eq!(code(&output), 1, "{}", stdout(&output));
        let error = step(&events(&output), "call")["error"].as_str().unwrap_or_default().to_string();
        assert!(error.contains("refused a redirect") && error.contains("same_origin"), "{error}");
        assert_eq!(leaked_forms(&error), Vec::<&str>::new(), "{error}");
    }
    assert!(b.requests().is_empty());
}

#[test]
fn a_redirect_loop_stops_with_a_clear_error() {
    let a = Server::start(|_, _| Response::raw(302, "").header("location", "/start"));
    let case = Case::new(&credential_workflow(&a.url, "", ""));
    let output = case.run(&["-o", "json"], &[("TEST_TOKEN", SECRET)]);
    assert_eq!(code(&output), 1);
    let error = step(&events(&output), "call")["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("more than 5 redirects"), "{error}");
    assert_eq!(a.requests().len(), 6);
}

/// Every form of [`SECRET`] the runner could print.
fn leaked_forms(text: &str) -> Vec<&'static str> {
    [
        SECRET,
        "tok%2B%2F%3D%26%3F%20%22%5Cx-91f3",
        "tok%2B%2F%3D%26%3F+%22%5Cx-91f3",
        "tok+/=&? \\\"\\\\x-91f3",
        "x-91f3",
    ]
    .into_iter()
    .filter(|form| text.contains(form))
    .collect()
}

#[test]
fn an_encoded_or_escaped_secret_never_reaches_any_channel() {
    let server = Server::start(|_, _| Response::raw(500, "down"));
    let case = Case::new(&format!(
        "name: t\nsecrets:\n  token: {{env: TEST_TOKEN}}\napis:\n  a:\n    base_url: \"{}\"\nsteps:\n  - id: show\n    type: emit\n    json: {{token: \"{{{{ secrets.token }}}}\"}}\n  - id: write\n    type: http\n    api: a\n    method: POST\n    path: \"/t/{{{{ secrets.token }}}}\"\n    query: {{access_token: \"{{{{ secrets.token }}}}\"}}\n    body: {{token: \"{{{{ secrets.token }}}}\"}}\n  - id: call\n    type: http\n    api: a\n    path: \"/t/{{{{ secrets.token }}}}\"\n    query: {{access_token: \"{{{{ secrets.token }}}}\"}}\n",
        server.url
    ));
    let env = [("TEST_TOKEN", SECRET)];
    let report = case.path("report.json");
    let human = case.run(&["--report", report.to_str().unwrap_or_default()], &env);
    assert_eq!(code(&human), 1, "the 500 fails the run: {}", stderr(&human));
    let json_run = case.run(&["-o", "json"], &env);
    let dry = case.run(&["--dry-run", "-v", "-o", "json"], &env);
    let dry_human = case.run(&["--dry-run", "-v"], &env);
    let recorded = case.run(&["--record", "rec.test.yaml"], &env);
    let recording = std::fs::read_to_string(case.path("rec.test.yaml")).unwrap_or_default();
    let channels = [
        ("human stdout", stdout(&human)),
        ("human stderr", stderr(&human)),
        ("json events", stdout(&json_run)),
        ("dry-run plan", stdout(&dry)),
        ("dry-run human", stderr(&dry_human)),
        ("record stderr", stderr(&recorded)),
        ("report", std::fs::read_to_string(&report).unwrap_or_default()),
        ("recording", recording),
    ];
    for (name, text) in &channels {
        assert!(!text.is_empty(), "{name} is empty");
        assert_eq!(leaked_forms(text), Vec::<&str>::new(), "{name} leaks:\n{text}");
    }
    // The server did receive the encoded token: the masking is of output only.
    let seen = server.requests();
    assert!(seen.iter().any(|r| r.target.contains("access_token=tok%2B%2F%3D%26%3F+%22%5Cx-91f3")));
    let error = step(&events(&json_run), "write")["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("/t/***?access_token=***"), "{error}");
}

#[test]
fn retry_after_cannot_park_a_run_past_max_backoff() {
    let server = Server::start(|_, n| {
        if n == 0 {
            Response::raw(429, "slow down").header("retry-after", "100000")
        } else {
            Response::json(200, &json!({"ok": true}))
        }
    });
    let case = Case::new(&super::http_workflow(
        &server.url,
        "  - id: call\n    type: http\n    api: fake\n    path: /x\n    retry: {attempts: 2, backoff: 10ms, max_backoff: 1s, jitter: false}\n",
    ));
    let started = Instant::now();
    let output = case.run(&["-o", "json"], &[]);
    assert_eq!(code(&output), 0, "{}", stdout(&output));
    assert!(started.elapsed() < Duration::from_secs(20), "waited {:?}", started.elapsed());
    let events = events(&output);
    let retry = events.iter().find(|e| e["event"] == "step_retry").expect("a retry");
    assert_eq!(retry["delay_ms"], 1000, "{retry}");
}

#[test]
fn retry_after_longer_than_the_step_timeout_fails_the_step_clearly() {
    let server = Server::start(|_, _| Response::raw(503, "busy").header("retry-after", "120"));
    let case = Case::new(&super::http_workflow(
        &server.url,
        "  - id: call\n    type: http\n    api: fake\n    path: /x\n    retry: {attempts: 3, backoff: 10ms, max_backoff: 5m}\n",
    ));
    let started = Instant::now();
    let output = case.run(&["-o", "json"], &[]);
    assert_eq!(code(&output), 1, "{}", stdout(&output));
    assert!(started.elapsed() < Duration::from_secs(20), "waited {:?}", started.elapsed());
    let error = step(&events(&output), "call")["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.contains("HTTP 503")
            && error.contains("asked to retry after 2m (Retry-After), longer than the step's timeout of 2s"),
        "{error}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_lock_wait_that_gives_up_names_its_unit() {
    let case = Case::new(
        "name: t\nconcurrency: {key: k, policy: wait, wait_timeout: 1s}\nsteps:\n  - type: exec\n    argv: [sleep, '5']\n",
    );
    let mut holder = case.command(&[], &[]).spawn().expect("spawn");
    let lock_dir = case.path("state/locks");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&lock_dir).map(|d| d.count()).unwrap_or(0) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let output = case.run(&[], &[]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code(&output), 75, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("gave up waiting for the concurrency key `k` after 1s"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_input_starting_with_a_dash_never_reaches_a_program_as_an_option() {
    let case = Case::new(
        "name: t\ninputs:\n  name: {type: string}\nsteps:\n  - id: copy\n    type: exec\n    argv: [cp, wf.yaml, \"{{ inputs.name }}\"]\n  - id: guarded\n    type: exec\n    argv: [cp, wf.yaml, --, \"{{ inputs.name }}\"]\n",
    );
    let output = case.run(&["-o", "json", "-i", "name=--target-directory=owned"], &[]);
    assert_eq!(code(&output), 1, "{}", stdout(&output));
    let error = step(&events(&output), "copy")["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("starts with `-`") && error.contains("options_from_input"), "{error}");
    assert!(!case.path("owned").exists());
    // With `--` first, the same value is a file name.
    let case = Case::new(
        "name: t\ninputs:\n  name: {type: string}\nsteps:\n  - id: guarded\n    type: exec\n    argv: [cp, wf.yaml, --, \"{{ inputs.name }}\"]\n",
    );
    let output = case.run(&["-i", "name=-dash-named-copy"], &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(case.path("-dash-named-copy").is_file());
}

#[test]
fn exec_stdout_over_the_cap_fails_instead_of_being_cut_silently() {
    let step_yaml = |extra: &str| {
        format!(
            "name: t\nsteps:\n  - id: big\n    type: exec\n    effect: read\n    argv: [head, -c, '11000000', /dev/zero]\n{extra}outputs:\n  truncated: \"{{{{ steps.big.output.truncated }}}}\"\n"
        )
    };
    let output = Case::new(&step_yaml("")).run(&["-o", "json"], &[]);
    assert_eq!(code(&output), 1);
    let error = step(&events(&output), "big")["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("more than 10485760 bytes to stdout"), "{error}");
    let output = Case::new(&step_yaml("    truncate: true\n")).run(&["-o", "json"], &[]);
    assert_eq!(code(&output), 0, "{}", stdout(&output));
    assert_eq!(finished(&events(&output))["outputs"]["truncated"], true);
}

#[test]
fn a_cut_cron_backend_stderr_ends_with_an_ellipsis() {
    let case = Case::new(super::CRON_WORKFLOW);
    super::registry(&case, "{type: openclaw}");
    let path = case.program("openclaw", &format!("#!/bin/sh\necho '{}' >&2\nexit 2\n", "word ".repeat(60)));
    let output = case.run(&["-o", "json", "-i", "lane=cloud", "-i", "on=false"], &[("PATH", &path)]);
    assert_eq!(code(&output), 1);
    let error = step(&events(&output), "toggle")["error"].as_str().unwrap_or_default().to_string();
    assert!(error.ends_with('…'), "{error}");
}

#[test]
fn validate_warns_when_an_input_reaches_argv_unguarded() {
    let case = Case::new(
        "name: t\ninputs:\n  rev: {type: string}\n  flag: {type: boolean}\nsteps:\n  - type: exec\n    argv: [git, log, \"{{ inputs.rev }}\", \"--all={{ inputs.flag }}\"]\n  - type: exec\n    argv: [git, log, --, \"{{ inputs.rev }}\"]\n  - type: exec\n    options_from_input: true\n    argv: [git, log, \"{{ inputs.rev }}\"]\n  - type: exec\n    argv: [git, show, \"HEAD:{{ inputs.rev }}\", \"--format={{ inputs.rev }}\"]\n",
    );
    let output = super::super::runner_in(case.dir.path(), &["validate", "wf.yaml"]);
    assert_eq!(code(&output), 0, "a warning is not an error: {}", stdout(&output));
    let warnings: Vec<String> =
        stderr(&output).lines().filter(|l| l.starts_with("warning")).map(str::to_string).collect();
    assert_eq!(
        warnings,
        vec![
            "warning[argv-option]: wf.yaml:7:22: input `rev` reaches argument 2 of `git` unguarded: a value starting with `-` is refused at run time"
        ],
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("= help: put `--` before it"));
}

/// Wait (a few seconds at most) for a file a program writes, then read the pid in it.
fn wait_for_pid(path: &std::path::Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(pid) = std::fs::read_to_string(path).ok().and_then(|t| t.trim().parse().ok()) {
            return pid;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} was never written", path.display());
}

fn gone_within(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while super::alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    !super::alive(pid)
}

const HOLDER: &str = "name: holder\nconcurrency: {key: shared-work, policy: wait, wait_timeout: 30s}\nsteps:\n  - id: slow\n    type: exec\n    timeout: 60s\n    argv: [sh, -c, 'sleep 60 & echo $! > grandchild.pid; echo $$ > child.pid; wait']\n";

#[test]
fn after_kill_9_of_the_runner_no_program_keeps_running() {
    let case = Case::new(HOLDER);
    let mut runner = case.command(&[], &[]).spawn().expect("spawn");
    let child = wait_for_pid(&case.path("child.pid"));
    let grandchild = wait_for_pid(&case.path("grandchild.pid"));
    runner.kill().expect("kill -9");
    let _ = runner.wait();
    assert!(gone_within(child, Duration::from_secs(5)), "the program {child} outlived the runner");
    assert!(gone_within(grandchild, Duration::from_secs(5)), "its child {grandchild} outlived the runner");
}

#[test]
fn a_killed_lock_holders_work_never_overlaps_the_next_holders() {
    let case = Case::new(HOLDER);
    case.write(
        "next.yaml",
        "name: next\nconcurrency: {key: shared-work, policy: fail}\nsteps:\n  - id: look\n    type: exec\n    effect: read\n    argv: [sh, -c, 'for p in $(cat child.pid grandchild.pid); do if [ -d /proc/$p ] && ! grep -q \"^[0-9]* ([^)]*) Z\" /proc/$p/stat; then echo \"$p alive\"; fi; done; echo checked']\noutputs:\n  seen: \"{{ steps.look.output.stdout }}\"\n",
    );
    let mut runner = case.command(&[], &[]).spawn().expect("spawn");
    wait_for_pid(&case.path("child.pid"));
    wait_for_pid(&case.path("grandchild.pid"));
    runner.kill().expect("kill -9");
    let _ = runner.wait();
    // Straight away: the next holder must not start while the old programs live.
    let next = std::process::Command::new(assert_cmd::cargo::cargo_bin!("runner"))
        .current_dir(case.dir.path())
        .args(["run", "next.yaml", "-o", "json"])
        .env("NO_COLOR", "1")
        .env("RUNNER_STATE_DIR", case.path("state"))
        .output()
        .expect("next run");
    assert_eq!(code(&next), 0, "the key is free once the old work is gone: {}", stdout(&next));
    assert_eq!(
        finished(&events(&next))["outputs"]["seen"],
        "checked\n",
        "old work overlapped the next holder"
    );
}

const SLOW_FINALLY: &str = "name: t\nsteps:\n  - id: slow\n    type: exec\n    timeout: 60s\n    argv: [sh, -c, 'echo $$ > child.pid; sleep 60']\nfinally:\n  - id: cleanup\n    type: exec\n    timeout: 120s\n    argv: [sh, -c, 'echo $$ > finally.pid; sleep 120']\n";

fn signal(child: &std::process::Child, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, signal).expect("signal");
}

#[test]
fn a_second_sigterm_ends_a_long_finally_step() {
    let case = Case::new(SLOW_FINALLY);
    let runner = case.command(&[], &[]).stderr(std::process::Stdio::piped()).spawn().expect("spawn");
    wait_for_pid(&case.path("child.pid"));
    signal(&runner, nix::sys::signal::Signal::SIGTERM);
    let cleanup = wait_for_pid(&case.path("finally.pid"));
    let started = Instant::now();
    signal(&runner, nix::sys::signal::Signal::SIGTERM);
    let output = runner.wait_with_output().expect("wait");
    assert!(started.elapsed() < Duration::from_secs(8), "the second SIGTERM was ignored");
    assert_eq!(output.status.code(), Some(143), "{}", stderr(&output));
    assert!(gone_within(cleanup, Duration::from_secs(5)), "the finally program survived");
}

#[test]
fn finally_after_a_signal_ends_within_the_grace_period() {
    let case = Case::new(SLOW_FINALLY);
    let runner = case.command(&[], &[]).stderr(std::process::Stdio::piped()).spawn().expect("spawn");
    wait_for_pid(&case.path("child.pid"));
    let started = Instant::now();
    signal(&runner, nix::sys::signal::Signal::SIGINT);
    let output = runner.wait_with_output().expect("wait");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "finally ran past the grace period: {took:?}");
    assert!(took >= Duration::from_secs(9), "finally was cut before the grace period: {took:?}");
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
}

#[test]
fn a_missing_program_is_still_named_through_the_supervisor() {
    let case =
        Case::new("name: t\nsteps:\n  - id: run\n    type: exec\n    argv: [no-such-program-8f3a, x]\n");
    let output = case.run(&["-o", "json"], &[]);
    assert_eq!(code(&output), 1);
    let error = step(&events(&output), "run")["error"].as_str().unwrap_or_default().to_string();
    assert_eq!(error, "program `no-such-program-8f3a` not found on PATH");
}
