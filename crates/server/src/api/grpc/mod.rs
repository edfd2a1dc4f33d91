//! The server API over GRPC: Centrifugo's `centrifugal.centrifugo.api.CentrifugoApi` service
//! (`proto/api.proto`) on the `grpc_api` port, answered by the same executor as the HTTP API.

pub(crate) mod json_bytes;
mod service;
mod status;

use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::node::Node;
use crate::tls::load_pem;

/// Messages and the service trait generated from `proto/api.proto`.
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
        "/server/centrifugal.centrifugo.api.rs"
    ));
}

/// The encoded descriptor of `proto/api.proto`, served by reflection.
const DESCRIPTOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/api_descriptor.bin"));

/// Binds the `grpc_api` address and port.
pub(crate) async fn bind(node: &Node) -> anyhow::Result<TcpListener> {
    let cfg = &node.config.grpc_api;
    let host = if cfg.address.is_empty() {
        "0.0.0.0"
    } else {
        &cfg.address
    };
    let addr = format!("{host}:{}", cfg.port);
    TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the GRPC API"))
}

/// The listener's TLS from `grpc_api.tls` (`None` when disabled).
fn tls(node: &Node) -> anyhow::Result<Option<ServerTlsConfig>> {
    let c = &node.config.grpc_api.tls;
    if !c.enabled {
        return Ok(None);
    }
    let cert = load_pem(
        "grpc_api.tls.cert_pem",
        &c.cert_pem,
        &c.cert_pem_file,
        &c.cert_pem_b64,
    )?
    .context("grpc_api.tls.cert_pem is required with grpc_api.tls.enabled")?;
    let key = load_pem(
        "grpc_api.tls.key_pem",
        &c.key_pem,
        &c.key_pem_file,
        &c.key_pem_b64,
    )?
    .context("grpc_api.tls.key_pem is required with grpc_api.tls.enabled")?;
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
    if let Some(ca) = load_pem(
        "grpc_api.tls.client_ca_pem",
        &c.client_ca_pem,
        &c.client_ca_pem_file,
        &c.client_ca_pem_b64,
    )? {
        tls = tls.client_ca_root(Certificate::from_pem(ca));
    }
    Ok(Some(tls))
}

/// Serves the GRPC API on `listener` until `shutdown`; settings errors are returned before
/// anything is served.
pub(crate) fn serve(
    node: &Arc<Node>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let cfg = &node.config.grpc_api;
    if cfg.key.is_empty() {
        tracing::warn!("grpc_api.key is empty: the GRPC API answers every caller");
    }
    let mut api =
        pb::centrifugo_api_server::CentrifugoApiServer::new(service::Service::new(node.clone()));
    if cfg.max_receive_message_size > 0 {
        api = api.max_decoding_message_size(cfg.max_receive_message_size);
    }
    let mut server = Server::builder();
    if let Some(tls) = tls(node)? {
        server = server
            .tls_config(tls)
            .context("grpc_api.tls: invalid certificate or key")?;
    }
    let reflection = if cfg.reflection {
        Some(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(DESCRIPTOR)
                .build_v1()
                .context("GRPC reflection")?,
        )
    } else {
        None
    };
    let router = server.add_service(api).add_optional_service(reflection);
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    Ok(tokio::spawn(async move {
        if let Err(err) = router
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await
        {
            tracing::error!("GRPC API server error: {err}");
        }
    }))
}
