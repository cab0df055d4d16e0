//! Engine benchmarks: `cargo bench --bench engine`.
//!
//! Measures the real `runner` binary (the build cargo made for this bench):
//! - per-step overhead: a workflow of 10,000 `set` steps, minus a 1-step baseline;
//! - fan-out throughput: 1,000 HTTP calls with `parallel: 50` against a local fake
//!   server with a fixed latency, compared with the ideal N / parallel x latency;
//! - the shipped heartbeat (three lanes) against the fake Dispatch with 20 ms per
//!   request, compared with the sequential sum of its requests; the fake `gh` and
//!   `openclaw` sleep 50 ms before answering, as a real CLI takes to start;
//! - the same with the preflight's read-only stages prefetched (`--input prefetch=true`);
//! - scale: the shipped workflows with a generated registry of 100 lanes, same fakes:
//!   wall time, CPU time and peak memory of the `runner` process (from `/usr/bin/time`).
//!
//! Each figure is the mean of several runs. Nothing here is asserted: numbers go into
//! the README.
//!
//! `RUNNER_BENCH_ONLY=heartbeat` runs only the heartbeat and scale figures (the others
//! take a minute on a busy machine). `RUNNER_BENCH_ONLY=serve` starts the heartbeat's
//! fakes (3 lanes, 20 ms per request, slow CLIs), prints the environment and a
//! `runner run` command line for them and keeps them up for ten minutes, for profiling
//! one run by hand (`perf stat -r 20 ...`, `strace -f -tt ...`).
//!
//! To compare with an older version, build it elsewhere and point the bench at it:
//! `RUNNER_BENCH_BIN` (the `runner` binary) and `RUNNER_BENCH_WORKFLOWS` (its
//! `workflows` folder; `RUNNER_BENCH_HEARTBEAT` names one heartbeat file).

// A benchmark reports by printing; setup failures may panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::print_stdout)]
// Test-crate helpers (tests/fake) are `pub` for their sibling modules; the library itself
// denies unreachable `pub` (Cargo.toml).
#![allow(unreachable_pub)]

// The same fake server the tests use; the bench uses only part of it.
#[allow(dead_code)]
#[path = "../tests/fake/mod.rs"]
mod fake;

use std::process::Command;
use std::time::{Duration, Instant};

/// The `runner` binary measured: `RUNNER_BENCH_BIN`, else the one cargo built.
fn runner() -> std::path::PathBuf {
    std::env::var_os("RUNNER_BENCH_BIN").map_or_else(|| env!("CARGO_BIN_EXE_runner").into(), Into::into)
}

/// The workflows folder measured: `RUNNER_BENCH_WORKFLOWS`, else the shipped one.
fn workflows() -> std::path::PathBuf {
    std::env::var_os("RUNNER_BENCH_WORKFLOWS")
        .map_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows"), Into::into)
}

fn run(dir: &std::path::Path, file: &str) -> Duration {
    time(dir, &["run", file, "-q"])
}

fn time(dir: &std::path::Path, args: &[&str]) -> Duration {
    let file = args.get(1).copied().unwrap_or_default();
    let started = Instant::now();
    let status = Command::new(runner())
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
    if std::env::var("RUNNER_BENCH_ONLY").is_ok_and(|v| v == "serve") {
        serve();
        return;
    }
    if std::env::var("RUNNER_BENCH_ONLY").is_ok_and(|v| v == "heartbeat") {
        heartbeats();
        scale(100);
        return;
    }
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
    heartbeats();
    scale(100);
}

/// The heartbeat with prefetch off and on, each at 20 and 100 ms per request.
fn heartbeats() {
    // The critical path (dependent round trips) is what grows with the latency:
    // (time at 100 ms - time at 20 ms) / 80 ms.
    for prefetch in [false, true] {
        let (Some(fast), Some(slow)) = (heartbeat(20, prefetch), heartbeat(100, prefetch)) else { continue };
        println!(
            "heartbeat, prefetch {}: critical path ~{:.1} dependent requests ((t100 - t20) / 80 ms)",
            if prefetch { "on" } else { "off" },
            slow.saturating_sub(fast).as_secs_f64() / 0.080
        );
    }
}

/// How long the fake `gh` and `openclaw` take before they answer (a real CLI start).
const CLI_START: &str = "0.05";

