//! Loading a configuration from a file, environment variables and command-line overrides.
//!
//! Layers, later ones winning:
//! 1. the file (`.json`, `.yaml`/`.yml` or `.toml`), parsed into a JSON tree;
//! 2. environment variables `CENTRIFUGO_<PATH>` and then `GYRE_<PATH>`, where `<PATH>` is a
//!    key path upper-cased with dots replaced by `_` (`CENTRIFUGO_HTTP_SERVER_PORT`);
//! 3. command-line overrides given as dotted key paths (`http_server.port`).
//!
//! The known key paths are derived from the serialized `Config::default()`, so every key that
//! exists in [`Config`] can be set from the environment. Values are typed by the default value
//! at that path: strings stay raw strings, booleans accept Go's spellings (`1`, `t`, `TRUE`, ...),
//! lists accept a JSON array or a comma/space separated string, anything else is parsed as JSON
//! when possible. Unknown keys and unknown `CENTRIFUGO_*` variables produce warnings; values of
//! the wrong type produce [`ConfigError::Invalid`] naming the key. The result is validated
//! ([`Config::validate`]) and prepared ([`Config::prepare`]).

use std::collections::HashMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{ChannelOptions, Config, ConfigError, TokenOptions};

/// A loaded and validated configuration plus the warnings produced while loading it.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The validated, prepared configuration.
    pub config: Config,
    /// Human-readable warnings (unknown keys, unknown variables, unsupported options).
    pub warnings: Vec<String>,
}

/// Configuration file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON (`.json`).
    Json,
    /// YAML (`.yaml`, `.yml`).
    Yaml,
    /// TOML (`.toml`).
    Toml,
}

impl Format {
    /// Picks the format from a file extension (case-insensitive).
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            "toml" => Some(Format::Toml),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Yaml => "YAML",
            Format::Toml => "TOML",
        }
    }
}

/// Environment variable prefixes, applied in this order (later wins).
const ENV_PREFIXES: [&str; 2] = ["CENTRIFUGO_", "GYRE_"];

/// Loads a configuration: optional file, then environment overlay, then overrides.
///
/// `env` is a list of `(name, value)` pairs (pass `std::env::vars().collect::<Vec<_>>()`);
/// `overrides` maps dotted key paths to values (a string value is typed like an environment
/// value). The returned configuration has been validated and prepared.
pub fn load(
    path: Option<&Path>,
    env: &[(String, String)],
    overrides: &[(String, Value)],
) -> Result<Loaded, ConfigError> {
    let tree = match path {
        None => Value::Object(Map::new()),
        Some(path) => {
            let format = Format::from_path(path).ok_or_else(|| ConfigError::UnsupportedFormat {
                path: path.to_owned(),
            })?;
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                path: path.to_owned(),
                source,
            })?;
            parse_text(&text, format).map_err(|message| ConfigError::Parse {
                path: path.to_owned(),
                format: format.name(),
                message,
            })?
        }
    };
    load_tree(tree, env, overrides)
}

/// Like [`load`] but reads the configuration from a string in the given format.
pub fn load_str(
    text: &str,
    format: Format,
    env: &[(String, String)],
    overrides: &[(String, Value)],
) -> Result<Loaded, ConfigError> {
    let tree = parse_text(text, format).map_err(|message| ConfigError::Parse {
        path: "<string>".into(),
        format: format.name(),
        message,
    })?;
    load_tree(tree, env, overrides)
}

/// Every environment variable name Gyre understands (with the `CENTRIFUGO_` prefix) and the
/// dotted key path it sets, sorted by name.
pub fn known_env_vars() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = KeyTable::new()
        .by_env
        .into_iter()
        .map(|(env, (path, _))| (format!("{}{env}", ENV_PREFIXES[0]), path.join(".")))
        .collect();
    out.sort();
    out
}

fn parse_text(text: &str, format: Format) -> Result<Value, String> {
    let value: Value = match format {
        Format::Json => serde_json::from_str(text).map_err(|e| e.to_string())?,
        Format::Yaml => serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?,
        Format::Toml => toml::from_str(text).map_err(|e| e.to_string())?,
    };
    match value {
        Value::Null => Ok(Value::Object(Map::new())),
        Value::Object(_) => Ok(value),
        _ => Err("the top level must be an object/table of sections".to_owned()),
    }
}

