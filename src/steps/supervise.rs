//! Programs die with the runner: a tiny supervisor between the runner and each program.
//!
//! `exec` puts each program in its own process group and kills the group on timeout
//! or cancellation. That needs the runner alive: after `kill -9` of the runner the
//! group would run on, and a run that takes the freed concurrency lock would start the
//! same work beside it. `PR_SET_PDEATHSIG` on the program itself needs `pre_exec`,
//! which is `unsafe` (forbidden in this crate), and it would not reach the program's
//! own children anyway. So the runner starts itself in supervisor mode
//! (`runner __supervise PARENT LOCKS... -- PROGRAM ARGS...`) as the leader of the new
//! group; the supervisor
//!
//! 1. takes a shared lock on each "work lock" file of the concurrency keys the run
//!    holds (see [`crate::engine::lock`]): a next holder of the key waits for those
//!    shared locks to go before it starts anything, so old and new work never overlap;
//! 2. watches its parent ([`watch_parent`]: `PR_SET_PDEATHSIG` set on itself, which
//!    needs no `unsafe`, plus polling) and SIGKILLs the whole group, program and
//!    grandchildren included, as soon as the runner is gone;
//! 3. runs the program with the same stdin, stdout, stderr, working directory and
//!    environment, and ends the way it ended (same exit code, or the same signal).
//!
//! A program that cannot be started is reported back on stderr with a marker line and
//! exit code [`SPAWN_FAILED`], so the runner can give the same "not found on PATH"
//! error as without a supervisor.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal, kill, killpg};
use nix::unistd::{Pid, getpgrp, getpid, getppid};

/// The first argument that selects supervisor mode.
pub(crate) const SUPERVISE_ARG: &str = "__supervise";
/// Exit code of a supervisor that could not start its program.
pub(crate) const SPAWN_FAILED: i32 = 127;
/// Start of the stderr line that carries the reason a program could not start.
pub(crate) const SPAWN_MARKER: &str = "runner-supervise: cannot start: ";
/// How often the supervisor checks that the runner is still its parent.
pub(crate) const WATCH_INTERVAL: Duration = Duration::from_millis(100);

static SUPERVISOR: OnceLock<PathBuf> = OnceLock::new();
static WORK_LOCKS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Run programs through the supervisor (the `runner` binary calls this at start; the
/// library alone, e.g. in unit tests, starts programs directly).
pub(crate) fn enable(runner_executable: PathBuf) {
    if SUPERVISOR.set(runner_executable).is_ok() {
        ENABLED.store(true, Ordering::SeqCst);
    }
}

/// The supervisor executable, when enabled.
pub(crate) fn executable() -> Option<&'static PathBuf> {
    if ENABLED.load(Ordering::SeqCst) { SUPERVISOR.get() } else { None }
}

/// Make every program started from now on hold a shared lock on `path` while it runs.
pub(crate) fn add_work_lock(path: PathBuf) {
    if let Ok(mut locks) = WORK_LOCKS.lock()
        && !locks.contains(&path)
    {
        locks.push(path);
    }
}

/// Stop adding `path` (its key was released).
pub(crate) fn remove_work_lock(path: &std::path::Path) {
    if let Ok(mut locks) = WORK_LOCKS.lock() {
        locks.retain(|held| held != path);
    }
}

/// The arguments of the supervisor for `argv`, after the executable.
pub(crate) fn arguments(argv: &[String]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![SUPERVISE_ARG.into(), std::process::id().to_string().into()];
    if let Ok(locks) = WORK_LOCKS.lock() {
        args.extend(locks.iter().map(|path| path.clone().into_os_string()));
    }
    args.push("--".into());
    args.extend(argv.iter().map(OsString::from));
    args
}

/// Kill this whole process group as soon as `parent` is no longer our parent.
///
/// Two watchers: the kernel sends [`PARENT_DIED`] when the runner thread that started
/// us dies (`PR_SET_PDEATHSIG`; the signal is blocked here and taken with `sigwait`, so
/// no handler and no `unsafe`), and a thread polls `getppid` every
/// [`WATCH_INTERVAL`] in case the signal was lost or came from a thread that ended
/// while the runner lives (then `getppid` is unchanged and nothing happens). Blocking
/// the signal is not passed on: `std::process::Command` resets the signal mask of
/// the program it starts.
fn watch_parent(parent: Pid) {
    let orphaned = move || {
        if getppid() != parent {
            // Everything of this group, ourselves included.
            let _ = killpg(getpgrp(), Signal::SIGKILL);
            std::process::exit(128 + Signal::SIGKILL as i32);
        }
    };
    let mut set = SigSet::empty();
    set.add(PARENT_DIED);
    if set.thread_block().is_ok() && nix::sys::prctl::set_pdeathsig(PARENT_DIED).is_ok() {
        std::thread::spawn(move || {
            while set.wait().is_ok() {
                orphaned();
            }
        });
    }
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(WATCH_INTERVAL);
            orphaned();
        }
    });
}

/// The signal the kernel sends the supervisor when its parent dies.
const PARENT_DIED: Signal = Signal::SIGUSR1;

/// The entry point of supervisor mode: `args` are what follows [`SUPERVISE_ARG`].
/// Returns the exit code (when the program did not die by a signal that could be
/// passed on).
pub(crate) fn main(args: &[OsString]) -> i32 {
    let Some(separator) = args.iter().position(|arg| arg == "--") else {
        eprintln!("{SPAWN_MARKER}malformed supervisor arguments");
        return SPAWN_FAILED;
    };
    let parent =
        args.first().and_then(|pid| pid.to_str()).and_then(|pid| pid.parse::<i32>().ok()).map(Pid::from_raw);
    let Some(parent) = parent.filter(|_| separator >= 1) else {
        eprintln!("{SPAWN_MARKER}malformed supervisor arguments");
        return SPAWN_FAILED;
    };
    let argv = &args[separator + 1..];
    let Some(program) = argv.first() else {
        eprintln!("{SPAWN_MARKER}no program");
        return SPAWN_FAILED;
    };

    // Held until this process ends; opened close-on-exec, so the program does not
    // inherit them (a daemon it starts cannot hold a key forever).
    let mut held: Vec<File> = Vec::new();
    for path in &args[1..separator] {
        match OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path) {
            Ok(file) => {
                if file.lock_shared().is_ok() {
                    held.push(file);
                }
            }
            Err(e) => eprintln!("runner-supervise: cannot use the work lock {}: {e}", path.display()),
        }
    }

    watch_parent(parent);
    if getppid() != parent {
        // The runner died before we got here: start nothing.
        return SPAWN_FAILED;
    }

    let status = match std::process::Command::new(program).args(&argv[1..]).status() {
        Ok(status) => status,
        Err(e) => {
            let program = program.to_string_lossy();
            eprintln!("{SPAWN_MARKER}{}", super::exec::spawn_error(&program, &e));
            return SPAWN_FAILED;
        }
    };
    drop(held);
    if let Some(code) = status.code() {
        return code;
    }
    if let Some(signal) = status.signal().and_then(|s| Signal::try_from(s).ok()) {
        // End the same way, so the runner reports the program's signal. A signal this
        // process ignores (Rust ignores SIGPIPE) falls through to the shell convention.
        let _ = kill(getpid(), signal);
        std::thread::sleep(Duration::from_millis(100));
        return 128 + signal as i32;
    }
    1
}
