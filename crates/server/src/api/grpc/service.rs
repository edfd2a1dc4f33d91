//! The `CentrifugoApi` service: every method turns its protobuf request into the JSON body the
//! HTTP API takes, runs it through the same executor ([`crate::api::execute`]), and turns the
//! JSON result back into the protobuf response.

use std::sync::Arc;

use base64::Engine as _;
use gyre_config::ErrorMode;
use gyre_protocol::ErrorCode;
use serde_json::Value;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::pb;
use super::status::transport_status;
use crate::api::ApiError;
use crate::node::Node;

/// The service, holding the node the executor runs on.
pub(crate) struct Service {
    node: Arc<Node>,
    /// `authorization` metadata every call must carry (`None`: no key configured).
    expected_auth: Option<String>,
}

impl Service {
    /// A service answering from `node` with its `grpc_api` settings.
    pub(crate) fn new(node: Arc<Node>) -> Self {
        let key = &node.config.grpc_api.key;
        let expected_auth = (!key.is_empty()).then(|| format!("apikey {key}"));
        Service {
            node,
            expected_auth,
        }
    }

    fn authorize(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let Some(expected) = &self.expected_auth else {
            return Ok(());
        };
        let given = metadata
            .get("authorization")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if constant_time_eq(given, expected.as_bytes()) {
            Ok(())
        } else {
            Err(Status::unauthenticated("unauthenticated"))
        }
    }

    fn transport_errors(&self, metadata: &MetadataMap) -> bool {
        self.node.config.grpc_api.error_mode == ErrorMode::Transport
            || metadata
                .get("x-centrifugo-error-mode")
                .is_some_and(|v| v.as_bytes() == b"transport")
    }

    /// Runs `method` with `req` and decodes its result.
    async fn call<Req: Body, Res: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        mut req: Req,
    ) -> Result<Res, ApiError> {
        req.prepare()?;
        let mut body = serde_json::to_value(&req)
            .map_err(|e| ApiError::bad_request(&format!("bad request: {e}")))?;
        strip_nulls(&mut body);
        let body = serde_json::value::to_raw_value(&body).map_err(|_| internal())?;
        let result = crate::api::execute(&self.node, method, &body).await?;
        serde_json::from_str(result.get()).map_err(|err| {
            tracing::warn!("GRPC API {method}: result does not fit the response message: {err}");
            internal()
        })
    }

    /// One unary call: key check, execution, the answer in the configured error mode.
    async fn unary<Req: Body, Resp: Answer>(
        &self,
        method: &str,
        request: Request<Req>,
    ) -> Result<Response<Resp>, Status> {
        self.authorize(request.metadata())?;
        let transport = self.transport_errors(request.metadata());
        match self.call(method, request.into_inner()).await {
            Ok(result) => Ok(Response::new(Resp::answer(None, Some(result)))),
            Err(e) if transport => Err(transport_status(e.code, &e.message)),
            Err(e) => Ok(Response::new(Resp::answer(
                Some(pb::Error {
                    code: e.code,
                    message: e.message,
                }),
                None,
            ))),
        }
    }
}

fn internal() -> ApiError {
    ErrorCode::Internal.into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Removes `null` members: unset optional messages are absent from the executor's body.
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// A request message as the executor's body.
trait Body: serde::Serialize + Send + 'static {
    /// Moves payloads into the fields the executor reads (binary `data` travels as `b64data`).
    fn prepare(&mut self) -> Result<(), ApiError> {
        Ok(())
    }
}

/// Binary payloads go to the executor in base64, so any bytes pass unchanged.
fn to_b64(data: &mut Vec<u8>, b64: &mut String) {
    if !data.is_empty() && b64.is_empty() {
        *b64 = base64::engine::general_purpose::STANDARD.encode(&*data);
    }
    data.clear();
}

/// A payload the executor takes only as JSON: a base64 one is decoded into it.
fn from_b64(data: &mut Vec<u8>, b64: &mut String, field: &str) -> Result<(), ApiError> {
    if data.is_empty() && !b64.is_empty() {
        *data = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| ApiError::bad_request(&format!("bad request: invalid b64{field}")))?;
    }
    b64.clear();
    Ok(())
}