/// The test suite's fake programs, each made to sleep [`CLI_START`] seconds first.
fn slow_programs(dir: &std::path::Path) -> String {
    let path = fake::dispatch::fake_programs(dir);
    for name in ["gh", "openclaw"] {
        let file = dir.join("bin").join(name);
        let text = std::fs::read_to_string(&file).expect("fake program");
        let body = text.strip_prefix("#!/bin/sh\n").expect("a sh script");
        std::fs::write(&file, format!("#!/bin/sh\nsleep {CLI_START}\n{body}")).expect("write program");
    }
    path
}

/// The heartbeat's fakes, kept up for ten minutes (see the module docs).
fn serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = slow_programs(dir.path());
    let dispatch = fake::dispatch::Dispatch::start(Duration::from_millis(20));
    dispatch.add_ready("cloud", "iss-1", "o/widgets", 1);
    dispatch.set_active("saffron-frontier", "frontier", "o/widgets", 2);
    println!(
        "cd {} && env PATH={path} DISPATCH_URL={} DISPATCH_AGENT_TOKEN=bench RUNNER_STATE_DIR={}/state {} run {} -q",
        dir.path().display(),
        dispatch.server.url,
        dir.path().display(),
        runner().display(),
        workflows().join("heartbeat.yaml").display()
    );
    std::thread::sleep(Duration::from_secs(600));
}

fn heartbeat(latency_ms: u64, prefetch: bool) -> Option<Duration> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = slow_programs(dir.path());
    let latency = Duration::from_millis(latency_ms);
    let dispatch = fake::dispatch::Dispatch::start(latency);
    dispatch.add_ready("cloud", "iss-1", "o/widgets", 1);
    dispatch.set_active("saffron-frontier", "frontier", "o/widgets", 2);
    // RUNNER_BENCH_HEARTBEAT names another heartbeat file (e.g. an older version copied
    // next to the shipped one) to compare before and after with the same binary.
    let workflow = std::env::var_os("RUNNER_BENCH_HEARTBEAT")
        .map_or_else(|| workflows().join("heartbeat.yaml"), std::path::PathBuf::from);
    let text = std::fs::read_to_string(&workflow).expect("heartbeat file");
    if prefetch && !text.contains("prefetch") {
        println!("heartbeat, 3 lanes, prefetch on: this heartbeat has no `prefetch` input; skipped");
        return None;
    }
    // Passed only when on, so an older heartbeat without the input runs too.
    let inputs: Vec<&str> = if prefetch { vec!["--input", "prefetch=true"] } else { Vec::new() };
    let edits =
        || std::fs::read_to_string(dir.path().join("cron-state.log")).map(|t| t.lines().count()).unwrap_or(0);
    let run = || {
        let started = Instant::now();
        let status = Command::new(runner())
            .current_dir(dir.path())
            .args(["run", workflow.to_str().expect("utf8"), "-q"])
            .args(&inputs)
            .envs(fake_env(dir.path(), &path, &dispatch.server.url))
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
    let events = Command::new(runner())
        .current_dir(dir.path())
        .args(["run", workflow.to_str().expect("utf8"), "-o", "json"])
        .args(&inputs)
        .envs(fake_env(dir.path(), &path, &dispatch.server.url))
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
        "heartbeat, 3 lanes, {} ms per request, CLIs start in {} s, prefetch {}: {:.0} ms for {per_run} requests (sequential sum {:.0} ms; {:.1}x faster)",
        latency.as_millis(),
        CLI_START,
        if prefetch { "on" } else { "off" },
        ms(mean),
        ms(sequential),
        sequential.as_secs_f64() / mean.as_secs_f64()
    );
    Some(mean)
}

