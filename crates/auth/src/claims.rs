//! Token claim schemas (what is inside the JWT payload) and the verified token types
//! handed to the server.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::TokenError;

/// Per-channel overrides of namespace options carried by a token (`override` claim).
///
/// Each field is `None` when the token does not mention it. On the wire every entry is
/// wrapped: `{"presence": {"value": true}, "join_leave": {"value": false}}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelOverride {
    /// Override of the channel `presence` option.
    pub presence: Option<bool>,
    /// Override of the channel `join_leave` option.
    pub join_leave: Option<bool>,
    /// Override of the channel `force_push_join_leave` option.
    pub force_push_join_leave: Option<bool>,
    /// Override of the channel `force_recovery` option.
    pub force_recovery: Option<bool>,
    /// Override of the channel `force_positioning` option.
    pub force_positioning: Option<bool>,
}

/// Options for one server-side subscription listed in a connection token's `subs` claim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeClaimOptions {
    /// Channel-scoped connection info: exact JSON text of `info`, or decoded `b64info`.
    pub info: Option<Vec<u8>>,
    /// Data sent to the client in the subscribe result: JSON text of `data`, or decoded `b64data`.
    pub data: Option<Vec<u8>>,
    /// Channel option overrides from the `override` claim.
    pub override_: ChannelOverride,
}

/// A verified connection token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectToken {
    /// User id (from `user_id_claim`, `sub` by default); `""` means anonymous.
    pub user: String,
    /// When the connection expires (unix seconds); `None` means never.
    ///
    /// Taken from `exp`, overridden by the Centrifugo `expire_at` claim: a positive value is
    /// used as is, `0` (or a negative value) means the connection never expires even if `exp`
    /// is set.
    pub expire_at: Option<i64>,
    /// Connection info: exact JSON text of the `info` claim, or the decoded `b64info`
    /// (`b64info` wins when both are present).
    pub info: Option<Vec<u8>>,
    /// Server-side channels from the `channels` claim.
    ///
    /// `subs` takes precedence: when the token carries a non-empty `subs` map this list is
    /// always empty (the `channels` claim is ignored).
    pub channels: Vec<String>,
    /// Server-side subscriptions with per-channel options from the `subs` claim.
    pub subs: BTreeMap<String, SubscribeClaimOptions>,
    /// Server-side connection metadata (`meta` claim), never sent to clients.
    pub meta: Option<serde_json::Value>,
}

/// A verified channel subscription token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeToken {
    /// User id (from `user_id_claim`, `sub` by default); must match the connection's user.
    pub user: String,
    /// Channel the token grants (required, non-empty); must match the requested channel.
    pub channel: String,
    /// Client id the token is bound to; `""` means not bound.
    pub client: String,
    /// Channel-scoped info: exact JSON text of `info`, or decoded `b64info`.
    pub info: Option<Vec<u8>>,
    /// Data for the subscribe result: exact JSON text of `data`, or decoded `b64data`.
    pub data: Option<Vec<u8>>,
    /// When the subscription expires (unix seconds); `None` means never.
    /// Same `exp` / `expire_at` rules as [`ConnectToken::expire_at`].
    pub expire_at: Option<i64>,
    /// Channel option overrides from the `override` claim.
    pub override_: ChannelOverride,
}

// ---------------------------------------------------------------------------------------------
// Wire schemas.

/// Claims shared by both token kinds and checked by the verifier.
#[derive(Debug, Deserialize)]
pub(crate) struct CommonClaims {
    /// Standard subject claim (default user id); any JSON type, validated later.
    #[serde(default)]
    pub sub: Option<serde_json::Value>,
    #[serde(default)]
    pub exp: Option<f64>,
    #[serde(default)]
    pub nbf: Option<f64>,
    #[serde(default)]
    pub aud: Option<Audience>,
    #[serde(default)]
    pub iss: Option<String>,
    #[serde(default)]
    pub expire_at: Option<i64>,
}

/// `aud` is either a single string or an array of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn values(&self) -> &[String] {
        match self {
            Audience::One(s) => std::slice::from_ref(s),
            Audience::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
struct BoolValue {
    #[serde(default)]
    value: bool,
}

#[derive(Debug, Default, Deserialize)]
struct OverrideClaim {
    #[serde(default)]
    presence: Option<BoolValue>,
    #[serde(default)]
    join_leave: Option<BoolValue>,
    #[serde(default)]
    force_push_join_leave: Option<BoolValue>,
    #[serde(default)]
    force_recovery: Option<BoolValue>,
    #[serde(default)]
    force_positioning: Option<BoolValue>,
}

impl From<OverrideClaim> for ChannelOverride {
    fn from(c: OverrideClaim) -> Self {
        let v = |b: Option<BoolValue>| b.map(|b| b.value);
        ChannelOverride {
            presence: v(c.presence),
            join_leave: v(c.join_leave),
            force_push_join_leave: v(c.force_push_join_leave),
            force_recovery: v(c.force_recovery),
            force_positioning: v(c.force_positioning),
        }
    }
}

#[derive(Debug, Deserialize)]
struct SubOptionsClaim<'a> {
    #[serde(default, borrow)]
    info: Option<&'a RawValue>,
    #[serde(default)]
    b64info: Option<String>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    b64data: Option<String>,
    #[serde(default, rename = "override")]
    override_: Option<OverrideClaim>,
}

