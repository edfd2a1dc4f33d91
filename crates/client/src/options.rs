//! Client and subscription options (builders).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
pub use gyre_protocol::Protocol;

use crate::core::{Config, SubConfig};
use crate::event::StreamPosition;
use crate::proxy::Proxy;
use crate::tls::{self, TlsOptions};
use crate::{Client, Error};
use tokio_websockets::Connector;

/// Error type token callbacks may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a token callback is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenContext {
    /// `None` for a connection token, the channel for a subscription token.
    pub channel: Option<String>,
}

type TokenFuture = Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send>>;
pub(crate) type GetToken = Arc<dyn Fn(TokenContext) -> TokenFuture + Send + Sync>;

fn boxed<F, Fut>(f: F) -> GetToken
where
    F: Fn(TokenContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, BoxError>> + Send + 'static,
{
    Arc::new(move |ctx| Box::pin(f(ctx)))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Options of a [`Client`]; build the client with [`ClientOptions::build`].
///
/// ```no_run
/// # async fn f() -> Result<(), gyre_client::Error> {
/// use std::time::Duration;
/// use gyre_client::{ClientOptions, Protocol};
///
/// let client = ClientOptions::new("ws://127.0.0.1:8000/connection/websocket")
///     .protocol(Protocol::Protobuf)
///     .token("JWT")
///     .get_token(|_ctx| async { Ok("a fresh JWT".to_owned()) })
///     .timeout(Duration::from_secs(3))
///     .build()?;
/// client.connect();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientOptions {
    pub(crate) url: String,
    pub(crate) core: Config,
    pub(crate) get_token: Option<GetToken>,
    pub(crate) get_subscription_token: Option<GetToken>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) event_capacity: usize,
    pub(crate) backpressure: bool,
    pub(crate) seed: Option<u64>,
    pub(crate) tls: TlsOptions,
    /// The proxy URL as given with the scheme its option expects (parsed by `build()`).
    pub(crate) proxy_url: Option<(&'static str, String)>,
    /// Set by `build()` from `proxy_url`.
    pub(crate) proxy: Option<Proxy>,
    /// Set by `build()` for `wss://` URLs.
    pub(crate) connector: Option<Arc<Connector>>,
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("url", &self.url)
            .field("core", &self.core)
            .field("get_token", &self.get_token.is_some())
            .field(
                "get_subscription_token",
                &self.get_subscription_token.is_some(),
            )
            .field("headers", &self.headers)
            .field("event_capacity", &self.event_capacity)
            .finish()
    }
}

