//! `http` steps: prepare a request from templates (URL, query, headers, JSON body),
//! describe it for a dry run, send it and turn the response into an [`Outcome`].
//!
//! Safety rules kept here, whatever the workflow says:
//! - every value interpolated into a URL (`path`, or a full `url`) is percent-encoded as
//!   one component, so a `/`, `?`, `#`, `&` or space inside a value cannot change the
//!   URL's shape; query values are form-encoded;
//! - header values with CR or LF are refused (no header injection);
//! - sensitive headers (`Authorization`, cookies, anything named like a token or a
//!   secret) are shown as `<redacted>`, in plans and in recorded response headers;
//! - a response body is read as a stream and abandoned as soon as it passes the size
//!   limit, so an oversized body never sits in memory.

mod api;
mod client;
pub(crate) mod request;
mod response;
mod transport;

pub(crate) use api::*;
pub(crate) use client::*;
pub(crate) use request::*;
pub(crate) use response::*;
pub(crate) use transport::*;

use std::time::Duration;

use serde_json::Value as Json;

use crate::model::step::HttpStep;
use crate::steps::{Outcome, Retry, StepCtx};

/// Time limit of one request when neither the step nor its API sets one.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest response body accepted when neither the step nor its API sets a limit.
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: u64 = 10 * 1024 * 1024;

/// What the value of a sensitive header is replaced with wherever it is shown.
pub(crate) const REDACTED: &str = "<redacted>";

/// Redirects followed before the request fails.
pub(crate) const MAX_REDIRECTS: usize = 5;

/// Longest wait a `Retry-After` header can ask for; a server cannot park a run for a day.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Characters of the response body quoted in an `http_error` message.
pub(crate) const ERROR_BODY_CHARS: usize = 200;

/// Send the request and judge the response.
///
/// Success: `Outcome::Ok({status, headers, body})`. A failure is classified
/// (`http_error`, `transport`, `timeout`, `decode`; plus two that `on` cannot map: a
/// body over the size limit, and cancellation) and then looked up in `step.on`: a
/// `{value: ...}` mapping turns it into `Outcome::Ok`, `continue` into a failure with
/// `proceed: true` and `Retry::No` (it is an answer, not to be retried), `fail` or no
/// mapping leave it a failure with its retry advice.
pub(crate) async fn execute(
    ctx: &StepCtx<'_>,
    clients: &Clients,
    step: &HttpStep,
    request: &Request,
) -> Outcome {
    let result = tokio::select! {
        biased;
        () = ctx.cancel.cancelled() => {
            return Outcome::Failed { error: "cancelled".into(), output: Json::Null, retry: Retry::No, proceed: false };
        }
        result = tokio::time::timeout(request.timeout, transport_hooked(ctx, clients, request)) => result,
    };
    let failure = match result {
        Err(_elapsed) => timed_out(request),
        Ok(Err(failure)) => failure,
        Ok(Ok(received)) => match judge(step, request, &received) {
            Ok(output) => return Outcome::Ok(output),
            Err(failure) => failure,
        },
    };
    resolve(ctx, step, failure)
}

/// The `http` step: prepare the request (planned in a dry run when it writes), then
/// send it with the step's retry policy.
pub(crate) async fn run(
    call: &crate::steps::api::StepCall<'_>,
    http: &HttpStep,
) -> crate::steps::api::StepResult {
    use crate::steps::api::StepResult;
    let crate::steps::api::StepCall { engine, inv, step, path, context, .. } = *call;
    let api = http.api.as_ref().and_then(|name| inv.apis.get(name));
    let timeout =
        step.timeout.map(|t| t.get()).or_else(|| api.and_then(|a| a.timeout)).unwrap_or(DEFAULT_TIMEOUT);
    let masker = engine.masker();
    let ctx = engine.ctx(inv, context, &masker, timeout);
    let request = match prepare(&ctx, http, api) {
        Ok(r) => r,
        Err(e) => return StepResult::failed(e, Json::Null),
    };
    if engine.plan().writes(step) && inv.plan {
        return engine.planned(step, path, describe(&request, &masker));
    }
    let retry_allowed = http.method.is_idempotent() || step.retry.as_ref().is_some_and(|r| r.unsafe_methods);
    engine
        .attempts(inv, step, path, retry_allowed, timeout, || execute(&ctx, engine.clients(), http, &request))
        .await
}

#[cfg(test)]
mod tests;
