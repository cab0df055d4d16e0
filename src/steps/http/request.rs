//! A request prepared from the step's templates (URL shape kept by encoding every
//! interpolated segment, header injection refused) and its dry-run description.

use super::*;
use std::fmt;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Map, Value as Json, json};

use crate::expr::mask::{Masker, is_sensitive_header};
use crate::expr::values::Evaluator;
use crate::model::step::{Decode, HttpMethod, HttpStep, Redirects};
use crate::steps::StepCtx;

/// A request ready to send (or to describe in a plan).
#[derive(Clone, PartialEq)]
pub(crate) struct Request {
    /// HTTP method.
    pub method: HttpMethod,
    /// Full URL, query included, every interpolated value encoded.
    pub url: String,
    /// Headers in sending order, one entry per name.
    pub headers: Vec<(String, String)>,
    /// JSON body.
    pub body: Option<Json>,
    /// Time limit of the attempt (connect, send and the whole body).
    pub timeout: Duration,
    /// Largest response body accepted.
    pub max_response_bytes: u64,
    /// The API whose connection pool is used (`None`: a full `url`).
    pub api: Option<String>,
    /// Which redirects are followed.
    pub redirects: Redirects,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &RedactedHeaders(&self.headers))
            .field("body", &self.body)
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("api", &self.api)
            .field("redirects", &self.redirects)
            .finish()
    }
}

/// Headers for `Debug`, sensitive values redacted, so a stray `{:?}` cannot leak a token.
pub(crate) struct RedactedHeaders<'a>(pub(crate) &'a [(String, String)]);

impl fmt::Debug for RedactedHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter().map(|(name, value)| (name, shown_value(name, value)))).finish()
    }
}

pub(crate) fn shown_value<'a>(name: &str, value: &'a str) -> &'a str {
    if is_sensitive_header(name) { REDACTED } else { value }
}

pub(crate) fn reqwest_method(method: HttpMethod) -> reqwest::Method {
    match method {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Head => reqwest::Method::HEAD,
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Patch => reqwest::Method::PATCH,
        HttpMethod::Delete => reqwest::Method::DELETE,
    }
}

/// Render a step into a request.
///
/// URL: with `api`, the API's base URL followed by `path`; with `url`, the whole
/// template. In both, each interpolated value is percent-encoded as ONE component (a
/// path segment or a query value), so a value can never add segments, a query or a
/// fragment. A consequence for `url`: a value holding a whole URL or several segments
/// (`"{{ env.BASE }}/x"`) is encoded too and does not work; declare an API for that.
///
/// `api` must be the rendered config of `step.api` (ignored for `url` steps). The
/// time limit is `ctx.timeout`, which the engine resolves (step, API, default).
pub(crate) fn prepare(
    ctx: &StepCtx<'_>,
    step: &HttpStep,
    api: Option<&ApiConfig>,
) -> Result<Request, String> {
    let eval = ctx.eval;
    let context = ctx.context;

    let (mut url, api) = match (&step.api, &step.url) {
        (Some(_), Some(_)) => return Err("give either `api` or `url`, not both".into()),
        (None, None) => return Err("an http step needs `api` (with `path`) or `url`".into()),
        (Some(name), None) => {
            let api =
                api.filter(|api| api.name == *name).ok_or_else(|| format!("API `{name}` is not declared"))?;
            let path = match &step.path {
                Some(template) => eval.render_url(template, context).map_err(|e| format!("path: {e}"))?,
                None => String::new(),
            };
            check_dot_segments(&path)?;
            let separator = if path.is_empty() || path.starts_with(['/', '?']) { "" } else { "/" };
            (parse_url(&format!("{}{separator}{path}", api.base_url))?, Some(api))
        }
        (None, Some(template)) => {
            let text = eval.render_url(template, context).map_err(|e| format!("url: {e}"))?;
            check_dot_segments(text.trim())?;
            (parse_url(text.trim())?, None)
        }
    };

    let mut pairs = Vec::new();
    for (name, template) in &step.query {
        let value =
            eval.render_dyn(template, context).map_err(|e| format!("query parameter `{name}`: {e}"))?;
        match value {
            Json::Array(items) => {
                for item in &items {
                    if let Json::Array(_) = item {
                        return Err(format!("query parameter `{name}` holds a nested list"));
                    }
                    if let Some(text) = query_text(name, item)? {
                        pairs.push((name, text));
                    }
                }
            }
            other => {
                if let Some(text) = query_text(name, &other)? {
                    pairs.push((name, text));
                }
            }
        }
    }
    if !pairs.is_empty() {
        let mut query = url.query_pairs_mut();
        for (name, value) in &pairs {
            query.append_pair(name, value);
        }
    }

    // API headers, then its bearer token, then the step's headers: later ones replace
    // earlier ones of the same name (case-insensitively).
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(api) = api {
        for (name, value) in &api.headers {
            set_header(&mut headers, name, value.clone());
        }
        if let Some(token) = &api.bearer {
            set_header(&mut headers, "Authorization", format!("Bearer {token}"));
        }
    }
    for (name, template) in &step.headers {
        match render_header_value(eval, template, context).map_err(|e| format!("header `{name}`: {e}"))? {
            Some(value) => set_header(&mut headers, name, value),
            // `none` drops the header, also one the API would send.
            None => headers.retain(|(existing, _)| !existing.eq_ignore_ascii_case(name)),
        }
    }

    let body = match &step.body {
        Some(template) => Some(eval.render_dyn(template, context).map_err(|e| format!("body: {e}"))?),
        None => None,
    };
    if body.is_some() && !has_header(&headers, "content-type") {
        headers.push(("Content-Type".into(), "application/json".into()));
    }
    if step.decode == Decode::Json && !has_header(&headers, "accept") {
        headers.push(("Accept".into(), "application/json".into()));
    }
    for (name, value) in &headers {
        check_header(name, value)?;
    }

    Ok(Request {
        method: step.method,
        url: url.to_string(),
        headers,
        body,
        timeout: ctx.timeout,
        max_response_bytes: step
            .max_response_bytes
            .or(api.and_then(|api| api.max_response_bytes))
            .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES),
        api: api.map(|api| api.name.clone()),
        redirects: step.redirects.or(api.map(|api| api.redirects)).unwrap_or_default(),
    })
}

