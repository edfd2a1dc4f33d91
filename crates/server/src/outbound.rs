//! The shared half of a session: what the hub, the API and the pinger hold to reach a
//! connection, and the byte-bounded queue in front of its writer.
//!
//! The queue is a mutex-guarded `VecDeque` with one stored waker rather than a channel: a
//! broadcast pushes under an uncontended lock and wakes the session only when it is parked
//! (later pushes find no waker and skip the wake-up), the session takes everything queued in
//! one swap, and an idle connection's queue allocates nothing.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use gyre_protocol::{Disconnect, Protocol, StreamPosition};
use serde::Deserialize;

/// `{"value": bool}` wrapper used by overrides.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct BoolValue {
    /// The value.
    pub value: bool,
}

/// Channel option overrides of an API subscribe.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Override {
    /// Presence.
    pub presence: Option<BoolValue>,
    /// Join/leave.
    pub join_leave: Option<BoolValue>,
    /// Force recovery.
    pub force_recovery: Option<BoolValue>,
    /// Force positioning.
    pub force_positioning: Option<BoolValue>,
    /// Force push join/leave.
    pub force_push_join_leave: Option<BoolValue>,
}

/// A server-side subscribe (server API `subscribe`, also sent between nodes as a control
/// command): subscribe a user's connections to a channel.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ServerSubscribe {
    /// Channel.
    pub channel: String,
    /// User whose connections subscribe.
    pub user: String,
    /// Subscription expiry (unix seconds).
    pub expire_at: i64,
    /// Channel info (JSON).
    #[serde(with = "gyre_protocol::raw")]
    pub info: Bytes,
    /// Only this client.
    pub client: String,
    /// Subscription data (JSON).
    #[serde(with = "gyre_protocol::raw")]
    pub data: Bytes,
    /// Recover from this position.
    pub recover_since: Option<StreamPosition>,
    /// Option overrides.
    #[serde(rename = "override")]
    pub override_: Override,
    /// Session id (not used yet: API actions are not aimed at one session).
    pub session: String,
}

impl ServerSubscribe {
    /// The overrides as token-style options.
    pub fn overrides(&self) -> gyre_auth::ChannelOverride {
        let o = &self.override_;
        gyre_auth::ChannelOverride {
            presence: o.presence.map(|v| v.value),
            join_leave: o.join_leave.map(|v| v.value),
            force_push_join_leave: o.force_push_join_leave.map(|v| v.value),
            force_recovery: o.force_recovery.map(|v| v.value),
            force_positioning: o.force_positioning.map(|v| v.value),
        }
    }
}

/// Something for a session to do, in queue order with the frames it writes.
#[derive(Debug)]
pub enum Outbound {
    /// An encoded message (a framing unit) to write.
    Unit(Bytes),
    /// Time to send a ping.
    Ping,
    /// The pong deadline of the last ping has passed.
    CheckPong,
    /// Close the connection with this disconnect.
    Disconnect(Disconnect),
    /// A server-side action on a channel (API subscribe / unsubscribe). Boxed: it is rare,
    /// and every connection's queue allocates its first block of slots up front, so the
    /// size of this enum is paid by every idle connection.
    Control(Box<Control>),
}

/// A server-initiated change to a session's subscriptions or connection.
#[derive(Debug)]
pub enum Control {
    /// Subscribe the session to a channel (server API `subscribe`).
    Subscribe(ServerSubscribe),
    /// Unsubscribe the session from a channel with an unsubscribe push.
    Unsubscribe {
        /// The channel.
        channel: String,
        /// Unsubscribe code.
        code: u32,
        /// Reason.
        reason: String,
    },
    /// Refresh the connection expiry (server API `refresh`).
    Refresh {
        /// Disconnect as expired now.
        expired: bool,
        /// New expiry (unix seconds), 0 for none.
        expire_at: i64,
    },
    /// The channel's stream lost continuity: resubscribe the client (unsubscribe 2500).
    InsufficientState(String),
}

/// The part of a connection shared with the rest of the server.
#[derive(Debug)]
pub struct SessionHandle {
    /// Client (connection) id.
    pub client: Arc<str>,
    /// User id, "" for anonymous; set once connected.
    pub user: parking_lot::RwLock<Arc<str>>,
    /// Encoding spoken by the connection.
    pub protocol: Protocol,
    /// The connection is unidirectional: pushes are written bare, not in a reply.
    pub unidirectional: bool,
    queue: parking_lot::Mutex<Queue>,
    queued_bytes: AtomicUsize,
    max_queue_bytes: usize,
    closing: AtomicBool,
}

impl SessionHandle {
    /// A handle and the receiving end of its queue (a bidirectional connection).
    pub fn new(
        client: Arc<str>,
        protocol: Protocol,
        max_queue_bytes: usize,
    ) -> (Arc<Self>, OutboundReceiver) {
        Self::with_shape(client, protocol, false, max_queue_bytes)
    }

