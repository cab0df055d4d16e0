//! Concurrency keys: an OS file lock per key under the state directory, so two runs
//! with the same key never overlap, even when started by unrelated crons.
//!
//! The work of a run is its programs as much as the runner process: each key has a
//! second file, its work lock, on which every program of the holder's run keeps a
//! shared lock through its supervisor (`steps::supervise`). A new holder takes the
//! work lock exclusively once before it starts: if the previous holder was killed
//! (`kill -9`), that waits until its programs are gone (their supervisors kill them
//! within a fraction of a second), so old and new work never overlap.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A held lock; released when dropped (and by the OS if the process dies).
#[derive(Debug)]
pub(crate) struct LockGuard {
    file: File,
    /// The work lock of the key, shared by the programs of this run.
    pub work_path: PathBuf,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        crate::steps::supervise::remove_work_lock(&self.work_path);
        let _ = self.file.unlock();
    }
}

/// How long a new holder waits for the programs of a killed previous holder to end
/// before it counts the key as still held.
const PREVIOUS_WORK_LIMIT: Duration = Duration::from_secs(3);

/// The work lock file of a lock file.
pub(crate) fn work_path(lock: &Path) -> PathBuf {
    lock.with_extension("work")
}

/// Wait (up to [`PREVIOUS_WORK_LIMIT`]) until no program holds the work lock; `false`
/// when some still do.
fn previous_work_ended(work: &Path) -> std::io::Result<bool> {
    let file = OpenOptions::new().create(true).truncate(false).read(true).write(true).open(work)?;
    let deadline = Instant::now() + PREVIOUS_WORK_LIMIT;
    loop {
        match file.try_lock() {
            Ok(()) => {
                let _ = file.unlock();
                return Ok(true);
            }
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(TryLockError::WouldBlock) => return Ok(false),
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// The default state directory: `$RUNNER_STATE_DIR`, else `$XDG_STATE_HOME/runner`,
/// else `~/.local/state/runner`, else a directory under the system temp dir.
pub(crate) fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RUNNER_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("runner");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".local/state/runner");
    }
    std::env::temp_dir().join("runner-state")
}

/// The lock file of a key: readable characters kept, the rest replaced, plus a hash
/// so that different keys never share a file.
pub(crate) fn lock_path(state_dir: &Path, key: &str) -> PathBuf {
    let readable: String = key
        .chars()
        .take(80)
        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
        .collect();
    // FNV-1a: stable across runs and versions (unlike the std hasher).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    state_dir.join("locks").join(format!("{readable}-{hash:016x}.lock"))
}

/// Try to take the lock of `key` once.
pub(crate) fn try_lock(state_dir: &Path, key: &str) -> std::io::Result<Option<LockGuard>> {
    let path = lock_path(state_dir, key);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path)?;
    match file.try_lock() {
        Ok(()) => {
            let work_path = work_path(&path);
            if !previous_work_ended(&work_path)? {
                // A killed holder's programs are still running: the key is not free.
                let _ = file.unlock();
                return Ok(None);
            }
            // For people looking at the state directory: who holds it.
            let _ = file.set_len(0);
            let _ = writeln!(file, "pid {}\nkey {key}", std::process::id());
            crate::steps::supervise::add_work_lock(work_path.clone());
            Ok(Some(LockGuard { file, work_path }))
        }
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Wait for the lock of `key` up to `limit`, polling.
pub(crate) async fn wait_lock(
    state_dir: &Path,
    key: &str,
    limit: Duration,
) -> std::io::Result<Option<LockGuard>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(guard) = try_lock(state_dir, key)? {
            return Ok(Some(guard));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_held_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = try_lock(dir.path(), "preflight local").expect("lock");
        assert!(first.is_some());
        assert!(try_lock(dir.path(), "preflight local").expect("lock").is_none());
        assert!(try_lock(dir.path(), "preflight cloud").expect("lock").is_some());
        drop(first);
        assert!(try_lock(dir.path(), "preflight local").expect("lock").is_some());
    }

    #[test]
    fn a_key_whose_previous_work_still_runs_is_not_free() {
        let dir = tempfile::tempdir().expect("tempdir");
        let work = work_path(&lock_path(dir.path(), "k"));
        std::fs::create_dir_all(work.parent().expect("parent")).expect("mkdir");
        // A program of a killed holder, through its supervisor.
        let program = File::create(&work).expect("work file");
        program.lock_shared().expect("shared");
        assert!(try_lock(dir.path(), "k").expect("lock").is_none());
        drop(program);
        let guard = try_lock(dir.path(), "k").expect("lock").expect("free once the program ended");
        assert_eq!(guard.work_path, work);
    }

    #[test]
    fn lock_paths_are_distinct_and_safe() {
        let dir = Path::new("/s");
        assert_ne!(lock_path(dir, "a/b"), lock_path(dir, "a_b"));
        let path = lock_path(dir, "../../etc/passwd");
        assert_eq!(path.parent(), Some(Path::new("/s/locks")), "{}", path.display());
    }
}
