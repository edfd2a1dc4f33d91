//! A channel's poller: every refresh interval (and soon after keys nobody asked about yet are
//! tracked) it asks the backend about the channel's keys, `refresh_batch_size` at a time, and
//! sends what changed to the trackers. It ends `channel_shutdown_delay` after the last key is
//! untracked, or at shutdown. A backend that fails or answers garbage loses that batch (with a
//! warning when the channel's calls start failing); the other batches and channels go on.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use gyre_config::SharedPollMode;
use gyre_protocol::Publication;
use tokio::time::Instant;

use super::{Channel, Registry, next_version, send, wire};
use crate::outbound::{Control, Outbound, SessionHandle};

/// Runs the poller of `ch` until it has no keys left or the node shuts down.
pub(super) async fn run(registry: Arc<Registry>, ch: Arc<Channel>) {
    let interval = ch
        .options
        .refresh_interval
        .0
        .max(std::time::Duration::from_millis(1));
    let mut next = Instant::now() + interval;
    loop {
        let full = tokio::select! {
            () = registry.shutdown.cancelled() => return,
            () = tokio::time::sleep_until(next) => true,
            () = ch.wake.notified() => false,
        };
        if ch.state.lock().keys.is_empty() {
            tokio::select! {
                () = registry.shutdown.cancelled() => return,
                () = tokio::time::sleep(ch.options.channel_shutdown_delay.0) => {}
            }
            if close_if_empty(&registry, &ch) {
                tracing::debug!(channel = %ch.name, "shared poll channel stopped");
                return;
            }
            continue;
        }
        if full {
            next = Instant::now() + interval;
            // Keys whose signature expired (and was not renewed by a new track) are dropped.
            let extra = ch.options.track_expired_extra_delay().as_secs() as i64;
            ch.state.lock().expire(crate::unix_now() - extra);
        }
        for batch in batches(&ch, full) {
            poll(&registry, &ch, batch).await;
        }
    }
}

/// Ends the channel if nobody tracks a key of it any more.
fn close_if_empty(registry: &Registry, ch: &Arc<Channel>) -> bool {
    let mut channels = registry.channels.lock();
    let mut state = ch.state.lock();
    if !state.keys.is_empty() {
        return false;
    }
    state.closed = true;
    if channels.get(&ch.name).is_some_and(|c| Arc::ptr_eq(c, ch)) {
        channels.remove(&ch.name);
    }
    true
}

/// The keys to ask about (all, or only those never asked about), sorted, in batches, with
/// the versions the node has (none in versionless mode).
fn batches(ch: &Channel, full: bool) -> Vec<Vec<(String, u64)>> {
    let versioned = ch.options.mode == SharedPollMode::Versioned;
    let mut keys: Vec<(String, u64)> = {
        let mut state = ch.state.lock();
        state
            .keys
            .iter_mut()
            .filter(|(_, k)| full || !k.asked)
            .map(|(key, k)| {
                k.asked = true;
                (key.clone(), if versioned { k.version } else { 0 })
            })
            .collect()
    };
    keys.sort_unstable();
    let size = ch.options.batch_size();
    let mut out = Vec::with_capacity(keys.len().div_ceil(size));
    while !keys.is_empty() {
        let rest = keys.split_off(keys.len().min(size));
        out.push(std::mem::replace(&mut keys, rest));
    }
    out
}

/// One backend call for a batch, then the fan-out of its answer.
async fn poll(registry: &Registry, ch: &Channel, batch: Vec<(String, u64)>) {
    let request = wire::Request {
        channel: &ch.name,
        items: batch
            .iter()
            .map(|(key, version)| wire::Item {
                key,
                version: *version,
            })
            .collect(),
    };
    let result = async {
        let body = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
        let _slot = registry.slots.acquire().await.map_err(|e| e.to_string())?;
        let reply = registry
            .http
            .post(&ch.proxy, &http::HeaderMap::new(), body)
            .await
            .map_err(|e| e.to_string())?;
        let response: wire::Response =
            serde_json::from_slice(&reply).map_err(|e| format!("bad reply: {e}"))?;
        match response {
            wire::Response { error: Some(e), .. } => {
                Err(format!("backend error {}: {}", e.code, e.message))
            }
            wire::Response {
                result: Some(r), ..
            } => Ok(r),
            _ => Err("reply has neither result nor error".to_owned()),
        }
    }
    .await;
    match result {
        Ok(result) => {
            if ch.failing.swap(false, Ordering::Relaxed) {
                tracing::info!(channel = %ch.name, "shared_poll_refresh proxy answers again");
            }
            apply(registry, ch, result);
        }
        // Warned once per failing period, not once per batch and interval.
        Err(why) if !ch.failing.swap(true, Ordering::Relaxed) => tracing::warn!(
            channel = %ch.name,
            endpoint = %ch.proxy.endpoint,
            keys = batch.len(),
            "shared_poll_refresh proxy failed: {why}"
        ),
        Err(why) => tracing::debug!(channel = %ch.name, "shared_poll_refresh proxy failed: {why}"),
    }
}

/// A publication and the connections it goes to, decided under the channel's lock and sent
/// after it.
type Change = (Publication, Vec<Arc<SessionHandle>>);

/// Applies a backend answer: new versions (or, versionless, new contents) update the keys and
/// go to their trackers; removals go to every tracker and end the key.
pub(super) fn apply(registry: &Registry, ch: &Channel, result: wire::ResultBody) {
    let versioned = ch.options.mode == SharedPollMode::Versioned;
    let mut changes: Vec<Change> = Vec::new();
    let mut resubscribe = Vec::new();
    {
        let mut state = ch.state.lock();
        if versioned && result.epoch != state.epoch {
            // The backend's versions started over: every tracker subscribes again.
            state.epoch = result.epoch.clone();
            for key in state.keys.values_mut() {
                key.version = 0;
                key.data = bytes::Bytes::new();
            }
            resubscribe = state.clients.values().map(|t| t.handle.clone()).collect();
        }
        for item in &result.items {
            if !state.keys.contains_key(&item.key) {
                continue;
            }
            if item.removed {
                let to = state.remove(&item.key);
                let publication = Publication {
                    key: item.key.clone(),
                    removed: true,
                    ..Default::default()
                };
                changes.push((publication, to));
                continue;
            }
            let data = match item.payload() {
                Ok(data) => data,
                Err(why) => {
                    tracing::warn!(channel = %ch.name, "shared_poll_refresh proxy: {why}");
                    continue;
                }
            };
            let Some(entry) = state.keys.get_mut(&item.key) else {
                continue;
            };
            let version = if !versioned && item.version == 0 {
                if entry.version > 0 && entry.data == data {
                    continue;
                }
                next_version(&registry.versions)
            } else if item.version > entry.version {
                item.version
            } else {
                continue;
            };
            entry.version = version;
            entry.data = data.clone();
            let to = state.deliveries(&item.key, version);
            let publication = Publication {
                key: item.key.clone(),
                data,
                version,
                ..Default::default()
            };
            changes.push((publication, to));
        }
    }
    for handle in resubscribe {
        handle.send(Outbound::Control(Box::new(Control::InsufficientState(
            ch.name.clone(),
        ))));
    }
    for (publication, to) in changes {
        send(&ch.name, &publication, &to);
    }
}
