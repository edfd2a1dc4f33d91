//! The `shared_poll_publish` API method: the application pushes a new version of a key of a
//! shared poll channel to its trackers on every node without waiting for the next poll.

use base64::Engine as _;
use bytes::Bytes;
use gyre_config::SubscriptionType;
use gyre_protocol::ErrorCode;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiResult, raw};
use crate::node::Node;
use crate::node::cluster::ControlCommand;
use crate::shared_poll::{PUBLISH_COMMAND, RemotePublish};

/// `shared_poll_publish`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SharedPollPublishRequest {
    /// Channel.
    pub channel: String,
    /// Key.
    pub key: String,
    /// JSON payload.
    #[serde(with = "gyre_protocol::raw")]
    pub data: Bytes,
    /// Base64 binary payload.
    pub b64data: String,
    /// The key's new version (required, above the one trackers have).
    pub version: u64,
    /// The backend's epoch (parsed; publications are compared by version only).
    pub epoch: String,
}

/// Publishes a new version of a key. 107 without channel, key
/// or version or outside a shared poll namespace, 102 for an unknown namespace, 108 when the
/// namespace does not enable `publish_enabled`.
pub(crate) async fn shared_poll_publish(node: &Node, req: SharedPollPublishRequest) -> ApiResult {
    if req.channel.is_empty() || req.key.is_empty() || req.version == 0 {
        return Err(ApiError::bad_request(
            "bad request: channel, key and version are required",
        ));
    }
    let resolved = node.channel(&req.channel)?;
    let o = resolved.options;
    if o.subscription_type != SubscriptionType::SharedPoll {
        return Err(ApiError::bad_request(
            "bad request: not a shared_poll channel",
        ));
    }
    if !o.shared_poll.publish_enabled {
        return Err(ErrorCode::NotAvailable.into());
    }
    let data = if req.b64data.is_empty() {
        req.data
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(&req.b64data)
            .map(Bytes::from)
            .map_err(|_| ApiError::bad_request("bad request: invalid b64data"))?
    };
    let body = RemotePublish::body(&req.channel, &req.key, req.version, &data);
    node.shared_poll
        .publish(&req.channel, &req.key, req.version, data);
    let command = ControlCommand {
        method: PUBLISH_COMMAND.to_owned(),
        body,
    };
    node.send_command(&command).await.map_err(|err| {
        tracing::warn!("shared_poll_publish not sent to other nodes: {err}");
        ApiError::from(ErrorCode::Internal)
    })?;
    raw(&json!({}))
}
