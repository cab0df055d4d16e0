//! A small Kubernetes API client: plain HTTPS requests with reqwest (the crate the
//! HTTP step already uses), the cluster's CA as the only trust root, a bearer token,
//! a time limit on every request and no redirects. Requests go through the run's hooks
//! like every HTTP step, so `runner test` fixtures and `--record` see them (with the
//! `Authorization` header redacted the same way).
//!
//! Errors are one line: `Kubernetes API: 403 Forbidden on PATCH /apis/...: <the
//! server's message>`; the token is masked out of every text this module produces.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value as Json;

use super::auth::Cluster;
use crate::expr::mask::Masker;
use crate::model::step::{HttpMethod, Redirects};
use crate::steps::hooks::{Hooks, HttpAnswer};

/// Largest response body read from the API.
pub(crate) const MAX_RESPONSE_BYTES: u64 = 8 * 1024 * 1024;

/// Content type of a JSON merge patch (RFC 7386).
pub(crate) const MERGE_PATCH: &str = "application/merge-patch+json";
/// Content type of a server-side apply patch (JSON is YAML, so the body is JSON).
pub(crate) const APPLY_PATCH: &str = "application/apply-patch+yaml";
/// Content type of a create.
pub(crate) const JSON: &str = "application/json";

/// One API request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiRequest {
    /// Method.
    pub method: HttpMethod,
    /// Path and query, every segment already encoded, e.g.
    /// `/apis/batch/v1/namespaces/fleet/cronjobs/worker-local`.
    pub path: String,
    /// Content type of the body.
    pub content_type: Option<&'static str>,
    /// Body.
    pub body: Option<Json>,
}

/// An answer with a 2xx status.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    /// Status code.
    pub status: u16,
    /// Decoded JSON body (`null` when empty).
    pub body: Json,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    /// One line, token masked.
    pub message: String,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// The Kubernetes `Status.reason` (`NotFound`, `AlreadyExists`, `Conflict`, ...).
    pub reason: Option<String>,
    /// Whether another attempt may help (transport, timeout, 5xx, 429).
    pub transient: bool,
}

/// A client for one cluster.
pub(crate) struct Client {
    cluster: Cluster,
    http: OnceLock<Result<reqwest::Client, String>>,
    masker: Masker,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("cluster", &self.cluster).finish_non_exhaustive()
    }
}

impl Client {
    /// A client; the HTTP connection pool is built on the first real request.
    pub(crate) fn new(cluster: Cluster) -> Client {
        let mut masker = Masker::default();
        if let Some(token) = &cluster.token {
            masker.add(token);
        }
        Client { cluster, http: OnceLock::new(), masker }
    }

    fn http(&self) -> Result<reqwest::Client, String> {
        self.http.get_or_init(|| build_http(&self.cluster)).clone()
    }

    /// The request as the hooks (fixtures, recorder) see it.
    fn hook_request(&self, request: &ApiRequest, timeout: Duration) -> crate::steps::http::Request {
        let mut headers = vec![("accept".to_string(), JSON.to_string())];
        if let Some(content_type) = request.content_type {
            headers.push(("content-type".into(), content_type.into()));
        }
        if let Some(token) = &self.cluster.token {
            headers.push(("authorization".into(), format!("Bearer {token}")));
        }
        crate::steps::http::Request {
            method: request.method,
            url: format!("{}{}", self.cluster.server, request.path),
            headers,
            body: request.body.clone(),
            timeout,
            max_response_bytes: MAX_RESPONSE_BYTES,
            api: None,
            redirects: Redirects::SameOrigin,
        }
    }

