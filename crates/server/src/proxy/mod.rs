//! Proxies: the application backend decides connect, refresh, subscribe, publish and RPC,
//! with Centrifugo v6's wire formats: JSON over HTTP ([`wire`], one keep-alive client per node
//! in [`http`]) or GRPC for `grpc://` endpoints ([`grpc`], one channel per endpoint in
//! `grpc_client`). Each call returns the same plain decisions as the default policy, whatever
//! the transport; a backend that fails gives the client error 100 and a warning naming the
//! proxy, never a panic.

use crate::http_client as http;
mod grpc;
mod wire;

use std::sync::Arc;

use bytes::Bytes;
use gyre_config::{ProxyKind, ProxyOptions};
use gyre_protocol::{Disconnect, ErrorCode, Protocol, ProtocolError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::node::{Node, unix_now};
use crate::policy::{
    ConnectDecision, Grant, PublishDecision, RefreshDecision, RpcDecision, SubscribeDecision,
};

type Outcome<T> = Result<T, ProtocolError>;

/// What a connection brings from the HTTP request that opened it.
#[derive(Debug, Default)]
pub(crate) struct ConnMeta {
    /// The request's headers (forwarded as configured in `http_headers`).
    pub headers: ::http::HeaderMap,
    /// The client's address, when the server knows it.
    pub remote: Option<std::net::SocketAddr>,
    /// Transport name (`websocket`, `http_stream`, `sse`, ...; "" reads as `websocket`).
    pub transport: &'static str,
    /// Session id of an emulated or unidirectional connection.
    pub session: Option<std::sync::Arc<str>>,
}

/// Who calls, for the common request fields.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub node: Arc<Node>,
    pub conn: Arc<ConnMeta>,
    pub client: Arc<str>,
    pub user: Arc<str>,
    pub protocol: Protocol,
    /// Connection meta from the token or the connect proxy.
    pub meta: Option<Arc<RawValue>>,
}

impl Caller {
    fn common(&self, options: &ProxyOptions) -> wire::Common<'_> {
        wire::Common {
            client: &self.client,
            transport: if self.conn.transport.is_empty() {
                "websocket"
            } else {
                self.conn.transport
            },
            protocol: match self.protocol {
                Protocol::Json => "json",
                Protocol::Protobuf => "protobuf",
            },
            encoding: if options.binary_encoding {
                "binary"
            } else {
                "json"
            },
        }
    }

    fn request<'a>(
        &'a self,
        options: &ProxyOptions,
        payload: wire::Payload,
    ) -> wire::ClientRequest<'a> {
        wire::ClientRequest {
            common: self.common(options),
            user: &self.user,
            meta: if options.include_connection_meta {
                self.meta.as_deref()
            } else {
                None
            },
            channel: None,
            token: None,
            method: None,
            payload,
        }
    }

    /// POSTs `request` to the proxy and decodes its reply.
    async fn call<Req: Serialize, Res: DeserializeOwned>(
        &self,
        label: &str,
        options: &ProxyOptions,
        request: &Req,
    ) -> Outcome<Res> {
        let result = async {
            let body =
                serde_json::to_vec(request).map_err(|e| http::CallError::Reply(e.to_string()))?;
            let reply = self
                .node
                .proxy
                .post(options, &self.conn.headers, body)
                .await?;
            serde_json::from_slice::<wire::Reply<Res>>(&reply)
                .map_err(|e| http::CallError::Reply(e.to_string()))
        }
        .await;
        match result {
            Ok(wire::Reply { error: Some(e), .. }) => {
                Err(ProtocolError::Reply(gyre_protocol::Error {
                    code: e.code,
                    message: e.message,
                    temporary: e.temporary,
                }))
            }
            Ok(wire::Reply {
                disconnect: Some(d),
                ..
            }) => Err(ProtocolError::Disconnect(Disconnect {
                code: d.code,
                reason: d.reason.into(),
            })),
            Ok(wire::Reply {
                result: Some(r), ..
            }) => Ok(r),
            Ok(_) => Err(self.failed(
                label,
                options,
                "reply has none of result, error, disconnect",
            )),
            Err(err) => Err(self.failed(label, options, &err.to_string())),
        }
    }

    fn failed(&self, label: &str, options: &ProxyOptions, why: &str) -> ProtocolError {
        tracing::warn!(client = %self.client, endpoint = %options.endpoint, "{label} proxy failed: {why}");
        ErrorCode::Internal.into()
    }

    fn decode(
        &self,
        label: &str,
        options: &ProxyOptions,
        raw: Option<&RawValue>,
        b64: &str,
    ) -> Outcome<Option<Bytes>> {
        wire::payload(raw, b64).map_err(|why| self.failed(label, options, &why))
    }
}

/// The proxy for `kind` under `name`, cloned so a call can outlive the borrow of the node.
pub(crate) fn options(node: &Node, kind: ProxyKind, name: &str) -> Option<Arc<ProxyOptions>> {
    node.config.proxy(kind, name).cloned().map(Arc::new)
}

fn expiry(at: i64) -> Option<i64> {
    (at > 0).then_some(at)
}

/// A subscription's expiry; one already past refuses the subscription (109).
fn unexpired(at: i64) -> Outcome<Option<i64>> {
    let expire_at = expiry(at);
    if expire_at.is_some_and(|at| at <= unix_now()) {
        return Err(ErrorCode::Expired.into());
    }
    Ok(expire_at)
}

