//! Run history (`runner runs`, `runner show`, `--html`), the scheduler
//! (`runner schedule`) and the deployment files in deploy/.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::{code, stderr, stdout};

/// A temp dir with a state dir and workflows written into it.
struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir { dir: tempfile::tempdir().expect("tempdir") }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    fn state(&self) -> PathBuf {
        self.path("state")
    }

    /// `runner ARGS...` in the dir with its private state dir.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin!("runner"));
        command
            .current_dir(self.dir.path())
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUNNER_STATE_DIR", self.state());
        command
    }

    fn runner(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("runner runs")
    }

    fn runs_json(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["runs", "--output", "json"];
        all.extend_from_slice(args);
        let output = self.runner(&all);
        assert_eq!(code(&output), 0, "{}", stderr(&output));
        serde_json::from_str::<Value>(&stdout(&output)).expect("json").as_array().cloned().unwrap_or_default()
    }
}

const DEMO: &str = "name: demo\ninputs:\n  who: {type: string, default: world}\nsecrets:\n  token: {env: DEMO_TOKEN}\nsteps:\n  - id: hello\n    type: exec\n    effect: read\n    argv: [echo, \"hi {{ inputs.who }}\"]\n  - id: fan\n    type: for_each\n    items: \"[1, 2, 3]\"\n    parallel: 3\n    steps:\n      - id: nap\n        type: exec\n        effect: read\n        argv: [sleep, \"0.3\"]\n  - id: bad\n    type: exec\n    effect: read\n    argv: [sh, -c, \"exit 3\"]\n";

fn demo(dir: &Dir) -> Output {
    dir.write("demo.yaml", DEMO);
    dir.command(&["run", "demo.yaml", "-q", "-i", "who=s3cr3t-value"])
        .env("DEMO_TOKEN", "s3cr3t-value")
        .output()
        .expect("runner runs")
}

#[test]
fn every_run_is_stored_and_listed_unless_no_history() {
    let dir = Dir::new();
    dir.write("ok.yaml", "name: fine\nsteps:\n  - type: emit\n    text: hi\n");
    assert_eq!(code(&dir.runner(&["run", "ok.yaml", "-q"])), 0);
    assert_eq!(code(&demo(&dir)), 1);
    assert_eq!(code(&dir.runner(&["run", "ok.yaml", "-q", "--no-history"])), 0);
    let runs = dir.runs_json(&[]);
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0]["workflow"], "demo", "newest first");
    assert_eq!((runs[0]["status"].as_str(), runs[0]["exit_code"].as_i64()), (Some("failed"), Some(1)));
    assert_eq!(runs[1]["workflow"], "fine");
    assert_eq!(dir.runs_json(&["--status", "ok"]).len(), 1);
    assert_eq!(dir.runs_json(&["--workflow", "demo"]).len(), 1);
    assert_eq!(dir.runs_json(&["--since", "1h"]).len(), 2);
    assert_eq!(dir.runs_json(&["--since", "2099-01-01T00:00:00Z"]).len(), 0);
    let human = dir.runner(&["runs"]);
    assert!(stdout(&human).contains("2 runs shown"), "{}", stdout(&human));
    assert_eq!(code(&dir.runner(&["runs", "--status", "weird"])), 64);
}

