//! [`TokenVerifier`]: signature and standard-claim verification of connection and
//! subscription tokens.
//!
//! Check order follows Centrifugo: structure → signature → `exp` (→ [`TokenError::Expired`])
//! → `nbf` → `aud` → `iss` → token-kind specific claims. So a badly signed expired token is
//! *invalid*, while a correctly signed expired token is *expired* even if other claims are off.

use jsonwebtoken::DecodingKey;
use regex::Regex;
use rsa::RsaPublicKey;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::traits::PublicKeyParts;
use serde_json::Value;

use crate::algorithm::{Algorithm, KeyFamily};
use crate::claims::{
    CommonClaims, ConnectToken, SubscribeToken, build_connect, build_subscribe,
    effective_expire_at, parse_common,
};
use crate::error::{AuthError, TokenError};
use crate::jwks::Jwks;
use crate::jws::RawToken;
use crate::options::VerifierOptions;

/// Curve of the configured ECDSA public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EcCurve {
    P256,
    P384,
}

/// Verifies Centrifugo-style connection and subscription JWTs.
///
/// Built once from [`VerifierOptions`] (keys and regexes are parsed up front) and then
/// shared; verification takes `&self` and the current unix time.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    hmac: Option<DecodingKey>,
    hmac_previous: Option<DecodingKey>,
    hmac_previous_valid_until: i64,
    rsa: Option<DecodingKey>,
    ec: Option<(DecodingKey, EcCurve)>,
    audience: String,
    audience_re: Option<Regex>,
    issuer: String,
    issuer_re: Option<Regex>,
    /// `None` means the standard `sub` claim.
    user_path: Option<Vec<String>>,
    skip_signature_verify: bool,
    /// Keys from a JWKS endpoint, by `kid`, for the asymmetric algorithms.
    jwks: Option<Jwks>,
}

fn option_error(option: &'static str, reason: impl Into<String>) -> AuthError {
    AuthError::InvalidOption {
        option,
        reason: reason.into(),
    }
}

fn compile_regex(option: &'static str, pattern: &str) -> Result<Option<Regex>, AuthError> {
    if pattern.is_empty() {
        return Ok(None);
    }
    Regex::new(pattern)
        .map(Some)
        .map_err(|e| option_error(option, e.to_string()))
}

fn load_rsa_key(pem: &str) -> Result<DecodingKey, AuthError> {
    const OPT: &str = "rsa_public_key";
    let key =
        DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| option_error(OPT, e.to_string()))?;
    // `from_rsa_pem` only unwraps the PEM/SPKI envelope; parse the PKCS#1 body now so a broken
    // key fails at startup instead of silently rejecting every token.
    let der = match key.kind() {
        jsonwebtoken::DecodingKeyKind::SecretOrDer(der) => der.as_slice(),
        jsonwebtoken::DecodingKeyKind::RsaModulusExponent { .. } => return Ok(key),
    };
    let public = RsaPublicKey::from_pkcs1_der(der).map_err(|e| option_error(OPT, e.to_string()))?;
    Ok(DecodingKey::from_rsa_raw_components(
        &public.n().to_bytes_be(),
        &public.e().to_bytes_be(),
    ))
}

fn load_ec_key(pem: &str) -> Result<(DecodingKey, EcCurve), AuthError> {
    const OPT: &str = "ecdsa_public_key";
    let key =
        DecodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| option_error(OPT, e.to_string()))?;
    // Building a verifier parses the curve point; an empty signature then merely fails to match.
    let probe = |alg| jsonwebtoken::crypto::verify("", b"", &key, alg).is_ok();
    if probe(jsonwebtoken::Algorithm::ES256) {
        Ok((key, EcCurve::P256))
    } else if probe(jsonwebtoken::Algorithm::ES384) {
        Ok((key, EcCurve::P384))
    } else {
        Err(option_error(
            OPT,
            "unsupported curve (expected P-256 or P-384)",
        ))
    }
}

fn parse_user_path(claim: &str) -> Result<Option<Vec<String>>, AuthError> {
    let claim = claim.trim();
    if claim.is_empty() || claim == "sub" {
        return Ok(None);
    }
    let segments: Vec<String> = claim.split('.').map(str::to_owned).collect();
    if segments.iter().any(String::is_empty) {
        return Err(option_error(
            "user_id_claim",
            format!("empty path segment in {claim:?}"),
        ));
    }
    Ok(Some(segments))
}

