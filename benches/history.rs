//! Run history benchmarks: `cargo bench --bench history`.
//!
//! Measures the real `runner` binary (the build cargo made for this bench) listing a
//! history of 1,000 stored runs: `runner runs` (all, human), `runner runs --output json`
//! and a filtered listing, end to end including process start. Also the time to store
//! one run with 1,000 already present (the retention pass lists the directory too).
//! Each figure is the mean of 20 runs. Nothing is asserted: numbers go into the README.

// A benchmark reports by printing; setup failures may panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::print_stdout)]
// Test-crate helpers (tests/fake) are `pub` for their sibling modules; the library itself
// denies unreachable `pub` (Cargo.toml).
#![allow(unreachable_pub)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use runner::support::{Retention, RunReport, RunStatus, history_dir, history_list, new_run_id, store_run};

const ENTRIES: usize = 1000;
const ROUNDS: u32 = 20;

fn time(state: &Path, args: &[&str]) -> Duration {
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(args)
        .env("RUNNER_STATE_DIR", state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("runner runs");
    assert!(status.success(), "{args:?} failed");
    started.elapsed()
}

fn mean(state: &Path, args: &[&str]) -> Duration {
    time(state, args); // warm the page cache
    (0..ROUNDS).map(|_| time(state, args)).sum::<Duration>() / ROUNDS
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path();
    let base = SystemTime::now() - Duration::from_secs(3600);
    let statuses = [RunStatus::Ok, RunStatus::Ok, RunStatus::Ok, RunStatus::Failed, RunStatus::Skipped];
    let started = Instant::now();
    for i in 0..ENTRIES {
        let at = base + Duration::from_secs(i as u64);
        let report = RunReport {
            run_id: new_run_id(at),
            workflow: if i % 3 == 0 { "worker-preflight".into() } else { "heartbeat".into() },
            status: Some(statuses[i % statuses.len()]),
            exit_code: Some(if i % 5 == 3 { 1 } else { 0 }),
            duration_ms: 900 + (i as u64 % 700),
            started_at: runner::support::timestamp(at),
            outputs: serde_json::json!({"lanes": {"local": "clear", "cloud": "work", "frontier": "stuck"}}),
            ..RunReport::default()
        };
        store_run(state, &report, Retention { keep: ENTRIES, max_age: Duration::from_secs(86_400) })
            .expect("store");
    }
    let store_all = started.elapsed();
    println!(
        "history: {ENTRIES} entries stored in {store_all:.1?} ({:.2?} per store incl. retention pass)",
        store_all / ENTRIES as u32
    );
    println!("runner runs                          {:>8.2?}", mean(state, &["runs"]));
    println!("runner runs --output json            {:>8.2?}", mean(state, &["runs", "--output", "json"]));
    println!(
        "runner runs --status failed -w heartbeat --since 2h {:>8.2?}",
        mean(state, &["runs", "--status", "failed", "--workflow", "heartbeat", "--since", "2h"])
    );
    let id = history_list(&history_dir(state))[500].id.clone();
    println!("runner show ID (of 1,000)            {:>8.2?}", mean(state, &["show", &id]));
}