    /// A handle and the receiving end of its queue, for a connection that gets pushes bare
    /// when `unidirectional`.
    pub fn with_shape(
        client: Arc<str>,
        protocol: Protocol,
        unidirectional: bool,
        max_queue_bytes: usize,
    ) -> (Arc<Self>, OutboundReceiver) {
        let handle = Arc::new(Self {
            client,
            user: parking_lot::RwLock::new(Arc::from("")),
            protocol,
            unidirectional,
            queue: parking_lot::Mutex::new(Queue::default()),
            queued_bytes: AtomicUsize::new(0),
            max_queue_bytes,
            closing: AtomicBool::new(false),
        });
        let receiver = OutboundReceiver {
            handle: handle.clone(),
            taken: VecDeque::new(),
        };
        (handle, receiver)
    }

    /// Appends to the queue; false once the receiver is gone.
    fn push(&self, message: Outbound) -> bool {
        let waker = {
            let mut queue = self.queue.lock();
            if queue.closed {
                return false;
            }
            queue.items.push_back(message);
            queue.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// The user id.
    pub fn user(&self) -> Arc<str> {
        self.user.read().clone()
    }

    /// Queues an encoded message. A client whose queue would exceed its byte limit is
    /// disconnected as slow instead; returns false then (or when the session is gone).
    pub fn send_unit(&self, unit: Bytes) -> bool {
        if self.closing.load(Ordering::Relaxed) {
            return false;
        }
        let len = unit.len();
        let before = self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        if before + len > self.max_queue_bytes {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.disconnect(Disconnect::SLOW);
            return false;
        }
        if !self.push(Outbound::Unit(unit)) {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Queues a control message or a timer event.
    pub fn send(&self, message: Outbound) -> bool {
        !self.closing.load(Ordering::Relaxed) && self.push(message)
    }

    /// Asks the session to close with `disconnect` (only the first request counts).
    pub fn disconnect(&self, disconnect: Disconnect) {
        if !self.closing.swap(true, Ordering::AcqRel) {
            self.push(Outbound::Disconnect(disconnect));
        }
    }

    /// Whether the session is closing.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// Called by the writer once `len` queued bytes were taken off the queue.
    pub fn release(&self, len: usize) {
        self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
    }
}

/// The queue shared by a session's handle and its receiver.
#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Outbound>,
    /// The parked session's waker, taken by the push that wakes it.
    waker: Option<Waker>,
    /// The receiver is gone: nothing more is accepted.
    closed: bool,
}

/// The session's end of its queue.
#[derive(Debug)]
pub struct OutboundReceiver {
    handle: Arc<SessionHandle>,
    /// Messages already taken off the shared queue, in order.
    taken: VecDeque<Outbound>,
}

impl OutboundReceiver {
    /// The next message, waiting for one.
    pub async fn recv(&mut self) -> Outbound {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next message if one is queued.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        if self.taken.is_empty() {
            let mut queue = self.handle.queue.lock();
            std::mem::swap(&mut self.taken, &mut queue.items);
        }
        self.taken.pop_front()
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Outbound> {
        if let Some(message) = self.taken.pop_front() {
            return Poll::Ready(message);
        }
        let mut queue = self.handle.queue.lock();
        std::mem::swap(&mut self.taken, &mut queue.items);
        match self.taken.pop_front() {
            Some(message) => Poll::Ready(message),
            None => {
                if !queue
                    .waker
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    queue.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for OutboundReceiver {
    fn drop(&mut self) {
        let mut queue = self.handle.queue.lock();
        queue.closed = true;
        queue.waker = None;
        // Free what was queued (shared publication bytes) with the session.
        queue.items = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue slot is paid for every queued message; keep it small.
    #[test]
    fn queue_slots_stay_small() {
        assert!(
            std::mem::size_of::<super::Outbound>() <= 40,
            "{}",
            std::mem::size_of::<super::Outbound>()
        );
    }

    #[tokio::test]
    async fn queue_keeps_order_wakes_and_closes() {
        let (handle, mut rx) = SessionHandle::new(Arc::from("c"), Protocol::Json, 1 << 20);
        assert!(rx.try_recv().is_none());
        let waiter = tokio::spawn(async move {
            let first = rx.recv().await;
            let second = rx.try_recv();
            (first, second, rx)
        });
        tokio::task::yield_now().await;
        assert!(handle.send_unit(Bytes::from_static(b"1")));
        assert!(handle.send(Outbound::Ping));
        let (first, second, rx) = waiter.await.expect("receiver task");
        assert!(matches!(first, Outbound::Unit(b) if b == "1"));
        assert!(matches!(second, Some(Outbound::Ping)));
        drop(rx);
        assert!(!handle.send(Outbound::Ping), "closed queue accepts nothing");
        assert!(!handle.send_unit(Bytes::from_static(b"2")));
    }
}
