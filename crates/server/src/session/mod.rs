//! A session: one task per client connection that owns all of the connection's state.
//!
//! The task `select!`s over frames from the client, its outbound queue (publications from the
//! hub, pings from the shared pinger, server-side actions) and one optional deadline (stale
//! connection, connection or subscription expiry). Everything that is ready is handed to the
//! transport as one batch (one WebSocket message, one chunk of an HTTP stream).

mod commands;
mod connect;
mod map;
mod pending;
mod shared_poll;
mod subscribe;
mod uni;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use gyre_protocol::codec::{self, decode_all};
use gyre_protocol::{ClientInfo, Command, Disconnect, Protocol, ProtocolError, Push, Reply};
use tokio::time::Instant;

use crate::node::{Node, unix_now};
use crate::outbound::{Control, Outbound, OutboundReceiver, SessionHandle};
use crate::proxy::ConnMeta;
use crate::transport::{Transport, TransportError, TransportInfo};

/// A frame is written once this many bytes are pending, even if more is queued.
const MAX_FRAME_BYTES: usize = 64 * 1024;

/// State of one subscription of the session.
#[derive(Debug, Clone, Default)]
struct SubState {
    /// Presence is kept for this subscription.
    presence: bool,
    /// Join/leave is announced for this client.
    join_leave: bool,
    /// Channel info from the subscription token.
    chan_info: Bytes,
    /// Subscription expiry (unix seconds).
    expire_at: Option<i64>,
    /// Subscribed by the server (token channels, personal channel, API).
    server_side: bool,
    /// Refreshed by the server through the sub_refresh proxy when it expires.
    server_refresh: bool,
    /// The sub_refresh proxy is being asked.
    refreshing: bool,
    /// A shared poll subscription: its keys are tracked by the node's shared poll registry.
    shared_poll: bool,
}

/// The per-connection state machine.
struct Session {
    node: Arc<Node>,
    handle: Arc<SessionHandle>,
    protocol: Protocol,
    /// What the transport needs done differently (pong, push shape, session id).
    transport: TransportInfo,
    /// This transport's message counters (metrics).
    counters: Arc<crate::metrics::TransportCounters>,
    connected: bool,
    user: Arc<str>,
    conn_info: Bytes,
    expire_at: Option<i64>,
    subs: HashMap<String, SubState>,
    awaiting_pong: bool,
    /// Encoded messages waiting to be written as one batch.
    out: Vec<Bytes>,
    /// Their total size in bytes.
    out_len: usize,
    out_queued: usize,
    closing: Option<Disconnect>,
    stale_at: Option<Instant>,
    /// The connection request's metadata, for proxy requests.
    conn: Arc<ConnMeta>,
    /// Connection meta from the token or the connect proxy.
    meta: Option<Arc<serde_json::value::RawValue>>,
    /// Authenticated by the connect proxy (expiry is refreshed server-side when a refresh
    /// proxy is configured).
    proxied: bool,
    /// The connect command waits for the connect proxy.
    connecting: bool,
    /// The refresh proxy is being asked.
    refreshing: bool,
    /// Decisions in flight. The mutex only makes the session `Sync` (the futures are only
    /// `Send`): it is never contended, polled through `get_mut` and locked to read the length.
    pending: parking_lot::Mutex<FuturesUnordered<pending::Pending>>,
    /// Map subscribes in progress (between their first page and going live).
    map_flows: map::MapFlows,
}

