//! Protocol outcomes as values: reply error codes, disconnect codes and unsubscribe codes;
//! named protocol flags and delta types.

use std::borrow::Cow;
use std::fmt;

/// A reply error code with upstream's message and temporary flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 100: internal server error (temporary).
    Internal,
    /// 101: unauthorized.
    Unauthorized,
    /// 102: unknown channel (no such namespace).
    UnknownChannel,
    /// 103: permission denied.
    PermissionDenied,
    /// 104: method not found.
    MethodNotFound,
    /// 105: already subscribed.
    AlreadySubscribed,
    /// 106: limit exceeded.
    LimitExceeded,
    /// 107: bad request.
    BadRequest,
    /// 108: not available.
    NotAvailable,
    /// 109: token expired.
    TokenExpired,
    /// 110: expired.
    Expired,
    /// 111: too many requests (temporary).
    TooManyRequests,
    /// 112: unrecoverable position.
    UnrecoverablePosition,
}

impl ErrorCode {
    /// The error code with this number, if it is one of the protocol's.
    pub const fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            100 => Self::Internal,
            101 => Self::Unauthorized,
            102 => Self::UnknownChannel,
            103 => Self::PermissionDenied,
            104 => Self::MethodNotFound,
            105 => Self::AlreadySubscribed,
            106 => Self::LimitExceeded,
            107 => Self::BadRequest,
            108 => Self::NotAvailable,
            109 => Self::TokenExpired,
            110 => Self::Expired,
            111 => Self::TooManyRequests,
            112 => Self::UnrecoverablePosition,
            _ => return None,
        })
    }

    /// The numeric code.
    pub const fn code(self) -> u32 {
        match self {
            Self::Internal => 100,
            Self::Unauthorized => 101,
            Self::UnknownChannel => 102,
            Self::PermissionDenied => 103,
            Self::MethodNotFound => 104,
            Self::AlreadySubscribed => 105,
            Self::LimitExceeded => 106,
            Self::BadRequest => 107,
            Self::NotAvailable => 108,
            Self::TokenExpired => 109,
            Self::Expired => 110,
            Self::TooManyRequests => 111,
            Self::UnrecoverablePosition => 112,
        }
    }

    /// Upstream's message for the code.
    pub const fn message(self) -> &'static str {
        match self {
            Self::Internal => "internal server error",
            Self::Unauthorized => "unauthorized",
            Self::UnknownChannel => "unknown channel",
            Self::PermissionDenied => "permission denied",
            Self::MethodNotFound => "method not found",
            Self::AlreadySubscribed => "already subscribed",
            Self::LimitExceeded => "limit exceeded",
            Self::BadRequest => "bad request",
            Self::NotAvailable => "not available",
            Self::TokenExpired => "token expired",
            Self::Expired => "expired",
            Self::TooManyRequests => "too many requests",
            Self::UnrecoverablePosition => "unrecoverable position",
        }
    }

    /// Whether a client may retry.
    pub const fn temporary(self) -> bool {
        matches!(self, Self::Internal | Self::TooManyRequests)
    }

    /// The wire error.
    pub fn to_error(self) -> crate::Error {
        crate::Error {
            code: self.code(),
            message: self.message().to_owned(),
            temporary: self.temporary(),
        }
    }
}

/// A disconnect: the close code and reason sent to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// Close code (3000-4999).
    pub code: u16,
    /// Reason, short enough for a WebSocket close frame.
    pub reason: Cow<'static, str>,
}

