//! Files checked once per process and shared between loaders (`runner validate`'s
//! threads): claims, waits and the cycle check.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use super::{Document, Loaded};

/// Files already checked by one loader, for the other loaders of the same process
/// (`runner validate`'s threads): a file that many files name (a lane registry, a
/// called workflow, the workflow of a test file) is parsed and checked once, not once
/// per loader. A loader that needs a file another loader is checking waits for it
/// (unless that loader waits, directly or not, for one of its own files: a reference
/// cycle across loaders; then it checks the file itself). Kept: files loaded as a
/// reference, and files named on the command line that another loader waited for
/// (keeping every one would hold all files of a large run in memory). Problems are
/// reported by the loader that checked the file; the others see only the result, as
/// a second load in one loader does.
#[derive(Debug, Default)]
pub(crate) struct SharedLoads {
    state: Mutex<SharedState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct SharedState {
    done: HashMap<PathBuf, SharedLoad>,
    /// Files being checked, by the number of the loader checking them.
    loading: HashMap<PathBuf, usize>,
    /// The file each waiting loader waits for.
    waiting: HashMap<usize, PathBuf>,
    loaders: usize,
}

#[derive(Debug, Clone)]
pub(super) struct SharedLoad {
    pub(super) result: Option<Loaded>,
    pub(super) text: Arc<str>,
    pub(super) document: Option<Arc<Document>>,
    /// What its check read, when `runner validate` logs reads (see `crate::readlog`).
    pub(super) reads: Option<Arc<crate::readlog::Reads>>,
}

/// What a loader may do with a file, according to the shared state.
pub(super) enum Claim {
    /// Another loader checked it.
    Done(SharedLoad),
    /// Check it and publish it.
    Mine,
    /// Check it without publishing (waiting would close a cycle, or the state is
    /// unusable).
    Alone,
}

impl SharedLoads {
    pub(super) fn join(&self) -> usize {
        match self.state.lock() {
            Ok(mut state) => {
                state.loaders += 1;
                state.loaders
            }
            Err(_) => 0,
        }
    }

    pub(super) fn claim(&self, key: &Path, me: usize) -> Claim {
        let Ok(mut state) = self.state.lock() else { return Claim::Alone };
        loop {
            if let Some(load) = state.done.get(key) {
                return Claim::Done(load.clone());
            }
            let Some(&owner) = state.loading.get(key) else {
                state.loading.insert(key.to_path_buf(), me);
                return Claim::Mine;
            };
            // Would the owner (or whoever it waits for, and so on) wait for me?
            let mut current = owner;
            let mut steps = 0;
            while current != me && steps <= state.waiting.len() {
                match state.waiting.get(&current).and_then(|file| state.loading.get(file)) {
                    Some(&next) => current = next,
                    None => break,
                }
                steps += 1;
            }
            if current == me || owner == me {
                return Claim::Alone;
            }
            state.waiting.insert(me, key.to_path_buf());
            state = match self.changed.wait(state) {
                Ok(state) => state,
                Err(_) => return Claim::Alone,
            };
            state.waiting.remove(&me);
        }
    }

    /// Publish a checked file (`keep`: always, else only if another loader waits for
    /// it) or, with `None`, give up the claim (the file could not be read).
    fn release(&self, key: &Path, load: Option<SharedLoad>, keep: bool) {
        if let Ok(mut state) = self.state.lock() {
            state.loading.remove(key);
            let wanted = keep || state.waiting.values().any(|file| file == key);
            if let Some(load) = load.filter(|_| wanted) {
                state.done.insert(key.to_path_buf(), load);
            }
        }
        self.changed.notify_all();
    }
}

/// A file this loader claimed in [`SharedLoads`]: published with [`Claimed::release`],
/// or given up when dropped unpublished (an unreadable file, or a panic while checking
/// it), so no other loader waits for it forever.
pub(super) struct Claimed {
    shared: Arc<SharedLoads>,
    key: PathBuf,
    released: bool,
}

impl Claimed {
    /// A claim [`SharedLoads::claim`] granted to this loader.
    pub(super) fn new(shared: Arc<SharedLoads>, key: PathBuf) -> Self {
        Claimed { shared, key, released: false }
    }

