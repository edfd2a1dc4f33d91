//! The `broker.nats` section: the NATS broker's connection and subject settings (Centrifugo
//! v6 key names and defaults).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Duration, RedisTlsConfig};

/// `broker.nats` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NatsBrokerConfig {
    /// NATS server URL (`nats://host:port`, `tls://host:port`, `host:port`; several separated
    /// by commas). Empty means `nats://127.0.0.1:4222`, as upstream.
    pub url: String,
    /// Subject prefix: publications travel on `<prefix>.client.<channel>`, control on
    /// `<prefix>.control` and `<prefix>.node.<id>`.
    pub prefix: String,
    /// Bound of one connection attempt.
    pub dial_timeout: Duration,
    /// Bound of handing one message to the connection.
    pub write_timeout: Duration,
    /// TLS for the NATS connection.
    pub tls: RedisTlsConfig,
    /// Channels with NATS wildcards (`*`, `>`) may be subscribed to (publishing to them is
    /// always refused).
    pub allow_wildcards: bool,
    /// Raw mode: channels are plain NATS subjects carrying bare payloads.
    pub raw_mode: NatsRawModeConfig,
}

impl Default for NatsBrokerConfig {
    fn default() -> Self {
        Self {
            url: "nats://localhost:4222".to_owned(),
            prefix: "centrifugo".to_owned(),
            dial_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
            tls: RedisTlsConfig::default(),
            allow_wildcards: false,
            raw_mode: NatsRawModeConfig::default(),
        }
    }
}

/// `broker.nats.raw_mode` section: a channel is the subject `prefix` + the channel name (after
/// `channel_replacements`), its publications are the message payloads as they are, so
/// applications outside Gyre publish and subscribe with any NATS client. No join/leave, no
/// publication info or tags in this mode.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NatsRawModeConfig {
    /// Use raw mode.
    pub enabled: bool,
    /// Substrings of channel names replaced in subjects (`{":": "."}` makes channel
    /// `chat:index` the subject `chat.index`).
    pub channel_replacements: BTreeMap<String, String>,
    /// Prefix of every raw subject (none by default).
    pub prefix: String,
}

/// Why a subject part is not usable in NATS, if it is not.
fn subject_part_problem(value: &str) -> Option<&'static str> {
    if value.chars().any(char::is_whitespace) {
        Some("must not contain whitespace")
    } else if value.contains('*') || value.contains('>') {
        Some("must not contain NATS wildcards (* or >)")
    } else {
        None
    }
}

impl NatsBrokerConfig {
    /// The server URLs to connect to (the upstream default when `url` is empty).
    pub fn urls(&self) -> Vec<String> {
        let urls: Vec<String> = self
            .url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        if urls.is_empty() {
            vec!["nats://127.0.0.1:4222".to_owned()]
        } else {
            urls
        }
    }

