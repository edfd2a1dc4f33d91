//! The NATS broker (`broker.type: nats`): many nodes sharing a NATS server for delivery and
//! node-to-node control, as Centrifugo's NATS broker does.
//!
//! - Delivery is at most once: a publication goes out on the subject
//!   `<prefix>.client.<channel>` and reaches the nodes subscribed to it at that moment. There
//!   are no streams: publishing to a channel with history succeeds without a position, and
//!   reading history (also for positioning or recovery) answers `not available`, as upstream.
//! - Each channel with local subscribers has one NATS subscription read by one task, so a
//!   channel's publications keep their order. A subscribe resolves once the server has
//!   processed the SUB (a message published to this node's sync subject after it came back).
//! - The client connects in the background and reconnects with backoff, resubscribing every
//!   subject; while it is away publishes fail. After a reconnect local subscribers are told
//!   their channels' streams were interrupted ([`EngineEvents::stream_lost`]).
//! - Control: every node listens on `<prefix>.control` and `<prefix>.node.<id>`.
//! - Raw mode (`raw_mode.enabled`): a channel is the subject `raw_mode.prefix` + the channel
//!   (after `channel_replacements`) and its messages are bare payloads, so processes outside
//!   Gyre publish and subscribe with any NATS client; no join/leave in this mode.
//! - Wildcards (`allow_wildcards`): channels with `*` or `>` may be subscribed to; their
//!   subscribers get the publications of every matching channel, each naming its channel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::connection::State;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

mod broker;
mod control;
mod subs;
mod wire;

use crate::engine::{EngineError, EngineEvents};
use subs::ChannelSub;

/// Bound of a subscribe (or any confirmation round trip) while the connection is up.
const CONFIRM_WAIT_UP: Duration = Duration::from_secs(10);
/// Bound of a subscribe while the connection is down (it is confirmed once back).
const CONFIRM_WAIT_DOWN: Duration = Duration::from_secs(2);
/// The connection is checked with a PING this often (a dead server is noticed by then).
const PING_INTERVAL: Duration = Duration::from_secs(10);

/// An engine error caused by `e` (kept as its source).
fn err(e: impl std::error::Error + Send + Sync + 'static) -> EngineError {
    EngineError::caused_by(e)
}

/// Raw mode: channels as plain subjects.
#[derive(Debug, Clone)]
struct RawMode {
    /// Prefix of every subject.
    prefix: String,
    /// Substring replacements applied to channel names in one left-to-right pass, without
    /// overlaps (the longest key wins at a position).
    replacements: Vec<(String, String)>,
}

impl RawMode {
    /// The subject of `channel`.
    fn subject(&self, channel: &str) -> String {
        let mut out = self.prefix.clone();
        let mut rest = channel;
        'outer: while !rest.is_empty() {
            for (from, to) in &self.replacements {
                if let Some(after) = rest.strip_prefix(from.as_str()) {
                    out.push_str(to);
                    rest = after;
                    continue 'outer;
                }
            }
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                out.push(c);
            }
            rest = chars.as_str();
        }
        out
    }
}

/// Waiters of the sync subject: a message with sequence `n` arriving means the server has
/// processed everything this node sent before it.
#[derive(Debug, Default)]
struct SyncWaiters {
    next: AtomicU64,
    waiting: Mutex<Vec<(u64, oneshot::Sender<()>)>>,
}

impl SyncWaiters {
    /// Answers every waiter up to `seq`.
    fn arrived(&self, seq: u64) {
        let done: Vec<oneshot::Sender<()>> = {
            let mut waiting = self.waiting.lock();
            let (done, left): (Vec<_>, Vec<_>) = waiting.drain(..).partition(|(n, _)| *n <= seq);
            *waiting = left;
            done.into_iter().map(|(_, tx)| tx).collect()
        };
        for tx in done {
            let _ = tx.send(());
        }
    }
}

/// The NATS broker and control bus.
pub(crate) struct NatsEngine {
    /// This engine (its tasks hold it).
    me: Weak<Self>,
    client: async_nats::Client,
    /// The server URLs for logs (without credentials).
    servers: String,
    prefix: String,
    raw: Option<RawMode>,
    /// The prefix of channel subjects (`<prefix>.client.`, the raw prefix in raw mode).
    channel_prefix: String,
    allow_wildcards: bool,
    write_timeout: Duration,
    /// Where deliveries and control messages go (the node).
    events: Arc<dyn EngineEvents>,
    /// Channels this node receives.
    subs: Mutex<HashMap<String, ChannelSub>>,
    /// This node's sync subject and its waiters.
    sync_subject: String,
    sync: SyncWaiters,
    /// Connection events from the client (taken by the watcher task).
    conn_events: Mutex<Option<mpsc::UnboundedReceiver<async_nats::Event>>>,
    /// Whether the control subjects are subscribed and confirmed.
    control_ready: AtomicBool,
    /// Stops every task of the engine.
    shutdown: CancellationToken,
}

