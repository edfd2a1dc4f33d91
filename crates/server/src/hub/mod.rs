//! The local registry: connected sessions by client and user, and subscribers by channel.
//!
//! Broadcasting encodes each push once per subscriber shape ([`shape::ShapeKey`]: protocol,
//! bare or in a reply, delta form) and hands a clone of the same bytes to every subscriber's
//! queue. It never awaits.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use gyre_protocol::{ClientInfo, Disconnect, Join, Leave, Protocol, Publication, Push};
use parking_lot::{Mutex, RwLock};

use self::shape::{DeltaForm, ShapeCache, ShapeKey};
use crate::delta;
use crate::outbound::SessionHandle;
use crate::sharded::Sharded;
use crate::tags_filter::{FilterInterner, TagsFilter, Verdicts};

const SHARDS: usize = 64;

/// One shard of the channel table.
type Shard = HashMap<Arc<str>, ChannelSubscribers>;

/// One subscriber of a channel.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The session.
    pub handle: Arc<SessionHandle>,
    /// Fossil delta negotiated.
    pub delta: bool,
    /// The client holds a full payload to apply the next patch to.
    pub has_delta_base: bool,
    /// The client wants join/leave pushes.
    pub join_leave: bool,
    /// Only publications whose tags match are delivered (the others still advance the
    /// subscriber's position, as upstream).
    pub filter: Option<Arc<TagsFilter>>,
    /// While subscribing: live publications held back until the subscribe reply is built
    /// (see [`Hub::go_live`]), with their delta mark and stream epoch.
    pub buffer: Option<Vec<(Publication, bool, String)>>,
    /// Offset of the last publication of the stream the client has (positioned
    /// subscriptions): older ones are not delivered again, a gap unsubscribes with
    /// insufficient state.
    pub position: Option<u64>,
    /// Epoch of the stream at `position` ("" when unknown): a publication of another epoch
    /// (the stream restarted) is insufficient state, whatever its offset.
    pub epoch: String,
    /// While buffering: the node may have missed publications (its delivery from the
    /// engine was interrupted), so a positioned subscription cannot go live silently.
    pub lost: bool,
    /// Told its state is insufficient: it gets no more publications (the session
    /// unsubscribes it; a resubscribe replaces this entry).
    pub stale: bool,
}

impl Subscriber {
    /// A subscriber that buffers live publications until [`Hub::go_live`].
    pub fn buffering(handle: Arc<SessionHandle>, delta: bool, join_leave: bool) -> Self {
        Self {
            handle,
            delta,
            has_delta_base: false,
            join_leave,
            filter: None,
            buffer: Some(Vec::new()),
            position: None,
            epoch: String::new(),
            lost: false,
            stale: false,
        }
    }
}

impl Subscriber {
    /// Whether the subscriber's tags filter lets the publication through. A delta subscriber
    /// that skips one no longer holds the payload the next patch is made against, so it gets
    /// the next delivered publication in full.
    fn passes(&mut self, publication: &Publication, verdicts: &mut Verdicts) -> bool {
        let passes = self
            .filter
            .as_ref()
            .is_none_or(|f| verdicts.passes(f, &publication.tags));
        if !passes {
            self.has_delta_base = false;
        }
        passes
    }
}

/// Where a positioned subscriber's stream continues.
enum Continuity {
    /// Deliver it.
    Next,
    /// Already delivered (or in the subscribe reply).
    Old,
    /// Publications are missing before it.
    Gap,
}

/// Where a publication at `offset` of stream `pub_epoch` falls for a subscriber at `position`
/// of stream `epoch` (epochs compared when both are known).
fn continuity(position: &mut Option<u64>, epoch: &str, offset: u64, pub_epoch: &str) -> Continuity {
    match position {
        Some(at) if offset > 0 => {
            if !epoch.is_empty() && !pub_epoch.is_empty() && epoch != pub_epoch {
                Continuity::Gap
            } else if offset <= *at {
                Continuity::Old
            } else if offset == *at + 1 {
                *at = offset;
                Continuity::Next
            } else {
                Continuity::Gap
            }
        }
        _ => Continuity::Next,
    }
}

#[derive(Debug, Default)]
struct ChannelSubscribers {
    subscribers: HashMap<Arc<str>, Subscriber>,
    /// Payload of the last publication, the base of the next delta patch.
    previous_data: Option<Bytes>,
}

