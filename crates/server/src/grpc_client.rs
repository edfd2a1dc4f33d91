//! The node's GRPC clients for proxy backends (`grpc://host:port` endpoints): one tonic
//! channel per endpoint and TLS setup, created at the first call, connected lazily and reused
//! by every session (tonic reconnects a broken one); plaintext HTTP/2, or rustls with the
//! proxy's `grpc.tls` (the Redis engine's TLS setup: CA, client certificate, `server_name`,
//! `insecure_skip_verify`). Each call carries the proxy's metadata: `grpc.static_metadata`,
//! the forwarded `http_headers` (lowercase keys, winning over static ones) and the
//! `grpc.credentials_key` / `credentials_value` pair; `grpc.compression` sends gzip.

use std::collections::HashMap;
use std::sync::Arc;

use gyre_config::ProxyOptions;
use http::{HeaderMap, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::{Channel, Endpoint};

/// Messages and the client generated from `proto/proxy.proto`.
#[allow(
    unreachable_pub,
    missing_docs,
    dead_code,
    clippy::all,
    clippy::pedantic,
    rust_2018_idioms
)]
pub(crate) mod pb {
    include!(concat!(
        env!("OUT_DIR"),
        "/proxy_client/centrifugal.centrifugo.proxy.rs"
    ));
}

/// The generated client over a shared channel.
pub(crate) type ProxyClient = pb::centrifugo_proxy_client::CentrifugoProxyClient<Channel>;

/// Why no call could be made to a GRPC proxy.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SetupError {
    /// The endpoint is not `grpc://host:port`.
    #[error("bad GRPC endpoint {0:?}")]
    Endpoint(String),
    /// `grpc.tls` cannot be used (the message names the key under `grpc.tls`).
    #[error("{0}")]
    Tls(String),
}

/// A GRPC proxy whose settings cannot be used, naming its key.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {error}")]
pub(crate) struct PrepareError {
    key: String,
    error: SetupError,
}

/// One channel per endpoint and TLS setup.
#[derive(Debug, Default)]
pub(crate) struct GrpcClients {
    channels: parking_lot::Mutex<HashMap<String, Channel>>,
}

impl GrpcClients {
    /// Creates the channel of every configured `grpc://` proxy (nothing connects yet), so
    /// settings that cannot work (a bad endpoint, unreadable TLS PEM) stop the start-up.
    pub(crate) fn prepare(&self, config: &gyre_config::Config) -> Result<(), PrepareError> {
        for (key, options) in config.proxies_by_key() {
            if options.is_grpc() {
                self.channel(options)
                    .map_err(|error| PrepareError { key, error })?;
            }
        }
        Ok(())
    }

    /// A client for the proxy's backend, over the channel it shares with other calls.
    pub(crate) fn client(&self, options: &ProxyOptions) -> Result<ProxyClient, SetupError> {
        let mut client = ProxyClient::new(self.channel(options)?);
        if options.grpc.compression {
            client = client
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip);
        }
        Ok(client)
    }

    fn channel(&self, options: &ProxyOptions) -> Result<Channel, SetupError> {
        let tls = &options.grpc.tls;
        let key = format!(
            "{}\n{}",
            options.endpoint,
            serde_json::to_string(tls).unwrap_or_default()
        );
        if let Some(channel) = self.channels.lock().get(&key) {
            return Ok(channel.clone());
        }
        let channel = open(options)?;
        Ok(self.channels.lock().entry(key).or_insert(channel).clone())
    }
}

/// `host:port` of a `grpc://host:port[/...]` endpoint.
fn authority(endpoint: &str) -> Option<&str> {
    let rest = endpoint.strip_prefix("grpc://")?;
    let host = rest.split('/').next().unwrap_or(rest);
    (!host.is_empty()).then_some(host)
}

