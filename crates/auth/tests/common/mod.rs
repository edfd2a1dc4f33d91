//! Shared helpers for the integration tests.
#![allow(dead_code)]

use gyre_auth::{TokenVerifier, VerifierOptions, sign_hs256};
use serde_json::Value;

/// A fixed "current time" used by the tests.
pub const NOW: i64 = 1_700_000_000;

pub const RSA_PRIVATE: &str = include_str!("../keys/rsa_private.pem");
pub const RSA_PUBLIC: &str = include_str!("../keys/rsa_public.pem");
pub const RSA_OTHER_PUBLIC: &str = include_str!("../keys/rsa_other_public.pem");
pub const EC256_PRIVATE: &str = include_str!("../keys/ec256_private.pem");
pub const EC256_PUBLIC: &str = include_str!("../keys/ec256_public.pem");
pub const EC384_PRIVATE: &str = include_str!("../keys/ec384_private.pem");
pub const EC384_PUBLIC: &str = include_str!("../keys/ec384_public.pem");

/// Options with only an HMAC secret.
pub fn hmac_opts(secret: &str) -> VerifierOptions {
    VerifierOptions {
        hmac_secret_key: secret.to_owned(),
        ..VerifierOptions::default()
    }
}

/// Verifier with only an HMAC secret.
pub fn hmac_verifier(secret: &str) -> TokenVerifier {
    TokenVerifier::new(hmac_opts(secret)).expect("valid options")
}

/// HS256 token signed with `secret`.
pub fn hs256(secret: &str, claims: Value) -> String {
    sign_hs256(secret, &claims).expect("signing works")
}