#[test]
fn show_prints_the_tree_with_start_times_version_and_masked_inputs() {
    let dir = Dir::new();
    demo(&dir);
    let id = dir.runs_json(&[])[0]["id"].as_str().expect("id").to_string();
    let shown = dir.runner(&["show", &id[..26]]);
    assert_eq!(code(&shown), 0, "{}", stderr(&shown));
    let text = stdout(&shown);
    assert!(!text.contains("s3cr3t-value"), "the input holding the secret is masked:\n{text}");
    assert!(text.contains("input    who = \"***\""), "{text}");
    assert!(text.contains(&format!("runner   {}", env!("CARGO_PKG_VERSION"))), "{text}");
    assert!(
        text.contains("FAILED   bad [exec]") && text.contains("error: `sh` exited with code 3"),
        "{text}"
    );
    assert!(text.contains("    fan[2].nap [exec]"), "children are nested under their parent:\n{text}");
    let report: Value =
        serde_json::from_str(&stdout(&dir.runner(&["show", &id, "-o", "json"]))).expect("json");
    assert_eq!(report["version"], 2);
    // The three branches ran side by side: their intervals overlap.
    let naps: Vec<(u64, u64)> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["path"].as_str().is_some_and(|p| p.ends_with(".nap")))
        .map(|s| (s["start_ms"].as_u64().expect("start"), s["duration_ms"].as_u64().expect("duration")))
        .collect();
    assert_eq!(naps.len(), 3);
    let latest_start = naps.iter().map(|n| n.0).max().expect("max");
    let earliest_end = naps.iter().map(|n| n.0 + n.1).min().expect("min");
    assert!(latest_start < earliest_end, "parallel branches overlap: {naps:?}");
    assert_eq!(code(&dir.runner(&["show", "nope"])), 66);
}

#[test]
fn concurrent_runs_each_get_their_own_entry_and_retention_keeps_the_newest() {
    let dir = Dir::new();
    dir.write(
        "ok.yaml",
        "name: fine\nsteps:\n  - type: exec\n    effect: read\n    argv: [sleep, \"0.2\"]\n",
    );
    let children: Vec<_> = (0..8)
        .map(|_| {
            dir.command(&["run", "ok.yaml", "-q"]).stderr(std::process::Stdio::null()).spawn().expect("spawn")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().expect("wait").success());
    }
    let runs = dir.runs_json(&[]);
    assert_eq!(runs.len(), 8, "{runs:?}");
    for run in &runs {
        let shown = dir.runner(&["show", run["id"].as_str().expect("id"), "-o", "json"]);
        assert_eq!(code(&shown), 0, "every entry is a whole report: {}", stderr(&shown));
    }
    let newest = runs[0]["id"].clone();
    let kept = dir.command(&["run", "ok.yaml", "-q"]).env("RUNNER_HISTORY_KEEP", "3").output().expect("run");
    assert_eq!(code(&kept), 0);
    let left = dir.runs_json(&[]);
    assert_eq!(left.len(), 3, "{left:?}");
    assert_eq!(left[1]["id"], newest, "the newest are kept");
}

/// A browser that can load a page headless, if this machine has one.
fn browser() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|dir| Path::new(dir).join(name))
            .find(|path| path.is_file())
    })
}

#[test]
fn the_html_timeline_has_a_bar_for_every_step_in_a_real_browser() {
    let dir = Dir::new();
    demo(&dir);
    let id = dir.runs_json(&[])[0]["id"].as_str().expect("id").to_string();
    let page = dir.path("run.html");
    let written = dir.runner(&["show", &id, "--html", page.to_str().expect("utf8")]);
    assert_eq!(code(&written), 0, "{}", stderr(&written));
    let html = std::fs::read_to_string(&page).expect("page");
    assert!(!html.contains("s3cr3t-value"));
    assert!(!html.contains("src=") && !html.contains("href="), "self-contained: no external assets");
    let report: Value =
        serde_json::from_str(&stdout(&dir.runner(&["show", &id, "-o", "json"]))).expect("json");
    let paths: Vec<String> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["path"].as_str().expect("path").to_string())
        .collect();
    assert_eq!(paths.len(), 6, "{paths:?}");
    let Some(browser) = browser() else {
        eprintln!("SKIPPED: no chromium on PATH; `.ci/run` installs Debian's chromium for this test");
        return;
    };
    let profile = dir.path("profile");
    let dom = Command::new(&browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("browser runs");
    let dom = stdout(&dom);
    assert!(dom.contains("</body>"), "the browser rendered the page: {dom}");
    for path in &paths {
        let bar = format!("data-step=\"{path}\"");
        assert_eq!(dom.matches(&bar).count(), 1, "one bar for {path}");
    }
    assert!(dom.contains("class=\"bar failed\" data-step=\"bad\""), "the failure is marked");
}
