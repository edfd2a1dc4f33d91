//! Error types for loading, validating and resolving configuration.

use std::path::PathBuf;

/// Everything that can go wrong while loading or validating a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Io {
        /// File that was being read.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The file extension does not name a supported format.
    #[error("unsupported config file format for {path}: use .json, .yaml, .yml or .toml")]
    UnsupportedFormat {
        /// File with the unsupported extension.
        path: PathBuf,
    },
    /// The file is not valid JSON/YAML/TOML (or its top level is not a table/object).
    #[error("cannot parse {format} config file {path}: {message}")]
    Parse {
        /// File that failed to parse.
        path: PathBuf,
        /// Format name: "JSON", "YAML" or "TOML".
        format: &'static str,
        /// Parser message (usually includes line and column).
        message: String,
    },
    /// A key has a value of the wrong type or an unparseable value.
    #[error("invalid value for \"{key}\": {reason}")]
    Invalid {
        /// Full dotted key path, e.g. `http_server.port` or `channel.namespaces[0].history_ttl`.
        key: String,
        /// Why the value was rejected.
        reason: String,
    },
    /// Semantic validation failed; every violation is listed as `"key: reason"`.
    #[error("invalid configuration: {}", .0.join("; "))]
    Validation(Vec<String>),
}

/// Errors from resolving a channel name against the configured namespaces.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// The channel refers to a namespace that is not configured (client error code 102).
    #[error("unknown channel namespace \"{0}\"")]
    UnknownNamespace(String),
    /// The channel name is longer than `channel.max_length` (client error code 107).
    #[error("channel name is too long ({len} > {max})")]
    TooLong {
        /// Length of the channel name in bytes.
        len: usize,
        /// Configured `channel.max_length`.
        max: usize,
    },
    /// The channel name is not ASCII, or does not match the namespace `channel_regex`
    /// (client error code 107).
    #[error("invalid channel name")]
    InvalidName,
}
