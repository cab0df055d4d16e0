//! `runner validate`'s result cache: a file found valid is not checked again while
//! nothing it was checked from has changed.
//!
//! Each clean file's entry lists every file its check read (itself, the lane registry,
//! the prompts it renders, the workflows it calls, ...) with the SHA-256 of their bytes,
//! or as absent (see [`crate::readlog`]). A later run skips the file when all of them
//! still read the same, and checks it otherwise. Entries are written only by a run that
//! found no problem and no warning, so only "valid, nothing to say" is ever reused and
//! the output is the same with or without the cache. A check that depends on something
//! the log cannot see (a template include, `which`, `now_utc`) is never cached.
//!
//! One file per project (the working directory), under `$RUNNER_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/runner`, else `~/.cache/runner`, in `validate/`. It is tied to the
//! runner binary that wrote it (version, size, modification time, inode): another
//! build ignores it. A cache file not owned by this user, or writable by others, is
//! ignored (anyone who can write it could make broken files pass). Any problem with
//! the cache (unreadable, corrupt, not writable) only means files are checked.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::readlog::{Read, Reads};

/// The cache file's format; a file of another version is ignored.
const VERSION: u32 = 1;

/// Entries kept at most: this run's, then older ones (other subsets of the project).
const MAX_ENTRIES: usize = 20_000;

#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    /// The binary that wrote it.
    runner: String,
    /// The working directory it is for.
    project: String,
    entries: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Entry {
    reads: Vec<Read>,
}

/// The cache of one `runner validate` run.
#[derive(Debug)]
pub(crate) struct Cache {
    file: PathBuf,
    runner: String,
    project: String,
    old: BTreeMap<String, Entry>,
    new: BTreeMap<String, Entry>,
    /// The current digest of each file looked at so far (`None`: absent or unreadable).
    digests: HashMap<String, Option<String>>,
}

/// The key of a file to check: how it was given (found in a folder or named, which
/// decides how it is checked) and its path.
pub(crate) fn key(path: &Path, named: bool) -> String {
    format!("{} {}", if named { "named" } else { "found" }, path.to_string_lossy())
}

impl Cache {
    /// The cache of this project, or `None` when there is no place for it or the
    /// runner binary cannot be identified.
    pub(crate) fn open() -> Option<Cache> {
        let dir = cache_dir()?.join("validate");
        let runner = runner_identity()?;
        let project = std::env::current_dir().ok()?;
        let project = std::fs::canonicalize(&project).unwrap_or(project).to_string_lossy().into_owned();
        let name = crate::readlog::digest(project.as_bytes());
        let file = dir.join(format!("{}.json", name.get(..32).unwrap_or(&name)));
        let old = read_entries(&file, &runner, &project).unwrap_or_default();
        Some(Cache { file, runner, project, old, new: BTreeMap::new(), digests: HashMap::new() })
    }

    /// Whether the file under `key` was found valid from exactly the files that are
    /// there now; if so its entry is kept for the next run.
    pub(crate) fn unchanged(&mut self, key: &str) -> bool {
        let Some(entry) = self.old.get(key) else { return false };
        let same = entry.reads.iter().all(|read| {
            let now = self.digests.entry(read.path.clone()).or_insert_with(|| current_digest(&read.path));
            *now == read.digest
        });
        if same {
            self.new.insert(key.to_string(), entry.clone());
        }
        same
    }

    /// Remember that the file under `key` was found valid from `reads`.
    pub(crate) fn keep(&mut self, key: String, reads: Reads) {
        if !reads.uncacheable {
            self.new.insert(key, Entry { reads: reads.files });
        }
    }

    /// Write the entries kept (plus older ones of files not checked this time), when
    /// they differ from what was read. Best effort: a cache that cannot be written
    /// only means the next run checks again.
    pub(crate) fn save(self) {
        let Cache { file, runner, project, old, mut new, .. } = self;
        if new.iter().all(|(key, entry)| old.get(key) == Some(entry)) {
            return;
        }
        // Older entries stay for files that still exist (a run on a subset of the
        // project keeps the others' results).
        for (key, entry) in old {
            if new.len() >= MAX_ENTRIES {
                break;
            }
            let exists = key.split_once(' ').is_some_and(|(_, path)| Path::new(path).is_file());
            if exists {
                new.entry(key).or_insert(entry);
            }
        }
        let contents = CacheFile { version: VERSION, runner, project, entries: new };
        let Ok(bytes) = serde_json::to_vec(&contents) else { return };
        if bytes.len() as u64 <= crate::fsutil::MAX_READ_BYTES {
            let _ = write(&file, &bytes);
        }
    }
}

/// `$RUNNER_CACHE_DIR`, else `$XDG_CACHE_HOME/runner`, else `~/.cache/runner`.
fn cache_dir() -> Option<PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty()).map(PathBuf::from);
    set("RUNNER_CACHE_DIR")
        .or_else(|| set("XDG_CACHE_HOME").map(|dir| dir.join("runner")))
        .or_else(|| set("HOME").map(|home| home.join(".cache/runner")))
}

/// This runner binary: version, size, modification time and inode, so a rebuilt
/// runner (which may check differently) never trusts an older one's results.
fn runner_identity() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let metadata = std::fs::metadata(exe).ok()?;
    Some(format!(
        "{} {} {}.{} {}:{}",
        env!("CARGO_PKG_VERSION"),
        metadata.len(),
        metadata.mtime(),
        metadata.mtime_nsec(),
        metadata.dev(),
        metadata.ino()
    ))
}

