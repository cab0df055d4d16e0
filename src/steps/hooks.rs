//! Where a run meets the outside world: every HTTP exchange and every command goes
//! through here. `runner test` and `--replay` answer from fixtures; `--record` watches
//! real exchanges; a plain run has no hooks.

use std::time::Duration;

use super::exec::process::{CommandOutput, CommandSpec};
use super::http::request::Request;
use crate::model::test_file::Fault;

/// A canned HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CannedResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Wait before answering.
    pub delay: Duration,
}

/// How to answer a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HttpAnswer {
    /// Send it over the network.
    Network,
    /// Answer with this.
    Canned(CannedResponse),
    /// Fail as the network would.
    Fault(Fault),
    /// No fixture matches: the step fails naming the request.
    Unmatched,
}

/// How to answer a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CommandAnswer {
    /// Run it for real.
    Run,
    /// Answer with this exit code and output.
    Canned {
        /// Exit code.
        exit_code: i32,
        /// Standard output.
        stdout: String,
        /// Standard error.
        stderr: String,
    },
    /// Never finish (the step's timeout ends it).
    Hang,
    /// The program is not installed.
    Missing,
    /// No fixture matches: the step fails naming the command.
    Unmatched,
}

/// Hooks around the outside world.
pub(crate) trait Hooks: Send + Sync + std::fmt::Debug {
    /// How to answer this request.
    fn http(&self, request: &Request) -> HttpAnswer;
    /// A real response arrived (for recording).
    fn http_observed(&self, _request: &Request, _status: u16, _headers: &[(String, String)], _body: &[u8]) {}
    /// How to answer this command.
    fn command(&self, argv: &[String]) -> CommandAnswer;
    /// A real command finished (for recording).
    fn command_observed(&self, _argv: &[String], _output: &CommandOutput) {}
    /// Whether `program` is installed, for the `which()` template function; `None`
    /// looks it up on `PATH` for real.
    fn which(&self, _program: &str) -> Option<bool> {
        None
    }
}

/// Run a command, or answer it from the hooks.
pub(crate) async fn run_command(
    hooks: Option<&dyn Hooks>,
    spec: &CommandSpec,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<CommandOutput, String> {
    let Some(hooks) = hooks else { return super::exec::process::run_command(spec, cancel).await };
    let program = spec.argv.first().cloned().unwrap_or_default();
    match hooks.command(&spec.argv) {
        CommandAnswer::Run => {
            let output = super::exec::process::run_command(spec, cancel).await?;
            hooks.command_observed(&spec.argv, &output);
            Ok(output)
        }
        CommandAnswer::Canned { exit_code, stdout, stderr } => Ok(CommandOutput {
            exit_code: Some(exit_code),
            signal: None,
            stdout,
            stderr,
            timed_out: false,
            duration_ms: 0,
            stdout_truncated: false,
            stderr_truncated: false,
        }),
        CommandAnswer::Hang => {
            tokio::select! {
                () = tokio::time::sleep(spec.timeout) => {}
                () = cancel.cancelled() => return Err(super::exec::process::CANCELLED.to_string()),
            }
            Ok(CommandOutput {
                exit_code: None,
                signal: Some(15),
                stdout: String::new(),
                stderr: String::new(),
                timed_out: true,
                duration_ms: u64::try_from(spec.timeout.as_millis()).unwrap_or(u64::MAX),
                stdout_truncated: false,
                stderr_truncated: false,
            })
        }
        CommandAnswer::Missing => Err(format!("program `{program}` not found on PATH")),
        CommandAnswer::Unmatched => Err(format!("no command fixture matches {}", quote_argv(&spec.argv))),
    }
}

/// An argv shown as a YAML-ish list, for messages.
pub(crate) fn quote_argv(argv: &[String]) -> String {
    let items: Vec<String> = argv.iter().map(|a| serde_json::to_string(a).unwrap_or_default()).collect();
    format!("[{}]", items.join(", "))
}