/// Refuse a `.` or `..` path segment. Percent-encoding leaves dots alone (they are
/// unreserved) and URL parsing resolves `..` (also written `%2E%2E`), so a value that
/// is exactly `..` would otherwise climb out of its place: `/agents/{{ a }}/queue` with
/// `a = ".."` would become `/queue`.
pub(crate) fn check_dot_segments(text: &str) -> Result<(), String> {
    let path = text.split(['?', '#']).next().unwrap_or_default();
    let dotted = path.split('/').any(|segment| {
        let segment = segment.to_ascii_lowercase().replace("%2e", ".");
        segment == "." || segment == ".."
    });
    if dotted {
        return Err(format!("URL `{text}` has a `.` or `..` path segment, which would change its path"));
    }
    Ok(())
}

pub(crate) fn parse_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("invalid URL `{text}`: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("invalid URL `{text}`: only http and https are supported"));
    }
    Ok(url)
}

/// The text of one query value; `None` omits it.
pub(crate) fn query_text(name: &str, value: &Json) -> Result<Option<String>, String> {
    Ok(match value {
        Json::Null => None,
        Json::String(text) => Some(text.clone()),
        Json::Bool(_) | Json::Number(_) => Some(value.to_string()),
        Json::Array(_) | Json::Object(_) => {
            return Err(format!(
                "query parameter `{name}` is a {}; give a string, number, boolean or list",
                if value.is_array() { "list" } else { "map" }
            ));
        }
    })
}

pub(crate) fn has_header(headers: &[(String, String)], name: &str) -> bool {
    headers.iter().any(|(existing, _)| existing.eq_ignore_ascii_case(name))
}

/// Render a header value. A lone `{{ expr }}` keeps its type so that `none` can mean
/// "no header" (`None`) and a boolean or number is sent as its JSON text (`true`, not
/// the template engine's `True`).
pub(crate) fn render_header_value(
    eval: &Evaluator,
    template: &str,
    context: &minijinja::Value,
) -> Result<Option<String>, String> {
    Ok(match eval.render_value(template, context)? {
        Json::Null => None,
        Json::String(text) => Some(text),
        other => Some(other.to_string()),
    })
}

/// Replace the header of that name (keeping its position) or add it.
pub(crate) fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: String) {
    match headers.iter_mut().find(|(existing, _)| existing.eq_ignore_ascii_case(name)) {
        Some(entry) => *entry = (name.to_string(), value),
        None => headers.push((name.to_string(), value)),
    }
}

/// Check a header and convert it. Errors never quote the value: it may be a secret.
pub(crate) fn check_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    if value.contains(['\r', '\n']) {
        return Err(format!("header `{name}` value contains a line break"));
    }
    let header =
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name `{name}`"))?;
    let value = HeaderValue::from_bytes(value.as_bytes())
        .map_err(|_| format!("header `{name}` value contains a control character"))?;
    Ok((header, value))
}

/// The request as a plan shows it: `{method, url, headers, body}`, sensitive headers
/// redacted and known secrets masked.
pub(crate) fn describe(request: &Request, masker: &Masker) -> Json {
    let headers: Map<String, Json> = request
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), Json::String(shown_value(name, value).to_string())))
        .collect();
    masker.value(&json!({
        "method": request.method.as_str(),
        "url": request.url,
        "headers": headers,
        "body": request.body.clone().unwrap_or(Json::Null),
    }))
}
