//! Shared poll subscriptions: connections track keys of a channel, and one poller per channel
//! and node asks the application backend (the namespace's `shared_poll_refresh` proxy) about
//! all of them every refresh interval, in batches, then sends each changed item to the
//! connections tracking its key.
//!
//! - [`SharedPoll`] is the node's registry: a channel's state exists while some connection
//!   tracks one of its keys (plus `channel_shutdown_delay`), and its poller ends with it.
//! - Versioned channels take the backend's versions; versionless ones compare contents and
//!   number changes themselves from one node-wide counter, so versions only grow within the
//!   node's epoch.
//! - Each tracker has the version it last got: an item goes to trackers that have less, so
//!   a key tracked by several connections is fetched once and never delivered twice.
//! - [`signature`] verifies the signed key batches of track requests.

mod poller;
pub(crate) mod signature;
mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use gyre_config::{Config, ProxyOptions, SharedPollMode, SharedPollOptions};
use gyre_protocol::{ErrorCode, Protocol, Publication, Push, Reply};
use parking_lot::Mutex;
use serde::Deserialize as _;
use tokio_util::sync::CancellationToken;

use crate::http_client::HttpClient;
use crate::outbound::SessionHandle;

/// `SubscribeRequest.type` / `SubscribeResult.type` of shared poll subscriptions.
pub(crate) const SUBSCRIPTION_TYPE: i32 = 4;
/// `SubRefreshRequest.type` of a track request.
pub(crate) const TRACK: i32 = 1;
/// `SubRefreshRequest.type` of an untrack request.
pub(crate) const UNTRACK: i32 = 2;

/// How long a connection to a poll backend stays open unused. Short: pollers call often
/// while keys are tracked, and a backend should not keep connections of a node whose channels
/// ended (nor one opened for a call another connection served).
const POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(3);

/// Backend calls at once over all channels when `shared_poll.concurrency_limit` is 0.
const DEFAULT_CONCURRENCY: usize = 64;

/// The control command that carries a `shared_poll_publish` to the other nodes.
pub(crate) const PUBLISH_COMMAND: &str = "shared_poll_publish";

/// The node's shared poll channels (a handle: clones share them).
#[derive(Debug, Clone)]
pub(crate) struct SharedPoll {
    registry: Arc<Registry>,
}

/// What the pollers share with the registry.
#[derive(Debug)]
struct Registry {
    channels: Mutex<HashMap<String, Arc<Channel>>>,
    /// The proxies namespaces refer to by `shared_poll.proxy_name` ("" for the default).
    proxies: HashMap<String, Arc<ProxyOptions>>,
    http: HttpClient,
    /// Limits the backend calls in flight (`shared_poll.concurrency_limit`).
    slots: tokio::sync::Semaphore,
    /// This node's epoch of versionless channels (their versions come from `versions`).
    epoch: String,
    versions: AtomicU64,
    shutdown: CancellationToken,
}

/// One polled channel.
#[derive(Debug)]
struct Channel {
    name: String,
    options: SharedPollOptions,
    proxy: Arc<ProxyOptions>,
    state: Mutex<State>,
    /// Wakes the poller: keys never polled were tracked, or the last key was untracked.
    wake: tokio::sync::Notify,
    /// The last backend call failed (warned once until a call succeeds again).
    failing: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    keys: HashMap<String, Key>,
    clients: HashMap<Arc<str>, Tracker>,
    /// Versioned channels: the backend's epoch.
    epoch: String,
    /// The poller has ended; a track must make a new channel.
    closed: bool,
}

#[derive(Debug, Default)]
struct Key {
    /// The version of `data` (0: not fetched yet).
    version: u64,
    data: Bytes,
    /// The backend was asked about it at least once.
    asked: bool,
    /// Tracking connections and what each has.
    trackers: HashMap<Arc<str>, Has>,
}

