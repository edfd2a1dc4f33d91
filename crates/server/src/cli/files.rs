//! `genconfig`, `defaultconfig` and `defaultenv`: configuration files and variables to start from.

use std::path::Path;

use anyhow::{Context as _, bail};
use gyre_config::{Config, Format};
use serde_json::Value;

/// Writes to standard output, quietly stopping when the reader has gone (`| head`).
fn print_all(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn format_of(path: &Path) -> anyhow::Result<Format> {
    Format::from_path(path).with_context(|| {
        format!(
            "{}: the file must end in .json, .yaml, .yml or .toml",
            path.display()
        )
    })
}

fn refuse_existing(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        bail!("{}: the file already exists", path.display());
    }
    Ok(())
}

/// A random secret (128 bits, as a UUID like upstream's generated values).
fn secret() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Writes a minimal configuration with a generated HMAC secret, admin password and secret and
/// API key, then checks that it loads (removing it if it does not).
pub(crate) fn genconfig(path: &Path) -> anyhow::Result<()> {
    refuse_existing(path)?;
    let format = format_of(path)?;
    let (token, password, admin_secret, key) = (secret(), secret(), secret(), secret());
    let text = match format {
        Format::Json => serde_json::to_string_pretty(&serde_json::json!({
            "client": {"token": {"hmac_secret_key": token}, "allowed_origins": []},
            "admin": {"enabled": false, "password": password, "secret": admin_secret},
            "http_api": {"key": key},
        }))?,
        Format::Yaml => format!(
            "client:\n  token:\n    hmac_secret_key: \"{token}\"\n  allowed_origins: []\n\nadmin:\n  enabled: false\n  password: \"{password}\"\n  secret: \"{admin_secret}\"\n\nhttp_api:\n  key: \"{key}\"\n"
        ),
        Format::Toml => format!(
            "[client]\n  allowed_origins = []\n\n  [client.token]\n    hmac_secret_key = \"{token}\"\n\n[admin]\n  enabled = false\n  password = \"{password}\"\n  secret = \"{admin_secret}\"\n\n[http_api]\n  key = \"{key}\"\n"
        ),
    };
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    if let Err(e) = gyre_config::load(Some(path), &[], &[]) {
        let _ = std::fs::remove_file(path);
        bail!("the generated configuration does not load: {e}");
    }
    Ok(())
}

/// Writes (or with `dry_run` prints) every key with its default, or with the values of `base`.
pub(crate) fn defaultconfig(path: &Path, base: Option<&Path>, dry_run: bool) -> anyhow::Result<()> {
    if !dry_run {
        refuse_existing(path)?;
    }
    let format = format_of(path)?;
    let config = match base {
        Some(base) => gyre_config::load(Some(base), &[], &[])?.config,
        None => Config::default(),
    };
    let text = gyre_config::render(&config, format).map_err(anyhow::Error::msg)?;
    if dry_run {
        print_all(&format!("{text}\n"));
        return Ok(());
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A value as an environment variable holds it: strings and lists quoted, lists of scalars
/// space-separated, anything else JSON.
fn env_value(v: &Value) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    match v {
        Value::String(s) => quote(s),
        Value::Array(items) if items.iter().all(|i| i.is_string()) => {
            let words: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            quote(&words.join(" "))
        }
        Value::Array(_) => quote(&v.to_string()),
        other => other.to_string(),
    }
}

/// Prints every `CENTRIFUGO_*` variable with its default (or the value in `base`); with
/// `changed_only`, only those whose value differs from the default.
pub(crate) fn defaultenv(base: Option<&Path>, changed_only: bool) -> anyhow::Result<()> {
    let config = match base {
        Some(base) => gyre_config::load(Some(base), &[], &[])?.config,
        None => Config::default(),
    };
    let values = serde_json::to_value(&config)?;
    let defaults = serde_json::to_value(Config::default())?;
    let at = |tree: &'_ Value, path: &str| -> Option<Value> {
        path.split('.').try_fold(tree, |v, key| v.get(key)).cloned()
    };
    let mut out = String::new();
    for (name, path) in gyre_config::known_env_vars() {
        let Some(value) = at(&values, &path) else {
            continue;
        };
        if value.is_object() || (changed_only && at(&defaults, &path).as_ref() == Some(&value)) {
            continue;
        }
        out.push_str(&format!("{name}={}\n", env_value(&value)));
    }
    print_all(&out);
    Ok(())
}
