//! Origins: the `client.allowed_origins` check of connection requests and the CORS headers
//! of the HTTP-based endpoints (HTTP-streaming, SSE, `/emulation`), as Centrifugo sets them:
//! an allowed origin is echoed with credentials allowed and the requested headers allowed.

use axum::http::{HeaderMap, HeaderValue, header};

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

/// Adds the CORS headers for a request with `request` headers to a response's `headers`,
/// when its origin is allowed.
pub(crate) fn apply(allowed: &[String], request: &HeaderMap, headers: &mut HeaderMap) {
    let Some(origin) = request.get(header::ORIGIN) else {
        return;
    };
    if !origin_allowed(allowed, origin.to_str().ok()) {
        tracing::info!(
            origin = origin.to_str().unwrap_or(""),
            "request origin is not allowed"
        );
        return;
    }
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    if let Some(asked) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        && !asked.is_empty()
        && asked != "null"
    {
        headers.append(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
}

/// Adds the headers of an answer to a pre-flight (`OPTIONS`) request.
pub(crate) fn preflight(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("300"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
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

    #[test]
    fn cors_headers_only_for_allowed_origins() {
        let allowed = vec!["https://app.example.com".to_owned()];
        let mut request = HeaderMap::new();
        request.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://app.example.com"),
        );
        request.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("content-type"),
        );
        let mut out = HeaderMap::new();
        apply(&allowed, &request, &mut out);
        assert_eq!(
            out.get(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some(&HeaderValue::from_static("https://app.example.com"))
        );
        assert_eq!(
            out.get(header::ACCESS_CONTROL_ALLOW_HEADERS),
            Some(&HeaderValue::from_static("content-type"))
        );
        request.insert(header::ORIGIN, HeaderValue::from_static("https://evil.com"));
        let mut out = HeaderMap::new();
        apply(&allowed, &request, &mut out);
        assert!(out.is_empty());
    }
}