/// Counts reported by `info`.
#[derive(Debug, Clone, Copy, Default)]
pub struct HubCounts {
    /// Connected sessions.
    pub clients: usize,
    /// Distinct users.
    pub users: usize,
    /// Channels with at least one subscriber.
    pub channels: usize,
    /// Subscriptions in all.
    pub subscriptions: usize,
    /// Deliveries skipped because a subscriber's tags filter did not match, since start.
    pub tags_filter_dropped: u64,
}

/// The local registry of sessions and subscriptions.
#[derive(Debug)]
pub struct Hub {
    channels: Sharded<Shard>,
    sessions: RwLock<HashMap<Arc<str>, Arc<SessionHandle>>>,
    users: RwLock<HashMap<Arc<str>, HashSet<Arc<str>>>>,
    tags_filter_dropped: AtomicU64,
    filters: FilterInterner,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            channels: Sharded::new(SHARDS),
            sessions: RwLock::default(),
            users: RwLock::default(),
            tags_filter_dropped: AtomicU64::new(0),
            filters: FilterInterner::default(),
        }
    }
}

impl Hub {
    fn shard(&self, channel: &str) -> &Mutex<Shard> {
        self.channels.get(channel)
    }

    /// Subscribers' tags filters, shared between identical ones.
    pub fn filters(&self) -> &FilterInterner {
        &self.filters
    }

    /// Registers a connected session.
    pub fn add_session(&self, handle: &Arc<SessionHandle>) {
        self.sessions
            .write()
            .insert(handle.client.clone(), handle.clone());
        self.users
            .write()
            .entry(handle.user())
            .or_default()
            .insert(handle.client.clone());
    }

    /// Forgets a session.
    pub fn remove_session(&self, handle: &SessionHandle) {
        self.sessions.write().remove(&handle.client);
        let user = handle.user();
        let mut users = self.users.write();
        if let Some(clients) = users.get_mut(&user) {
            clients.remove(&handle.client);
            if clients.is_empty() {
                users.remove(&user);
            }
        }
    }

