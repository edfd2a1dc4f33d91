//! `gentoken`, `gensubtoken`, `checktoken` and `checksubtoken`: sample HMAC tokens for the
//! configured secret, and verification of any token with the configured verifier.

use anyhow::{Context as _, bail};
use base64::Engine as _;
use serde_json::{Map, Value, json};

/// Connection or subscription tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// Connection tokens (`client.token`).
    Connect,
    /// Subscription tokens (`client.subscription_token` when enabled, else `client.token`).
    Subscribe,
}

/// The token settings used for tokens of `kind`.
fn token_options(config: &gyre_config::Config, kind: TokenKind) -> &gyre_config::TokenOptions {
    let sub = &config.client.subscription_token;
    match kind {
        TokenKind::Subscribe if sub.enabled => &sub.token,
        _ => &config.client.token,
    }
}

/// Sets `value` at a dotted claim path (`user.id` writes `{"user":{"id":...}}`).
fn set_claim(claims: &mut Map<String, Value>, path: &str, value: Value) {
    let mut segments = path.split('.').peekable();
    let mut cur = claims;
    while let Some(segment) = segments.next() {
        if segments.peek().is_none() {
            cur.insert(segment.to_owned(), value);
            return;
        }
        let child = cur
            .entry(segment.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !child.is_object() {
            *child = Value::Object(Map::new());
        }
        let Value::Object(next) = child else { return };
        cur = next;
    }
}

/// A Go-style duration (`168h0m0s`, `1m30s`, `45s`) for the messages upstream prints.
fn go_duration(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// Prints an HS256 token for `user` (and `channel` for subscription tokens).
pub(crate) fn gentoken(
    config: &gyre_config::Config,
    kind: TokenKind,
    user: &str,
    channel: Option<&str>,
    ttl: i64,
    quiet: bool,
) -> anyhow::Result<()> {
    let options = token_options(config, kind);
    if options.hmac_secret_key.is_empty() {
        bail!(
            "only HMAC-signed tokens can be generated, and no HMAC secret key is configured ({}); sign RSA/ECDSA tokens with your own tooling",
            match kind {
                TokenKind::Connect => "client.token.hmac_secret_key",
                TokenKind::Subscribe =>
                    "client.subscription_token.hmac_secret_key, or client.token.hmac_secret_key",
            }
        );
    }
    let now = gyre_server::unix_now();
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(user));
    claims.insert("iat".into(), json!(now));
    if ttl > 0 {
        claims.insert("exp".into(), json!(now + ttl));
    }
    if let Some(channel) = channel {
        claims.insert("channel".into(), json!(channel));
    }
    if !options.user_id_claim.is_empty() {
        set_claim(&mut claims, &options.user_id_claim, json!(user));
    }
    let token = gyre_auth::sign_hs256(&options.hmac_secret_key, &Value::Object(claims))?;
    if quiet {
        print!("{token}");
        return Ok(());
    }
    let who = if user.is_empty() {
        "anonymous user".to_owned()
    } else {
        format!("user \"{user}\"")
    };
    let channel = channel.map_or(String::new(), |c| format!(" and channel \"{c}\""));
    let expiry = if ttl >= 0 {
        format!("with expiration TTL {}", go_duration(ttl))
    } else {
        "without expiration".to_owned()
    };
    println!("HMAC SHA-256 JWT for {who}{channel} {expiry}:\n{token}");
    Ok(())
}

/// The header algorithm and the claims text of a token, read without verifying it.
fn peek(token: &str) -> anyhow::Result<(String, String)> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload)) = (parts.next(), parts.next()) else {
        bail!("token is not a JWT (expected header.payload.signature)");
    };
    let decode = |part: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .context("token part is not base64url")
    };
    let header: Value =
        serde_json::from_slice(&decode(header)?).context("token header is not JSON")?;
    let claims = String::from_utf8(decode(payload)?).context("token claims are not UTF-8")?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    Ok((alg, claims))
}

/// Verifies a token with the configured verifier and prints whom it is for.
pub(crate) fn checktoken(
    config: &gyre_config::Config,
    kind: TokenKind,
    token: &str,
) -> anyhow::Result<()> {
    let (alg, claims) = peek(token)?;
    let (connect, subscribe) = gyre_server::token_verifiers(config)?;
    let verifier = match kind {
        TokenKind::Connect => connect,
        TokenKind::Subscribe => subscribe,
    }
    .context("no token verification key is configured (client.token)")?;
    let now = gyre_server::unix_now();
    let failed = |e: gyre_auth::TokenError| {
        anyhow::anyhow!("token with algorithm {alg} and claims {claims} has error: {e}")
    };
    match kind {
        TokenKind::Connect => {
            let t = verifier.verify_connect(token, now).map_err(failed)?;
            let who = if t.user.is_empty() {
                "anonymous user".to_owned()
            } else {
                format!("user {}", t.user)
            };
            println!("valid token for {who}\npayload: {claims}");
        }
        TokenKind::Subscribe => {
            let t = verifier.verify_subscribe(token, now).map_err(failed)?;
            let who = if t.user.is_empty() {
                "anonymous user".to_owned()
            } else {
                format!("user \"{}\"", t.user)
            };
            println!(
                "valid subscription token for {who} and channel \"{}\"\npayload: {claims}",
                t.channel
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration(604_800), "168h0m0s");
        assert_eq!(go_duration(90), "1m30s");
        assert_eq!(go_duration(0), "0s");
    }

    #[test]
    fn claims_nest_along_dotted_paths() {
        let mut claims = Map::new();
        set_claim(&mut claims, "user.id", json!("42"));
        assert_eq!(Value::Object(claims), json!({"user": {"id": "42"}}));
    }
}
