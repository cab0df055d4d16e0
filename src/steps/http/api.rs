//! Declared APIs (`apis:`): base URL, headers and limits rendered once per run.

use super::*;
use std::fmt;
use std::time::Duration;

use reqwest::Url;

use crate::expr::values::Evaluator;
use crate::model::step::Redirects;
use crate::model::workflow::ApiDef;

/// A declared API with its templates rendered once per run.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ApiConfig {
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
    pub(crate) fn render(
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

pub(crate) fn check_base_url(base_url: &str) -> Result<(), String> {
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
