//! Conformance scenarios driving the real `gyre serve` binary with the real npm `centrifuge`
//! SDK (centrifuge-js 5.8.0 with `ws`), in JSON and in protobuf, over WebSocket and (module
//! `emulated`) over HTTP-streaming and SSE (`eventsource`), commands through `/emulation`.
//!
//! Each scenario is a node script in `conformance/js/` (helpers in `conformance/js/lib.mjs`).
//! A test starts one gyre with the config the scenario needs, runs `node <script>` with the
//! endpoints, the API key, the protocol and any tokens in its environment, and asserts that it
//! exits 0. A script can ask for a server-side action by printing a line `GYRE:<action>` (only
//! `GYRE:terminate`, which sends SIGTERM to gyre). A script's log is printed when it fails;
//! with `GYRE_JS_LOG_DIR=<dir>` every script also writes it to `<dir>/<script>-<protocol>.log`.

mod support;

use serde_json::{Value, json};
use support::Gyre;
use support::js::{run_script, scenario, user_token};

both_protocols!(
    connect,
    pubsub,
    api_publish,
    presence,
    history,
    recovery,
    recovery_overflow,
    delta,
    personal,
    server_subs,
    token_bad,
    token_expired,
    token_refresh,
    sub_token_refresh,
    errors,
    shutdown,
    ping,
);

/// Defines tests over the bidirectional emulation transports (HTTP-streaming in JSON and
/// Protobuf, SSE in JSON: SSE is JSON only) in `emulated::<scenario>`.
macro_rules! emulated {
    ($($name:ident),* $(,)?) => {
        mod emulated {
            $(
                mod $name {
                    #[test]
                    fn http_stream_json() {
                        super::super::$name("http_stream/json");
                    }
                    #[test]
                    fn http_stream_protobuf() {
                        super::super::$name("http_stream/protobuf");
                    }
                    #[test]
                    fn sse_json() {
                        super::super::$name("sse/json");
                    }
                }
            )*
        }
    };
}

emulated!(
    connect,
    pubsub,
    api_publish,
    presence,
    history,
    recovery,
    delta,
    server_subs,
    errors,
    ping,
    token_refresh,
);

/// 1. States disconnected → connecting → connected → disconnected, client id, code 0.
fn connect(protocol: &str) {
    scenario(
        "connect.mjs",
        protocol,
        json!({ "client": { "insecure": true } }),
        &[],
    );
}

/// 2. Subscribe, client publish, receive it, unsubscribe.
fn pubsub(protocol: &str) {
    scenario(
        "pubsub.mjs",
        protocol,
        json!({ "client": { "insecure": true } }),
        &[],
    );
}

fn history_channel() -> Value {
    json!({
        "history_size": 10,
        "history_ttl": "300s",
        "force_recovery": true,
        "allow_subscribe_for_client": true,
        "allow_history_for_subscriber": true,
    })
}

/// 3. Server API publish reaches a subscriber, with offsets when history is on.
fn api_publish(protocol: &str) {
    let config = json!({
        "channel": {
            "without_namespace": history_channel(),
            "namespaces": [{ "name": "plain", "allow_subscribe_for_client": true }],
        },
    });
    let env = [("GYRE_TOKEN", user_token("u1", json!({})))];
    scenario("api_publish.mjs", protocol, config, &env);
}

/// 4. Presence, presence stats, join and leave.
fn presence(protocol: &str) {
    let config = json!({
        "channel": { "without_namespace": {
            "presence": true,
            "join_leave": true,
            "force_push_join_leave": true,
            "allow_subscribe_for_client": true,
            "allow_presence_for_subscriber": true,
        } },
    });
    let env = [
        (
            "GYRE_TOKEN_U1",
            user_token("u1", json!({ "info": { "name": "alice" } })),
        ),
        ("GYRE_TOKEN_U2", user_token("u2", json!({}))),
    ];
    scenario("presence.mjs", protocol, config, &env);
}

