//! Keys written by clients (map publish and remove with permissions and `client_key`) and
//! the map_clients presence of subscribers.

use std::collections::HashMap;

use bytes::Bytes;
use gyre_config::MapClientKey;
use gyre_protocol::{ErrorCode, ProtocolError, PublishRequest, PublishResult};

use super::Outcome;
use crate::node::ServiceError;
use crate::node::maps::{MapChange, MapChannel};
use crate::session::Session;

fn service_error(err: ServiceError) -> ProtocolError {
    ProtocolError::Reply(gyre_protocol::Error {
        code: err.code,
        message: err.message,
        ..Default::default()
    })
}

impl Session {
    /// Adds (`joined`) or removes the client in the channel's map_clients presence channel,
    /// when the namespace names one.
    pub(super) async fn map_presence(
        &self,
        channel: &str,
        target: MapChannel<'_>,
        chan_info: &Bytes,
        joined: bool,
    ) {
        let prefix = &target.options.map_clients_presence_channel_prefix;
        if prefix.is_empty() {
            return;
        }
        let info = self.info(chan_info.clone());
        let data = if joined {
            serde_json::to_vec(&info)
                .map(Bytes::from)
                .unwrap_or_default()
        } else {
            Bytes::new()
        };
        let change = MapChange {
            key: self.handle.client.to_string(),
            data,
            removed: !joined,
            info: Some(info),
            ..Default::default()
        };
        let presence = format!("{prefix}{channel}");
        if joined {
            self.node.map_keepalive.hold(&presence, &self.handle.client);
        } else {
            self.node
                .map_keepalive
                .release(&presence, &self.handle.client);
        }
        if let Err(err) = self.node.map_change(&presence, change).await {
            tracing::debug!("map presence in {presence} failed: {}", err.message);
        }
    }

    /// Called when a channel is unsubscribed (or the session ends): forgets an unfinished
    /// map subscribe and removes the client from the map_clients presence channel.
    pub(in crate::session) async fn map_left(&mut self, channel: &str) {
        self.map_flows.remove(channel);
        let Some(state) = self.subs.get(channel) else {
            return;
        };
        let chan_info = state.chan_info.clone();
        let node = self.node.clone();
        if let Ok(target) = node.map_channel(channel) {
            self.map_presence(channel, target, &chan_info, false).await;
        }
    }

    /// A client's map publication or removal (publish with type 1).
    pub(in crate::session) async fn handle_map_publish(
        &mut self,
        req: PublishRequest,
    ) -> Outcome<PublishResult> {
        if req.channel.is_empty() {
            return Err(gyre_protocol::Disconnect::BAD_REQUEST.into());
        }
        if req.channel.len() > self.node.config.channel.max_length {
            return Err(ErrorCode::BadRequest.into());
        }
        let node = self.node.clone();
        let target = node.map_channel(&req.channel)?;
        let m = &target.options.map;
        let anonymous = self.user.is_empty();
        let subscribed = self.subs.contains_key(&req.channel);
        let (for_client, for_subscriber, for_anonymous) = if req.removed {
            (
                m.allow_remove_for_client,
                m.allow_remove_for_subscriber,
                m.allow_remove_for_anonymous,
            )
        } else {
            (
                m.allow_publish_for_client,
                m.allow_publish_for_subscriber,
                m.allow_publish_for_anonymous,
            )
        };
        let identified = !anonymous || for_anonymous;
        let allowed = (for_client && identified)
            || (for_subscriber && subscribed && identified)
            || node.config.client.insecure;
        if !allowed {
            return Err(ErrorCode::PermissionDenied.into());
        }
        let key = match m.client_key {
            MapClientKey::ClientId => self.handle.client.to_string(),
            MapClientKey::UserId if anonymous => {
                return Err(ErrorCode::PermissionDenied.into());
            }
            MapClientKey::UserId => self.user.to_string(),
            MapClientKey::Given | MapClientKey::Unknown(_) => req.key,
        };
        let chan_info = self
            .subs
            .get(&req.channel)
            .map(|s| s.chan_info.clone())
            .unwrap_or_default();
        let change = MapChange {
            key,
            data: req.data,
            removed: req.removed,
            info: Some(self.info(chan_info)),
            tags: HashMap::new(),
        };
        node.map_change(&req.channel, change)
            .await
            .map_err(service_error)?;
        Ok(PublishResult::default())
    }
}
