//! Engine benchmarks: `cargo bench --bench engine`.
//!
//! Measures the real `runner` binary (the build cargo made for this bench):
//! - per-step overhead: a workflow of 10,000 `set` steps, minus a 1-step baseline;
//! - fan-out throughput: 1,000 HTTP calls with `parallel: 50` against a local fake
//!   server with a fixed latency, compared with the ideal N / parallel x latency.
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
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
