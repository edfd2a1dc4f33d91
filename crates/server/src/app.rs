//! Wiring: builds the node and the HTTP routers, serves them, shuts down gracefully.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::{any, get, post};
use axum::serve::ListenerExt as _;
use gyre_config::Config;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::node::Node;

mod tls;

/// The external router: the connection endpoints (and the API unless it has its own port).
pub(crate) fn router(node: &Arc<Node>, with_internal: bool) -> Router {
    let mut router = Router::new();
    if !node.config.websocket.disabled {
        let prefix = if node.config.websocket.handler_prefix.is_empty() {
            "/connection/websocket".to_owned()
        } else {
            node.config.websocket.handler_prefix.clone()
        };
        router = router.route(&prefix, any(crate::endpoint::websocket));
    }
    let config = &node.config;
    if config.http_stream.enabled {
        let prefix = route_path(&config.http_stream.handler_prefix);
        router = router.route(&prefix, any(crate::endpoint::stream::http_stream));
    }
    if config.sse.enabled {
        let prefix = route_path(&config.sse.handler_prefix);
        router = router.route(&prefix, any(crate::endpoint::stream::sse));
    }
    if config.uni_websocket.enabled {
        let prefix = route_path(&config.uni_websocket.handler_prefix);
        router = router.route(&prefix, any(crate::endpoint::uni::websocket));
    }
    if config.uni_http_stream.enabled {
        let prefix = route_path(&config.uni_http_stream.handler_prefix);
        router = router.route(&prefix, any(crate::endpoint::uni::http_stream));
    }
    if config.uni_sse.enabled {
        let prefix = route_path(&config.uni_sse.handler_prefix);
        router = router.route(&prefix, any(crate::endpoint::uni::sse));
    }
    if config.http_stream.enabled || config.sse.enabled {
        let prefix = route_path(&config.emulation.handler_prefix);
        router = router.route(&prefix, any(crate::endpoint::emulation::handle));
    }
    if with_internal {
        router = router.merge(internal_router(node));
    }
    router.with_state(node.clone())
}

/// A handler prefix as a route: without a trailing slash, `/` when empty.
fn route_path(prefix: &str) -> String {
    match prefix.trim_end_matches('/') {
        "" => "/".to_owned(),
        path => path.to_owned(),
    }
}

fn internal_router(node: &Arc<Node>) -> Router<Arc<Node>> {
    let mut router = Router::new();
    if !node.config.http_api.disabled {
        let prefix = node.config.http_api.handler_prefix.trim_end_matches('/');
        router = router
            .route(
                &format!("{prefix}/{{method}}"),
                post(crate::api::http::handle),
            )
            .route(
                if prefix.is_empty() { "/" } else { prefix },
                post(crate::api::http::handle_legacy),
            );
    }
    if node.config.prometheus.enabled {
        router = router.route(
            &node.config.prometheus.handler_prefix,
            get(|State(node): State<Arc<Node>>| async move {
                let nodes = node.events.cluster.other_nodes().len() + 1;
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    node.metrics.render(&node.hub.counts(), nodes),
                )
            }),
        );
    }
    if node.config.health.enabled && node.config.health.handler_prefix.starts_with('/') {
        router = router.route(
            &node.config.health.handler_prefix,
            get(|| async { axum::Json(serde_json::json!({})) }),
        );
    }
    if node.config.health.enabled && !node.config.health.handler_prefix.starts_with('/') {
        tracing::warn!(
            "health.handler_prefix {:?} does not start with \"/\": the health endpoint is not served",
            node.config.health.handler_prefix
        );
    }
    router
}

/// Turns off Nagle's algorithm on an accepted connection: replies, pushes and API responses are
/// written whole by the server, so holding a small write back until the previous one is
/// acknowledged would only add latency (Centrifugo, being Go, has it off by default too).
fn set_nodelay(tcp: &mut tokio::net::TcpStream) {
    if let Err(err) = tcp.set_nodelay(true) {
        tracing::debug!("can't set TCP_NODELAY on an accepted connection: {err}");
    }
}

