//! Splitting and decoding of compact JWS strings (`header.payload.signature`).
//!
//! Everything here treats its input as hostile: no panics, every failure is
//! [`TokenError::Invalid`].

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;

use crate::error::TokenError;

/// base64url decoder that tolerates (but does not require) `=` padding.
const B64_URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Upper bound on the token length we are willing to decode (1 MiB).
const MAX_TOKEN_LEN: usize = 1 << 20;

/// The JOSE header fields we care about.
#[derive(Debug, Deserialize)]
struct Header {
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

/// A structurally valid compact JWS whose signature has not been checked yet.
#[derive(Debug)]
pub(crate) struct RawToken<'a> {
    /// `header.payload` exactly as received: the bytes covered by the signature.
    pub signing_input: &'a str,
    /// The base64url signature segment.
    pub signature: &'a str,
    /// The `alg` header value, if present.
    pub alg: Option<String>,
    /// The `kid` header value (which JWKS key signed the token), if present.
    pub kid: Option<String>,
    /// The decoded payload, guaranteed to be valid UTF-8.
    pub payload: String,
}

impl<'a> RawToken<'a> {
    /// Splits and decodes `token`. Header and payload must be base64url-encoded JSON objects.
    pub fn parse(token: &'a str) -> Result<RawToken<'a>, TokenError> {
        if token.is_empty() {
            return Err(TokenError::invalid("empty token"));
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::invalid("token too large"));
        }
        let (signing_input, signature) = token
            .rsplit_once('.')
            .ok_or_else(|| TokenError::invalid("token must have three segments"))?;
        let (header_b64, payload_b64) = signing_input
            .split_once('.')
            .ok_or_else(|| TokenError::invalid("token must have three segments"))?;
        if payload_b64.contains('.') {
            return Err(TokenError::invalid("token must have three segments"));
        }

        let header_bytes = decode_segment(header_b64, "header")?;
        if header_bytes.trim_ascii_start().first() != Some(&b'{') {
            return Err(TokenError::invalid("header is not a JSON object"));
        }
        let header: Header = serde_json::from_slice(&header_bytes)
            .map_err(|e| TokenError::invalid(format!("malformed header: {e}")))?;

        let payload_bytes = decode_segment(payload_b64, "payload")?;
        let payload = String::from_utf8(payload_bytes)
            .map_err(|_| TokenError::invalid("payload is not valid UTF-8"))?;
        // Claims must be a JSON object; reject anything else up front.
        let trimmed = payload.trim_start();
        if !trimmed.starts_with('{') {
            return Err(TokenError::invalid("payload is not a JSON object"));
        }

        Ok(RawToken {
            signing_input,
            signature,
            alg: header.alg,
            kid: header.kid,
            payload,
        })
    }
}

fn decode_segment(segment: &str, what: &str) -> Result<Vec<u8>, TokenError> {
    if segment.is_empty() {
        return Err(TokenError::invalid(format!("empty {what} segment")));
    }
    B64_URL
        .decode(segment)
        .map_err(|e| TokenError::invalid(format!("bad base64 in {what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> String {
        B64_URL.encode(s)
    }

    #[test]
    fn parses_valid_structure() {
        let token = format!(
            "{}.{}.sig",
            enc(r#"{"alg":"HS256"}"#),
            enc(r#"{"sub":"1"}"#)
        );
        let raw = RawToken::parse(&token).expect("valid");
        assert_eq!(raw.alg.as_deref(), Some("HS256"));
        assert_eq!(raw.payload, r#"{"sub":"1"}"#);
        assert_eq!(raw.signature, "sig");
        assert!(token.starts_with(raw.signing_input));
    }

    #[test]
    fn rejects_bad_structure() {
        let h = enc(r#"{"alg":"HS256"}"#);
        let p = enc(r#"{}"#);
        for bad in [
            String::new(),
            "a.b".to_owned(),
            "...".to_owned(),
            format!("{h}.{p}.s.x"),
            format!("{h}..s"),
            format!(".{p}.s"),
            format!("{h}.!!!.s"),
            format!("{}.{p}.s", enc("not json")),
            format!("{}.{p}.s", enc(r#"["HS256"]"#)),
            format!("{h}.{}.s", enc("[1,2]")),
            format!("{h}.{}.s", enc("\"str\"")),
        ] {
            assert!(
                matches!(RawToken::parse(&bad), Err(TokenError::Invalid(_))),
                "{bad:?} should be invalid"
            );
        }
    }
}
