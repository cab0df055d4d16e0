//! `runner … | head`: when the reader of stdout goes away, runner neither dies of
//! SIGPIPE (exit 141) nor prints a broken-pipe panic; the command ends with the
//! exit code it would have had.

use std::process::{Command, Stdio};

use super::super::{root, test_state_dir};

/// Run `runner ARGS` with stdout a pipe whose reading end is already closed.
fn with_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let output = Command::new(env!("CARGO_BIN_EXE_runner"))
        .current_dir(root())
        .args(args)
        .env("NO_COLOR", "1")
        .env("RUNNER_STATE_DIR", test_state_dir())
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("runner runs");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn a_closed_stdout_ends_quietly_with_the_usual_code() {
    for (args, expected) in [
        (&["schema", "workflow"][..], 0),
        (&["list"][..], 0),
        (&["--help"][..], 0),
        (&["graph", "workflows/heartbeat.yaml"][..], 0),
        (&["run", "examples/hello.yaml", "--input", "who=Ada", "--no-history", "--quiet"][..], 0),
        (&["render", "--check"][..], 64),
    ] {
        let (code, stderr) = with_closed_stdout(args);
        assert_eq!(code, Some(expected), "runner {}: {stderr}", args.join(" "));
        for bad in ["Broken pipe", "panicked", "failed printing"] {
            assert!(!stderr.contains(bad), "runner {}: {stderr}", args.join(" "));
        }
    }
}
