//! Proxy configuration: the application backend endpoints Centrifugo v6 calls for connect,
//! refresh, subscribe, publish, sub_refresh and RPC (`client.proxy.*`, `channel.proxy.*`,
//! `rpc.proxy`, named `proxies`, and the per-namespace `*_proxy_enabled`/`*_proxy_name`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Duration;

/// The name under which the `channel.proxy.*` (and `rpc.proxy`) entries are found; reserved.
pub const DEFAULT_PROXY_NAME: &str = "default";

/// HTTP-only options of a proxy (`http` object).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyHttpOptions {
    /// Headers added to every request to the backend.
    pub static_headers: BTreeMap<String, String>,
    /// TLS options (parsed, not implemented: a warning names them).
    pub tls: serde_json::Value,
    /// HTTP status to error/disconnect transforms (parsed, not implemented: warned).
    pub status_to_code_transforms: Vec<serde_json::Value>,
}

/// GRPC-only options of a proxy (`grpc` object), for `grpc://` endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyGrpcOptions {
    /// TLS to the backend (`enabled`, `server_ca_pem`, `cert_pem` + `key_pem`, `server_name`,
    /// `insecure_skip_verify`; `client_ca_pem` is not used by a client and warned about).
    pub tls: crate::RedisTlsConfig,
    /// Metadata key sent with every call (per-RPC credentials), with `credentials_value`.
    pub credentials_key: String,
    /// Value of `credentials_key`.
    pub credentials_value: String,
    /// Compress requests with gzip.
    pub compression: bool,
    /// Metadata added to every call (forwarded headers win over it).
    pub static_metadata: BTreeMap<String, String>,
}

/// One proxy endpoint and how it is called.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyOptions {
    /// `http://` or `https://` URL of the backend handler, or `grpc://host:port` of a backend
    /// serving `centrifugal.centrifugo.proxy.CentrifugoProxy`.
    pub endpoint: String,
    /// How long a call may take (default 1s).
    pub timeout: Duration,
    /// Headers of the client's HTTP upgrade request forwarded to the backend.
    pub http_headers: Vec<String>,
    /// GRPC metadata keys to forward (GRPC proxies only).
    pub grpc_metadata: Vec<String>,
    /// Client-sent emulated headers (connect `headers`) forwarded to the backend.
    pub emulated_headers: Vec<String>,
    /// Send payloads base64-encoded (`b64data`) instead of as JSON (`data`).
    pub binary_encoding: bool,
    /// Add the connection's `meta` to requests.
    pub include_connection_meta: bool,
    /// HTTP-only options.
    pub http: ProxyHttpOptions,
    /// GRPC-only options.
    pub grpc: ProxyGrpcOptions,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            endpoint: String::new(),
            timeout: Duration::from_secs(1),
            http_headers: Vec::new(),
            grpc_metadata: Vec::new(),
            emulated_headers: Vec::new(),
            binary_encoding: false,
            include_connection_meta: false,
            http: ProxyHttpOptions::default(),
            grpc: ProxyGrpcOptions::default(),
        }
    }
}

impl ProxyOptions {
    /// Whether the backend is called over GRPC (a `grpc://` endpoint).
    pub fn is_grpc(&self) -> bool {
        self.endpoint.starts_with("grpc://")
    }
}

/// A proxy that is switched on with `enabled` (`client.proxy.connect`, `client.proxy.refresh`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnabledProxy {
    /// Call this proxy.
    pub enabled: bool,
    /// The endpoint and its options.
    #[serde(flatten)]
    pub options: ProxyOptions,
}

/// The `client.proxy` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientProxyConfig {
    /// Connect proxy, called for connections without a token.
    pub connect: EnabledProxy,
    /// Refresh proxy, called when a proxy-authenticated connection expires.
    pub refresh: EnabledProxy,
}

/// The `channel.proxy` section: the proxies namespaces use when they name none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelProxyConfig {
    /// Subscribe proxy.
    pub subscribe: ProxyOptions,
    /// Publish proxy.
    pub publish: ProxyOptions,
    /// Subscription refresh proxy.
    pub sub_refresh: ProxyOptions,
    /// Subscribe stream proxy (GRPC only; not implemented).
    pub subscribe_stream: ProxyOptions,
    /// Shared poll refresh proxy, for `shared_poll` namespaces that name none.
    pub shared_poll_refresh: ProxyOptions,
}

