//! Running one program in its own process group: no shell, a time limit, output
//! capped while it is read, the whole group killed on timeout or cancellation.

use std::future::Future;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio_util::sync::CancellationToken;

/// The error of [`run_command`] when the cancellation token fired.
pub(crate) const CANCELLED: &str = "cancelled";

/// How long a process group gets to exit after SIGTERM before it is sent SIGKILL.
pub(crate) const TERM_GRACE: Duration = Duration::from_secs(1);
/// How long to wait for a SIGKILLed program to be reaped before giving up on its status.
pub(crate) const REAP_LIMIT: Duration = Duration::from_secs(5);
/// How long to keep reading output after the group was killed. A process that left the
/// group (`setsid`) may still hold the pipes open; its EOF is not worth hanging for.
pub(crate) const DRAIN_AFTER_KILL: Duration = Duration::from_millis(500);
/// Size of one read from an output pipe.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// A program to run, fully rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandSpec {
    /// Program and arguments; `argv[0]` is never empty after [`prepare`].
    pub argv: Vec<String>,
    /// Variables added to the inherited environment.
    pub env: Vec<(String, String)>,
    /// Working directory (relative ones resolved against the workflow directory by
    /// [`prepare`]); `None` inherits runner's.
    pub cwd: Option<PathBuf>,
    /// Text written to the program's stdin; `None` connects stdin to `/dev/null`.
    pub stdin: Option<String>,
    /// Time limit; when it elapses the whole process group is killed.
    pub timeout: Duration,
    /// Most bytes kept of each of stdout and stderr.
    pub max_output_bytes: usize,
}

/// What a program did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandOutput {
    /// Exit code, when the program exited by itself.
    pub exit_code: Option<i32>,
    /// The signal that killed the program, if one did.
    pub signal: Option<i32>,
    /// Standard output (lossily decoded UTF-8, at most `max_output_bytes`).
    pub stdout: String,
    /// Standard error (same).
    pub stderr: String,
    /// The time limit elapsed and the process group was killed.
    pub timed_out: bool,
    /// Wall time from spawn to the end, in milliseconds.
    pub duration_ms: u64,
    /// Stdout was longer than `max_output_bytes` and was cut.
    pub stdout_truncated: bool,
    /// Stderr was longer than `max_output_bytes` and was cut.
    pub stderr_truncated: bool,
}