    /// Every error of this section as `(key, reason)`, keys under `at`.
    pub(crate) fn violations(&self, at: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for url in self.urls() {
            if let Some((scheme, rest)) = url.split_once("://") {
                if !matches!(scheme, "nats" | "tls") {
                    out.push((
                        format!("{at}.url"),
                        format!("unsupported scheme {scheme:?} in {url:?} (nats:// or tls://)"),
                    ));
                } else if rest.is_empty() || rest.starts_with(':') {
                    out.push((format!("{at}.url"), format!("no host in {url:?}")));
                }
            } else if url.chars().any(char::is_whitespace) {
                out.push((format!("{at}.url"), format!("malformed URL {url:?}")));
            }
        }
        if self.prefix.is_empty() {
            out.push((format!("{at}.prefix"), "must not be empty".to_owned()));
        } else if let Some(problem) = subject_part_problem(&self.prefix) {
            out.push((format!("{at}.prefix"), problem.to_owned()));
        }
        if self.dial_timeout.get().is_zero() {
            out.push((format!("{at}.dial_timeout"), "must be positive".to_owned()));
        }
        if self.write_timeout.get().is_zero() {
            out.push((format!("{at}.write_timeout"), "must be positive".to_owned()));
        }
        let raw = &self.raw_mode;
        if let Some(problem) = subject_part_problem(&raw.prefix) {
            out.push((format!("{at}.raw_mode.prefix"), problem.to_owned()));
        }
        for (from, to) in &raw.channel_replacements {
            if from.is_empty() {
                out.push((
                    format!("{at}.raw_mode.channel_replacements"),
                    "a replaced string must not be empty".to_owned(),
                ));
            }
            if let Some(problem) = subject_part_problem(to) {
                out.push((
                    format!("{at}.raw_mode.channel_replacements"),
                    format!("the replacement of {from:?} {problem}"),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, Format, load_str};

    #[test]
    fn defaults_are_centrifugos() {
        let c = Config::default().broker.nats;
        assert_eq!(c.url, "nats://localhost:4222");
        assert_eq!(c.prefix, "centrifugo");
        assert_eq!(c.dial_timeout.get().as_secs(), 1);
        assert_eq!(c.write_timeout.get().as_secs(), 1);
        assert!(!c.allow_wildcards && !c.raw_mode.enabled && !c.tls.enabled);
        assert!(c.violations("broker.nats").is_empty());
    }

    #[test]
    fn every_key_loads_without_warnings() {
        let text = r#"{"broker": {"enabled": true, "type": "nats", "nats": {
            "url": "nats://127.0.0.1:4333, tls://other:4222", "prefix": "app",
            "dial_timeout": "2s", "write_timeout": "500ms", "allow_wildcards": true,
            "tls": {"enabled": true, "insecure_skip_verify": true},
            "raw_mode": {"enabled": true, "prefix": "raw.", "channel_replacements": {":": "."}}}}}"#;
        let loaded = load_str(text, Format::Json, &[], &[]).expect("loads");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let n = &loaded.config.broker.nats;
        assert_eq!(n.urls(), ["nats://127.0.0.1:4333", "tls://other:4222"]);
        assert_eq!(n.write_timeout.get().as_millis(), 500);
        assert_eq!(n.raw_mode.channel_replacements[":"], ".");
        assert!(n.allow_wildcards && n.raw_mode.enabled && n.tls.enabled);
    }

    #[test]
    fn environment_variables_set_the_keys() {
        let env: Vec<(String, String)> = [
            ("CENTRIFUGO_BROKER_ENABLED", "true"),
            ("CENTRIFUGO_BROKER_TYPE", "nats"),
            ("CENTRIFUGO_BROKER_NATS_URL", "nats://10.0.0.1:4222"),
            ("CENTRIFUGO_BROKER_NATS_DIAL_TIMEOUT", "3s"),
            ("CENTRIFUGO_BROKER_NATS_ALLOW_WILDCARDS", "true"),
            ("CENTRIFUGO_BROKER_NATS_RAW_MODE_PREFIX", "raw."),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let loaded = load_str("{}", Format::Json, &env, &[]).expect("loads");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let n = &loaded.config.broker.nats;
        assert_eq!(n.url, "nats://10.0.0.1:4222");
        assert_eq!(n.dial_timeout.get().as_secs(), 3);
        assert!(n.allow_wildcards);
        assert_eq!(n.raw_mode.prefix, "raw.");
    }

    #[test]
    fn an_empty_url_means_the_default_server() {
        let mut c = Config::default().broker.nats;
        c.url = String::new();
        assert_eq!(c.urls(), ["nats://127.0.0.1:4222"]);
        assert!(c.violations("broker.nats").is_empty());
    }

    #[test]
    fn bad_values_are_refused_with_their_key() {
        let text = r#"{"broker": {"enabled": true, "type": "nats", "nats": {
            "url": "redis://x:1", "prefix": "a b", "dial_timeout": "0s",
            "raw_mode": {"prefix": "x.>", "channel_replacements": {"": "."}}}}}"#;
        let err = load_str(text, Format::Json, &[], &[])
            .expect_err("refused")
            .to_string();
        for key in [
            "broker.nats.url",
            "broker.nats.prefix",
            "broker.nats.dial_timeout",
            "broker.nats.raw_mode.prefix",
            "broker.nats.raw_mode.channel_replacements",
        ] {
            assert!(err.contains(key), "{key} missing in {err}");
        }
    }

    #[test]
    fn unused_tls_keys_are_warned() {
        let text = r#"{"broker": {"enabled": true, "type": "nats",
            "nats": {"tls": {"client_ca_pem": "x", "server_name": "y"}}}}"#;
        let loaded = load_str(text, Format::Json, &[], &[]).expect("loads");
        for key in [
            "broker.nats.tls.client_ca_pem",
            "broker.nats.tls.server_name",
        ] {
            assert!(
                loaded.warnings.iter().any(|w| w.contains(key)),
                "{key}: {:?}",
                loaded.warnings
            );
        }
    }
}