/// A named proxy (`proxies[]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NamedProxy {
    /// The name namespaces refer to.
    pub name: String,
    /// The endpoint and its options.
    #[serde(flatten)]
    pub options: ProxyOptions,
}

/// Per-namespace proxy switches (flattened into the channel options).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NamespaceProxyOptions {
    /// Ask the subscribe proxy about subscriptions without a token.
    pub subscribe_proxy_enabled: bool,
    /// Named proxy for subscribe ("" or "default": `channel.proxy.subscribe`).
    pub subscribe_proxy_name: String,
    /// Ask the publish proxy about client publications.
    pub publish_proxy_enabled: bool,
    /// Named proxy for publish.
    pub publish_proxy_name: String,
    /// Ask the sub_refresh proxy when subscriptions expire.
    pub sub_refresh_proxy_enabled: bool,
    /// Named proxy for sub_refresh.
    pub sub_refresh_proxy_name: String,
    /// Subscribe stream proxy (GRPC only; not implemented).
    pub subscribe_stream_proxy_enabled: bool,
    /// Named proxy for subscribe streams.
    pub subscribe_stream_proxy_name: String,
    /// Bidirectional subscribe streams.
    pub subscribe_stream_proxy_bidirectional: bool,
}

/// RPC options of the methods without a namespace, or of one RPC namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RpcOptions {
    /// Send RPC calls to a proxy.
    pub proxy_enabled: bool,
    /// Named proxy ("" or "default": `rpc.proxy`).
    pub proxy_name: String,
}

/// An RPC namespace (`rpc.namespaces[]`): methods `name<boundary>method`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RpcNamespace {
    /// Namespace name.
    pub name: String,
    /// Its options.
    #[serde(flatten)]
    pub options: RpcOptions,
}

/// An endpoint that is missing (when `required`) or has no scheme.
fn endpoint_violation(key: String, p: &ProxyOptions, required: bool) -> Option<(String, String)> {
    if p.endpoint.is_empty() {
        return required.then(|| (key, "an endpoint is required".to_owned()));
    }
    (!p.endpoint.contains("://")).then(|| {
        let reason = format!(
            "\"{}\" has no scheme (http://, https:// or grpc://)",
            p.endpoint
        );
        (key, reason)
    })
}

/// Whether a proxy name means the section's default entry.
pub fn is_default_name(name: &str) -> bool {
    name.is_empty() || name == DEFAULT_PROXY_NAME
}

/// Which event a proxy is looked up for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    /// `client.proxy.connect`.
    Connect,
    /// `client.proxy.refresh`.
    Refresh,
    /// Subscribe (`channel.proxy.subscribe` or named).
    Subscribe,
    /// Publish (`channel.proxy.publish` or named).
    Publish,
    /// Subscription refresh (`channel.proxy.sub_refresh` or named).
    SubRefresh,
    /// RPC (`rpc.proxy` or named).
    Rpc,
}

impl ProxyKind {
    /// The key of the section default.
    fn default_key(self) -> &'static str {
        match self {
            ProxyKind::Connect => "client.proxy.connect",
            ProxyKind::Refresh => "client.proxy.refresh",
            ProxyKind::Subscribe => "channel.proxy.subscribe",
            ProxyKind::Publish => "channel.proxy.publish",
            ProxyKind::SubRefresh => "channel.proxy.sub_refresh",
            ProxyKind::Rpc => "rpc.proxy",
        }
    }
}

impl crate::Config {
    /// Every channel options block with the key it is configured under
    /// (`channel.without_namespace`, then `channel.namespaces[i]`).
    pub(crate) fn channel_options_by_key(
        &self,
    ) -> impl Iterator<Item = (String, &crate::ChannelOptions)> {
        std::iter::once((
            "channel.without_namespace".to_owned(),
            &self.channel.without_namespace,
        ))
        .chain(
            self.channel
                .namespaces
                .iter()
                .enumerate()
                .map(|(i, ns)| (format!("channel.namespaces[{i}]"), &ns.options)),
        )
    }

    fn default_proxy(&self, kind: ProxyKind) -> Option<&ProxyOptions> {
        let options = match kind {
            ProxyKind::Connect => {
                let p = &self.client.proxy.connect;
                return p.enabled.then_some(&p.options);
            }
            ProxyKind::Refresh => {
                let p = &self.client.proxy.refresh;
                return p.enabled.then_some(&p.options);
            }
            ProxyKind::Subscribe => &self.channel.proxy.subscribe,
            ProxyKind::Publish => &self.channel.proxy.publish,
            ProxyKind::SubRefresh => &self.channel.proxy.sub_refresh,
            ProxyKind::Rpc => &self.rpc.proxy,
        };
        (!options.endpoint.is_empty()).then_some(options)
    }

