//! [`Jwks`]: public keys fetched from a JWKS endpoint, by key id, shared between the verifier
//! (which reads them) and the fetcher (which replaces them).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};

use crate::algorithm::{Algorithm, KeyFamily};
use crate::error::AuthError;

/// How long a fetched key is trusted before the endpoint is asked again (upstream: one hour).
const KEY_TTL: Duration = Duration::from_secs(3600);

/// What a JWKS key verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    fn verifies(self, alg: Algorithm) -> bool {
        match self {
            KeyKind::Rsa => alg.family() == KeyFamily::Rsa,
            KeyKind::P256 => alg == Algorithm::Es256,
            KeyKind::P384 => alg == Algorithm::Es384,
            KeyKind::Ed25519 => alg == Algorithm::EdDsa,
        }
    }
}

#[derive(Clone)]
struct Entry {
    key: DecodingKey,
    kind: KeyKind,
    fetched: Instant,
}

/// A set of JWKS public keys by `kid`. Cloning shares the set.
#[derive(Clone, Default)]
pub struct Jwks {
    keys: Arc<RwLock<HashMap<String, Entry>>>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.keys.read().map(|k| k.len()).unwrap_or(0);
        f.debug_struct("Jwks").field("keys", &count).finish()
    }
}

impl Jwks {
    /// An empty set.
    pub fn new() -> Jwks {
        Jwks::default()
    }

    /// Replaces the set with the keys of a JWKS document (`{"keys":[...]}`); keys without a
    /// `kid` or of an unsupported type are skipped. Returns how many keys were loaded.
    pub fn replace_from_json(&self, document: &[u8]) -> Result<usize, AuthError> {
        let set: JwkSet =
            serde_json::from_slice(document).map_err(|e| AuthError::InvalidOption {
                option: "jwks_public_endpoint",
                reason: format!("not a JWKS document: {e}"),
            })?;
        let now = Instant::now();
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            let kind = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => KeyKind::Rsa,
                AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                    EllipticCurve::P256 => KeyKind::P256,
                    EllipticCurve::P384 => KeyKind::P384,
                    _ => continue,
                },
                AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                    KeyKind::Ed25519
                }
                _ => continue,
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            keys.insert(
                kid,
                Entry {
                    key,
                    kind,
                    fetched: now,
                },
            );
        }
        let count = keys.len();
        if let Ok(mut current) = self.keys.write() {
            *current = keys;
        }
        Ok(count)
    }

    /// Whether a fresh key with this id is in the set.
    pub fn has(&self, kid: &str) -> bool {
        self.keys
            .read()
            .is_ok_and(|keys| keys.get(kid).is_some_and(|e| e.fetched.elapsed() < KEY_TTL))
    }

    /// The key a token signed with `alg` under `kid` verifies with, if the set has a fresh one of
    /// the right type.
    pub(crate) fn key(&self, kid: &str, alg: Algorithm) -> Option<DecodingKey> {
        let keys = self.keys.read().ok()?;
        let entry = keys.get(kid)?;
        (entry.fetched.elapsed() < KEY_TTL && entry.kind.verifies(alg)).then(|| entry.key.clone())
    }

    /// The `kid` header of a token that needs a key this set does not have (yet): the caller
    /// fetches the endpoint again before verifying. `None` when the token has no `kid`, is not
    /// a JWT, or its key is here.
    pub fn missing_kid(&self, token: &str) -> Option<String> {
        let kid = crate::jws::RawToken::parse(token).ok()?.kid?;
        (!self.has(&kid)).then_some(kid)
    }
}
