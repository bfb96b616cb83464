//! Cross-origin access for browser front ends (the SvelteKit app), and only for the origins
//! listed in the `CORS_ORIGINS` var.
//!
//! Requests from other origins are still served (servers and curl send no `Origin`, and the
//! browser enforces CORS on its side) but get no `Access-Control-Allow-*` headers; a preflight
//! from an unlisted origin is refused outright so the failure is visible in the network panel.

use crate::core::base::limits::{CORS_MAX_AGE_SECONDS, CORS_ORIGINS_MAX};
use crate::core::edge::error::ApiError;
use crate::core::edge::response::{ApiResponse, Method};

/// Request headers a browser may send cross-origin.
pub const ALLOWED_REQUEST_HEADERS: &str = "authorization, content-type, idempotency-key";

/// Response headers a browser script may read besides the CORS-safelisted ones.
pub const EXPOSED_RESPONSE_HEADERS: &str = "retry-after, x-request-id";

/// The configured origins, normalised to lowercase `scheme://host[:port]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsPolicy {
    origins: Vec<String>,
}

impl CorsPolicy {
    /// Parses `CORS_ORIGINS`: origins separated by commas or whitespace. Entries that are not a
    /// bare `http(s)://host[:port]` origin (a path, a wildcard, a typo) are ignored with a warning,
    /// because a policy wider than the operator wrote is worse than one that is too narrow.
    pub fn parse(var: Option<&str>) -> (CorsPolicy, Vec<String>) {
        let mut origins: Vec<String> = Vec::new();
        let mut warnings = Vec::new();
        for entry in var.unwrap_or("").split(|c: char| c == ',' || c.is_whitespace()).filter(|e| !e.is_empty()) {
            match normalise_origin(entry) {
                Some(_) if origins.len() == CORS_ORIGINS_MAX => {
                    warnings
                        .push(format!("CORS_ORIGINS lists more than {CORS_ORIGINS_MAX} origins; {entry} is ignored"));
                }
                Some(origin) => {
                    if !origins.contains(&origin) {
                        origins.push(origin);
                    }
                }
                None => warnings.push(format!(
                    "CORS_ORIGINS entry {entry:?} is not an origin like https://app.example.com and is ignored"
                )),
            }
        }
        (CorsPolicy { origins }, warnings)
    }

    pub fn allows(&self, origin: &str) -> bool {
        normalise_origin(origin).is_some_and(|o| self.origins.contains(&o))
    }

    /// Answers an `OPTIONS` request to a routed path. `allow` lists the path's methods.
    ///
    /// A CORS preflight (an `Origin` and `Access-Control-Request-Method`) from a listed origin
    /// for a method the path has gets 204 with the CORS headers; from an unlisted origin, 403; for
    /// a method the path lacks, 405. A plain `OPTIONS` gets 204 with `Allow`.
    pub fn answer_options(
        &self,
        origin: Option<&str>,
        request_method: Option<&str>,
        allow: &[Method],
    ) -> Result<ApiResponse, ApiError> {
        let mut response = ApiResponse::empty(204);
        response.set_header("allow", &Method::join(allow));
        let (Some(origin), Some(request_method)) = (origin, request_method) else {
            return Ok(response);
        };
        if !self.allows(origin) {
            return Err(ApiError::OriginNotAllowed { origin: origin.to_string() });
        }
        match Method::parse(request_method) {
            Some(method) if allow.contains(&method) => {}
            _ => return Err(ApiError::MethodNotAllowed { allow: allow.to_vec() }),
        }
        response.set_header("access-control-allow-origin", origin);
        response.set_header("access-control-allow-methods", &Method::join(allow));
        response.set_header("access-control-allow-headers", ALLOWED_REQUEST_HEADERS);
        response.set_header("access-control-max-age", &CORS_MAX_AGE_SECONDS.to_string());
        response.set_header("vary", "Origin");
        Ok(response)
    }

    /// Adds the CORS headers to an ordinary response when the request came from a listed origin.
    /// `Vary: Origin` is always set, so a cache never serves one origin's answer to another.
    pub fn decorate(&self, origin: Option<&str>, mut response: ApiResponse) -> ApiResponse {
        response.set_header("vary", "Origin");
        if let Some(origin) = origin.filter(|o| self.allows(o)) {
            response.set_header("access-control-allow-origin", origin);
            response.set_header("access-control-expose-headers", EXPOSED_RESPONSE_HEADERS);
        }
        response
    }
}

