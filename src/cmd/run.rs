//! `runner run`: load and validate the workflow and everything it calls, then run it
//! with reporters attached, signals handled and the report written.

use std::io::IsTerminal as _;
use std::sync::Arc;

use crate::cli::{OutputFormat, RunArgs};
use crate::cmd::{Out, use_color};
use crate::diagnostics;
use crate::engine::events::{Event, Fanout, Sink};
use crate::engine::lock::default_state_dir;
use crate::engine::project::{Project, ProjectError};
use crate::engine::run::{CancelReason, Engine, Options};
use crate::exit;
use crate::load::Loader;
use crate::report::human::{Human, Verbosity};
use crate::report::json::JsonLines;
use crate::report::run_report::Collector;

/// Shares a collector between the fanout and the code that writes the report.
struct Shared(Arc<Collector>);

impl Sink for Shared {
    fn event(&self, event: &Event) {
        self.0.event(event);
    }
}

/// Run `runner run`.
pub fn run(args: &RunArgs, out: &mut Out) -> i32 {
    let mut raw_inputs = Vec::new();
    for input in &args.inputs {
        match input.split_once('=') {
            Some((key, value)) if !key.is_empty() => raw_inputs.push((key.to_string(), value.to_string())),
            _ => {
                out.err(&format!("runner: --input `{input}` is not KEY=VALUE\n"));
                return exit::USAGE;
            }
        }
    }
    let mut loader = Loader::new();
    let (project, main) = match Project::load(&mut loader, &args.file) {
        Ok(loaded) => loaded,
        Err(ProjectError::Missing(path)) => {
            out.err(&format!("runner: no such workflow: {}\n", path.display()));
            return exit::NOINPUT;
        }
        Err(ProjectError::Invalid) => {
            let mut found = std::mem::take(&mut loader.diagnostics);
            diagnostics::sort(&mut found);
            let color = use_color(args.color, std::io::stderr().is_terminal());
            let mut text = String::new();
            for diagnostic in &found {
                text.push_str(&diagnostics::render(diagnostic, &loader.sources, color));
                text.push('\n');
            }
            let noun = if found.len() == 1 { "problem" } else { "problems" };
            text.push_str(&format!("error: {} {noun}; nothing was run\n", found.len()));
            out.err(&text);
            return exit::DATAERR;
        }
    };
    let collector = Arc::new(Collector::default());
    collector.set_file(&main.display().to_string());
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
            let color = use_color(args.color, std::io::stderr().is_terminal());
            fanout.push(Box::new(Human::new(color, verbosity)));
        }
    }
    fanout.push(Box::new(Shared(collector.clone())));
    let options = Options {
        dry_run: args.dry_run,
        state_dir: args.state_dir.clone().unwrap_or_else(default_state_dir),
    };
    let engine = Engine::new(project, options, Arc::new(fanout));
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            out.err(&format!("runner: cannot start the runtime: {e}\n"));
            return exit::SOFTWARE;
        }
    };
    let result = runtime.block_on(async {
        watch_signals(&engine);
        engine.run_main(&main, &raw_inputs).await
    });
    if let Some(path) = &args.report {
        let report = collector.report();
        let text = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
        if let Err(e) = crate::fsutil::write_atomic(path, text.as_bytes()) {
            out.err(&format!("runner: cannot write the report {}: {e}\n", path.display()));
            if result.exit_code == exit::OK {
                return exit::SOFTWARE;
            }
        }
    }
    result.exit_code
}

/// Cancel the run on SIGINT or SIGTERM; a second signal is left to the default action.
fn watch_signals(engine: &Arc<Engine>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return;
    };
    let engine = engine.clone();
    tokio::spawn(async move {
        let reason = tokio::select! {
            _ = interrupt.recv() => CancelReason::Interrupt,
            _ = terminate.recv() => CancelReason::Terminate,
        };
        engine.cancel(reason);
    });
}
