//! Channel services shared by the client protocol (session) and the server API: history
//! reads with protocol semantics, data-format and presence checks.

use gyre_config::DataFormat;
use gyre_protocol::{ErrorCode, HistoryResult, StreamPosition};

use super::{Node, ServiceError};
use crate::engine::{HistoryFilter, StreamOptions};

/// Whether `data` suits a namespace's `publication_data_format`.
pub(crate) fn data_format_ok(format: &DataFormat, data: &[u8]) -> bool {
    match format {
        DataFormat::Json => gyre_protocol::raw::is_json(data),
        DataFormat::JsonObject => {
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(data).is_ok()
        }
        DataFormat::Any | DataFormat::Binary | DataFormat::Unknown(_) => true,
    }
}

/// Reads history with protocol semantics (limit, since, reverse, cap, epoch check).
pub(crate) async fn read_history(
    node: &Node,
    channel: &str,
    stream: &StreamOptions,
    limit: i32,
    since: Option<&StreamPosition>,
    reverse: bool,
    max: usize,
) -> Result<HistoryResult, ErrorCode> {
    let filter = history_filter(limit, since, reverse, max);
    let h = node.history(channel, stream, &filter).await?;
    check_epoch(since, &h.epoch)?;
    Ok(h)
}

/// Checks that a channel named by a server API presence request exists and keeps presence.
pub(crate) fn presence_channel(node: &Node, channel: &str) -> Result<(), ServiceError> {
    if channel.is_empty() {
        return Err(ServiceError::bad_request("bad request: channel required"));
    }
    if !node.channel(channel)?.options.presence {
        return Err(ErrorCode::NotAvailable.into());
    }
    Ok(())
}

/// A history position check: the client's epoch must match the stream's.
pub(crate) fn check_epoch(since: Option<&StreamPosition>, epoch: &str) -> Result<(), ErrorCode> {
    match since {
        Some(since) if !since.epoch.is_empty() && since.epoch != epoch => {
            Err(ErrorCode::UnrecoverablePosition)
        }
        _ => Ok(()),
    }
}

/// Translates a protocol history limit into a filter limit, capped at `max` (0: no cap).
pub(crate) fn history_filter(
    limit: i32,
    since: Option<&StreamPosition>,
    reverse: bool,
    max: usize,
) -> HistoryFilter {
    let cap = if max == 0 { usize::MAX } else { max };
    let limit = match limit {
        0 => Some(0),
        n if n < 0 => (max > 0).then_some(cap),
        n => Some((n as usize).min(cap)),
    };
    HistoryFilter {
        since: since.map(|s| s.offset),
        limit,
        reverse,
    }
}
