//! The shared half of a session: what the hub, the API and the pinger hold to reach a
//! connection, and the byte-bounded queue in front of its writer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use gyre_protocol::{Disconnect, Protocol};
use tokio::sync::mpsc;

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
    Subscribe(crate::api::types::SubscribeRequest),
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
    tx: mpsc::UnboundedSender<Outbound>,
    queued_bytes: AtomicUsize,
    max_queue_bytes: usize,
    closing: AtomicBool,
}

impl SessionHandle {
    /// A handle and the receiving end of its queue.
    pub fn new(
        client: Arc<str>,
        protocol: Protocol,
        max_queue_bytes: usize,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Outbound>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = Self {
            client,
            user: parking_lot::RwLock::new(Arc::from("")),
            protocol,
            tx,
            queued_bytes: AtomicUsize::new(0),
            max_queue_bytes,
            closing: AtomicBool::new(false),
        };
        (Arc::new(handle), rx)
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
        if self.tx.send(Outbound::Unit(unit)).is_err() {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Queues a control message or a timer event.
    pub fn send(&self, message: Outbound) -> bool {
        !self.closing.load(Ordering::Relaxed) && self.tx.send(message).is_ok()
    }

    /// Asks the session to close with `disconnect` (only the first request counts).
    pub fn disconnect(&self, disconnect: Disconnect) {
        if !self.closing.swap(true, Ordering::AcqRel) {
            let _ = self.tx.send(Outbound::Disconnect(disconnect));
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

#[cfg(test)]
mod tests {
    /// Each connection's queue allocates a block of 32 slots when it is created; keep a
    /// slot small so idle connections stay cheap.
    #[test]
    fn queue_slots_stay_small() {
        assert!(
            std::mem::size_of::<super::Outbound>() <= 40,
            "{}",
            std::mem::size_of::<super::Outbound>()
        );
    }
}