impl Disconnect {
    /// 3001: the server is shutting down (reconnect).
    pub const SHUTDOWN: Self = Self::new(3001, "shutdown");
    /// 3004: internal server error (reconnect).
    pub const SERVER_ERROR: Self = Self::new(3004, "internal server error");
    /// 3005: the connection expired (reconnect with a new token).
    pub const EXPIRED: Self = Self::new(3005, "connection expired");
    /// 3006: a server-side subscription expired (reconnect).
    pub const SUBSCRIPTION_EXPIRED: Self = Self::new(3006, "subscription expired");
    /// 3008: the client reads too slowly (reconnect).
    pub const SLOW: Self = Self::new(3008, "slow");
    /// 3009: writing to the client failed (reconnect).
    pub const WRITE_ERROR: Self = Self::new(3009, "write error");
    /// 3010: the server lost the stream state for a server-side subscription (reconnect).
    pub const INSUFFICIENT_STATE: Self = Self::new(3010, "insufficient state");
    /// 3011: forced reconnect.
    pub const FORCE_RECONNECT: Self = Self::new(3011, "force reconnect");
    /// 3012: no pong in time (reconnect).
    pub const NO_PONG: Self = Self::new(3012, "no pong");
    /// 3013: too many requests (reconnect).
    pub const TOO_MANY_REQUESTS: Self = Self::new(3013, "too many requests");
    /// 3500: invalid token (terminal).
    pub const INVALID_TOKEN: Self = Self::new(3500, "invalid token");
    /// 3501: bad request (terminal).
    pub const BAD_REQUEST: Self = Self::new(3501, "bad request");
    /// 3502: no connect command in time (terminal).
    pub const STALE: Self = Self::new(3502, "stale");
    /// 3503: disconnected by the server (terminal).
    pub const FORCE_NO_RECONNECT: Self = Self::new(3503, "force disconnect");
    /// 3504: connection limit reached (terminal).
    pub const CONNECTION_LIMIT: Self = Self::new(3504, "connection limit");
    /// 3505: channel limit reached (terminal).
    pub const CHANNEL_LIMIT: Self = Self::new(3505, "channel limit");
    /// 3506: a payload cannot be carried by this protocol (terminal).
    pub const INAPPROPRIATE_PROTOCOL: Self = Self::new(3506, "inappropriate protocol");
    /// 3507: permission denied (terminal).
    pub const PERMISSION_DENIED: Self = Self::new(3507, "permission denied");
    /// 3508: not available (terminal).
    pub const NOT_AVAILABLE: Self = Self::new(3508, "not available");
    /// 3509: too many errors (terminal).
    pub const TOO_MANY_ERRORS: Self = Self::new(3509, "too many errors");

    /// A disconnect with a code and a reason.
    pub const fn new(code: u16, reason: &'static str) -> Self {
        Self {
            code,
            reason: Cow::Borrowed(reason),
        }
    }

    /// A disconnect with a reason built at run time (cut to fit a close frame).
    pub fn custom(code: u16, reason: &str) -> Self {
        let mut end = reason.len().min(120);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            code,
            reason: Cow::Owned(reason[..end].to_owned()),
        }
    }

    /// Whether a client reconnects after this code (upstream's rule, shared by all SDKs).
    pub const fn reconnect(code: u32) -> bool {
        code < 3500 || code >= 5000 || (code >= 4000 && code < 4500)
    }
}

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}

/// Unsubscribe push codes (2000-2999; 2500 and above make the client resubscribe).
pub mod unsubscribe {
    /// 2000: unsubscribed by the server.
    pub const SERVER: u32 = 2000;
    /// 2500: the server lost the stream position; resubscribe and recover.
    pub const INSUFFICIENT_STATE: u32 = 2500;
    /// 2501: the subscription expired; resubscribe.
    pub const EXPIRED: u32 = 2501;
}

/// Capability bits of a subscribe request (`SubscribeRequest.flag`).
pub mod subscribe_flag {
    /// 1: the client understands channel compaction.
    pub const CHANNEL_COMPACTION: i64 = 1;
    /// 2: the subscription fails (error 112) instead of going on when its position cannot be
    /// recovered.
    pub const REJECT_UNRECOVERED: i64 = 2;
}

/// Delta compression types a subscribe request may ask for (`SubscribeRequest.delta`).
pub mod delta {
    /// Fossil delta.
    pub const FOSSIL: &str = "fossil";
}

/// What a command can end in besides success: an error reply or a disconnect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// Answer the command with this error.
    Reply(crate::Error),
    /// Close the connection.
    Disconnect(Disconnect),
}

impl From<ErrorCode> for ProtocolError {
    fn from(code: ErrorCode) -> Self {
        Self::Reply(code.to_error())
    }
}

impl From<Disconnect> for ProtocolError {
    fn from(d: Disconnect) -> Self {
        Self::Disconnect(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_code_inverts_code() {
        for n in 90..120 {
            match ErrorCode::from_code(n) {
                Some(code) => assert_eq!(code.code(), n),
                None => assert!(!(100..=112).contains(&n), "{n} has no ErrorCode"),
            }
        }
    }
}
