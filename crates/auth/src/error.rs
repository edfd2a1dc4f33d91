//! Error types: configuration / signing errors and token verification outcomes.

/// Error raised while building a [`TokenVerifier`](crate::TokenVerifier) or minting a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A [`VerifierOptions`](crate::VerifierOptions) field holds an unusable value.
    ///
    /// `option` is the option name as spelled in the token configuration section
    /// (e.g. `rsa_public_key`, `audience_regex`).
    #[error("invalid {option}: {reason}")]
    InvalidOption {
        /// Name of the offending option.
        option: &'static str,
        /// Human-readable description of the problem.
        reason: String,
    },
    /// Minting a token failed (bad key, unsupported key/algorithm combination, bad claims).
    #[error("token signing failed: {0}")]
    Signing(String),
}

/// Why a token was rejected.
///
/// The distinction matters to the client protocol: an expired token can be refreshed by the
/// client, while an invalid one cannot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token's `exp` claim is not after the verification time.
    #[error("token expired")]
    Expired,
    /// The token is malformed, badly signed, not yet valid, or fails a claim check.
    /// The string explains why (for logs only; never sent to clients).
    #[error("invalid token: {0}")]
    Invalid(String),
}

impl TokenError {
    /// Shorthand for building [`TokenError::Invalid`].
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        TokenError::Invalid(reason.into())
    }
}
