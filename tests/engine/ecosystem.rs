//! Fitting the ecosystem: diagrams Mermaid's own parser accepts, schemas that
//! third-party validators accept, CLI conventions (completions, man page, list,
//! workflow help, CI output formats).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{code, root, runner, shipped_yaml, stderr, stdout};

/// Run `command` to completion, killing it after `limit`.
fn output_within(mut command: Command, limit: Duration) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).expect("read stdout"),
        stderr: std::fs::read(&err_path).expect("read stderr"),
    }
}

/// Whether `node` runs on this machine.
fn node_available() -> bool {
    Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Mermaid parser check needs Node and `npm ci` in tests/mermaid (done by .ci/run).
fn mermaid_parser() -> Option<PathBuf> {
    if !node_available() {
        eprintln!(
            "SKIPPED: Mermaid's parser needs `node`, which is not on this machine; \
             the grammar-level unit test (src/mermaid.rs) still ran"
        );
        return None;
    }
    let dir = root().join("tests/mermaid");
    assert!(
        dir.join("node_modules/mermaid").is_dir(),
        "node is installed but Mermaid is not: run `npm ci --prefix tests/mermaid` (as .ci/run does)"
    );
    Some(dir.join("parse.mjs"))
}

fn parse_with_mermaid(script: &Path, files: &[PathBuf]) -> Output {
    let mut command = Command::new("node");
    command.arg(script).args(files);
    output_within(command, Duration::from_secs(120))
}

#[test]
fn every_shipped_graph_parses_with_mermaid() {
    let Some(script) = mermaid_parser() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut diagrams = Vec::new();
    for file in shipped_yaml() {
        let relative = file.strip_prefix(root()).unwrap_or(&file).display().to_string();
        let output = runner(&["graph", &relative]);
        match code(&output) {
            0 => {
                let path = dir.path().join(format!("{}.mmd", relative.replace('/', "_")));
                std::fs::write(&path, stdout(&output)).expect("write diagram");
                diagrams.push(path);
            }
            64 => {} // not a workflow or lifecycle (lanes, prompts, tests)
            other => panic!("runner graph {relative}: exit {other}\n{}", stderr(&output)),
        }
    }
    assert!(diagrams.len() >= 12, "only {} diagrams", diagrams.len());
    let output = parse_with_mermaid(&script, &diagrams);
    let report = stdout(&output);
    assert!(output.status.success(), "{report}{}", stderr(&output));
    assert_eq!(report.lines().filter(|l| l.starts_with("ok ")).count(), diagrams.len(), "{report}");
}

#[test]
fn graph_labels_with_every_delimiter_parse_with_mermaid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workflow = dir.path().join("nasty.yaml");
    std::fs::write(
        &workflow,
        r#"name: 'quotes " and `ticks` | pipes; #hash <b>'
inputs:
  x: {type: string, default: "a"}
steps:
  - id: pick
    type: switch
    cases:
      - when: "(inputs.x | upper) == '\"A\"; #b: `c` <d>'"
        steps:
          - {id: said, type: emit, text: "x"}
  - id: each
    type: for_each
    items: "[1, 2] | list"
    steps:
      - {id: inner, type: emit, text: "{{ item }}", when: "item > 1 and '|' in 'a|b'"}
"#,
    )
    .expect("write");
    let output = runner(&["graph", workflow.to_str().expect("utf8")]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let diagram = stdout(&output);
    assert!(diagram.contains("#quot;A#quot;#59; #35;b#58; #96;c#96; #lt;d#gt;"), "{diagram}");
    let Some(script) = mermaid_parser() else { return };
    let path = dir.path().join("nasty.mmd");
    std::fs::write(&path, &diagram).expect("write");
    let parsed = parse_with_mermaid(&script, &[path]);
    assert!(parsed.status.success(), "{}\n{diagram}", stdout(&parsed));
}
