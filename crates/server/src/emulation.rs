//! Emulated sessions by session id: how a client-to-server request on `/emulation` reaches
//! the session of an HTTP-streaming or SSE connection on this node.
//!
//! A streaming transport registers its session id when it is created and is forgotten when
//! its [`Registration`] is dropped (the session ended, whatever the reason). Commands are
//! handed over through a small bounded channel: an emulation request waits while the session
//! is busy, so memory stays bounded whatever the client sends.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use gyre_protocol::Protocol;
use parking_lot::RwLock;
use tokio::sync::mpsc;

/// Frames of commands waiting for a session, at most.
const INBOUND_FRAMES: usize = 8;

/// A session's entry: its encoding and the way to its commands.
#[derive(Debug, Clone)]
pub(crate) struct Emulated {
    /// The session's encoding (emulation data is decoded by it).
    pub protocol: Protocol,
    /// Frames of client commands, in order.
    pub commands: mpsc::Sender<Bytes>,
}

/// This node's emulated sessions.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    sessions: RwLock<HashMap<Arc<str>, Emulated>>,
}

/// A registered session id, forgotten when dropped.
#[derive(Debug)]
pub(crate) struct Registration {
    registry: Arc<Registry>,
    /// The session id.
    pub session: Arc<str>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.sessions.write().remove(&self.session);
    }
}

impl Registry {
    /// Registers a fresh session id for a session speaking `protocol`: the registration and
    /// the receiving end of its commands.
    pub(crate) fn register(
        self: &Arc<Self>,
        protocol: Protocol,
    ) -> (Registration, mpsc::Receiver<Bytes>) {
        let session: Arc<str> = Arc::from(uuid::Uuid::new_v4().to_string());
        let (commands, rx) = mpsc::channel(INBOUND_FRAMES);
        self.sessions
            .write()
            .insert(session.clone(), Emulated { protocol, commands });
        let registration = Registration {
            registry: self.clone(),
            session,
        };
        (registration, rx)
    }

    /// The session with this id, if it is on this node.
    pub(crate) fn get(&self, session: &str) -> Option<Emulated> {
        self.sessions.read().get(session).cloned()
    }

    /// How many emulated sessions are registered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.sessions.read().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_are_forgotten_when_dropped() {
        let registry = Arc::new(Registry::default());
        let (a, _rx_a) = registry.register(Protocol::Json);
        let (b, _rx_b) = registry.register(Protocol::Protobuf);
        assert_ne!(a.session, b.session);
        assert_eq!(registry.len(), 2);
        assert_eq!(
            registry.get(&b.session).map(|e| e.protocol),
            Some(Protocol::Protobuf)
        );
        drop(a);
        assert_eq!(registry.len(), 1);
        drop(b);
        assert!(registry.get("nope").is_none());
        assert_eq!(registry.len(), 0);
    }
}
