//! centrifuge-js 5.8.0 against `gyre serve` for the v6.2-v6.8 stream features: tags filters
//! (`tags_filter.mjs`), versioned publications (`versioned.mjs`) and `auto_cache_recover`
//! (`auto_cache.mjs`), in JSON and in protobuf. With `GYRE_TEST_REDIS_URL` set the same
//! scenarios run on the Redis engine (see `scripts/test.sh`).

mod support;

use serde_json::{Value, json};
use support::js::{scenario, user_token};

both_protocols!(tags_filter, versioned, auto_cache);

fn anonymous() -> Value {
    json!({ "allow_anonymous_connect_without_token": true })
}

fn history(extra: Value) -> Value {
    let mut ns = json!({
        "history_size": 50,
        "history_ttl": "300s",
        "allow_subscribe_for_client": true,
        "allow_subscribe_for_anonymous": true,
    });
    if let (Value::Object(n), Value::Object(e)) = (&mut ns, extra) {
        n.extend(e);
    }
    ns
}

/// Filtered live delivery, filtered recovery, error 107 for bad or disallowed filters.
fn tags_filter(protocol: &str) {
    let mut tagged = history(json!({ "force_recovery": true, "allow_tags_filter": true }));
    tagged["name"] = json!("tagged");
    let mut plain = history(json!({}));
    plain["name"] = json!("plain");
    let config = json!({
        "client": anonymous(),
        "channel": { "namespaces": [tagged, plain] },
    });
    let env = [("GYRE_TOKEN", user_token("u1", json!({})))];
    scenario("tags_filter.mjs", protocol, config, &env);
}

/// Stale and repeated versions dropped per channel, version epochs, channels without history.
fn versioned(protocol: &str) {
    let mut versioned = history(json!({}));
    versioned["name"] = json!("versioned");
    let config = json!({
        "client": anonymous(),
        "channel": { "namespaces": [
            versioned,
            { "name": "unversioned", "allow_subscribe_for_anonymous": true, "allow_subscribe_for_client": true },
        ] },
    });
    scenario("versioned.mjs", protocol, config, &[]);
}

/// Fresh subscribes recovered from the cache, through a tags filter too.
fn auto_cache(protocol: &str) {
    let cache = json!({
        "force_recovery": true,
        "force_recovery_mode": "cache",
        "allow_tags_filter": true,
    });
    let mut auto = history(cache.clone());
    auto["name"] = json!("cached");
    auto["auto_cache_recover"] = json!(true);
    let mut manual = history(cache);
    manual["name"] = json!("cachedmanual");
    let config = json!({
        "client": anonymous(),
        "channel": { "namespaces": [auto, manual] },
    });
    scenario("auto_cache.mjs", protocol, config, &[]);
}
