//! An application backend for the GRPC proxy tests: a tonic `CentrifugoProxy` server (from
//! the server's own `proto/proxy.proto`) on a free loopback port, plaintext or TLS, answering
//! like the HTTP test backend (`proxy_backend`): results, errors, disconnects and unusable
//! replies chosen by the request, and an `echo` RPC that reports what arrived.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use serde_json::{Value, json};
use tonic::codec::CompressionEncoding;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

use super::support::now;

#[allow(dead_code, unreachable_pub, clippy::all, rust_2018_idioms)]
pub mod pb {
    include!(concat!(
        env!("OUT_DIR"),
        "/proxy_server/centrifugal.centrifugo.proxy.rs"
    ));
}

use pb::centrifugo_proxy_server::{CentrifugoProxy, CentrifugoProxyServer};

/// The backend's counters.
#[derive(Default)]
pub struct Backend {
    /// Refresh proxy calls so far.
    pub refreshes: AtomicUsize,
    /// Notified on each refresh call.
    pub refreshed: tokio::sync::Notify,
    /// Sub_refresh proxy calls so far.
    pub sub_refreshes: AtomicUsize,
    /// Notified on each sub_refresh call.
    pub sub_refreshed: tokio::sync::Notify,
}

/// The backend as a tonic service (it is shared with the test through the `Arc`).
#[derive(Clone)]
struct Service(Arc<Backend>);

fn bytes(v: Value) -> Bytes {
    Bytes::from(v.to_string())
}

fn parse(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or(Value::Null)
}

fn md<T>(request: &Request<T>, key: &str) -> Value {
    request
        .metadata()
        .get(key)
        .and_then(|v| v.to_str().ok())
        .map_or(Value::Null, |v| Value::String(v.to_owned()))
}

fn error(code: u32, message: &str) -> Option<pb::Error> {
    Some(pb::Error {
        code,
        message: message.to_owned(),
        temporary: false,
    })
}

fn disconnect(code: u32, reason: &str) -> Option<pb::Disconnect> {
    Some(pb::Disconnect {
        code,
        reason: reason.to_owned(),
    })
}

#[tonic::async_trait]
impl CentrifugoProxy for Service {
    async fn connect(
        &self,
        request: Request<pb::ConnectRequest>,
    ) -> Result<Response<pb::ConnectResponse>, Status> {
        let header = md(&request, "x-user");
        let req = request.into_inner();
        let user = header
            .as_str()
            .or(parse(&req.data)["user"].as_str())
            .unwrap_or("")
            .to_owned();
        let mut reply = pb::ConnectResponse::default();
        match user.as_str() {
            "" => reply.error = error(1001, "who are you"),
            "banned" => reply.disconnect = disconnect(4501, "banned"),
            "refresher" => {
                reply.result = Some(pb::ConnectResult {
                    user,
                    expire_at: now() + 1,
                    ..Default::default()
                })
            }
            "badmeta" => {
                reply.result = Some(pb::ConnectResult {
                    user,
                    meta: Bytes::from_static(b"{not json"),
                    ..Default::default()
                })
            }
            _ => {
                let mut result = pb::ConnectResult {
                    data: bytes(json!({"hello": user})),
                    meta: bytes(json!({"team": "blue"})),
                    info: bytes(json!({"name": user})),
                    user: user.clone(),
                    ..Default::default()
                };
                if user == "grace" {
                    // Server-side subscriptions: a plain one and one with data (base64).
                    result.channels = vec!["news".to_owned()];
                    result.subs.insert(
                        "vip".to_owned(),
                        pb::SubscribeOptions {
                            b64data: "eyJ2aXAiOnRydWV9".to_owned(), // {"vip":true}
                            ..Default::default()
                        },
                    );
                }
                reply.result = Some(result);
            }
        }
        Ok(Response::new(reply))
    }