/// Converts a user id claim value into the user string.
fn user_from_value(value: Option<&Value>) -> Result<String, TokenError> {
    match value {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(TokenError::invalid("user id claim must be a string")),
    }
}

impl TokenVerifier {
    /// Builds a verifier, parsing PEM keys and compiling regexes.
    ///
    /// Fails with [`AuthError::InvalidOption`] naming the bad option (`rsa_public_key`,
    /// `ecdsa_public_key`, `audience_regex`, `issuer_regex`, `user_id_claim`).
    pub fn new(opts: VerifierOptions) -> Result<TokenVerifier, AuthError> {
        let secret = |s: &str| (!s.is_empty()).then(|| DecodingKey::from_secret(s.as_bytes()));
        let rsa = match opts.rsa_public_key.trim() {
            "" => None,
            pem => Some(load_rsa_key(pem)?),
        };
        let ec = match opts.ecdsa_public_key.trim() {
            "" => None,
            pem => Some(load_ec_key(pem)?),
        };
        Ok(TokenVerifier {
            hmac: secret(&opts.hmac_secret_key),
            hmac_previous: secret(&opts.hmac_previous_secret_key),
            hmac_previous_valid_until: opts.hmac_previous_secret_key_valid_until,
            rsa,
            ec,
            audience_re: compile_regex("audience_regex", &opts.audience_regex)?,
            issuer_re: compile_regex("issuer_regex", &opts.issuer_regex)?,
            audience: opts.audience,
            issuer: opts.issuer,
            user_path: parse_user_path(&opts.user_id_claim)?,
            skip_signature_verify: opts.skip_signature_verify,
            jwks: opts.jwks,
        })
    }

    /// Verifies a connection token at time `now_unix` (unix seconds).
    ///
    /// Errors: [`TokenError::Expired`] when `exp <= now`; [`TokenError::Invalid`] for a
    /// (also when `nbf > now`, as upstream); [`TokenError::Invalid`] for a
    /// malformed token, bad signature, algorithm without configured key,
    /// `aud`/`iss` mismatch, malformed claims, or a non-empty `channel` claim.
    pub fn verify_connect(&self, token: &str, now_unix: i64) -> Result<ConnectToken, TokenError> {
        let (raw, common) = self.verify_common(token, now_unix)?;
        let expire_at = self.check_time_and_scope(&common, now_unix)?;
        let user = self.extract_user(&raw.payload, &common)?;
        build_connect(&raw.payload, user, expire_at)
    }

    /// Verifies a channel subscription token at time `now_unix` (unix seconds).
    ///
    /// Same checks as [`verify_connect`](Self::verify_connect); additionally the `channel`
    /// claim must be a non-empty string. Matching `channel`, user and `client` against the
    /// subscribe request is left to the caller.
    pub fn verify_subscribe(
        &self,
        token: &str,
        now_unix: i64,
    ) -> Result<SubscribeToken, TokenError> {
        let (raw, common) = self.verify_common(token, now_unix)?;
        let expire_at = self.check_time_and_scope(&common, now_unix)?;
        let user = self.extract_user(&raw.payload, &common)?;
        build_subscribe(&raw.payload, user, expire_at)
    }