/// Run a program. Never through a shell: `argv[0]` is the program (looked up on PATH),
/// each other entry one argument.
///
/// Returns `Err` when the program cannot be started (with a message naming the
/// program or directory) or when `cancel` fires ([`CANCELLED`]). A non-zero exit, a
/// death by signal and a timeout are all `Ok`: the caller decides what they mean.
///
/// Whatever happens — timeout, cancellation, or this future being dropped — the
/// program's whole process group is killed before or as it ends.
pub(crate) async fn run_command(
    spec: &CommandSpec,
    cancel: &CancellationToken,
) -> Result<CommandOutput, String> {
    let program = spec.argv.first().filter(|p| !p.is_empty()).ok_or("no program to run: argv is empty")?;
    if cancel.is_cancelled() {
        return Err(CANCELLED.to_string());
    }
    if let Some(cwd) = &spec.cwd {
        check_cwd(cwd)?;
    }

    // Through the supervisor when the runner binary enabled it: then the group dies
    // with the runner, even after `kill -9` (see `supervise`).
    let supervisor = crate::steps::supervise::executable();
    let mut command = match supervisor {
        Some(runner) => {
            let mut command = Command::new(runner);
            command.args(crate::steps::supervise::arguments(&spec.argv));
            command
        }
        None => {
            let mut command = Command::new(program);
            command.args(&spec.argv[1..]);
            command
        }
    };
    command
        .envs(spec.env.iter().map(|(name, value)| (name, value)))
        .stdin(if spec.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A new group whose id is the child's pid: killpg then reaches every process
        // the program starts, unless one deliberately leaves the group.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &spec.cwd {
        command.current_dir(cwd);
    }

    let started = Instant::now();
    let child = command.spawn().map_err(|e| match supervisor {
        Some(runner) => format!("cannot start the supervisor `{}`: {}", runner.display(), io_reason(&e)),
        None => spawn_error(program, &e),
    })?;
    let mut group = ProcessGroup::new(child)?;

    let stdin = group.child.stdin.take();
    let stdout = group.child.stdout.take();
    let stderr = group.child.stderr.take();
    let mut out = Capture::new(spec.max_output_bytes);
    let mut err = Capture::new(spec.max_output_bytes);
    let (status, stop) = {
        // Feeding stdin and draining both outputs all at once, alongside waiting for the
        // exit: a program blocked writing a full stdout pipe while we block writing its
        // stdin (or the reverse) would otherwise deadlock.
        let io = async {
            tokio::join!(feed(stdin, spec.stdin.as_deref()), out.drain(stdout), err.drain(stderr));
        };
        tokio::pin!(io);
        group.supervise(io, spec.timeout, cancel).await
    };
    // The group was either finished normally or killed by `supervise`.
    group.armed = false;

    if stop == Stop::Cancelled {
        return Err(CANCELLED.to_string());
    }
    if supervisor.is_some() && status.and_then(|s| s.code()) == Some(crate::steps::supervise::SPAWN_FAILED) {
        let stderr = String::from_utf8_lossy(&err.bytes);
        if let Some(reason) =
            stderr.lines().find_map(|line| line.strip_prefix(crate::steps::supervise::SPAWN_MARKER))
        {
            return Err(reason.to_string());
        }
    }
    Ok(CommandOutput {
        exit_code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        stdout: String::from_utf8_lossy(&out.bytes).into_owned(),
        stderr: String::from_utf8_lossy(&err.bytes).into_owned(),
        timed_out: stop == Stop::TimedOut,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        stdout_truncated: out.truncated,
        stderr_truncated: err.truncated,
    })
}

/// Refuse a missing working directory up front: spawn would report it as the same
/// "not found" error as a missing program.
pub(crate) fn check_cwd(cwd: &std::path::Path) -> Result<(), String> {
    match std::fs::metadata(cwd) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(format!("working directory `{}` is not a directory", cwd.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(format!("working directory `{}` does not exist", cwd.display()))
        }
        Err(e) => Err(format!("working directory `{}`: {}", cwd.display(), io_reason(&e))),
    }
}

/// A spawn error in words.
pub(crate) fn spawn_error(program: &str, error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound if program.contains('/') => format!("program `{program}` not found"),
        io::ErrorKind::NotFound => format!("program `{program}` not found on PATH"),
        io::ErrorKind::PermissionDenied => format!("cannot start `{program}`: permission denied"),
        _ => format!("cannot start `{program}`: {}", io_reason(error)),
    }
}

/// An I/O error's description without the trailing "(os error N)".
pub(crate) fn io_reason(error: &io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Why supervision of a program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The program exited and its output pipes closed.
    Finished,
    /// The time limit elapsed; the group was killed.
    TimedOut,
    /// The cancellation token fired; the group was killed.
    Cancelled,
}

/// A running child and its process group. While armed, dropping it SIGKILLs the whole
/// group: this is what cleans up when the engine drops a step's future mid-run.
/// (`kill_on_drop` alone would only kill the group leader, not its children.)
#[derive(Debug)]
pub(crate) struct ProcessGroup {
    pub(crate) child: Child,
    pub(crate) pgid: Pid,
    pub(crate) armed: bool,
}

impl ProcessGroup {
    pub(crate) fn new(child: Child) -> Result<Self, String> {
        // `id()` is only `None` once the child has been reaped, which cannot have
        // happened yet; the pid fits in an i32 on every Unix.
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .ok_or("cannot start the program: no process id")?;
        Ok(ProcessGroup { child, pgid: Pid::from_raw(pid), armed: true })
    }

    /// Send a signal to every process of the group. Errors (ESRCH: the group is
    /// already gone) are of no interest.
    pub(crate) fn signal(&self, signal: Signal) {
        let _ = killpg(self.pgid, signal);
    }

