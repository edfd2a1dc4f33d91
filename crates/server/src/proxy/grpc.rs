//! GRPC proxies (`grpc://host:port` endpoints): the same events as over HTTP, as calls of
//! `centrifugal.centrifugo.proxy.CentrifugoProxy` (`proto/proxy.proto`), answered with the
//! same decisions. Payloads go as they are in `bytes` fields, or base64 in the `b64…` fields
//! with `binary_encoding`; in replies a non-empty `b64…` field wins over its `bytes` twin. A
//! reply's `disconnect` closes the connection, its `error` answers the command; a call that
//! fails (transport error, GRPC status, timeout) gives error 100 and a warning naming the
//! proxy. A reply without `result` means what it means to Centrifugo: no data (subscribe,
//! publish, RPC), expired (refresh, sub_refresh), a failed call (connect).

use std::future::Future;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use gyre_config::ProxyOptions;
use gyre_protocol::{Disconnect, ProtocolError};
use serde_json::value::RawValue;

use super::{Caller, Outcome, expiry, unexpired};
use crate::grpc_client::{ProxyClient, pb, request};
use crate::policy::{
    ConnectDecision, Grant, PublishDecision, RefreshDecision, RpcDecision, SubscribeDecision,
};

/// Whether the proxy is called over GRPC.
pub(super) fn is_grpc(options: &ProxyOptions) -> bool {
    options.is_grpc()
}

/// A reply message: its result, error and disconnect.
trait Reply {
    type Result;
    fn split(
        self,
    ) -> (
        Option<Self::Result>,
        Option<pb::Error>,
        Option<pb::Disconnect>,
    );
}

macro_rules! reply {
    ($($response:ty => $result:ty),* $(,)?) => {$(
        impl Reply for $response {
            type Result = $result;
            fn split(self) -> (Option<$result>, Option<pb::Error>, Option<pb::Disconnect>) {
                (self.result, self.error, self.disconnect)
            }
        }
    )*};
}

reply!(
    pb::ConnectResponse => pb::ConnectResult,
    pb::RefreshResponse => pb::RefreshResult,
    pb::SubscribeResponse => pb::SubscribeResult,
    pb::PublishResponse => pb::PublishResult,
    pb::RpcResponse => pb::RpcResult,
    pb::SubRefreshResponse => pb::SubRefreshResult,
);

/// The request fields every event has: client, transport, protocol, encoding.
struct Common {
    client: String,
    transport: String,
    protocol: String,
    encoding: String,
}

impl Caller {
    fn grpc_common(&self, options: &ProxyOptions) -> Common {
        let c = self.common(options);
        Common {
            client: c.client.to_owned(),
            transport: c.transport.to_owned(),
            protocol: c.protocol.to_owned(),
            encoding: c.encoding.to_owned(),
        }
    }

    /// The connection's meta as JSON bytes, when the proxy includes it.
    fn grpc_meta(&self, options: &ProxyOptions) -> Bytes {
        match (&self.meta, options.include_connection_meta) {
            (Some(meta), true) => Bytes::copy_from_slice(meta.get().as_bytes()),
            _ => Bytes::new(),
        }
    }

    /// Sends one call with the proxy's metadata and timeout and splits the reply.
    async fn grpc_call<Req, Res, F>(
        &self,
        label: &str,
        options: &ProxyOptions,
        message: Req,
        send: impl FnOnce(ProxyClient, tonic::Request<Req>) -> F,
    ) -> Outcome<Option<Res::Result>>
    where
        Res: Reply,
        F: Future<Output = Result<tonic::Response<Res>, tonic::Status>>,
    {
        let client = self
            .node
            .grpc_proxy
            .client(options)
            .map_err(|err| self.failed(label, options, &err.to_string()))?;
        let call = send(client, request(options, &self.conn.headers, message));
        let reply = if options.timeout.0.is_zero() {
            call.await
        } else {
            match tokio::time::timeout(options.timeout.0, call).await {
                Ok(reply) => reply,
                Err(_) => return Err(self.failed(label, options, "timed out")),
            }
        };
        let reply = reply.map_err(|status| {
            let why = format!("GRPC status {:?}: {}", status.code(), status.message());
            self.failed(label, options, &why)
        })?;
        match reply.into_inner().split() {
            (_, _, Some(d)) => {
                let code = u16::try_from(d.code).map_err(|_| {
                    self.failed(label, options, &format!("disconnect code {}", d.code))
                })?;
                Err(ProtocolError::Disconnect(Disconnect {
                    code,
                    reason: d.reason.into(),
                }))
            }
            (_, Some(e), None) => Err(ProtocolError::Reply(gyre_protocol::Error {
                code: e.code,
                message: e.message,
                temporary: e.temporary,
            })),
            (result, None, None) => Ok(result),
        }
    }