/// One connection's tracking of a key.
#[derive(Debug, Default, Clone, Copy)]
struct Has {
    /// The version it has (0: none).
    version: u64,
    /// When its signature expires (unix seconds, 0: never).
    expire_at: i64,
}

#[derive(Debug)]
struct Tracker {
    handle: Arc<SessionHandle>,
    keys: HashSet<String>,
}

/// A key a connection asks to track, with the version it has and when the signature that
/// allows it expires (unix seconds, 0: never).
#[derive(Debug, Clone)]
pub(crate) struct TrackItem {
    pub key: String,
    pub version: u64,
    pub expire_at: i64,
}

impl SharedPoll {
    /// An empty registry with its own connection pool.
    pub(crate) fn new(config: &Config, shutdown: CancellationToken) -> Self {
        let limit = match config.shared_poll.concurrency_limit {
            0 => DEFAULT_CONCURRENCY,
            n => n,
        };
        let epoch: String = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        SharedPoll {
            registry: Arc::new(Registry {
                channels: Mutex::new(HashMap::new()),
                proxies: config
                    .proxies
                    .iter()
                    .map(|p| p.name.as_str())
                    .chain([""])
                    .filter_map(|name| {
                        let p = config.shared_poll_proxy(name)?;
                        Some((name.to_owned(), Arc::new(p.clone())))
                    })
                    .collect(),
                http: HttpClient::with_idle_timeout(POOL_IDLE),
                slots: tokio::sync::Semaphore::new(limit),
                epoch,
                versions: AtomicU64::new(0),
                shutdown,
            }),
        }
    }

    /// The epoch a subscribe result carries: the node's for versionless channels, the
    /// backend's (once it sent one) for versioned ones.
    pub(crate) fn epoch(&self, channel: &str, mode: &SharedPollMode) -> String {
        if *mode != SharedPollMode::Versioned {
            return self.registry.epoch.clone();
        }
        self.registry
            .channels
            .lock()
            .get(channel)
            .map(|c| c.state.lock().epoch.clone())
            .unwrap_or_default()
    }

    /// Tracks `items` for a connection, then untracks the keys in `untrack`, starting the
    /// channel's poller if needed; returns the items the node already has newer data of.
    pub(crate) fn track(
        &self,
        channel: &str,
        options: &SharedPollOptions,
        handle: &Arc<SessionHandle>,
        items: &[TrackItem],
        untrack: &[String],
    ) -> Result<Vec<Publication>, ErrorCode> {
        let name = match options.proxy_name.as_str() {
            gyre_config::DEFAULT_PROXY_NAME => "",
            name => name,
        };
        let Some(proxy) = self.registry.proxies.get(name) else {
            tracing::warn!(%channel, proxy = %options.proxy_name, "shared poll proxy not configured");
            return Err(ErrorCode::Internal);
        };
        loop {
            let (ch, created) = self.channel(channel, options, proxy);
            let mut state = ch.state.lock();
            if state.closed {
                continue; // its poller just ended: make a new one
            }
            let result = state.track(options.max_keys(), handle, items, untrack);
            let cold = items
                .iter()
                .any(|i| state.keys.get(&i.key).is_some_and(|k| !k.asked));
            let empty = state.keys.is_empty();
            drop(state);
            if created {
                tokio::spawn(poller::run(self.registry.clone(), ch.clone()));
            }
            if cold || empty {
                ch.wake.notify_one();
            }
            return result;
        }
    }

    /// The channel's state, created (second value true) when it does not exist.
    fn channel(
        &self,
        channel: &str,
        options: &SharedPollOptions,
        proxy: &Arc<ProxyOptions>,
    ) -> (Arc<Channel>, bool) {
        let mut channels = self.registry.channels.lock();
        if let Some(ch) = channels.get(channel)
            && !ch.state.lock().closed
        {
            return (ch.clone(), false);
        }
        let ch = Arc::new(Channel {
            name: channel.to_owned(),
            options: options.clone(),
            proxy: proxy.clone(),
            state: Mutex::new(State::default()),
            wake: tokio::sync::Notify::new(),
            failing: std::sync::atomic::AtomicBool::new(false),
        });
        channels.insert(channel.to_owned(), ch.clone());
        (ch, true)
    }

