//! Sending a prepared request: through the hooks or the network, following redirects
//! by hand (credentials dropped across origins), reading the body within its limit.

use super::*;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};
use serde_json::{Value as Json, json};

use crate::expr::mask::{Masker, is_sensitive_header};
use crate::model::step::Redirects;
use crate::steps::{Retry, StepCtx};

/// A response read in full (within the size limit).
pub(crate) struct Received {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// A failed attempt, before `on` is applied.
pub(crate) struct Failure {
    pub(crate) kind: FailureKind,
    pub(crate) error: String,
    /// `{status, headers, body}` when a response arrived, else null.
    pub(crate) output: Json,
    pub(crate) retry: Retry,
}

pub(crate) enum FailureKind {
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
    pub(crate) fn keys(&self) -> Vec<String> {
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
pub(crate) async fn transport_hooked(
    ctx: &StepCtx<'_>,
    clients: &Clients,
    request: &Request,
) -> Result<Received, Failure> {
    use crate::steps::hooks::HttpAnswer;
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
pub(crate) async fn exchange(
    clients: &Clients,
    request: &Request,
    masker: &Masker,
) -> Result<Received, Failure> {
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
pub(crate) struct Hop {
    pub(crate) url: Url,
    pub(crate) method: reqwest::Method,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Option<Vec<u8>>,
}

pub(crate) async fn send(
    client: &reqwest::Client,
    request: &Request,
    hop: &Hop,
) -> Result<reqwest::Response, Failure> {
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
pub(crate) fn redirect_location(response: &reqwest::Response) -> Option<String> {
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
pub(crate) fn next_hop(
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
pub(crate) fn carries_credentials(name: &str, value: &str, masker: &Masker) -> bool {
    is_sensitive_header(name) || name.eq_ignore_ascii_case("referer") || masker.reveals(value)
}

/// Stream the body of the final response, stopping as soon as it passes the limit.
pub(crate) async fn read_body(
    request: &Request,
    mut response: reqwest::Response,
) -> Result<Received, Failure> {
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

pub(crate) fn transport(error: String) -> Failure {
    Failure { kind: FailureKind::Transport, error, output: Json::Null, retry: Retry::Yes { after: None } }
}

pub(crate) fn timed_out(request: &Request) -> Failure {
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
pub(crate) fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}
