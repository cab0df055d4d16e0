//! Loader benchmark: `cargo bench --bench load`.
//!
//! `runner validate` (the release build cargo made for this bench) on a workflow whose
//! `vars:` is one flow map on a single 5 MB line (about 75,000 entries), once with ASCII
//! values and once with multibyte ones, compared with the same map written one entry
//! per line. Positions are
//! resolved per node, so a long line must cost no more than many short ones.
//! Nothing is asserted: the figures go into the notes and the README.

// A benchmark reports by printing; setup failures may panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::print_stdout)]
// Test-crate helpers (tests/fake) are `pub` for their sibling modules; the library itself
// denies unreachable `pub` (Cargo.toml).
#![allow(unreachable_pub)]

use std::process::Command;
use std::time::{Duration, Instant};

const TARGET_BYTES: usize = 5 * 1024 * 1024;
/// Entries of about 70 bytes, like the steps of the README's 5 MB workflow.
const VALUE: &str = "\"a text value of sixty characters, give or take a few chars\"";
const MULTIBYTE: &str = "\"é😀ü a text value with multibyte characters, 60 or so chars\"";

fn workflow(one_line: bool, value: &str) -> String {
    let mut text = String::from("name: big\nvars:");
    let mut entries = 0usize;
    if one_line {
        text.push_str(" {");
    } else {
        text.push('\n');
    }
    while text.len() < TARGET_BYTES {
        if one_line {
            if entries > 0 {
                text.push_str(", ");
            }
            text.push_str(&format!("k{entries}: {value}"));
        } else {
            text.push_str(&format!("  k{entries}: {value}\n"));
        }
        entries += 1;
    }
    if one_line {
        text.push_str("}\n");
    }
    text.push_str("steps:\n  - id: a\n    type: set\n    values: {x: 1}\n");
    text
}

fn validate(path: &std::path::Path) -> Duration {
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_runner"))
        .arg("validate")
        .arg(path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("runner runs");
    assert!(status.success(), "{} does not validate", path.display());
    started.elapsed()
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (label, one_line, value) in [
        ("one line, ASCII", true, VALUE),
        ("one line, multibyte", true, MULTIBYTE),
        ("one entry per line, ASCII", false, VALUE),
    ] {
        let path = dir.path().join("big.yaml");
        let text = workflow(one_line, value);
        std::fs::write(&path, &text).expect("write");
        let runs = 3;
        let total: Duration = (0..runs).map(|_| validate(&path)).sum();
        println!(
            "validate, {:.1} MB, {label}: {:.2} s (mean of {runs})",
            text.len() as f64 / 1_048_576.0,
            total.as_secs_f64() / f64::from(runs)
        );
    }
}
