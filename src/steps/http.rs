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

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};
use serde_json::{Map, Value as Json, json};

use super::{Outcome, Retry, StepCtx};
use crate::engine::mask::{Masker, is_sensitive_header};
use crate::engine::values::{Evaluator, to_mj};
use crate::model::step::{Decode, HttpMethod, HttpStep, OutcomeAction, Redirects, SimpleOutcome};
use crate::model::workflow::ApiDef;

/// Time limit of one request when neither the step nor its API sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest response body accepted when neither the step nor its API sets a limit.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 10 * 1024 * 1024;

/// What the value of a sensitive header is replaced with wherever it is shown.
pub const REDACTED: &str = "<redacted>";

/// Redirects followed before the request fails.
const MAX_REDIRECTS: usize = 5;

/// Longest wait a `Retry-After` header can ask for; a server cannot park a run for a day.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Characters of the response body quoted in an `http_error` message.
const ERROR_BODY_CHARS: usize = 200;

/// A declared API with its templates rendered once per run.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// The name under `apis`.
    pub name: String,
    /// Base URL without a trailing `/`, e.g. `https://dispatch.example/v1`.
    pub base_url: String,
    /// Bearer token sent as `Authorization: Bearer ...` (never shown anywhere).
    pub bearer: Option<String>,
    /// Headers sent with every request to this API.
    pub headers: Vec<(String, String)>,
    /// Default time limit of a request to this API.
    pub timeout: Option<Duration>,
    /// Largest response body accepted from this API.
    pub max_response_bytes: Option<u64>,
    /// Which redirects requests to this API follow.
    pub redirects: Redirects,
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("bearer", &self.bearer.as_ref().map(|_| REDACTED))
            .field("headers", &RedactedHeaders(&self.headers))
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("redirects", &self.redirects)
            .finish()
    }
}

impl ApiConfig {
    /// Render an API declaration. The base URL is rendered as plain text (not
    /// percent-encoded: it is a whole URL, typically `{{ env.DISPATCH_URL }}`) and must
    /// be an `http://` or `https://` URL without query or fragment. A bearer token that
    /// is empty or `none` (an optional secret not set) means no `Authorization` header;
    /// a header whose value is `none` is not sent.
    pub fn render(
        name: &str,
        def: &ApiDef,
        eval: &Evaluator,
        context: &minijinja::Value,
    ) -> Result<ApiConfig, String> {
        let in_api = |error: String| format!("API `{name}`: {error}");
        let rendered =
            eval.render_text(&def.base_url, context).map_err(|e| in_api(format!("base_url: {e}")))?;
        let base_url = rendered.trim().trim_end_matches('/').to_string();
        check_base_url(&base_url).map_err(in_api)?;

        let bearer = match &def.bearer {
            Some(template) => {
                let token = render_header_value(eval, template, context)
                    .map_err(|e| in_api(format!("bearer: {e}")))?
                    .map(|token| token.trim().to_string())
                    .filter(|token| !token.is_empty());
                if token.as_ref().is_some_and(|token| token.contains(['\r', '\n'])) {
                    return Err(in_api("bearer token contains a line break".into()));
                }
                token
            }
            None => None,
        };

        let mut headers = Vec::with_capacity(def.headers.len());
        for (header, template) in &def.headers {
            let rendered = render_header_value(eval, template, context)
                .map_err(|e| in_api(format!("header `{header}`: {e}")))?;
            if let Some(value) = rendered {
                check_header(header, &value).map_err(in_api)?;
                headers.push((header.clone(), value));
            }
        }

        Ok(ApiConfig {
            name: name.to_string(),
            base_url,
            bearer,
            headers,
            timeout: def.timeout.map(|d| d.get()),
            max_response_bytes: def.max_response_bytes,
            redirects: def.redirects.unwrap_or_default(),
        })
    }
}

fn check_base_url(base_url: &str) -> Result<(), String> {
    if base_url.is_empty() {
        return Err("base_url is empty".into());
    }
    let lower = base_url.to_ascii_lowercase();
    if !lower.starts_with("http://") && !lower.starts_with("https://") {
        return Err(format!("base_url `{base_url}` must start with http:// or https://"));
    }
    let url = Url::parse(base_url).map_err(|e| format!("base_url `{base_url}` is not a valid URL: {e}"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("base_url `{base_url}` must not have a query or fragment"));
    }
    Ok(())
}

/// One connection pool per API, plus one shared by the steps that give a full `url`.
/// Cheap to clone: clones share the pools.
#[derive(Debug, Clone, Default)]
pub struct Clients {
    pools: Arc<Mutex<HashMap<Option<String>, reqwest::Client>>>,
}

impl Clients {
    /// No pools yet; each is built on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// The client of `api` (`None`: full-URL steps), built on first use.
    fn client(&self, api: Option<&str>) -> Result<reqwest::Client, String> {
        let key = api.map(str::to_string);
        let mut pools = self.pools.lock().map_err(|_| "HTTP client cache poisoned".to_string())?;
        if let Some(client) = pools.get(&key) {
            return Ok(client.clone());
        }
        let client = build_client()?;
        pools.insert(key, client.clone());
        Ok(client)
    }
}

fn build_client() -> Result<reqwest::Client, String> {
    install_crypto_provider();
    // Redirects are followed by `exchange`, which decides per hop what may go to the
    // next origin; reqwest's own policy would forward custom secret-bearing headers and
    // add a `Referer` carrying the original query. System proxy variables are honoured.
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .user_agent(concat!("runner/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {}", innermost(&e)))
}

/// reqwest is built with `rustls-no-provider`: without a process-wide provider the first
/// `Client::build` panics. Installing fails harmlessly when one is already installed.
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A request ready to send (or to describe in a plan).
#[derive(Clone, PartialEq)]
pub struct Request {
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
struct RedactedHeaders<'a>(&'a [(String, String)]);

impl fmt::Debug for RedactedHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter().map(|(name, value)| (name, shown_value(name, value)))).finish()
    }
}

fn shown_value<'a>(name: &str, value: &'a str) -> &'a str {
    if is_sensitive_header(name) { REDACTED } else { value }
}

