//! Command implementations. Each returns `Result<(), Error>`; output goes through
//! [`Out`]. [`run`] is the one place that prints an [`Error`] and maps it to the exit code.

pub(crate) mod graph;
pub(crate) mod import;
pub(crate) mod render;
pub(crate) mod roles;
pub(crate) mod run;
pub(crate) mod runs;
pub(crate) mod schedule;
pub(crate) mod schema;
pub(crate) mod show;
pub(crate) mod show_config;
pub(crate) mod test;
pub(crate) mod validate;
pub(crate) mod validate_cache;

pub(crate) mod completions;
pub(crate) mod inputs;
pub(crate) mod list;
pub(crate) mod man;

pub(crate) mod export;

use std::io::IsTerminal;

use crate::cli::{Cli, ColorChoice, Command};
use crate::error::Error;
use crate::exit;

/// Run a parsed command line and return the exit code: the one place that prints
/// a command's error and maps it to the process exit code.
pub(crate) fn run(cli: Cli) -> i32 {
    let mut out = Out;
    match dispatch(cli, &mut out) {
        Ok(()) => exit::OK,
        Err(error) => {
            out.err(&error.report());
            error.code()
        }
    }
}

fn dispatch(cli: Cli, out: &mut Out) -> Result<(), Error> {
    match cli.command {
        Command::Validate(args) => validate::run(&args, out),
        Command::Render(args) => render::run(&args, out),
        Command::Run(args) => run::run(&args, out),
        Command::Test(args) => test::run(&args, out),
        Command::Roles(crate::cli::RolesCommand::Select(args)) => roles::select(&args, out),
        Command::Graph(args) => graph::run(&args, out),
        Command::Schema(args) => schema::run(&args, out),
        Command::Schedule(args) => schedule::run(&args, out),
        Command::Runs(args) => runs::run(&args, out),
        Command::Show(args) => show::run(&args, out),
        Command::ShowConfig(args) => show_config::run(&args, out),
        Command::Import(crate::cli::ImportCommand::Devclaw(args)) => import::devclaw(&args, out),
        Command::List(args) => list::run(&args, out),
        Command::Completions(args) => completions::run(&args, out),
        Command::Man(args) => man::run(&args, out),
        Command::Export(crate::cli::ExportCommand::Kubernetes(args)) => export::kubernetes(&args, out),
    }
}

/// Parse `args` and run; usage errors (including no command at all) exit 64,
/// `--help` and `--version` exit 0.
pub(crate) fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::Parser as _;
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    match Cli::try_parse_from(&args) {
        Ok(cli) => run(cli),
        Err(error) => {
            let code = match error.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => exit::OK,
                _ => exit::USAGE,
            };
            let _ = error.print();
            if error.kind() == clap::error::ErrorKind::DisplayHelp {
                let mut out = Out;
                run::workflow_help_after_run_help(&args, &mut out);
            }
            code
        }
    }
}

// `Out` lives below every layer that prints (the scheduler logs through it too).
pub(crate) use crate::output::Out;

/// Whether to colour output written to a stream. `auto` follows the conventions
/// anstream follows (via anstyle-query): `NO_COLOR` set -> no colour; else
/// `CLICOLOR_FORCE` set -> colour even into a pipe; else `TERM=dumb` or `CLICOLOR=0`
/// -> no colour; else colour on a terminal.
pub(crate) fn use_color(choice: ColorChoice, stream_is_terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            if anstyle_query::no_color() {
                false
            } else if anstyle_query::clicolor_force() {
                true
            } else if !anstyle_query::term_supports_ansi_color() || anstyle_query::clicolor() == Some(false) {
                false
            } else {
                stream_is_terminal
            }
        }
    }
}

/// Take the loader's diagnostics and render them (sorted) for stderr, ending with
/// `error: N problem(s); <consequence>`. Empty when there are none.
pub(crate) fn render_problems(loader: &mut crate::load::Loader, color: bool, consequence: &str) -> String {
    let mut found = std::mem::take(&mut loader.diagnostics);
    if found.is_empty() {
        return String::new();
    }
    crate::diagnostics::sort(&mut found);
    let mut text = String::new();
    for diagnostic in &found {
        text.push_str(&crate::diagnostics::render(diagnostic, &loader.sources, color));
        text.push('\n');
    }
    let noun = if found.len() == 1 { "problem" } else { "problems" };
    text.push_str(&format!("error: {} {noun}; {consequence}\n", found.len()));
    text
}

/// Whether to colour output written to stderr.
pub(crate) fn stderr_color(choice: ColorChoice) -> bool {
    use_color(choice, std::io::stderr().is_terminal())
}