    /// Stops tracking `keys` for a connection (all its keys when `keys` is `None`).
    pub(crate) fn untrack(&self, channel: &str, client: &str, keys: Option<&[String]>) {
        let Some(ch) = self.registry.channels.lock().get(channel).cloned() else {
            return;
        };
        let empty = {
            let mut state = ch.state.lock();
            match keys {
                Some(keys) => state.untrack(client, keys.iter().map(String::as_str)),
                None => {
                    let all: Vec<String> = state
                        .clients
                        .get(client)
                        .map(|t| t.keys.iter().cloned().collect())
                        .unwrap_or_default();
                    state.untrack(client, all.iter().map(String::as_str));
                }
            }
            state.keys.is_empty()
        };
        if empty {
            ch.wake.notify_one();
        }
    }

    /// A publication from the server API: the new version of a tracked key goes to its
    /// trackers now (an untracked key or an older version is ignored).
    pub(crate) fn publish(&self, channel: &str, key: &str, version: u64, data: Bytes) {
        let Some(ch) = self.registry.channels.lock().get(channel).cloned() else {
            return;
        };
        let deliveries = {
            let mut state = ch.state.lock();
            let Some(entry) = state.keys.get_mut(key) else {
                return;
            };
            if version <= entry.version {
                return;
            }
            entry.version = version;
            entry.data = data.clone();
            state.deliveries(key, version)
        };
        let publication = Publication {
            key: key.to_owned(),
            data,
            version,
            ..Default::default()
        };
        send(&ch.name, &publication, &deliveries);
    }
}

/// A `shared_poll_publish` as sent between nodes.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct RemotePublish {
    pub channel: String,
    pub key: String,
    pub version: u64,
    /// The payload, base64.
    pub b64data: String,
}

impl RemotePublish {
    /// The command body for a publication.
    pub(crate) fn body(channel: &str, key: &str, version: u64, data: &[u8]) -> serde_json::Value {
        use base64::Engine as _;
        serde_json::json!({
            "channel": channel, "key": key, "version": version,
            "b64data": base64::engine::general_purpose::STANDARD.encode(data),
        })
    }
}

/// Applies a `shared_poll_publish` another node received (`registry` is `None` before the node
/// is built).
pub(crate) fn apply_remote(
    registry: Option<&SharedPoll>,
    body: &serde_json::Value,
) -> Result<(), String> {
    use base64::Engine as _;
    let req = RemotePublish::deserialize(body).map_err(|e| format!("bad request: {e}"))?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(&req.b64data)
        .map_err(|_| "bad request: invalid b64data".to_owned())?;
    if let Some(registry) = registry {
        registry.publish(&req.channel, &req.key, req.version, Bytes::from(data));
    }
    Ok(())
}

