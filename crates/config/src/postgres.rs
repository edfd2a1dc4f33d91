//! The `broker.postgres` section: the PostgreSQL broker's connection and table settings.

use serde::{Deserialize, Serialize};

/// `broker.postgres` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PostgresBrokerConfig {
    /// PostgreSQL connection string (`postgres://user:pass@host:5432/db?sslmode=disable`).
    pub dsn: String,
}

impl PostgresBrokerConfig {
    /// Every error of this section as `(key, reason)`, keys under `at`.
    pub(crate) fn violations(&self, at: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.dsn.is_empty() {
            out.push((
                format!("{at}.dsn"),
                "a PostgreSQL DSN is required".to_owned(),
            ));
        }
        out.push((
            at.to_owned(),
            "the PostgreSQL broker is not implemented yet".to_owned(),
        ));
        out
    }
}