    /// Publish the checked file (`keep`: always, else only if another loader waits).
    pub(super) fn release(&mut self, load: SharedLoad, keep: bool) {
        self.released = true;
        self.shared.release(&self.key, Some(load), keep);
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        if !self.released {
            self.shared.release(&self.key, None, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Loader;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {name}: {e}"));
        path
    }

    fn caller(target: &str) -> String {
        format!("name: c\nsteps:\n  - id: sub\n    type: call\n    workflow: {target}\n")
    }

    #[test]
    fn a_shared_reference_is_checked_by_one_loader_and_seen_by_the_others() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        // The callee has a problem of its own (an unknown step type).
        write(dir.path(), "callee.yaml", "name: callee\nsteps:\n  - id: a\n    type: nope\n");
        let first = write(dir.path(), "first.yaml", &caller("callee.yaml"));
        let second = write(dir.path(), "second.yaml", &caller("callee.yaml"));
        let shared = Arc::new(SharedLoads::default());

        let mut one = Loader::with_shared(shared.clone());
        assert!(matches!(one.load(&first), Ok(None)));
        let in_callee =
            |loader: &Loader| loader.diagnostics.iter().filter(|d| d.file.ends_with("callee.yaml")).count();
        assert!(in_callee(&one) > 0, "{:?}", one.diagnostics);

        // The second loader gets the callee's result without checking it again: its
        // problems are reported once, by the first loader.
        let mut two = Loader::with_shared(shared);
        assert!(matches!(two.load(&second), Ok(None)));
        assert_eq!(in_callee(&two), 0, "{:?}", two.diagnostics);
        let ours: Vec<_> = two.diagnostics.iter().map(|d| (d.file.clone(), d.code)).collect();
        let mut alone = Loader::new();
        let _ = alone.load(&second);
        let theirs: Vec<_> = alone
            .diagnostics
            .iter()
            .filter(|d| !d.file.ends_with("callee.yaml"))
            .map(|d| (d.file.clone(), d.code))
            .collect();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn loaders_that_call_each_others_files_do_not_wait_for_each_other_forever() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let a = write(dir.path(), "a.yaml", &caller("b.yaml"));
        let b = write(dir.path(), "b.yaml", &caller("a.yaml"));
        for _ in 0..20 {
            let shared = Arc::new(SharedLoads::default());
            let reported = std::sync::atomic::AtomicUsize::new(0);
            std::thread::scope(|scope| {
                for path in [&a, &b] {
                    let (shared, reported) = (shared.clone(), &reported);
                    scope.spawn(move || {
                        let mut loader = Loader::with_shared(shared);
                        let _ = loader.load(path);
                        reported.fetch_add(loader.diagnostics.len(), std::sync::atomic::Ordering::Relaxed);
                    });
                }
            });
            assert!(reported.into_inner() > 0, "the cycle is reported");
        }
    }

    #[test]
    fn a_claim_dropped_unpublished_lets_the_next_loader_check_the_file() {
        let shared = Arc::new(SharedLoads::default());
        let key = PathBuf::from("/nowhere/x.yaml");
        assert!(matches!(shared.claim(&key, 1), Claim::Mine));
        // As on an unreadable file or a panic while checking: the claim is dropped.
        drop(Claimed { shared: Arc::clone(&shared), key: key.clone(), released: false });
        // Loader 2 is not left waiting for a file nobody checks any more (without the
        // drop it would wait forever: asked on a thread, with a deadline).
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(matches!(shared.claim(&key, 2), Claim::Mine));
        });
        assert_eq!(receiver.recv_timeout(std::time::Duration::from_secs(30)), Ok(true));
    }
}
