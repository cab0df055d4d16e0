//! Depth and memory bounds for template evaluation.
//!
//! minijinja has a work limit (fuel, [`super::FUEL`]) but nothing that bounds memory
//! or the nesting of values a template builds: `{% set ns.s = ns.s ~ ns.s %}` forty
//! times asks for a terabyte, and wrapping a list in a list a million times makes
//! minijinja's own recursive drop and printing overflow the stack. Both end the
//! process with an abort (no error, no `finally`, no report), and no hook of ours
//! runs before it: concatenation, list building and namespace assignment are VM
//! instructions, fuel counts instructions not bytes, and a counting allocator cannot
//! turn an allocation into an error (on stable Rust a failed allocation aborts).
//!
//! So a template that *could* grow without bound is evaluated in a child process,
//! `runner __template`, with an address-space limit ([`MEMORY_LIMIT`]) and a large
//! evaluation stack ([`STACK_SIZE`]): if it dies, only the child dies, and the runner
//! turns its end into an ordinary error of the step (located by the caller like any
//! template error), so `finally` runs and the report is written.
//!
//! Spawning costs about a millisecond, so templates that are bounded by construction
//! stay in-process: [`classify`] reads the compiled instructions, and a template with
//! no macro, include or call block, with at most [`classify::MAX_SUMS`] concatenations or
//! additions of computed values and only filters whose output is linear in their
//! input (no `*`, `join`, `replace`, `indent`, ...) cannot produce more than a small
//! multiple of its inputs. Loops are allowed when they cannot amplify (see
//! [`classify::linear_loop`]: no assignment or function call in the body, which reads only its
//! own item), so each pass emits a part of its own item. Almost every field template
//! (`{{ steps.a.output.id }}`, `{{ n + 1 }}`, `{{ x | default('y') | upper }}`) and
//! list-printing texts (`{% for w in warnings %}- {{ w }}{% endfor %}`) are of that
//! kind; prompt files that set variables in loops are not.
//!
//! Not covered: a template that needs the child but calls a function only the running
//! workflow has (`get_lane`, `select_level`, `which`) runs in-process as before, and
//! so does everything when the library is used without the binary (no [`enable`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use minijinja::{Environment, Value};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

mod classify;
mod pool;

use classify::{Class, classify};
use classify::{MAX_OPERATORS, Risk, compile_risk};
pub(crate) use pool::shutdown;
pub use pool::spawned;

/// The first argument that selects template-evaluation mode of the binary.
pub(crate) const TEMPLATE_ARG: &str = "__template";
/// The address space a child evaluation may use (heap, stacks and the binary).
pub(crate) const MEMORY_LIMIT: u64 = 1024 * 1024 * 1024;
/// The stack of the thread that evaluates in the child.
pub(crate) const STACK_SIZE: usize = 256 * 1024 * 1024;
/// How long a child evaluation may take; fuel ends real templates long before.
pub(crate) const TIME_LIMIT: Duration = Duration::from_secs(300);
/// How long compiling one template in a child may take (real ones take milliseconds).
pub(crate) const COMPILE_TIME_LIMIT: Duration = Duration::from_secs(30);
/// The largest request a child reads (the template and its context as JSON).
const MAX_REQUEST_BYTES: u64 = 512 * 1024 * 1024;

static EXECUTABLE: OnceLock<PathBuf> = OnceLock::new();

/// Evaluate templates that could grow without bound in a child of `executable` (the
/// `runner` binary calls this at start).
/// `RUNNER_TEMPLATE_CHILD=0` keeps every template in-process (to measure the cost of
/// the child, or to work around a platform where it cannot start).
pub fn enable(executable: PathBuf) {
    if std::env::var_os("RUNNER_TEMPLATE_CHILD").is_some_and(|value| value == "0") {
        return;
    }
    let _ = EXECUTABLE.set(executable);
}

/// What a template is evaluated as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Mode {
    /// A template rendered to text.
    Text,
    /// A template rendered to text with every value percent-encoded (URLs).
    Url,
    /// A bare expression evaluated to a value.
    Expression,
}

