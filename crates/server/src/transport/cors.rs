//! Origins: the `client.allowed_origins` check of connection requests and the CORS headers
//! of the HTTP-based endpoints (HTTP-streaming, SSE, `/emulation`), as Centrifugo sets them:
//! an allowed origin is echoed with credentials allowed and the requested headers allowed.

/// Whether a request's `Origin` is allowed by `client.allowed_origins` (no `Origin` is
/// allowed: the request does not come from a browser page).
pub(crate) fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin = origin.to_ascii_lowercase();
    allowed.iter().any(|pattern| {
        pattern == "*"
            || glob::Pattern::new(&pattern.to_ascii_lowercase()).is_ok_and(|p| p.matches(&origin))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert!(origin_allowed(&[], None));
        assert!(!origin_allowed(&[], Some("http://a.com")));
        let allowed = vec!["https://*.example.com".to_owned()];
        assert!(origin_allowed(&allowed, Some("https://app.Example.com")));
        assert!(!origin_allowed(&allowed, Some("https://evil.com")));
        assert!(origin_allowed(&["*".to_owned()], Some("http://x")));
    }
}
