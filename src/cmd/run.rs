//! `runner run`: load and validate the workflow and everything it calls, then run it
//! with reporters attached, signals handled and the report written.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;

use super::inputs::parse_cli_inputs;
use crate::cli::{OutputFormat, RunArgs};
use crate::cmd::{Out, use_color};
use crate::engine::events::{Event, Fanout, Sink};
use crate::engine::lock::default_state_dir;
use crate::engine::project::{Project, ProjectError};
use crate::engine::run::{CancelReason, Engine, Options};
use crate::error::Error;
use crate::exit;
use crate::load::{Loader, ReadError};
use crate::model::{FileKind, TestFile};
use crate::report::human::{Human, Verbosity};
use crate::report::json::JsonLines;
use crate::report::run_report::Collector;
use crate::testing::fixtures::FixtureHooks;
use crate::testing::record::{Recorder, RunFacts};

/// Shares a collector between the fanout and the code that writes the report.
struct Shared(Arc<Collector>);

impl Sink for Shared {
    fn event(&self, event: &Event) {
        self.0.event(event);
    }
}

/// Run `runner run`.
pub(crate) fn run(args: &RunArgs, out: &mut Out) -> Result<(), Error> {
    let mut raw_inputs = Vec::new();
    for input in &args.inputs {
        match input.split_once('=') {
            Some((key, value)) if !key.is_empty() => raw_inputs.push((key.to_string(), value.to_string())),
            _ => {
                return Err(Error::Usage(format!("--input `{input}` is not KEY=VALUE")));
            }
        }
    }
    if args.replay.is_none() {
        // Its TLS roots are read while the workflow loads, not before the first request.
        crate::steps::http::prepare_client();
    }
    let mut loader = Loader::new();
    let (project, main) = match Project::load(&mut loader, &args.file) {
        Ok(loaded) => loaded,
        Err(ProjectError::Missing(path)) => {
            return Err(Error::NoInput(format!("no such workflow: {}", path.display())));
        }
        Err(ProjectError::Invalid) => {
            return Err(Error::problems(super::render_problems(
                &mut loader,
                super::stderr_color(args.color),
                "nothing was run",
            )));
        }
    };
    let collector = Arc::new(Collector::default());
    collector.set_file(&main.display().to_string());
    // The scheduler names the runs it starts, so its log can point at them.
    let run_id = std::env::var("RUNNER_RUN_ID")
        .ok()
        .filter(|id| crate::history::is_run_id(id))
        .unwrap_or_else(|| crate::history::new_run_id(std::time::SystemTime::now()));
    let mut fanout = Fanout::default();
    match args.output {
        OutputFormat::Json => fanout.push(Box::new(JsonLines::default())),
        OutputFormat::Human => {
            let verbosity = if args.quiet {
                Verbosity::Quiet
            } else if args.verbose {
                Verbosity::Verbose
            } else {
                Verbosity::Normal
            };
            let stderr_terminal = std::io::stderr().is_terminal();
            let color = use_color(args.color, stderr_terminal);
            let replay = args.replay.as_deref().map(crate::load::display);
            let live = stderr_terminal && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
            fanout.push(Box::new(Human::new(color, verbosity).with_replay(replay).with_live_status(live)));
        }
    }
    fanout.push(Box::new(Shared(collector.clone())));
    let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    let mut options = Options { dry_run: args.dry_run, state_dir: state_dir.clone(), ..Options::default() };
    let recorder = args.record.as_ref().map(|_| Arc::new(Recorder::default()));
    if let Some(recorder) = &recorder {
        options.hooks = Some(recorder.clone());
    }
    if let Some(replay) = &args.replay {
        match replay_hooks(&mut loader, replay) {
            Ok((hooks, env)) => {
                let mut merged: HashMap<String, String> = std::env::vars().collect();
                for (name, value) in env {
                    merged.entry(name).or_insert(value);
                }
                options.env = Some(merged);
                options.hooks = Some(Arc::new(hooks));
            }
            Err(error) => {
                // The recording's own problems first, then why nothing was run.
                let mut text =
                    super::render_problems(&mut loader, super::stderr_color(args.color), "nothing was run");
                text.push_str(&error.report());
                return Err(Error::Problems { text, code: error.code() });
            }
        }
    }
    let engine = Engine::new(crate::plan::Plan::compile(project), options, Arc::new(fanout));
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            return Err(Error::Internal(format!("cannot start the runtime: {e}")));
        }
    };
    let result = runtime.block_on(async {
        watch_signals(&engine);
        engine
            .run_main_with(&main, |unit| {
                parse_cli_inputs(&unit.workflow, unit.registry.as_deref(), &raw_inputs)
            })
            .await
    });
    if let (Some(path), Some(recorder)) = (&args.record, &recorder)
        && let Err(error) =
            write_recording(&engine, recorder, path, &main, &raw_inputs, args.dry_run, &result)
    {
        // A failed run keeps its own exit code; the lost recording is worth a line.
        if result.exit_code == exit::OK {
            return Err(error);
        }
        out.err(&error.report());
    }
    if !args.no_history || args.report.is_some() {
        let inputs = engine
            .project()
            .unit(&main)
            .and_then(|unit| parse_cli_inputs(&unit.workflow, unit.registry.as_deref(), &raw_inputs).ok())
            .unwrap_or_default();
        let masker = engine.masker();
        let inputs = inputs.into_iter().map(|(k, v)| (masker.text(&k), masker.value(&v))).collect();
        collector.set_identity(if args.no_history { "" } else { &run_id }, inputs);
    }
    if !args.no_history {
        let report = collector.report();
        if let Err(e) = crate::history::store(&state_dir, &report, crate::history::Retention::from_env()) {
            // The run itself is done; a history that cannot be written is worth a line, not a failure.
            out.err(&format!(
                "runner: cannot store the run in the history under {}: {e}\n",
                state_dir.display()
            ));
        }
    }
    if let Some(path) = &args.report {
        let report = collector.report();
        let text = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
        if let Err(e) = crate::fsutil::write_atomic(path, text.as_bytes()) {
            let error = Error::Internal(format!("cannot write the report {}: {e}", path.display()));
            if result.exit_code == exit::OK {
                return Err(error);
            }
            out.err(&error.report());
        }
    }
    Error::status(result.exit_code)
}

