//! Centrifugo-specific claims: expire_at, info/b64info, channels/subs/override, user id path,
//! subscription token fields.

mod common;

use common::{NOW, hmac_opts, hmac_verifier, hs256};
use gyre_auth::{ChannelOverride, TokenError, TokenVerifier, VerifierOptions};
use serde_json::json;

fn connect(claims: serde_json::Value) -> Result<gyre_auth::ConnectToken, TokenError> {
    hmac_verifier("k").verify_connect(&hs256("k", claims), NOW)
}

fn subscribe(claims: serde_json::Value) -> Result<gyre_auth::SubscribeToken, TokenError> {
    hmac_verifier("k").verify_subscribe(&hs256("k", claims), NOW)
}

#[test]
fn expire_at_semantics() {
    let at = |claims| connect(claims).expect("valid").expire_at;
    assert_eq!(at(json!({})), None);
    assert_eq!(at(json!({"exp": NOW + 60})), Some(NOW + 60));
    assert_eq!(
        at(json!({"exp": NOW + 60, "expire_at": NOW + 600})),
        Some(NOW + 600)
    );
    assert_eq!(at(json!({"expire_at": NOW + 600})), Some(NOW + 600));
    assert_eq!(at(json!({"exp": NOW + 60, "expire_at": 0})), None);
    assert_eq!(at(json!({"expire_at": 0})), None);
    // expire_at does not rescue an expired token.
    assert_eq!(
        connect(json!({"exp": NOW - 1, "expire_at": NOW + 600})),
        Err(TokenError::Expired)
    );
    // Same rules for subscription tokens.
    let sub_at = |claims| subscribe(claims).expect("valid").expire_at;
    assert_eq!(sub_at(json!({"channel": "c"})), None);
    assert_eq!(
        sub_at(json!({"channel": "c", "exp": NOW + 5})),
        Some(NOW + 5)
    );
    assert_eq!(
        sub_at(json!({"channel": "c", "exp": NOW + 5, "expire_at": 0})),
        None
    );
    assert_eq!(
        sub_at(json!({"channel": "c", "expire_at": NOW + 9})),
        Some(NOW + 9)
    );
    // Wrong type is invalid.
    assert!(matches!(
        connect(json!({"expire_at": "x"})),
        Err(TokenError::Invalid(_))
    ));
}

