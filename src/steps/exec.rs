//! `exec` steps: run a program with an argument list. Never through a shell: `argv[0]`
//! is the program (looked up on `PATH`) and every other entry is exactly one argument,
//! whatever it contains.
//!
//! Each program runs in its own process group, so that a timeout, a cancellation or the
//! engine dropping the step's future kills everything the program started (a shell's
//! background jobs, a CLI's helpers), not just the program itself.

use std::future::Future;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Map, Value as Json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio_util::sync::CancellationToken;

use super::{Outcome, Retry, StepCtx};
use crate::engine::mask::Masker;
use crate::model::step::{ExecStep, Parse};

/// Most bytes kept of each of stdout and stderr; the rest is read and discarded.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 10 * 1024 * 1024;

/// The error of [`run_command`] when the cancellation token fired.
pub const CANCELLED: &str = "cancelled";

/// How long a process group gets to exit after SIGTERM before it is sent SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(1);
/// How long to wait for a SIGKILLed program to be reaped before giving up on its status.
const REAP_LIMIT: Duration = Duration::from_secs(5);
/// How long to keep reading output after the group was killed. A process that left the
/// group (`setsid`) may still hold the pipes open; its EOF is not worth hanging for.
const DRAIN_AFTER_KILL: Duration = Duration::from_millis(500);
/// Size of one read from an output pipe.
const READ_CHUNK: usize = 64 * 1024;
/// Characters of stdin shown in a dry-run plan.
const PLAN_STDIN_CHARS: usize = 2000;
/// Characters of stderr quoted in a failure message.
const ERROR_LINE_CHARS: usize = 200;