impl ClientOptions {
    /// Options with the js SDK's defaults (JSON, 5 s timeout, reconnect 500 ms – 20 s,
    /// 10 s max server ping delay) for a `ws://` endpoint.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            core: Config::default(),
            get_token: None,
            headers: Vec::new(),
            event_capacity: 1024,
            get_subscription_token: None,
            seed: None,
            backpressure: true,
            tls: TlsOptions::default(),
            proxy_url: None,
            proxy: None,
            connector: None,
        }
    }

    /// Connection token (JWT).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.core.token = token.into();
        self
    }

    /// Async callback returning a connection token: called before connecting without a token,
    /// after the server said the token expired, and to refresh an expiring connection.
    /// Return `Ok("")` when the user may not connect (the client disconnects, code 1);
    /// errors are retried after a jittered delay.
    pub fn get_token<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(TokenContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, BoxError>> + Send + 'static,
    {
        self.get_token = Some(boxed(f));
        self.core.has_get_token = true;
        self
    }

    /// A header sent inside the connect command (its `headers` field: Centrifugo v6 header
    /// emulation, for servers that read headers from there rather than from the upgrade
    /// request). See [`Client::set_connect_headers`](crate::Client::set_connect_headers).
    pub fn connect_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.core.headers.insert(name.into(), value.into());
        self
    }

    /// Connects through an HTTP proxy with a `CONNECT` tunnel:
    /// `http://[user:password@]host[:port]` (port 80 by default; the user info is sent as
    /// `Proxy-Authorization: Basic`). `wss://` runs TLS to the server inside the tunnel.
    /// The last of `http_proxy` and [`ClientOptions::socks5_proxy`] wins.
    ///
    /// ```no_run
    /// # fn run() -> Result<(), gyre_client::Error> {
    /// let client = gyre_client::ClientOptions::new("wss://example.com/connection/websocket")
    ///     .http_proxy("http://user:secret@proxy.internal:3128")
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn http_proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy_url = Some(("http://", url.into()));
        self
    }

    /// Connects through a SOCKS5 proxy: `socks5://[user:password@]host[:port]` (port 1080
    /// by default; user name and password authentication when given). The server's host
    /// name is resolved by the proxy.
    pub fn socks5_proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy_url = Some(("socks5://", url.into()));
        self
    }

    /// Connect data sent with every connect command (JSON text in JSON mode).
    pub fn data(mut self, data: impl Into<Bytes>) -> Self {
        self.core.data = data.into();
        self
    }

    /// Client name reported to the server.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.core.name = name.into();
        self
    }

    /// Client version reported to the server.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.core.version = version.into();
        self
    }

    /// Timeout of each operation: connect handshake, calls, subscribe (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.core.timeout = millis(timeout);
        self
    }

    /// Reconnect backoff bounds (default 500 ms and 20 s).
    pub fn reconnect_delay(mut self, min: Duration, max: Duration) -> Self {
        self.core.min_reconnect_delay = millis(min);
        self.core.max_reconnect_delay = millis(max);
        self
    }

    /// Extra time after the server's ping interval before the connection counts as broken
    /// (default 10 s); [`Duration::ZERO`] disables the check, as in centrifuge-js.
    pub fn max_server_ping_delay(mut self, delay: Duration) -> Self {
        self.core.max_server_ping_delay = millis(delay);
        self
    }

    /// Adds a header to the WebSocket upgrade request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// JSON (default) or Protobuf (subprotocol `centrifuge-protobuf`).
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.core.protocol = protocol;
        self
    }

    /// Client-wide async callback returning subscription tokens, used for every
    /// subscription without a callback of its own (centrifuge-js `getSubscriptionToken`);
    /// [`TokenContext::channel`] names the channel. `Ok("")` unsubscribes (code 1,
    /// unauthorized); errors are retried after a jittered delay.
    pub fn get_subscription_token<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(TokenContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, BoxError>> + Send + 'static,
    {
        self.get_subscription_token = Some(boxed(f));
        self
    }

    /// Trusts the CA certificate(s) in this PEM for `wss://` instead of the system roots.
    pub fn tls_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.ca_pem = Some(pem.into());
        self
    }

    /// Presents this client certificate chain (PEM) with its private key (PEM) to a `wss://`
    /// server that asks for one.
    pub fn tls_client_cert_pem(
        mut self,
        cert_chain: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls.client_cert = Some((cert_chain.into(), key.into()));
        self
    }

    /// Capacity of each event stream (default 1024): how far a consumer may fall behind
    /// before the client waits for it (see [`ClientOptions::backpressure`]).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// Lossless event delivery (on by default): a full event stream makes the client wait
    /// for its consumer instead of dropping events. While it waits the client reads nothing
    /// from the socket, so the server's slow-client limit decides how far behind a consumer
    /// may fall; no publication is lost and the stream position never passes an event the
    /// consumer has not been given. Every stream must then be read (or dropped): one that
    /// is kept but never read stalls the client. `false` restores the lossy mode: a full
    /// stream drops the newest events and gets a `Lagged` notice as soon as it has room
    /// (how many events and publications, and the position before the first lost
    /// publication, where the next recovering resubscribe starts again).
    pub fn backpressure(mut self, on: bool) -> Self {
        self.backpressure = on;
        self
    }

    /// Seed of the backoff jitter RNG (random by default); for reproducible tests.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Validates the options and starts the client task (needs a tokio runtime). The client
    /// starts `Disconnected`; call [`Client::connect`].
    ///
    /// # Errors
    ///
    /// [`Error::Configuration`] for a URL that does not parse, has no host or a scheme other
    /// than `ws`/`wss`, a header name or value HTTP does not allow, or unusable TLS
    /// certificates; [`Error::InvalidData`] for connect data that is not JSON with the JSON
    /// protocol.
    pub fn build(mut self) -> Result<Client, Error> {
        let uri: http::Uri = self
            .url
            .parse()
            .map_err(|e| Error::Configuration(format!("bad URL {:?}: {e}", self.url)))?;
        if uri.host().is_none_or(str::is_empty) {
            return Err(Error::Configuration(format!(
                "URL has no host: {:?}",
                self.url
            )));
        }
        match uri.scheme_str() {
            Some("ws") => {}
            Some("wss") => self.connector = Some(tls::connector(&self.tls)?),
            _ => {
                return Err(Error::Configuration(format!(
                    "URL must start with ws:// or wss://: {:?}",
                    self.url
                )));
            }
        }
        check_headers(&self.headers)?;
        check_data(self.core.protocol, &self.core.data)?;
        if let Some((scheme, url)) = &self.proxy_url {
            if !url.starts_with(scheme) {
                return Err(Error::Configuration(format!(
                    "proxy URL {url:?} must start with {scheme}"
                )));
            }
            self.proxy = Some(Proxy::parse(url)?);
        }
        Client::start(self)
    }
}