macro_rules! plain_body {
    ($($t:ty),* $(,)?) => { $(impl Body for $t {})* };
}

plain_body!(
    pb::UnsubscribeRequest,
    pb::DisconnectRequest,
    pb::PresenceRequest,
    pb::PresenceStatsRequest,
    pb::HistoryRequest,
    pb::HistoryRemoveRequest,
    pb::InfoRequest,
    pb::RefreshRequest,
    pb::ChannelsRequest,
    pb::MapRemoveRequest,
    pb::MapReadStateRequest,
    pb::MapReadStreamRequest,
    pb::MapStatsRequest,
    pb::MapClearRequest,
);

impl Body for pb::PublishRequest {
    fn prepare(&mut self) -> Result<(), ApiError> {
        to_b64(&mut self.data, &mut self.b64data);
        Ok(())
    }
}

impl Body for pb::BroadcastRequest {
    fn prepare(&mut self) -> Result<(), ApiError> {
        to_b64(&mut self.data, &mut self.b64data);
        Ok(())
    }
}

impl Body for pb::MapPublishRequest {
    fn prepare(&mut self) -> Result<(), ApiError> {
        to_b64(&mut self.data, &mut self.b64data);
        to_b64(&mut self.stream_data, &mut self.b64stream_data);
        Ok(())
    }
}

impl Body for pb::SharedPollPublishRequest {
    fn prepare(&mut self) -> Result<(), ApiError> {
        to_b64(&mut self.data, &mut self.b64data);
        Ok(())
    }
}

impl Body for pb::SubscribeRequest {
    fn prepare(&mut self) -> Result<(), ApiError> {
        from_b64(&mut self.info, &mut self.b64info, "info")?;
        from_b64(&mut self.data, &mut self.b64data, "data")
    }
}

fn prepare_some<T: Body>(request: &mut Option<T>) -> Result<(), ApiError> {
    request.as_mut().map_or(Ok(()), Body::prepare)
}

impl Body for pb::BatchRequest {
    fn prepare(&mut self) -> Result<(), ApiError> {
        for c in &mut self.commands {
            prepare_some(&mut c.publish)?;
            prepare_some(&mut c.broadcast)?;
            prepare_some(&mut c.subscribe)?;
            prepare_some(&mut c.map_publish)?;
            prepare_some(&mut c.shared_poll_publish)?;
        }
        Ok(())
    }
}

/// A `<Method>Response`: an error or a result.
trait Answer: Send + 'static {
    /// The `<Method>Result` message.
    type Result: serde::de::DeserializeOwned;
    /// The response holding `error` or `result`.
    fn answer(error: Option<pb::Error>, result: Option<Self::Result>) -> Self;
}

macro_rules! answers {
    ($($resp:ty => $res:ty),* $(,)?) => {
        $(impl Answer for $resp {
            type Result = $res;
            fn answer(error: Option<pb::Error>, result: Option<$res>) -> Self {
                Self { error, result }
            }
        })*
    };
}

answers!(
    pb::PublishResponse => pb::PublishResult,
    pb::BroadcastResponse => pb::BroadcastResult,
    pb::SubscribeResponse => pb::SubscribeResult,
    pb::UnsubscribeResponse => pb::UnsubscribeResult,
    pb::DisconnectResponse => pb::DisconnectResult,
    pb::PresenceResponse => pb::PresenceResult,
    pb::PresenceStatsResponse => pb::PresenceStatsResult,
    pb::HistoryResponse => pb::HistoryResult,
    pb::HistoryRemoveResponse => pb::HistoryRemoveResult,
    pb::InfoResponse => pb::InfoResult,
    pb::RefreshResponse => pb::RefreshResult,
    pb::ChannelsResponse => pb::ChannelsResult,
    pb::MapPublishResponse => pb::MapPublishResult,
    pb::MapRemoveResponse => pb::MapRemoveResult,
    pb::MapReadStateResponse => pb::MapReadStateResult,
    pb::MapReadStreamResponse => pb::MapReadStreamResult,
    pb::MapStatsResponse => pb::MapStatsResult,
    pb::MapClearResponse => pb::MapClearResult,
    pb::SharedPollPublishResponse => pb::SharedPollPublishResult,
);

