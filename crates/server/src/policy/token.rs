//! Token verification and the mapping of its failures to protocol errors, for each use of a
//! token (connect, subscribe, refresh, sub_refresh), written once.

use gyre_auth::{ConnectToken, SubscribeToken, TokenError, TokenVerifier};
use gyre_protocol::{Disconnect, ErrorCode, ProtocolError};

/// What a token is presented for; each use answers failures differently, as upstream does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TokenUse {
    /// A connection token in the connect command.
    Connect,
    /// A connection token in the refresh command.
    Refresh,
    /// A subscription token in the subscribe command.
    Subscribe,
    /// A subscription token in the sub_refresh command.
    SubRefresh,
}

impl TokenUse {
    /// The answer to an expired token.
    fn expired(self) -> ProtocolError {
        match self {
            TokenUse::Refresh => Disconnect::EXPIRED.into(),
            TokenUse::Connect | TokenUse::Subscribe | TokenUse::SubRefresh => {
                ErrorCode::TokenExpired.into()
            }
        }
    }

    /// The answer to an invalid token, or to a token when no key is configured.
    fn invalid(self) -> ProtocolError {
        match self {
            TokenUse::Subscribe => ErrorCode::PermissionDenied.into(),
            TokenUse::Connect | TokenUse::Refresh | TokenUse::SubRefresh => {
                Disconnect::INVALID_TOKEN.into()
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            TokenUse::Connect => "connection",
            TokenUse::Refresh => "refresh",
            TokenUse::Subscribe => "subscription",
            TokenUse::SubRefresh => "sub_refresh",
        }
    }
}

fn map_error(usage: TokenUse, client: &str, err: TokenError) -> ProtocolError {
    match err {
        TokenError::Expired => usage.expired(),
        err => {
            tracing::debug!(client, "invalid {} token: {err}", usage.name());
            usage.invalid()
        }
    }
}

/// The verifier for `usage`, or the usage's "invalid token" outcome when no key is configured.
fn configured<'v>(
    verifier: Option<&'v TokenVerifier>,
    usage: TokenUse,
    client: &str,
) -> Result<&'v TokenVerifier, ProtocolError> {
    verifier.ok_or_else(|| {
        tracing::debug!(
            client,
            "{} token given but no key is configured",
            usage.name()
        );
        usage.invalid()
    })
}

/// Verifies a connection token presented for `usage`.
pub(super) fn verify_connect(
    verifier: Option<&TokenVerifier>,
    usage: TokenUse,
    client: &str,
    token: &str,
    now: i64,
) -> Result<ConnectToken, ProtocolError> {
    configured(verifier, usage, client)?
        .verify_connect(token, now)
        .map_err(|err| map_error(usage, client, err))
}

/// Verifies a subscription token presented for `usage`.
pub(super) fn verify_subscribe(
    verifier: Option<&TokenVerifier>,
    usage: TokenUse,
    client: &str,
    token: &str,
    now: i64,
) -> Result<SubscribeToken, ProtocolError> {
    configured(verifier, usage, client)?
        .verify_subscribe(token, now)
        .map_err(|err| map_error(usage, client, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_per_use() {
        let code = |e: ProtocolError| match e {
            ProtocolError::Reply(e) => (false, e.code),
            ProtocolError::Disconnect(d) => (true, u32::from(d.code)),
        };
        assert_eq!(
            code(TokenUse::Refresh.expired()),
            (true, u32::from(Disconnect::EXPIRED.code))
        );
        assert_eq!(
            code(TokenUse::Connect.expired()),
            (false, ErrorCode::TokenExpired.code())
        );
        assert_eq!(
            code(TokenUse::Subscribe.invalid()),
            (false, ErrorCode::PermissionDenied.code())
        );
        assert_eq!(
            code(TokenUse::SubRefresh.invalid()),
            (true, u32::from(Disconnect::INVALID_TOKEN.code))
        );
    }
}
