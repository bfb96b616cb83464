//! Plain HTTP values the core works with: methods, responses, and the headers every response
//! carries.
//!
//! The shell converts `worker::Request`/`worker::Response` to and from these; nothing here knows
//! the runtime, so response shaping (security headers, CORS, error envelopes) is tested natively.
//! It sits below [`error`](super::error), which renders every rejection as one of these.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl Method {
    /// Reads a request method. Anything else (CONNECT, TRACE, made-up verbs) is `None`, and the
    /// router answers 405 for it.
    pub fn parse(text: &str) -> Option<Method> {
        Some(match text.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }

    /// The lowercase name OpenAPI uses as the key of an operation.
    pub fn openapi_key(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Head => "head",
            Method::Post => "post",
            Method::Put => "put",
            Method::Patch => "patch",
            Method::Delete => "delete",
            Method::Options => "options",
        }
    }

    pub fn join(methods: &[Method]) -> String {
        methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// A response as the core describes it; the shell turns it into a `worker::Response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    pub status: u16,
    /// Lowercase names; at most one entry per name (see [`ApiResponse::set_header`]).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ApiResponse {
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Self {
        // Serialising our own plain data types cannot fail (no maps with non-string keys, no
        // failing Serialize impls); the fallback keeps even that impossible case a valid body.
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = ApiResponse { status, headers: Vec::new(), body };
        response.set_header("content-type", "application/json; charset=utf-8");
        response
    }

    pub fn raw(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        let mut response = ApiResponse { status, headers: Vec::new(), body: body.into() };
        response.set_header("content-type", content_type);
        response
    }

    pub fn empty(status: u16) -> Self {
        ApiResponse { status, headers: Vec::new(), body: Vec::new() }
    }

    pub fn set_header(&mut self, name: &str, value: &str) {
        let name = name.to_ascii_lowercase();
        self.headers.retain(|(existing, _)| *existing != name);
        self.headers.push((name, value.to_string()));
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// Adds the headers every switchyard response carries, whatever its status.
    pub fn with_security_headers(mut self) -> Self {
        for (name, value) in SECURITY_HEADERS {
            self.set_header(name, value);
        }
        self
    }
}

/// Sent on every response. The API serves only JSON and plain documents to programs, so the
/// policy forbids everything a browser could do with a response: no scripts, no framing, no
/// sniffing, no caching of possibly private data, and HTTPS only once seen over HTTPS.
pub const SECURITY_HEADERS: [(&str, &str); 6] = [
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    ("strict-transport-security", "max-age=63072000; includeSubDomains"),
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    ("x-frame-options", "DENY"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse_case_insensitively_and_unknown_verbs_are_none() {
        assert_eq!(Method::parse("get"), Some(Method::Get));
        assert_eq!(Method::parse("DELETE"), Some(Method::Delete));
        assert_eq!(Method::parse("TRACE"), None);
        assert_eq!(Method::parse(""), None);
    }

    #[test]
    fn set_header_replaces_rather_than_duplicates() {
        let mut response = ApiResponse::empty(204);
        response.set_header("Cache-Control", "a");
        response.set_header("cache-control", "b");
        assert_eq!(response.headers, vec![("cache-control".to_string(), "b".to_string())]);
    }

    #[test]
    fn every_response_gets_the_security_headers() {
        let response = ApiResponse::json(200, &serde_json::json!({})).with_security_headers();
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(response.header(name), Some(value));
        }
        assert_eq!(response.header("content-type"), Some("application/json; charset=utf-8"));
    }
}