    /// Wait for the program to exit and its output to close, within `timeout`, unless
    /// cancelled. On timeout or cancellation, kill the group. Returns the exit status
    /// (if the program was reaped) and why supervision ended.
    pub(crate) async fn supervise<F: Future<Output = ()>>(
        &mut self,
        mut io: Pin<&mut F>,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> (Option<ExitStatus>, Stop) {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut io_done = false;
        let mut status: Option<io::Result<ExitStatus>> = None;
        // Done only when both have happened: a program may exit while a background
        // child still writes to the inherited stdout. Such a child holding the pipe
        // forever runs into the deadline like any other hang.
        let stop = loop {
            if io_done && status.is_some() {
                break Stop::Finished;
            }
            tokio::select! {
                () = &mut io, if !io_done => io_done = true,
                result = self.child.wait(), if status.is_none() => status = Some(result),
                () = &mut deadline => break Stop::TimedOut,
                () = cancel.cancelled() => break Stop::Cancelled,
            }
        };
        if stop != Stop::Finished {
            self.kill(&mut io, &mut io_done, &mut status).await;
        }
        (status.and_then(Result::ok), stop)
    }

    /// SIGTERM the group, give it [`TERM_GRACE`] to go, then SIGKILL whatever is left
    /// and reap the program. Output keeps being read throughout (a program handling
    /// SIGTERM may block on a full pipe otherwise), but only for a bounded time.
    pub(crate) async fn kill<F: Future<Output = ()>>(
        &mut self,
        io: &mut Pin<&mut F>,
        io_done: &mut bool,
        status: &mut Option<io::Result<ExitStatus>>,
    ) {
        self.signal(Signal::SIGTERM);
        let grace = tokio::time::sleep(TERM_GRACE);
        tokio::pin!(grace);
        while !(*io_done && status.is_some()) {
            tokio::select! {
                () = &mut *io, if !*io_done => *io_done = true,
                result = self.child.wait(), if status.is_none() => *status = Some(result),
                () = &mut grace => break,
            }
        }
        // Even when the leader is gone, a grandchild may have ignored SIGTERM.
        self.signal(Signal::SIGKILL);
        if status.is_none() {
            // SIGKILL cannot be ignored; the bound only guards against a process stuck
            // in the kernel (e.g. on a dead NFS mount). Tokio reaps it later if need be.
            if let Ok(result) = tokio::time::timeout(REAP_LIMIT, self.child.wait()).await {
                *status = Some(result);
            }
        }
        if !*io_done && tokio::time::timeout(DRAIN_AFTER_KILL, &mut *io).await.is_ok() {
            *io_done = true;
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.armed {
            self.signal(Signal::SIGKILL);
        }
    }
}

/// Write `input` to the program's stdin, then close it so the program sees EOF.
pub(crate) async fn feed(stdin: Option<ChildStdin>, input: Option<&str>) {
    if let (Some(mut pipe), Some(text)) = (stdin, input) {
        // A program may exit (or close stdin) without reading all its input; the
        // resulting broken pipe is not our failure to report.
        let _ = pipe.write_all(text.as_bytes()).await;
    }
}

/// The kept part of one output stream.
#[derive(Debug)]
pub(crate) struct Capture {
    pub(crate) bytes: Vec<u8>,
    pub(crate) limit: usize,
    pub(crate) truncated: bool,
}

impl Capture {
    pub(crate) fn new(limit: usize) -> Self {
        Capture { bytes: Vec::new(), limit, truncated: false }
    }

    /// Read the stream to its end, keeping at most `limit` bytes. Reading goes on past
    /// the limit so the program never blocks on a full pipe.
    pub(crate) async fn drain(&mut self, reader: Option<impl AsyncRead + Unpin>) {
        let Some(mut reader) = reader else { return };
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => self.keep(&chunk[..n]),
            }
        }
    }

    pub(crate) fn keep(&mut self, chunk: &[u8]) {
        let room = self.limit.saturating_sub(self.bytes.len());
        let take = room.min(chunk.len());
        self.bytes.extend_from_slice(&chunk[..take]);
        if take < chunk.len() {
            self.truncated = true;
        }
    }
}

/// At most `max` characters of `text`, ending in `…` when cut.
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