/// Hooks answering from a recording's first case (and its defaults), plus its env.
/// On error, the loader holds the recording's problems (if any).
fn replay_hooks(loader: &mut Loader, file: &Path) -> Result<(FixtureHooks, Vec<(String, String)>), Error> {
    let tests = match loader.load_shallow::<TestFile>(file, FileKind::Test) {
        Ok(Some(tests)) => tests,
        Ok(None) | Err(ReadError::Reported) => return Err(Error::Exit(exit::DATAERR)),
        Err(ReadError::Missing) => {
            return Err(Error::NoInput(format!("no such recording: {}", file.display())));
        }
    };
    let Some(case) = tests.cases.first() else { return Err(Error::Exit(exit::DATAERR)) };
    let mut http = case.fixtures.http.clone();
    let mut commands = case.fixtures.commands.clone();
    let mut env: Vec<(String, String)> =
        case.fixtures.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if let Some(defaults) = &tests.defaults {
        http.extend(defaults.http.iter().cloned());
        commands.extend(defaults.commands.iter().cloned());
        env.extend(defaults.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Ok((FixtureHooks::new(http, commands), env))
}

/// Write what the recorder saw as a test file.
fn write_recording(
    engine: &Engine,
    recorder: &Recorder,
    path: &Path,
    main: &Path,
    raw_inputs: &[(String, String)],
    dry_run: bool,
    result: &crate::engine::run::RunResult,
) -> Result<(), Error> {
    let failed = || Error::Internal(format!("cannot write the recording {}", path.display()));
    let Some(unit) = engine.project().unit(main) else { return Err(failed()) };
    let inputs = parse_cli_inputs(&unit.workflow, unit.registry.as_deref(), raw_inputs)
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    let mut env = IndexMap::new();
    for name in unit.workflow.env.keys() {
        if let Ok(value) = std::env::var(name) {
            env.insert(name.clone(), value);
        }
    }
    for secret in unit.workflow.secrets.values() {
        // The value never leaves the machine; a placeholder lets the replay start.
        env.insert(secret.env.clone(), "redacted".to_string());
    }
    let facts = RunFacts {
        file: path,
        workflow: main,
        inputs,
        env,
        dry_run,
        exit_code: result.exit_code,
        outputs: result.outputs.clone(),
    };
    match recorder.to_test_file(facts, &engine.masker()) {
        Ok(text) => crate::fsutil::write_atomic(path, text.as_bytes()).map_err(|_| failed()),
        Err(_) => Err(failed()),
    }
}

/// Cancel the run on SIGINT or SIGTERM; a second one also ends the `finally` steps.
fn watch_signals(engine: &Arc<Engine>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return;
    };
    let engine = engine.clone();
    tokio::spawn(async move {
        loop {
            let reason = tokio::select! {
                got = interrupt.recv() => got.map(|()| CancelReason::Interrupt),
                got = terminate.recv() => got.map(|()| CancelReason::Terminate),
            };
            // `None`: the signal driver is gone, nothing more will arrive.
            let Some(reason) = reason else { return };
            engine.cancel(reason);
        }
    });
}

/// After clap printed `runner run --help`: when the command line also names a workflow
/// (`runner run FILE --help`), print that workflow's description, inputs, secrets and
/// environment. The file is found by clap itself, parsing the same arguments with the
/// help flag made an ordinary one.
pub(crate) fn workflow_help_after_run_help(args: &[std::ffi::OsString], out: &mut Out) {
    use clap::CommandFactory as _;
    let command = crate::cli::Cli::command().mut_subcommand("run", |run| {
        run.disable_help_flag(true)
            .arg(clap::Arg::new("help").long("help").short('h').action(clap::ArgAction::SetTrue))
    });
    let Ok(matches) = command.try_get_matches_from(args) else { return };
    let Some(("run", run)) = matches.subcommand() else { return };
    let Some(file) = run.get_one::<std::path::PathBuf>("file") else { return };
    let mut loader = Loader::new();
    match loader.load(file) {
        Ok(Some(crate::load::Loaded::Workflow(workflow))) => {
            out.out(&format!("\n{}", super::list::workflow_help(file, &workflow)));
        }
        Ok(Some(other)) => out.err(&format!(
            "runner: {} is a {} file, not a workflow\n",
            crate::load::display(file),
            other.kind().name()
        )),
        Ok(None) | Err(ReadError::Reported) => {
            out.err(&super::render_problems(
                &mut loader,
                super::stderr_color(crate::cli::ColorChoice::Auto),
                "its help cannot be shown",
            ));
        }
        Err(ReadError::Missing) => {
            out.err(&format!("runner: no such workflow: {}\n", crate::load::display(file)))
        }
    }
}