/// 5. History paging: limit, since, all, reverse, epoch mismatch.
fn history(protocol: &str) {
    let config = json!({ "channel": { "without_namespace": history_channel() } });
    let env = [("GYRE_TOKEN", user_token("u1", json!({})))];
    scenario("history.mjs", protocol, config, &env);
}

/// 6. Recovery of missed publications after a forced reconnect.
fn recovery(protocol: &str) {
    let config = json!({ "channel": { "without_namespace": history_channel() } });
    let env = [("GYRE_TOKEN", user_token("u1", json!({})))];
    scenario("recovery.mjs", protocol, config, &env);
}

/// 7. Recovery fails after the history overflowed.
fn recovery_overflow(protocol: &str) {
    let config = json!({
        "channel": { "namespaces": [{
            "name": "small",
            "history_size": 2,
            "history_ttl": "300s",
            "force_recovery": true,
            "allow_subscribe_for_client": true,
        }] },
    });
    let env = [("GYRE_TOKEN", user_token("u1", json!({})))];
    scenario("recovery_overflow.mjs", protocol, config, &env);
}

/// 8. Fossil delta: every payload arrives exactly as published, live and recovered.
fn delta(protocol: &str) {
    let config = json!({
        "channel": { "without_namespace": {
            "history_size": 20,
            "history_ttl": "300s",
            "force_recovery": true,
            "allowed_delta_types": ["fossil"],
            "delta_publish": true,
            "allow_subscribe_for_client": true,
        } },
    });
    let env = [("GYRE_TOKEN", user_token("u1", json!({})))];
    scenario("delta.mjs", protocol, config, &env);
}

/// 9. Personal channel subscription and publication.
fn personal(protocol: &str) {
    let config = json!({ "client": { "subscribe_to_user_personal_channel": { "enabled": true } } });
    let env = [("GYRE_TOKEN", user_token("u1", json!({})))];
    scenario("personal.mjs", protocol, config, &env);
}

/// 10. Server-side subscriptions from the token and from the server API.
fn server_subs(protocol: &str) {
    let config = json!({
        "channel": {
            "without_namespace": {
                "history_size": 10,
                "history_ttl": "300s",
                "force_recovery": true,
                "allow_subscribe_for_client": true,
            },
            "namespaces": [{ "name": "nohist" }],
        },
    });
    let env = [(
        "GYRE_TOKEN",
        user_token("u1", json!({ "channels": ["srv1", "srv2"] })),
    )];
    scenario("server_subs.mjs", protocol, config, &env);
}

/// 11a. A token with a bad signature: disconnected 3500, no reconnect.
fn token_bad(protocol: &str) {
    let claims = json!({ "sub": "u1", "exp": support::now() + 3600 });
    let bad = gyre_auth::sign_hs256("not-the-secret", &claims).expect("sign");
    let env = [("GYRE_TOKEN_BAD", bad)];
    scenario("token_bad.mjs", protocol, json!({}), &env);
}

/// 11b. An expired token: error 109; without getToken unauthorized, with it a fresh token.
fn token_expired(protocol: &str) {
    let expired = support::token(json!({ "sub": "u1", "exp": support::now() - 60 }));
    let env = [
        ("GYRE_TOKEN_EXPIRED", expired),
        ("GYRE_TOKEN_FRESH", user_token("u1", json!({}))),
    ];
    scenario("token_expired.mjs", protocol, json!({}), &env);
}

/// 11c. A connection token about to expire is refreshed through getToken; a connection
/// that can't refresh is closed with 3005.
fn token_refresh(protocol: &str) {
    let exp = support::now() + 4;
    let env = [
        (
            "GYRE_TOKEN_SHORT",
            support::token(json!({ "sub": "u1", "exp": exp })),
        ),
        ("GYRE_TOKEN_SHORT_EXP", exp.to_string()),
        ("GYRE_TOKEN_FRESH", user_token("u1", json!({}))),
    ];
    let config = json!({ "client": { "expired_close_delay": "2s" } });
    scenario("token_refresh.mjs", protocol, config, &env);
}