impl std::fmt::Debug for NatsEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsEngine")
            .field("prefix", &self.prefix)
            .field("raw", &self.raw.is_some())
            .field("state", &self.client.connection_state())
            .finish()
    }
}

/// Reconnect delays with jitter: 100 ms doubling up to 3 s.
fn reconnect_delay(attempts: usize) -> Duration {
    let base = 100u64.saturating_mul(1 << attempts.min(5)).min(3000);
    Duration::from_millis(base / 2 + rand::random_range(0..=base / 2))
}

impl NatsEngine {
    /// The client for `config`; it connects in the background (no I/O here), so the node
    /// starts while NATS is down.
    pub(crate) async fn connect(
        config: &gyre_config::NatsBrokerConfig,
        events: Arc<dyn EngineEvents>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("gyre {}", events.node_id()))
            .connection_timeout(config.dial_timeout.get())
            .ping_interval(PING_INTERVAL)
            .retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(reconnect_delay)
            .event_callback(move |event| {
                let tx = events_tx.clone();
                async move {
                    let _ = tx.send(event);
                }
            });
        if config.tls.enabled || config.urls().iter().any(|u| u.starts_with("tls://")) {
            let tls = crate::tls::client_config("broker.nats.tls", &config.tls)?;
            options = options.require_tls(true).tls_client_config(tls);
        }
        let addrs = config
            .urls()
            .iter()
            .map(|u| u.parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("broker.nats.url: {e}"))?;
        let client = options
            .connect(addrs)
            .await
            .map_err(|e| anyhow::anyhow!("broker.nats: {e}"))?;
        let raw = config.raw_mode.enabled.then(|| {
            let mut replacements: Vec<(String, String)> = config
                .raw_mode
                .channel_replacements
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            replacements.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
            RawMode {
                prefix: config.raw_mode.prefix.clone(),
                replacements,
            }
        });
        if raw.is_some() {
            tracing::info!(
                "nats broker in raw mode (subject prefix {:?})",
                config.raw_mode.prefix
            );
        }
        let sync_subject = format!("{}.sync.{}", config.prefix, events.node_id());
        let channel_prefix = match &raw {
            Some(raw) => raw.prefix.clone(),
            None => format!("{}.client.", config.prefix),
        };
        Ok(Arc::new_cyclic(|me| Self {
            me: me.clone(),
            client,
            servers: describe(&config.urls()),
            prefix: config.prefix.clone(),
            raw,
            channel_prefix,
            allow_wildcards: config.allow_wildcards,
            write_timeout: config.write_timeout.get(),
            events,
            subs: Mutex::default(),
            sync_subject,
            sync: SyncWaiters::default(),
            conn_events: Mutex::new(Some(events_rx)),
            control_ready: AtomicBool::new(false),
            shutdown: shutdown.child_token(),
        }))
    }

    /// Starts the control and sync subscriptions and the connection watcher, until shutdown.
    pub(crate) fn start(self: &Arc<Self>) {
        let engine = self.clone();
        tokio::spawn(async move {
            let token = engine.shutdown.clone();
            tokio::select! {
                () = token.cancelled() => {}
                () = engine.run() => {}
            }
        });
    }

    /// Subscribes the control and sync subjects, then follows the connection's state.
    async fn run(self: Arc<Self>) {
        let Some(mut conn_events) = self.conn_events.lock().take() else {
            return;
        };
        let subjects = [
            self.control_subject(),
            self.node_subject(self.events.node_id()),
        ];
        for subject in subjects {
            match self.client.subscribe(subject.clone()).await {
                Ok(sub) => self.spawn_reader(sub, subs::Reader::Control),
                Err(e) => tracing::error!("nats subscribe to {subject} failed: {e}"),
            }
        }
        match self.client.subscribe(self.sync_subject.clone()).await {
            Ok(sub) => self.spawn_reader(sub, subs::Reader::Sync),
            Err(e) => tracing::error!("nats subscribe to {} failed: {e}", self.sync_subject),
        }
        let engine = self.clone();
        tokio::spawn(async move {
            // Confirmed once the connection first comes up.
            let token = engine.shutdown.clone();
            let confirmed = async {
                while engine.confirm(CONFIRM_WAIT_UP).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                engine.control_ready.store(true, Ordering::Release);
            };
            tokio::select! {
                () = token.cancelled() => {}
                () = confirmed => {}
            }
        });
        let mut lost = false;
        let mut down_logged = false;
        while let Some(event) = conn_events.recv().await {
            match event {
                async_nats::Event::Connected => {
                    tracing::info!("nats at {} is connected", self.servers);
                    down_logged = false;
                    if lost {
                        // Publications sent meanwhile are gone: subscribers with positions
                        // (none on this broker, which keeps none) would resubscribe.
                        let channels: Vec<String> = self.subs.lock().keys().cloned().collect();
                        for channel in channels {
                            self.events.stream_lost(&channel);
                        }
                    }
                    lost = false;
                }
                async_nats::Event::Disconnected => {
                    lost = true;
                    if !down_logged {
                        tracing::warn!("nats connection to {} lost; reconnecting", self.servers);
                        down_logged = true;
                    }
                }
                async_nats::Event::SlowConsumer(sid) => {
                    tracing::warn!("nats subscription {sid} is too slow: messages dropped");
                }
                async_nats::Event::ServerError(e) => tracing::warn!("nats server error: {e}"),
                // Failed connection attempts: logged once per outage.
                async_nats::Event::ClientError(e) if !down_logged => {
                    tracing::warn!(
                        "nats at {} is unreachable ({e}); retrying in the background",
                        self.servers
                    );
                    down_logged = true;
                }
                async_nats::Event::ClientError(e) => tracing::debug!("nats client error: {e}"),
                _ => {}
            }
        }
    }

    /// Waits until everything this node sent so far has been processed by the server (a
    /// message to its own sync subject came back), at most `bound`.
    async fn confirm(&self, bound: Duration) -> Result<(), EngineError> {
        let seq = self.sync.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.sync.waiting.lock().push((seq, tx));
        let sent = self
            .client
            .publish(self.sync_subject.clone(), seq.to_string().into())
            .await;
        if let Err(e) = sent {
            self.sync.waiting.lock().retain(|(n, _)| *n != seq);
            return Err(err(e));
        }
        let answered = tokio::time::timeout(bound, rx).await;
        self.sync.waiting.lock().retain(|(n, _)| *n != seq);
        match answered {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(EngineError::new("nats broker stopped")),
            Err(_) => Err(EngineError::new("nats is not connected")),
        }
    }

    /// Whether the connection is up.
    fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    fn control_subject(&self) -> String {
        format!("{}.control", self.prefix)
    }

    /// A node's own subject (messages addressed to it).
    fn node_subject(&self, node: &str) -> String {
        format!("{}.node.{node}", self.prefix)
    }

    /// The subject carrying `channel`.
    fn channel_subject(&self, channel: &str) -> String {
        match &self.raw {
            Some(raw) => raw.subject(channel),
            None => format!("{}.client.{channel}", self.prefix),
        }
    }
}