/// Runs a session over a transport until it closes.
pub(crate) async fn run<T: Transport>(
    node: Arc<Node>,
    mut transport: T,
    protocol: Protocol,
    conn: Arc<ConnMeta>,
) {
    let client: Arc<str> = Arc::from(uuid::Uuid::new_v4().to_string());
    let info = transport.info();
    let (handle, mut rx) = SessionHandle::with_shape(
        client,
        protocol,
        info.unidirectional,
        node.config.client.queue_max_size.max(1),
    );
    tracing::debug!(
        client = %handle.client,
        transport = info.name,
        remote = ?conn.remote,
        "client connection established"
    );
    let stale = node.config.client.stale_close_delay.0;
    let mut session = Session {
        node: node.clone(),
        handle,
        protocol,
        counters: node.metrics.transport(info.name),
        transport: info,
        connected: false,
        user: Arc::from(""),
        conn_info: Bytes::new(),
        expire_at: None,
        subs: HashMap::new(),
        awaiting_pong: false,
        out: Vec::new(),
        out_len: 0,
        out_queued: 0,
        closing: None,
        stale_at: (!stale.is_zero()).then(|| Instant::now() + stale),
        conn,
        meta: None,
        proxied: false,
        connecting: false,
        refreshing: false,
        pending: parking_lot::Mutex::new(FuturesUnordered::new()),
        map_flows: map::MapFlows::default(),
    };
    let shutdown = node.shutdown.clone();
    let shutdown = shutdown.cancelled();
    tokio::pin!(shutdown);
    // The one deadline timer, re-armed only when something other than queued output was
    // handled (only commands, server actions and the deadline itself change expiries).
    let timer = tokio::time::sleep_until(Instant::now());
    tokio::pin!(timer);
    let mut deadline = None;
    let mut recompute = true;
    loop {
        if std::mem::take(&mut recompute) {
            deadline = session.next_deadline();
            if let Some(at) = deadline {
                timer.as_mut().reset(at);
            }
        }
        tokio::select! {
            biased;
            () = &mut shutdown, if session.closing.is_none() => session.close(Disconnect::SHUTDOWN),
            message = rx.recv() => recompute = session.on_outbound(message).await,
            Some(done) = session.pending.get_mut().next(), if session.in_flight() > 0 => {
                recompute = true;
                Box::pin(session.on_completion(done)).await;
            }
            frame = transport.recv(), if session.reading() => match frame {
                Some(Ok(frame)) => {
                    recompute = true;
                    Box::pin(session.on_message(&frame)).await;
                }
                Some(Err(err)) => {
                    tracing::debug!(client = %session.handle.client, transport = session.transport.name, "read error: {err}");
                    Box::pin(transport.close(None)).await;
                    break;
                }
                None => break,
            },
            () = &mut timer, if deadline.is_some() => {
                recompute = true;
                deadline = None;
                Box::pin(session.on_deadline()).await;
            }
        }
        recompute |= session.drain(&mut rx).await;
        if session.write(&mut transport).await.is_err() {
            break;
        }
        if let Some(disconnect) = session.closing.clone() {
            // Rare: boxed, so that its futures do not add to every idle connection's.
            Box::pin(session.end(&mut transport, &disconnect)).await;
            break;
        }
    }
    Box::pin(session.cleanup()).await;
}

/// Whether an expiry (with its grace delay) has passed at unix second `now`. Whole seconds
/// compare strictly, as upstream does: a client refreshing during the last second is in time.
fn expired_after(deadline: i64, now: i64) -> bool {
    now > deadline
}

/// The `expires`/`ttl` pair of a result for an expiry (unix seconds), capped at a year;
/// `None` when the expiry has already passed.
fn expiry_ttl(expire_at: Option<i64>, now: i64) -> Option<(bool, u32)> {
    match expire_at {
        Some(at) if at <= now => None,
        Some(at) => Some((true, (at - now).min(365 * 24 * 3600) as u32)),
        None => Some((false, 0)),
    }
}

impl Session {
    /// Whether the next frame may be read: not while the connect command or too many other
    /// commands wait for a decision.
    fn reading(&self) -> bool {
        !self.connecting && self.in_flight() < pending::MAX_PENDING
    }

    /// How many decisions are in flight.
    fn in_flight(&self) -> usize {
        self.pending.lock().len()
    }

    /// Whether the connection's expiry is refreshed server-side through the refresh proxy.
    fn server_refresh(&self) -> bool {
        self.proxied
            && self
                .node
                .config
                .proxy(gyre_config::ProxyKind::Refresh, "")
                .is_some()
    }

    fn info(&self, chan_info: Bytes) -> ClientInfo {
        ClientInfo {
            user: self.user.to_string(),
            client: self.handle.client.to_string(),
            conn_info: self.conn_info.clone(),
            chan_info,
        }
    }

