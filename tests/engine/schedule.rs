//! Run history (`runner runs`, `runner show`, `--html`), the scheduler
//! (`runner schedule`) and the deployment files in deploy/.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::{code, root, stderr, stdout};

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
    let mut child = Command::new(&browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("browser starts");
    let mut pipe = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
        text
    });
    // The browser gets 60 s; a hung one is killed and the test fails.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{} did not finish within 60 s", browser.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let dom = reader.join().expect("reader");
    assert!(dom.contains("</body>"), "the browser rendered the page: {dom}");
    for path in &paths {
        let bar = format!("data-step=\"{path}\"");
        assert_eq!(dom.matches(&bar).count(), 1, "one bar for {path}");
    }
    assert!(dom.contains("class=\"bar failed\" data-step=\"bad\""), "the failure is marked");
}

// ---------------------------------------------------------------------------
// runner schedule

/// A running `runner schedule --output json`, its log lines read as they come.
struct Scheduler {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Scheduler {
    fn start(dir: &Dir, schedule: &str) -> Scheduler {
        let file = dir.write("schedule.yaml", schedule);
        let mut child = dir
            .command(&["schedule", file.to_str().expect("utf8"), "--output", "json", "--stop-timeout", "1s"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("runner schedule starts");
        let stdout = child.stdout.take().expect("stdout");
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    let _ = send.send(value);
                }
            }
        });
        Scheduler { child, lines, seen: Vec::new() }
    }

    /// Wait (at most 20 s) until a log line matches; every line seen is kept.
    fn wait_for(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        if let Some(found) = self.seen.iter().find(|v| matches(v)) {
            return found.clone();
        }
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(value) => {
                    self.seen.push(value.clone());
                    if matches(&value) {
                        return value;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        panic!("no `{what}` line within 20 s; saw:\n{:#?}", self.seen);
    }

    /// Wait until `count` lines of `event` were seen.
    fn wait_count(&mut self, event: &str, count: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while self.seen.iter().filter(|v| v["event"] == event).count() < count {
            let left = deadline.checked_duration_since(std::time::Instant::now()).unwrap_or_default();
            match self.lines.recv_timeout(left) {
                Ok(value) => self.seen.push(value),
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("fewer than {count} `{event}` lines within 20 s; saw:\n{:#?}", self.seen);
                }
            }
        }
    }

    fn event(&mut self, event: &str) -> Value {
        self.wait_for(event, |v| v["event"] == event)
    }

    /// SIGTERM, then the exit code (the scheduler is killed after 30 s).
    fn terminate(mut self) -> (i32, Vec<Value>) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the scheduler did not stop within 30 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        while let Ok(value) = self.lines.recv_timeout(std::time::Duration::from_secs(2)) {
            self.seen.push(value);
        }
        (status.code().unwrap_or(-1), self.seen)
    }
}

fn sleeper(dir: &Dir) {
    dir.write(
        "sleep.yaml",
        "name: sleeper\ninputs:\n  seconds: {type: string, default: \"30\"}\nsteps:\n  - id: nap\n    type: exec\n    effect: read\n    timeout: 60s\n    argv: [sleep, \"{{ inputs.seconds }}\"]\n",
    );
}

