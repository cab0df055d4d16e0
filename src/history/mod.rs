//! Run history: every `runner run` stores its run report under `<state-dir>/runs/`.
//!
//! A stored report's file name carries everything `runner runs` lists (start, status,
//! exit code, duration, workflow), so listing reads one directory and no file:
//!
//! ```text
//! 20261201T220937.123Z-3f9a1c2e.ok.0.1520.heartbeat.json
//! <run id: start + random>   <status> <exit> <ms> <workflow>
//! ```
//!
//! Each run writes its own uniquely named file through a temp file and a rename, so
//! concurrent runs never see or corrupt each other's entries; pruning only removes
//! files, and a file another pruner removed first is not an error.

pub(crate) mod html;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::engine::events::RunStatus;
use crate::report::run_report::RunReport;

/// Entries kept by default (newest first).
pub(crate) const DEFAULT_KEEP: usize = 1000;
/// Entries older than this are removed by default (30 days).
pub(crate) const DEFAULT_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The history directory of a state directory.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("runs")
}

/// How many entries to keep and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many entries (the newest).
    pub keep: usize,
    /// Remove entries that started longer ago than this.
    pub max_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { keep: DEFAULT_KEEP, max_age: DEFAULT_MAX_AGE }
    }
}

impl Retention {
    /// The retention from `RUNNER_HISTORY_KEEP` (a count) and `RUNNER_HISTORY_MAX_AGE`
    /// (a duration such as `7d`); unset or unreadable values keep the defaults.
    pub fn from_env() -> Retention {
        let mut retention = Retention::default();
        if let Some(keep) = std::env::var("RUNNER_HISTORY_KEEP").ok().and_then(|v| v.trim().parse().ok()) {
            retention.keep = keep;
        }
        if let Some(age) = std::env::var("RUNNER_HISTORY_MAX_AGE")
            .ok()
            .and_then(|v| crate::model::duration::parse_duration(v.trim()).ok())
        {
            retention.max_age = age.get();
        }
        retention
    }
}

/// A new run id: the start time (UTC, sortable) and 8 hex digits that differ between
/// runs started in the same millisecond.
pub fn new_run_id(started: SystemTime) -> String {
    let since = started.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    // FNV-1a over the time, the pid and a per-process counter, so two runs started in
    // the same millisecond (in one process or two) get different ids.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [since.as_nanos() as u64, u64::from(std::process::id()), count] {
        for byte in part.to_le_bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{}-{:08x}", compact_time(started), hash as u32)
}

/// `20261201T220937.123Z`: an RFC 3339 time without separators, sortable as text.
pub(crate) fn compact_time(time: SystemTime) -> String {
    crate::report::timestamp(time).replace(['-', ':'], "")
}

/// Whether `id` is a well-formed run id (safe to use in a file name).
pub(crate) fn is_run_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !id.starts_with('.')
}

/// A workflow name as it appears in a history file name.
pub(crate) fn file_safe(name: &str) -> String {
    let safe: String = name
        .chars()
        .take(60)
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    if safe.is_empty() { "_".to_string() } else { safe }
}

/// One history entry, as read from its file name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// The run id.
    pub id: String,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// The workflow name (file-name safe form).
    pub workflow: String,
    /// How it ended.
    pub status: String,
    /// Its exit code.
    pub exit_code: i32,
    /// Time taken, in milliseconds.
    pub duration_ms: u64,
    /// The stored report.
    #[serde(skip)]
    pub path: PathBuf,
}

