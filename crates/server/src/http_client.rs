//! The node's one HTTP client for proxy calls and JWKS: a keep-alive connection pool shared by
//! every session, over plain HTTP or TLS (`https://`, verified against the system's roots,
//! which `SSL_CERT_FILE` / `SSL_CERT_DIR` can point elsewhere), and the POST of one JSON request
//! with the proxy's timeout and headers.

use bytes::Bytes;
use gyre_config::ProxyOptions;
use http::{HeaderMap, HeaderName, HeaderValue, Request, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// Why a proxy call produced no usable reply.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// The endpoint is not an `http://` or `https://` URL Gyre can call.
    #[error("unsupported endpoint {0:?}")]
    Endpoint(String),
    /// No answer within the proxy's timeout.
    #[error("timed out")]
    Timeout,
    /// Connecting or the HTTP exchange failed.
    #[error("request failed: {0}")]
    Http(String),
    /// The backend answered with a status other than 200.
    #[error("unexpected HTTP status {0}")]
    Status(u16),
    /// The reply is not a valid proxy reply.
    #[error("bad reply: {0}")]
    Reply(String),
}

/// How many proxy calls one node makes at once; more wait for a slot (within their timeout).
const MAX_IN_FLIGHT: usize = 1024;

/// One keep-alive HTTP/1.1 client pool per node.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    slots: std::sync::Arc<tokio::sync::Semaphore>,
}

/// TLS to backends: the system's root certificates (none loadable: every https call fails to
/// verify, with a warning at start-up).
fn tls_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::warn!(
            "no system root certificates found: https proxy and JWKS endpoints will not verify"
        );
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Whether Gyre can call this endpoint.
fn callable(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::with_idle_timeout(std::time::Duration::from_secs(90))
    }
}

impl HttpClient {
    /// A pool whose connections close after `idle` unused (the pool's timer evicts them; a
    /// connection opened for a call that another connection served waits there too).
    pub(crate) fn with_idle_timeout(idle: std::time::Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config())
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(idle)
            .pool_timer(TokioTimer::new())
            .build(connector);
        HttpClient {
            client,
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// GETs `url` (an `http://` URL) and returns the body of a 200 answer, within `timeout`.
    pub(crate) async fn get(
        &self,
        url: &str,
        timeout: std::time::Duration,
    ) -> Result<Bytes, CallError> {
        if !callable(url) {
            return Err(CallError::Endpoint(url.to_owned()));
        }
        let request = Request::get(url)
            .body(Full::new(Bytes::new()))
            .map_err(|err| CallError::Endpoint(format!("{url}: {err}")))?;
        bounded(timeout, self.exchange(request)).await
    }

    /// POSTs `body` to the proxy's endpoint with the forwarded and static headers and returns
    /// the reply body.
    pub(crate) async fn post(
        &self,
        options: &ProxyOptions,
        forwarded: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<Bytes, CallError> {
        if !callable(&options.endpoint) {
            return Err(CallError::Endpoint(options.endpoint.clone()));
        }
        let mut request = Request::post(options.endpoint.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|err| CallError::Endpoint(format!("{}: {err}", options.endpoint)))?;
        let headers = request.headers_mut();
        for name in &options.http_headers {
            let Ok(name) = HeaderName::try_from(name.to_ascii_lowercase()) else {
                continue;
            };
            for value in forwarded.get_all(&name) {
                headers.append(name.clone(), value.clone());
            }
        }
        for (name, value) in &options.http.static_headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.to_ascii_lowercase()),
                HeaderValue::try_from(value.as_str()),
            ) {
                headers.insert(name, value);
            }
        }
        let exchange = async {
            let _slot = self
                .slots
                .acquire()
                .await
                .map_err(|err| CallError::Http(err.to_string()))?;
            self.exchange(request).await
        };
        bounded(options.timeout.0, exchange).await
    }

    /// Sends a request and returns the body of a 200 answer.
    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<Bytes, CallError> {
        let response = self
            .client
            .request(request)
            .await
            .map_err(|err| CallError::Http(err.to_string()))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|err| CallError::Http(err.to_string()))?
            .to_bytes();
        if status != http::StatusCode::OK {
            return Err(CallError::Status(status.as_u16()));
        }
        Ok(body)
    }
}

/// Runs a call within `timeout` (zero: no limit).
async fn bounded(
    timeout: std::time::Duration,
    call: impl std::future::Future<Output = Result<Bytes, CallError>>,
) -> Result<Bytes, CallError> {
    if timeout.is_zero() {
        return call.await;
    }
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| CallError::Timeout)?
}