    /// Sessions of a user.
    pub fn user_sessions(&self, user: &str) -> Vec<Arc<SessionHandle>> {
        let users = self.users.read();
        let sessions = self.sessions.read();
        users
            .get(user)
            .map(|clients| {
                clients
                    .iter()
                    .filter_map(|c| sessions.get(c).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Number of connections of a user.
    pub fn user_connection_count(&self, user: &str) -> usize {
        self.users.read().get(user).map_or(0, HashSet::len)
    }

    /// A session by client id.
    pub fn session(&self, client: &str) -> Option<Arc<SessionHandle>> {
        self.sessions.read().get(client).cloned()
    }

    /// Adds a subscriber (usually [`Subscriber::buffering`], switched live by
    /// [`Hub::go_live`] once the subscribe reply is built).
    pub fn subscribe(&self, channel: &str, subscriber: Subscriber) {
        let mut shard = self.shard(channel).lock();
        let entry = shard.entry(Arc::from(channel)).or_default();
        entry
            .subscribers
            .insert(subscriber.handle.client.clone(), subscriber);
    }

    /// Removes a subscriber; returns true when it was subscribed.
    pub fn unsubscribe(&self, channel: &str, client: &str) -> bool {
        let mut shard = self.shard(channel).lock();
        let Some(entry) = shard.get_mut(channel) else {
            return false;
        };
        let removed = entry.subscribers.remove(client).is_some();
        if entry.subscribers.is_empty() {
            shard.remove(channel);
        }
        removed
    }

    /// Whether the channel has local subscribers.
    pub fn has_subscribers(&self, channel: &str) -> bool {
        self.shard(channel).lock().contains_key(channel)
    }

    /// Channels with their local subscriber counts.
    pub fn channels(&self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for shard in self.channels.iter() {
            for (name, entry) in shard.lock().iter() {
                out.push((name.to_string(), entry.subscribers.len()));
            }
        }
        out
    }

    /// Counts for `info`.
    pub fn counts(&self) -> HubCounts {
        let mut counts = HubCounts {
            clients: self.sessions.read().len(),
            users: self.users.read().len(),
            tags_filter_dropped: self.tags_filter_dropped.load(Ordering::Relaxed),
            ..Default::default()
        };
        for shard in self.channels.iter() {
            let shard = shard.lock();
            counts.channels += shard.len();
            counts.subscriptions += shard.values().map(|e| e.subscribers.len()).sum::<usize>();
        }
        counts
    }

    /// Delivers a publication to every local subscriber of `channel`, encoding it once per
    /// subscriber shape. `delta_marked` allows fossil patches for delta subscribers; `epoch`
    /// is the epoch of the stream the publication's offset belongs to ("" without one).
    pub fn broadcast_publication(
        &self,
        channel: &str,
        publication: &Publication,
        delta_marked: bool,
        epoch: &str,
    ) {
        let mut shard = self.shard(channel).lock();
        let Some(entry) = shard.get_mut(channel) else {
            return;
        };
        // A keyed publication (map entry) patches against its key's previous value, which
        // the broker hands over in `prev_data` (never sent to clients).
        let base = if publication.key.is_empty() {
            entry.previous_data.as_ref()
        } else {
            Some(&publication.prev_data).filter(|prev| !prev.is_empty())
        };
        let patch = match (base, delta_marked) {
            (Some(prev), true) => delta::patch(prev, &publication.data),
            _ => None,
        };
        let stripped;
        let publication = if publication.prev_data.is_empty() {
            publication
        } else {
            stripped = Publication {
                prev_data: Bytes::new(),
                ..publication.clone()
            };
            &stripped
        };
        let mut encoded = ShapeCache::default();
        let push = |publication: Publication| Push {
            channel: channel.to_owned(),
            publication: Some(publication),
            ..Default::default()
        };
        let mut failed: Vec<Arc<SessionHandle>> = Vec::new();
        let mut dropped = 0;
        let mut verdicts = Verdicts::default();
        for sub in entry.subscribers.values_mut() {
            if let Some(buffer) = sub.buffer.as_mut() {
                buffer.push((publication.clone(), delta_marked, epoch.to_owned()));
                continue;
            }
            if sub.stale {
                continue;
            }
            match continuity(&mut sub.position, &sub.epoch, publication.offset, epoch) {
                Continuity::Next => {}
                Continuity::Old => continue,
                Continuity::Gap => {
                    sub.position = None;
                    sub.stale = true;
                    sub.handle.send(crate::outbound::Outbound::Control(Box::new(
                        crate::outbound::Control::InsufficientState(channel.to_owned()),
                    )));
                    continue;
                }
            }
            if !sub.passes(publication, &mut verdicts) {
                dropped += 1;
                continue;
            }
            let protocol = sub.handle.protocol;
            let unit = if !sub.delta {
                let key = ShapeKey::of(&sub.handle, DeltaForm::Plain);
                encoded.get(key, || push(publication.clone()))
            } else {
                match (&patch, sub.has_delta_base) {
                    (Some(patch), true) => {
                        let key = ShapeKey::of(&sub.handle, DeltaForm::Patch);
                        encoded.get(key, || {
                            push(delta_publication(publication, patch, protocol))
                        })
                    }
                    _ => {
                        let key = ShapeKey::of(&sub.handle, DeltaForm::Full);
                        encoded.get(key, || push(full_for_delta(publication, protocol)))
                    }
                }
            };
            match unit {
                Some(unit) => {
                    sub.has_delta_base = true;
                    sub.handle.send_unit(unit);
                }
                None => failed.push(sub.handle.clone()),
            }
        }
        entry.previous_data = Some(publication.data.clone());
        drop(shard);
        self.count_dropped(dropped);
        for handle in failed {
            handle.disconnect(Disconnect::INAPPROPRIATE_PROTOCOL);
        }
    }

    /// Switches a buffering subscriber live: under the channel's lock, queues the buffered
    /// publications the client does not have yet (after `position`, an offset and epoch, for
    /// a positioned subscription) and delivers directly from then on. Returns false when
    /// buffered publications show a gap after `position`, or delivery was interrupted while
    /// buffering (see [`Hub::stream_lost`]): the caller reports insufficient state. The
    /// subscribe reply must be written before anything queued here, which the session
    /// guarantees by writing replies ahead of its queue.
    pub fn go_live(
        &self,
        channel: &str,
        client: &str,
        position: Option<(u64, &str)>,
        has_delta_base: bool,
    ) -> bool {
        let mut shard = self.shard(channel).lock();
        let Some(sub) = shard
            .get_mut(channel)
            .and_then(|e| e.subscribers.get_mut(client))
        else {
            return true;
        };
        let buffered = sub.buffer.take().unwrap_or_default();
        sub.position = position.map(|(offset, _)| offset);
        sub.epoch = position
            .map(|(_, epoch)| epoch.to_owned())
            .unwrap_or_default();
        sub.has_delta_base = has_delta_base;
        if std::mem::take(&mut sub.lost) && sub.position.is_some() {
            sub.position = None;
            sub.stale = true;
            return false;
        }
        let protocol = sub.handle.protocol;
        let mut dropped = 0;
        for (publication, _, epoch) in buffered {
            match continuity(&mut sub.position, &sub.epoch, publication.offset, &epoch) {
                Continuity::Next => {}
                Continuity::Old => continue,
                Continuity::Gap => {
                    sub.position = None;
                    sub.stale = true;
                    self.count_dropped(dropped);
                    return false;
                }
            }
            if !sub.passes(&publication, &mut Verdicts::default()) {
                dropped += 1;
                continue;
            }
            let (publication, form) = if sub.delta {
                sub.has_delta_base = true;
                (full_for_delta(&publication, protocol), DeltaForm::Full)
            } else {
                (publication, DeltaForm::Plain)
            };
            let push = Push {
                channel: channel.to_owned(),
                publication: Some(publication),
                ..Default::default()
            };
            if let Some(unit) = shape::encode_push(ShapeKey::of(&sub.handle, form), push) {
                sub.handle.send_unit(unit);
            }
        }
        self.count_dropped(dropped);
        true
    }

    fn count_dropped(&self, dropped: u64) {
        if dropped > 0 {
            self.tags_filter_dropped
                .fetch_add(dropped, Ordering::Relaxed);
        }
    }

    /// The engine's delivery of `channel` was interrupted (publications may be missing):
    /// positioned subscribers are told their state is insufficient (they resubscribe and
    /// recover, or learn they could not), subscribers still subscribing are marked so they do
    /// not go live silently. Others (no position to keep) just go on.
    pub fn stream_lost(&self, channel: &str) {
        let mut shard = self.shard(channel).lock();
        let Some(entry) = shard.get_mut(channel) else {
            return;
        };
        for sub in entry.subscribers.values_mut() {
            if sub.buffer.is_some() {
                sub.lost = true;
            } else if sub.position.take().is_some() {
                sub.stale = true;
                sub.handle.send(crate::outbound::Outbound::Control(Box::new(
                    crate::outbound::Control::InsufficientState(channel.to_owned()),
                )));
            }
        }
    }

    /// Delivers a join (`joined == true`) or leave push to subscribers that asked for them.
    pub fn broadcast_join_leave(&self, channel: &str, info: &ClientInfo, joined: bool) {
        let shard = self.shard(channel).lock();
        let Some(entry) = shard.get(channel) else {
            return;
        };
        let mut encoded = ShapeCache::default();
        for sub in entry.subscribers.values().filter(|s| s.join_leave) {
            let key = ShapeKey::of(&sub.handle, DeltaForm::Plain);
            let unit = encoded.get(key, || {
                let mut push = Push {
                    channel: channel.to_owned(),
                    ..Default::default()
                };
                if joined {
                    push.join = Some(Join {
                        info: Some(info.clone()),
                    });
                } else {
                    push.leave = Some(Leave {
                        info: Some(info.clone()),
                    });
                }
                push
            });
            if let Some(unit) = unit {
                sub.handle.send_unit(unit);
            }
        }
    }
}

/// The publication a delta subscriber gets in full (JSON: payload as a JSON string).
pub fn full_for_delta(publication: &Publication, protocol: Protocol) -> Publication {
    let mut p = publication.clone();
    p.delta = false;
    if protocol == Protocol::Json {
        p.data = if publication.removed && publication.data.is_empty() {
            // A removal has no payload; the SDK still parses one.
            delta::json_string(b"null")
        } else {
            delta::json_string(&publication.data)
        };
    }
    p
}

/// The publication carrying a fossil patch instead of the payload.
pub fn delta_publication(
    publication: &Publication,
    patch: &Bytes,
    protocol: Protocol,
) -> Publication {
    let mut p = publication.clone();
    p.delta = true;
    p.data = match protocol {
        Protocol::Json => delta::json_string(patch),
        Protocol::Protobuf => patch.clone(),
    };
    p
}

mod shape;
#[cfg(test)]
mod tests;