fn reqwest_method(method: HttpMethod) -> reqwest::Method {
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
pub fn prepare(ctx: &StepCtx<'_>, step: &HttpStep, api: Option<&ApiConfig>) -> Result<Request, String> {
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
fn check_dot_segments(text: &str) -> Result<(), String> {
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

fn parse_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("invalid URL `{text}`: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("invalid URL `{text}`: only http and https are supported"));
    }
    Ok(url)
}

/// The text of one query value; `None` omits it.
fn query_text(name: &str, value: &Json) -> Result<Option<String>, String> {
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

fn has_header(headers: &[(String, String)], name: &str) -> bool {
    headers.iter().any(|(existing, _)| existing.eq_ignore_ascii_case(name))
}

/// Render a header value. A lone `{{ expr }}` keeps its type so that `none` can mean
/// "no header" (`None`) and a boolean or number is sent as its JSON text (`true`, not
/// the template engine's `True`).
fn render_header_value(
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
fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: String) {
    match headers.iter_mut().find(|(existing, _)| existing.eq_ignore_ascii_case(name)) {
        Some(entry) => *entry = (name.to_string(), value),
        None => headers.push((name.to_string(), value)),
    }
}

/// Check a header and convert it. Errors never quote the value: it may be a secret.
fn check_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
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
pub fn describe(request: &Request, masker: &Masker) -> Json {
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

/// Send the request and judge the response.
///
/// Success: `Outcome::Ok({status, headers, body})`. A failure is classified
/// (`http_error`, `transport`, `timeout`, `decode`; plus two that `on` cannot map: a
/// body over the size limit, and cancellation) and then looked up in `step.on`: a
/// `{value: ...}` mapping turns it into `Outcome::Ok`, `continue` into a failure with
/// `proceed: true` and `Retry::No` (it is an answer, not to be retried), `fail` or no
/// mapping leave it a failure with its retry advice.
pub async fn execute(ctx: &StepCtx<'_>, clients: &Clients, step: &HttpStep, request: &Request) -> Outcome {
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

/// A response read in full (within the size limit).
struct Received {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A failed attempt, before `on` is applied.
struct Failure {
    kind: FailureKind,
    error: String,
    /// `{status, headers, body}` when a response arrived, else null.
    output: Json,
    retry: Retry,
}

enum FailureKind {
    /// An unexpected status.
    Status(u16),
    Transport,
    Timeout,
    Decode,
    /// Not mappable with `on`: a body over the limit, a redirect loop, a client that
    /// cannot be built.
    Other,
}

impl FailureKind {
    /// The `on` keys that apply, most specific first.
    fn keys(&self) -> Vec<String> {
        match self {
            FailureKind::Status(code) => {
                vec![code.to_string(), format!("{}xx", code / 100), "http_error".into()]
            }
            FailureKind::Transport => vec!["transport".into()],
            FailureKind::Timeout => vec!["timeout".into()],
            FailureKind::Decode => vec!["decode".into()],
            FailureKind::Other => Vec::new(),
        }
    }
}

/// Send through the hooks when there are any (fixtures, recording), else the network.
async fn transport_hooked(
    ctx: &StepCtx<'_>,
    clients: &Clients,
    request: &Request,
) -> Result<Received, Failure> {
    use super::hooks::HttpAnswer;
    let Some(hooks) = ctx.hooks else { return exchange(clients, request, ctx.masker).await };
    match hooks.http(request) {
        HttpAnswer::Network => {
            let received = exchange(clients, request, ctx.masker).await?;
            let headers: Vec<(String, String)> = received
                .headers
                .iter()
                .map(|(name, value)| {
                    (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned())
                })
                .collect();
            hooks.http_observed(request, received.status.as_u16(), &headers, &received.body);
            Ok(received)
        }
        HttpAnswer::Canned(canned) => {
            if !canned.delay.is_zero() {
                tokio::time::sleep(canned.delay).await;
            }
            let status = StatusCode::from_u16(canned.status).map_err(|e| Failure {
                kind: FailureKind::Other,
                error: format!("fixture status {}: {e}", canned.status),
                output: Json::Null,
                retry: Retry::No,
            })?;
            let mut headers = HeaderMap::new();
            for (name, value) in &canned.headers {
                if let (Ok(name), Ok(value)) =
                    (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value))
                {
                    headers.append(name, value);
                }
            }
            if canned.body.len() as u64 > request.max_response_bytes {
                return Err(Failure {
                    kind: FailureKind::Other,
                    error: format!(
                        "response body from {} {} is larger than the limit of {} bytes",
                        request.method.as_str(),
                        request.url,
                        request.max_response_bytes
                    ),
                    output: json!({"status": canned.status, "headers": response_headers(&headers), "body": null}),
                    retry: Retry::No,
                });
            }
            Ok(Received { status, headers, body: canned.body })
        }
        HttpAnswer::Fault(crate::model::test_file::Fault::Timeout) => {
            // Never answer: the caller's timeout decides.
            std::future::pending::<()>().await;
            Err(timed_out(request))
        }
        HttpAnswer::Fault(crate::model::test_file::Fault::Reset) => {
            Err(transport(format!("cannot reach {}: connection reset by peer", request.url)))
        }
        HttpAnswer::Fault(crate::model::test_file::Fault::Refused) => {
            Err(transport(format!("cannot reach {}: Connection refused (os error 111)", request.url)))
        }
        HttpAnswer::Unmatched => Err(Failure {
            kind: FailureKind::Other,
            error: format!("no HTTP fixture matches {} {}", request.method.as_str(), request.url),
            output: Json::Null,
            retry: Retry::No,
        }),
    }
}

/// Send, following redirects hop by hop (see [`next_hop`]), then stream the final
/// body, stopping as soon as it passes the limit.
async fn exchange(clients: &Clients, request: &Request, masker: &Masker) -> Result<Received, Failure> {
    let other =
        |error: String| Failure { kind: FailureKind::Other, error, output: Json::Null, retry: Retry::No };
    let client = clients.client(request.api.as_deref()).map_err(other)?;
    let mut hop = Hop {
        url: parse_url(&request.url).map_err(other)?,
        method: reqwest_method(request.method),
        headers: request.headers.clone(),
        body: match &request.body {
            Some(body) => {
                Some(serde_json::to_vec(body).map_err(|e| other(format!("cannot encode the body: {e}")))?)
            }
            None => None,
        },
    };
    let first = hop.url.clone();
    let mut redirects = 0;
    let response = loop {
        let response = send(&client, request, &hop).await?;
        let Some(location) = redirect_location(&response) else { break response };
        if redirects == MAX_REDIRECTS {
            return Err(other(format!(
                "cannot send {} {}: more than {MAX_REDIRECTS} redirects",
                request.method.as_str(),
                request.url
            )));
        }
        redirects += 1;
        hop =
            next_hop(hop, response.status(), &location, &first, request.redirects, masker).map_err(other)?;
    };
    read_body(request, response).await
}

/// One request of a redirect chain.
struct Hop {
    url: Url,
    method: reqwest::Method,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

async fn send(client: &reqwest::Client, request: &Request, hop: &Hop) -> Result<reqwest::Response, Failure> {
    let other =
        |error: String| Failure { kind: FailureKind::Other, error, output: Json::Null, retry: Retry::No };
    let mut headers = HeaderMap::new();
    for (name, value) in &hop.headers {
        let (name, value) = check_header(name, value).map_err(other)?;
        headers.insert(name, value);
    }
    let mut builder = client.request(hop.method.clone(), hop.url.clone()).headers(headers);
    if let Some(body) = &hop.body {
        builder = builder.body(body.clone());
    }
    builder.send().await.map_err(|e| {
        if e.is_timeout() {
            timed_out(request)
        } else if e.is_builder() {
            // A request reqwest refuses: trying again cannot help.
            other(format!("cannot send {} {}: {}", request.method.as_str(), hop.url, innermost(&e)))
        } else {
            transport(format!("cannot reach {}: {}", hop.url, innermost(&e)))
        }
    })
}

/// The `Location` of a redirect response (301, 302, 303, 307, 308), if it is one.
fn redirect_location(response: &reqwest::Response) -> Option<String> {
    if !matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = response.headers().get(reqwest::header::LOCATION)?;
    Some(String::from_utf8_lossy(location.as_bytes()).into_owned())
}

/// The request a redirect leads to, or why it is not followed.
///
/// - 303, and 301/302 after a POST, become a GET without a body (what browsers and
///   curl do); 307 and 308 keep the method and the body.
/// - A hop to another origin than the first request's (scheme, host, port) fails with
///   [`Redirects::SameOrigin`]; otherwise it loses every header that could carry a
///   credential (sensitive by name, `Cookie`, `Referer`, or holding a declared secret
///   in any form the runner masks), and it fails rather than re-send a body there.
///   Once dropped, those headers stay dropped for the rest of the chain.
fn next_hop(
    hop: Hop,
    status: StatusCode,
    location: &str,
    first: &Url,
    policy: Redirects,
    masker: &Masker,
) -> Result<Hop, String> {
    let Hop { url, mut method, mut headers, mut body } = hop;
    let next =
        url.join(location.trim()).map_err(|e| format!("redirect from {url} to an invalid URL: {e}"))?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(format!("redirect from {url} to {next}: only http and https are followed"));
    }
    let rewrite = match status.as_u16() {
        303 => method != reqwest::Method::HEAD,
        301 | 302 => method == reqwest::Method::POST,
        _ => false,
    };
    if rewrite {
        method = reqwest::Method::GET;
        body = None;
        headers.retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));
    }
    if next.origin() != first.origin() {
        let shown = next.origin().ascii_serialization();
        if policy == Redirects::SameOrigin {
            return Err(format!(
                "refused a redirect from {url} to another origin ({shown}): `redirects: same_origin`"
            ));
        }
        if body.is_some() {
            return Err(format!(
                "refused a {} redirect from {url} to another origin ({shown}): it would re-send the request body there",
                status.as_u16()
            ));
        }
        headers.retain(|(name, value)| !carries_credentials(name, value, masker));
    }
    Ok(Hop { url: next, method, headers, body })
}

/// Whether a header must not follow a redirect to another origin.
fn carries_credentials(name: &str, value: &str, masker: &Masker) -> bool {
    is_sensitive_header(name) || name.eq_ignore_ascii_case("referer") || masker.reveals(value)
}

/// Stream the body of the final response, stopping as soon as it passes the limit.
async fn read_body(request: &Request, mut response: reqwest::Response) -> Result<Received, Failure> {
    let status = response.status();
    let headers = response.headers().clone();
    let limit = request.max_response_bytes;
    let too_large = |headers: &HeaderMap| Failure {
        kind: FailureKind::Other,
        error: format!(
            "response body from {} {} is larger than the limit of {limit} bytes",
            request.method.as_str(),
            request.url
        ),
        output: json!({"status": status.as_u16(), "headers": response_headers(headers), "body": null}),
        retry: Retry::No,
    };
    if response.content_length().is_some_and(|length| length > limit) {
        return Err(too_large(&headers));
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if (body.len() as u64).saturating_add(chunk.len() as u64) > limit {
                    return Err(too_large(&headers));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) if e.is_timeout() => return Err(timed_out(request)),
            Err(e) => {
                return Err(transport(format!(
                    "cannot read the response from {} {}: {}",
                    request.method.as_str(),
                    request.url,
                    innermost(&e)
                )));
            }
        }
    }
    Ok(Received { status, headers, body })
}

fn transport(error: String) -> Failure {
    Failure { kind: FailureKind::Transport, error, output: Json::Null, retry: Retry::Yes { after: None } }
}

fn timed_out(request: &Request) -> Failure {
    Failure {
        kind: FailureKind::Timeout,
        error: format!(
            "no response from {} {} within {}",
            request.method.as_str(),
            request.url,
            crate::model::Duration(request.timeout)
        ),
        output: Json::Null,
        retry: Retry::Yes { after: None },
    }
}

/// The innermost cause of an error: the short, specific reason ("Connection refused
/// (os error 111)", "invalid peer certificate: UnknownIssuer") rather than reqwest's
/// generic "error sending request".
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// Check the status and decode the body.
fn judge(step: &HttpStep, request: &Request, received: &Received) -> Result<Json, Failure> {
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
fn response_headers(headers: &HeaderMap) -> Map<String, Json> {
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
fn one_line_excerpt(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(ERROR_BODY_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// The wait a `Retry-After` header asks for: delta-seconds or an HTTP date, at most an
/// hour; a date in the past means no wait. The engine caps it further by the step's
/// `max_backoff` and timeout.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
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
fn resolve(ctx: &StepCtx<'_>, step: &HttpStep, failure: Failure) -> Outcome {
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

/// The `http` step: prepare the request (planned in a dry run when it writes), then
/// send it with the step's retry policy.
pub(crate) async fn run(
    call: &crate::engine::run::StepCall<'_>,
    http: &HttpStep,
) -> crate::engine::run::StepResult {
    use crate::engine::run::StepResult;
    let crate::engine::run::StepCall { engine, inv, step, path, context, .. } = *call;
    let api = http.api.as_ref().and_then(|name| inv.apis.get(name));
    let timeout =
        step.timeout.map(|t| t.get()).or_else(|| api.and_then(|a| a.timeout)).unwrap_or(DEFAULT_TIMEOUT);
    let masker = engine.masker();
    let ctx = engine.ctx(inv, context, &masker, timeout);
    let request = match prepare(&ctx, http, api) {
        Ok(r) => r,
        Err(e) => return StepResult::failed(e, Json::Null),
    };
    if step.writes() && inv.plan {
        return engine.planned(step, path, describe(&request, &masker));
    }
    let retry_allowed = http.method.is_idempotent() || step.retry.as_ref().is_some_and(|r| r.unsafe_methods);
    engine
        .attempts(inv, step, path, retry_allowed, timeout, || execute(&ctx, &engine.clients, http, &request))
        .await
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Instant;

    use minijinja::value::{Object, ObjectRepr};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_util::sync::CancellationToken;

    use super::*;

    /// What the fake server answers.
    #[derive(Clone)]
    struct Canned {
        status: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        delay: Duration,
        hang_up: bool,
    }

    fn canned(status: &str, body: &str) -> Canned {
        Canned {
            status: status.into(),
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
            delay: Duration::ZERO,
            hang_up: false,
        }
    }

    impl Canned {
        fn header(mut self, name: &str, value: &str) -> Self {
            self.headers.push((name.into(), value.into()));
            self
        }
    }

    /// A one-answer HTTP/1.1 server on 127.0.0.1 recording each raw request.
    struct FakeServer {
        base: String,
        seen: Arc<Mutex<Vec<String>>>,
    }

    impl FakeServer {
        async fn start(answer: Canned) -> FakeServer {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let seen = Arc::new(Mutex::new(Vec::new()));
            let recorder = seen.clone();
            tokio::spawn(async move {
                while let Ok((socket, _)) = listener.accept().await {
                    tokio::spawn(handle(socket, answer.clone(), recorder.clone()));
                }
            });
            FakeServer { base, seen }
        }

        fn requests(&self) -> Vec<String> {
            self.seen.lock().unwrap().clone()
        }

        fn last(&self) -> String {
            self.requests().last().cloned().unwrap_or_default()
        }
    }

    async fn handle(mut socket: TcpStream, answer: Canned, seen: Arc<Mutex<Vec<String>>>) {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
        let length = head
            .lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse::<usize>().ok())
            .unwrap_or(0);
        while buffer.len() < head_end + length {
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        seen.lock().unwrap().push(String::from_utf8_lossy(&buffer).to_string());
        if answer.hang_up {
            return;
        }
        tokio::time::sleep(answer.delay).await;
        let mut response = format!("HTTP/1.1 {}\r\n", answer.status);
        for (name, value) in &answer.headers {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", answer.body.len()));
        let mut bytes = response.into_bytes();
        bytes.extend_from_slice(&answer.body);
        // The client may hang up early (size limit, timeout): write errors are expected.
        let _ = socket.write_all(&bytes).await;
        let _ = socket.shutdown().await;
    }

    struct Fixture {
        eval: Evaluator,
        context: minijinja::Value,
        masker: Masker,
        cancel: CancellationToken,
        timeout: Duration,
    }

    impl Fixture {
        fn new(context: &Json) -> Fixture {
            Fixture::with_context(to_mj(context))
        }

        fn with_context(context: minijinja::Value) -> Fixture {
            Fixture {
                eval: Evaluator::default(),
                context,
                masker: Masker::default(),
                cancel: CancellationToken::new(),
                timeout: Duration::from_secs(5),
            }
        }

        fn ctx(&self) -> StepCtx<'_> {
            StepCtx {
                eval: &self.eval,
                context: &self.context,
                masker: &self.masker,
                timeout: self.timeout,
                cancel: &self.cancel,
                dir: Path::new("."),
                hooks: None,
            }
        }

        async fn run(&self, step: &HttpStep, api: Option<&ApiConfig>) -> Outcome {
            let request = prepare(&self.ctx(), step, api).unwrap();
            execute(&self.ctx(), &Clients::new(), step, &request).await
        }
    }

    fn step(value: Json) -> HttpStep {
        serde_json::from_value(value).unwrap()
    }

    fn api(name: &str, def: Json, fixture: &Fixture) -> ApiConfig {
        let def: ApiDef = serde_json::from_value(def).unwrap();
        ApiConfig::render(name, &def, &fixture.eval, &fixture.context).unwrap()
    }

    fn failed(outcome: &Outcome) -> (&str, &Json, Retry, bool) {
        match outcome {
            Outcome::Failed { error, output, retry, proceed } => (error.as_str(), output, *retry, *proceed),
            Outcome::Ok(value) => panic!("expected a failure, got Ok({value})"),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn get_json_ok() {
        let server = FakeServer::start(
            canned("200 OK", r#"{"has_work": true, "n": 2}"#).header("Content-Type", "application/json"),
        )
        .await;
        let fixture = Fixture::new(&json!({}));
        let outcome = fixture.run(&step(json!({"url": format!("{}/api/queue", server.base)})), None).await;
        let Outcome::Ok(output) = outcome else { panic!("{outcome:?}") };
        assert_eq!(output["status"], json!(200));
        assert_eq!(output["body"], json!({"has_work": true, "n": 2}));
        assert_eq!(output["headers"]["content-type"], json!("application/json"));
        let seen = server.last();
        assert!(seen.starts_with("GET /api/queue HTTP/1.1\r\n"), "{seen}");
        assert!(seen.to_ascii_lowercase().contains("accept: application/json"), "{seen}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn empty_success_body_is_null_and_text_decode_keeps_text() {
        let server = FakeServer::start(canned("204 No Content", "")).await;
        let fixture = Fixture::new(&json!({}));
        let outcome = fixture.run(&step(json!({"url": server.base, "method": "DELETE"})), None).await;
        let Outcome::Ok(output) = outcome else { panic!("{outcome:?}") };
        assert_eq!((&output["status"], &output["body"]), (&json!(204), &Json::Null));

        let server = FakeServer::start(canned("200 OK", "  \n")).await;
        let Outcome::Ok(output) = fixture.run(&step(json!({"url": server.base})), None).await else {
            panic!()
        };
        assert_eq!(output["body"], Json::Null);

        let server = FakeServer::start(canned("200 OK", "not json")).await;
        let text = step(json!({"url": server.base, "decode": "text"}));
        let Outcome::Ok(output) = fixture.run(&text, None).await else { panic!() };
        assert_eq!(output["body"], json!("not json"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn status_mapped_to_a_value_with_on() {
        let server = FakeServer::start(canned("409 Conflict", r#"{"holder": "agent-7"}"#)).await;
        let fixture = Fixture::new(&json!({"inputs": {"agent": "a1"}}));
        let http = step(json!({
            "url": server.base,
            "method": "POST",
            "body": {"agent": "{{ inputs.agent }}"},
            "on": {
                "409": {"value": {"claimed": false, "code": "{{ response.status }}",
                                  "by": "{{ response.body.holder }}", "me": "{{ inputs.agent }}",
                                  "why": "{{ error }}"}},
                "4xx": "fail",
            },
        }));
        let Outcome::Ok(value) = fixture.run(&http, None).await else { panic!() };
        assert_eq!(value["claimed"], json!(false));
        assert_eq!(value["code"], json!(409));
        assert_eq!(value["by"], json!("agent-7"));
        assert_eq!(value["me"], json!("a1"));
        assert!(value["why"].as_str().unwrap().starts_with("HTTP 409 Conflict from POST "));
        let seen = server.last();
        assert!(seen.contains("content-type: application/json"), "{seen}");
        assert!(seen.ends_with(r#"{"agent":"a1"}"#), "{seen}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn class_keys_and_continue() {
        let fixture = Fixture::new(&json!({}));
        let server = FakeServer::start(canned("422 Unprocessable Entity", "bad")).await;
        let http = step(json!({"url": server.base, "on": {"4xx": "continue", "http_error": "fail"}}));
        let outcome = fixture.run(&http, None).await;
        let (_, output, retry, proceed) = failed(&outcome);
        assert!(proceed);
        assert_eq!(retry, Retry::No);
        assert_eq!(output["body"], json!("bad"));

        let server = FakeServer::start(canned("500 Internal Server Error", "")).await;
        let http = step(json!({"url": server.base, "on": {"http_error": {"value": "down"}}}));
        assert_eq!(fixture.run(&http, None).await, Outcome::Ok(json!("down")));

        // `expect` decides what counts as success.
        let server = FakeServer::start(canned("404 Not Found", r#"{"x": 1}"#)).await;
        let http = step(json!({"url": server.base, "expect": [200, 404]}));
        let Outcome::Ok(output) = fixture.run(&http, None).await else { panic!() };
        assert_eq!(output["body"], json!({"x": 1}));
        let server = FakeServer::start(canned("200 OK", "{}")).await;
        let http = step(json!({"url": server.base, "expect": [201]}));
        assert!(failed(&fixture.run(&http, None).await).0.starts_with("HTTP 200 OK from GET"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn unmapped_404_fails_without_retry() {
        let server = FakeServer::start(canned("404 Not Found", "no such\n  agent")).await;
        let fixture = Fixture::new(&json!({}));
        let url = format!("{}/a", server.base);
        let outcome = fixture.run(&step(json!({"url": url})), None).await;
        let (error, output, retry, proceed) = failed(&outcome);
        assert_eq!(error, format!("HTTP 404 Not Found from GET {url}: no such agent"));
        assert_eq!(retry, Retry::No);
        assert!(!proceed);
        assert_eq!(output["status"], json!(404));
        assert_eq!(output["body"], json!("no such\n  agent"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn server_errors_and_429_are_retryable() {
        let fixture = Fixture::new(&json!({}));
        let server = FakeServer::start(canned("503 Service Unavailable", "")).await;
        let outcome = fixture.run(&step(json!({"url": server.base})), None).await;
        let (error, _, retry, _) = failed(&outcome);
        assert_eq!(error, format!("HTTP 503 Service Unavailable from GET {}/", server.base));
        assert_eq!(retry, Retry::Yes { after: None });

        let server =
            FakeServer::start(canned("429 Too Many Requests", "slow down").header("Retry-After", "2")).await;
        let outcome = fixture.run(&step(json!({"url": server.base})), None).await;
        assert_eq!(failed(&outcome).2, Retry::Yes { after: Some(Duration::from_secs(2)) });
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_str(value).unwrap());
            retry_after(&headers, now)
        };
        assert_eq!(with("Tue, 29 Feb 2000 12:00:00 GMT"), Some(MAX_RETRY_AFTER), "a leap day");
        assert_eq!(with("Wed, 30 Feb 2000 12:00:00 GMT"), None, "no such day");
        assert_eq!(with("7"), Some(Duration::from_secs(7)));
        assert_eq!(with("Sun, 06 Nov 1994 08:50:07 GMT"), Some(Duration::from_secs(30)));
        assert_eq!(with("Sat, 05 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        assert_eq!(with("999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(with("Fri, 01 Jan 2100 00:00:00 GMT"), Some(MAX_RETRY_AFTER));
        assert_eq!(with("soon"), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn malformed_json_is_a_decode_failure() {
        let server = FakeServer::start(canned("200 OK", "{\"a\": ")).await;
        let fixture = Fixture::new(&json!({}));
        let outcome = fixture.run(&step(json!({"url": server.base})), None).await;
        let (error, output, retry, _) = failed(&outcome);
        assert!(
            error.starts_with(&format!("response from GET {}/ is not valid JSON: ", server.base)),
            "{error}"
        );
        assert_eq!(retry, Retry::No);
        assert_eq!(output["body"], json!("{\"a\": "));

        let http = step(json!({"url": server.base, "on": {"decode": {"value": "{{ response.body }}"}}}));
        assert_eq!(fixture.run(&http, None).await, Outcome::Ok(json!("{\"a\": ")));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn slow_response_times_out() {
        let mut answer = canned("200 OK", "{}");
        answer.delay = Duration::from_secs(5);
        let server = FakeServer::start(answer).await;
        let mut fixture = Fixture::new(&json!({}));
        fixture.timeout = Duration::from_millis(300);
        let started = Instant::now();
        let outcome = fixture.run(&step(json!({"url": server.base})), None).await;
        assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
        let (error, output, retry, _) = failed(&outcome);
        assert_eq!(error, format!("no response from GET {}/ within 300ms", server.base));
        assert_eq!(retry, Retry::Yes { after: None });
        assert_eq!(*output, Json::Null);

        let http = step(
            json!({"url": server.base, "on": {"timeout": {"value": "{{ 'null' if response is none else 'set' }}|{{ error }}"}}}),
        );
        let Outcome::Ok(Json::String(text)) = fixture.run(&http, None).await else { panic!() };
        assert!(text.starts_with("null|no response from GET"), "{text}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn cancellation_stops_the_request() {
        let mut answer = canned("200 OK", "{}");
        answer.delay = Duration::from_secs(5);
        let server = FakeServer::start(answer).await;
        let fixture = Fixture::new(&json!({}));
        let cancel = fixture.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            cancel.cancel();
        });
        let started = Instant::now();
        let outcome =
            fixture.run(&step(json!({"url": server.base, "on": {"timeout": "continue"}})), None).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(
            outcome,
            Outcome::Failed {
                error: "cancelled".into(),
                output: Json::Null,
                retry: Retry::No,
                proceed: false
            }
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn connection_refused_and_hang_up_are_transport_failures() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let fixture = Fixture::new(&json!({}));
        let url = format!("http://{address}/x");
        let outcome = fixture.run(&step(json!({"url": url})), None).await;
        let (error, output, retry, _) = failed(&outcome);
        assert!(error.starts_with(&format!("cannot reach {url}: ")), "{error}");
        assert!(error.to_ascii_lowercase().contains("refused"), "{error}");
        assert_eq!(retry, Retry::Yes { after: None });
        assert_eq!(*output, Json::Null);

        let http = step(json!({"url": url, "on": {"transport": "continue"}}));
        assert!(failed(&fixture.run(&http, None).await).3);

        let mut answer = canned("200 OK", "{}");
        answer.hang_up = true;
        let server = FakeServer::start(answer).await;
        let outcome = fixture.run(&step(json!({"url": server.base})), None).await;
        let (error, _, retry, _) = failed(&outcome);
        assert!(error.starts_with("cannot reach "), "{error}");
        assert_eq!(retry, Retry::Yes { after: None });
    }

    #[tokio::test(flavor = "current_thread")]
    async fn redirect_loops_stop_without_retry() {
        let server = FakeServer::start(canned("302 Found", "").header("Location", "/again")).await;
        let fixture = Fixture::new(&json!({}));
        let outcome =
            fixture.run(&step(json!({"url": server.base, "on": {"transport": "continue"}})), None).await;
        let (error, _, retry, proceed) = failed(&outcome);
        assert!(error.starts_with(&format!("cannot send GET {}/: ", server.base)), "{error}");
        assert!(error.contains("redirect"), "{error}");
        assert_eq!((retry, proceed), (Retry::No, false));
        assert_eq!(server.requests().len(), MAX_REDIRECTS + 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn tls_failures_are_transport_failures() {
        // A server answering a TLS ClientHello with plain HTTP: the rustls provider is
        // installed (no panic) and the handshake failure is classified as `transport`.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let mut hello = [0u8; 4096];
            let _ = socket.read(&mut hello).await;
            let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await;
        });
        let fixture = Fixture::new(&json!({}));
        let outcome = fixture.run(&step(json!({"url": url})), None).await;
        let (error, _, retry, _) = failed(&outcome);
        assert!(error.starts_with(&format!("cannot reach {url}: ")), "{error}");
        assert_eq!(retry, Retry::Yes { after: None });
    }

    #[tokio::test(flavor = "current_thread")]
    async fn oversized_body_fails_fast() {
        let big = "x".repeat(2 * 1024 * 1024);
        let server = FakeServer::start(canned("200 OK", &big)).await;
        let fixture = Fixture::new(&json!({}));
        let http = step(json!({"url": server.base, "max_response_bytes": 1_048_576, "decode": "text"}));
        let started = Instant::now();
        let outcome = fixture.run(&http, None).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        let (error, output, retry, _) = failed(&outcome);
        assert_eq!(
            error,
            format!("response body from GET {}/ is larger than the limit of 1048576 bytes", server.base)
        );
        assert_eq!(retry, Retry::No);
        assert_eq!(output["status"], json!(200));
        assert_eq!(output["body"], Json::Null);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn oversized_body_without_length_is_cut_while_streaming() {
        // No Content-Length: the limit is enforced on the streamed chunks.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n").await;
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..800 {
                if socket.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        });
        let fixture = Fixture::new(&json!({}));
        let http = step(json!({"url": base, "max_response_bytes": 100_000}));
        let outcome = fixture.run(&http, None).await;
        assert!(failed(&outcome).0.ends_with("is larger than the limit of 100000 bytes"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn interpolated_path_values_are_encoded() {
        let server = FakeServer::start(canned("200 OK", "[]")).await;
        let fixture = Fixture::new(&json!({"inputs": {"agent": "../a/b?c=d#e $(touch pwned)"}}));
        let dispatch = api("dispatch", json!({"base_url": format!("{}/v1/", server.base)}), &fixture);
        assert_eq!(dispatch.base_url, format!("{}/v1", server.base));
        let http = step(json!({"api": "dispatch", "path": "/agents/{{ inputs.agent }}/queue"}));
        assert!(matches!(fixture.run(&http, Some(&dispatch)).await, Outcome::Ok(_)));
        let seen = server.last();
        let line = seen.lines().next().unwrap();
        assert_eq!(line, "GET /v1/agents/..%2Fa%2Fb%3Fc%3Dd%23e%20%24%28touch%20pwned%29/queue HTTP/1.1");

        // A full `url` encodes its interpolated values the same way.
        let http = step(json!({"url": format!("{}/x/{{{{ inputs.agent }}}}", server.base)}));
        let request = prepare(&fixture.ctx(), &http, None).unwrap();
        assert_eq!(request.url, format!("{}/x/..%2Fa%2Fb%3Fc%3Dd%23e%20%24%28touch%20pwned%29", server.base));
        assert_eq!(request.api, None);
    }

    #[test]
    fn header_line_breaks_are_refused() {
        let fixture = Fixture::new(&json!({"name": "a\r\nX-Evil: 1", "token": "t\n"}));
        let http = step(json!({"url": "http://127.0.0.1:9/", "headers": {"X-Agent-Name": "{{ name }}"}}));
        assert_eq!(
            prepare(&fixture.ctx(), &http, None),
            Err("header `X-Agent-Name` value contains a line break".into())
        );
        let http = step(json!({"url": "http://127.0.0.1:9/", "headers": {"Bad Name": "x"}}));
        assert_eq!(prepare(&fixture.ctx(), &http, None), Err("invalid header name `Bad Name`".into()));

        let def: ApiDef = serde_json::from_value(
            json!({"base_url": "http://127.0.0.1:9", "headers": {"X-Agent-Name": "{{ name }}"}}),
        )
        .unwrap();
        assert_eq!(
            ApiConfig::render("d", &def, &fixture.eval, &fixture.context),
            Err("API `d`: header `X-Agent-Name` value contains a line break".into())
        );
    }

    #[test]
    fn header_values_keep_types_and_none_drops_them() {
        let fixture = Fixture::new(&json!({"flag": true, "n": 3, "secrets": {"token": null}}));
        let dispatch = api(
            "d",
            json!({"base_url": "http://127.0.0.1:9", "bearer": "{{ secrets.token }}",
                   "headers": {"X-Gone": "{{ secrets.token }}", "X-Drop": "api"}}),
            &fixture,
        );
        assert_eq!((dispatch.bearer.as_deref(), dispatch.headers.len()), (None, 1));
        let http = step(json!({
            "api": "d", "decode": "none",
            "headers": {"X-Flag": "{{ flag }}", "X-N": "n={{ n }}", "x-drop": "{{ none }}"},
        }));
        let request = prepare(&fixture.ctx(), &http, Some(&dispatch)).unwrap();
        let expected = [("X-Flag", "true"), ("X-N", "n=3")];
        assert_eq!(request.headers, expected.map(|(n, v)| (n.to_string(), v.to_string())));
    }

    #[test]
    fn dot_segments_from_values_are_refused() {
        let fixture = Fixture::new(&json!({"a": "..", "b": "."}));
        let dispatch = api("d", json!({"base_url": "http://127.0.0.1:9/v1"}), &fixture);
        for path in ["/agents/{{ a }}/queue", "/agents/{{ b }}", "{{ a }}", "/x/%2E%2e/y"] {
            let http = step(json!({"api": "d", "path": path}));
            let error = prepare(&fixture.ctx(), &http, Some(&dispatch)).unwrap_err();
            assert!(
                error.ends_with("has a `.` or `..` path segment, which would change its path"),
                "{error}"
            );
        }
        let http = step(json!({"url": "http://127.0.0.1:9/x/{{ a }}"}));
        assert!(prepare(&fixture.ctx(), &http, None).is_err());
        // Dots inside a segment, or in the query, are fine.
        let http = step(json!({"api": "d", "path": "/f/{{ a }}x/v1.2?q=..", "query": {"p": "{{ a }}"}}));
        let request = prepare(&fixture.ctx(), &http, Some(&dispatch)).unwrap();
        assert_eq!(request.url, "http://127.0.0.1:9/v1/f/..x/v1.2?q=..&p=..");
    }

    #[test]
    fn base_url_must_be_http() {
        let fixture = Fixture::new(&json!({"env": {"URL": "ftp://x", "EMPTY": ""}}));
        let render = |base: &str| {
            let def: ApiDef = serde_json::from_value(json!({"base_url": base})).unwrap();
            ApiConfig::render("d", &def, &fixture.eval, &fixture.context)
        };
        assert_eq!(
            render("{{ env.URL }}"),
            Err("API `d`: base_url `ftp://x` must start with http:// or https://".into())
        );
        assert_eq!(render("{{ env.EMPTY }}"), Err("API `d`: base_url is empty".into()));
        assert_eq!(
            render("https://x/?a=1"),
            Err("API `d`: base_url `https://x/?a=1` must not have a query or fragment".into())
        );
        assert_eq!(
            render("HTTPS://host:8443/api//").map(|api| api.base_url),
            Ok("HTTPS://host:8443/api".into())
        );

        let http = step(json!({"url": "file:///etc/passwd"}));
        assert_eq!(
            prepare(&fixture.ctx(), &http, None),
            Err("invalid URL `file:///etc/passwd`: only http and https are supported".into())
        );
        let http = step(json!({"url": "not a url"}));
        assert!(prepare(&fixture.ctx(), &http, None).unwrap_err().starts_with("invalid URL `not a url`: "));
        let http = step(json!({"api": "missing", "path": "/"}));
        assert_eq!(prepare(&fixture.ctx(), &http, None), Err("API `missing` is not declared".into()));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn bearer_is_sent_but_never_shown() {
        let server = FakeServer::start(canned("200 OK", "{}").header("Set-Cookie", "session=abc")).await;
        let mut fixture = Fixture::new(&json!({"secrets": {"token": "s3cret-token"}, "me": "agent-1"}));
        fixture.masker.add("s3cret-token");
        let dispatch = api(
            "dispatch",
            json!({"base_url": server.base, "bearer": "{{ secrets.token }}",
                   "headers": {"X-Agent-Name": "{{ me }}", "X-Trace": "api"}}),
            &fixture,
        );
        assert!(!format!("{dispatch:?}").contains("s3cret"));
        let http = step(json!({
            "api": "dispatch", "path": "/claim", "method": "POST",
            "headers": {"x-trace": "step"}, "body": {"note": "{{ secrets.token }}"},
        }));
        let request = prepare(&fixture.ctx(), &http, Some(&dispatch)).unwrap();
        assert!(!format!("{request:?}").contains("Bearer s3cret"));
        assert_eq!(
            describe(&request, &fixture.masker),
            json!({
                "method": "POST",
                "url": format!("{}/claim", server.base),
                "headers": {
                    "X-Agent-Name": "agent-1",
                    "x-trace": "step",
                    "Authorization": REDACTED,
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                },
                "body": {"note": "***"},
            })
        );
        let Outcome::Ok(output) = execute(&fixture.ctx(), &Clients::new(), &http, &request).await else {
            panic!()
        };
        assert_eq!(output["headers"]["set-cookie"], json!(REDACTED));
        let seen = server.last();
        assert!(seen.contains("authorization: Bearer s3cret-token\r\n"), "{seen}");
        assert!(seen.contains("x-trace: step\r\n") && !seen.contains("x-trace: api"), "{seen}");

        // A step's own Authorization replaces the bearer.
        let own = step(json!({"api": "dispatch", "headers": {"authorization": "Basic eA=="}}));
        let request = prepare(&fixture.ctx(), &own, Some(&dispatch)).unwrap();
        let auth: Vec<_> =
            request.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("authorization")).collect();
        assert_eq!(auth, vec![&("authorization".to_string(), "Basic eA==".to_string())]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn query_lists_repeat_and_nulls_are_omitted() {
        let server = FakeServer::start(canned("200 OK", "{}")).await;
        let fixture = Fixture::new(&json!({"labels": ["a b", "c&d"], "limit": 5}));
        let http = step(json!({
            "url": format!("{}/search", server.base),
            "query": {"label": "{{ labels }}", "limit": "{{ limit }}", "skip": "{{ none }}",
                      "open": true, "mixed": [1, null, "x"]},
        }));
        let request = prepare(&fixture.ctx(), &http, None).unwrap();
        assert_eq!(
            request.url,
            format!("{}/search?label=a+b&label=c%26d&limit=5&open=true&mixed=1&mixed=x", server.base)
        );
        assert!(matches!(execute(&fixture.ctx(), &Clients::new(), &http, &request).await, Outcome::Ok(_)));
        assert!(
            server.last().starts_with("GET /search?label=a+b&label=c%26d&limit=5&open=true&mixed=1&mixed=x ")
        );

        let http = step(json!({"url": server.base, "query": {"m": {"a": 1}}}));
        assert_eq!(
            prepare(&fixture.ctx(), &http, None),
            Err("query parameter `m` is a map; give a string, number, boolean or list".into())
        );
    }

    /// An object-backed context like the engine's scope: only `get_value`, no copy.
    #[derive(Debug)]
    struct LazyScope;

    impl Object for LazyScope {
        fn repr(self: &Arc<Self>) -> ObjectRepr {
            ObjectRepr::Map
        }

        fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
            match key.as_str()? {
                "steps" => Some(to_mj(&json!({"probe": {"output": {"lane": "local"}}}))),
                "inputs" => Some(to_mj(&json!({"agent": "a1"}))),
                _ => None,
            }
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn on_values_see_an_object_backed_scope() {
        let server = FakeServer::start(canned("409 Conflict", r#"{"holder": "b2"}"#)).await;
        let fixture = Fixture::with_context(minijinja::Value::from_object(LazyScope));
        let http = step(json!({
            "url": server.base,
            "on": {"409": {"value": {
                "lane": "{{ steps.probe.output.lane }}",
                "line": "{{ inputs.agent }} lost to {{ response.body.holder }} ({{ response.status }})",
            }}},
        }));
        assert_eq!(
            fixture.run(&http, None).await,
            Outcome::Ok(json!({"lane": "local", "line": "a1 lost to b2 (409)"}))
        );
        // A template error in the mapped value is reported with the original failure.
        let http = step(json!({"url": server.base, "on": {"4xx": {"value": "{{ nope.x }}"}}}));
        let outcome = fixture.run(&http, None).await;
        let (error, _, retry, _) = failed(&outcome);
        assert!(
            error.starts_with("HTTP 409 Conflict from GET") && error.contains("`on.4xx` value failed"),
            "{error}"
        );
        assert_eq!(retry, Retry::No);
    }

    #[test]
    fn clients_are_cached_per_api() {
        let clients = Clients::new();
        assert!(clients.client(Some("a")).is_ok());
        let shared = clients.clone();
        assert!(shared.client(Some("b")).is_ok());
        assert!(clients.client(None).is_ok());
        assert_eq!(clients.pools.lock().unwrap().len(), 3);
    }

    fn hop(url: &str, method: reqwest::Method, headers: &[(&str, &str)], body: Option<&str>) -> Hop {
        Hop {
            url: Url::parse(url).unwrap(),
            method,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: body.map(|b| b.as_bytes().to_vec()),
        }
    }

    #[test]
    fn a_redirect_hop_to_another_scheme_or_port_drops_credentials() {
        let mut masker = Masker::default();
        masker.add("sekrit-value");
        let first = Url::parse("https://api.example/v1/x").unwrap();
        let headers = [
            ("Authorization", "Bearer t"),
            ("X-Thing", "k=sekrit-value"),
            ("X-Other", "c2Vrcml0LXZhbHVl"),
            ("Referer", "https://api.example/?q=1"),
            ("Accept", "application/json"),
        ];
        let names = |hop: &Hop| hop.headers.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        // Same origin, relative Location: everything kept.
        let same = hop("https://api.example/v1/x", reqwest::Method::GET, &headers, None);
        let next = next_hop(same, StatusCode::FOUND, "../y", &first, Redirects::Follow, &masker).unwrap();
        assert_eq!(next.url.as_str(), "https://api.example/y");
        assert_eq!(names(&next).len(), 5);
        // A downgrade to http on the same host, or another port, is another origin.
        for location in ["http://api.example/y", "https://api.example:8443/y", "//other.example/y"] {
            let start = hop("https://api.example/v1/x", reqwest::Method::GET, &headers, None);
            let next =
                next_hop(start, StatusCode::FOUND, location, &first, Redirects::Follow, &masker).unwrap();
            assert_eq!(names(&next), vec!["Accept"], "{location}");
        }
        // Not http(s): never followed.
        let start = hop("https://api.example/v1/x", reqwest::Method::GET, &headers, None);
        let error =
            next_hop(start, StatusCode::FOUND, "file:///etc/passwd", &first, Redirects::Follow, &masker)
                .err();
        assert!(error.unwrap().contains("only http and https"));
    }

    #[test]
    fn redirect_methods_follow_303_and_post_rules() {
        let masker = Masker::default();
        let first = Url::parse("http://h/a").unwrap();
        let post =
            || hop("http://h/a", reqwest::Method::POST, &[("Content-Type", "application/json")], Some("{}"));
        for (status, method, body) in [
            (StatusCode::SEE_OTHER, reqwest::Method::GET, false),
            (StatusCode::FOUND, reqwest::Method::GET, false),
            (StatusCode::MOVED_PERMANENTLY, reqwest::Method::GET, false),
            (StatusCode::TEMPORARY_REDIRECT, reqwest::Method::POST, true),
            (StatusCode::PERMANENT_REDIRECT, reqwest::Method::POST, true),
        ] {
            let next = next_hop(post(), status, "/b", &first, Redirects::Follow, &masker).unwrap();
            assert_eq!((next.method, next.body.is_some()), (method, body), "{status}");
            assert_eq!(next.headers.is_empty(), !body, "{status}: content-type goes with the body");
        }
        let head = hop("http://h/a", reqwest::Method::HEAD, &[], None);
        let next = next_hop(head, StatusCode::SEE_OTHER, "/b", &first, Redirects::Follow, &masker).unwrap();
        assert_eq!(next.method, reqwest::Method::HEAD);
        let get = hop("http://h/a", reqwest::Method::GET, &[], None);
        let refused =
            next_hop(get, StatusCode::FOUND, "http://h:81/b", &first, Redirects::SameOrigin, &masker);
        assert!(refused.err().unwrap().contains("same_origin"));
    }

    #[test]
    fn excerpts_are_one_line_and_short() {
        assert_eq!(one_line_excerpt(" a\n\tb  c "), "a b c");
        let long = "é".repeat(300);
        assert_eq!(one_line_excerpt(&long).chars().count(), ERROR_BODY_CHARS + 1);
    }
}
