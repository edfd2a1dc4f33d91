//! The DSN as Centrifugo users write it (for pgx / libpq): the TLS parameters (`sslmode`
//! `verify-ca` / `verify-full`, `sslrootcert`, `sslcert`, `sslkey`) and pgx's pool
//! parameters (`pool_max_conns`, ...) are taken out before the rest is parsed, so such a DSN
//! keeps working.

use gyre_config::RedisTlsConfig;

/// What the DSN says beyond the connection itself.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Extras {
    /// TLS with verification (`sslmode=verify-ca` or `verify-full`).
    pub verify: bool,
    /// `sslrootcert`, `sslcert`, `sslkey`: file paths.
    pub root_cert: Option<String>,
    /// Client certificate file.
    pub cert: Option<String>,
    /// Client key file.
    pub key: Option<String>,
    /// pgx pool parameters (`pool_max_conns`, ...): as in Centrifugo, `pool_size` sizes the
    /// pool.
    pub ignored: Vec<String>,
}

impl Extras {
    /// The TLS section these parameters amount to, over `tls` (whose keys win).
    pub(super) fn tls(&self, tls: &RedisTlsConfig) -> Option<RedisTlsConfig> {
        if !self.verify && !tls.enabled {
            return None;
        }
        let mut out = tls.clone();
        out.enabled = true;
        let unset = |a: &str, b: &str, c: &str| a.is_empty() && b.is_empty() && c.is_empty();
        if let Some(path) = &self.root_cert
            && unset(
                &tls.server_ca_pem,
                &tls.server_ca_pem_file,
                &tls.server_ca_pem_b64,
            )
        {
            out.server_ca_pem_file = path.clone();
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key)
            && unset(&tls.cert_pem, &tls.cert_pem_file, &tls.cert_pem_b64)
        {
            out.cert_pem_file = cert.clone();
            out.key_pem_file = key.clone();
        }
        Some(out)
    }
}

/// Splits `dsn` into what tokio-postgres parses and the [`Extras`] it would refuse.
pub(super) fn split(dsn: &str) -> (String, Extras) {
    let mut extras = Extras::default();
    let mut take = |key: &str, value: &str| -> bool {
        match key {
            "sslmode" if matches!(value, "verify-ca" | "verify-full") => extras.verify = true,
            "sslrootcert" => extras.root_cert = Some(value.to_owned()),
            "sslcert" => extras.cert = Some(value.to_owned()),
            "sslkey" => extras.key = Some(value.to_owned()),
            k if k.starts_with("pool_") => extras.ignored.push(k.to_owned()),
            _ => return false,
        }
        true
    };
    let trimmed = dsn.trim();
    let rest = if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        match trimmed.split_once('?') {
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        !take(k, &percent_decode(v))
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
            None => trimmed.to_owned(),
        }
    } else {
        // `key=value` pairs; values with spaces are single-quoted.
        let mut kept = Vec::new();
        for pair in pairs(trimmed) {
            let (k, v) = pair.split_once('=').unwrap_or((&pair, ""));
            let v = v.trim_matches('\'');
            if !take(k.trim(), v) {
                kept.push(pair.clone());
            }
        }
        kept.join(" ")
    };
    (rest, extras)
}

/// The `key=value` tokens of a key/value DSN (single quotes keep spaces).
fn pairs(dsn: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = dsn.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                current.push(c);
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            '\'' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = value.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parameters_for_tls_and_pools_are_taken_out() {
        let (rest, x) = split(
            "postgres://u:p@db:5432/app?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&pool_max_conns=5&pool_min_conns=1&application_name=gyre",
        );
        assert_eq!(rest, "postgres://u:p@db:5432/app?application_name=gyre");
        assert!(x.verify);
        assert_eq!(x.root_cert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(
            x.ignored,
            vec!["pool_max_conns".to_owned(), "pool_min_conns".to_owned()]
        );
        let tls = x.tls(&RedisTlsConfig::default()).unwrap();
        assert!(tls.enabled);
        assert_eq!(tls.server_ca_pem_file, "/etc/ca.pem");
        let (rest, x) = split("postgres://db/app?sslmode=disable");
        assert_eq!(rest, "postgres://db/app?sslmode=disable");
        assert!(x.tls(&RedisTlsConfig::default()).is_none());
    }

    #[test]
    fn key_value_form_keeps_quoted_values() {
        let (rest, x) = split(
            "host=db password='a b' sslmode=verify-ca sslcert=/c.pem sslkey=/k.pem dbname=app",
        );
        assert_eq!(rest, "host=db password='a b' dbname=app");
        let tls = x.tls(&RedisTlsConfig::default()).unwrap();
        assert_eq!(
            (tls.cert_pem_file.as_str(), tls.key_pem_file.as_str()),
            ("/c.pem", "/k.pem")
        );
    }
}
