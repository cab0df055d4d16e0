//! The process side of `runner schedule`: carries out the core's actions by running
//! each firing as a child `runner run`, enforces timeouts, logs one line per event,
//! saves the last fire times, and stops cleanly on SIGTERM/SIGINT.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::{Map, Value, json};
use tokio::io::AsyncReadExt as _;

use super::core::{Action, Core, Fire, Plan};
use crate::engine::lock::{LockGuard, try_lock};
use crate::model::schedule::{Schedule, ScheduleEntry};

/// After SIGTERM, how long a child gets before SIGKILL.
pub(crate) const KILL_GRACE: Duration = Duration::from_secs(10);
/// How much of a child's stderr is kept for the end line.
const TAIL_BYTES: usize = 2000;
/// The longest sleep while idle (so a changed clock is noticed within a minute).
const IDLE_SLEEP: Duration = Duration::from_secs(60);
/// How often running children are checked.
const POLL: Duration = Duration::from_millis(500);

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The schedule file (workflow paths are relative to it).
    pub file: PathBuf,
    /// Locks, saved fire times and the run history.
    pub state_dir: PathBuf,
    /// JSON lines on stdout instead of human lines on stderr.
    pub json: bool,
    /// After a stop signal, how long to wait for running children.
    pub stop_timeout: Duration,
    /// The `runner` executable children run.
    pub exe: PathBuf,
    /// Each entry's workflow name (by entry index), for the history entry the scheduler
    /// writes for a child killed before it could write its own.
    pub workflow_names: Vec<String>,
}

/// The plans of a schedule's entries (cron expressions were checked by validation;
/// a failure here is reported as a message).
pub(crate) fn plans(schedule: &Schedule) -> Result<Vec<Plan>, String> {
    let file_zone = super::cron::zone(schedule.time_zone.as_deref().unwrap_or("UTC"))?;
    schedule
        .entries
        .iter()
        .map(|entry| {
            let zone = match &entry.time_zone {
                Some(name) => super::cron::zone(name)?,
                None => file_zone,
            };
            Ok(Plan {
                id: entry.id.clone(),
                spec: super::cron::parse(&entry.cron, zone)
                    .map_err(|e| format!("entry `{}`: {e}", entry.id))?,
                overlap: entry.overlap,
                missed: entry.missed,
                max_missed: entry.max_missed(),
                jitter: entry.jitter.map_or(Duration::ZERO, crate::model::Duration::get),
            })
        })
        .collect()
}

/// Where the last fire times of a schedule file are kept.
pub fn state_file(state_dir: &Path, schedule_file: &Path) -> PathBuf {
    let key = std::fs::canonicalize(schedule_file).unwrap_or_else(|_| schedule_file.to_path_buf());
    let lock = crate::engine::lock::lock_path(state_dir, &format!("schedule {}", key.display()));
    let stem =
        lock.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "schedule".into());
    state_dir.join("schedule").join(format!("{stem}.json"))
}

/// Read saved last fire times (a missing or unreadable file is an empty start).
pub(crate) fn load_fires(path: &Path) -> HashMap<String, DateTime<Utc>> {
    let Ok(text) = std::fs::read_to_string(path) else { return HashMap::new() };
    let Ok(value) = serde_json::from_str::<Value>(&text) else { return HashMap::new() };
    let Some(fires) = value.get("last_fires").and_then(Value::as_object) else { return HashMap::new() };
    fires
        .iter()
        .filter_map(|(id, t)| {
            let time = DateTime::parse_from_rfc3339(t.as_str()?).ok()?;
            Some((id.clone(), time.with_timezone(&Utc)))
        })
        .collect()
}

