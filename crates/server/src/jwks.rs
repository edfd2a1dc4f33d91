//! JWKS: the public keys of `jwks_public_endpoint`, fetched at start-up and again whenever a
//! token names a key the node does not have (key rotation), one fetch at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gyre_auth::Jwks;

use crate::http_client::HttpClient;

/// How long one fetch may take (upstream: one second, retried).
const FETCH_TIMEOUT: Duration = Duration::from_secs(1);
/// Fetches made for one unknown key (upstream retries twice).
const ATTEMPTS: usize = 2;
/// A fetch that finished this recently answers for the next unknown key too, so tokens naming
/// keys that do not exist make at most ten fetches a second.
const MIN_REFETCH: Duration = Duration::from_millis(100);

/// One JWKS endpoint and the keys last fetched from it.
#[derive(Debug)]
pub(crate) struct JwksSource {
    endpoint: String,
    keys: Jwks,
    http: HttpClient,
    /// When the last fetch finished; held while fetching (single flight).
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl JwksSource {
    /// A source for `endpoint` filling `keys`.
    pub(crate) fn new(endpoint: &str, keys: Jwks, http: HttpClient) -> Arc<JwksSource> {
        Arc::new(JwksSource {
            endpoint: endpoint.to_owned(),
            keys,
            http,
            last_fetch: tokio::sync::Mutex::new(None),
        })
    }

    /// The `kid` of a token whose key is not here yet.
    pub(crate) fn missing_kid(&self, token: &str) -> Option<String> {
        self.keys.missing_kid(token)
    }

    /// Fetches the endpoint again, unless `kid` arrived meanwhile or a fetch just finished.
    pub(crate) async fn refresh_for(&self, kid: Option<&str>) {
        let mut last = self.last_fetch.lock().await;
        if kid.is_some_and(|kid| self.keys.has(kid))
            || last.is_some_and(|at| at.elapsed() < MIN_REFETCH)
        {
            return;
        }
        for attempt in 1..=ATTEMPTS {
            match self.http.get(&self.endpoint, FETCH_TIMEOUT).await {
                Ok(body) => match self.keys.replace_from_json(&body) {
                    Ok(count) => {
                        tracing::debug!(endpoint = %self.endpoint, count, "JWKS fetched");
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(endpoint = %self.endpoint, "JWKS: {err}");
                        break;
                    }
                },
                Err(err) => {
                    tracing::warn!(endpoint = %self.endpoint, attempt, "JWKS fetch failed: {err}");
                }
            }
        }
        *last = Some(Instant::now());
    }
}