fn load_tree(
    mut tree: Value,
    env: &[(String, String)],
    overrides: &[(String, Value)],
) -> Result<Loaded, ConfigError> {
    let table = KeyTable::new();
    let mut warnings = Vec::new();
    apply_env(&mut tree, &table, env, &mut warnings);
    apply_consumer_env(&mut tree, env, &mut warnings);
    apply_overrides(&mut tree, &table, overrides, &mut warnings);
    unknown_keys(&tree, &table.defaults, &mut warnings);
    check_flattened(&tree)?;
    let mut config: Config =
        serde_path_to_error::deserialize(tree).map_err(|e| ConfigError::Invalid {
            key: path_string("", e.path()),
            reason: e.inner().to_string(),
        })?;
    config.validate()?;
    warnings.extend(config.proxy_warnings());
    warnings.extend(config.subscription_type_warnings());
    warnings.extend(config.inactive_key_warnings());
    warnings.extend(config.map_warnings());
    warnings.extend(config.consumer_warnings());
    config.prepare();
    Ok(Loaded { config, warnings })
}

/// The JSON type of a default value, used to type environment/override strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    String,
    Bool,
    Number,
    Array,
    Object,
    Other,
}

fn kind_of(v: &Value) -> Kind {
    match v {
        Value::String(_) => Kind::String,
        Value::Bool(_) => Kind::Bool,
        Value::Number(_) => Kind::Number,
        Value::Array(_) => Kind::Array,
        Value::Object(_) => Kind::Object,
        Value::Null => Kind::Other,
    }
}

/// Known key paths derived from the serialized defaults.
struct KeyTable {
    /// Serialized `Config::default()`.
    defaults: Value,
    /// Upper-cased `_`-joined path → (path segments, value kind).
    by_env: HashMap<String, (Vec<String>, Kind)>,
    /// Dotted path → value kind.
    by_path: HashMap<String, Kind>,
}

impl KeyTable {
    fn new() -> KeyTable {
        Self::of(serde_json::to_value(Config::default()).unwrap_or(Value::Null))
    }

    /// The key table of a section whose serialized defaults are `defaults`.
    fn of(defaults: Value) -> KeyTable {
        let mut table = KeyTable {
            defaults: Value::Null,
            by_env: HashMap::new(),
            by_path: HashMap::new(),
        };
        table.collect(&defaults, &mut Vec::new());
        table.defaults = defaults;
        table
    }

    fn collect(&mut self, v: &Value, path: &mut Vec<String>) {
        let Value::Object(map) = v else { return };
        for (key, child) in map {
            path.push(key.clone());
            let kind = kind_of(child);
            self.by_env
                .entry(path.join("_").to_ascii_uppercase())
                .or_insert_with(|| (path.clone(), kind));
            self.by_path.insert(path.join("."), kind);
            self.collect(child, path);
            path.pop();
        }
    }
}