    /// The proxy called for `kind` under `name` ("" or "default": the section's own entry;
    /// for connect and refresh only when enabled), `None` when there is none.
    pub fn proxy(&self, kind: ProxyKind, name: &str) -> Option<&ProxyOptions> {
        if is_default_name(name) {
            return self.default_proxy(kind);
        }
        self.proxies
            .iter()
            .find(|p| p.name == name)
            .map(|p| &p.options)
    }

    /// The RPC options that apply to `method` (its namespace's, or those of methods without a
    /// namespace); `None` when the method names an RPC namespace that is not configured.
    pub fn rpc_options(&self, method: &str) -> Option<&RpcOptions> {
        let boundary = &self.rpc.namespace_boundary;
        match (boundary.is_empty(), method.split_once(boundary.as_str())) {
            (false, Some((ns, _))) => self
                .rpc
                .namespaces
                .iter()
                .find(|n| n.name == ns)
                .map(|n| &n.options),
            _ => Some(&self.rpc.without_namespace),
        }
    }

    /// Every proxy configuration error as `(key, reason)`.
    pub(crate) fn proxy_violations(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut endpoint = |key: String, p: &ProxyOptions, required: bool| {
            out.extend(endpoint_violation(key, p, required));
        };
        let c = &self.client.proxy;
        endpoint(
            "client.proxy.connect.endpoint".into(),
            &c.connect.options,
            c.connect.enabled,
        );
        endpoint(
            "client.proxy.refresh.endpoint".into(),
            &c.refresh.options,
            c.refresh.enabled,
        );
        let ch = &self.channel.proxy;
        endpoint(
            "channel.proxy.subscribe.endpoint".into(),
            &ch.subscribe,
            false,
        );
        endpoint("channel.proxy.publish.endpoint".into(), &ch.publish, false);
        endpoint(
            "channel.proxy.sub_refresh.endpoint".into(),
            &ch.sub_refresh,
            false,
        );
        endpoint(
            "channel.proxy.subscribe_stream.endpoint".into(),
            &ch.subscribe_stream,
            false,
        );
        endpoint(
            "channel.proxy.shared_poll_refresh.endpoint".into(),
            &ch.shared_poll_refresh,
            false,
        );
        endpoint("rpc.proxy.endpoint".into(), &self.rpc.proxy, false);
        let mut names = std::collections::HashSet::new();
        for (i, p) in self.proxies.iter().enumerate() {
            out.extend(endpoint_violation(
                format!("proxies[{i}].endpoint"),
                &p.options,
                true,
            ));
            if p.name.is_empty() || p.name == DEFAULT_PROXY_NAME {
                out.push((
                    format!("proxies[{i}].name"),
                    "a name other than \"\" and \"default\" is required".to_owned(),
                ));
            } else if !names.insert(p.name.as_str()) {
                out.push((
                    format!("proxies[{i}].name"),
                    format!("duplicate name \"{}\"", p.name),
                ));
            }
        }
        let mut check = |key: String, kind: ProxyKind, enabled: bool, name: &str| {
            if (enabled || !is_default_name(name)) && self.proxy(kind, name).is_none() {
                let reason = if is_default_name(name) {
                    format!("proxy enabled but {} has no endpoint", kind.default_key())
                } else {
                    format!("unknown proxy \"{name}\"")
                };
                out.push((key, reason));
            }
        };
        for (base, o) in self.channel_options_by_key() {
            let p = &o.proxy;
            check(
                format!("{base}.subscribe_proxy_name"),
                ProxyKind::Subscribe,
                p.subscribe_proxy_enabled,
                &p.subscribe_proxy_name,
            );
            check(
                format!("{base}.publish_proxy_name"),
                ProxyKind::Publish,
                p.publish_proxy_enabled,
                &p.publish_proxy_name,
            );
            check(
                format!("{base}.sub_refresh_proxy_name"),
                ProxyKind::SubRefresh,
                p.sub_refresh_proxy_enabled,
                &p.sub_refresh_proxy_name,
            );
        }
        let rpc = &self.rpc.without_namespace;
        check(
            "rpc.without_namespace.proxy_name".into(),
            ProxyKind::Rpc,
            rpc.proxy_enabled,
            &rpc.proxy_name,
        );
        for (i, ns) in self.rpc.namespaces.iter().enumerate() {
            let o = &ns.options;
            check(
                format!("rpc.namespaces[{i}].proxy_name"),
                ProxyKind::Rpc,
                o.proxy_enabled,
                &o.proxy_name,
            );
        }
        out
    }