/// `https://App.Example.com:8443` → `https://app.example.com:8443`; anything with a path, query,
/// user info, wildcard or another scheme → `None`.
fn normalise_origin(text: &str) -> Option<String> {
    let lower = text.trim().to_ascii_lowercase();
    let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"))?;
    let (host_ok, port) = match rest.strip_prefix('[') {
        // An IPv6 literal such as http://[::1]:5173.
        Some(bracketed) => {
            let (address, tail) = bracketed.split_once(']')?;
            let port = if tail.is_empty() { None } else { Some(tail.strip_prefix(':')?) };
            (!address.is_empty() && address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':'), port)
        }
        None => {
            let (host, port) = match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            };
            (!host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'), port)
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    (host_ok && port_ok).then_some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(var: &str) -> CorsPolicy {
        CorsPolicy::parse(Some(var)).0
    }

    #[test]
    fn origins_are_matched_exactly_after_normalising_case() {
        let p = policy("https://app.example.com, http://localhost:5173");
        assert!(p.allows("https://app.example.com"));
        assert!(p.allows("HTTPS://APP.EXAMPLE.COM"));
        assert!(p.allows("http://localhost:5173"));
        assert!(!p.allows("http://localhost:5174"));
        assert!(!p.allows("https://app.example.com.evil.com"));
        assert!(!p.allows("https://evil.com"));
        assert!(!p.allows("null"));
    }

    #[test]
    fn ipv6_loopback_origins_can_be_listed() {
        let p = policy("http://[::1]:5173");
        assert!(p.allows("http://[::1]:5173"));
        assert!(!p.allows("http://[::1]:5174"));
        assert!(!p.allows("http://[::1"));
    }

    #[test]
    fn entries_that_are_not_origins_are_ignored_with_a_warning() {
        let (p, warnings) = CorsPolicy::parse(Some(
            "*, https://ok.example, https://x.example/path, ftp://x.example, https://user@x.example, https://h:99999x",
        ));
        assert_eq!(p, policy("https://ok.example"));
        assert_eq!(warnings.len(), 5, "{warnings:?}");
        assert!(!p.allows("https://anything.example"), "a wildcard is never honoured");
    }

    #[test]
    fn with_no_origins_configured_no_origin_is_allowed() {
        let (p, warnings) = CorsPolicy::parse(None);
        assert!(warnings.is_empty());
        assert!(!p.allows("http://localhost:5173"));
    }

    #[test]
    fn a_preflight_from_a_listed_origin_is_answered_with_the_cors_headers() {
        let p = policy("http://localhost:5173");
        let response =
            p.answer_options(Some("http://localhost:5173"), Some("POST"), &[Method::Get, Method::Post]).unwrap();
        assert_eq!(response.status, 204);
        assert_eq!(response.header("access-control-allow-origin"), Some("http://localhost:5173"));
        assert_eq!(response.header("access-control-allow-methods"), Some("GET, POST"));
        assert_eq!(response.header("access-control-allow-headers"), Some(ALLOWED_REQUEST_HEADERS));
        assert_eq!(response.header("access-control-max-age"), Some("600"));
        assert_eq!(response.header("vary"), Some("Origin"));
    }

    #[test]
    fn a_preflight_from_an_unlisted_origin_is_403() {
        let err = policy("http://localhost:5173")
            .answer_options(Some("https://evil.example"), Some("GET"), &[Method::Get])
            .unwrap_err();
        assert_eq!(err.status(), 403);
    }

    #[test]
    fn a_preflight_for_a_method_the_path_lacks_is_405() {
        let err = policy("http://localhost:5173")
            .answer_options(Some("http://localhost:5173"), Some("DELETE"), &[Method::Get])
            .unwrap_err();
        assert_eq!(err.status(), 405);
    }

    #[test]
    fn a_plain_options_request_gets_allow_and_no_cors_headers() {
        let response = policy("").answer_options(None, None, &[Method::Get]).unwrap();
        assert_eq!(response.status, 204);
        assert_eq!(response.header("allow"), Some("GET"));
        assert_eq!(response.header("access-control-allow-origin"), None);
    }

    #[test]
    fn ordinary_responses_get_cors_headers_only_for_listed_origins() {
        let p = policy("http://localhost:5173");
        let listed = p.decorate(Some("http://localhost:5173"), ApiResponse::empty(200));
        assert_eq!(listed.header("access-control-allow-origin"), Some("http://localhost:5173"));
        let unlisted = p.decorate(Some("https://evil.example"), ApiResponse::empty(200));
        assert_eq!(unlisted.header("access-control-allow-origin"), None);
        assert_eq!(unlisted.header("vary"), Some("Origin"));
    }
}
