//! The transport to `runner __template` children: a small pool of workers that each
//! serve one request after another, so a run that evaluates many unbounded templates
//! pays for one spawn, not one per template.
//!
//! A frame is an 8-byte little-endian length and that many bytes. The parent sends a
//! request frame (the JSON [`super::Request`]); the child answers with a frame whose
//! first byte says whether it stays ([`KEEP`]) or ends after this answer ([`RETIRE`],
//! when the request left its address space grown, so the next request starts as a
//! fresh child would), followed by the JSON [`super::Reply`]. A child ends when its
//! stdin ends: when the runner drops an idle worker or exits.
//!
//! The parent takes an idle worker (or spawns one when none is idle, so parallel
//! threads never wait for each other), sends one request, waits for the answer within
//! the time limit, and puts the worker back only after a clean answer. A worker that
//! timed out is killed and reaped; one that died (memory, stack, signal) is reaped and
//! described by its exit and its stderr, as a one-shot child was; one found dead when
//! the request is sent (it died while idle) is replaced once. Workers are spawned by
//! one long-lived thread: a child's parent-death signal fires when the *thread* that
//! spawned it ends, and it must fire only when the runner ends.

use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// First byte of an answer: the worker serves the next request.
pub(super) const KEEP: u8 = b'k';
/// First byte of an answer: the worker ends after this answer.
pub(super) const RETIRE: u8 = b'r';
/// Idle workers kept for the next request (one per core of a small machine).
const MAX_IDLE: usize = 2;
/// The tail of a worker's stderr kept to describe its death.
const MAX_STDERR_BYTES: usize = 64 * 1024;

/// Workers started by this process (read by the tests through `runner::support`).
static SPAWNED: AtomicUsize = AtomicUsize::new(0);
/// Idle workers, most recently used last.
static IDLE: Mutex<Vec<Worker>> = Mutex::new(Vec::new());

/// How many `runner __template` workers this process has started.
pub fn spawned() -> usize {
    SPAWNED.load(Ordering::Relaxed)
}

