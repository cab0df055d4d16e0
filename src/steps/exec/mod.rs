//! `exec` steps: run a program with an argument list. Never through a shell: `argv[0]`
//! is the program (looked up on `PATH`) and every other entry is exactly one argument,
//! whatever it contains.
//!
//! Each program runs in its own process group, so that a timeout, a cancellation or the
//! engine dropping the step's future kills everything the program started (a shell's
//! background jobs, a CLI's helpers), not just the program itself.

pub(crate) mod process;

pub(crate) use process::*;

use nix::sys::signal::Signal;
use serde_json::{Map, Value as Json};

use crate::expr::mask::Masker;
use crate::model::step::{ExecStep, Parse};
use crate::steps::{Outcome, Retry, StepCtx};

/// Most bytes kept of each of stdout and stderr; the rest is read and discarded.
pub(crate) const DEFAULT_MAX_OUTPUT_BYTES: usize = 10 * 1024 * 1024;
/// Characters of stdin shown in a dry-run plan.
const PLAN_STDIN_CHARS: usize = 2000;
/// Characters of stderr quoted in a failure message.
const ERROR_LINE_CHARS: usize = 200;

/// Render an `exec` step into a command: every argv entry, env value, the cwd and
/// stdin are rendered as text. Each argv entry stays exactly one argument.
pub(crate) fn prepare(ctx: &StepCtx<'_>, step: &ExecStep) -> Result<CommandSpec, String> {
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
pub(crate) fn describe(spec: &CommandSpec, masker: &Masker) -> Json {
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
pub(crate) async fn execute(ctx: &StepCtx<'_>, step: &ExecStep, spec: &CommandSpec) -> Outcome {
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

/// The `exec` step: prepare the command (planned in a dry run unless it is declared a
/// read), then run it with the step's retry policy.
pub(crate) async fn run(
    call: &crate::steps::api::StepCall<'_>,
    exec: &ExecStep,
) -> crate::steps::api::StepResult {
    use crate::steps::api::StepResult;
    let crate::steps::api::StepCall { engine, inv, step, path, context, .. } = *call;
    let timeout = step.timeout.map(|t| t.get()).unwrap_or(crate::steps::api::DEFAULT_STEP_TIMEOUT);
    let masker = engine.masker();
    let ctx = engine.ctx(inv, context, &masker, timeout);
    let spec = match prepare(&ctx, exec) {
        Ok(s) => s,
        Err(e) => return StepResult::failed(e, Json::Null),
    };
    if engine.plan().writes(step) && inv.plan {
        return engine.planned(step, path, describe(&spec, &masker));
    }
    engine.attempts(inv, step, path, true, timeout, || execute(&ctx, exec, &spec)).await
}

#[cfg(test)]
mod tests;
