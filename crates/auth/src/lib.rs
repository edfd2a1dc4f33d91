//! JWT verification and minting for Gyre, a Centrifugo-compatible real-time server.
//!
//! This crate is self-contained: it does not depend on any other Gyre crate and is
//! configured through its own [`VerifierOptions`].
//!
//! * [`TokenVerifier`] checks connection tokens ([`TokenVerifier::verify_connect`]) and
//!   channel subscription tokens ([`TokenVerifier::verify_subscribe`]) the way Centrifugo
//!   does: signature (HMAC, RSA PKCS#1 v1.5 / PSS, ECDSA P-256 / P-384), `exp`, `nbf` and,
//!   when configured, `aud` / `iss` (exact value or regular expression).
//! * Verification failures are reported as [`TokenError`]: [`TokenError::Expired`] for a
//!   token whose `exp` has passed and [`TokenError::Invalid`] for everything else. The server
//!   maps them to protocol codes (connect: 109 / disconnect 3500; subscribe: 109 / 103).
//! * [`sign`] and [`sign_hs256`] mint tokens (tests, `gentoken`-style tooling).
//!
//! The current time is always passed in by the caller (unix seconds), which keeps the
//! verifier deterministic and easy to test.
//!
//! ```
//! use gyre_auth::{TokenError, TokenVerifier, VerifierOptions, sign_hs256};
//! use serde_json::json;
//!
//! let verifier = TokenVerifier::new(VerifierOptions {
//!     hmac_secret_key: "secret".into(),
//!     ..VerifierOptions::default()
//! })?;
//! let now = 1_700_000_000;
//! let token = sign_hs256("secret", &json!({"sub": "42", "exp": now + 3600}))?;
//! let conn = verifier.verify_connect(&token, now)?;
//! assert_eq!(conn.user, "42");
//! assert_eq!(conn.expire_at, Some(now + 3600));
//! assert_eq!(verifier.verify_connect(&token, now + 3600), Err(TokenError::Expired));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod algorithm;
mod claims;
mod error;
mod jwks;
mod jws;
mod options;
mod sign;
mod verifier;

pub use algorithm::{Algorithm, UnsupportedAlgorithm};
pub use claims::{ChannelOverride, ConnectToken, SubscribeClaimOptions, SubscribeToken};
pub use error::{AuthError, TokenError};
pub use jwks::Jwks;
pub use options::VerifierOptions;
pub use sign::{sign, sign_hs256, sign_with_kid};
pub use verifier::TokenVerifier;