impl State {
    fn track(
        &mut self,
        max_keys: usize,
        handle: &Arc<SessionHandle>,
        items: &[TrackItem],
        untrack: &[String],
    ) -> Result<Vec<Publication>, ErrorCode> {
        let client = &handle.client;
        let current: HashSet<&str> = self
            .clients
            .get(client)
            .map(|t| t.keys.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let untracked: HashSet<&str> = untrack.iter().map(String::as_str).collect();
        let mut after: HashSet<&str> = current.difference(&untracked).copied().collect();
        after.extend(
            items
                .iter()
                .map(|i| i.key.as_str())
                .filter(|k| !untracked.contains(k)),
        );
        if after.len() > max_keys {
            return Err(ErrorCode::LimitExceeded);
        }
        let tracker = self
            .clients
            .entry(client.clone())
            .or_insert_with(|| Tracker {
                handle: handle.clone(),
                keys: HashSet::new(),
            });
        let mut cached = Vec::new();
        for item in items {
            tracker.keys.insert(item.key.clone());
            let entry = self.keys.entry(item.key.clone()).or_default();
            let has = entry.trackers.entry(client.clone()).or_default();
            // The version the connection says it has (a re-track may lower it).
            has.version = item.version;
            has.expire_at = item.expire_at;
            if entry.version > has.version {
                has.version = entry.version;
                cached.push(Publication {
                    key: item.key.clone(),
                    data: entry.data.clone(),
                    version: entry.version,
                    ..Default::default()
                });
            }
        }
        self.untrack(client, untrack.iter().map(String::as_str));
        cached.retain(|p| !untracked.contains(p.key.as_str()));
        Ok(cached)
    }

    fn untrack<'a>(&mut self, client: &str, keys: impl Iterator<Item = &'a str>) {
        let Some(tracker) = self.clients.get_mut(client) else {
            return;
        };
        for key in keys {
            if !tracker.keys.remove(key) {
                continue;
            }
            if let Some(entry) = self.keys.get_mut(key) {
                entry.trackers.remove(client);
                if entry.trackers.is_empty() {
                    self.keys.remove(key);
                }
            }
        }
        if tracker.keys.is_empty() {
            self.clients.remove(client);
        }
    }

    /// The trackers of `key` that have less than `version`, now marked as having it.
    fn deliveries(&mut self, key: &str, version: u64) -> Vec<Arc<SessionHandle>> {
        let Some(entry) = self.keys.get_mut(key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (client, has) in &mut entry.trackers {
            if has.version < version {
                has.version = version;
                if let Some(t) = self.clients.get(client) {
                    out.push(t.handle.clone());
                }
            }
        }
        out
    }

    /// Stops the trackings whose signature expired before `deadline` (unix seconds).
    fn expire(&mut self, deadline: i64) {
        let mut expired = Vec::new();
        for (key, entry) in &self.keys {
            for (client, has) in &entry.trackers {
                if has.expire_at > 0 && has.expire_at < deadline {
                    expired.push((client.clone(), key.clone()));
                }
            }
        }
        for (client, key) in expired {
            self.untrack(&client, std::iter::once(key.as_str()));
        }
    }

    /// Drops a removed key and returns all its trackers.
    fn remove(&mut self, key: &str) -> Vec<Arc<SessionHandle>> {
        let Some(entry) = self.keys.remove(key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for client in entry.trackers.keys() {
            if let Some(t) = self.clients.get_mut(client) {
                t.keys.remove(key);
                out.push(t.handle.clone());
                if t.keys.is_empty() {
                    self.clients.remove(client);
                }
            }
        }
        out
    }
}

/// Sends a publication of `channel` to connections, encoded once per protocol.
fn send(channel: &str, publication: &Publication, to: &[Arc<SessionHandle>]) {
    if to.is_empty() {
        return;
    }
    let reply = Reply {
        push: Some(Push {
            channel: channel.to_owned(),
            publication: Some(publication.clone()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut encoded: [Option<Bytes>; 2] = [None, None];
    for handle in to {
        let slot = match handle.protocol {
            Protocol::Json => 0,
            Protocol::Protobuf => 1,
        };
        if encoded[slot].is_none() {
            match gyre_protocol::codec::encode(handle.protocol, &reply) {
                Ok(unit) => encoded[slot] = Some(unit),
                Err(err) => {
                    tracing::debug!(%channel, key = %publication.key, "can't encode shared poll item: {err}");
                    continue;
                }
            }
        }
        if let Some(unit) = &encoded[slot] {
            handle.send_unit(unit.clone());
        }
    }
}

/// The registry's versionless counter: a new version, higher than every earlier one.
fn next_version(versions: &AtomicU64) -> u64 {
    versions.fetch_add(1, Ordering::Relaxed) + 1
}

#[cfg(test)]
mod tests;