    /// Send one request within `timeout`; a non-2xx answer is a [`Failure`].
    pub(crate) async fn send(
        &self,
        request: &ApiRequest,
        timeout: Duration,
        hooks: Option<&dyn Hooks>,
    ) -> Result<Reply, Failure> {
        let what =
            format!("{} {}", request.method.as_str(), request.path.split('?').next().unwrap_or_default());
        let answer = match tokio::time::timeout(timeout, self.exchange(request, timeout, hooks)).await {
            Ok(answer) => answer,
            Err(_elapsed) => Err(self.failure(
                format!("Kubernetes API did not answer {what} within {}", crate::model::Duration(timeout)),
                None,
                None,
                true,
            )),
        }?;
        let (status, body) = answer;
        let decoded: Json = if body.is_empty() {
            Json::Null
        } else {
            match serde_json::from_slice(&body) {
                Ok(json) => json,
                Err(_) if !(200..300).contains(&status) => Json::Null,
                Err(e) => {
                    return Err(self.failure(
                        format!("Kubernetes API answered {what} with a body that is not JSON ({e})"),
                        Some(status),
                        None,
                        false,
                    ));
                }
            }
        };
        if (200..300).contains(&status) {
            return Ok(Reply { status, body: decoded });
        }
        let reason = decoded.get("reason").and_then(Json::as_str).map(str::to_string);
        let detail = decoded
            .get("message")
            .and_then(Json::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        let detail = crate::steps::exec::clip(detail.replace(['\n', '\r'], " ").trim(), 200);
        let phrase =
            reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
        let mut message = format!("Kubernetes API: {status} {phrase} on {what}");
        if !detail.is_empty() {
            message.push_str(": ");
            message.push_str(&detail);
        }
        let transient = status == 429 || status >= 500;
        Err(self.failure(message, Some(status), reason, transient))
    }

    fn failure(
        &self,
        message: impl AsRef<str>,
        status: Option<u16>,
        reason: Option<String>,
        transient: bool,
    ) -> Failure {
        Failure { message: self.masker.text(message.as_ref()), status, reason, transient }
    }

    async fn exchange(
        &self,
        request: &ApiRequest,
        timeout: Duration,
        hooks: Option<&dyn Hooks>,
    ) -> Result<(u16, Vec<u8>), Failure> {
        let Some(hooks) = hooks else { return self.network(request, timeout).await };
        let hooked = self.hook_request(request, timeout);
        match hooks.http(&hooked) {
            HttpAnswer::Network => {
                let (status, body) = self.network(request, timeout).await?;
                hooks.http_observed(&hooked, status, &[("content-type".into(), JSON.into())], &body);
                Ok((status, body))
            }
            HttpAnswer::Canned(canned) => {
                if !canned.delay.is_zero() {
                    tokio::time::sleep(canned.delay).await;
                }
                Ok((canned.status, canned.body))
            }
            HttpAnswer::Fault(crate::model::test_file::Fault::Timeout) => {
                // Never answer: the caller's timeout decides.
                std::future::pending::<()>().await;
                Err(self.failure("Kubernetes API did not answer", None, None, true))
            }
            HttpAnswer::Fault(fault) => Err(self.failure(
                format!("Kubernetes API at {} is unreachable: {fault:?}", self.cluster.server),
                None,
                None,
                true,
            )),
            HttpAnswer::Unmatched => Err(self.failure(
                format!("no HTTP fixture matches {} {}", hooked.method.as_str(), hooked.url),
                None,
                None,
                false,
            )),
        }
    }

    async fn network(&self, request: &ApiRequest, timeout: Duration) -> Result<(u16, Vec<u8>), Failure> {
        let client = self.http().map_err(|e| self.failure(e, None, None, false))?;
        let url = format!("{}{}", self.cluster.server, request.path);
        let method = match request.method {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Head => reqwest::Method::HEAD,
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Patch => reqwest::Method::PATCH,
            HttpMethod::Delete => reqwest::Method::DELETE,
        };
        let mut builder = client.request(method, &url).timeout(timeout).header("accept", JSON);
        if let Some(token) = &self.cluster.token {
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                    self.failure(
                        "the Kubernetes token holds characters not allowed in a header",
                        None,
                        None,
                        false,
                    )
                })?;
            value.set_sensitive(true);
            builder = builder.header(reqwest::header::AUTHORIZATION, value);
        }
        if let Some(body) = &request.body {
            let bytes = serde_json::to_vec(body).unwrap_or_default();
            builder = builder.header("content-type", request.content_type.unwrap_or(JSON)).body(bytes);
        }
        let mut response = builder.send().await.map_err(|e| {
            let detail = innermost(&e);
            let (kind, transient) =
                if e.is_timeout() { ("did not answer in time", true) } else { ("is unreachable", true) };
            self.failure(
                format!("Kubernetes API at {} {kind}: {detail}", self.cluster.server),
                None,
                None,
                transient,
            )
        })?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() as u64 > MAX_RESPONSE_BYTES {
                        return Err(self.failure(
                            format!("Kubernetes API answer is larger than {MAX_RESPONSE_BYTES} bytes"),
                            Some(status),
                            None,
                            false,
                        ));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(self.failure(
                        format!("Kubernetes API answer broke off: {}", innermost(&e)),
                        Some(status),
                        None,
                        true,
                    ));
                }
            }
        }
        Ok((status, body))
    }
}

fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string().replace(['\n', '\r'], " ")
}

fn build_http(cluster: &Cluster) -> Result<reqwest::Client, String> {
    // reqwest is built with `rustls-no-provider`; installing fails harmlessly when one is.
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .no_proxy()
        .user_agent(concat!("runner/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &cluster.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("the cluster CA of {} is not PEM: {}", cluster.source, innermost(&e)))?;
        if certs.is_empty() {
            return Err(format!("the cluster CA of {} holds no certificate", cluster.source));
        }
        builder = builder.tls_certs_only(certs);
    }
    if cluster.insecure {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| format!("cannot set up the Kubernetes client: {}", innermost(&e)))
}

/// Encode one path segment (a namespace or name may hold nothing special when valid,
/// but a templated one is encoded all the same).
pub(crate) fn segment(text: &str) -> String {
    crate::expr::values::encode_component(text)
}

/// The API path of a collection: `/api/v1/namespaces/NS/PLURAL` for the core group,
/// `/apis/GROUP/VERSION/namespaces/NS/PLURAL` otherwise.
pub(crate) fn collection_path(api_version: &str, namespace: &str, plural: &str) -> String {
    let root = if api_version.contains('/') {
        format!("/apis/{}", api_version.split('/').map(segment).collect::<Vec<_>>().join("/"))
    } else {
        format!("/api/{}", segment(api_version))
    };
    format!("{root}/namespaces/{}/{}", segment(namespace), segment(plural))
}

/// The resource (plural) of a kind, the way Kubernetes names its built-in ones:
/// lower case, `-y` becomes `-ies` after a consonant, `-s`/`-x`/`-ch`/`-sh` add `es`,
/// others add `s` (`Job` -> `jobs`, `NetworkPolicy` -> `networkpolicies`, `Ingress`
/// -> `ingresses`). A custom resource with another plural names it in `resource`.
pub(crate) fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if let Some(stem) = lower.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        return format!("{stem}ies");
    }
    if lower.ends_with('s') || lower.ends_with('x') || lower.ends_with("ch") || lower.ends_with("sh") {
        return format!("{lower}es");
    }
    format!("{lower}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_plurals() {
        assert_eq!(collection_path("batch/v1", "fleet", "jobs"), "/apis/batch/v1/namespaces/fleet/jobs");
        assert_eq!(collection_path("v1", "a b", "configmaps"), "/api/v1/namespaces/a%20b/configmaps");
        assert_eq!(plural("Job"), "jobs");
        assert_eq!(plural("CronJob"), "cronjobs");
        assert_eq!(plural("NetworkPolicy"), "networkpolicies");
        assert_eq!(plural("Ingress"), "ingresses");
        assert_eq!(plural("Gateway"), "gateways");
    }

    #[test]
    fn debug_and_failures_never_show_the_token() {
        let cluster = Cluster {
            server: "https://k8s.test:443".into(),
            ca_pem: None,
            token: Some("very-secret-token".into()),
            insecure: false,
            namespace: None,
            source: "test".into(),
        };
        let client = Client::new(cluster);
        assert!(!format!("{client:?}").contains("very-secret-token"));
        let failure = client.failure("echo very-secret-token", None, None, false);
        assert_eq!(failure.message, "echo ***");
    }
}