/// Go's `strconv.ParseBool` spellings.
fn parse_go_bool(raw: &str) -> Option<bool> {
    match raw.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Turns a raw string into a JSON value according to the kind of the target key.
fn coerce(raw: &str, kind: Kind) -> Value {
    let as_json = || serde_json::from_str::<Value>(raw).ok();
    match kind {
        Kind::String => Value::String(raw.to_owned()),
        Kind::Bool => parse_go_bool(raw)
            .map(Value::Bool)
            .unwrap_or_else(|| Value::String(raw.to_owned())),
        Kind::Array => match as_json() {
            Some(v @ Value::Array(_)) => v,
            _ => Value::Array(
                crate::de::split_list(raw)
                    .into_iter()
                    .map(Value::String)
                    .collect(),
            ),
        },
        Kind::Number | Kind::Object | Kind::Other => {
            as_json().unwrap_or_else(|| Value::String(raw.to_owned()))
        }
    }
}

/// Merges `value` into `slot`: objects merge key by key, anything else replaces.
fn merge(slot: &mut Value, value: Value) {
    match (slot, value) {
        (Value::Object(existing), Value::Object(incoming)) => {
            for (k, v) in incoming {
                match existing.get_mut(&k) {
                    Some(child) => merge(child, v),
                    None => {
                        existing.insert(k, v);
                    }
                }
            }
        }
        (slot, value) => *slot = value,
    }
}

fn set_path(root: &mut Value, path: &[String], value: Value) {
    let mut cur = root;
    for seg in path {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else { return };
        cur = map.entry(seg.clone()).or_insert(Value::Null);
    }
    merge(cur, value);
}

fn apply_env(
    tree: &mut Value,
    table: &KeyTable,
    env: &[(String, String)],
    warnings: &mut Vec<String>,
) {
    for prefix in ENV_PREFIXES {
        for (name, raw) in env {
            let Some(suffix) = name.strip_prefix(prefix) else {
                continue;
            };
            match table.by_env.get(&suffix.to_ascii_uppercase()) {
                // A variable names a leaf key; one naming a whole section is not a setting
                // (e.g. GYRE_LOG, which tools use for log filters).
                Some((_, Kind::Object)) if prefix == ENV_PREFIXES[0] => {
                    warnings.push(format!(
                        "environment variable \"{name}\" names a section, ignored"
                    ));
                }
                Some((_, Kind::Object)) => {}
                Some((path, kind)) => set_path(tree, path, coerce(raw, *kind)),
                // Per-consumer variables: see `apply_consumer_env`.
                None if suffix.to_ascii_uppercase().starts_with("CONSUMERS_") => {}
                None if prefix == ENV_PREFIXES[0] => {
                    warnings.push(format!("unknown environment variable \"{name}\""));
                }
                None => {}
            }
        }
    }
}

/// Upstream's per-consumer variables, `CENTRIFUGO_CONSUMERS_<NAME>_<PATH>` (then `GYRE_...`):
/// `<NAME>` is a consumer's name upper-cased (the longest matching one), `<PATH>` a key path
/// inside it (`POSTGRESQL_DSN`). Applied after the `consumers` array is complete (it may come
/// from `CENTRIFUGO_CONSUMERS` itself); a variable naming no consumer or key is warned about.
fn apply_consumer_env(tree: &mut Value, env: &[(String, String)], warnings: &mut Vec<String>) {
    let table =
        KeyTable::of(serde_json::to_value(crate::ConsumerConfig::default()).unwrap_or(Value::Null));
    for prefix in ENV_PREFIXES {
        for (name, raw) in env {
            let Some(rest) = name
                .strip_prefix(prefix)
                .map(str::to_ascii_uppercase)
                .and_then(|r| r.strip_prefix("CONSUMERS_").map(str::to_owned))
            else {
                continue;
            };
            let consumers = tree.get_mut("consumers").and_then(Value::as_array_mut);
            let target = consumers
                .into_iter()
                .flatten()
                .filter_map(|c| {
                    let upper = c.get("name")?.as_str()?.to_ascii_uppercase();
                    let key = rest.strip_prefix(&upper)?.strip_prefix('_')?.to_owned();
                    Some((upper.len(), key, c))
                })
                .max_by_key(|(len, _, _)| *len);
            match target.and_then(|(_, key, c)| Some((table.by_env.get(&key)?, c))) {
                Some(((path, kind), consumer)) if *kind != Kind::Object => {
                    set_path(consumer, path, coerce(raw, *kind));
                }
                _ => warnings.push(format!("unknown environment variable \"{name}\"")),
            }
        }
    }
}

fn apply_overrides(
    tree: &mut Value,
    table: &KeyTable,
    overrides: &[(String, Value)],
    warnings: &mut Vec<String>,
) {
    for (key, value) in overrides {
        let path: Vec<String> = key.split('.').map(str::to_owned).collect();
        if key.is_empty() || path.iter().any(String::is_empty) {
            warnings.push(format!("ignoring override with invalid key \"{key}\""));
            continue;
        }
        let value = match (value, table.by_path.get(key.as_str())) {
            (Value::String(raw), Some(kind)) => coerce(raw, *kind),
            (value, _) => value.clone(),
        };
        set_path(tree, &path, value);
    }
}

/// Where a Centrifugo v5 top-level key lives in v6, for a friendlier warning.
fn v5_hint(key: &str) -> Option<String> {
    let v6 = match key {
        "token_hmac_secret_key" => "client.token.hmac_secret_key",
        "allowed_origins" => "client.allowed_origins",
        "api_key" => "http_api.key",
        "admin_password" => "admin.password",
        "admin_secret" => "admin.secret",
        "namespaces" => "channel.namespaces",
        "client_channel_limit" => "client.channel_limit",
        "client_queue_max_size" => "client.queue_max_size",
        "channel_max_length" => "channel.max_length",
        "redis_address" => "engine.redis.address",
        "ping_interval" => "client.ping_interval",
        "pong_timeout" => "client.pong_timeout",
        "port" => "http_server.port",
        "address" => "http_server.address",
        "internal_port" => "http_server.internal_port",
        "websocket_compression" => "websocket.compression",
        "global_history_meta_ttl" => "channel.history_meta_ttl",
        "global_presence_ttl" => "engine.redis.presence_ttl",
        "user_subscribe_to_personal" => "client.subscribe_to_user_personal_channel.enabled",
        "log_level" => "log.level",
        _ => {
            let defaults = serde_json::to_value(ChannelOptions::default()).ok()?;
            defaults.get(key)?;
            return Some(format!("channel.without_namespace.{key}"));
        }
    };
    Some(v6.to_owned())
}

fn unknown_key(parent: &str, key: &str, warnings: &mut Vec<String>) {
    let full = if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    };
    let hint = if parent.is_empty() {
        v5_hint(key)
    } else {
        None
    };
    match hint {
        Some(v6) => warnings.push(format!(
            "unknown key \"{full}\" (Centrifugo v5 name? in v6 it is \"{v6}\")"
        )),
        None => warnings.push(format!("unknown key \"{full}\"")),
    }
}

