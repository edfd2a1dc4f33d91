//! A session's shared poll subscriptions: subscribing (no stream, no hub: the node's
//! [`crate::shared_poll`] registry delivers), and the track/untrack `sub_refresh` requests with
//! their signed key batches.

use std::collections::HashMap;

use gyre_config::ResolvedChannel;
use gyre_protocol::{
    ErrorCode, ProtocolError, SubRefreshRequest, SubRefreshResult, SubscribeRequest,
    SubscribeResult,
};

use super::{Session, SubState, expiry_ttl};
use crate::node::unix_now;
use crate::policy;
use crate::shared_poll::signature::{self, Refusal};
use crate::shared_poll::{SUBSCRIPTION_TYPE, TRACK, TrackItem, UNTRACK};

type Outcome<T> = Result<T, ProtocolError>;

impl Session {
    /// Subscribes to a shared poll channel: the namespace rules or a subscription token decide;
    /// the result carries the channel's epoch. Keys come with track requests.
    pub(super) fn subscribe_shared_poll(
        &mut self,
        req: &SubscribeRequest,
        resolved: &ResolvedChannel<'_>,
    ) -> Outcome<Option<SubscribeResult>> {
        let o = resolved.options;
        if req.kind != SUBSCRIPTION_TYPE {
            return Err(ErrorCode::BadRequest.into());
        }
        if req.token.is_empty() && o.proxy.subscribe_proxy_enabled {
            // The subscribe proxy is not asked about shared poll channels (warned at start-up).
            return Err(ErrorCode::NotAvailable.into());
        }
        let now = unix_now();
        let decision = policy::subscribe(
            &self.node,
            self.subject(),
            &req.channel,
            resolved,
            &req.token,
            now,
        )?;
        let (expires, ttl) = expiry_ttl(decision.expire_at, now).ok_or(ErrorCode::Expired)?;
        self.subs.insert(
            req.channel.clone(),
            SubState {
                chan_info: decision.info,
                expire_at: decision.expire_at,
                shared_poll: true,
                ..Default::default()
            },
        );
        Ok(Some(SubscribeResult {
            kind: SUBSCRIPTION_TYPE,
            epoch: self
                .node
                .shared_poll
                .epoch(&req.channel, &o.shared_poll.mode),
            expires,
            ttl,
            data: decision.data,
            ..Default::default()
        }))
    }

    /// A `sub_refresh` of type track (1) or untrack (2) on a shared poll subscription.
    pub(super) fn handle_shared_poll_refresh(
        &mut self,
        req: SubRefreshRequest,
    ) -> Outcome<SubRefreshResult> {
        if !self.subs.get(&req.channel).is_some_and(|s| s.shared_poll) {
            return Err(ErrorCode::PermissionDenied.into());
        }
        match req.kind {
            TRACK => self.track(req),
            UNTRACK if !req.untrack.is_empty() => {
                self.node.shared_poll.untrack(
                    &req.channel,
                    &self.handle.client,
                    Some(&req.untrack),
                );
                Ok(SubRefreshResult::default())
            }
            _ => Err(ErrorCode::BadRequest.into()),
        }
    }

    /// Verifies every signed batch (one failure refuses the request: 103, or 109 when the
    /// signature expired), then tracks the keys (a key in several batches: the last wins) and
    /// answers with the data the node already has and the earliest signature expiry.
    fn track(&mut self, req: SubRefreshRequest) -> Outcome<SubRefreshResult> {
        if req.track.is_empty() {
            return Err(ErrorCode::BadRequest.into());
        }
        let node = self.node.clone();
        let resolved = node.channel(&req.channel)?;
        let options = &resolved.options.shared_poll;
        let sp = &node.config.shared_poll;
        let keys = signature::Keys {
            current: sp.hmac_secret_key.clone(),
            previous: sp.hmac_previous_secret_key.clone(),
            previous_valid_until: sp.hmac_previous_secret_key_valid_until,
        };
        let now = unix_now();
        let mut earliest = 0i64;
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut items: Vec<TrackItem> = Vec::new();
        for batch in &req.track {
            let signed: Vec<&str> = batch.items.iter().map(|i| i.key.as_str()).collect();
            if signed.is_empty() || signed.iter().any(|k| k.is_empty()) {
                return Err(ErrorCode::BadRequest.into());
            }
            let expire_at = match signature::verify(
                &keys,
                &req.channel,
                &self.user,
                &signed,
                &batch.signature,
                now,
            ) {
                Ok(expiry) => expiry,
                Err(Refusal::Invalid) => {
                    tracing::debug!(client = %self.handle.client, channel = %req.channel, "invalid track signature");
                    return Err(ErrorCode::PermissionDenied.into());
                }
                Err(Refusal::Expired) => return Err(ErrorCode::TokenExpired.into()),
            };
            if expire_at > 0 && (earliest == 0 || expire_at < earliest) {
                earliest = expire_at;
            }
            for item in &batch.items {
                let track = TrackItem {
                    key: item.key.clone(),
                    version: item.version,
                    expire_at,
                };
                match index.get(item.key.as_str()) {
                    Some(&i) => items[i] = track,
                    None => {
                        index.insert(&item.key, items.len());
                        items.push(track);
                    }
                }
            }
        }
        let cached =
            node.shared_poll
                .track(&req.channel, options, &self.handle, &items, &req.untrack)?;
        Ok(SubRefreshResult {
            expires: earliest > 0,
            ttl: (earliest - now).clamp(0, i64::from(u32::MAX)) as u32,
            items: cached,
        })
    }
}
