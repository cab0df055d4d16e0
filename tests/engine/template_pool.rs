//! Pooled `runner __template` children: one child serves many unbounded evaluations,
//! a child that dies or runs late is replaced, parallel evaluations do not wait for
//! each other, and no child outlives the runner.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use runner::support::{enable_template_children, render_in_child, template_children_spawned};
use serde_json::{Value, json};

/// The in-process tests share this process's pool and spawn counter: one at a time.
static POOL: Mutex<()> = Mutex::new(());

fn enabled() -> std::sync::MutexGuard<'static, ()> {
    let guard = POOL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    enable_template_children(PathBuf::from(assert_cmd::cargo::cargo_bin!("runner")));
    guard
}

/// A template that loops and assigns: the classifier sends it to a child.
const LOOPING: &str =
    "{% set ns = namespace(s='') %}{% for i in range(n) %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.s }}";

fn render(text: &str, context: &Value, limit: Duration) -> Result<Value, String> {
    render_in_child(text, context, limit).expect("children enabled")
}

#[test]
fn several_unbounded_evaluations_in_one_process_use_one_child() {
    let _pool = enabled();
    let before = template_children_spawned();
    for n in 1..=6 {
        let expected: String = (0..n).map(|i| i.to_string()).collect();
        assert_eq!(render(LOOPING, &json!({"n": n}), Duration::from_secs(60)), Ok(json!(expected)));
    }
    // An idle child left by another test may serve them all.
    let spawned = template_children_spawned() - before;
    assert!(spawned <= 1, "{spawned} children for 6 evaluations");
}

#[test]
fn a_memory_bomb_fails_with_the_limit_message_and_the_next_evaluation_succeeds() {
    let _pool = enabled();
    let bomb = "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}";
    let error = render(bomb, &json!({}), Duration::from_secs(60)).expect_err("the bomb fails");
    assert_eq!(
        error,
        "template needs more than the 1024 MiB memory limit of template evaluation; \
         does a value grow in a loop (a string doubled with `~`, a list added to itself)?"
    );
    let before = template_children_spawned();
    assert_eq!(render(LOOPING, &json!({"n": 3}), Duration::from_secs(60)), Ok(json!("012")));
    // The dead child was not reused: the next evaluation had a fresh one.
    assert_eq!(template_children_spawned() - before, 1);
}

#[test]
fn the_time_limit_still_kills_a_slow_evaluation() {
    let _pool = enabled();
    // Each pass upper-cases 10 MB: minutes of work, well within the work limit.
    let slow =
        "{% set s = 'x' * 10000000 %}{% for i in range(100000) %}{{ s | upper | length > 0 }}{% endfor %}";
    let started = Instant::now();
    let error = render(slow, &json!({}), Duration::from_secs(1)).expect_err("stopped");
    assert_eq!(error, "template evaluation took longer than 1 s and was stopped");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert_eq!(render(LOOPING, &json!({"n": 2}), Duration::from_secs(60)), Ok(json!("01")));
}

#[test]
fn parallel_evaluations_from_two_threads_both_succeed() {
    let _pool = enabled();
    let threads: Vec<_> = (0..2)
        .map(|t| {
            std::thread::spawn(move || {
                (0..5)
                    .map(|k| render(LOOPING, &json!({"n": 3 + t + k}), Duration::from_secs(60)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for (t, thread) in threads.into_iter().enumerate() {
        for (k, result) in thread.join().expect("thread").into_iter().enumerate() {
            let expected: String = (0..3 + t + k).map(|i| i.to_string()).collect();
            assert_eq!(result, Ok(json!(expected)));
        }
    }
}

/// Processes whose command line has `needle` and that descend from `ancestor` or have
/// `marker` in their environment: (pid, state letter, parent pid).
fn processes(needle: &str, marker: &str, ancestor: u32) -> Vec<(u32, char, u32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(needle) {
            continue;
        }
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if !String::from_utf8_lossy(&environ).contains(marker) && !descends_from(pid, ancestor) {
            continue;
        }
        if let Some((state, parent)) = state_and_parent(pid) {
            found.push((pid, state, parent));
        }
    }
    found
}

fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..16 {
        match state_and_parent(pid) {
            Some((_, parent)) if parent == ancestor => return true,
            Some((_, parent)) if parent > 1 => pid = parent,
            _ => return false,
        }
    }
    false
}

/// A process's state letter and parent pid from `/proc/PID/stat`.
fn state_and_parent(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}

#[test]
fn no_child_outlives_the_runner_and_a_dead_one_is_reaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bomb = "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}";
    let workflow = format!(
        "name: pool\nsteps:\n  - id: ok\n    type: set\n    values:\n      v: \"{LOOPING}\"\n  - id: grow\n    type: set\n    values:\n      v: \"{bomb}\"\nfinally:\n  - id: again\n    type: set\n    values:\n      v: \"{LOOPING}\"\n  - id: wait\n    type: exec\n    timeout: 60s\n    argv: [sleep, '4']\n"
    )
    .replace("range(n)", "range(3)");
    std::fs::write(dir.path().join("wf.yaml"), workflow).expect("write");
    let marker = format!("pool-test-{}-{}", std::process::id(), dir.path().display());
    let mut runner = std::process::Command::new(assert_cmd::cargo::cargo_bin!("runner"))
        .current_dir(dir.path())
        .args(["run", "wf.yaml"])
        .env("NO_COLOR", "1")
        .env("RUNNER_STATE_DIR", dir.path().join("state"))
        .env("RUNNER_POOL_TEST_MARK", &marker)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runner starts");
    let runner_pid = runner.id();
    // While `finally` sleeps, the child of `again` is alive and idle, and the one the
    // bomb killed has been reaped (no zombie child of the runner).
    let started = Instant::now();
    while processes("sleep 4", &marker, runner_pid).is_empty() {
        assert!(runner.try_wait().expect("wait").is_none(), "the runner ended before `finally` slept");
        assert!(started.elapsed() < Duration::from_secs(60), "`finally` never slept");
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen = processes("__template", &marker, runner_pid);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen.iter().all(|(_, state, parent)| *parent == runner_pid && *state != 'Z'), "{seen:?}");
    let output = runner.wait_with_output().expect("runner ends");
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("template needs more than the 1024 MiB"));
    // Once the runner has ended, its children end too.
    let ended = Instant::now();
    let left = || processes("__template", &marker, runner_pid);
    while !left().is_empty() && ended.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(left(), Vec::new(), "children outlived the runner");
}