#[test]
fn next_prints_fire_times_across_dst_and_runs_nothing() {
    let dir = Dir::new();
    sleeper(&dir);
    let file = dir.write(
        "schedule.yaml",
        "kind: schedule\ntime_zone: Europe/Berlin\nentries:\n  - id: hourly\n    workflow: sleep.yaml\n    cron: \"0 * * * *\"\n",
    );
    let file = file.to_str().expect("utf8");
    let output = dir.runner(&["schedule", file, "--next", "3", "--from", "2026-10-24T23:30:00Z"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let text = stdout(&output);
    // 02:00 comes twice (CEST, then CET), one real hour apart: no double, no gap.
    assert!(text.contains("2026-10-25 02:00:00 +02:00 Sun  (00:00:00Z)"), "{text}");
    assert!(text.contains("2026-10-25 02:00:00 +01:00 Sun  (01:00:00Z)"), "{text}");
    assert!(text.contains("2026-10-25 03:00:00 +01:00 Sun  (02:00:00Z)"), "{text}");
    let json = dir.runner(&["schedule", file, "--next", "2", "--from", "2026-10-25T00:30:00Z", "-o", "json"]);
    let value: Value = serde_json::from_str(&stdout(&json)).expect("json");
    assert_eq!(
        value[0]["next"],
        serde_json::json!(["2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"])
    );
    assert!(!dir.state().exists(), "--next runs nothing and writes nothing");
}

#[test]
fn overlap_skip_then_sigterm_ends_the_child_records_it_cancelled_and_exits_143() {
    let dir = Dir::new();
    sleeper(&dir);
    let mut scheduler = Scheduler::start(
        &dir,
        "kind: schedule\nentries:\n  - id: nap\n    workflow: sleep.yaml\n    cron: \"@every 1s\"\n    overlap: skip\n",
    );
    let start = scheduler.event("start");
    let skip = scheduler.event("skip");
    assert_eq!(skip["reason"], "previous run still going");
    let (code, lines) = scheduler.terminate();
    assert_eq!(code, 143, "{lines:#?}");
    let end = lines.iter().find(|v| v["event"] == "end").expect("end line");
    assert_eq!((end["run_id"].clone(), end["status"].as_str()), (start["run_id"].clone(), Some("cancelled")));
    assert_eq!(lines.last().map(|v| v["event"].clone()), Some(Value::from("stopped")));
    let cancelled = dir.runs_json(&["--status", "cancelled"]);
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!(cancelled[0]["id"], start["run_id"], "the log names the stored run");
}

#[test]
fn overlap_queue_runs_the_waiting_fire_after_the_previous_one() {
    let dir = Dir::new();
    sleeper(&dir);
    let mut scheduler = Scheduler::start(
        &dir,
        "kind: schedule\nentries:\n  - id: nap\n    workflow: sleep.yaml\n    cron: \"@every 2s\"\n    inputs: {seconds: \"2.5\"}\n    overlap: queue\n",
    );
    let queued = scheduler.event("queued");
    let started = scheduler.wait_for("start of the queued fire", |v| {
        v["event"] == "start" && v["scheduled"] == queued["scheduled"]
    });
    let first_end = scheduler.event("end");
    assert_eq!(first_end["status"], "ok");
    assert_ne!(first_end["run_id"], started["run_id"]);
    let (code, _) = scheduler.terminate();
    assert_eq!(code, 143);
}

#[test]
fn overlap_replace_ends_the_running_child_and_starts_the_new_fire() {
    let dir = Dir::new();
    sleeper(&dir);
    let mut scheduler = Scheduler::start(
        &dir,
        "kind: schedule\nentries:\n  - id: nap\n    workflow: sleep.yaml\n    cron: \"@every 2s\"\n    overlap: replace\n",
    );
    let first = scheduler.event("start");
    let replace = scheduler.event("replace");
    assert_eq!(replace["run_id"], first["run_id"]);
    let ended = scheduler
        .wait_for("end of the replaced run", |v| v["event"] == "end" && v["run_id"] == first["run_id"]);
    assert_eq!(ended["status"], "replaced");
    scheduler
        .wait_for("the replacing start", |v| v["event"] == "start" && v["scheduled"] == replace["scheduled"]);
    let (code, _) = scheduler.terminate();
    assert_eq!(code, 143);
}

#[test]
fn a_crashing_child_does_not_stop_the_scheduler() {
    let dir = Dir::new();
    // The child `runner run` is killed by a signal of its own making: a crash. The
    // program's parent is runner's process supervisor; the run is the supervisor's parent.
    dir.write(
        "crash.yaml",
        "name: crash\nsteps:\n  - id: die\n    type: exec\n    effect: read\n    argv: [sh, -c, \"read -r _ _ _ run _ < /proc/$PPID/stat; kill -ABRT $run; sleep 5\"]\n",
    );
    let mut scheduler = Scheduler::start(
        &dir,
        "kind: schedule\nentries:\n  - id: crash\n    workflow: crash.yaml\n    cron: \"@every 1s\"\n",
    );
    let crashed = scheduler.event("end");
    assert_eq!(crashed["status"], "killed", "{crashed}");
    scheduler.wait_for("a later start", |v| v["event"] == "start" && v["run_id"] != crashed["run_id"]);
    let (exit, _) = scheduler.terminate();
    assert_eq!(exit, 143);
    // The crashed child wrote no report; the scheduler stored one for it.
    let shown = dir.runner(&["show", crashed["run_id"].as_str().expect("id"), "-o", "json"]);
    assert_eq!(code(&shown), 0, "{}", stderr(&shown));
    let report: Value = serde_json::from_str(&stdout(&shown)).expect("json");
    assert_eq!((report["workflow"].as_str(), report["status"].as_str()), (Some("crash"), Some("failed")));
    assert_eq!(report["exit_code"], 128 + 6, "SIGABRT");
    assert!(report["error"].as_str().is_some_and(|e| e.contains("killed by signal 6")), "{report}");
}

/// Pretend the scheduler last fired `entry` 35 minutes ago, then start it.
fn restarted(dir: &Dir, policy: &str) -> Scheduler {
    dir.write("quick.yaml", "name: quick\nsteps:\n  - type: emit\n    text: hi\n");
    // Fires 10, 20 and 30 minutes ago, and next in about half an hour: three missed
    // firings and none due while the test runs, whatever the wall-clock minute (a fixed
    // `*/10` made the test depend on whether it started next to a multiple of ten).
    let now = chrono::Utc::now();
    let minutes: Vec<String> = (1..=3)
        .map(|k| chrono::Timelike::minute(&(now - chrono::Duration::minutes(10 * k))).to_string())
        .collect();
    let schedule = format!(
        "kind: schedule\nentries:\n  - id: tenner\n    workflow: quick.yaml\n    cron: \"{} * * * *\"\n    missed: {policy}\n    max_missed: 2\n",
        minutes.join(",")
    );
    let file = dir.write("schedule.yaml", &schedule);
    let state_file = runner::support::state_file(&dir.state(), &file);
    let last = now - chrono::Duration::minutes(35);
    std::fs::create_dir_all(state_file.parent().expect("dir")).expect("mkdir");
    std::fs::write(&state_file, serde_json::json!({"last_fires": {"tenner": last.to_rfc3339()}}).to_string())
        .expect("state");
    Scheduler::start(dir, &schedule)
}

#[test]
fn missed_runs_after_a_restart_follow_the_policy() {
    for (policy, runs) in [("none", 0usize), ("last", 1), ("all", 2)] {
        let dir = Dir::new();
        let mut scheduler = restarted(&dir, policy);
        let missed = scheduler.event("missed");
        assert_eq!(missed["policy"], policy);
        assert!(missed["count"].as_u64().expect("count") >= 3, "{missed}");
        assert_eq!(missed["running"], runs);
        if runs > 0 {
            scheduler.wait_count("end", runs);
        }
        let (code, lines) = scheduler.terminate();
        assert_eq!(code, 143);
        let made_up = lines.iter().filter(|v| v["event"] == "start" && v["missed"] == true).count();
        assert_eq!(made_up, runs, "{policy}: {lines:#?}");
    }
}

// ---------------------------------------------------------------------------
// deploy/

/// Split a command line into words: whitespace separates, single and double quotes
/// group (enough for the shipped crontab and unit files).
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

/// The `runner ...` arguments of a command: from the word after the runner binary to
/// the first shell operator or redirection.
fn runner_args(words: &[String]) -> Vec<String> {
    let start = words.iter().position(|w| w.ends_with("/runner") || w == "runner").expect("a runner command");
    words[start + 1..]
        .iter()
        .take_while(|w| !w.starts_with('>') && !w.starts_with("2>") && *w != "&&" && *w != "|" && *w != ";")
        .cloned()
        .collect()
}

/// Run deploy arguments from the repository root, with the report path and the state
/// dir moved into `dir`.
fn run_deploy(dir: &Dir, args: &[String], extra: &[&str]) -> Output {
    let mut args: Vec<String> = args.to_vec();
    if let Some(at) = args.iter().position(|a| a == "--report") {
        args[at + 1] = dir.path("report.json").display().to_string();
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut command = Command::new(assert_cmd::cargo::cargo_bin!("runner"));
    command.current_dir(root()).args(&args).env("NO_COLOR", "1").env("RUNNER_STATE_DIR", dir.state());
    command.output().expect("runner runs")
}

#[test]
fn the_deploy_files_run_commands_and_flags_that_exist() {
    let deploy = root().join("deploy");
    let dir = Dir::new();
    let replay = ["--replay", "workflows/recordings/heartbeat.test.yaml"];

    // crontab: one job line; every % escaped; its runner command runs (replayed offline)
    // and writes its report.
    let crontab = std::fs::read_to_string(deploy.join("crontab")).expect("deploy/crontab");
    let jobs: Vec<&str> = crontab
        .lines()
        .filter(|l| {
            !l.trim().is_empty()
                && !l.starts_with('#')
                && !l.split_whitespace().next().unwrap_or("").contains('=')
        })
        .collect();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = jobs[0];
    assert!(job.match_indices('%').all(|(i, _)| job[..i].ends_with('\\')), "every % is escaped: {job}");
    let command = job.split_whitespace().skip(5).collect::<Vec<_>>().join(" ");
    let args = runner_args(&words(&command));
    assert_eq!(args[..2], ["run".to_string(), "workflows/heartbeat.yaml".to_string()], "{args:?}");
    let output = run_deploy(&dir, &args, &replay);
    assert_eq!(code(&output), 0, "{args:?}: {}", stderr(&output));
    assert!(dir.path("report.json").is_file(), "--report wrote the report");

    // systemd: every ExecStart parses; the heartbeat service runs (replayed), the
    // scheduler service's command validates its schedule with --next.
    let mut seen = 0;
    for unit in ["runner-heartbeat.service", "runner-schedule.service"] {
        let text = std::fs::read_to_string(deploy.join(unit)).expect("unit");
        assert!(!text.contains('%') || text.contains("%%"), "{unit}: % is a systemd specifier");
        for line in text.lines().filter_map(|l| l.strip_prefix("ExecStart=")) {
            seen += 1;
            let args = runner_args(&words(line));
            let output = match args.first().map(String::as_str) {
                Some("run") => run_deploy(&dir, &args, &replay),
                Some("schedule") => {
                    let output = run_deploy(&dir, &args, &["--next", "1"]);
                    assert!(stdout(&output).contains("heartbeat"), "{}", stdout(&output));
                    output
                }
                other => panic!("{unit}: unexpected command {other:?}"),
            };
            assert_eq!(code(&output), 0, "{unit}: {args:?}: {}", stderr(&output));
        }
        assert!(
            text.contains("KillMode=mixed"),
            "{unit}: SIGTERM goes to runner alone, which ends its children"
        );
    }
    assert_eq!(seen, 2);
    let timer = std::fs::read_to_string(deploy.join("runner-heartbeat.timer")).expect("timer");
    assert!(timer.contains("OnCalendar="), "{timer}");
}

#[test]
fn a_run_past_its_timeout_is_ended_and_logged() {
    let dir = Dir::new();
    sleeper(&dir);
    let mut scheduler = Scheduler::start(
        &dir,
        "kind: schedule\nentries:\n  - id: nap\n    workflow: sleep.yaml\n    cron: \"@every 1h\"\n    missed: last\n    timeout: 1s\n",
    );
    // Never fired before: nothing missed, nothing runs until the next full hour...
    scheduler.event("ready");
    let (code, lines) = scheduler.terminate();
    assert_eq!(code, 143);
    assert!(!lines.iter().any(|v| v["event"] == "start"), "{lines:#?}");
    // ...but after pretending it last fired two hours ago, `missed: last` runs it once.
    let file = dir.path("schedule.yaml");
    let state_file = runner::support::state_file(&dir.state(), &file);
    let last = chrono::Utc::now() - chrono::Duration::hours(2);
    std::fs::write(&state_file, serde_json::json!({"last_fires": {"nap": last.to_rfc3339()}}).to_string())
        .expect("state");
    let schedule = std::fs::read_to_string(&file).expect("schedule");
    let mut scheduler = Scheduler::start(&dir, &schedule);
    let start = scheduler.event("start");
    let timeout = scheduler.event("timeout");
    assert_eq!(timeout["run_id"], start["run_id"]);
    let end = scheduler.event("end");
    assert_eq!(end["status"], "timed_out", "{end}");
    let (code, _) = scheduler.terminate();
    assert_eq!(code, 143);
    assert_eq!(dir.runs_json(&["--status", "cancelled"]).len(), 1, "the ended run stored its report");
}
