//! Hostile token strings: all must be rejected as invalid, never panic.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{NOW, hmac_verifier, hs256};
use gyre_auth::TokenError;
use serde_json::json;

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

#[test]
fn malformed_tokens_are_invalid() {
    let v = hmac_verifier("secret");
    let good = hs256("secret", json!({"sub": "u", "channel": "c"}));
    let mut parts = good.split('.');
    let (h, p, s) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let hs_header = b64(r#"{"alg":"HS256"}"#);
    let cases: Vec<String> = vec![
        String::new(),
        " ".into(),
        "a.b".into(),
        "a.b.c".into(),
        "..".into(),
        "garbage".into(),
        "\u{0}\u{1}.\u{2}.\u{3}".into(),
        "ééé.ééé.ééé".into(),
        format!("{h}.{p}"),
        format!("{h}.{p}.{s}.extra"),
        format!("{h}.{p}."),
        format!("{h}.{p}.{s}x"),
        format!("{h}.{p}.!!!"),
        format!("{h}.@@@.{s}"),
        format!("@@@.{p}.{s}"),
        format!("{h}x.{p}.{s}"),
        format!("{hs_header}.{}.{s}", b64("not json")),
        format!("{hs_header}.{}.{s}", b64("[]")),
        format!("{hs_header}.{}.{s}", b64("null")),
        format!("{}.{p}.{s}", b64("{}")),
        format!("{}.{p}.{s}", b64(r#"{"alg":"none"}"#)),
        format!("{}.{p}.", b64(r#"{"alg":"none"}"#)),
        format!("{}.{p}.{s}", b64(r#"{"alg":"ES512"}"#)),
        format!("{}.{p}.{s}", b64(r#"{"alg":5}"#)),
        format!("{}.{p}.{s}", b64("not json")),
        format!("{h}.{}.{s}", b64(r#"{"sub":"admin","channel":"c"}"#)),
        "x".repeat(2 << 20),
    ];
    for token in &cases {
        let shown: String = token.chars().take(80).collect();
        assert!(
            matches!(v.verify_connect(token, NOW), Err(TokenError::Invalid(_))),
            "connect {shown:?}"
        );
        assert!(
            matches!(v.verify_subscribe(token, NOW), Err(TokenError::Invalid(_))),
            "subscribe {shown:?}"
        );
    }
    assert!(v.verify_subscribe(&good, NOW).is_ok());
}

#[test]
fn invalid_json_payload_with_valid_signature() {
    // Properly signed but the payload is not a JSON object: still just invalid.
    use gyre_auth::sign_hs256;
    let v = hmac_verifier("secret");
    let token = sign_hs256("secret", &json!({"exp": {"nested": true}})).expect("sign");
    assert!(matches!(
        v.verify_connect(&token, NOW),
        Err(TokenError::Invalid(_))
    ));
    let token = sign_hs256("secret", &json!({"aud": 5})).expect("sign");
    assert!(matches!(
        v.verify_connect(&token, NOW),
        Err(TokenError::Invalid(_))
    ));
    let token = sign_hs256("secret", &json!({"exp": 1e300})).expect("sign");
    assert!(v.verify_connect(&token, NOW).is_ok());
}
