//! Verifier configuration, independent of the Gyre configuration crate.

use std::fmt;

/// Configuration of a [`TokenVerifier`](crate::TokenVerifier).
///
/// Mirrors Centrifugo's `client.token` / `client.subscription_token` sections. Empty strings
/// mean "not configured". At least one key (or `skip_signature_verify`) is needed for any
/// token to verify; a token whose algorithm has no configured key is invalid.
#[derive(Clone)]
pub struct VerifierOptions {
    /// Secret for HS256/HS384/HS512 (used as raw UTF-8 bytes).
    pub hmac_secret_key: String,
    /// Previous HMAC secret, still accepted during key rotation.
    pub hmac_previous_secret_key: String,
    /// Unix seconds until which `hmac_previous_secret_key` is accepted (exclusive).
    /// `0` means no time limit (the previous key is accepted while configured).
    pub hmac_previous_secret_key_valid_until: i64,
    /// PEM public key (`PUBLIC KEY` or `RSA PUBLIC KEY`) for RS256/384/512 and PS256/384/512.
    pub rsa_public_key: String,
    /// PEM public key (`PUBLIC KEY`) on P-256 (for ES256) or P-384 (for ES384).
    pub ecdsa_public_key: String,
    /// Required `aud` value (any element of an `aud` array may match).
    pub audience: String,
    /// Regular expression that some `aud` value must match (unanchored, like Go's `MatchString`).
    pub audience_regex: String,
    /// Required `iss` value.
    pub issuer: String,
    /// Regular expression that `iss` must match (unanchored; a missing `iss` is tested as `""`).
    pub issuer_regex: String,
    /// Claim holding the user id: a dotted path into the claims object (`"sub"` by default;
    /// `"user.id"` reads `{"user":{"id":…}}`; numeric segments index arrays). Empty means `sub`.
    pub user_id_claim: String,
    /// Do not check signatures at all (development only). Time and `aud`/`iss` checks still run.
    pub skip_signature_verify: bool,
    /// Public keys from `jwks_public_endpoint`, by `kid`, used instead of `rsa_public_key` /
    /// `ecdsa_public_key` for asymmetric tokens; the caller keeps the set fresh.
    pub jwks: Option<crate::Jwks>,
}

impl Default for VerifierOptions {
    fn default() -> Self {
        VerifierOptions {
            hmac_secret_key: String::new(),
            hmac_previous_secret_key: String::new(),
            hmac_previous_secret_key_valid_until: 0,
            rsa_public_key: String::new(),
            ecdsa_public_key: String::new(),
            audience: String::new(),
            audience_regex: String::new(),
            issuer: String::new(),
            issuer_regex: String::new(),
            user_id_claim: "sub".to_owned(),
            skip_signature_verify: false,
            jwks: None,
        }
    }
}

/// Secrets are redacted; public keys are only reported as set / unset.
impl fmt::Debug for VerifierOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn set(s: &str) -> &'static str {
            if s.is_empty() { "<unset>" } else { "<set>" }
        }
        f.debug_struct("VerifierOptions")
            .field("hmac_secret_key", &set(&self.hmac_secret_key))
            .field(
                "hmac_previous_secret_key",
                &set(&self.hmac_previous_secret_key),
            )
            .field(
                "hmac_previous_secret_key_valid_until",
                &self.hmac_previous_secret_key_valid_until,
            )
            .field("rsa_public_key", &set(&self.rsa_public_key))
            .field("ecdsa_public_key", &set(&self.ecdsa_public_key))
            .field("audience", &self.audience)
            .field("audience_regex", &self.audience_regex)
            .field("issuer", &self.issuer)
            .field("issuer_regex", &self.issuer_regex)
            .field("user_id_claim", &self.user_id_claim)
            .field("skip_signature_verify", &self.skip_signature_verify)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let opts = VerifierOptions {
            hmac_secret_key: "top-secret".into(),
            ..VerifierOptions::default()
        };
        let text = format!("{opts:?}");
        assert!(!text.contains("top-secret"));
        assert!(text.contains("<set>"));
        assert_eq!(opts.user_id_claim, "sub");
    }
}