fn save_fires(path: &Path, fires: &HashMap<String, DateTime<Utc>>) -> std::io::Result<()> {
    let mut sorted: Vec<_> = fires.iter().collect();
    sorted.sort();
    let map: Map<String, Value> =
        sorted.into_iter().map(|(id, t)| (id.clone(), json!(rfc3339(*t)))).collect();
    let text = serde_json::to_string_pretty(&json!({ "last_fires": map })).unwrap_or_default() + "\n";
    crate::fsutil::write_atomic(path, text.as_bytes())
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One line per event: JSON on stdout, or `TIME EVENT ENTRY key=value...` on stderr.
#[derive(Debug)]
struct Log {
    json: bool,
}

impl Log {
    fn line(&self, event: &str, entry: Option<&str>, fields: Vec<(&str, Value)>) {
        let time = rfc3339(Utc::now());
        let text = if self.json {
            let mut map = Map::new();
            map.insert("time".into(), json!(time));
            map.insert("event".into(), json!(event));
            if let Some(entry) = entry {
                map.insert("entry".into(), json!(entry));
            }
            for (key, value) in fields {
                map.insert(key.into(), value);
            }
            Value::Object(map).to_string()
        } else {
            let mut text = format!("{time} {event:<7}");
            if let Some(entry) = entry {
                text.push(' ');
                text.push_str(entry);
            }
            for (key, value) in fields {
                let shown = match value {
                    Value::String(s) if !s.is_empty() && !s.contains(char::is_whitespace) => s,
                    other => other.to_string(),
                };
                text.push_str(&format!(" {key}={shown}"));
            }
            text
        };
        let mut out = crate::output::Out;
        if self.json {
            out.out(&format!("{text}\n"));
        } else {
            out.err(&format!("{text}\n"));
        }
    }
}

/// A child run.
#[derive(Debug)]
struct Running {
    child: tokio::process::Child,
    pid: Option<Pid>,
    run_id: String,
    fire: Fire,
    started: Instant,
    started_wall: std::time::SystemTime,
    workflow: PathBuf,
    deadline: Instant,
    term_sent: Option<Instant>,
    killed: bool,
    timed_out: bool,
    replaced_by: Option<Fire>,
    tail: Arc<Mutex<Vec<u8>>>,
    _lock: LockGuard,
}

impl Running {
    fn signal(&mut self, signal: Signal) {
        if let Some(pid) = self.pid {
            let _ = if signal == Signal::SIGKILL { killpg(pid, signal) } else { kill(pid, signal) };
        }
    }

    fn terminate(&mut self) {
        if self.term_sent.is_none() {
            self.signal(Signal::SIGTERM);
            self.term_sent = Some(Instant::now());
        }
    }
}

/// The scheduler.
#[derive(Debug)]
pub(crate) struct Service {
    config: Config,
    entries: Vec<ScheduleEntry>,
    core: Core,
    running: HashMap<usize, Running>,
    log: Log,
    state_file: PathBuf,
}

impl Service {
    /// A scheduler for `schedule`, resuming from the saved fire times.
    pub(crate) fn new(schedule: &Schedule, config: Config) -> Result<Service, String> {
        let plans = plans(schedule)?;
        let state_file = state_file(&config.state_dir, &config.file);
        let saved = load_fires(&state_file);
        let core = Core::new(plans, &saved, Utc::now());
        let log = Log { json: config.json };
        Ok(Service {
            config,
            entries: schedule.entries.clone(),
            core,
            running: HashMap::new(),
            log,
            state_file,
        })
    }

    fn id(&self, entry: usize) -> &str {
        self.entries.get(entry).map_or("?", |e| e.id.as_str())
    }

    /// Run until SIGTERM (exit 143) or SIGINT (exit 130).
    pub(crate) async fn run(mut self) -> i32 {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut terminate), Ok(mut interrupt)) =
            (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
        else {
            self.log.line("error", None, vec![("message", json!("cannot watch signals"))]);
            return crate::exit::SOFTWARE;
        };
        self.log.line(
            "ready",
            None,
            vec![
                ("file", json!(self.config.file.display().to_string())),
                ("entries", json!(self.entries.len())),
                ("pid", json!(std::process::id())),
                ("next", json!(self.core.next_wake().map(rfc3339))),
            ],
        );
        // Saved at once, so firings missed between this start and a restart count even
        // for entries that have not fired yet.
        self.save();
        let mut stop: Option<(i32, Instant)> = None;
        loop {
            if stop.is_none() {
                let before = self.core.last_fires();
                let actions = self.core.tick(Utc::now());
                self.apply(actions);
                if before != self.core.last_fires() {
                    self.save();
                }
            }
            self.reap(stop.is_some());
            self.enforce_timeouts();
            if let Some((code, since)) = stop {
                if self.running.is_empty() {
                    self.log.line("stopped", None, vec![("exit_code", json!(code))]);
                    return code;
                }
                if since.elapsed() >= self.config.stop_timeout {
                    for run in self.running.values_mut() {
                        run.terminate();
                    }
                }
            }
            let sleep = self.sleep_for(stop.is_some());
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = terminate.recv(), if stop.is_none() => stop = Some(self.stopping(143, "SIGTERM")),
                _ = interrupt.recv(), if stop.is_none() => stop = Some(self.stopping(130, "SIGINT")),
            }
        }
    }

    fn save(&self) {
        if let Err(e) = save_fires(&self.state_file, &self.core.last_fires()) {
            self.log.line(
                "error",
                None,
                vec![(
                    "message",
                    json!(format!("cannot save fire times to {}: {e}", self.state_file.display())),
                )],
            );
        }
    }

    fn stopping(&self, code: i32, signal: &str) -> (i32, Instant) {
        self.log.line(
            "stopping",
            None,
            vec![
                ("signal", json!(signal)),
                ("running", json!(self.running.len())),
                ("wait_ms", json!(u64::try_from(self.config.stop_timeout.as_millis()).unwrap_or(u64::MAX))),
            ],
        );
        (code, Instant::now())
    }

    fn sleep_for(&self, stopping: bool) -> Duration {
        if !self.running.is_empty() {
            return POLL;
        }
        if stopping {
            return Duration::ZERO;
        }
        let Some(wake) = self.core.next_wake() else { return IDLE_SLEEP };
        (wake - Utc::now()).to_std().unwrap_or(Duration::ZERO).min(IDLE_SLEEP)
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Start(fire) => self.start(fire),
                Action::Replace(fire) => match self.running.get_mut(&fire.entry) {
                    Some(run) => {
                        let old = run.run_id.clone();
                        run.replaced_by = Some(fire);
                        run.terminate();
                        self.log.line(
                            "replace",
                            Some(self.id(fire.entry)),
                            vec![("run_id", json!(old)), ("scheduled", json!(rfc3339(fire.scheduled)))],
                        );
                    }
                    None => self.start(fire),
                },
                Action::Queued(fire) => self.log.line(
                    "queued",
                    Some(self.id(fire.entry)),
                    vec![("scheduled", json!(rfc3339(fire.scheduled))), ("missed", json!(fire.missed))],
                ),
                Action::Skip(fire, reason) => self.log.line(
                    "skip",
                    Some(self.id(fire.entry)),
                    vec![("scheduled", json!(rfc3339(fire.scheduled))), ("reason", json!(reason.name()))],
                ),
                Action::Missed { entry, count, running, policy } => self.log.line(
                    "missed",
                    Some(self.id(entry)),
                    vec![
                        ("count", json!(count)),
                        ("running", json!(running)),
                        ("policy", json!(format!("{policy:?}").to_lowercase())),
                    ],
                ),
            }
        }
    }

    /// Start a firing's child run, or report why it cannot start (and let the core go on).
    fn start(&mut self, fire: Fire) {
        let Some(entry) = self.entries.get(fire.entry).cloned() else { return };
        let lock = match try_lock(&self.config.state_dir, &format!("schedule:{}", entry.id)) {
            Ok(Some(guard)) => guard,
            Ok(None) => {
                self.log.line(
                    "skip",
                    Some(&entry.id),
                    vec![
                        ("scheduled", json!(rfc3339(fire.scheduled))),
                        ("reason", json!("another scheduler is running this entry")),
                    ],
                );
                let next = self.core.finished(fire.entry);
                self.apply(next);
                return;
            }
            Err(e) => {
                self.log.line(
                    "error",
                    Some(&entry.id),
                    vec![("message", json!(format!("cannot take the lock: {e}")))],
                );
                let next = self.core.finished(fire.entry);
                self.apply(next);
                return;
            }
        };
        let run_id = crate::history::new_run_id(std::time::SystemTime::now());
        let workflow = crate::load::sibling(&self.config.file, &entry.workflow);
        let mut command = tokio::process::Command::new(&self.config.exe);
        command.arg("run").arg(&workflow).arg("--quiet").arg("--state-dir").arg(&self.config.state_dir);
        if entry.dry_run {
            command.arg("--dry-run");
        }
        for (key, value) in &entry.inputs {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            command.arg("--input").arg(format!("{key}={text}"));
        }
        command
            .env("RUNNER_RUN_ID", &run_id)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own group: a Ctrl-C at a terminal reaches the scheduler, which decides.
            .process_group(0)
            .kill_on_drop(true);
        match command.spawn() {
            Ok(mut child) => {
                let tail = Arc::new(Mutex::new(Vec::new()));
                if let Some(mut stderr) = child.stderr.take() {
                    let tail = tail.clone();
                    tokio::spawn(async move {
                        let mut buffer = [0u8; 4096];
                        while let Ok(n) = stderr.read(&mut buffer).await {
                            if n == 0 {
                                break;
                            }
                            if let Ok(mut tail) = tail.lock() {
                                tail.extend_from_slice(&buffer[..n]);
                                let excess = tail.len().saturating_sub(TAIL_BYTES);
                                tail.drain(..excess);
                            }
                        }
                    });
                }
                let pid = child.id().and_then(|id| i32::try_from(id).ok()).map(Pid::from_raw);
                self.log.line(
                    "start",
                    Some(&entry.id),
                    vec![
                        ("run_id", json!(run_id)),
                        ("workflow", json!(workflow.display().to_string())),
                        ("scheduled", json!(rfc3339(fire.scheduled))),
                        ("missed", json!(fire.missed)),
                        ("pid", json!(pid.map(|p| p.as_raw()))),
                    ],
                );
                let now = Instant::now();
                self.running.insert(
                    fire.entry,
                    Running {
                        child,
                        pid,
                        run_id,
                        fire,
                        started: now,
                        started_wall: std::time::SystemTime::now(),
                        workflow,
                        deadline: now + entry.timeout(),
                        term_sent: None,
                        killed: false,
                        timed_out: false,
                        replaced_by: None,
                        tail,
                        _lock: lock,
                    },
                );
            }
            Err(e) => {
                self.log.line(
                    "error",
                    Some(&entry.id),
                    vec![("message", json!(format!("cannot start {}: {e}", self.config.exe.display())))],
                );
                drop(lock);
                let next = self.core.finished(fire.entry);
                self.apply(next);
            }
        }
    }

    /// Log the runs that ended and let the core start what waits.
    fn reap(&mut self, stopping: bool) {
        let mut ended = Vec::new();
        for (entry, run) in &mut self.running {
            if let Ok(Some(status)) = run.child.try_wait() {
                ended.push((*entry, status));
            }
        }
        for (entry, status) in ended {
            let Some(run) = self.running.remove(&entry) else { continue };
            let tail =
                run.tail.lock().map(|t| String::from_utf8_lossy(&t).trim().to_string()).unwrap_or_default();
            let code = status.code();
            let outcome = match code {
                Some(0) => "ok",
                _ if run.timed_out => "timed_out",
                _ if run.replaced_by.is_some() => "replaced",
                Some(130 | 143) => "cancelled",
                None => "killed",
                Some(_) => "failed",
            };
            let mut fields = vec![
                ("run_id", json!(run.run_id)),
                ("status", json!(outcome)),
                ("exit_code", json!(code)),
                ("duration_ms", json!(u64::try_from(run.started.elapsed().as_millis()).unwrap_or(u64::MAX))),
                ("scheduled", json!(rfc3339(run.fire.scheduled))),
            ];
            if code != Some(0) && !tail.is_empty() {
                let last: String = tail.lines().last().unwrap_or_default().chars().take(300).collect();
                fields.push(("stderr", json!(last)));
            }
            self.log.line("end", Some(self.id(entry)), fields);
            if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
                self.record_killed(entry, &run, signal, &tail);
            }
            drop(run._lock);
            if stopping {
                continue;
            }
            match run.replaced_by {
                Some(fire) => self.start(fire),
                None => {
                    let next = self.core.finished(entry);
                    self.apply(next);
                }
            }
        }
    }

    /// A child killed by a signal wrote no report: store one for it, so `runner runs`
    /// lists the run and `runner show` explains it.
    fn record_killed(&self, entry: usize, run: &Running, signal: i32, tail: &str) {
        let workflow =
            self.config.workflow_names.get(entry).filter(|n| !n.is_empty()).cloned().unwrap_or_else(|| {
                run.workflow.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
            });
        let last = tail.lines().last().map(|l| format!("; its last line: {l}")).unwrap_or_default();
        let report = crate::report::run_report::RunReport {
            version: crate::report::run_report::REPORT_VERSION,
            run_id: run.run_id.clone(),
            runner_version: env!("CARGO_PKG_VERSION").to_string(),
            workflow,
            file: run.workflow.display().to_string(),
            status: Some(if run.term_sent.is_some() {
                crate::engine::events::RunStatus::Cancelled
            } else {
                crate::engine::events::RunStatus::Failed
            }),
            exit_code: Some(128 + signal),
            error: Some(format!(
                "`runner run` was killed by signal {signal} before it could write its report{last}"
            )),
            started_at: crate::report::timestamp(run.started_wall),
            finished_at: crate::report::timestamp(std::time::SystemTime::now()),
            duration_ms: u64::try_from(run.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            ..crate::report::run_report::RunReport::default()
        };
        if let Err(e) =
            crate::history::store(&self.config.state_dir, &report, crate::history::Retention::from_env())
        {
            self.log.line(
                "error",
                Some(self.id(entry)),
                vec![("message", json!(format!("cannot store the killed run in the history: {e}")))],
            );
        }
    }

    /// SIGTERM runs past their timeout; SIGKILL those that ignore it.
    fn enforce_timeouts(&mut self) {
        let now = Instant::now();
        let mut timed_out = Vec::new();
        for (entry, run) in &mut self.running {
            if run.term_sent.is_none() && now >= run.deadline {
                run.timed_out = true;
                run.terminate();
                timed_out.push(*entry);
            }
            if let Some(sent) = run.term_sent
                && !run.killed
                && now.duration_since(sent) >= KILL_GRACE
            {
                run.signal(Signal::SIGKILL);
                run.killed = true;
            }
        }
        for entry in timed_out {
            let run_id = self.running.get(&entry).map(|r| r.run_id.clone()).unwrap_or_default();
            let timeout = self.entries.get(entry).map(ScheduleEntry::timeout).unwrap_or_default();
            self.log.line(
                "timeout",
                Some(self.id(entry)),
                vec![
                    ("run_id", json!(run_id)),
                    ("timeout_ms", json!(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))),
                ],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fire_times_survive_a_restart_and_files_differ_per_schedule() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = state_file(dir.path(), Path::new("/srv/a/schedule.yaml"));
        let b = state_file(dir.path(), Path::new("/srv/b/schedule.yaml"));
        assert_ne!(a, b);
        assert!(load_fires(&a).is_empty(), "no file: nothing saved");
        let t = DateTime::parse_from_rfc3339("2026-12-01T10:00:00.250Z").expect("time").with_timezone(&Utc);
        let fires = HashMap::from([("heartbeat".to_string(), t)]);
        save_fires(&a, &fires).expect("save");
        assert_eq!(load_fires(&a), fires);
        std::fs::write(&b, "not json").expect("write");
        assert!(load_fires(&b).is_empty(), "an unreadable file is a fresh start");
    }
}