/// A request to a child evaluation.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    mode: Mode,
    text: String,
    context: Json,
    /// For a template file: the folder its includes are loaded from.
    #[serde(default)]
    root: Option<PathBuf>,
    /// Only compile it (validation): the reply is `null` or the error.
    #[serde(default)]
    compile_only: bool,
}

/// A child's answer: the rendered text (as a JSON string) or the value, or an error.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    Ok(Json),
    Error(String),
    /// The work or depth limit ended it: an error the runner locates.
    Limit(String),
}

/// Evaluate `text` in a child when it could grow without bound and a child can be
/// started; `None` means "evaluate in-process" (bounded, runtime functions, no child).
/// The result is the rendered text as a JSON string, or the expression's value.
pub(crate) fn isolated(mode: Mode, text: &str, context: &Value) -> Option<Result<Json, String>> {
    let executable = EXECUTABLE.get()?;
    if classify(mode, text) != Class::Unbounded {
        return None;
    }
    // A context that is not plain data (it should always be) stays in-process.
    let context = serde_json::to_value(context).ok()?;
    let request = serde_json::to_vec(&Request {
        mode,
        text: text.to_string(),
        context,
        root: None,
        compile_only: false,
    })
    .ok()?;
    Some(
        run_child(executable, &request, TIME_LIMIT)
            .map_err(|(message, limit)| if limit { located(text, message) } else { message }),
    )
}

/// Render `text` in a pooled child within `limit`, whatever its class: the rendered
/// text (a JSON string) or the error as the runner reports it. For the tests, through
/// `runner::support`; `None` before [`enable`].
pub fn render_in_child(text: &str, context: &Json, limit: Duration) -> Option<Result<Json, String>> {
    let executable = EXECUTABLE.get()?;
    let request = Request {
        mode: Mode::Text,
        text: text.to_string(),
        context: context.clone(),
        root: None,
        compile_only: false,
    };
    let request = serde_json::to_vec(&request).ok()?;
    Some(run_child(executable, &request, limit).map_err(|(message, _)| message))
}

/// [`isolated`] for a template file rendered with includes from under `root`: the
/// rendered text, or the message of the limit that ended it (the caller names the
/// file); `None` also when an ordinary error ended it (see below).
pub(crate) fn isolated_file(
    text: &str,
    context: &Json,
    root: &std::path::Path,
) -> Option<Result<String, String>> {
    let executable = EXECUTABLE.get()?;
    if classify(Mode::Text, text) != Class::Unbounded {
        return None;
    }
    let request = Request {
        mode: Mode::Text,
        text: text.to_string(),
        context: context.clone(),
        root: Some(root.to_path_buf()),
        compile_only: false,
    };
    let request = serde_json::to_vec(&request).ok()?;
    match run_child(executable, &request, TIME_LIMIT) {
        Ok(Json::String(rendered)) => Some(Ok(rendered)),
        // An ordinary mistake ended it within the limits: rendering it again in-process
        // stays within them too and yields minijinja's error with its exact position.
        Ok(_) | Err((_, false)) => None,
        Err((message, true)) => Some(Err(message)),
    }
}

/// The child's answer, or the message and whether a limit (work, depth, memory, time)
/// ended it. A pooled worker serves the request ([`pool`]).
fn run_child(executable: &std::path::Path, request: &[u8], limit: Duration) -> Result<Json, (String, bool)> {
    let reply = match pool::exchange(executable, request, limit) {
        Ok(reply) => reply,
        Err(pool::Failure::Start(e)) => {
            return Err((format!("cannot start the template evaluator: {e}"), false));
        }
        Err(pool::Failure::Timeout) => {
            let message =
                format!("template evaluation took longer than {} s and was stopped", limit.as_secs());
            return Err((message, true));
        }
        Err(pool::Failure::Died(status, stderr)) => return Err((describe_death(&status, &stderr), true)),
    };
    match serde_json::from_slice::<Reply>(&reply) {
        Ok(Reply::Ok(value)) => Ok(value),
        Ok(Reply::Error(message)) => Err((message, false)),
        Ok(Reply::Limit(message)) => Err((message, true)),
        Err(e) => Err((format!("the template evaluator failed: {e}"), false)),
    }
}