/// Warns about keys of `tree` that do not exist in `defaults`, recursing into sections and
/// checking each namespace entry against the channel option keys.
fn unknown_keys(tree: &Value, defaults: &Value, warnings: &mut Vec<String>) {
    walk(tree, defaults, "", warnings);
    let namespaces = tree
        .get("channel")
        .and_then(|c| c.get("namespaces"))
        .and_then(Value::as_array);
    let ns_defaults = serde_json::to_value(ChannelOptions::default()).unwrap_or(Value::Null);
    let consumer_defaults =
        serde_json::to_value(crate::ConsumerConfig::default()).unwrap_or(Value::Null);
    let consumers = tree.get("consumers").and_then(Value::as_array);
    for (i, consumer) in consumers.into_iter().flatten().enumerate() {
        walk(
            consumer,
            &consumer_defaults,
            &format!("consumers[{i}]"),
            warnings,
        );
    }
    for (i, ns) in namespaces.into_iter().flatten().enumerate() {
        let Value::Object(map) = ns else { continue };
        let parent = format!("channel.namespaces[{i}]");
        for (key, value) in map {
            if key == "name" {
                continue;
            }
            match ns_defaults.get(key) {
                None => unknown_key(&parent, key, warnings),
                Some(d) => walk(value, d, &format!("{parent}.{key}"), warnings),
            }
        }
    }
}

fn walk(tree: &Value, defaults: &Value, parent: &str, warnings: &mut Vec<String>) {
    let (Value::Object(map), Value::Object(known)) = (tree, defaults) else {
        return;
    };
    // An empty default object is a map (`http.static_headers`, ...): any key is the user's.
    if known.is_empty() {
        return;
    }
    for (key, value) in map {
        match known.get(key) {
            None => unknown_key(parent, key, warnings),
            Some(d) => {
                let path = if parent.is_empty() {
                    key.clone()
                } else {
                    format!("{parent}.{key}")
                };
                walk(value, d, &path, warnings);
            }
        }
    }
}

fn path_string(base: &str, path: &serde_path_to_error::Path) -> String {
    let inner = path.to_string();
    match (base.is_empty(), inner.as_str()) {
        (_, "." | "") => base.to_owned(),
        (true, _) => inner,
        (false, _) if inner.starts_with('[') => format!("{base}{inner}"),
        (false, _) => format!("{base}.{inner}"),
    }
}

/// Deserializes `value` minus `skip` keys as `T` to report precise key paths for sections
/// that are `#[serde(flatten)]`ed in [`Config`] (where serde loses the inner path).
fn check_section<T: DeserializeOwned>(
    value: &Value,
    base: &str,
    skip: &str,
) -> Result<(), ConfigError> {
    let Value::Object(map) = value else {
        return Ok(());
    };
    let mut map = map.clone();
    map.remove(skip);
    serde_path_to_error::deserialize::<_, T>(Value::Object(map))
        .map(drop)
        .map_err(|e| ConfigError::Invalid {
            key: path_string(base, e.path()),
            reason: e.inner().to_string(),
        })
}

fn check_flattened(tree: &Value) -> Result<(), ConfigError> {
    if let Some(sub) = tree.get("client").and_then(|c| c.get("subscription_token")) {
        check_section::<TokenOptions>(sub, "client.subscription_token", "enabled")?;
    }
    let namespaces = tree
        .get("channel")
        .and_then(|c| c.get("namespaces"))
        .and_then(Value::as_array);
    for (i, ns) in namespaces.into_iter().flatten().enumerate() {
        let base = format!("channel.namespaces[{i}]");
        if let Some(name) = ns.get("name")
            && !name.is_string()
        {
            return Err(ConfigError::Invalid {
                key: format!("{base}.name"),
                reason: format!("expected a string, got {name}"),
            });
        }
        check_section::<ChannelOptions>(ns, &base, "name")?;
    }
    Ok(())
}

/// Writes a configuration in a file format, every key included (JSON nulls, which TOML cannot
/// hold, are left out of TOML).
pub fn render(config: &Config, format: Format) -> Result<String, String> {
    match format {
        Format::Json => serde_json::to_string_pretty(config).map_err(|e| e.to_string()),
        Format::Yaml => serde_yaml_ng::to_string(config).map_err(|e| e.to_string()),
        Format::Toml => {
            let mut tree = serde_json::to_value(config).map_err(|e| e.to_string())?;
            drop_nulls(&mut tree);
            toml::to_string_pretty(&tree).map_err(|e| e.to_string())
        }
    }
}

fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, child| !child.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}