/// 11d. A subscription token for a private channel is refreshed through getToken; a
/// subscription that can't refresh gets unsubscribe 2501.
fn sub_token_refresh(protocol: &str) {
    let now = support::now();
    let exp = now + 4;
    let sub_token = |channel: &str, exp: i64| {
        support::token(json!({ "sub": "u1", "channel": channel, "exp": exp }))
    };
    let env = [
        ("GYRE_TOKEN", user_token("u1", json!({}))),
        ("GYRE_SUB_TOKEN_SHORT", sub_token("$priv", exp)),
        ("GYRE_SUB_TOKEN_FRESH", sub_token("$priv", now + 3600)),
        ("GYRE_SUB_TOKEN_SHORT2", sub_token("$priv2", exp)),
        ("GYRE_SUB_TOKEN_EXP", exp.to_string()),
    ];
    let config = json!({ "client": { "expired_sub_close_delay": "2s" } });
    scenario("sub_token_refresh.mjs", protocol, config, &env);
}

/// 12. RPC without a proxy ⇒ 108; unknown namespace ⇒ 102 unsubscribed.
fn errors(protocol: &str) {
    scenario(
        "errors.mjs",
        protocol,
        json!({ "client": { "insecure": true } }),
        &[],
    );
}

/// 14. Pings and pongs keep an idle connection open (interval 2 s, pong timeout 1 s).
fn ping(protocol: &str) {
    let config = json!({
        "client": { "insecure": true, "ping_interval": "2s", "pong_timeout": "1s" },
    });
    scenario("ping.mjs", protocol, config, &[]);
}

/// 13. SIGTERM ⇒ the client sees `connecting` with code 3001.
fn shutdown(protocol: &str) {
    let mut gyre = Gyre::start(&support::config(json!({ "client": { "insecure": true } })));
    let mut terminated = None;
    run_script(&mut gyre, "shutdown.mjs", protocol, &[], |action, gyre| {
        assert_eq!(action, "terminate", "unexpected action");
        terminated = Some(gyre.terminate());
    });
    assert_eq!(
        terminated,
        Some(true),
        "gyre did not exit within 5 s of SIGTERM"
    );
}

both_protocols!(map);

/// Scenario 19, map subscriptions: state pages, live updates and removals with per-key delta,
/// client publish/remove, recovery after reconnect and after unsubscribe, an overflowed
/// stream restarting from the state, client_key, and bad map publications.
fn map(protocol: &str) {
    let map_ns = |name: &str, map: Value, extra: Value| {
        let mut ns = json!({
            "name": name,
            "subscription_type": "map",
            "map": map,
            "allow_subscribe_for_client": true,
        });
        if let (Value::Object(ns), Value::Object(extra)) = (&mut ns, extra) {
            ns.extend(extra);
        }
        ns
    };
    let config = json!({
        "channel": { "namespaces": [
            map_ns(
                "live",
                json!({
                    "mode": "persistent",
                    "min_page_size": 1,
                    "allow_publish_for_client": true,
                    "allow_remove_for_client": true,
                }),
                json!({ "allowed_delta_types": ["fossil"], "delta_publish": true }),
            ),
            map_ns("small", json!({ "mode": "persistent", "stream_size": 2 }), json!({})),
            map_ns(
                "room",
                json!({ "mode": "ephemeral", "key_ttl": "60s" }),
                json!({ "map_clients_presence_channel_prefix": "who:" }),
            ),
            json!({
                "name": "who",
                "subscription_type": "map_clients",
                "map": { "mode": "ephemeral", "key_ttl": "60s" },
                "allow_subscribe_for_client": true,
            }),
            map_ns(
                "tagged",
                json!({ "mode": "persistent" }),
                json!({ "allow_tags_filter": true }),
            ),
            map_ns(
                "own",
                json!({
                    "mode": "ephemeral",
                    "key_ttl": "60s",
                    "client_key": "client_id",
                    "allow_publish_for_subscriber": true,
                }),
                json!({}),
            ),
        ] },
    });
    let env = [("GYRE_TOKEN", user_token("u1", json!({})))];
    scenario("map.mjs", protocol, config, &env);
}
