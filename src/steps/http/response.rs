//! What a response means: the expected statuses, decoding, `Retry-After`, and the
//! step's `on:` mapping of failures.

use super::*;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Map, Value as Json, json};

use crate::expr::mask::is_sensitive_header;
use crate::expr::values::to_mj;
use crate::model::step::{Decode, HttpStep, OutcomeAction, SimpleOutcome};
use crate::steps::{Outcome, Retry, StepCtx};

/// Check the status and decode the body.
pub(crate) fn judge(step: &HttpStep, request: &Request, received: &Received) -> Result<Json, Failure> {
    let status = received.status;
    let code = status.as_u16();
    let headers = response_headers(&received.headers);
    let expected = match &step.expect {
        Some(codes) => codes.contains(&code),
        None => status.is_success(),
    };
    let method = request.method.as_str();
    let text = || String::from_utf8_lossy(&received.body).into_owned();

    if !expected {
        let body = if received.body.trim_ascii().is_empty() {
            Json::Null
        } else {
            serde_json::from_slice(&received.body).unwrap_or_else(|_| Json::String(text()))
        };
        let reason = status.canonical_reason().map(|r| format!(" {r}")).unwrap_or_default();
        let excerpt = one_line_excerpt(&text());
        let excerpt = if excerpt.is_empty() { String::new() } else { format!(": {excerpt}") };
        let retry = if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            Retry::Yes { after: retry_after(&received.headers, SystemTime::now()) }
        } else {
            Retry::No
        };
        return Err(Failure {
            kind: FailureKind::Status(code),
            error: format!("HTTP {code}{reason} from {method} {}{excerpt}", request.url),
            // `text` is the body as received, for quoting it verbatim.
            output: json!({"status": code, "headers": headers, "body": body, "text": text()}),
            retry,
        });
    }

    let body = match step.decode {
        Decode::None => Json::Null,
        Decode::Text => Json::String(text()),
        Decode::Json if received.body.trim_ascii().is_empty() => Json::Null,
        Decode::Json => match serde_json::from_slice(&received.body) {
            Ok(value) => value,
            Err(e) => {
                return Err(Failure {
                    kind: FailureKind::Decode,
                    error: format!("response from {method} {} is not valid JSON: {e}", request.url),
                    output: json!({"status": code, "headers": headers, "body": text()}),
                    retry: Retry::No,
                });
            }
        },
    };
    Ok(json!({"status": code, "headers": headers, "body": body}))
}

/// Response headers as `{lower-case name: value}`, repeated headers joined with `, `,
/// sensitive ones (`set-cookie`, ...) redacted.
pub(crate) fn response_headers(headers: &HeaderMap) -> Map<String, Json> {
    let mut out = Map::new();
    for name in headers.keys() {
        let value = if is_sensitive_header(name.as_str()) {
            REDACTED.to_string()
        } else {
            headers
                .get_all(name)
                .iter()
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.insert(name.as_str().to_string(), Json::String(value));
    }
    out
}

/// The first characters of a body on one line, for an error message.
pub(crate) fn one_line_excerpt(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(ERROR_BODY_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// The wait a `Retry-After` header asks for: delta-seconds or an HTTP date, at most an
/// hour; a date in the past means no wait. The engine caps it further by the step's
/// `max_backoff` and timeout.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = httpdate::parse_http_date(text).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Apply the step's `on` mapping to a failure.
pub(crate) fn resolve(ctx: &StepCtx<'_>, step: &HttpStep, failure: Failure) -> Outcome {
    let mapping = failure.kind.keys().into_iter().find_map(|key| {
        step.on.iter().find(|(name, _)| name.eq_ignore_ascii_case(&key)).map(|(_, action)| (key, action))
    });
    let Failure { error, output, retry, .. } = failure;
    match mapping {
        None | Some((_, OutcomeAction::Simple(SimpleOutcome::Fail))) => {
            Outcome::Failed { error, output, retry, proceed: false }
        }
        Some((_, OutcomeAction::Simple(SimpleOutcome::Continue))) => {
            Outcome::Failed { error, output, retry: Retry::No, proceed: true }
        }
        Some((key, OutcomeAction::Value(mapped))) => {
            // The step's own context, plus `response` and `error`; the merge is lazy, so
            // an object-backed scope is not copied.
            let context = minijinja::context! {
                response => to_mj(&output),
                error => error.clone(),
                ..ctx.context.clone()
            };
            match ctx.eval.render_dyn(&mapped.value, &context) {
                Ok(value) => Outcome::Ok(value),
                Err(e) => Outcome::Failed {
                    error: format!("{error} (and its `on.{key}` value failed: {e})"),
                    output,
                    retry: Retry::No,
                    proceed: false,
                },
            }
        }
    }
}
