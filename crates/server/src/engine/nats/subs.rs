//! Channel subscriptions: one NATS subscription per channel with local subscribers, read by
//! one task that hands its messages to the node in order.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use gyre_protocol::{ErrorCode, Publication};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::wire::{self, Incoming};
use super::*;

/// A channel this node receives.
#[derive(Debug)]
pub(super) struct ChannelSub {
    /// Tells apart successive subscriptions of one channel.
    id: u64,
    /// `true` once the server confirmed the subscription; the sender is dropped when it
    /// failed.
    ready: watch::Receiver<bool>,
    /// Stops the reader, which drops (and so unsubscribes) the NATS subscription.
    stop: CancellationToken,
}

/// What a reader task reads.
#[derive(Debug)]
pub(super) enum Reader {
    /// The control subjects.
    Control,
    /// This node's sync subject.
    Sync,
    /// A channel's subject (or, with wildcards, subjects).
    Channel(String),
}

impl NatsEngine {
    /// Reads `sub` until shutdown.
    pub(super) fn spawn_reader(&self, sub: async_nats::Subscriber, reader: Reader) {
        self.spawn_reader_until(sub, reader, self.shutdown.clone());
    }

    /// Reads `sub` until `stop`.
    fn spawn_reader_until(
        &self,
        mut sub: async_nats::Subscriber,
        reader: Reader,
        stop: CancellationToken,
    ) {
        let Some(engine) = self.me.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    message = sub.next() => match message {
                        Some(message) => engine.on_message(&reader, &message),
                        None => break,
                    },
                }
            }
        });
    }

    /// Handles one message (on its subscription's task).
    fn on_message(&self, reader: &Reader, message: &async_nats::Message) {
        match reader {
            Reader::Control => self.events.control(&message.payload),
            Reader::Sync => {
                if let Some(seq) = std::str::from_utf8(&message.payload)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    self.sync.arrived(seq);
                }
            }
            Reader::Channel(channel) => self.deliver(channel, message),
        }
    }

    /// Hands a channel message to the node: to the subscribers of `channel` (the
    /// subscription's channel, a pattern with wildcards), naming the publication's own
    /// channel when it differs.
    fn deliver(&self, channel: &str, message: &async_nats::Message) {
        let concrete = message
            .subject
            .as_str()
            .strip_prefix(self.channel_prefix.as_str())
            .unwrap_or_default();
        let named = if concrete == channel { "" } else { concrete };
        if self.raw.is_some() {
            let publication = Publication {
                data: message.payload.clone(),
                channel: named.to_owned(),
                ..Default::default()
            };
            self.events.publication(channel, &publication, false, "");
            return;
        }
        match wire::decode(&message.payload) {
            Some(Incoming::Publication(mut publication, delta)) => {
                publication.offset = 0;
                publication.channel = named.to_owned();
                self.events.publication(channel, &publication, delta, "");
            }
            // Joins and leaves belong to concrete channels only.
            Some(Incoming::JoinLeave(info, joined)) if named.is_empty() => {
                self.events.join_leave(channel, &info, joined);
            }
            Some(Incoming::JoinLeave(..)) => {}
            None => tracing::debug!("undecodable message on {}", message.subject),
        }
    }

    /// Makes this node receive `channel`; resolves once the server confirmed it.
    pub(super) async fn subscribe_channel(&self, channel: &str) -> Result<(), EngineError> {
        if has_wildcards(channel) && !self.allow_wildcards {
            return Err(EngineError::refused(
                ErrorCode::BadRequest,
                "wildcard channels are not allowed",
            ));
        }
        let wait = if self.connected() {
            CONFIRM_WAIT_UP
        } else {
            CONFIRM_WAIT_DOWN
        };
        let created = {
            let mut subs = self.subs.lock();
            match subs.get(channel) {
                Some(existing) => Err(existing.ready.clone()),
                None => {
                    let (tx, ready) = watch::channel(false);
                    let id = self.sync.next.fetch_add(1, Ordering::Relaxed);
                    let stop = self.shutdown.child_token();
                    subs.insert(
                        channel.to_owned(),
                        ChannelSub {
                            id,
                            ready,
                            stop: stop.clone(),
                        },
                    );
                    Ok((tx, id, stop))
                }
            }
        };
        match created {
            Ok((tx, id, stop)) => match self.open(channel, stop, wait).await {
                Ok(()) => {
                    let _ = tx.send(true);
                    Ok(())
                }
                Err(e) => {
                    let mut subs = self.subs.lock();
                    if subs.get(channel).is_some_and(|s| s.id == id)
                        && let Some(sub) = subs.remove(channel)
                    {
                        sub.stop.cancel();
                    }
                    Err(e)
                }
            },
            Err(mut ready) => wait_ready(&mut ready, wait).await,
        }
    }

    /// Subscribes the channel's subject, starts its reader and waits for the server.
    async fn open(
        &self,
        channel: &str,
        stop: CancellationToken,
        wait: Duration,
    ) -> Result<(), EngineError> {
        let sub = self
            .client
            .subscribe(self.channel_subject(channel))
            .await
            .map_err(err)?;
        self.spawn_reader_until(sub, Reader::Channel(channel.to_owned()), stop);
        self.confirm(wait).await
    }

    /// Stops receiving `channel` unless it has local subscribers again.
    pub(super) fn unsubscribe_channel(&self, channel: &str) {
        let mut subs = self.subs.lock();
        // A subscriber that arrived meanwhile is in the hub already (it joins the hub before
        // asking the broker), so it keeps the subscription.
        if self.events.has_subscribers(channel) {
            return;
        }
        if let Some(sub) = subs.remove(channel) {
            sub.stop.cancel();
        }
    }
}

/// Waits until a subscription another request opens is confirmed, at most `wait`.
async fn wait_ready(ready: &mut watch::Receiver<bool>, wait: Duration) -> Result<(), EngineError> {
    match tokio::time::timeout(wait, ready.wait_for(|r| *r)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(EngineError::new("nats subscribe failed")),
        Err(_) => Err(EngineError::new("nats is not connected")),
    }
}
