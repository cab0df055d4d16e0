//! One module per step kind. Each kind's `run` receives the same
//! [`StepCall`](api::StepCall) (engine, invocation, step, scope, path,
//! template context), its own compiled fields and, when it can end the run or its
//! block, the `flow` slot; it returns the step's result. Kinds that talk to the outside
//! world (http, exec, cron) prepare a concrete action that a dry run describes instead
//! of doing; `hooks` stands between them and the world in tests and recordings.

pub(crate) mod api;
pub(crate) mod call;
pub(crate) mod cron;
pub(crate) mod emit;
pub(crate) mod events;
pub(crate) mod exec;
pub(crate) mod fail;
pub(crate) mod for_each;
pub(crate) mod guard;
pub(crate) mod hooks;
pub(crate) mod http;
pub(crate) mod kubernetes;
pub(crate) mod render;
pub(crate) mod retry;
pub(crate) mod set;
pub(crate) mod stages;
pub(crate) mod stop;
pub(crate) mod supervise;
pub(crate) mod switch;
pub(crate) mod transition;
pub(crate) mod width;

use std::path::Path;
use std::time::Duration;

use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

use crate::expr::mask::Masker;
use crate::expr::values::Evaluator;

/// What a step execution produced.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// Success with this output.
    Ok(Json),
    /// Failure. `output` is still recorded (e.g. the HTTP status and body, or the exit
    /// code and stderr) so later steps and `on_error: continue` can inspect it.
    Failed {
        /// Why, in one line, secrets masked by the engine later.
        error: String,
        /// Whatever is known of the result.
        output: Json,
        /// Whether another attempt may succeed, and how long the server asked to wait.
        retry: Retry,
        /// The step itself asked to go on despite the failure (an HTTP `on:` mapping of
        /// `continue`): the run continues whatever the step's `on_error` says.
        proceed: bool,
    },
}

/// Whether a failed attempt may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Retrying cannot help (a 4xx, a decode error, a non-idempotent request).
    No,
    /// A transient failure (transport, timeout, 5xx, 429): retry if the step allows it.
    Yes {
        /// Delay the server asked for (`Retry-After`), if any.
        after: Option<Duration>,
    },
}

/// What a step module needs from the engine.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepCtx<'a> {
    /// Template evaluation.
    pub eval: &'a Evaluator,
    /// The template context of the step (its scope).
    pub context: &'a minijinja::Value,
    /// Secret values, for masking text that leaves the engine (plans, errors).
    pub masker: &'a Masker,
    /// Time limit of one attempt.
    pub timeout: Duration,
    /// Cancelled on SIGINT/SIGTERM or when the run times out.
    pub cancel: &'a CancellationToken,
    /// The directory of the workflow file (relative paths resolve against it).
    pub dir: &'a Path,
    /// Fixtures or a recorder standing between the step and the world, if any.
    pub hooks: Option<&'a dyn hooks::Hooks>,
}