/// The entries of the cache file, if it is ours to trust and for this runner and
/// project.
fn read_entries(file: &Path, runner: &str, project: &str) -> Option<BTreeMap<String, Entry>> {
    let metadata = std::fs::metadata(file).ok()?;
    if metadata.uid() != nix::unistd::getuid().as_raw() || metadata.mode() & 0o022 != 0 {
        return None;
    }
    let bytes = crate::fsutil::read_bytes(file, crate::fsutil::MAX_READ_BYTES).ok()?;
    let cache: CacheFile = serde_json::from_slice(&bytes).ok()?;
    (cache.version == VERSION && cache.runner == runner && cache.project == project).then_some(cache.entries)
}

/// The digest of a file's bytes as the checker would read them now.
fn current_digest(path: &str) -> Option<String> {
    crate::fsutil::read_bytes(Path::new(path), crate::fsutil::MAX_READ_BYTES)
        .ok()
        .map(|bytes| crate::readlog::digest(&bytes))
}

/// Write the cache file whole (a temporary file renamed over it), readable and
/// writable by this user only. No fsync: a cache lost in a crash is only rebuilt.
fn write(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temporary = tempfile::NamedTempFile::new_in(dir)?;
    temporary.write_all(bytes)?;
    temporary.persist(file).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_in(dir: &Path) -> Cache {
        Cache {
            file: dir.join("validate/project.json"),
            runner: "runner test".into(),
            project: dir.to_string_lossy().into_owned(),
            old: BTreeMap::new(),
            new: BTreeMap::new(),
            digests: HashMap::new(),
        }
    }

    fn reopen(cache: &Cache) -> Cache {
        let old = read_entries(&cache.file, &cache.runner, &cache.project).unwrap_or_default();
        Cache {
            file: cache.file.clone(),
            runner: cache.runner.clone(),
            project: cache.project.clone(),
            old,
            new: BTreeMap::new(),
            digests: HashMap::new(),
        }
    }

    fn reads_of(paths: &[&Path]) -> Reads {
        let frame = crate::readlog::Frame::begin();
        for path in paths {
            let _ = crate::fsutil::read_bytes(path, 1 << 20);
        }
        frame.end()
    }

    #[test]
    fn a_kept_file_is_unchanged_until_a_file_it_read_changes_appears_or_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (job, lanes, absent) =
            (dir.path().join("wf.yaml"), dir.path().join("lanes.yaml"), dir.path().join("x"));
        std::fs::write(&job, "name: wf\n").expect("write");
        std::fs::write(&lanes, "kind: lanes\n").expect("write");
        let key = key(&job, false);

        let mut cache = cache_in(dir.path());
        assert!(!cache.unchanged(&key));
        cache.keep(key.clone(), reads_of(&[&job, &lanes, &absent]));
        let probe = cache_in(dir.path());
        cache.save();
        let mode = std::fs::metadata(&probe.file).expect("written").mode();
        assert_eq!(mode & 0o077, 0, "only the user may read the cache: {mode:o}");

        let mut again = reopen(&probe);
        assert!(again.unchanged(&key));
        assert!(!again.unchanged(&super::key(&job, true)), "named and found files are checked differently");

        std::fs::write(&lanes, "kind: lanes\n# edited\n").expect("write");
        assert!(!reopen(&probe).unchanged(&key), "a file it read changed");
        std::fs::write(&lanes, "kind: lanes\n").expect("write");
        assert!(reopen(&probe).unchanged(&key), "back as it was");
        std::fs::write(&absent, "").expect("write");
        assert!(!reopen(&probe).unchanged(&key), "a file it looked for appeared");
        std::fs::remove_file(&absent).expect("remove");
        std::fs::remove_file(&lanes).expect("remove");
        assert!(!reopen(&probe).unchanged(&key), "a file it read is gone");
    }

    #[test]
    fn results_of_files_not_checked_this_time_stay_while_the_files_exist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b, c) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"), dir.path().join("c.yaml"));
        for file in [&a, &b, &c] {
            std::fs::write(file, "name: x\n").expect("write");
        }
        let mut cache = cache_in(dir.path());
        for file in [&a, &b] {
            cache.keep(key(file, true), reads_of(&[file]));
        }
        let probe = cache_in(dir.path());
        cache.save();
        std::fs::remove_file(&b).expect("remove");
        let mut second = reopen(&probe);
        second.keep(key(&c, true), reads_of(&[&c]));
        second.save();
        let mut third = reopen(&probe);
        assert!(third.unchanged(&key(&a, true)), "kept: a still exists");
        assert!(third.unchanged(&key(&c, true)));
        assert!(!third.old.contains_key(&key(&b, true)), "dropped: b is gone");
    }

    #[test]
    fn uncacheable_results_are_not_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cache = cache_in(dir.path());
        cache.keep("found a".into(), Reads { files: Vec::new(), uncacheable: true });
        let probe = cache_in(dir.path());
        cache.save();
        assert!(!probe.file.exists(), "nothing to write");
    }

    #[test]
    fn another_runner_another_project_or_a_foreign_file_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let job = dir.path().join("wf.yaml");
        std::fs::write(&job, "name: wf\n").expect("write");
        let mut cache = cache_in(dir.path());
        cache.keep(key(&job, false), reads_of(&[&job]));
        let probe = cache_in(dir.path());
        cache.save();
        assert!(read_entries(&probe.file, &probe.runner, &probe.project).is_some());
        assert!(read_entries(&probe.file, "runner rebuilt", &probe.project).is_none());
        assert!(read_entries(&probe.file, &probe.runner, "/elsewhere").is_none());

        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&probe.file, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        assert!(read_entries(&probe.file, &probe.runner, &probe.project).is_none(), "writable by others");
        std::fs::set_permissions(&probe.file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::write(&probe.file, "{ not json").expect("write");
        assert!(read_entries(&probe.file, &probe.runner, &probe.project).is_none(), "corrupt");
    }
}
