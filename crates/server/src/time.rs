//! Wall-clock time as unix time: the one place the server reads it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the unix epoch (0 if the clock is before it).
pub(crate) fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Current unix time in seconds, as tokens and the protocol carry it.
pub fn unix_now() -> i64 {
    i64::try_from(unix_secs()).unwrap_or(i64::MAX)
}

/// Current unix time in milliseconds (the connect result's `time`).
pub(crate) fn unix_now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