    async fn refresh(
        &self,
        _request: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::RefreshResponse>, Status> {
        self.0.refreshes.fetch_add(1, Ordering::SeqCst);
        self.0.refreshed.notify_waiters();
        Ok(Response::new(pb::RefreshResponse {
            result: Some(pb::RefreshResult {
                expire_at: now() + 1,
                info: bytes(json!({"refreshed": true})),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<pb::SubscribeResponse>, Status> {
        let req = request.into_inner();
        let mut reply = pb::SubscribeResponse::default();
        match req.channel.as_str() {
            "sp:deny" => reply.error = error(1403, "not in this room"),
            "sp:pos" => {
                reply.result = Some(pb::SubscribeResult {
                    r#override: Some(pb::SubscribeOptionOverride {
                        force_positioning: Some(pb::BoolValue { value: true }),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
            }
            c if c.starts_with("sr:") => {
                reply.result = Some(pb::SubscribeResult {
                    expire_at: now() + 1,
                    ..Default::default()
                })
            }
            c => {
                reply.result = Some(pb::SubscribeResult {
                    data: bytes(json!({"welcome": c})),
                    info: bytes(json!({"seat": 7})),
                    ..Default::default()
                })
            }
        }
        Ok(Response::new(reply))
    }

    async fn publish(
        &self,
        request: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let req = request.into_inner();
        Ok(Response::new(pb::PublishResponse {
            result: Some(pb::PublishResult {
                data: bytes(json!({"rewritten": parse(&req.data)})),
                skip_history: req.channel == "sp:nohist",
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn rpc(
        &self,
        request: Request<pb::RpcRequest>,
    ) -> Result<Response<pb::RpcResponse>, Status> {
        let seen = json!({
            "header": md(&request, "x-user"),
            "static": md(&request, "x-static"),
            "credentials": md(&request, "authorization"),
            "compressed": md(&request, "grpc-encoding"),
        });
        let req = request.into_inner();
        let mut reply = pb::RpcResponse::default();
        let result = |data: Value| {
            Some(pb::RpcResult {
                data: bytes(data),
                ..Default::default()
            })
        };
        match req.method.as_str() {
            "echo" => {
                let mut echo = json!({
                    "user": req.user, "meta": parse(&req.meta), "data": parse(&req.data),
                    "b64data": req.b64data, "encoding": req.encoding, "protocol": req.protocol,
                    "transport": req.transport, "client_set": !req.client.is_empty(),
                });
                if let (Value::Object(e), Value::Object(s)) = (&mut echo, seen) {
                    e.extend(s);
                }
                if req.encoding == "binary" {
                    // `b64data` wins over `data`.
                    use base64::Engine as _;
                    let b64 = base64::engine::general_purpose::STANDARD;
                    reply.result = Some(pb::RpcResult {
                        b64data: b64.encode(echo.to_string()),
                        data: bytes(json!({"wrong": true})),
                    });
                } else {
                    reply.result = result(echo);
                }
            }
            // The seeds' example: `rpc('example_method', {'key': 'value'})`.
            "example_method" => {
                reply.result = result(json!({"received": parse(&req.data), "answer": 42}))
            }
            "fail" => reply.error = error(1000, "custom"),
            "bye" => reply.disconnect = disconnect(4001, "bye"),
            "bye_terminal" => reply.disconnect = disconnect(4502, "bye"),
            "bigcode" => reply.disconnect = disconnect(70000, "too big"),
            "nothing" => {}
            "b64bad" => {
                reply.result = Some(pb::RpcResult {
                    b64data: "!!!".to_owned(),
                    ..Default::default()
                })
            }
            "status" => return Err(Status::internal("backend broke")),
            "slow" => {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                reply.result = result(json!({}));
            }
            _ => reply.error = error(104, "method not found"),
        }
        Ok(Response::new(reply))
    }

    async fn sub_refresh(
        &self,
        request: Request<pb::SubRefreshRequest>,
    ) -> Result<Response<pb::SubRefreshResponse>, Status> {
        self.0.sub_refreshes.fetch_add(1, Ordering::SeqCst);
        self.0.sub_refreshed.notify_waiters();
        let expired = request.get_ref().channel == "sr:end";
        Ok(Response::new(pb::SubRefreshResponse {
            result: Some(pb::SubRefreshResult {
                expired,
                expire_at: if expired { 0 } else { now() + 1 },
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}

/// A server certificate and key (PEM) for TLS backends, and the CA that signs the client
/// certificates it asks for (mutual TLS), if any.
pub struct ServerTls {
    pub cert: String,
    pub key: String,
    pub client_ca: Option<String>,
}

/// Starts the backend on a free loopback port (TLS with `tls`); its `grpc://` endpoint.
pub async fn backend(tls: Option<ServerTls>) -> (String, Arc<Backend>) {
    let state = Arc::new(Backend::default());
    let service = CentrifugoProxyServer::new(Service(state.clone()))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut server = Server::builder();
    if let Some(tls) = tls {
        let mut config = ServerTlsConfig::new().identity(Identity::from_pem(tls.cert, tls.key));
        if let Some(ca) = tls.client_ca {
            config = config.client_ca_root(tonic::transport::Certificate::from_pem(ca));
        }
        server = server.tls_config(config).expect("server TLS");
    }
    let router = server.add_service(service);
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(async move {
        let _ = router.serve_with_incoming(incoming).await;
    });
    (format!("grpc://{addr}"), state)
}

/// The proxy configuration of a node whose proxies all call the backend at `endpoint`, with
/// `grpc` as every proxy's `grpc` options and `extra` merged into the RPC proxy.
pub fn config(endpoint: &str, grpc: Value, rpc_extra: Value) -> Value {
    let proxy = |extra: Value| {
        let mut p = json!({"endpoint": endpoint, "grpc": grpc.clone()});
        if let (Value::Object(p), Value::Object(e)) = (&mut p, extra) {
            p.extend(e);
        }
        p
    };
    let mut rpc = proxy(json!({
        "timeout": "1s", "include_connection_meta": true, "http_headers": ["x-user"],
    }));
    if let (Value::Object(r), Value::Object(e)) = (&mut rpc, rpc_extra) {
        r.extend(e);
    }
    let mut connect = proxy(json!({"http_headers": ["X-User"]}));
    connect["enabled"] = json!(true);
    let mut refresh = proxy(json!({}));
    refresh["enabled"] = json!(true);
    json!({
        "client": {"proxy": {"connect": connect, "refresh": refresh}},
        "channel": {
            "without_namespace": {"allow_subscribe_for_client": true},
            "proxy": {
                "subscribe": proxy(json!({})),
                "publish": proxy(json!({})),
                "sub_refresh": proxy(json!({})),
            },
            "namespaces": [
                {"name": "sp", "subscribe_proxy_enabled": true, "publish_proxy_enabled": true,
                 "history_size": 10, "history_ttl": "300s"},
                {"name": "sr", "subscribe_proxy_enabled": true, "sub_refresh_proxy_enabled": true},
                {"name": "pi", "presence": true, "allow_subscribe_for_client": true,
                 "allow_presence_for_subscriber": true},
            ],
        },
        "rpc": {
            "ping": {"enabled": true},
            "proxy": rpc,
            "without_namespace": {"proxy_enabled": true},
        },
    })
}