/// Why a child evaluation ended without an answer, from its exit and its stderr.
fn describe_death(status: &std::process::ExitStatus, stderr: &str) -> String {
    use std::os::unix::process::ExitStatusExt;
    if stderr.contains("overflowed its stack") {
        return format!(
            "template builds a value nested too deeply to handle (it overflowed the {} MiB evaluation stack); \
             is a list wrapped in a list in a loop?",
            STACK_SIZE / (1024 * 1024)
        );
    }
    if stderr.contains("memory allocation of") || stderr.contains("capacity overflow") {
        return format!(
            "template needs more than the {} MiB memory limit of template evaluation; \
             does a value grow in a loop (a string doubled with `~`, a list added to itself)?",
            MEMORY_LIMIT / (1024 * 1024)
        );
    }
    match status.signal() {
        Some(signal) => format!("template evaluation ended abnormally (signal {signal})"),
        None => format!("template evaluation ended abnormally (exit code {})", status.code().unwrap_or(-1)),
    }
}

/// The entry point of `runner __template`: read requests from stdin, one frame each
/// (see [`pool`]), evaluate each within the limits with a fresh environment, and
/// answer each on stdout; end when stdin ends. `environment` makes the template
/// environment (given the include root of a template file). Returns the exit code.
pub(crate) fn main(environment: fn(Option<&std::path::Path>) -> Environment<'static>) -> i32 {
    // Die with the runner; bound the address space before anything grows.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let _ =
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_AS, MEMORY_LIMIT, MEMORY_LIMIT);
    let baseline = address_space();
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    loop {
        let (reply, last) = match pool::read_frame(&mut stdin, MAX_REQUEST_BYTES) {
            Ok(pool::Frame::End) => return 0,
            Err(_) => return 2,
            Ok(pool::Frame::TooLarge(length)) => (
                Reply::Error(format!(
                    "malformed template request: {length} bytes, more than {MAX_REQUEST_BYTES}"
                )),
                true,
            ),
            Ok(pool::Frame::Bytes(input)) => (answer(environment, &input), false),
        };
        // A request that left the address space grown would shrink the next one's
        // limit: end after answering, and the runner starts a fresh child.
        let grown = match (baseline, address_space()) {
            (Some(before), Some(now)) => now > before.saturating_add(RETIRE_GROWTH),
            _ => true,
        };
        let flag = if last || grown { pool::RETIRE } else { pool::KEEP };
        let Ok(json) = serde_json::to_vec(&reply) else { return 2 };
        let mut frame = Vec::with_capacity(json.len() + 1);
        frame.push(flag);
        frame.extend_from_slice(&json);
        drop(json);
        if pool::write_frame(&mut stdout, &frame).is_err() || flag == pool::RETIRE {
            return if flag == pool::RETIRE { 0 } else { 2 };
        }
    }
}

/// How much a child's address space may grow over a request before it retires.
const RETIRE_GROWTH: u64 = 64 * 1024 * 1024;

/// The address space of this process in bytes (`VmSize`), where Linux tells it.
fn address_space() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmSize:"))?;
    let kib: u64 = line.trim_start_matches("VmSize:").trim().trim_end_matches("kB").trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// Evaluate one request (its JSON bytes) on a thread with the large stack.
fn answer(environment: fn(Option<&std::path::Path>) -> Environment<'static>, input: &[u8]) -> Reply {
    match serde_json::from_slice::<Request>(input) {
        Ok(request) => {
            let worker = std::thread::Builder::new()
                .stack_size(STACK_SIZE)
                .spawn(move || evaluate(&environment(request.root.as_deref()), &request));
            match worker.map(|w| w.join()) {
                Ok(Ok(reply)) => reply,
                _ => Reply::Error("template evaluation failed".to_string()),
            }
        }
        Err(e) => Reply::Error(format!("malformed template request: {e}")),
    }
}