    /// Parses the token, checks its signature and decodes the shared claims.
    fn verify_common<'t>(
        &self,
        token: &'t str,
        now_unix: i64,
    ) -> Result<(RawToken<'t>, CommonClaims), TokenError> {
        let raw = RawToken::parse(token)?;
        if !self.skip_signature_verify {
            self.check_signature(&raw, now_unix)?;
        }
        let common = parse_common(&raw.payload)?;
        Ok((raw, common))
    }

    fn check_signature(&self, raw: &RawToken<'_>, now_unix: i64) -> Result<(), TokenError> {
        let name = raw
            .alg
            .as_deref()
            .ok_or_else(|| TokenError::invalid("missing alg header"))?;
        let alg = Algorithm::from_name(name)
            .ok_or_else(|| TokenError::invalid(format!("unsupported algorithm {name:?}")))?;
        let no_key = || TokenError::invalid(format!("no key configured for {alg}"));
        if let Some(jwks) = &self.jwks
            && alg.family() != KeyFamily::Hmac
        {
            // With JWKS, asymmetric tokens name their key (upstream requires the kid).
            let kid = raw
                .kid
                .as_deref()
                .ok_or_else(|| TokenError::invalid("kid is not provided"))?;
            let key = jwks
                .key(kid, alg)
                .ok_or_else(|| TokenError::invalid(format!("no {alg} key {kid:?} in JWKS")))?;
            return if signature_ok(raw, &key, alg) {
                Ok(())
            } else {
                Err(TokenError::invalid("signature verification failed"))
            };
        }
        let valid = match alg.family() {
            KeyFamily::Hmac => {
                if self.hmac.is_none() && self.hmac_previous.is_none() {
                    return Err(no_key());
                }
                let current_ok = self
                    .hmac
                    .as_ref()
                    .is_some_and(|k| signature_ok(raw, k, alg));
                current_ok || self.previous_hmac_ok(raw, alg, now_unix)
            }
            KeyFamily::Rsa => signature_ok(raw, self.rsa.as_ref().ok_or_else(no_key)?, alg),
            KeyFamily::Ec => {
                let (key, curve) = self.ec.as_ref().ok_or_else(no_key)?;
                let wanted = if alg == Algorithm::Es256 {
                    EcCurve::P256
                } else {
                    EcCurve::P384
                };
                if *curve != wanted {
                    return Err(TokenError::invalid(format!(
                        "{alg} token does not match the configured ECDSA key curve"
                    )));
                }
                signature_ok(raw, key, alg)
            }
            KeyFamily::Ed => return Err(no_key()),
        };
        if valid {
            Ok(())
        } else {
            Err(TokenError::invalid("signature verification failed"))
        }
    }

    /// The previous HMAC key counts while `now < valid_until` (or forever if unset).
    fn previous_hmac_ok(&self, raw: &RawToken<'_>, alg: Algorithm, now_unix: i64) -> bool {
        let in_window =
            self.hmac_previous_valid_until == 0 || now_unix < self.hmac_previous_valid_until;
        in_window
            && self
                .hmac_previous
                .as_ref()
                .is_some_and(|k| signature_ok(raw, k, alg))
    }

    /// Checks `exp`, `nbf`, `aud`, `iss`; returns the effective expiry.
    fn check_time_and_scope(
        &self,
        claims: &CommonClaims,
        now_unix: i64,
    ) -> Result<Option<i64>, TokenError> {
        let now = now_unix as f64;
        if claims.exp.is_some_and(|exp| exp <= now) {
            return Err(TokenError::Expired);
        }
        // A token not valid yet counts as expired, as upstream answers it (109 / refresh).
        if claims.nbf.is_some_and(|nbf| nbf > now) {
            return Err(TokenError::Expired);
        }

        let audiences = claims.aud.as_ref().map(|a| a.values()).unwrap_or_default();
        if !self.audience.is_empty() && !audiences.contains(&self.audience) {
            return Err(TokenError::invalid("audience mismatch"));
        }
        if let Some(re) = &self.audience_re
            && !audiences.iter().any(|a| re.is_match(a))
        {
            return Err(TokenError::invalid(
                "audience does not match audience_regex",
            ));
        }

        let issuer = claims.iss.as_deref().unwrap_or_default();
        if !self.issuer.is_empty() && issuer != self.issuer {
            return Err(TokenError::invalid("issuer mismatch"));
        }
        if let Some(re) = &self.issuer_re
            && !re.is_match(issuer)
        {
            return Err(TokenError::invalid("issuer does not match issuer_regex"));
        }

        // Saturating float → int conversion; fractional seconds are truncated.
        let exp = claims.exp.map(|exp| exp as i64);
        Ok(effective_expire_at(exp, claims.expire_at))
    }

    fn extract_user(&self, payload: &str, claims: &CommonClaims) -> Result<String, TokenError> {
        let Some(path) = &self.user_path else {
            return user_from_value(claims.sub.as_ref());
        };
        let root: Value = serde_json::from_str(payload)
            .map_err(|e| TokenError::invalid(format!("malformed claims: {e}")))?;
        let mut current = Some(&root);
        for segment in path {
            current = match current {
                Some(Value::Object(map)) => map.get(segment),
                Some(Value::Array(items)) => {
                    segment.parse::<usize>().ok().and_then(|i| items.get(i))
                }
                _ => None,
            };
        }
        user_from_value(current)
    }
}

/// True if the token's signature is valid for `key`; any error counts as a mismatch.
fn signature_ok(raw: &RawToken<'_>, key: &DecodingKey, alg: Algorithm) -> bool {
    jsonwebtoken::crypto::verify(
        raw.signature,
        raw.signing_input.as_bytes(),
        key,
        alg.to_jwt(),
    )
    .unwrap_or(false)
}
