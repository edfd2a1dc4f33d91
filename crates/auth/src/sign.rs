//! Token minting: for tests and `gentoken`-style tooling.

use jsonwebtoken::{EncodingKey, Header};

use crate::algorithm::{Algorithm, KeyFamily};
use crate::error::AuthError;

/// Signs `claims` (which must be a JSON object) with `alg` and returns a compact JWT.
///
/// `key` is the HMAC secret (raw UTF-8 bytes) for `HS*`, or a PEM-encoded **private** key for
/// the other algorithms: RSA (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`) for `RS*`/`PS*`,
/// PKCS#8 `PRIVATE KEY` on P-256 / P-384 for `ES256` / `ES384`, PKCS#8 Ed25519 for `EdDSA`.
/// The header is `{"typ":"JWT","alg":…}`.
pub fn sign(alg: Algorithm, key: &str, claims: &serde_json::Value) -> Result<String, AuthError> {
    sign_with_kid(alg, key, None, claims)
}

/// [`sign`] with a `kid` header naming the key (as JWKS-verified tokens carry).
pub fn sign_with_kid(
    alg: Algorithm,
    key: &str,
    kid: Option<&str>,
    claims: &serde_json::Value,
) -> Result<String, AuthError> {
    if !claims.is_object() {
        return Err(AuthError::Signing(
            "claims must be a JSON object".to_owned(),
        ));
    }
    let signing_error = |e: jsonwebtoken::errors::Error| AuthError::Signing(e.to_string());
    let encoding_key = match alg.family() {
        KeyFamily::Hmac => {
            if key.is_empty() {
                return Err(AuthError::Signing("empty HMAC secret".to_owned()));
            }
            EncodingKey::from_secret(key.as_bytes())
        }
        KeyFamily::Rsa => EncodingKey::from_rsa_pem(key.as_bytes()).map_err(signing_error)?,
        KeyFamily::Ec => EncodingKey::from_ec_pem(key.as_bytes()).map_err(signing_error)?,
        KeyFamily::Ed => EncodingKey::from_ed_pem(key.as_bytes()).map_err(signing_error)?,
    };
    let mut header = Header::new(alg.to_jwt());
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &encoding_key).map_err(signing_error)
}

/// Signs `claims` with HS256 and `secret`: the Centrifugo `gentoken` format.
pub fn sign_hs256(secret: &str, claims: &serde_json::Value) -> Result<String, AuthError> {
    sign(Algorithm::Hs256, secret, claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rejects_non_object_claims_and_bad_keys() {
        assert!(matches!(
            sign_hs256("s", &json!([1])),
            Err(AuthError::Signing(_))
        ));
        assert!(matches!(
            sign_hs256("", &json!({})),
            Err(AuthError::Signing(_))
        ));
        assert!(matches!(
            sign(Algorithm::Rs256, "not a pem", &json!({})),
            Err(AuthError::Signing(_))
        ));
        assert!(matches!(
            sign(Algorithm::Es256, "", &json!({})),
            Err(AuthError::Signing(_))
        ));
    }

    #[test]
    fn hs256_has_three_segments() {
        let token = sign_hs256("secret", &json!({"sub": "42"})).expect("signs");
        assert_eq!(token.split('.').count(), 3);
    }
}