/// Characters left as they are in an interpolated URL value: RFC 3986 unreserved.
const COMPONENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Whether `text` can be compiled in-process: `Ok` at once for almost every template;
/// for one that minijinja could not even compile within bounds (see
/// [`compiling_is_unbounded`]) a child compiles it first, and the error says what
/// limit it hit. Validation calls this before it compiles anything.
pub(crate) fn check_compile(mode: Mode, text: &str) -> Result<(), String> {
    type Checked = HashMap<(bool, String), Result<(), String>>;
    static SEEN: OnceLock<Mutex<Checked>> = OnceLock::new();
    let Some(executable) = EXECUTABLE.get() else { return Ok(()) };
    // Every risky token is at least one of these characters: most text needs no lexing.
    let operators = text.chars().filter(|c| matches!(c, '~' | '+' | '-' | '/' | '%' | '|')).count();
    if !text.contains('*') && operators <= MAX_OPERATORS {
        return Ok(());
    }
    match compile_risk(mode, text) {
        None => return Ok(()),
        Some(Risk::Operators) => {
            return Err(format!(
                "the template has more than {MAX_OPERATORS} operators; split it into smaller templates or steps"
            ));
        }
        Some(Risk::Folding) => {}
    }
    let key = (mode == Mode::Expression, text.to_string());
    let seen = SEEN.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(result) = seen.lock().ok().and_then(|map| map.get(&key).cloned()) {
        return result;
    }
    let request =
        Request { mode, text: text.to_string(), context: Json::Null, root: None, compile_only: true };
    let result = match serde_json::to_vec(&request) {
        Ok(request) => match run_child(executable, &request, COMPILE_TIME_LIMIT) {
            Err((message, true)) => Err(format!("cannot compile this template within the limits: {message}")),
            // A syntax error is reported by the in-process compilation, as usual.
            _ => Ok(()),
        },
        Err(_) => Ok(()),
    };
    if let Ok(mut map) = seen.lock() {
        if map.len() > 1_000 {
            map.clear();
        }
        map.insert(key, result.clone());
    }
    result
}

/// Evaluate one request in `env` (the child's side; also used by the tests).
fn evaluate(env: &Environment<'static>, request: &Request) -> Reply {
    if request.compile_only {
        let compiled = match request.mode {
            Mode::Expression => env.compile_expression(&request.text).map(|_| ()),
            Mode::Text | Mode::Url => env.template_from_str(&request.text).map(|_| ()),
        };
        return match compiled {
            Ok(()) => Reply::Ok(Json::Null),
            Err(error) => Reply::Error(super::describe_error(&error)),
        };
    }
    let context = Value::from(minijinja::value::Serde(&request.context));
    let result = match request.mode {
        Mode::Text => env.render_str(&request.text, context).map(Json::String),
        Mode::Url => {
            let mut env = env.clone();
            env.set_formatter(|out, _state, value| {
                let text = match super::display_override(value) {
                    Some(text) => text.to_string(),
                    None if value.is_undefined() => String::new(),
                    None => value.to_string(),
                };
                let encoded = percent_encoding::utf8_percent_encode(&text, COMPONENT).to_string();
                out.write_str(&encoded).map_err(minijinja::Error::from)
            });
            env.render_str(&request.text, context).map(Json::String)
        }
        Mode::Expression => {
            env.compile_expression(&request.text).and_then(|e| e.eval(context)).and_then(|v| {
                super::check_depth(&v)?;
                Ok(if v.is_undefined() || v.is_none() {
                    Json::Null
                } else {
                    serde_json::to_value(&v).unwrap_or(Json::Null)
                })
            })
        }
    };
    match result {
        Ok(value) => Reply::Ok(value),
        Err(error) if is_limit(&error) => Reply::Limit(super::describe_error(&error)),
        Err(error) => Reply::Error(super::describe_error(&error)),
    }
}

/// Whether `error` is one of the evaluation limits (work or depth), not a mistake in
/// the template's logic.
fn is_limit(error: &minijinja::Error) -> bool {
    error.kind() == minijinja::ErrorKind::OutOfFuel
        || error.detail().is_some_and(|detail| detail.starts_with("value nested deeper than"))
}