impl Service {
    /// `batch`: the executor answers every command; a failed command is an error reply, never
    /// an error of the call.
    async fn batch_call(
        &self,
        request: Request<pb::BatchRequest>,
    ) -> Result<Response<pb::BatchResponse>, Status> {
        self.authorize(request.metadata())?;
        let transport = self.transport_errors(request.metadata());
        match self
            .call::<_, pb::BatchResponse>("batch", request.into_inner())
            .await
        {
            Ok(response) => Ok(Response::new(response)),
            Err(e) if transport => Err(transport_status(e.code, &e.message)),
            Err(e) => Ok(Response::new(pb::BatchResponse {
                replies: vec![pb::Reply {
                    error: Some(pb::Error {
                        code: e.code,
                        message: e.message,
                    }),
                    ..Default::default()
                }],
            })),
        }
    }
}

macro_rules! methods {
    ($($name:ident($req:ty) -> $resp:ty = $method:literal;)*) => {
        #[tonic::async_trait]
        impl pb::centrifugo_api_server::CentrifugoApi for Service {
            async fn batch(
                &self,
                request: Request<pb::BatchRequest>,
            ) -> Result<Response<pb::BatchResponse>, Status> {
                self.batch_call(request).await
            }
            $(async fn $name(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                self.unary($method, request).await
            })*
        }
    };
}

methods! {
    publish(pb::PublishRequest) -> pb::PublishResponse = "publish";
    broadcast(pb::BroadcastRequest) -> pb::BroadcastResponse = "broadcast";
    subscribe(pb::SubscribeRequest) -> pb::SubscribeResponse = "subscribe";
    unsubscribe(pb::UnsubscribeRequest) -> pb::UnsubscribeResponse = "unsubscribe";
    disconnect(pb::DisconnectRequest) -> pb::DisconnectResponse = "disconnect";
    presence(pb::PresenceRequest) -> pb::PresenceResponse = "presence";
    presence_stats(pb::PresenceStatsRequest) -> pb::PresenceStatsResponse = "presence_stats";
    history(pb::HistoryRequest) -> pb::HistoryResponse = "history";
    history_remove(pb::HistoryRemoveRequest) -> pb::HistoryRemoveResponse = "history_remove";
    info(pb::InfoRequest) -> pb::InfoResponse = "info";
    refresh(pb::RefreshRequest) -> pb::RefreshResponse = "refresh";
    channels(pb::ChannelsRequest) -> pb::ChannelsResponse = "channels";
    map_publish(pb::MapPublishRequest) -> pb::MapPublishResponse = "map_publish";
    map_remove(pb::MapRemoveRequest) -> pb::MapRemoveResponse = "map_remove";
    map_read_state(pb::MapReadStateRequest) -> pb::MapReadStateResponse = "map_read_state";
    map_read_stream(pb::MapReadStreamRequest) -> pb::MapReadStreamResponse = "map_read_stream";
    map_stats(pb::MapStatsRequest) -> pb::MapStatsResponse = "map_stats";
    map_clear(pb::MapClearRequest) -> pb::MapClearResponse = "map_clear";
    shared_poll_publish(pb::SharedPollPublishRequest) -> pb::SharedPollPublishResponse = "shared_poll_publish";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_are_removed_at_every_depth() {
        let mut v = serde_json::json!({"a": null, "b": {"c": null, "d": 1}, "e": [{"f": null}]});
        strip_nulls(&mut v);
        assert_eq!(v, serde_json::json!({"b": {"d": 1}, "e": [{}]}));
    }

    #[test]
    fn binary_publish_data_travels_as_base64() {
        let mut req = pb::PublishRequest {
            channel: "c".into(),
            data: vec![0, 255, 1],
            ..Default::default()
        };
        req.prepare().expect("prepares");
        let body = serde_json::to_value(&req).expect("serializes");
        assert_eq!(body["b64data"], "AP8B");
        assert!(body.get("data").is_none());
    }
}