/// A program to run, fully rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
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
pub struct CommandOutput {
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
pub async fn run_command(spec: &CommandSpec, cancel: &CancellationToken) -> Result<CommandOutput, String> {
    let program = spec.argv.first().filter(|p| !p.is_empty()).ok_or("no program to run: argv is empty")?;
    if cancel.is_cancelled() {
        return Err(CANCELLED.to_string());
    }
    if let Some(cwd) = &spec.cwd {
        check_cwd(cwd)?;
    }

    // Through the supervisor when the runner binary enabled it: then the group dies
    // with the runner, even after `kill -9` (see `supervise`).
    let supervisor = super::supervise::executable();
    let mut command = match supervisor {
        Some(runner) => {
            let mut command = Command::new(runner);
            command.args(super::supervise::arguments(&spec.argv));
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
    if supervisor.is_some() && status.and_then(|s| s.code()) == Some(super::supervise::SPAWN_FAILED) {
        let stderr = String::from_utf8_lossy(&err.bytes);
        if let Some(reason) =
            stderr.lines().find_map(|line| line.strip_prefix(super::supervise::SPAWN_MARKER))
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
fn check_cwd(cwd: &std::path::Path) -> Result<(), String> {
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
fn io_reason(error: &io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Why supervision of a program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
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
struct ProcessGroup {
    child: Child,
    pgid: Pid,
    armed: bool,
}

impl ProcessGroup {
    fn new(child: Child) -> Result<Self, String> {
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
    fn signal(&self, signal: Signal) {
        let _ = killpg(self.pgid, signal);
    }

    /// Wait for the program to exit and its output to close, within `timeout`, unless
    /// cancelled. On timeout or cancellation, kill the group. Returns the exit status
    /// (if the program was reaped) and why supervision ended.
    async fn supervise<F: Future<Output = ()>>(
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
    async fn kill<F: Future<Output = ()>>(
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
async fn feed(stdin: Option<ChildStdin>, input: Option<&str>) {
    if let (Some(mut pipe), Some(text)) = (stdin, input) {
        // A program may exit (or close stdin) without reading all its input; the
        // resulting broken pipe is not our failure to report.
        let _ = pipe.write_all(text.as_bytes()).await;
    }
}

/// The kept part of one output stream.
#[derive(Debug)]
struct Capture {
    bytes: Vec<u8>,
    limit: usize,
    truncated: bool,
}

impl Capture {
    fn new(limit: usize) -> Self {
        Capture { bytes: Vec::new(), limit, truncated: false }
    }

    /// Read the stream to its end, keeping at most `limit` bytes. Reading goes on past
    /// the limit so the program never blocks on a full pipe.
    async fn drain(&mut self, reader: Option<impl AsyncRead + Unpin>) {
        let Some(mut reader) = reader else { return };
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => self.keep(&chunk[..n]),
            }
        }
    }

    fn keep(&mut self, chunk: &[u8]) {
        let room = self.limit.saturating_sub(self.bytes.len());
        let take = room.min(chunk.len());
        self.bytes.extend_from_slice(&chunk[..take]);
        if take < chunk.len() {
            self.truncated = true;
        }
    }
}

/// Render an `exec` step into a command: every argv entry, env value, the cwd and
/// stdin are rendered as text. Each argv entry stays exactly one argument.
pub fn prepare(ctx: &StepCtx<'_>, step: &ExecStep) -> Result<CommandSpec, String> {
    let render =
        |what: &str, text: &str| ctx.eval.render_text(text, ctx.context).map_err(|e| format!("{what}: {e}"));

    let mut argv: Vec<String> = Vec::with_capacity(step.argv.len());
    for (i, arg) in step.argv.iter().enumerate() {
        let what = format!("argv[{i}]");
        let value = render(&what, arg)?;
        refuse_nul(&what, &value)?;
        let after_separator = argv.iter().skip(1).any(|earlier| earlier == "--");
        if i > 0 && !step.options_from_input && !after_separator && injected_option(arg, &value) {
            return Err(format!(
                "{what}: `{arg}` produced `{}`, which starts with `-` and would reach `{}` as an option; \
                 put `--` before it in argv if the program accepts that, or set `options_from_input: true`",
                clip(&value, 80),
                argv.first().map(String::as_str).unwrap_or_default()
            ));
        }
        argv.push(value);
    }
    match argv.first() {
        None => return Err("argv: no program given".to_string()),
        Some(program) if program.is_empty() => return Err("argv[0]: the program name is empty".to_string()),
        Some(_) => {}
    }

    let mut env = Vec::with_capacity(step.env.len());
    for (name, value) in &step.env {
        let what = format!("env.{name}");
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(format!("{what}: invalid variable name"));
        }
        let value = render(&what, value)?;
        refuse_nul(&what, &value)?;
        env.push((name.clone(), value));
    }

    let cwd = match &step.cwd {
        None => None,
        Some(template) => {
            let path = render("cwd", template)?;
            refuse_nul("cwd", &path)?;
            if path.is_empty() {
                return Err("cwd: the directory is empty".to_string());
            }
            Some(ctx.dir.join(path))
        }
    };
    let stdin = step.stdin.as_ref().map(|template| render("stdin", template)).transpose()?;

    Ok(CommandSpec {
        argv,
        env,
        cwd,
        stdin,
        timeout: ctx.timeout,
        max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
    })
}

/// Whether a rendered argument starts with `-` only because of what was interpolated:
/// the template itself does not start with `-` (an option the author wrote, like
/// `--limit={{ n }}`, is theirs to write).
fn injected_option(template: &str, rendered: &str) -> bool {
    rendered.starts_with('-') && !template.starts_with('-') && crate::template::is_template(template)
}

/// Strings handed to the OS cannot contain NUL; say so before spawn fails obscurely.
fn refuse_nul(what: &str, value: &str) -> Result<(), String> {
    if value.contains('\0') {
        return Err(format!("{what}: contains a NUL character, which cannot be passed to a program"));
    }
    Ok(())
}

/// What a dry run shows of a command: `argv`, `env`, `cwd`, `stdin` (the first 2000
/// characters, plus `"stdin_truncated": true` when cut), absent ones omitted, every
/// string masked.
pub fn describe(spec: &CommandSpec, masker: &Masker) -> Json {
    let mut plan = Map::new();
    plan.insert("argv".into(), spec.argv.iter().map(|a| Json::String(a.clone())).collect());
    if !spec.env.is_empty() {
        let env = spec.env.iter().map(|(name, value)| (name.clone(), Json::String(value.clone()))).collect();
        plan.insert("env".into(), Json::Object(env));
    }
    if let Some(cwd) = &spec.cwd {
        plan.insert("cwd".into(), Json::String(cwd.to_string_lossy().into_owned()));
    }
    if let Some(stdin) = &spec.stdin {
        // Mask before cutting, so a secret straddling the cut cannot leak a prefix.
        let masked = masker.text(stdin);
        let shown: String = masked.chars().take(PLAN_STDIN_CHARS).collect();
        let cut = shown.len() < masked.len();
        plan.insert("stdin".into(), Json::String(shown));
        if cut {
            plan.insert("stdin_truncated".into(), Json::Bool(true));
        }
    }
    masker.value(&Json::Object(plan))
}

/// Run a prepared `exec` step and judge the result.
///
/// Output: `{"exit_code", "signal"?, "stdout", "stderr", "duration_ms", "timed_out"?,
/// "truncated"?}` where `stdout` is parsed per `step.parse`.
pub async fn execute(ctx: &StepCtx<'_>, step: &ExecStep, spec: &CommandSpec) -> Outcome {
    let run = match super::hooks::run_command(ctx.hooks, spec, ctx.cancel).await {
        Ok(run) => run,
        Err(error) => return Outcome::Failed { error, output: Json::Null, retry: Retry::No, proceed: false },
    };
    let program = spec.argv.first().map(String::as_str).unwrap_or_default();
    let ok_codes = step.ok_codes.as_deref().unwrap_or(&[0]);
    let succeeded = !run.timed_out && run.exit_code.is_some_and(|code| ok_codes.contains(&code));
    let failure = (!succeeded).then(|| failure_message(program, spec, &run));
    if succeeded && run.stdout_truncated && !step.truncate {
        let output = output_json(&run, Json::String(run.stdout.clone()));
        let error = format!(
            "`{program}` wrote more than {} bytes to stdout, the capture limit; set `truncate: true` on the step to keep the first {} bytes and go on",
            spec.max_output_bytes, spec.max_output_bytes
        );
        return Outcome::Failed { error, output, retry: Retry::No, proceed: false };
    }

    let (stdout, parse_error) = match parse_stdout(step.parse, &run.stdout) {
        Ok(value) => (value, None),
        // Keep the raw text so the failure can be inspected.
        Err(e) => (Json::String(run.stdout.clone()), Some(e)),
    };
    let output = output_json(&run, stdout);

    match (failure, parse_error) {
        // A failed program's stdout is often not what `parse` expects; its exit matters more.
        (Some(error), _) => {
            Outcome::Failed { error, output, retry: Retry::Yes { after: None }, proceed: false }
        }
        (None, Some(error)) => Outcome::Failed { error, output, retry: Retry::No, proceed: false },
        (None, None) => Outcome::Ok(output),
    }
}

/// Turn stdout into the output value per `parse`.
fn parse_stdout(parse: Parse, stdout: &str) -> Result<Json, String> {
    Ok(match parse {
        Parse::Text => Json::String(stdout.to_string()),
        Parse::None => Json::Null,
        Parse::Lines => stdout
            .split('\n')
            .map(|line| line.strip_suffix('\r').unwrap_or(line))
            .filter(|line| !line.is_empty())
            .map(|line| Json::String(line.to_string()))
            .collect(),
        Parse::Json if stdout.trim().is_empty() => Json::Null,
        Parse::Json => serde_json::from_str(stdout).map_err(|e| format!("stdout is not valid JSON: {e}"))?,
    })
}

/// The step's output value.
fn output_json(run: &CommandOutput, stdout: Json) -> Json {
    let mut output = Map::new();
    output.insert("exit_code".into(), run.exit_code.map_or(Json::Null, Json::from));
    if let Some(signal) = run.signal {
        output.insert("signal".into(), Json::from(signal));
    }
    output.insert("stdout".into(), stdout);
    output.insert("stderr".into(), Json::String(run.stderr.clone()));
    output.insert("duration_ms".into(), Json::from(run.duration_ms));
    if run.timed_out {
        output.insert("timed_out".into(), Json::Bool(true));
    }
    if run.stdout_truncated || run.stderr_truncated {
        output.insert("truncated".into(), Json::Bool(true));
    }
    Json::Object(output)
}

/// One line saying why a run that did not succeed failed.
fn failure_message(program: &str, spec: &CommandSpec, run: &CommandOutput) -> String {
    if run.timed_out {
        let limit = crate::model::Duration(spec.timeout);
        return format!("`{program}` timed out after {limit}; its process group was killed");
    }
    if let Some(signal) = run.signal {
        return match Signal::try_from(signal) {
            Ok(name) => format!("`{program}` was killed by signal {signal} ({})", name.as_str()),
            Err(_) => format!("`{program}` was killed by signal {signal}"),
        };
    }
    let code = run.exit_code.map_or_else(|| "unknown".to_string(), |c| c.to_string());
    match run.stderr.lines().map(str::trim).find(|line| !line.is_empty()) {
        Some(line) => format!("`{program}` exited with code {code}: {}", clip(line, ERROR_LINE_CHARS)),
        None => format!("`{program}` exited with code {code}"),
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

/// The `exec` step: prepare the command (planned in a dry run unless it is declared a
/// read), then run it with the step's retry policy.
pub(crate) async fn run(
    call: &crate::engine::run::StepCall<'_>,
    exec: &ExecStep,
) -> crate::engine::run::StepResult {
    use crate::engine::run::StepResult;
    let crate::engine::run::StepCall { engine, inv, step, path, context, .. } = *call;
    let timeout = step.timeout.map(|t| t.get()).unwrap_or(crate::engine::run::DEFAULT_STEP_TIMEOUT);
    let masker = engine.masker();
    let ctx = engine.ctx(inv, context, &masker, timeout);
    let spec = match prepare(&ctx, exec) {
        Ok(s) => s,
        Err(e) => return StepResult::failed(e, Json::Null),
    };
    if step.writes() && inv.plan {
        return engine.planned(step, path, describe(&spec, &masker));
    }
    engine.attempts(inv, step, path, true, timeout, || execute(&ctx, exec, &spec)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::values::{Evaluator, to_mj};
    use serde_json::json;
    use std::path::Path;

    struct Fixture {
        eval: Evaluator,
        context: minijinja::Value,
        masker: Masker,
        cancel: CancellationToken,
        dir: PathBuf,
        timeout: Duration,
    }

    impl Fixture {
        fn new(context: &Json) -> Self {
            Fixture {
                eval: Evaluator::default(),
                context: to_mj(context),
                masker: Masker::default(),
                cancel: CancellationToken::new(),
                dir: PathBuf::from("."),
                timeout: Duration::from_secs(20),
            }
        }

        fn ctx(&self) -> StepCtx<'_> {
            StepCtx {
                eval: &self.eval,
                context: &self.context,
                masker: &self.masker,
                timeout: self.timeout,
                cancel: &self.cancel,
                dir: &self.dir,
                hooks: None,
            }
        }

        async fn run(&self, step: Json) -> Outcome {
            let step = exec_step(step);
            let ctx = self.ctx();
            let spec = prepare(&ctx, &step).unwrap();
            execute(&ctx, &step, &spec).await
        }
    }

    fn exec_step(step: Json) -> ExecStep {
        serde_json::from_value(step).unwrap()
    }

    fn spec(argv: &[&str], timeout: Duration) -> CommandSpec {
        CommandSpec {
            argv: argv.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
            cwd: None,
            stdin: None,
            timeout,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
        }
    }

    fn ok_output(outcome: Outcome) -> Json {
        match outcome {
            Outcome::Ok(output) => output,
            other => panic!("expected success, got {other:?}"),
        }
    }

    fn failure(outcome: Outcome) -> (String, Json, Retry) {
        match outcome {
            Outcome::Failed { error, output, retry, proceed } => {
                assert!(!proceed);
                (error, output, retry)
            }
            other => panic!("expected failure, got {other:?}"),
        }
    }

    /// Whether a process is running. A killed process nobody has reaped yet (a zombie,
    /// e.g. in a container whose init does not reap) counts as gone.
    fn alive(pid: i32) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
        !matches!(state, None | Some('Z' | 'X'))
    }

    async fn gone_within(pid: i32, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if !alive(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        !alive(pid)
    }

    /// Wait for a shell to write a background child's pid to `path`.
    async fn read_pid(path: &Path) -> i32 {
        for _ in 0..400 {
            if let Ok(text) = std::fs::read_to_string(path)
                && text.ends_with('\n')
            {
                return text.trim().parse().unwrap();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no pid written to {}", path.display());
    }

    /// A shell that starts `sleep 30` in the background, records its pid in `$1` and
    /// waits for it: the sleep is a grandchild of runner, in the program's group.
    const GRANDCHILD: &str = "sleep 30 & echo $! > \"$1\"; wait";

    #[tokio::test(flavor = "current_thread")]
    async fn captures_stdout() {
        let fx = Fixture::new(&json!({"name": "world"}));
        let output = ok_output(fx.run(json!({"argv": ["echo", "hello {{ name }}"]})).await);
        assert_eq!(output["exit_code"], json!(0));
        assert_eq!(output["stdout"], json!("hello world\n"));
        assert_eq!(output["stderr"], json!(""));
        assert!(output["duration_ms"].is_u64());
        assert!(output.get("signal").is_none() && output.get("truncated").is_none());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn exit_code_and_first_stderr_line_make_the_error() {
        let fx = Fixture::new(&json!({}));
        let script = "echo out; printf '\\n  first problem  \\nsecond\\n' >&2; exit 3";
        let (error, output, retry) = failure(fx.run(json!({"argv": ["sh", "-c", script]})).await);
        assert_eq!(error, "`sh` exited with code 3: first problem");
        assert_eq!(retry, Retry::Yes { after: None });
        assert_eq!(output["exit_code"], json!(3));
        assert_eq!(output["stdout"], json!("out\n"));
        assert_eq!(output["stderr"], json!("\n  first problem  \nsecond\n"));

        let (error, _, _) = failure(fx.run(json!({"argv": ["sh", "-c", "exit 4"]})).await);
        assert_eq!(error, "`sh` exited with code 4");

        let long = "x".repeat(500);
        let (error, _, _) = failure(fx.run(json!({"argv": ["sh", "-c", "echo $0 >&2; exit 1", long]})).await);
        assert_eq!(error.chars().count(), "`sh` exited with code 1: ".len() + 200);
        assert!(error.ends_with("x…"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn ok_codes_decide_success() {
        let fx = Fixture::new(&json!({}));
        let output = ok_output(fx.run(json!({"argv": ["sh", "-c", "exit 1"], "ok_codes": [0, 1]})).await);
        assert_eq!(output["exit_code"], json!(1));
        let (error, _, _) = failure(fx.run(json!({"argv": ["true"], "ok_codes": [1]})).await);
        assert_eq!(error, "`true` exited with code 0");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn stdin_round_trips_through_cat() {
        let fx = Fixture::new(&json!({"text": "line one\nline two"}));
        let output = ok_output(fx.run(json!({"argv": ["cat"], "stdin": "{{ text }}\n"})).await);
        assert_eq!(output["stdout"], json!("line one\nline two\n"));

        // Far more than a pipe buffer both ways: writing and reading must overlap.
        let big: String = "0123456789abcdef\n".repeat(300_000);
        let mut command = spec(&["cat"], Duration::from_secs(20));
        command.stdin = Some(big.clone());
        let run = run_command(&command, &CancellationToken::new()).await.unwrap();
        assert_eq!(run.exit_code, Some(0));
        assert!(run.stdout == big, "stdout differs from stdin");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn unread_stdin_is_not_an_error() {
        let mut command = spec(&["true"], Duration::from_secs(20));
        command.stdin = Some("y".repeat(1_000_000));
        let run = run_command(&command, &CancellationToken::new()).await.unwrap();
        assert_eq!(run.exit_code, Some(0));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn env_and_cwd_reach_the_program() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let mut fx = Fixture::new(&json!({"v": "a b"}));
        fx.dir = dir.path().to_path_buf();
        let step = json!({"argv": ["sh", "-c", "printf '%s|%s' \"$RUNNER_TEST_V\" \"$PWD\""],
                          "env": {"RUNNER_TEST_V": "{{ v }}"}, "cwd": "sub"});
        let output = ok_output(fx.run(step).await);
        let expected = format!("a b|{}", dir.path().join("sub").canonicalize().unwrap().display());
        assert_eq!(output["stdout"], json!(expected));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn parse_modes() {
        let fx = Fixture::new(&json!({}));
        let run = |argv: Json, parse: &str| fx.run(json!({"argv": argv, "parse": parse}));

        let output = ok_output(run(json!(["printf", "{\"a\": [1, 2]}"]), "json").await);
        assert_eq!(output["stdout"], json!({"a": [1, 2]}));
        let output = ok_output(run(json!(["printf", " \n "]), "json").await);
        assert_eq!(output["stdout"], Json::Null);
        let output = ok_output(run(json!(["printf", "a\r\n\nb c\n\n"]), "lines").await);
        assert_eq!(output["stdout"], json!(["a", "b c"]));
        let output = ok_output(run(json!(["echo", "ignored"]), "none").await);
        assert_eq!(output["stdout"], Json::Null);
        let output = ok_output(run(json!(["echo", "kept"]), "text").await);
        assert_eq!(output["stdout"], json!("kept\n"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn invalid_json_fails_without_retry() {
        let fx = Fixture::new(&json!({}));
        let (error, output, retry) =
            failure(fx.run(json!({"argv": ["echo", "{nope"], "parse": "json"})).await);
        assert!(error.starts_with("stdout is not valid JSON: "), "{error}");
        assert_eq!(retry, Retry::No);
        assert_eq!(output["stdout"], json!("{nope\n"));
        assert_eq!(output["exit_code"], json!(0));

        // A failing program's exit is the error, even when its stdout is not JSON.
        let (error, output, _) =
            failure(fx.run(json!({"argv": ["sh", "-c", "echo oops; exit 2"], "parse": "json"})).await);
        assert_eq!(error, "`sh` exited with code 2");
        assert_eq!(output["stdout"], json!("oops\n"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn spawn_errors_are_clear_and_not_retried() {
        let fx = Fixture::new(&json!({}));
        let (error, output, retry) =
            failure(fx.run(json!({"argv": ["runner-no-such-program-xyz", "a"]})).await);
        assert_eq!(error, "program `runner-no-such-program-xyz` not found on PATH");
        assert_eq!(output, Json::Null);
        assert_eq!(retry, Retry::No);

        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("script.sh");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        let script = script.to_string_lossy().into_owned();
        let (error, _, _) = failure(fx.run(json!({"argv": [script]})).await);
        assert_eq!(error, format!("cannot start `{script}`: permission denied"));

        let missing = dir.path().join("missing");
        let (error, _, _) = failure(fx.run(json!({"argv": ["true"], "cwd": missing})).await);
        assert_eq!(error, format!("working directory `{}` does not exist", missing.display()));

        let (error, _, _) = failure(fx.run(json!({"argv": [dir.path().join("nope")]})).await);
        assert_eq!(error, format!("program `{}` not found", dir.path().join("nope").display()));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn arguments_never_reach_a_shell() {
        let dir = tempfile::tempdir().unwrap();
        let mut fx = Fixture::new(&json!({"evil": "`touch pwned2` && touch pwned3"}));
        fx.dir = dir.path().to_path_buf();
        let literal = "$(touch pwned); rm -rf x";
        let step = json!({"argv": ["printf", "%s|%s", literal, "{{ evil }}"], "cwd": "."});
        let output = ok_output(fx.run(step).await);
        assert_eq!(output["stdout"], json!(format!("{literal}|`touch pwned2` && touch pwned3")));
        for name in ["pwned", "pwned2", "pwned3"] {
            assert!(!dir.path().join(name).exists(), "{name} was created");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let pidfile_arg = pidfile.to_string_lossy().into_owned();
        let command = spec(&["sh", "-c", GRANDCHILD, "sh", &pidfile_arg], Duration::from_millis(300));
        let started = Instant::now();
        let run = run_command(&command, &CancellationToken::new()).await.unwrap();
        assert!(run.timed_out);
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
        assert_eq!(run.exit_code, None);
        assert_eq!(run.signal, Some(Signal::SIGTERM as i32));
        let grandchild = read_pid(&pidfile).await;
        assert!(gone_within(grandchild, Duration::from_secs(2)).await, "grandchild {grandchild} survived");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn timeout_error_names_the_limit() {
        let mut fx = Fixture::new(&json!({}));
        fx.timeout = Duration::from_millis(300);
        let (error, output, retry) = failure(fx.run(json!({"argv": ["sleep", "30"]})).await);
        assert_eq!(error, "`sleep` timed out after 300ms; its process group was killed");
        assert_eq!(retry, Retry::Yes { after: None });
        assert_eq!(output["timed_out"], json!(true));
        assert_eq!(output["exit_code"], Json::Null);
        assert_eq!(output["signal"], json!(15));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn sigterm_ignored_means_sigkill() {
        let command =
            spec(&["sh", "-c", "trap '' TERM; sleep 30 & wait; sleep 30"], Duration::from_millis(200));
        let started = Instant::now();
        let run = run_command(&command, &CancellationToken::new()).await.unwrap();
        assert!(run.timed_out);
        assert_eq!(run.signal, Some(Signal::SIGKILL as i32));
        assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_background_child_holding_stdout_cannot_hang_the_step() {
        // The shell exits at once; its background sleep keeps stdout open.
        let command = spec(&["sh", "-c", "echo started; sleep 30 &"], Duration::from_millis(300));
        let started = Instant::now();
        let run = run_command(&command, &CancellationToken::new()).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
        assert!(run.timed_out);
        assert_eq!(run.exit_code, Some(0));
        assert_eq!(run.stdout, "started\n");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn cancellation_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let pidfile_arg = pidfile.to_string_lossy().into_owned();
        let command = spec(&["sh", "-c", GRANDCHILD, "sh", &pidfile_arg], Duration::from_secs(60));
        let cancel = CancellationToken::new();
        let (result, grandchild) = tokio::join!(run_command(&command, &cancel), async {
            let pid = read_pid(&pidfile).await;
            cancel.cancel();
            pid
        });
        assert_eq!(result, Err(CANCELLED.to_string()));
        assert!(gone_within(grandchild, Duration::from_secs(2)).await, "grandchild {grandchild} survived");

        // Already cancelled: nothing starts.
        let fx = Fixture::new(&json!({}));
        fx.cancel.cancel();
        let (error, output, retry) = failure(fx.run(json!({"argv": ["true"]})).await);
        assert_eq!((error.as_str(), output, retry), (CANCELLED, Json::Null, Retry::No));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn dropping_the_future_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let pidfile_arg = pidfile.to_string_lossy().into_owned();
        let command = spec(&["sh", "-c", GRANDCHILD, "sh", &pidfile_arg], Duration::from_secs(60));
        let cancel = CancellationToken::new();
        // The run future is dropped as soon as the grandchild's pid is known.
        let grandchild = tokio::select! {
            result = run_command(&command, &cancel) => panic!("finished early: {result:?}"),
            pid = read_pid(&pidfile) => pid,
        };
        assert!(gone_within(grandchild, Duration::from_secs(2)).await, "grandchild {grandchild} survived");

        // The same with a plain timeout around the future.
        let pidfile = dir.path().join("pid2");
        let pidfile_arg = pidfile.to_string_lossy().into_owned();
        let command = spec(&["sh", "-c", GRANDCHILD, "sh", &pidfile_arg], Duration::from_secs(60));
        let dropped = tokio::time::timeout(Duration::from_millis(500), run_command(&command, &cancel)).await;
        assert!(dropped.is_err());
        let grandchild = read_pid(&pidfile).await;
        assert!(gone_within(grandchild, Duration::from_secs(2)).await, "grandchild {grandchild} survived");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn output_is_capped_and_drained() {
        let mut command = spec(&["head", "-c", "20000000", "/dev/zero"], Duration::from_secs(20));
        command.max_output_bytes = 1000;
        let run = run_command(&command, &CancellationToken::new()).await.unwrap();
        assert_eq!(run.exit_code, Some(0));
        assert_eq!(run.stdout.len(), 1000);
        assert!(run.stdout_truncated && !run.stderr_truncated);

        let mut fx = Fixture::new(&json!({}));
        fx.timeout = Duration::from_secs(20);
        let step = exec_step(json!({"argv": ["sh", "-c", "head -c 3000 /dev/zero >&2"]}));
        let ctx = fx.ctx();
        let mut command = prepare(&ctx, &step).unwrap();
        command.max_output_bytes = 100;
        let output = ok_output(execute(&ctx, &step, &command).await);
        assert_eq!(output["truncated"], json!(true));
        assert_eq!(output["stderr"].as_str().map(str::len), Some(100));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn stdout_over_the_cap_fails_the_step_unless_truncate_is_set() {
        let mut fx = Fixture::new(&json!({}));
        fx.timeout = Duration::from_secs(20);
        let ctx = fx.ctx();
        let strict = exec_step(json!({"argv": ["head", "-c", "3000", "/dev/zero"]}));
        let mut command = prepare(&ctx, &strict).unwrap();
        command.max_output_bytes = 100;
        let (error, output, retry) = failure(execute(&ctx, &strict, &command).await);
        assert!(
            error.contains("more than 100 bytes to stdout") && error.contains("truncate: true"),
            "{error}"
        );
        assert_eq!(retry, Retry::No);
        assert_eq!(output["truncated"], json!(true));

        let lenient = exec_step(json!({"argv": ["head", "-c", "3000", "/dev/zero"], "truncate": true}));
        let output = ok_output(execute(&ctx, &lenient, &command).await);
        assert_eq!(output["truncated"], json!(true));
        assert_eq!(output["stdout"].as_str().map(str::len), Some(100));
    }

    #[test]
    fn an_input_that_starts_with_a_dash_never_becomes_an_option() {
        let fx = Fixture::new(&json!({"inputs": {"rev": "--output=/tmp/owned", "n": 3}}));
        let ctx = fx.ctx();
        let refused = exec_step(json!({"argv": ["git", "log", "{{ inputs.rev }}"]}));
        let error = prepare(&ctx, &refused).unwrap_err();
        assert!(error.starts_with("argv[2]: `{{ inputs.rev }}` produced `--output=/tmp/owned`"), "{error}");
        assert!(error.contains("`--`") && error.contains("options_from_input: true"), "{error}");

        // After a literal `--` it is an operand; the author's own options are fine.
        let separated =
            exec_step(json!({"argv": ["git", "log", "--limit={{ inputs.n }}", "--", "{{ inputs.rev }}"]}));
        assert_eq!(prepare(&ctx, &separated).unwrap().argv[4], "--output=/tmp/owned");
        let allowed =
            exec_step(json!({"argv": ["git", "log", "{{ inputs.rev }}"], "options_from_input": true}));
        assert_eq!(prepare(&ctx, &allowed).unwrap().argv[2], "--output=/tmp/owned");
        // A `--` that itself came from a value does not open the gate.
        let fx = Fixture::new(&json!({"inputs": {"sep": "--", "rev": "-rf"}}));
        let ctx = fx.ctx();
        let sneaky = exec_step(json!({"argv": ["rm", "{{ inputs.sep }}", "{{ inputs.rev }}"]}));
        assert!(prepare(&ctx, &sneaky).unwrap_err().starts_with("argv[1]:"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn death_by_signal() {
        let fx = Fixture::new(&json!({}));
        let (error, output, retry) = failure(fx.run(json!({"argv": ["sh", "-c", "kill -9 $$"]})).await);
        assert_eq!(error, "`sh` was killed by signal 9 (SIGKILL)");
        assert_eq!(output["signal"], json!(9));
        assert_eq!(output["exit_code"], Json::Null);
        assert_eq!(retry, Retry::Yes { after: None });
    }

    #[test]
    fn prepare_renders_each_entry_as_one_argument() {
        let fx = Fixture::new(&json!({"url": "https://x/a b;c", "token": "t0k", "body": "hi"}));
        let step = exec_step(json!({
            "argv": ["gh", "pr", "view", "{{ url }}", "--json", "state"],
            "env": {"GH_TOKEN": "{{ token }}"},
            "cwd": "work/{{ body }}",
            "stdin": "say {{ body }}",
        }));
        let spec = prepare(&fx.ctx(), &step).unwrap();
        assert_eq!(spec.argv, ["gh", "pr", "view", "https://x/a b;c", "--json", "state"]);
        assert_eq!(spec.env, [("GH_TOKEN".to_string(), "t0k".to_string())]);
        assert_eq!(spec.cwd, Some(PathBuf::from("./work/hi")));
        assert_eq!(spec.stdin.as_deref(), Some("say hi"));
        assert_eq!(spec.timeout, fx.timeout);
        assert_eq!(spec.max_output_bytes, DEFAULT_MAX_OUTPUT_BYTES);

        let step = exec_step(json!({"argv": ["x"], "cwd": "/abs"}));
        assert_eq!(prepare(&fx.ctx(), &step).unwrap().cwd, Some(PathBuf::from("/abs")));
    }

    #[test]
    fn prepare_errors_name_the_field() {
        let fx = Fixture::new(&json!({"empty": "", "nul": "a\u{0}b"}));
        let err = |step: Json| prepare(&fx.ctx(), &exec_step(step)).unwrap_err();
        assert_eq!(err(json!({"argv": ["{{ empty }}", "a"]})), "argv[0]: the program name is empty");
        assert_eq!(err(json!({"argv": []})), "argv: no program given");
        assert!(err(json!({"argv": ["echo", "ok", "{{ missing }}"]})).starts_with("argv[2]: "));
        assert!(err(json!({"argv": ["echo"], "env": {"A": "{{ missing }}"}})).starts_with("env.A: "));
        assert!(err(json!({"argv": ["echo"], "cwd": "{{ missing }}"})).starts_with("cwd: "));
        assert!(err(json!({"argv": ["echo"], "stdin": "{{ missing }}"})).starts_with("stdin: "));
        assert!(err(json!({"argv": ["echo", "{{ nul }}"]})).starts_with("argv[1]: contains a NUL"));
        assert_eq!(err(json!({"argv": ["echo"], "env": {"A=B": "x"}})), "env.A=B: invalid variable name");
    }

    #[test]
    fn describe_masks_and_omits() {
        let mut masker = Masker::default();
        masker.add("s3cret");
        let mut command = spec(&["curl", "-H", "Authorization: s3cret"], Duration::from_secs(1));
        assert_eq!(describe(&command, &masker), json!({"argv": ["curl", "-H", "Authorization: ***"]}));

        command.env = vec![("TOKEN".into(), "s3cret".into())];
        command.cwd = Some(PathBuf::from("/tmp/s3cret"));
        command.stdin = Some(format!("{}s3cret", "a".repeat(1997)));
        let plan = describe(&command, &masker);
        assert_eq!(plan["env"], json!({"TOKEN": "***"}));
        assert_eq!(plan["cwd"], json!("/tmp/***"));
        let stdin = plan["stdin"].as_str().unwrap();
        assert_eq!(stdin.chars().count(), 2000);
        assert!(stdin.ends_with("aaa***"));
        assert_eq!(plan["stdin_truncated"], Json::Null);

        command.stdin = Some("é".repeat(2001));
        let plan = describe(&command, &masker);
        assert_eq!(plan["stdin"].as_str().map(|s| s.chars().count()), Some(2000));
        assert_eq!(plan["stdin_truncated"], json!(true));
    }
}
