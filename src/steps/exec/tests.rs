//! Tests of the `exec` step and the process runner.

use super::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

use crate::expr::mask::Masker;
use crate::expr::values::{Evaluator, to_mj};
use crate::model::step::ExecStep;
use crate::steps::{Outcome, Retry, StepCtx};
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
    let (error, output, retry) = failure(fx.run(json!({"argv": ["echo", "{nope"], "parse": "json"})).await);
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
    let (error, output, retry) = failure(fx.run(json!({"argv": ["runner-no-such-program-xyz", "a"]})).await);
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
    let command = spec(&["sh", "-c", "trap '' TERM; sleep 30 & wait; sleep 30"], Duration::from_millis(200));
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
    assert!(error.contains("more than 100 bytes to stdout") && error.contains("truncate: true"), "{error}");
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
    let allowed = exec_step(json!({"argv": ["git", "log", "{{ inputs.rev }}"], "options_from_input": true}));
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
