//! Attempts of an external step under its retry policy: exponential backoff with
//! jitter, `Retry-After` honoured within limits, cancellation between attempts.

use std::time::Duration;

use serde_json::Value as Json;

use super::api::{Invocation, Runtime, StepResult, millis};
use super::events::{Event, StepStatus};
use super::{Outcome, Retry};
use crate::model::step::Step;

impl dyn Runtime + '_ {
    /// Run attempts with the step's retry policy: exponential backoff with jitter,
    /// honouring a server's `Retry-After` up to `max_backoff`. A server asking for a
    /// wait longer than the step's `timeout` (the limit of one attempt) ends the step
    /// instead: the run is not parked on a server's say-so.
    pub(crate) async fn attempts<'a, F, Fut>(
        &'a self,
        inv: &'a Invocation<'a>,
        step: &Step,
        path: &str,
        retry_allowed: bool,
        timeout: Duration,
        attempt: F,
    ) -> StepResult
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Outcome>,
    {
        let policy = step.retry.as_ref();
        let max_attempts = policy.map(|p| p.attempts).unwrap_or(1).max(1);
        let base = policy.and_then(|p| p.backoff).map(|d| d.get()).unwrap_or(Duration::from_secs(1));
        let cap = policy.and_then(|p| p.max_backoff).map(|d| d.get()).unwrap_or(Duration::from_secs(30));
        let jitter = policy.and_then(|p| p.jitter).unwrap_or(true);
        let mut number = 1;
        loop {
            let outcome = tokio::select! {
                outcome = attempt() => outcome,
                () = inv.cancel.cancelled() => Outcome::Failed {
                    error: "cancelled".into(),
                    output: Json::Null,
                    retry: Retry::No,
                    proceed: false,
                },
            };
            match outcome {
                Outcome::Ok(output) => {
                    return StepResult { attempts: number, ..StepResult::ok(output) };
                }
                Outcome::Failed { error, output, retry, proceed } => {
                    let after = match retry {
                        Retry::Yes { after }
                            if retry_allowed && number < max_attempts && !inv.cancel.is_cancelled() =>
                        {
                            Some(after)
                        }
                        _ => None,
                    };
                    let Some(after) = after else {
                        return StepResult {
                            status: StepStatus::Failed,
                            output,
                            error: Some(error),
                            attempts: number,
                            proceed,
                        };
                    };
                    let exponent = (number - 1).min(16);
                    let mut delay = base.saturating_mul(1 << exponent).min(cap);
                    if jitter {
                        delay = jittered(delay);
                    }
                    if let Some(server) = after {
                        let asked = server.min(cap);
                        if asked > timeout {
                            return StepResult {
                                status: StepStatus::Failed,
                                output,
                                error: Some(format!(
                                    "{error}; the server asked to retry after {} (Retry-After), longer than the step's timeout of {}: gave up after attempt {number}",
                                    crate::model::Duration(asked),
                                    crate::model::Duration(timeout)
                                )),
                                attempts: number,
                                proceed,
                            };
                        }
                        delay = delay.max(asked);
                    }
                    self.emit(Event::StepRetry {
                        path: path.to_string(),
                        attempt: number,
                        delay_ms: millis(delay),
                        error: error.clone(),
                    });
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = inv.cancel.cancelled() => {
                            return StepResult { attempts: number, ..StepResult::failed("cancelled", output) };
                        }
                    }
                    number += 1;
                }
            }
        }
    }
}

/// `delay` spread by ±50%, so many runners do not retry in step.
fn jittered(delay: Duration) -> Duration {
    delay.mul_f64(0.5 + fastrand::f64())
}