    /// A reply payload: the decoded `b64` when set, `bytes` otherwise (empty when neither).
    fn grpc_payload(
        &self,
        label: &str,
        options: &ProxyOptions,
        bytes: Bytes,
        b64: &str,
    ) -> Outcome<Bytes> {
        if b64.is_empty() {
            return Ok(bytes);
        }
        STANDARD
            .decode(b64)
            .map(Bytes::from)
            .map_err(|err| self.failed(label, options, &format!("invalid base64: {err}")))
    }
}

/// A request payload: (`data`, `b64data`).
fn payload(data: &Bytes, binary: bool) -> (Bytes, String) {
    if binary {
        (Bytes::new(), STANDARD.encode(data))
    } else {
        (data.clone(), String::new())
    }
}

fn overrides(o: Option<pb::SubscribeOptionOverride>) -> gyre_auth::ChannelOverride {
    let o = o.unwrap_or_default();
    let v = |b: Option<pb::BoolValue>| b.map(|b| b.value);
    gyre_auth::ChannelOverride {
        presence: v(o.presence),
        join_leave: v(o.join_leave),
        force_push_join_leave: v(o.force_push_join_leave),
        force_recovery: v(o.force_recovery),
        force_positioning: v(o.force_positioning),
    }
}

/// The connect proxy over GRPC.
pub(super) async fn connect(
    caller: Caller,
    options: Arc<ProxyOptions>,
    req: &gyre_protocol::ConnectRequest,
) -> Outcome<ConnectDecision> {
    let label = "connect";
    let c = caller.grpc_common(&options);
    let (data, b64data) = payload(&req.data, options.binary_encoding);
    let message = pb::ConnectRequest {
        client: c.client,
        transport: c.transport,
        protocol: c.protocol,
        encoding: c.encoding,
        data,
        b64data,
        name: req.name.clone(),
        version: req.version.clone(),
        channels: req.subs.keys().cloned().collect(),
    };
    let r = caller
        .grpc_call(label, &options, message, |mut client, request| async move {
            client.connect(request).await
        })
        .await?
        .ok_or_else(|| caller.failed(label, &options, "reply has no result"))?;
    let mut subs: Vec<Grant> = r
        .channels
        .into_iter()
        .map(|channel| Grant {
            channel,
            ..Default::default()
        })
        .collect();
    let mut granted: Vec<_> = r.subs.into_iter().collect();
    granted.sort_by(|a, b| a.0.cmp(&b.0));
    for (channel, s) in granted {
        subs.push(Grant {
            channel,
            info: caller.grpc_payload(label, &options, s.info, &s.b64info)?,
            data: caller.grpc_payload(label, &options, s.data, &s.b64data)?,
            overrides: overrides(s.r#override),
        });
    }
    let meta = if r.meta.is_empty() {
        None
    } else {
        let text = String::from_utf8(r.meta.to_vec())
            .map_err(|_| caller.failed(label, &options, "meta is not UTF-8"))?;
        let raw = RawValue::from_string(text)
            .map_err(|err| caller.failed(label, &options, &format!("meta is not JSON: {err}")))?;
        Some(Arc::from(raw))
    };
    Ok(ConnectDecision {
        user: r.user,
        expire_at: expiry(r.expire_at),
        info: caller.grpc_payload(label, &options, r.info, &r.b64info)?,
        data: caller.grpc_payload(label, &options, r.data, &r.b64data)?,
        subs,
        meta,
    })
}

/// The refresh proxy over GRPC: `None` when the backend says expired (or gives no result).
pub(super) async fn refresh(
    caller: Caller,
    options: Arc<ProxyOptions>,
) -> Outcome<Option<RefreshDecision>> {
    let label = "refresh";
    let c = caller.grpc_common(&options);
    let message = pb::RefreshRequest {
        client: c.client,
        transport: c.transport,
        protocol: c.protocol,
        encoding: c.encoding,
        user: caller.user.to_string(),
        meta: caller.grpc_meta(&options),
        ..Default::default()
    };
    let r = caller
        .grpc_call(label, &options, message, |mut client, request| async move {
            client.refresh(request).await
        })
        .await?;
    let Some(r) = r.filter(|r| !r.expired) else {
        return Ok(None);
    };
    refreshed(&caller, label, &options, r.expire_at, r.info, &r.b64info)
}

/// The sub_refresh proxy over GRPC: `None` when the backend says expired (or gives no result).
pub(super) async fn sub_refresh(
    caller: Caller,
    options: Arc<ProxyOptions>,
    channel: &str,
) -> Outcome<Option<RefreshDecision>> {
    let label = "sub_refresh";
    let c = caller.grpc_common(&options);
    let message = pb::SubRefreshRequest {
        client: c.client,
        transport: c.transport,
        protocol: c.protocol,
        encoding: c.encoding,
        user: caller.user.to_string(),
        channel: channel.to_owned(),
        meta: caller.grpc_meta(&options),
        ..Default::default()
    };
    let r = caller
        .grpc_call(label, &options, message, |mut client, request| async move {
            client.sub_refresh(request).await
        })
        .await?;
    let Some(r) = r.filter(|r| !r.expired) else {
        return Ok(None);
    };
    refreshed(&caller, label, &options, r.expire_at, r.info, &r.b64info)
}

fn refreshed(
    caller: &Caller,
    label: &str,
    options: &ProxyOptions,
    expire_at: i64,
    info: Bytes,
    b64info: &str,
) -> Outcome<Option<RefreshDecision>> {
    let info = caller.grpc_payload(label, options, info, b64info)?;
    Ok(Some(RefreshDecision {
        expire_at: expiry(expire_at),
        info: (!info.is_empty()).then_some(info),
    }))
}

/// The subscribe proxy over GRPC.
pub(super) async fn subscribe(
    caller: Caller,
    options: Arc<ProxyOptions>,
    channel: String,
    token: String,
    data: Bytes,
) -> Outcome<SubscribeDecision> {
    let label = "subscribe";
    let c = caller.grpc_common(&options);
    let (data, b64data) = payload(&data, options.binary_encoding);
    let message = pb::SubscribeRequest {
        client: c.client,
        transport: c.transport,
        protocol: c.protocol,
        encoding: c.encoding,
        user: caller.user.to_string(),
        channel,
        token,
        meta: caller.grpc_meta(&options),
        data,
        b64data,
        ..Default::default()
    };
    let r = caller
        .grpc_call(label, &options, message, |mut client, request| async move {
            client.subscribe(request).await
        })
        .await?
        .unwrap_or_default();
    Ok(SubscribeDecision {
        info: caller.grpc_payload(label, &options, r.info, &r.b64info)?,
        data: caller.grpc_payload(label, &options, r.data, &r.b64data)?,
        expire_at: unexpired(r.expire_at)?,
        overrides: overrides(r.r#override),
    })
}

/// The publish proxy over GRPC.
pub(super) async fn publish(
    caller: Caller,
    options: Arc<ProxyOptions>,
    channel: String,
    data: Bytes,
) -> Outcome<PublishDecision> {
    let label = "publish";
    let c = caller.grpc_common(&options);
    let (data, b64data) = payload(&data, options.binary_encoding);
    let message = pb::PublishRequest {
        client: c.client,
        transport: c.transport,
        protocol: c.protocol,
        encoding: c.encoding,
        user: caller.user.to_string(),
        channel,
        data,
        b64data,
        meta: caller.grpc_meta(&options),
        ..Default::default()
    };
    let Some(r) = caller
        .grpc_call(label, &options, message, |mut client, request| async move {
            client.publish(request).await
        })
        .await?
    else {
        return Ok(PublishDecision::default());
    };
    let data = caller.grpc_payload(label, &options, r.data, &r.b64data)?;
    Ok(PublishDecision {
        data: (!data.is_empty()).then_some(data),
        skip_history: r.skip_history,
    })
}

/// The RPC proxy over GRPC.
pub(super) async fn rpc(
    caller: Caller,
    options: Arc<ProxyOptions>,
    method: String,
    data: Bytes,
) -> Outcome<RpcDecision> {
    let label = "rpc";
    let c = caller.grpc_common(&options);
    let (data, b64data) = payload(&data, options.binary_encoding);
    let message = pb::RpcRequest {
        client: c.client,
        transport: c.transport,
        protocol: c.protocol,
        encoding: c.encoding,
        user: caller.user.to_string(),
        method,
        data,
        b64data,
        meta: caller.grpc_meta(&options),
        ..Default::default()
    };
    let r = caller
        .grpc_call(label, &options, message, |mut client, request| async move {
            client.rpc(request).await
        })
        .await?
        .unwrap_or_default();
    Ok(RpcDecision {
        data: caller.grpc_payload(label, &options, r.data, &r.b64data)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_payloads() {
        let data = Bytes::from_static(b"{\"a\":1}");
        assert_eq!(payload(&data, false), (data.clone(), String::new()));
        assert_eq!(
            payload(&data, true),
            (Bytes::new(), "eyJhIjoxfQ==".to_owned())
        );
        let o = overrides(Some(pb::SubscribeOptionOverride {
            presence: Some(pb::BoolValue { value: false }),
            ..Default::default()
        }));
        assert_eq!((o.presence, o.join_leave), (Some(false), None));
    }
}
