//! `runner validate` on the shipped files: `cargo bench --bench validate`.
//!
//! Runs the release binary cargo built for this bench, from the repository root with
//! no arguments (every YAML file under workflows/, cron-prompts/ and examples/), a few
//! times to warm the page cache and then `RUNNER_BENCH_RUNS` times (default 50), and
//! prints the mean wall time, the mean CPU time (user + system, the runner and the
//! template children it starts, from `getrusage(RUSAGE_CHILDREN)`) and the file count.
//! Nothing is asserted: the figures go into the notes and the README (issue 12 asks
//! for at most 10 ms wall on a 2-core machine). Three lines: the default (the result
//! cache on, in a cache folder of the bench's own that the warm-up runs fill: nothing
//! changed since the last run, the case of an editor or a pre-commit hook), every file
//! checked (`--no-cache`: a fresh checkout, CI), and every file checked with
//! `RUNNER_TEMPLATE_CHILD=0` (templates evaluated in-process), to show what the
//! template children cost.

// A benchmark reports by printing; setup failures may panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::print_stdout)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};

/// CPU time (user + system) of every child waited for so far.
fn children_cpu() -> Duration {
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let time = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
    };
    time(usage.user_time()) + time(usage.system_time())
}

/// How a run is made.
#[derive(Clone, Copy)]
struct Mode {
    cache: bool,
    children: bool,
}

/// One run of `runner validate`; returns its wall time and its "ok: N files valid" line.
fn validate(mode: Mode, cache_dir: &std::path::Path) -> (Duration, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_runner"));
    command
        .arg("validate")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUNNER_CACHE_DIR", cache_dir)
        .stderr(Stdio::null());
    if !mode.cache {
        command.arg("--no-cache");
    }
    if !mode.children {
        command.env("RUNNER_TEMPLATE_CHILD", "0");
    }
    let started = Instant::now();
    let output = command.output().expect("runner runs");
    let wall = started.elapsed();
    assert!(output.status.success(), "the shipped files do not validate");
    (wall, String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn main() {
    let runs: u32 = std::env::var("RUNNER_BENCH_RUNS").ok().and_then(|n| n.parse().ok()).unwrap_or(50);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?").to_string();
    let cache_dir = tempfile::tempdir().expect("a cache folder");
    let modes = [
        ("default: result cache, nothing changed", Mode { cache: true, children: true }),
        ("--no-cache: every file checked", Mode { cache: false, children: true }),
        ("--no-cache, RUNNER_TEMPLATE_CHILD=0", Mode { cache: false, children: false }),
    ];
    for (label, mode) in modes {
        for _ in 0..5 {
            validate(mode, cache_dir.path());
        }
        let cpu_before = children_cpu();
        let mut wall = Duration::ZERO;
        let mut min = Duration::MAX;
        let mut summary = String::new();
        for _ in 0..runs {
            let (took, line) = validate(mode, cache_dir.path());
            wall += took;
            min = min.min(took);
            summary = line;
        }
        let cpu = children_cpu().saturating_sub(cpu_before);
        println!(
            "validate, shipped files ({summary}), {label}: {:.1} ms wall mean, {:.1} ms min, \
             {:.1} ms CPU (user+sys) mean, {runs} runs, load average {load}",
            wall.as_secs_f64() * 1000.0 / f64::from(runs),
            min.as_secs_f64() * 1000.0,
            cpu.as_secs_f64() * 1000.0 / f64::from(runs),
        );
    }
}
