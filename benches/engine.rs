//! Engine benchmarks: `cargo bench --bench engine`.
//!
//! Measures the real `runner` binary (the build cargo made for this bench):
//! - per-step overhead: a workflow of 10,000 `set` steps, minus a 1-step baseline;
//! - fan-out throughput: 1,000 HTTP calls with `parallel: 50` against a local fake
//!   server with a fixed latency, compared with the ideal N / parallel x latency;
//! - the shipped heartbeat (three lanes) against the fake Dispatch with 20 ms per
//!   request, compared with the sequential sum of its requests.
//!
//! Each figure is the mean of several runs. Nothing here is asserted: numbers go into
//! the README.

// A benchmark reports by printing; setup failures may panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::print_stdout)]

// The same fake server the tests use; the bench uses only part of it.
#[allow(dead_code)]
#[path = "../tests/fake/mod.rs"]
mod fake;

use std::process::Command;
use std::time::{Duration, Instant};

fn run(dir: &std::path::Path, file: &str) -> Duration {
    time(dir, &["run", file, "-q"])
}

fn time(dir: &std::path::Path, args: &[&str]) -> Duration {
    let file = args.get(1).copied().unwrap_or_default();
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_runner"))
        .current_dir(dir)
        .args(args)
        .env("RUNNER_STATE_DIR", dir.join("state"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("runner runs");
    assert!(status.success(), "{file} failed");
    started.elapsed()
}

fn mean(dir: &std::path::Path, file: &str, runs: u32) -> Duration {
    run(dir, file); // warm-up
    (0..runs).map(|_| run(dir, file)).sum::<Duration>() / runs
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();

    let mut steps = String::from("name: many\nsteps:\n");
    for i in 0..10_000 {
        steps.push_str(&format!("  - id: s{i}\n    type: set\n    values: {{n: \"{{{{ {i} + 1 }}}}\"}}\n"));
    }
    std::fs::write(path.join("many.yaml"), steps).expect("write");
    std::fs::write(
        path.join("one.yaml"),
        "name: one\nsteps:\n  - id: s\n    type: set\n    values: {n: \"{{ 1 + 1 }}\"}\n",
    )
    .expect("write");
    let one = mean(path, "one.yaml", 5);
    let many = mean(path, "many.yaml", 5);
    let validate = {
        time(path, &["validate", "many.yaml"]);
        (0..5).map(|_| time(path, &["validate", "many.yaml"])).sum::<Duration>() / 5
    };
    let per_step = (many.saturating_sub(one)).as_secs_f64() * 1e6 / 10_000.0;
    let engine_only = (many.saturating_sub(validate)).as_secs_f64() * 1e6 / 10_000.0;
    println!(
        "10,000 set steps: {:.0} ms total (validation alone {:.0} ms), 1-step baseline {:.1} ms => {per_step:.1} µs per step, {engine_only:.1} µs of it executing",
        ms(many),
        ms(validate),
        ms(one)
    );

    let latency = Duration::from_millis(20);
    let server = fake::Server::start(move |_, _| {
        fake::Response::json(200, &serde_json::json!({"ok": true})).after(latency)
    });
    std::fs::write(
        path.join("fan.yaml"),
        format!(
            "name: fan\napis:\n  fake: {{base_url: \"{}\"}}\nsteps:\n  - id: fan\n    type: for_each\n    items: range(1000)\n    parallel: 50\n    steps:\n      - id: get\n        type: http\n        api: fake\n        path: /item/{{{{ item }}}}\n",
            server.url
        ),
    )
    .expect("write");
    let fan = mean(path, "fan.yaml", 3);
    let ideal = latency * (1000 / 50);
    println!(
        "1,000 HTTP calls, parallel 50, {} ms latency: {:.0} ms (ideal {:.0} ms; {:.0}% of ideal throughput; max in flight {})",
        latency.as_millis(),
        ms(fan),
        ms(ideal),
        100.0 * ideal.as_secs_f64() / fan.as_secs_f64(),
        server.max_in_flight()
    );
    heartbeat(20);
    heartbeat(100);
}

fn heartbeat(latency_ms: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = fake::dispatch::fake_programs(dir.path());
    let latency = Duration::from_millis(latency_ms);
    let dispatch = fake::dispatch::Dispatch::start(latency);
    dispatch.add_ready("cloud", "iss-1", "o/widgets", 1);
    dispatch.set_active("saffron-frontier", "frontier", "o/widgets", 2);
    // RUNNER_BENCH_HEARTBEAT names another heartbeat file (e.g. an older version copied
    // next to the shipped one) to compare before and after with the same binary.
    let file = std::env::var("RUNNER_BENCH_HEARTBEAT").unwrap_or_else(|_| "workflows/heartbeat.yaml".into());
    let workflow = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let edits =
        || std::fs::read_to_string(dir.path().join("cron-state.log")).map(|t| t.lines().count()).unwrap_or(0);
    let run = || {
        let started = Instant::now();
        let status = Command::new(env!("CARGO_BIN_EXE_runner"))
            .current_dir(dir.path())
            .args(["run", workflow.to_str().expect("utf8"), "-q"])
            .env("PATH", &path)
            .env("DISPATCH_URL", &dispatch.server.url)
            .env("DISPATCH_AGENT_TOKEN", "bench")
            .env("RUNNER_STATE_DIR", dir.path().join("state"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("runner runs");
        assert!(status.success(), "heartbeat failed");
        started.elapsed()
    };
    let first_edits = edits();
    run();
    // The first run switches the crons whose state differs from the fake's seed; the
    // timed runs find them already switched (the steady state of a heartbeat).
    let first_edits = edits() - first_edits;
    let before = dispatch.server.requests().len();
    let edits_before = edits();
    let runs = 5;
    let mean = (0..runs).map(|_| run()).sum::<Duration>() / runs;
    let per_run = (dispatch.server.requests().len() - before) / runs as usize;
    println!(
        "  cron edits: {first_edits} in the first run, {:.1} per timed run",
        (edits() - edits_before) as f64 / f64::from(runs)
    );
    let sequential = latency * per_run as u32;
    // Where the time goes: the slowest steps of one run, from the JSON events.
    let events = Command::new(env!("CARGO_BIN_EXE_runner"))
        .current_dir(dir.path())
        .args(["run", workflow.to_str().expect("utf8"), "-o", "json"])
        .env("PATH", &path)
        .env("DISPATCH_URL", &dispatch.server.url)
        .env("DISPATCH_AGENT_TOKEN", "bench")
        .env("RUNNER_STATE_DIR", dir.path().join("state"))
        .output()
        .expect("runner runs");
    let mut steps: Vec<(u64, String)> = String::from_utf8_lossy(&events.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "step_finished" && !e["path"].as_str().unwrap_or_default().contains('.'))
        .map(|e| (e["duration_ms"].as_u64().unwrap_or(0), e["path"].as_str().unwrap_or_default().to_string()))
        .collect();
    steps.sort_by(|a, b| b.cmp(a));
    let top: Vec<String> = steps.iter().take(5).map(|(ms, path)| format!("{path} {ms} ms")).collect();
    println!("  top-level steps: {}", top.join(", "));
    println!(
        "heartbeat, 3 lanes, {} ms per request: {:.0} ms for {per_run} requests (sequential sum {:.0} ms; {:.1}x faster)",
        latency.as_millis(),
        ms(mean),
        ms(sequential),
        sequential.as_secs_f64() / mean.as_secs_f64()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