    /// The connection as the policy sees it.
    fn subject(&self) -> crate::policy::Subject<'_> {
        crate::policy::Subject {
            user: &self.user,
            client: &self.handle.client,
        }
    }

    /// Adds an encoded message to the next batch.
    fn queue_unit(&mut self, unit: Bytes) {
        self.out_len += unit.len();
        self.out.push(unit);
    }

    fn close(&mut self, disconnect: Disconnect) {
        if self.closing.is_none() {
            tracing::debug!(client = %self.handle.client, code = disconnect.code, "disconnect: {}", disconnect.reason);
            self.node
                .metrics
                .server_disconnect(u32::from(disconnect.code));
            self.closing = Some(disconnect);
        }
    }

    /// Appends an encoded reply to the frame being built.
    fn push_reply(&mut self, reply: &Reply) {
        match codec::encode(self.protocol, reply) {
            Ok(unit) => self.queue_unit(unit),
            Err(err) => {
                tracing::debug!(client = %self.handle.client, "can't encode reply: {err}");
                self.close(Disconnect::INAPPROPRIATE_PROTOCOL);
            }
        }
    }

    fn push_error(&mut self, id: u32, error: ProtocolError) {
        match error {
            ProtocolError::Reply(error) => self.push_reply(&Reply {
                id,
                error: Some(error),
                ..Default::default()
            }),
            ProtocolError::Disconnect(d) => self.close(d),
        }
    }

    /// Encodes a push in the transport's shape: bare on a unidirectional transport, in a
    /// reply otherwise.
    fn encode_push(&self, push: Push) -> Result<Bytes, gyre_protocol::EncodeError> {
        if self.transport.unidirectional {
            codec::encode(self.protocol, &push)
        } else {
            codec::encode(
                self.protocol,
                &Reply {
                    push: Some(push),
                    ..Default::default()
                },
            )
        }
    }

    /// Appends an encoded push to the batch being built.
    fn push_push(&mut self, push: Push) {
        match self.encode_push(push) {
            Ok(unit) => self.queue_unit(unit),
            Err(err) => {
                tracing::debug!(client = %self.handle.client, "can't encode push: {err}");
                self.close(Disconnect::INAPPROPRIATE_PROTOCOL);
            }
        }
    }

    /// Queues the disconnect push a streaming transport ends with.
    fn queue_disconnect_push(&mut self, disconnect: &Disconnect) {
        self.push_push(Push {
            disconnect: Some(gyre_protocol::DisconnectPush {
                code: u32::from(disconnect.code),
                reason: disconnect.reason.to_string(),
                reconnect: false,
            }),
            ..Default::default()
        });
    }

    async fn on_message(&mut self, frame: &[u8]) {
        if self.closing.is_some() {
            return;
        }
        if self.transport.unidirectional {
            self.counters.received(1, frame.len());
            // The connect request; a unidirectional client sends nothing else that matters.
            if !self.connected && !self.connecting {
                self.uni_connect(frame).await;
            }
            return;
        }
        let commands = match decode_all::<Command>(self.protocol, frame) {
            Ok(commands) => {
                self.counters.received(commands.len(), frame.len());
                commands
            }
            Err(err) => {
                tracing::debug!(client = %self.handle.client, "malformed frame: {err}");
                self.close(Disconnect::BAD_REQUEST);
                return;
            }
        };
        for command in commands {
            if self.closing.is_some() {
                break;
            }
            self.dispatch(command).await;
        }
    }

    /// Handles one queued message; true when it may have changed an expiry.
    async fn on_outbound(&mut self, message: Outbound) -> bool {
        match message {
            Outbound::Unit(unit) => {
                self.out_queued += unit.len();
                self.queue_unit(unit);
            }
            Outbound::Ping => {
                if self.connected {
                    self.queue_unit(self.protocol.empty_message());
                    self.awaiting_pong = self.expects_pong();
                }
            }
            Outbound::CheckPong => {
                if self.awaiting_pong {
                    self.close(Disconnect::NO_PONG);
                }
            }
            Outbound::Disconnect(d) => self.close(d),
            Outbound::Control(control) => {
                Box::pin(self.on_control(*control)).await;
                return true;
            }
        }
        false
    }

    async fn on_control(&mut self, control: Control) {
        if !self.connected {
            return;
        }
        match control {
            Control::Subscribe(req) => self.server_subscribe(req).await,
            Control::Unsubscribe {
                channel,
                code,
                reason,
            } => {
                self.unsubscribe_with_push(&channel, code, &reason).await;
            }
            Control::Refresh { expired, expire_at } => {
                if expired {
                    self.close(Disconnect::EXPIRED);
                } else {
                    self.expire_at = (expire_at > 0).then_some(expire_at);
                }
            }
            Control::InsufficientState(channel) => {
                let server_side = self.subs.get(&channel).is_some_and(|s| s.server_side);
                if server_side {
                    self.close(Disconnect::INSUFFICIENT_STATE);
                } else {
                    self.unsubscribe_with_push(
                        &channel,
                        gyre_protocol::codes::unsubscribe::INSUFFICIENT_STATE,
                        "insufficient state",
                    )
                    .await;
                }
            }
        }
    }

    /// Takes whatever else is queued, up to one frame's worth; true when a taken message may
    /// have changed an expiry.
    async fn drain(&mut self, rx: &mut OutboundReceiver) -> bool {
        let mut changed = false;
        while self.out_len < MAX_FRAME_BYTES && self.closing.is_none() {
            match rx.try_recv() {
                Some(message) => changed |= self.on_outbound(message).await,
                None => break,
            }
        }
        changed
    }

    /// Ends the connection with `disconnect`: a disconnect push first where the transport
    /// carries one, then the transport's own close.
    async fn end<T: Transport>(&mut self, transport: &mut T, disconnect: &Disconnect) {
        if self.transport.disconnect_push {
            self.queue_disconnect_push(disconnect);
            let _ = self.write(transport).await;
        }
        transport.close(Some(disconnect)).await;
    }

    /// Hands the batch to the transport.
    async fn write<T: Transport>(&mut self, transport: &mut T) -> Result<(), TransportError> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.counters.sent(self.out.len(), self.out_len);
        let result = transport.send_units(&self.out).await;
        self.out.clear();
        self.out_len = 0;
        self.handle.release(std::mem::take(&mut self.out_queued));
        result
    }

    /// Whether the client must answer pings.
    fn expects_pong(&self) -> bool {
        self.transport.expects_pong(self.node.pinger.expects_pong())
    }

    fn next_deadline(&self) -> Option<Instant> {
        if !self.connected {
            return self.stale_at;
        }
        let grace = self.node.config.client.expired_close_delay.0.as_secs() as i64;
        let sub_grace = self.node.config.client.expired_sub_close_delay.0.as_secs() as i64;
        let conn = if self.refreshing {
            None
        } else if self.server_refresh() {
            self.expire_at
        } else {
            self.expire_at.map(|at| at + grace)
        };
        let sub = self
            .subs
            .values()
            .filter(|s| !s.refreshing)
            .filter_map(|s| {
                let grace = if s.server_refresh { 0 } else { sub_grace };
                s.expire_at.map(|at| at + grace)
            })
            .min();
        let at = match (conn, sub) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        // Expiries compare whole unix seconds (`expired_after`): the first instant that is
        // past is the start of second `at + 1`. Computed exactly, so the deadline never fires
        // early (an early wake-up would find nothing expired and spin).
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs((at + 1).max(0) as u64);
        let wait = at
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        Some(Instant::now() + wait)
    }

    async fn on_deadline(&mut self) {
        if !self.connected {
            self.close(Disconnect::STALE);
            return;
        }
        let now = unix_now();
        let grace = self.node.config.client.expired_close_delay.0.as_secs() as i64;
        if self.server_refresh() {
            if !self.refreshing
                && self.expire_at.is_some_and(|at| expired_after(at, now))
                && let Some(options) =
                    crate::proxy::options(&self.node, gyre_config::ProxyKind::Refresh, "")
            {
                self.refreshing = true;
                let caller = self.caller();
                self.defer(Box::pin(async move {
                    pending::Completion::Refresh(crate::proxy::refresh(caller, options).await)
                }));
            }
        } else if self
            .expire_at
            .is_some_and(|at| expired_after(at + grace, now))
        {
            self.close(Disconnect::EXPIRED);
            return;
        }
        let sub_grace = self.node.config.client.expired_sub_close_delay.0.as_secs() as i64;
        let refresh: Vec<String> = self
            .subs
            .iter()
            .filter(|(_, s)| {
                s.server_refresh
                    && !s.refreshing
                    && s.expire_at.is_some_and(|at| expired_after(at, now))
            })
            .map(|(c, _)| c.clone())
            .collect();
        for channel in refresh {
            self.sub_refresh(channel);
        }
        let expired: Vec<(String, bool)> = self
            .subs
            .iter()
            .filter(|(_, s)| {
                !s.server_refresh
                    && s.expire_at
                        .is_some_and(|at| expired_after(at + sub_grace, now))
            })
            .map(|(c, s)| (c.clone(), s.server_side))
            .collect();
        for (channel, server_side) in expired {
            if server_side {
                self.close(Disconnect::SUBSCRIPTION_EXPIRED);
                return;
            }
            self.unsubscribe_with_push(
                &channel,
                gyre_protocol::codes::unsubscribe::EXPIRED,
                "subscription expired",
            )
            .await;
        }
    }

    /// Leaves every channel and forgets the session.
    async fn cleanup(&mut self) {
        let subs: Vec<String> = self.subs.keys().cloned().collect();
        for channel in subs {
            self.remove_subscription(&channel).await;
        }
        if self.connected {
            self.node.hub.remove_session(&self.handle);
        }
        self.handle
            .disconnect(Disconnect::new(3000, "connection closed"));
    }
}

#[cfg(test)]
mod tests;