/// Files the loader read (display name, path), where [`locate`] looks for a template.
static SOURCES: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());

/// Remember a file the loader read, so a template from it that hits a limit can be
/// reported at its place (`file:line:col`).
pub(crate) fn remember_source(name: &str, path: &std::path::Path) {
    if let Ok(mut sources) = SOURCES.lock()
        && !sources.iter().any(|(known, _)| known == name)
        && sources.len() < 10_000
    {
        sources.push((name.to_string(), path.to_path_buf()));
    }
}

/// `message` prefixed with where `text` is written, when a file the loader read has it.
fn located(text: &str, message: String) -> String {
    match locate(text) {
        Some(place) => format!("{place}: {message}"),
        None => message,
    }
}

/// `file:line:col` of the first place a remembered file has `text`: its first line as
/// written (a YAML block scalar keeps lines whole; a quoted one without escapes keeps
/// the text whole), in the order the files were read (the workflow first).
pub(crate) fn locate(text: &str) -> Option<String> {
    let first = text.trim_start().lines().next()?.trim_end();
    if first.is_empty() {
        return None;
    }
    let sources = SOURCES.lock().ok()?.clone();
    for (name, path) in sources {
        let Ok(source) = crate::fsutil::read_text(&path, crate::fsutil::MAX_READ_BYTES) else { continue };
        if let Some(offset) = source.find(first) {
            let before = &source[..offset];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            return Some(format!("{name}:{line}:{column}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(mode: Mode, text: &str) -> Request {
        Request {
            mode,
            text: text.to_string(),
            context: serde_json::json!({"n": 2, "v": "a/b"}),
            root: None,
            compile_only: false,
        }
    }

    #[test]
    fn the_child_side_evaluates_every_mode() {
        let env = crate::template::environment();
        let text = evaluate(&env, &request(Mode::Text, "{% for i in range(n) %}{{ i }}{% endfor %}"));
        assert!(matches!(text, Reply::Ok(Json::String(ref s)) if s == "01"), "{text:?}");
        let url = evaluate(&env, &request(Mode::Url, "/x/{{ v }}{% for i in range(1) %}{% endfor %}"));
        assert!(matches!(url, Reply::Ok(Json::String(ref s)) if s == "/x/a%2Fb"), "{url:?}");
        let value = evaluate(&env, &request(Mode::Expression, "range(n) | list"));
        assert!(matches!(value, Reply::Ok(ref v) if *v == serde_json::json!([0, 1])), "{value:?}");
    }

    #[test]
    fn the_child_side_keeps_the_work_limit_and_the_depth_limit() {
        let mut env = crate::template::environment();
        env.set_fuel(Some(100_000));
        let endless = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
        let reply = evaluate(&env, &request(Mode::Text, endless));
        assert!(
            matches!(reply, Reply::Limit(ref e) if e.starts_with("template work limit reached")),
            "{reply:?}"
        );
        let env = crate::template::environment();
        let deep = "{% set ns = namespace(v=1) %}{% for i in range(300) %}{% set ns.v = [ns.v] %}{% endfor %}{{ ns.v }}";
        let reply = evaluate(&env, &request(Mode::Text, deep));
        assert!(matches!(reply, Reply::Limit(ref e) if e.contains("nested deeper than 256")), "{reply:?}");
    }

    #[test]
    fn a_dead_child_is_described_by_what_killed_it() {
        use std::os::unix::process::ExitStatusExt;
        let aborted = std::process::ExitStatus::from_raw(6);
        let memory = describe_death(&aborted, "memory allocation of 1099511627776 bytes failed\n");
        assert!(memory.contains("memory limit of template evaluation"), "{memory}");
        let stack = describe_death(&aborted, "\nthread '<unnamed>' has overflowed its stack\n");
        assert!(stack.contains("nested too deeply"), "{stack}");
        assert_eq!(describe_death(&aborted, ""), "template evaluation ended abnormally (signal 6)");
    }
}
