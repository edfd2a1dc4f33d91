//! Keys Gyre reads but does not act on yet: each one set to something other than its default
//! gets a start-up warning naming it, so no setting is silently ignored.

use serde_json::Value;

use crate::Config;

/// Dotted key paths that are parsed but have no effect yet, with what happens instead.
const INACTIVE: &[(&str, &str)] = &[
    (
        "client.concurrency",
        "commands of a connection are processed in order",
    ),
    (
        "client.presence_update_interval",
        "presence is refreshed on Gyre's own schedule",
    ),
    (
        "client.channel_position_check_delay",
        "positions are checked on Gyre's own schedule",
    ),
    (
        "http_api.external",
        "the API is served on the internal port when one is set",
    ),
    ("websocket.read_buffer_size", "buffers are sized by Gyre"),
    ("websocket.write_buffer_size", "buffers are sized by Gyre"),
    ("admin.enabled", "no admin web interface is served"),
    (
        "grpc_api.tls.server_ca_pem",
        "a GRPC server verifies no server certificate",
    ),
    (
        "grpc_api.tls.insecure_skip_verify",
        "a GRPC server verifies no server certificate",
    ),
    (
        "grpc_api.tls.server_name",
        "a GRPC server verifies no server certificate",
    ),
    (
        "engine.redis.tls.client_ca_pem",
        "it is not used by a Redis client",
    ),
    (
        "engine.redis.sentinel_tls.client_ca_pem",
        "it is not used by a Redis client",
    ),
    (
        "map_broker.redis.tls.client_ca_pem",
        "it is not used by a Redis client",
    ),
    (
        "map_broker.redis.sentinel_tls.client_ca_pem",
        "it is not used by a Redis client",
    ),
    (
        "map_broker.redis.presence_ttl",
        "the map broker keeps no presence",
    ),
    (
        "broker.nats.tls.client_ca_pem",
        "it is not used by a NATS client",
    ),
    (
        "broker.nats.tls.server_name",
        "the NATS server's certificate is checked against the URL host",
    ),
    (
        "broker.postgres.tls.client_ca_pem",
        "it is not used by a PostgreSQL client",
    ),
    (
        "controller.postgres.tls.client_ca_pem",
        "it is not used by a PostgreSQL client",
    ),
    (
        "broker.postgres.tls.client_ca_pem_file",
        "it is not used by a PostgreSQL client",
    ),
    (
        "broker.postgres.tls.client_ca_pem_b64",
        "it is not used by a PostgreSQL client",
    ),
    (
        "controller.postgres.tls.client_ca_pem_file",
        "it is not used by a PostgreSQL client",
    ),
    (
        "controller.postgres.tls.client_ca_pem_b64",
        "it is not used by a PostgreSQL client",
    ),
    (
        "grpc_api.tls.server_ca_pem_file",
        "a GRPC server verifies no server certificate",
    ),
    (
        "grpc_api.tls.server_ca_pem_b64",
        "a GRPC server verifies no server certificate",
    ),
    (
        "http_server.tls.server_ca_pem",
        "an HTTP server verifies no server certificate",
    ),
    (
        "http_server.tls.server_ca_pem_file",
        "an HTTP server verifies no server certificate",
    ),
    (
        "http_server.tls.server_ca_pem_b64",
        "an HTTP server verifies no server certificate",
    ),
    (
        "http_server.tls.insecure_skip_verify",
        "an HTTP server verifies no server certificate",
    ),
    (
        "http_server.tls.server_name",
        "an HTTP server verifies no server certificate",
    ),
    (
        "http_server.internal_tls.server_ca_pem",
        "an HTTP server verifies no server certificate",
    ),
    (
        "http_server.internal_tls.server_ca_pem_file",
        "an HTTP server verifies no server certificate",
    ),
    (
        "http_server.internal_tls.server_ca_pem_b64",
        "an HTTP server verifies no server certificate",
    ),
    (
        "http_server.internal_tls.insecure_skip_verify",
        "an HTTP server verifies no server certificate",
    ),
    (
        "http_server.internal_tls.server_name",
        "an HTTP server verifies no server certificate",
    ),
    (
        "engine.redis.tls.client_ca_pem_file",
        "it is not used by a Redis client",
    ),
    (
        "engine.redis.tls.client_ca_pem_b64",
        "it is not used by a Redis client",
    ),
    (
        "engine.redis.sentinel_tls.client_ca_pem_file",
        "it is not used by a Redis client",
    ),
    (
        "engine.redis.sentinel_tls.client_ca_pem_b64",
        "it is not used by a Redis client",
    ),
    (
        "broker.nats.tls.client_ca_pem_file",
        "it is not used by a NATS client",
    ),
    (
        "broker.nats.tls.client_ca_pem_b64",
        "it is not used by a NATS client",
    ),
    (
        "http_server.tls_autocert",
        "no ACME certificates are obtained: configure http_server.tls",
    ),
    ("http_server.http3", "HTTP/3 is not served"),
];

impl Config {
    /// With the PostgreSQL broker and no controller, as in Centrifugo, control (heartbeats,
    /// surveys, forwarded commands) stays on each node: a warning says so.
    fn controller_warning(&self) -> Option<String> {
        (self.effective_broker() == crate::BrokerKind::Postgres && !self.controller.enabled).then(
            || {
                "broker.type \"postgres\" carries no node-to-node control: nodes do not see each \
                 other (info, disconnect, presence of other nodes) unless controller.enabled with \
                 controller.type \"postgres\""
                    .to_owned()
            },
        )
    }
}

fn at<'v>(tree: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(tree, |v, key| v.get(key))
}

impl Config {
    /// Warnings about keys set to a non-default value that Gyre does not act on yet.
    pub(crate) fn inactive_key_warnings(&self) -> Vec<String> {
        let (Ok(mine), Ok(defaults)) = (
            serde_json::to_value(self),
            serde_json::to_value(Config::default()),
        ) else {
            return Vec::new();
        };
        INACTIVE
            .iter()
            .filter(|(path, _)| at(&mine, path) != at(&defaults, path))
            .map(|(path, instead)| format!("key \"{path}\" is not implemented yet: {instead}"))
            .chain(self.controller_warning())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_key_exists_and_only_changed_ones_warn() {
        let defaults = serde_json::to_value(Config::default()).expect("serializes");
        for (path, _) in INACTIVE {
            assert!(at(&defaults, path).is_some(), "{path} is not a key");
        }
        let mut c = Config::default();
        assert!(c.inactive_key_warnings().is_empty());
        c.websocket.compression = true;
        c.client.concurrency = 8;
        c.http_server.tls_autocert.enabled = true;
        let w = c.inactive_key_warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("client.concurrency"), "{w:?}");
        assert!(w[1].contains("http_server.tls_autocert"), "{w:?}");
    }
}
