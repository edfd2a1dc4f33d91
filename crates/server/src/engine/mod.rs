//! Engines: where streams (history, offsets, epochs) and presence live. The memory engine is
//! the default and serves a single node.

pub mod memory;
pub mod presence;

use std::time::Duration;

/// How a channel keeps its stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamOptions {
    /// Publications kept (0: no history).
    pub history_size: usize,
    /// How long publications are kept after the last publish.
    pub history_ttl: Duration,
    /// How long the stream's epoch and top offset are kept.
    pub meta_ttl: Duration,
}

impl StreamOptions {
    /// Whether the channel keeps history.
    pub fn enabled(&self) -> bool {
        self.history_size > 0 && !self.history_ttl.is_zero()
    }
}

/// Which publications a history read returns.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// Return publications after this position (epoch checked by the caller).
    pub since: Option<u64>,
    /// Maximum number of publications; `None` means all, `Some(0)` only the top position.
    pub limit: Option<usize>,
    /// Newest first.
    pub reverse: bool,
}

/// A history read.
#[derive(Debug, Clone, Default)]
pub struct HistoryResult {
    /// Publications in the order asked for.
    pub publications: Vec<gyre_protocol::Publication>,
    /// Top offset of the stream.
    pub offset: u64,
    /// Epoch of the stream.
    pub epoch: String,
}
