//! [`ClientStats`]: counters of the work a client did, from [`Client::stats`](crate::Client::stats).

use crate::core::CoreStats;

/// Counters of one client since it was built.
///
/// They are diagnostics: they show, for example, that subscribing many channels costs a
/// number of frames and timer operations proportional to the number of subscriptions
/// (`tests/scale.rs` relies on that), and how many events a lossy event stream dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Commands sent to the server.
    pub commands_sent: u64,
    /// WebSocket messages written (commands are batched, so usually far fewer than commands).
    pub frames_sent: u64,
    /// WebSocket messages received.
    pub frames_received: u64,
    /// Deadlines armed in the client's timer index (reply timeouts, resubscribe backoff,
    /// token refreshes, waiting calls).
    pub timers_armed: u64,
    /// Timer index entries removed (fired or no longer needed).
    pub timers_removed: u64,
    /// Walks over the whole subscription registry: one per connect, connection loss and close,
    /// never one per subscription.
    pub registry_walks: u64,
    /// Publications dropped by full event streams in the lossy mode
    /// ([`ClientOptions::backpressure`](crate::ClientOptions::backpressure)`(false)`), summed
    /// over streams. Always 0 in the default lossless mode.
    pub publications_dropped: u64,
}

impl ClientStats {
    pub(crate) fn new(core: CoreStats, frames_received: u64, publications_dropped: u64) -> Self {
        Self {
            commands_sent: core.commands,
            frames_sent: core.frames,
            frames_received,
            timers_armed: core.timers_armed,
            timers_removed: core.timers_removed,
            registry_walks: core.registry_walks,
            publications_dropped,
        }
    }
}
