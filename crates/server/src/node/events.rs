//! This node as the engines see it: the hub they deliver into, the node's identity and the
//! control protocol's answers. Engines get it at start as an [`EngineEvents`] handle, so they
//! never reach the hub, the node or the API themselves.

use std::sync::Arc;
use std::time::Instant;

use gyre_protocol::{ClientInfo, Publication};

use crate::engine::EngineEvents;
use crate::hub::Hub;

/// The node side of [`EngineEvents`]: the local hub and this node's identity.
#[derive(Debug)]
pub(crate) struct NodeEvents {
    /// Local sessions and subscriptions.
    pub hub: Arc<Hub>,
    /// Node id (unique per start).
    pub id: String,
    /// Node name (configured, or the host name).
    pub name: String,
    /// When the node started.
    pub started: Instant,
    /// The cluster control protocol (registry, surveys) over the engine's control bus.
    pub(crate) cluster: super::cluster::Cluster,
    /// The node's shared poll channels, for publications from other nodes (set once the
    /// node is built).
    pub(crate) shared_poll: std::sync::OnceLock<crate::shared_poll::SharedPoll>,
}

impl NodeEvents {
    /// A fresh node identity over an empty hub; `name` empty means the host name.
    pub(crate) fn new(name: &str) -> Arc<Self> {
        Arc::new(Self {
            hub: Arc::new(Hub::default()),
            id: uuid::Uuid::new_v4().to_string(),
            name: if name.is_empty() {
                hostname()
            } else {
                name.to_owned()
            },
            started: Instant::now(),
            cluster: super::cluster::Cluster::default(),
            shared_poll: std::sync::OnceLock::new(),
        })
    }
}

impl EngineEvents for NodeEvents {
    fn node_id(&self) -> &str {
        &self.id
    }

    fn publication(&self, channel: &str, publication: &Publication, delta: bool, epoch: &str) {
        self.hub
            .broadcast_publication(channel, publication, delta, epoch);
    }

    fn join_leave(&self, channel: &str, info: &ClientInfo, joined: bool) {
        self.hub.broadcast_join_leave(channel, info, joined);
    }

    fn stream_lost(&self, channel: &str) {
        self.hub.stream_lost(channel);
    }

    fn has_subscribers(&self, channel: &str) -> bool {
        self.hub.has_subscribers(channel)
    }

    fn control(&self, message: &[u8]) {
        self.cluster.on_message(self, message);
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "gyre".to_owned())
}