/// Server URLs for logs, without user names, passwords or tokens.
fn describe(urls: &[String]) -> String {
    urls.iter()
        .map(|url| match (url.split_once("://"), url.rsplit_once('@')) {
            (Some((scheme, _)), Some((_, host))) => format!("{scheme}://{host}"),
            (None, Some((_, host))) => host.to_owned(),
            _ => url.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether a channel name holds NATS wildcards.
fn has_wildcards(channel: &str) -> bool {
    channel.contains('*') || channel.contains('>')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_subjects_apply_every_replacement() {
        let raw = RawMode {
            prefix: "raw.".to_owned(),
            replacements: vec![
                ("::".to_owned(), "-".to_owned()),
                (":".to_owned(), ".".to_owned()),
            ],
        };
        assert_eq!(raw.subject("chat:index"), "raw.chat.index");
        assert_eq!(raw.subject("a::b:c"), "raw.a-b.c");
        assert_eq!(raw.subject("plain"), "raw.plain");
        assert_eq!(raw.subject("ünï:x"), "raw.ünï.x");
    }

    #[test]
    fn reconnect_delays_grow_and_stay_bounded() {
        assert!(reconnect_delay(0) <= Duration::from_millis(100));
        for n in 0..50 {
            assert!(reconnect_delay(n) <= Duration::from_secs(3));
        }
        assert!(reconnect_delay(10) >= Duration::from_millis(1500));
    }

    #[test]
    fn logged_urls_hide_credentials() {
        let urls = [
            "nats://u:p@h:4222".to_owned(),
            "tls://h2:4222".to_owned(),
            "t@h3".to_owned(),
        ];
        assert_eq!(describe(&urls), "nats://h:4222,tls://h2:4222,h3");
    }

    #[test]
    fn wildcards_are_recognised() {
        assert!(has_wildcards("news.*") && has_wildcards("news.>"));
        assert!(!has_wildcards("news.sport"));
    }
}
