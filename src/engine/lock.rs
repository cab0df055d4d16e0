//! Concurrency keys: an OS file lock per key under the state directory, so two runs
//! with the same key never overlap, even when started by unrelated crons.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A held lock; released when dropped (and by the OS if the process dies).
#[derive(Debug)]
pub struct LockGuard {
    file: File,
    /// The lock file.
    pub path: PathBuf,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// The default state directory: `$RUNNER_STATE_DIR`, else `$XDG_STATE_HOME/runner`,
/// else `~/.local/state/runner`, else a directory under the system temp dir.
pub fn default_state_dir() -> PathBuf {
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
pub fn lock_path(state_dir: &Path, key: &str) -> PathBuf {
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
pub fn try_lock(state_dir: &Path, key: &str) -> std::io::Result<Option<LockGuard>> {
    let path = lock_path(state_dir, key);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path)?;
    match file.try_lock() {
        Ok(()) => {
            // For people looking at the state directory: who holds it.
            let _ = file.set_len(0);
            let _ = writeln!(file, "pid {}\nkey {key}", std::process::id());
            Ok(Some(LockGuard { file, path }))
        }
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Wait for the lock of `key` up to `limit`, polling.
pub async fn wait_lock(state_dir: &Path, key: &str, limit: Duration) -> std::io::Result<Option<LockGuard>> {
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
    fn lock_paths_are_distinct_and_safe() {
        let dir = Path::new("/s");
        assert_ne!(lock_path(dir, "a/b"), lock_path(dir, "a_b"));
        let path = lock_path(dir, "../../etc/passwd");
        assert_eq!(path.parent(), Some(Path::new("/s/locks")), "{}", path.display());
    }
}
