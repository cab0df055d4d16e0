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
        let client = match take_spare() {
            Some(Ok(client)) => client,
            _ => build_client()?,
        };
        pools.insert(key, client.clone());
        Ok(client)
    }
}

/// A client being built on another thread ([`prepare_client`]), for the first pool.
static SPARE: Mutex<Option<std::thread::JoinHandle<Result<reqwest::Client, String>>>> = Mutex::new(None);

/// Start building one client on another thread now, so the first request does not
/// wait for it: building reads and parses the system's TLS roots (some 150 files,
/// milliseconds), which `runner run` overlaps with loading the workflow files. The
/// first pool of the process takes it; later pools build their own.
pub(crate) fn prepare_client() {
    if let Ok(mut spare) = SPARE.lock()
        && spare.is_none()
    {
        *spare = std::thread::Builder::new().name("http-client".into()).spawn(build_client).ok();
    }
}

/// The client [`prepare_client`] started, once it is built (`None`: none was started,
/// or another pool took it).
fn take_spare() -> Option<Result<reqwest::Client, String>> {
    let handle = SPARE.lock().ok()?.take()?;
    handle.join().ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prepared_client_is_taken_once() {
        // Built on another thread, without a runtime.
        prepare_client();
        let clients = Clients::new();
        assert!(clients.client(Some("first")).is_ok());
        // Taken by this pool (or by a pool of a test running beside): gone either way.
        assert!(take_spare().is_none());
        assert!(clients.client(Some("second")).is_ok());
        assert_eq!(clients.pools.lock().map(|p| p.len()).unwrap_or(0), 2);
    }
}