/// A lazily connected channel to the proxy's backend.
fn open(options: &ProxyOptions) -> Result<Channel, SetupError> {
    let bad = || SetupError::Endpoint(options.endpoint.clone());
    let authority = authority(&options.endpoint).ok_or_else(bad)?;
    // The URI's scheme stays `http`: TLS, when on, is done by the connector below.
    let mut endpoint = Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|_| bad())?
        .tcp_nodelay(true);
    if !options.timeout.0.is_zero() {
        endpoint = endpoint.connect_timeout(options.timeout.0);
    }
    let tls = &options.grpc.tls;
    if !tls.enabled {
        return Ok(endpoint.connect_lazy());
    }
    let tls_error = |err: crate::tls::TlsError| SetupError::Tls(err.to_string());
    let server_name = match crate::tls::server_name("grpc.tls", tls).map_err(tls_error)? {
        Some(name) => {
            Some(ServerName::try_from(name).map_err(|err| SetupError::Tls(err.to_string()))?)
        }
        None => None,
    };
    let mut config = crate::tls::client_config("grpc.tls", tls).map_err(tls_error)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let connect = tower::service_fn(move |uri: Uri| {
        let connector = connector.clone();
        let server_name = server_name.clone();
        async move {
            let host = uri
                .host()
                .ok_or_else(|| std::io::Error::other("endpoint without a host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = match server_name {
                Some(name) => name,
                None => ServerName::try_from(host).map_err(std::io::Error::other)?,
            };
            let stream = connector.connect(name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connect))
}

/// A request with the proxy's metadata: static metadata, then the forwarded headers, then the
/// credentials pair.
pub(crate) fn request<T>(
    options: &ProxyOptions,
    forwarded: &HeaderMap,
    message: T,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    set_metadata(request.metadata_mut(), options, forwarded);
    if !options.timeout.0.is_zero() {
        request.set_timeout(options.timeout.0);
    }
    request
}

fn set_metadata(md: &mut MetadataMap, options: &ProxyOptions, forwarded: &HeaderMap) {
    let key = |name: &str| AsciiMetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes()).ok();
    for (name, value) in &options.grpc.static_metadata {
        if let (Some(k), Ok(v)) = (key(name), AsciiMetadataValue::try_from(value.as_str())) {
            md.insert(k, v);
        }
    }
    for name in &options.http_headers {
        let Some(k) = key(name) else { continue };
        let mut values = forwarded
            .get_all(k.as_str())
            .iter()
            .filter_map(|v| AsciiMetadataValue::try_from(v.as_bytes()).ok())
            .peekable();
        if values.peek().is_some() {
            md.remove(k.as_str());
        }
        for v in values {
            md.append(k.clone(), v);
        }
    }
    let grpc = &options.grpc;
    if !grpc.credentials_key.is_empty()
        && let (Some(k), Ok(v)) = (
            key(&grpc.credentials_key),
            AsciiMetadataValue::try_from(grpc.credentials_value.as_str()),
        )
    {
        md.insert(k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_metadata() {
        assert_eq!(authority("grpc://127.0.0.1:9000"), Some("127.0.0.1:9000"));
        assert_eq!(authority("grpc://backend:1/x"), Some("backend:1"));
        assert_eq!(authority("grpc://"), None);
        assert_eq!(authority("http://a:1"), None);
        let mut options = ProxyOptions {
            http_headers: vec!["X-User".to_owned(), "bad header".to_owned()],
            ..Default::default()
        };
        options
            .grpc
            .static_metadata
            .insert("X-User".to_owned(), "static".to_owned());
        options
            .grpc
            .static_metadata
            .insert("x-static".to_owned(), "s".to_owned());
        options.grpc.credentials_key = "Authorization".to_owned();
        options.grpc.credentials_value = "token t".to_owned();
        let mut headers = HeaderMap::new();
        headers.append("x-user", "alice".parse().unwrap());
        headers.append("x-user", "again".parse().unwrap());
        let mut md = MetadataMap::new();
        set_metadata(&mut md, &options, &headers);
        let all: Vec<_> = md.get_all("x-user").iter().collect();
        assert_eq!(all, ["alice", "again"]);
        assert_eq!(md.get("x-static").map(|v| v.to_str().ok()), Some(Some("s")));
        assert_eq!(
            md.get("authorization").map(|v| v.to_str().ok()),
            Some(Some("token t"))
        );
        // Without the forwarded header the static value stays.
        let mut md = MetadataMap::new();
        set_metadata(&mut md, &options, &HeaderMap::new());
        assert_eq!(
            md.get("x-user").map(|v| v.to_str().ok()),
            Some(Some("static"))
        );
    }
}