/// Asks the connect proxy about a connection without a token.
pub(crate) async fn connect(
    caller: Caller,
    options: Arc<ProxyOptions>,
    req: &gyre_protocol::ConnectRequest,
) -> Outcome<ConnectDecision> {
    if grpc::is_grpc(&options) {
        return grpc::connect(caller, options, req).await;
    }
    let label = "connect";
    let request = wire::ConnectRequest {
        common: caller.common(&options),
        name: &req.name,
        version: &req.version,
        payload: wire::Payload::new(&req.data, options.binary_encoding),
        channels: req.subs.keys().map(String::as_str).collect(),
    };
    let r: wire::ConnectResult = caller.call(label, &options, &request).await?;
    let mut subs: Vec<Grant> = r
        .channels
        .iter()
        .map(|c| Grant {
            channel: c.clone(),
            ..Default::default()
        })
        .collect();
    for (channel, s) in &r.subs {
        subs.push(Grant {
            channel: channel.clone(),
            info: caller
                .decode(label, &options, s.info.as_deref(), &s.b64info)?
                .unwrap_or_default(),
            data: caller
                .decode(label, &options, s.data.as_deref(), &s.b64data)?
                .unwrap_or_default(),
            overrides: s.override_.to_override(),
        });
    }
    let decision = ConnectDecision {
        user: r.user,
        expire_at: expiry(r.expire_at),
        info: caller
            .decode(label, &options, r.info.as_deref(), &r.b64info)?
            .unwrap_or_default(),
        data: caller
            .decode(label, &options, r.data.as_deref(), &r.b64data)?
            .unwrap_or_default(),
        subs,
        meta: r.meta.map(Arc::from),
    };
    Ok(decision)
}

/// Asks the refresh proxy whether an expiring connection goes on.
pub(crate) async fn refresh(
    caller: Caller,
    options: Arc<ProxyOptions>,
) -> Outcome<Option<RefreshDecision>> {
    if grpc::is_grpc(&options) {
        return grpc::refresh(caller, options).await;
    }
    ask_refresh(caller, options, "refresh", None).await
}

/// Asks the sub_refresh proxy whether an expiring subscription goes on.
pub(crate) async fn sub_refresh(
    caller: Caller,
    options: Arc<ProxyOptions>,
    channel: &str,
) -> Outcome<Option<RefreshDecision>> {
    if grpc::is_grpc(&options) {
        return grpc::sub_refresh(caller, options, channel).await;
    }
    ask_refresh(caller, options, "sub_refresh", Some(channel)).await
}

/// One refresh-shaped call (connection or subscription): `None` when the backend says expired.
async fn ask_refresh(
    caller: Caller,
    options: Arc<ProxyOptions>,
    label: &str,
    channel: Option<&str>,
) -> Outcome<Option<RefreshDecision>> {
    let mut request = caller.request(&options, wire::Payload::default());
    request.channel = channel;
    let r: wire::RefreshResult = caller.call(label, &options, &request).await?;
    if r.expired {
        return Ok(None);
    }
    let info = caller.decode(label, &options, r.info.as_deref(), &r.b64info)?;
    Ok(Some(RefreshDecision {
        expire_at: expiry(r.expire_at),
        info,
    }))
}

/// Asks the subscribe proxy about a subscription without a token.
pub(crate) async fn subscribe(
    caller: Caller,
    options: Arc<ProxyOptions>,
    channel: String,
    token: String,
    data: Bytes,
) -> Outcome<SubscribeDecision> {
    if grpc::is_grpc(&options) {
        return grpc::subscribe(caller, options, channel, token, data).await;
    }
    let label = "subscribe";
    let mut request = caller.request(&options, wire::Payload::new(&data, options.binary_encoding));
    request.channel = Some(&channel);
    request.token = (!token.is_empty()).then_some(token.as_str());
    let r: wire::SubscribeResult = caller.call(label, &options, &request).await?;
    let expire_at = unexpired(r.expire_at)?;
    Ok(SubscribeDecision {
        info: caller
            .decode(label, &options, r.info.as_deref(), &r.b64info)?
            .unwrap_or_default(),
        data: caller
            .decode(label, &options, r.data.as_deref(), &r.b64data)?
            .unwrap_or_default(),
        expire_at,
        overrides: r.override_.to_override(),
    })
}

/// Asks the publish proxy about a client publication.
pub(crate) async fn publish(
    caller: Caller,
    options: Arc<ProxyOptions>,
    channel: String,
    data: Bytes,
) -> Outcome<PublishDecision> {
    if grpc::is_grpc(&options) {
        return grpc::publish(caller, options, channel, data).await;
    }
    let label = "publish";
    let mut request = caller.request(&options, wire::Payload::new(&data, options.binary_encoding));
    request.channel = Some(&channel);
    let r: wire::PublishResult = caller.call(label, &options, &request).await?;
    Ok(PublishDecision {
        data: caller.decode(label, &options, r.data.as_deref(), &r.b64data)?,
        skip_history: r.skip_history,
    })
}

/// Sends an RPC call to the RPC proxy.
pub(crate) async fn rpc(
    caller: Caller,
    options: Arc<ProxyOptions>,
    method: String,
    data: Bytes,
) -> Outcome<RpcDecision> {
    if grpc::is_grpc(&options) {
        return grpc::rpc(caller, options, method, data).await;
    }
    let label = "rpc";
    let mut request = caller.request(&options, wire::Payload::new(&data, options.binary_encoding));
    request.method = Some(&method);
    let r: wire::RpcResult = caller.call(label, &options, &request).await?;
    Ok(RpcDecision {
        data: caller
            .decode(label, &options, r.data.as_deref(), &r.b64data)?
            .unwrap_or_default(),
    })
}