    /// Every configured proxy options block with the key it is configured under.
    pub fn proxies_by_key(&self) -> Vec<(String, &ProxyOptions)> {
        let ch = &self.channel.proxy;
        let mut all = vec![
            (
                "client.proxy.connect".to_owned(),
                &self.client.proxy.connect.options,
            ),
            (
                "client.proxy.refresh".to_owned(),
                &self.client.proxy.refresh.options,
            ),
            ("channel.proxy.subscribe".to_owned(), &ch.subscribe),
            ("channel.proxy.publish".to_owned(), &ch.publish),
            ("channel.proxy.sub_refresh".to_owned(), &ch.sub_refresh),
            (
                "channel.proxy.shared_poll_refresh".to_owned(),
                &ch.shared_poll_refresh,
            ),
            ("rpc.proxy".to_owned(), &self.rpc.proxy),
        ];
        for (i, p) in self.proxies.iter().enumerate() {
            all.push((format!("proxies[{i}]"), &p.options));
        }
        all
    }

    /// Warnings about proxy options Gyre parses but does not implement, each naming its key.
    pub(crate) fn proxy_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (key, p) in self.proxies_by_key() {
            let not_implemented =
                |what: &str| format!("key \"{key}.{what}\" is not implemented; ignored");
            let grpc = p.is_grpc();
            if !p.grpc_metadata.is_empty() {
                out.push(format!("key \"{key}.grpc_metadata\" is not implemented (no client connects over GRPC, so there is no metadata to forward); ignored"));
            }
            if !p.emulated_headers.is_empty() {
                out.push(not_implemented("emulated_headers"));
            }
            if !p.http.tls.is_null() {
                out.push(not_implemented("http.tls"));
            }
            if !p.http.status_to_code_transforms.is_empty() {
                out.push(not_implemented("http.status_to_code_transforms"));
            }
            if grpc && !p.http.static_headers.is_empty() {
                out.push(format!("key \"{key}.http.static_headers\" applies to HTTP endpoints only (use grpc.static_metadata); ignored"));
            }
            if !grpc && p.grpc != ProxyGrpcOptions::default() {
                out.push(format!(
                    "key \"{key}.grpc\" applies to grpc:// endpoints only; ignored"
                ));
            }
            let tls = &p.grpc.tls;
            for (name, value) in [
                ("client_ca_pem", &tls.client_ca_pem),
                ("client_ca_pem_file", &tls.client_ca_pem_file),
                ("client_ca_pem_b64", &tls.client_ca_pem_b64),
            ] {
                if !value.is_empty() {
                    out.push(format!(
                        "key \"{key}.grpc.tls.{name}\" is not used by a GRPC client; ignored"
                    ));
                }
            }
        }
        if self.channel.proxy.shared_poll_refresh.is_grpc() {
            out.push("key \"channel.proxy.shared_poll_refresh.endpoint\": GRPC shared poll proxies are not implemented; refreshes through it fail".to_owned());
        }
        for (base, o) in self.channel_options_by_key() {
            let name = &o.shared_poll.proxy_name;
            if o.subscription_type == crate::SubscriptionType::SharedPoll
                && !is_default_name(name)
                && self
                    .shared_poll_proxy(name)
                    .is_some_and(ProxyOptions::is_grpc)
            {
                out.push(format!("key \"{base}.shared_poll.proxy_name\": GRPC shared poll proxies are not implemented; refreshes through it fail"));
            }
        }
        if !self.channel.proxy.subscribe_stream.endpoint.is_empty() {
            out.push("key \"channel.proxy.subscribe_stream\" is not implemented (GRPC subscribe streams); ignored".to_owned());
        }
        for (base, o) in self.channel_options_by_key() {
            if o.proxy.subscribe_stream_proxy_enabled {
                out.push(format!("key \"{base}.subscribe_stream_proxy_enabled\" is not implemented (GRPC subscribe streams); ignored"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::{Format, load_str};

    fn load(json: &str) -> Result<crate::Loaded, crate::ConfigError> {
        load_str(json, Format::Json, &[], &[])
    }

    #[test]
    fn proxies_resolve_by_name() {
        let loaded = load(
            r#"{"proxies":[{"name":"p1","endpoint":"http://127.0.0.1:1/a","timeout":"2s"}],
                "channel":{"proxy":{"subscribe":{"endpoint":"http://127.0.0.1:1/s"}},
                  "namespaces":[{"name":"chat","subscribe_proxy_enabled":true,"publish_proxy_enabled":true,"publish_proxy_name":"p1"}]},
                "rpc":{"without_namespace":{"proxy_enabled":true,"proxy_name":"p1"}}}"#,
        )
        .expect("valid");
        let c = &loaded.config;
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let ns = c.channel_options("chat:x").expect("ns").options;
        assert!(ns.proxy.subscribe_proxy_enabled);
        let sub = c.proxy(super::ProxyKind::Subscribe, &ns.proxy.subscribe_proxy_name);
        assert_eq!(
            sub.map(|p| p.endpoint.as_str()),
            Some("http://127.0.0.1:1/s")
        );
        let publish = c.proxy(super::ProxyKind::Publish, "p1").expect("p1");
        assert_eq!(publish.timeout.0, std::time::Duration::from_secs(2));
        assert!(c.rpc_options("x").is_some_and(|o| o.proxy_enabled));
        assert!(c.rpc_options("nope:x").is_none());
    }

    #[test]
    fn bad_proxy_config_names_the_key() {
        let err = |json: &str| load(json).err().map(|e| e.to_string()).unwrap_or_default();
        let e = err(
            r#"{"channel":{"namespaces":[{"name":"chat","subscribe_proxy_enabled":true,"subscribe_proxy_name":"nope"}]}}"#,
        );
        assert!(
            e.contains("channel.namespaces[0].subscribe_proxy_name"),
            "{e}"
        );
        let e = err(
            r#"{"client":{"proxy":{"connect":{"enabled":true,"endpoint":"localhost:3000/connect"}}}}"#,
        );
        assert!(e.contains("client.proxy.connect.endpoint"), "{e}");
        let e = err(r#"{"rpc":{"without_namespace":{"proxy_enabled":true}}}"#);
        assert!(e.contains("rpc.without_namespace.proxy_name"), "{e}");
    }

    #[test]
    fn unimplemented_proxy_keys_warn() {
        let loaded = load(
            r#"{"proxies":[{"name":"g","endpoint":"grpc://127.0.0.1:1","http":{"status_to_code_transforms":[{}]}}]}"#,
        )
        .expect("valid");
        let all = loaded.warnings.join("\n");
        assert!(!all.contains("proxies[0].endpoint"), "{all}");
        assert!(
            all.contains("proxies[0].http.status_to_code_transforms"),
            "{all}"
        );
    }

    #[test]
    fn grpc_options_parse_and_misplaced_ones_warn() {
        let loaded = load(
            r#"{"rpc":{"proxy":{"endpoint":"grpc://127.0.0.1:1","grpc":{"credentials_key":"k","credentials_value":"v",
                  "compression":true,"static_metadata":{"x-a":"1"},"tls":{"enabled":true,"server_name":"backend"}}}},
                "proxies":[{"name":"h","endpoint":"http://127.0.0.1:1","grpc":{"compression":true}},
                  {"name":"g","endpoint":"grpc://127.0.0.1:1","http":{"static_headers":{"a":"b"}},"grpc_metadata":["x"]}]}"#,
        )
        .expect("valid");
        let g = &loaded.config.rpc.proxy.grpc;
        assert_eq!(
            (g.credentials_key.as_str(), g.credentials_value.as_str()),
            ("k", "v")
        );
        assert!(g.compression && g.tls.enabled);
        assert_eq!(g.static_metadata.get("x-a").map(String::as_str), Some("1"));
        assert_eq!(g.tls.server_name, "backend");
        let all = loaded.warnings.join("\n");
        assert!(!all.contains("rpc.proxy"), "{all}");
        assert!(!all.contains("shared_poll"), "{all}");
        assert!(all.contains("proxies[0].grpc"), "{all}");
        assert!(all.contains("proxies[1].http.static_headers"), "{all}");
        assert!(all.contains("proxies[1].grpc_metadata"), "{all}");
    }

    #[test]
    fn grpc_shared_poll_proxies_warn() {
        let loaded = load(
            r#"{"channel":{"proxy":{"shared_poll_refresh":{"endpoint":"grpc://127.0.0.1:1"}}}}"#,
        )
        .expect("valid");
        let all = loaded.warnings.join("\n");
        assert!(
            all.contains("channel.proxy.shared_poll_refresh.endpoint"),
            "{all}"
        );
    }
}