#[test]
fn info_and_b64info() {
    let t = connect(json!({"info": {"name": "Alice", "n": 1}})).expect("valid");
    assert_eq!(t.info.as_deref(), Some(&br#"{"n":1,"name":"Alice"}"#[..]));
    let t = connect(json!({"info": "text"})).expect("valid");
    assert_eq!(t.info.as_deref(), Some(&b"\"text\""[..]));
    let t = connect(json!({"b64info": "AAEC/w=="})).expect("valid");
    assert_eq!(t.info, Some(vec![0, 1, 2, 255]));
    // b64info wins over info.
    let t = connect(json!({"info": {"a": 1}, "b64info": "aGk="})).expect("valid");
    assert_eq!(t.info.as_deref(), Some(&b"hi"[..]));
    // Empty b64info falls back to info.
    let t = connect(json!({"info": 5, "b64info": ""})).expect("valid");
    assert_eq!(t.info.as_deref(), Some(&b"5"[..]));
    assert!(matches!(
        connect(json!({"b64info": "%%%"})),
        Err(TokenError::Invalid(_))
    ));
    assert!(matches!(
        connect(json!({"b64info": 5})),
        Err(TokenError::Invalid(_))
    ));
    assert_eq!(connect(json!({})).expect("valid").info, None);
}

#[test]
fn channels_subs_and_override() {
    let t = connect(json!({"sub": "u", "channels": ["a", "b"]})).expect("valid");
    assert_eq!(t.channels, vec!["a".to_owned(), "b".to_owned()]);
    assert!(t.subs.is_empty());

    let t = connect(json!({
        "channels": ["ignored"],
        "subs": {
            "news": {},
            "chat:1": {
                "info": {"role": "admin"},
                "b64data": "AQI=",
                "override": {
                    "presence": {"value": true},
                    "join_leave": {"value": false},
                    "force_push_join_leave": {"value": true},
                    "force_recovery": {"value": true},
                    "force_positioning": {"value": false}
                }
            },
            "x": {"b64info": "aGk=", "data": [1, 2], "override": {"presence": {}}}
        },
        "meta": {"plan": "pro"}
    }))
    .expect("valid");
    assert!(t.channels.is_empty(), "subs take precedence over channels");
    assert_eq!(t.subs.len(), 3);
    assert_eq!(t.subs["news"], Default::default());
    let chat = &t.subs["chat:1"];
    assert_eq!(chat.info.as_deref(), Some(&br#"{"role":"admin"}"#[..]));
    assert_eq!(chat.data, Some(vec![1, 2]));
    assert_eq!(
        chat.override_,
        ChannelOverride {
            presence: Some(true),
            join_leave: Some(false),
            force_push_join_leave: Some(true),
            force_recovery: Some(true),
            force_positioning: Some(false),
        }
    );
    let x = &t.subs["x"];
    assert_eq!(x.info.as_deref(), Some(&b"hi"[..]));
    assert_eq!(x.data.as_deref(), Some(&b"[1,2]"[..]));
    assert_eq!(x.override_.presence, Some(false));
    assert_eq!(x.override_.join_leave, None);
    assert_eq!(t.meta, Some(json!({"plan": "pro"})));

    // Empty subs map does not hide channels.
    let t = connect(json!({"channels": ["a"], "subs": {}})).expect("valid");
    assert_eq!(t.channels, vec!["a".to_owned()]);

    // Malformed pieces are invalid.
    for bad in [
        json!({"subs": {"a": {"b64data": "@@"}}}),
        json!({"subs": {"a": {"override": {"presence": {"value": "yes"}}}}}),
        json!({"subs": ["a"]}),
        json!({"channels": [1]}),
    ] {
        assert!(
            matches!(connect(bad.clone()), Err(TokenError::Invalid(_))),
            "{bad}"
        );
    }
}

#[test]
fn channel_claim_forbidden_in_connection_token() {
    assert!(matches!(
        connect(json!({"sub": "u", "channel": "news"})),
        Err(TokenError::Invalid(_))
    ));
    // A subscription token is therefore not usable as a connection token.
    let sub_token = hs256("k", json!({"sub": "u", "channel": "news"}));
    assert!(hmac_verifier("k").verify_connect(&sub_token, NOW).is_err());
    assert!(hmac_verifier("k").verify_subscribe(&sub_token, NOW).is_ok());
}

#[test]
fn subscription_token_fields() {
    let t = subscribe(json!({
        "sub": "u1",
        "channel": "$private",
        "client": "c-123",
        "info": {"a": true},
        "b64data": "AP8=",
        "override": {"force_recovery": {"value": true}},
        "exp": NOW + 30
    }))
    .expect("valid");
    assert_eq!(t.user, "u1");
    assert_eq!(t.channel, "$private");
    assert_eq!(t.client, "c-123");
    assert_eq!(t.info.as_deref(), Some(&br#"{"a":true}"#[..]));
    assert_eq!(t.data, Some(vec![0, 255]));
    assert_eq!(t.override_.force_recovery, Some(true));
    assert_eq!(t.override_.presence, None);
    assert_eq!(t.expire_at, Some(NOW + 30));

    let t = subscribe(json!({"channel": "c", "data": {"x": [1]}, "b64info": "aGk="})).expect("ok");
    assert_eq!(t.user, "");
    assert_eq!(t.client, "");
    assert_eq!(t.data.as_deref(), Some(&br#"{"x":[1]}"#[..]));
    assert_eq!(t.info.as_deref(), Some(&b"hi"[..]));

    for bad in [
        json!({"sub": "u"}),
        json!({"channel": ""}),
        json!({"channel": null}),
        json!({"channel": "c", "b64data": "not base64!"}),
        json!({"channel": "c", "client": 7}),
    ] {
        assert!(
            matches!(subscribe(bad.clone()), Err(TokenError::Invalid(_))),
            "{bad}"
        );
    }
}

#[test]
fn user_id_claim_path() {
    let v = TokenVerifier::new(VerifierOptions {
        user_id_claim: "user.id".into(),
        ..hmac_opts("k")
    })
    .expect("valid");
    let t = hs256("k", json!({"sub": "ignored", "user": {"id": "nested"}}));
    assert_eq!(v.verify_connect(&t, NOW).expect("valid").user, "nested");
    let t = hs256("k", json!({"user": {"id": 77}}));
    assert_eq!(v.verify_connect(&t, NOW).expect("valid").user, "77");
    let t = hs256("k", json!({"sub": "x"}));
    assert_eq!(v.verify_connect(&t, NOW).expect("valid").user, "");
    let t = hs256("k", json!({"user": {"id": {"deep": 1}}}));
    assert!(matches!(
        v.verify_connect(&t, NOW),
        Err(TokenError::Invalid(_))
    ));
    let t = hs256("k", json!({"channel": "c", "user": {"id": "s"}}));
    assert_eq!(v.verify_subscribe(&t, NOW).expect("valid").user, "s");

    let arr = TokenVerifier::new(VerifierOptions {
        user_id_claim: "ids.1".into(),
        ..hmac_opts("k")
    })
    .expect("valid");
    let t = hs256("k", json!({"ids": ["a", "b"]}));
    assert_eq!(arr.verify_connect(&t, NOW).expect("valid").user, "b");

    // Default `sub`: numbers are stringified, other types rejected.
    assert_eq!(connect(json!({"sub": 12})).expect("valid").user, "12");
    assert!(matches!(
        connect(json!({"sub": ["a"]})),
        Err(TokenError::Invalid(_))
    ));
    // Empty user_id_claim means `sub`.
    let empty = TokenVerifier::new(VerifierOptions {
        user_id_claim: String::new(),
        ..hmac_opts("k")
    })
    .expect("valid");
    let t = hs256("k", json!({"sub": "s"}));
    assert_eq!(empty.verify_connect(&t, NOW).expect("valid").user, "s");
}
