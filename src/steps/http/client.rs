//! The HTTP clients of a run: one per redirect policy and TLS setting, built once.

use super::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once};

/// One connection pool per API, plus one shared by the steps that give a full `url`.
/// Cheap to clone: clones share the pools.
#[derive(Debug, Clone, Default)]
pub(crate) struct Clients {
    pub(crate) pools: Arc<Mutex<HashMap<Option<String>, reqwest::Client>>>,
}

impl Clients {
    /// No pools yet; each is built on first use.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The client of `api` (`None`: full-URL steps), built on first use.
    pub(crate) fn client(&self, api: Option<&str>) -> Result<reqwest::Client, String> {
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

pub(crate) fn build_client() -> Result<reqwest::Client, String> {
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
pub(crate) fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
    });
}
