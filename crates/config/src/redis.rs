//! Checks shared by every Redis section (`engine.redis`, `broker.redis`,
//! `presence_manager.redis`).

/// Every error of a Redis section (`engine.redis`, `broker.redis`, `presence_manager.redis`)
/// as `(key, reason)`, keys under `at`: an address is required, `sentinel_master_name` with
/// `sentinel_address`, not both Sentinel and Cluster, no TLS and db 0 with Cluster, and
/// client certificates with both `cert_pem` and `key_pem`.
pub(crate) fn redis_violations(at: &str, r: &crate::RedisConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut push = |key: &str, reason: &str| out.push((format!("{at}.{key}"), reason.to_owned()));
    if r.address.is_empty() && r.cluster_address.is_empty() && r.sentinel_address.is_empty() {
        push("address", "at least one Redis address is required");
    }
    if !r.sentinel_address.is_empty() && r.sentinel_master_name.is_empty() {
        push(
            "sentinel_master_name",
            &format!("required with {at}.sentinel_address"),
        );
    }
    if !r.sentinel_address.is_empty() && !r.cluster_address.is_empty() {
        push(
            "cluster_address",
            &format!("cannot be combined with {at}.sentinel_address"),
        );
    }
    if !r.cluster_address.is_empty() && r.tls.enabled {
        push(
            "tls.enabled",
            &format!("TLS is not supported with {at}.cluster_address yet"),
        );
    }
    if !r.cluster_address.is_empty() && r.db != 0 {
        push("db", "a Redis Cluster only has db 0");
    }
    for (key, tls) in [("tls", &r.tls), ("sentinel_tls", &r.sentinel_tls)] {
        let cert = !(tls.cert_pem.is_empty()
            && tls.cert_pem_file.is_empty()
            && tls.cert_pem_b64.is_empty());
        let key_set =
            !(tls.key_pem.is_empty() && tls.key_pem_file.is_empty() && tls.key_pem_b64.is_empty());
        if cert != key_set {
            push(
                &format!("{key}.{}", if cert { "key_pem" } else { "cert_pem" }),
                "a client certificate needs both cert_pem and key_pem",
            );
        }
    }
    out
}