/// The environment a runner started against the bench's fakes gets: the fake programs
/// first on PATH, the fake Dispatch, a token and a private state folder.
fn fake_env(dir: &std::path::Path, path: &str, url: &str) -> [(&'static str, std::ffi::OsString); 4] {
    [
        ("PATH", path.into()),
        ("DISPATCH_URL", url.into()),
        ("DISPATCH_AGENT_TOKEN", "bench".into()),
        ("RUNNER_STATE_DIR", dir.join("state").into_os_string()),
    ]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The shipped workflows against a generated registry of `lanes` lanes (each a copy of
/// a shipped lane with its own id, agent and cron id), the fake Dispatch at 20 ms per
/// request and the slow fake CLIs. Wall time, CPU time (user + system, the runner and
/// the programs it ran) and peak memory come from GNU `/usr/bin/time`, mean of 3 runs
/// after a warm-up (peak memory: the largest run).
fn scale(lanes: usize) {
    let time_program = std::path::Path::new("/usr/bin/time");
    if !time_program.exists() {
        println!("scale: /usr/bin/time not installed; skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = slow_programs(dir.path());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // The workflows folder as shipped, with the generated registry in place of lanes.yaml.
    let flows = dir.path().join("workflows");
    std::fs::create_dir_all(&flows).expect("mkdir");
    for entry in std::fs::read_dir(workflows()).expect("workflows") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_file() {
            std::fs::copy(entry.path(), flows.join(entry.file_name())).expect("copy");
        }
    }
    let prompts = dir.path().join("cron-prompts");
    std::fs::create_dir_all(&prompts).expect("mkdir");
    for entry in std::fs::read_dir(root.join("cron-prompts")).expect("prompts") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_file() {
            std::fs::copy(entry.path(), prompts.join(entry.file_name())).expect("copy");
        }
    }
    let (registry, cron_ids) = generated_registry(lanes);
    std::fs::write(flows.join("lanes.yaml"), registry).expect("write registry");
    // Every generated job known to the fake `openclaw`, every third one disabled.
    let seed: String = cron_ids
        .iter()
        .enumerate()
        .map(|(i, id)| format!("{id} {}\n", if i % 3 == 2 { "disabled" } else { "enabled" }))
        .collect();
    std::fs::write(dir.path().join("cron-seed.log"), seed).expect("write seed");

    let dispatch = fake::dispatch::Dispatch::start(Duration::from_millis(20));
    dispatch.add_ready("lane-001", "iss-1", "o/widgets", 1);
    dispatch.set_active("agent-002", "lane-002", "o/widgets", 2);
    let report = dir.path().join("time.txt");
    let run = || {
        let status = Command::new(time_program)
            .current_dir(dir.path())
            .args(["-f", "%e %U %S %M", "-o"])
            .arg(&report)
            .arg(runner())
            .args(["run", "workflows/heartbeat.yaml", "-q"])
            .envs(fake_env(dir.path(), &path, &dispatch.server.url))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("runner runs");
        assert!(status.success(), "heartbeat with {lanes} lanes failed");
        let text = std::fs::read_to_string(&report).expect("time report");
        let fields: Vec<f64> = text
            .lines()
            .last()
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        assert_eq!(fields.len(), 4, "unexpected /usr/bin/time output: {text}");
        (fields[0], fields[1] + fields[2], fields[3] / 1024.0)
    };
    run(); // warm-up; also switches the crons whose seed state differs from the verdicts
    let before = dispatch.server.requests().len();
    let runs = 3;
    let results: Vec<(f64, f64, f64)> = (0..runs).map(|_| run()).collect();
    let per_run = (dispatch.server.requests().len() - before) / runs;
    let wall = results.iter().map(|r| r.0).sum::<f64>() / runs as f64;
    let cpu = results.iter().map(|r| r.1).sum::<f64>() / runs as f64;
    let rss = results.iter().map(|r| r.2).fold(0.0, f64::max);
    println!(
        "scale: heartbeat, {lanes} lanes, 20 ms per request, CLIs start in {CLI_START} s: {wall:.2} s wall, {cpu:.2} s CPU, peak {rss:.0} MB; {per_run} requests per run, max {} in flight",
        dispatch.server.max_in_flight()
    );
}

/// A lane registry of `count` lanes in the shipped registry's shape, and their cron ids.
fn generated_registry(count: usize) -> (String, Vec<String>) {
    let shipped = std::fs::read_to_string(workflows().join("lanes.yaml")).expect("shipped registry");
    // Everything after the lane list (final forms, terminal contract) is kept as is.
    let tail = shipped.find("\nfinal_forms:").map(|at| &shipped[at..]).unwrap_or_default();
    let mut text = String::from("kind: lanes\ncron_backend:\n  type: openclaw\nlanes:\n");
    let mut ids = Vec::with_capacity(count);
    for i in 1..=count {
        let cron = format!("00000000-0000-4000-8000-{i:012}");
        text.push_str(&format!(
            "  - id: lane-{i:03}\n    agent: agent-{i:03}\n    model: m\n    purpose: Generated lane {i}.\n    cron: {{name: \"Lane {i}\", id: {cron}}}\n    runbook: r.md\n    prompt: ../cron-prompts/worker.md\n    terminal: {{clear: Lane {i} is clear.}}\n"
        ));
        ids.push(cron);
    }
    text.push_str(tail);
    (text, ids)
}