impl Entry {
    /// Parse a history file name; `None` for anything else (temp files, strays).
    pub fn from_file_name(dir: &Path, name: &str) -> Option<Entry> {
        let stem = name.strip_suffix(".json")?;
        if stem.starts_with('.') {
            return None;
        }
        // id has no '.' except the one of the milliseconds: `20261201T220937.123Z-abcd0123`.
        let mut parts = stem.splitn(6, '.');
        let (id_head, id_tail) = (parts.next()?, parts.next()?);
        let (status, exit, duration, workflow) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let id = format!("{id_head}.{id_tail}");
        let started_at = expand_time(id.split('-').next()?)?;
        Some(Entry {
            started_at,
            workflow: workflow.to_string(),
            status: status.to_string(),
            exit_code: exit.parse().ok()?,
            duration_ms: duration.parse().ok()?,
            path: dir.join(name),
            id,
        })
    }

    /// The file name this entry is stored under.
    pub fn file_name(&self) -> String {
        format!(
            "{}.{}.{}.{}.{}.json",
            self.id,
            self.status,
            self.exit_code,
            self.duration_ms,
            file_safe(&self.workflow)
        )
    }
}

/// `20261201T220937.123Z` back to `2026-12-01T22:09:37.123Z`.
fn expand_time(compact: &str) -> Option<String> {
    let b = compact.as_bytes();
    if b.len() != 20 || b[8] != b'T' || b[15] != b'.' || b[19] != b'Z' {
        return None;
    }
    let digits =
        |range: std::ops::Range<usize>| compact.get(range).filter(|s| s.bytes().all(|c| c.is_ascii_digit()));
    Some(format!(
        "{}-{}-{}T{}:{}:{}.{}Z",
        digits(0..4)?,
        digits(4..6)?,
        digits(6..8)?,
        digits(9..11)?,
        digits(11..13)?,
        digits(13..15)?,
        digits(16..19)?
    ))
}

/// Store a finished run's report in the history of `state_dir`, then apply the
/// retention. Returns the stored file.
pub fn store(state_dir: &Path, report: &RunReport, retention: Retention) -> std::io::Result<PathBuf> {
    let dir = dir(state_dir);
    let entry = Entry {
        id: report.run_id.clone(),
        started_at: report.started_at.clone(),
        workflow: report.workflow.clone(),
        status: report.status.map_or("unknown", RunStatus::name).to_string(),
        exit_code: report.exit_code.unwrap_or(crate::exit::SOFTWARE),
        duration_ms: report.duration_ms,
        path: PathBuf::new(),
    };
    if !is_run_id(&entry.id) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "the report has no valid run id"));
    }
    let path = dir.join(entry.file_name());
    let text = serde_json::to_string_pretty(report).map_err(std::io::Error::other)? + "\n";
    crate::fsutil::write_atomic(&path, text.as_bytes())?;
    prune(&dir, retention, SystemTime::now());
    Ok(path)
}

/// Every entry of the history directory, newest first. A missing directory is empty.
pub fn list(dir: &Path) -> Vec<Entry> {
    let Ok(read) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut entries: Vec<Entry> =
        read.flatten().filter_map(|e| Entry::from_file_name(dir, &e.file_name().to_string_lossy())).collect();
    entries.sort_by(|a, b| b.id.cmp(&a.id));
    entries
}

/// Remove entries beyond the newest `keep` and those older than `max_age`.
pub(crate) fn prune(dir: &Path, retention: Retention, now: SystemTime) -> usize {
    let cutoff = now.checked_sub(retention.max_age).map(compact_time);
    let mut removed = 0;
    for (index, entry) in list(dir).into_iter().enumerate() {
        let too_old = cutoff.as_deref().is_some_and(|cutoff| entry.id.as_str() < cutoff);
        if index >= retention.keep || too_old {
            match std::fs::remove_file(&entry.path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => {}
            }
        }
    }
    removed
}