/// End the idle workers and wait for them: closing its stdin ends a worker.
/// The runner calls this before it exits, so no child outlives it and each child's
/// resource use is counted with the runner's (the parent-death signal covers an exit
/// that skips this).
pub(crate) fn shutdown() {
    let idle = match IDLE.lock() {
        Ok(mut idle) => std::mem::take(&mut *idle),
        Err(_) => return,
    };
    let mut children: Vec<Child> = idle
        .into_iter()
        .map(|mut worker| {
            worker.pipes = None;
            worker.child
        })
        .collect();
    let started = std::time::Instant::now();
    for child in &mut children {
        // An idle child ends on the end of its stdin; one that does not within a
        // second is killed.
        while matches!(child.try_wait(), Ok(None)) && started.elapsed() < Duration::from_secs(1) {
            std::thread::sleep(Duration::from_micros(200));
        }
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Write `bytes` as one frame.
pub(super) fn write_frame(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let length = u64::try_from(bytes.len()).map_err(std::io::Error::other)?;
    out.write_all(&length.to_le_bytes())?;
    out.write_all(bytes)?;
    out.flush()
}

/// What [`read_frame`] found.
#[derive(Debug)]
pub(super) enum Frame {
    /// One whole frame.
    Bytes(Vec<u8>),
    /// The stream ended before a frame started.
    End,
    /// A frame longer than allowed (its bytes are not read).
    TooLarge(u64),
}

/// Read one frame of at most `max` bytes.
pub(super) fn read_frame(input: &mut impl Read, max: u64) -> std::io::Result<Frame> {
    let mut header = [0u8; 8];
    let mut filled = 0;
    while filled < header.len() {
        match input.read(&mut header[filled..]) {
            Ok(0) if filled == 0 => return Ok(Frame::End),
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let length = u64::from_le_bytes(header);
    if length > max {
        return Ok(Frame::TooLarge(length));
    }
    let mut bytes = Vec::new();
    input.take(length).read_to_end(&mut bytes)?;
    if u64::try_from(bytes.len()).ok() != Some(length) {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Frame::Bytes(bytes))
}

/// Why a request got no answer.
#[derive(Debug)]
pub(super) enum Failure {
    /// No worker could be started.
    Start(std::io::Error),
    /// The time limit passed; the worker was killed and reaped.
    Timeout,
    /// The worker died during the request: its exit and the tail of its stderr.
    Died(ExitStatus, String),
}

/// Send `request` to a worker of `executable` and wait up to `limit` for its answer
/// (the JSON reply, without the keep/retire byte).
pub(super) fn exchange(executable: &Path, request: &[u8], limit: Duration) -> Result<Vec<u8>, Failure> {
    let request = Arc::new(request.to_vec());
    let mut replaced = false;
    loop {
        let mut worker = match take_idle() {
            Some(worker) => worker,
            None => Worker::spawn(executable).map_err(Failure::Start)?,
        };
        match worker.request(&request, limit) {
            Ok((KEEP, reply)) => {
                give_back(worker);
                return Ok(reply);
            }
            Ok((_, reply)) => {
                worker.end();
                return Ok(reply);
            }
            // It died while idle: once, a fresh worker takes the request.
            Err(Sent::Unsent) if !replaced => {
                worker.end();
                replaced = true;
            }
            Err(Sent::Unsent | Sent::NoAnswer) => {
                let (status, stderr) = worker.reap();
                return Err(Failure::Died(status, stderr));
            }
            Err(Sent::Late) => {
                worker.end();
                return Err(Failure::Timeout);
            }
        }
    }
}

/// An idle worker that is still alive, reaping any that died while idle.
fn take_idle() -> Option<Worker> {
    loop {
        let mut worker = IDLE.lock().ok()?.pop()?;
        if matches!(worker.child.try_wait(), Ok(None)) {
            return Some(worker);
        }
        worker.end();
    }
}

fn give_back(worker: Worker) {
    let mut extra = None;
    match IDLE.lock() {
        Ok(mut idle) if idle.len() < MAX_IDLE => idle.push(worker),
        _ => extra = Some(worker),
    }
    if let Some(worker) = extra {
        worker.end();
    }
}

/// What became of one request.
#[derive(Debug)]
enum Sent {
    /// Writing the request failed: the worker had already ended.
    Unsent,
    /// The worker ended before it answered.
    NoAnswer,
    /// The time limit passed.
    Late,
}

/// The pipes a request uses, lent to the thread that does the blocking I/O.
#[derive(Debug)]
struct Pipes {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// One `runner __template` child and its pipes.
#[derive(Debug)]
struct Worker {
    child: Child,
    pipes: Option<Pipes>,
    /// The tail of its stderr, filled by `stderr_reader`.
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_reader: Option<JoinHandle<()>>,
}

type SpawnRequest = (PathBuf, Sender<std::io::Result<Child>>);

/// Start a child on the long-lived spawning thread (see the module doc).
fn spawn_child(executable: &Path) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (sender, receiver) = channel::<SpawnRequest>();
        // Without the thread, the requests below find no receiver and fail as an error.
        let _ = std::thread::Builder::new().name("template-spawner".to_string()).spawn(move || {
            for (executable, reply) in receiver {
                let child = Command::new(executable)
                    .arg(super::TEMPLATE_ARG)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn();
                let _ = reply.send(child);
            }
        });
        Mutex::new(sender)
    });
    let (reply, answer) = channel();
    let sent = spawner
        .lock()
        .map_err(|_| std::io::Error::other("spawner lock poisoned"))?
        .send((executable.to_path_buf(), reply));
    sent.map_err(|_| std::io::Error::other("the template spawner thread is gone"))?;
    answer.recv().map_err(|_| std::io::Error::other("the template spawner thread is gone"))?
}

impl Worker {
    fn spawn(executable: &Path) -> std::io::Result<Worker> {
        let mut child = spawn_child(executable)?;
        SPAWNED.fetch_add(1, Ordering::Relaxed);
        let (Some(stdin), Some(stdout), Some(mut err)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("the template evaluator has no pipes"));
        };
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let tail = Arc::clone(&stderr);
        let stderr_reader = std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(n) = err.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                if let Ok(mut tail) = tail.lock() {
                    tail.extend_from_slice(&buffer[..n]);
                    let excess = tail.len().saturating_sub(MAX_STDERR_BYTES);
                    tail.drain(..excess);
                }
            }
        });
        Ok(Worker {
            child,
            pipes: Some(Pipes { stdin, stdout: BufReader::new(stdout) }),
            stderr,
            stderr_reader: Some(stderr_reader),
        })
    }

    /// Send one request and wait for the answer: its first byte and the rest.
    fn request(&mut self, request: &Arc<Vec<u8>>, limit: Duration) -> Result<(u8, Vec<u8>), Sent> {
        let Some(mut pipes) = self.pipes.take() else { return Err(Sent::Unsent) };
        if let Ok(mut tail) = self.stderr.lock() {
            tail.clear();
        }
        let request = Arc::clone(request);
        let (sender, receiver) = channel();
        // The child reads the whole request before it answers, so writing and then
        // reading on one thread cannot deadlock; the thread lets us stop waiting.
        std::thread::spawn(move || {
            let answer = match write_frame(&mut pipes.stdin, &request) {
                Err(_) => Err(Sent::Unsent),
                Ok(()) => match read_frame(&mut pipes.stdout, u64::MAX) {
                    Ok(Frame::Bytes(mut bytes)) if !bytes.is_empty() => {
                        let flag = bytes.remove(0);
                        Ok((flag, bytes))
                    }
                    _ => Err(Sent::NoAnswer),
                },
            };
            let _ = sender.send((pipes, answer));
        });
        match receiver.recv_timeout(limit) {
            Ok((pipes, answer)) => {
                self.pipes = Some(pipes);
                answer
            }
            Err(_) => Err(Sent::Late),
        }
    }

    /// Wait for a worker that ended on its own: its exit and the tail of its stderr.
    fn reap(mut self) -> (ExitStatus, String) {
        self.pipes = None;
        let status = match self.child.wait() {
            Ok(status) => status,
            Err(_) => {
                let _ = self.child.kill();
                std::os::unix::process::ExitStatusExt::from_raw(9)
            }
        };
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        let stderr =
            self.stderr.lock().map(|tail| String::from_utf8_lossy(&tail).into_owned()).unwrap_or_default();
        (status, stderr)
    }

    /// Stop the worker (idle, late or retiring) and reap it.
    fn end(mut self) {
        self.pipes = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_the_size_limit_holds() {
        let mut stream = Vec::new();
        write_frame(&mut stream, b"hello").expect("write");
        write_frame(&mut stream, b"").expect("write");
        write_frame(&mut stream, &[7u8; 100]).expect("write");
        let mut input = stream.as_slice();
        assert!(matches!(read_frame(&mut input, 1000), Ok(Frame::Bytes(ref b)) if b == b"hello"));
        assert!(matches!(read_frame(&mut input, 1000), Ok(Frame::Bytes(ref b)) if b.is_empty()));
        assert!(matches!(read_frame(&mut input, 99), Ok(Frame::TooLarge(100))));
        let mut input: &[u8] = &[];
        assert!(matches!(read_frame(&mut input, 10), Ok(Frame::End)));
        // A stream cut inside a header or a body is an error, not an end.
        let mut input: &[u8] = &[3, 0, 0];
        assert!(read_frame(&mut input, 10).is_err());
        let mut input: &[u8] = &[3, 0, 0, 0, 0, 0, 0, 0, b'a'];
        assert!(read_frame(&mut input, 10).is_err());
    }
}
