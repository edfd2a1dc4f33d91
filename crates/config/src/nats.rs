//! The `broker.nats` section: the NATS broker's connection and subject settings.

use serde::{Deserialize, Serialize};

/// `broker.nats` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NatsBrokerConfig {
    /// NATS server URL.
    pub url: String,
    /// Subject prefix.
    pub prefix: String,
}

impl Default for NatsBrokerConfig {
    fn default() -> Self {
        Self {
            url: "nats://localhost:4222".to_owned(),
            prefix: "centrifugo".to_owned(),
        }
    }
}

impl NatsBrokerConfig {
    /// Every error of this section as `(key, reason)`, keys under `at`.
    pub(crate) fn violations(&self, at: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.url.is_empty() {
            out.push((format!("{at}.url"), "a NATS URL is required".to_owned()));
        }
        out.push((
            at.to_owned(),
            "the NATS broker is not implemented yet".to_owned(),
        ));
        out
    }
}
