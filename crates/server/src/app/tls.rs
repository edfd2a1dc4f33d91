//! The HTTP listeners over TLS (`http_server.tls`, `http_server.internal_tls`): rustls with
//! ALPN `h2` and `http/1.1`, each connection served by hyper's HTTP/1.1-or-HTTP/2 builder with
//! upgrades, so `wss://`, `https://` and HTTP/2 streaming all work.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use gyre_config::{HttpServerConfig, RedisTlsConfig};

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to pause accepting after the listener failed (out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The ALPN protocols offered, preferred first.
const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

fn acceptor(key: &str, c: &RedisTlsConfig) -> anyhow::Result<TlsAcceptor> {
    let config = crate::tls::server_config(key, c, ALPN)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The TLS of the external port and of a separate internal port, as Centrifugo chooses them:
/// `tls` on both, unless `tls_external` keeps the internal port plain; `internal_tls`, when
/// enabled, replaces it there. A certificate or key that cannot be used fails, naming its key.
pub(super) fn acceptors(
    hs: &HttpServerConfig,
    separate_internal: bool,
) -> anyhow::Result<(Option<TlsAcceptor>, Option<TlsAcceptor>)> {
    let external = if hs.tls.enabled {
        Some(acceptor("http_server.tls", &hs.tls)?)
    } else {
        None
    };
    let internal = if !separate_internal {
        None
    } else if hs.internal_tls.enabled {
        Some(acceptor("http_server.internal_tls", &hs.internal_tls)?)
    } else if hs.tls_external {
        None
    } else {
        external.clone()
    };
    if hs.tls_external && !separate_internal && hs.tls.enabled {
        tracing::warn!(
            "http_server.tls_external without a separate http_server.internal_port: the one port is served over TLS"
        );
    }
    Ok((external, internal))
}

/// Serves `router` over TLS on `listener` until `shutdown`, then waits for the open HTTP
/// connections to finish (upgraded WebSockets are sessions of their own by then). A client
/// that does not speak TLS (plain HTTP on this port) is dropped after its failed handshake.
pub(super) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (mut tcp, remote) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::debug!("accept failed: {err}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        super::set_nodelay(&mut tcp);
        let (acceptor, router, builder) = (acceptor.clone(), router.clone(), builder.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(err)) => {
                    tracing::debug!(%remote, "TLS handshake failed: {err}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "TLS handshake timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(remote));
                router.clone().oneshot(req)
            });
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .into_owned();
            if let Err(err) = watcher.watch(conn).await {
                tracing::debug!(%remote, "HTTP connection ended: {err}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