/// Refuses header names and values HTTP does not allow.
pub(crate) fn check_headers(headers: &[(String, String)]) -> Result<(), Error> {
    for (name, value) in headers {
        http::HeaderName::try_from(name.as_str())
            .map_err(|e| Error::Configuration(format!("bad header name {name:?}: {e}")))?;
        http::HeaderValue::try_from(value.as_str())
            .map_err(|e| Error::Configuration(format!("bad value of header {name}: {e}")))?;
    }
    Ok(())
}

/// Refuses connect data that is not JSON with the JSON protocol.
pub(crate) fn check_data(protocol: Protocol, data: &[u8]) -> Result<(), Error> {
    if protocol == Protocol::Json && !data.is_empty() && !gyre_protocol::raw::is_json(data) {
        return Err(Error::InvalidData("connect data must be JSON".into()));
    }
    Ok(())
}

/// Options of a [`Subscription`](crate::Subscription).
#[derive(Clone, Default)]
pub struct SubscriptionOptions {
    pub(crate) core: SubConfig,
    pub(crate) get_token: Option<GetToken>,
}

impl fmt::Debug for SubscriptionOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionOptions")
            .field("core", &self.core)
            .field("get_token", &self.get_token.is_some())
            .finish()
    }
}

impl SubscriptionOptions {
    /// Defaults: no token, no recovery requests, resubscribe backoff 500 ms – 20 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// Subscription token (JWT) for channels that need one.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.core.token = token.into();
        self
    }

    /// Async callback returning a subscription token ([`TokenContext::channel`] is set).
    /// `Ok("")` unsubscribes (code 1, unauthorized); errors are retried after a jittered
    /// delay.
    pub fn get_token<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(TokenContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, BoxError>> + Send + 'static,
    {
        self.get_token = Some(boxed(f));
        self.core.has_get_token = true;
        self
    }

    /// Data attached to every subscribe request.
    pub fn data(mut self, data: impl Into<Bytes>) -> Self {
        self.core.data = data.into();
        self
    }

    /// Deliver only the publications whose tags match `filter` (evaluated by the server; the
    /// channel's namespace needs `allow_tags_filter`, else the subscribe fails with 107).
    /// Recovery and positions still cover every publication of the channel.
    pub fn tags_filter(mut self, filter: crate::TagsFilter) -> Self {
        self.core.tags_filter = Some(Box::new(filter.node().clone()));
        self
    }

    /// Ask for fossil delta compression of publications.
    pub fn delta(mut self, on: bool) -> Self {
        self.core.delta = on;
        self
    }

    /// Resubscribe backoff bounds (default 500 ms and 20 s).
    pub fn resubscribe_delay(mut self, min: Duration, max: Duration) -> Self {
        self.core.min_resubscribe_delay = millis(min);
        self.core.max_resubscribe_delay = millis(max);
        self
    }

    /// How long a subscribe command may wait for its reply (default: the client's
    /// [`ClientOptions::timeout`]). On timeout only this subscription retries, after its
    /// resubscribe backoff; the connection is kept.
    pub fn subscribe_timeout(mut self, timeout: Duration) -> Self {
        self.core.subscribe_timeout = Some(millis(timeout).max(1));
        self
    }

    /// Ask the server to make the stream recoverable (it must allow it).
    pub fn recoverable(mut self, on: bool) -> Self {
        self.core.recoverable = on;
        self
    }

    /// Ask the server to track the stream position (it must allow it).
    pub fn positioned(mut self, on: bool) -> Self {
        self.core.positioned = on;
        self
    }

    /// Ask for join/leave events (the server must allow it).
    pub fn join_leave(mut self, on: bool) -> Self {
        self.core.join_leave = on;
        self
    }

    /// Recover from this position on the first subscribe.
    pub fn since(mut self, position: StreamPosition) -> Self {
        self.core.since = Some(position);
        self
    }
}