/// A running server: the addresses it listens on.
#[derive(Debug)]
pub struct Server {
    /// Address of the main port.
    pub addr: std::net::SocketAddr,
    /// Address of the internal port (equal to `addr` when shared).
    pub internal_addr: std::net::SocketAddr,
    /// Address of the GRPC API (`grpc_api.enabled`).
    pub grpc_addr: Option<std::net::SocketAddr>,
    handle: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Waits until the server has shut down.
    pub async fn wait(self) {
        let _ = self.handle.await;
    }
}

/// Binds the configured ports and starts serving. `shutdown` stops it gracefully: every
/// client gets disconnect 3001 and the call to [`Server::wait`] returns once they are gone.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Server> {
    let hs = &config.http_server;
    let main_addr = format!(
        "{}:{}",
        if hs.address.is_empty() {
            "0.0.0.0"
        } else {
            &hs.address
        },
        hs.port
    );
    let separate_internal = hs.internal_port != 0 && hs.internal_port != hs.port;
    let (tls, internal_tls) = tls::acceptors(hs, separate_internal)?;
    let listener = TcpListener::bind(&main_addr).await?;
    let internal = if separate_internal {
        let a = hs.effective_internal_address();
        let addr = format!(
            "{}:{}",
            if a.is_empty() { "0.0.0.0" } else { a },
            hs.internal_port
        );
        Some(TcpListener::bind(&addr).await?)
    } else {
        None
    };
    let shutdown_timeout = config.shutdown.timeout.0;
    let events = crate::node::NodeEvents::new(&config.node.name);
    let connect_wait = crate::engine::Engine::connect_wait(&config);
    let engine = crate::engine::Engine::from_config(&config, events.clone(), &shutdown).await?;
    let control = engine.control.clone();
    let node = Node::with_engine(config, shutdown.clone(), events, engine)?;
    node.grpc_proxy.prepare(&node.config)?;
    if !control.wait_connected(connect_wait).await {
        tracing::warn!("starting without the broker: requests that need it fail until it is up");
    }
    node.start_heartbeats();
    crate::consumer::start(&node, &shutdown);
    let addr = listener.local_addr()?;
    let internal_addr = match &internal {
        Some(l) => l.local_addr()?,
        None => addr,
    };
    let grpc = if node.config.grpc_api.enabled {
        let listener = crate::api::grpc::bind(&node).await?;
        let grpc_addr = listener.local_addr()?;
        let task = crate::api::grpc::serve(&node, listener, shutdown.clone())?;
        tracing::info!("serving GRPC API on {grpc_addr}");
        Some((grpc_addr, task))
    } else {
        None
    };
    let grpc_addr = grpc.as_ref().map(|(a, _)| *a);
    let main = router(&node, internal.is_none());
    let internal_app = internal.map(|l| (l, internal_router(&node).with_state(node.clone())));
    {
        let node = node.clone();
        let token = shutdown.clone();
        tokio::spawn(async move { node.pinger.run(token).await });
    }
    let node2 = node.clone();
    let handle = tokio::spawn(async move {
        let internal_task = internal_app.map(|(l, app)| {
            let token = shutdown.clone();
            tokio::spawn(async move {
                match internal_tls {
                    Some(acceptor) => tls::serve(l, acceptor, app, token).await,
                    None => {
                        let _ = axum::serve(l.tap_io(set_nodelay), app)
                            .with_graceful_shutdown(async move { token.cancelled().await })
                            .await;
                    }
                }
            })
        });
        let token = shutdown.clone();
        match tls {
            Some(acceptor) => tls::serve(listener, acceptor, main, token).await,
            None => {
                let main = axum::serve(
                    listener.tap_io(set_nodelay),
                    main.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .with_graceful_shutdown(async move { token.cancelled().await });
                if let Err(err) = main.await {
                    tracing::error!("server error: {err}");
                }
            }
        }
        if let Some(t) = internal_task {
            let _ = t.await;
        }
        if let Some((_, t)) = grpc {
            let _ = t.await;
        }
        node2.tasks.close();
        if tokio::time::timeout(shutdown_timeout, node2.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown timeout: some connections were still open");
        }
    });
    Ok(Server {
        addr,
        internal_addr,
        grpc_addr,
        handle,
    })
}