/// Find a run: an id, a unique prefix of one, or the path of a stored report.
pub(crate) fn find(state_dir: &Path, run: &str) -> Result<PathBuf, String> {
    let as_path = Path::new(run);
    if run.ends_with(".json") && as_path.is_file() {
        return Ok(as_path.to_path_buf());
    }
    let dir = dir(state_dir);
    let entries = list(&dir);
    if let Some(exact) = entries.iter().find(|e| e.id == run) {
        return Ok(exact.path.clone());
    }
    let matches: Vec<&Entry> = entries.iter().filter(|e| !run.is_empty() && e.id.starts_with(run)).collect();
    match matches.as_slice() {
        [one] => Ok(one.path.clone()),
        [] => Err(format!("no run `{run}` in {} (see `runner runs`)", dir.display())),
        many => Err(format!("`{run}` matches {} runs; give more of the id", many.len())),
    }
}

/// Read a stored report.
pub(crate) fn read(path: &Path) -> Result<RunReport, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not a run report: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, workflow: &str) -> RunReport {
        RunReport {
            run_id: id.to_string(),
            workflow: workflow.to_string(),
            status: Some(RunStatus::Ok),
            exit_code: Some(0),
            duration_ms: 12,
            ..RunReport::default()
        }
    }

    #[test]
    fn ids_sort_by_time_and_differ() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_306_504_123);
        let a = new_run_id(t);
        let b = new_run_id(t);
        assert_ne!(a, b);
        assert!(a.starts_with("20261122T001504.123Z-"), "{a}");
        assert!(is_run_id(&a));
        assert!(!is_run_id("../x") && !is_run_id(".hidden") && !is_run_id(""));
    }

    #[test]
    fn file_names_round_trip() {
        let dir = Path::new("/h");
        let entry = Entry {
            id: "20261122T001504.123Z-0000abcd".into(),
            started_at: "2026-11-22T00:15:04.123Z".into(),
            workflow: "heart beat".into(),
            status: "failed".into(),
            exit_code: 1,
            duration_ms: 1520,
            path: PathBuf::new(),
        };
        let name = entry.file_name();
        assert_eq!(name, "20261122T001504.123Z-0000abcd.failed.1.1520.heart_beat.json");
        let back = Entry::from_file_name(dir, &name).expect("parses");
        assert_eq!(back.started_at, entry.started_at);
        assert_eq!((back.status.as_str(), back.exit_code, back.duration_ms), ("failed", 1, 1520));
        assert_eq!(back.workflow, "heart_beat");
        assert!(Entry::from_file_name(dir, ".x.json.123.tmp").is_none());
        assert!(Entry::from_file_name(dir, "notes.json").is_none());
    }

    #[test]
    fn retention_keeps_the_newest_and_drops_the_old() {
        let state = tempfile::tempdir().expect("tempdir");
        let base = SystemTime::now() - Duration::from_secs(3600);
        for i in 0..5 {
            let id = new_run_id(base + Duration::from_secs(i));
            store(state.path(), &report(&id, "w"), Retention { keep: 100, max_age: DEFAULT_MAX_AGE })
                .expect("store");
        }
        let dir = dir(state.path());
        assert_eq!(list(&dir).len(), 5);
        let newest = list(&dir)[0].id.clone();
        prune(&dir, Retention { keep: 3, max_age: DEFAULT_MAX_AGE }, SystemTime::now());
        let left = list(&dir);
        assert_eq!(left.len(), 3);
        assert_eq!(left[0].id, newest);
        prune(&dir, Retention { keep: 100, max_age: Duration::from_secs(60) }, SystemTime::now());
        assert!(list(&dir).is_empty(), "all are an hour old");
    }

    #[test]
    fn find_by_id_prefix_or_path() {
        let state = tempfile::tempdir().expect("tempdir");
        let id = new_run_id(SystemTime::now());
        let path = store(state.path(), &report(&id, "w"), Retention::default()).expect("store");
        assert_eq!(find(state.path(), &id).expect("by id"), path);
        assert_eq!(find(state.path(), &id[..24]).expect("by prefix"), path);
        assert_eq!(find(state.path(), path.to_str().expect("utf8")).expect("by path"), path);
        assert!(find(state.path(), "nope").is_err());
        assert_eq!(read(&path).expect("read").run_id, id);
    }
}