/// Centrifugo-specific claims of a connection token.
#[derive(Debug, Deserialize)]
struct ConnectClaims<'a> {
    #[serde(default, borrow)]
    info: Option<&'a RawValue>,
    #[serde(default)]
    b64info: Option<String>,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default, borrow)]
    subs: Option<BTreeMap<String, SubOptionsClaim<'a>>>,
    #[serde(default)]
    meta: Option<serde_json::Value>,
    #[serde(default)]
    channel: Option<String>,
}

/// Centrifugo-specific claims of a subscription token.
#[derive(Debug, Deserialize)]
struct SubscribeClaims<'a> {
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    client: Option<String>,
    #[serde(default, borrow)]
    info: Option<&'a RawValue>,
    #[serde(default)]
    b64info: Option<String>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    b64data: Option<String>,
    #[serde(default, rename = "override")]
    override_: Option<OverrideClaim>,
}

// ---------------------------------------------------------------------------------------------
// Conversion.

/// Combines `exp` with the `expire_at` override into the effective expiry.
pub(crate) fn effective_expire_at(exp: Option<i64>, expire_at: Option<i64>) -> Option<i64> {
    match expire_at {
        Some(at) if at > 0 => Some(at),
        Some(_) => None,
        None => exp,
    }
}

/// Picks `b64<name>` (standard base64, if non-empty) over the raw JSON `<name>` claim.
fn raw_or_b64(
    raw: Option<&RawValue>,
    b64: Option<&str>,
    b64_name: &str,
) -> Result<Option<Vec<u8>>, TokenError> {
    match b64 {
        Some(encoded) if !encoded.is_empty() => STANDARD
            .decode(encoded)
            .map(Some)
            .map_err(|e| TokenError::invalid(format!("bad base64 in {b64_name}: {e}"))),
        _ => Ok(raw.map(|r| r.get().as_bytes().to_vec())),
    }
}

fn bad_claims(e: serde_json::Error) -> TokenError {
    TokenError::invalid(format!("malformed claims: {e}"))
}

/// Parses the shared claims from a payload.
pub(crate) fn parse_common(payload: &str) -> Result<CommonClaims, TokenError> {
    serde_json::from_str(payload).map_err(bad_claims)
}

/// Builds a [`ConnectToken`] from a payload whose common claims were already validated.
pub(crate) fn build_connect(
    payload: &str,
    user: String,
    expire_at: Option<i64>,
) -> Result<ConnectToken, TokenError> {
    let claims: ConnectClaims<'_> = serde_json::from_str(payload).map_err(bad_claims)?;
    if claims.channel.as_deref().is_some_and(|c| !c.is_empty()) {
        return Err(TokenError::invalid(
            "connection token must not contain a channel claim",
        ));
    }
    let info = raw_or_b64(claims.info, claims.b64info.as_deref(), "b64info")?;

    let mut subs = BTreeMap::new();
    for (channel, opts) in claims.subs.unwrap_or_default() {
        let parsed = SubscribeClaimOptions {
            info: raw_or_b64(opts.info, opts.b64info.as_deref(), "b64info")?,
            data: raw_or_b64(opts.data, opts.b64data.as_deref(), "b64data")?,
            override_: opts.override_.unwrap_or_default().into(),
        };
        subs.insert(channel, parsed);
    }
    let channels = if subs.is_empty() {
        claims.channels.unwrap_or_default()
    } else {
        Vec::new()
    };

    Ok(ConnectToken {
        user,
        expire_at,
        info,
        channels,
        subs,
        meta: claims.meta,
    })
}

/// Builds a [`SubscribeToken`] from a payload whose common claims were already validated.
pub(crate) fn build_subscribe(
    payload: &str,
    user: String,
    expire_at: Option<i64>,
) -> Result<SubscribeToken, TokenError> {
    let claims: SubscribeClaims<'_> = serde_json::from_str(payload).map_err(bad_claims)?;
    let channel = claims.channel.unwrap_or_default();
    if channel.is_empty() {
        return Err(TokenError::invalid(
            "subscription token must contain a channel claim",
        ));
    }
    Ok(SubscribeToken {
        user,
        channel,
        client: claims.client.unwrap_or_default(),
        info: raw_or_b64(claims.info, claims.b64info.as_deref(), "b64info")?,
        data: raw_or_b64(claims.data, claims.b64data.as_deref(), "b64data")?,
        expire_at,
        override_: claims.override_.unwrap_or_default().into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expire_at_rules() {
        assert_eq!(effective_expire_at(None, None), None);
        assert_eq!(effective_expire_at(Some(10), None), Some(10));
        assert_eq!(effective_expire_at(Some(10), Some(20)), Some(20));
        assert_eq!(effective_expire_at(Some(10), Some(0)), None);
        assert_eq!(effective_expire_at(None, Some(-5)), None);
    }

    #[test]
    fn raw_info_keeps_exact_text() {
        let t = build_connect(r#"{"info": {"b": 1,  "a":[1, 2]}}"#, String::new(), None)
            .expect("valid");
        assert_eq!(t.info.as_deref(), Some(&br#"{"b": 1,  "a":[1, 2]}"#[..]));
    }

    #[test]
    fn null_and_wrong_types() {
        let t = build_connect(
            r#"{"info": null, "channels": null, "subs": null}"#,
            String::new(),
            None,
        )
        .expect("nulls are absent");
        assert_eq!(t, ConnectToken::default());
        assert!(build_connect(r#"{"channels": "a"}"#, String::new(), None).is_err());
        assert!(build_connect(r#"{"channel": 5}"#, String::new(), None).is_err());
        assert!(build_connect(r#"{"channel": ""}"#, String::new(), None).is_ok());
        assert!(build_subscribe(r#"{"channel": ["x"]}"#, String::new(), None).is_err());
    }
}
