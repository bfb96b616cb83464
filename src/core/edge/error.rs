//! The one error type of the HTTP API and the one place it is mapped to statuses.
//!
//! Every rejection switchyard sends is an [`ApiError`] rendered as the envelope
//! `{"error": {"code", "message", "details"}}`. Codes are stable `snake_case` identifiers that
//! clients may match on; messages are lowercase sentences for people. A 500 never carries the
//! underlying fault: that goes to the log, keyed by the request id the client also sees.

use serde::Serialize;

use crate::core::edge::response::{ApiResponse, Method};

/// One item of an error's `details` list: what is wrong and, where it applies, where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detail {
    /// The request field (JSON pointer-like, e.g. `outcome`) or query parameter concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// 1-based line in a submitted document, where the problem has a position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// 1-based column in a submitted document, where the problem has a position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    pub message: String,
}

impl Detail {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Detail { field: Some(field.into()), line: None, column: None, message: message.into() }
    }

    pub fn at(line: u32, column: u32, message: impl Into<String>) -> Self {
        Detail { field: None, line: Some(line), column: Some(column), message: message.into() }
    }
}

/// Everything the API can refuse a request for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 400: the body is not well-formed JSON (syntax, not shape).
    MalformedJson { line: u32, column: u32, message: String },
    /// 400: a header, query parameter or path segment cannot be read.
    BadRequest { message: String, details: Vec<Detail> },
    /// 401: no credentials, a malformed `Authorization` header, or an unknown token.
    Unauthorized { message: String },
    /// 403: a cross-origin request from an origin that is not in `CORS_ORIGINS`.
    OriginNotAllowed { origin: String },
    /// 403: valid credentials that do not cover this resource (another agent's step).
    Forbidden { message: String },
    /// 404: no route, or no such resource.
    NotFound { message: String },
    /// 405: the path exists but not with this method; `allow` lists the methods that do.
    MethodNotAllowed { allow: Vec<Method> },
    /// 413: the body is larger than the route's named limit.
    PayloadTooLarge { limit_bytes: usize },
    /// 406: the `Accept` header names none of the media types the route can answer with.
    NotAcceptable { offered: Vec<&'static str> },
    /// 415: the body's `Content-Type` is not one the route reads.
    UnsupportedMediaType { expected: &'static str },
    /// 409: the request conflicts with what exists (a name already taken...).
    Conflict { message: String },
    /// 409: the lease named is not the step's current lease (expired, replaced or finished).
    StaleLease { message: String },
    /// 409: the task was cancelled; the agent should stop working on it.
    Cancelled { message: String },
    /// 422: well-formed but invalid content; `details` lists every problem found.
    Invalid { details: Vec<Detail> },
    /// 422: an instruction file or workflow definition with problems; `details` has each one,
    /// with line and column for files.
    InvalidWorkflow { details: Vec<Detail> },
    /// 429: the client address or the token has used up its requests for the current window,
    /// or a named limit on how much a client may start (messages per minute, running tasks).
    TooManyRequests { message: String, retry_after_seconds: u32 },
    /// 503: the task kept changing under this request (other agents' completions won every
    /// race); nothing was written, and the same request may be sent again.
    Busy { retry_after_seconds: u32 },
    /// 500: a fault of switchyard or of a binding. The client sees only the request id.
    Internal { request_id: String },
}

impl ApiError {
    pub fn not_found_route() -> Self {
        ApiError::NotFound { message: "no route matches this path".into() }
    }

    /// 400 for one unreadable query parameter. A parameter's name is echoed back at most 64
    /// characters long: it is the client's text.
    pub fn bad_query(field: &str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: "invalid query parameters".into(),
            details: vec![Detail::field(field.chars().take(64).collect::<String>(), message)],
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::MalformedJson { .. } | ApiError::BadRequest { .. } => 400,
            ApiError::Unauthorized { .. } => 401,
            ApiError::OriginNotAllowed { .. } | ApiError::Forbidden { .. } => 403,
            ApiError::NotFound { .. } => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::NotAcceptable { .. } => 406,
            ApiError::PayloadTooLarge { .. } => 413,
            ApiError::UnsupportedMediaType { .. } => 415,
            ApiError::Conflict { .. } | ApiError::StaleLease { .. } | ApiError::Cancelled { .. } => 409,
            ApiError::Invalid { .. } | ApiError::InvalidWorkflow { .. } => 422,
            ApiError::TooManyRequests { .. } => 429,
            ApiError::Busy { .. } => 503,
            ApiError::Internal { .. } => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson { .. } => "malformed_json",
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::OriginNotAllowed { .. } => "origin_not_allowed",
            ApiError::NotFound { .. } => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::NotAcceptable { .. } => "not_acceptable",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType { .. } => "unsupported_media_type",
            ApiError::Conflict { .. } => "conflict",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::StaleLease { .. } => "stale_lease",
            ApiError::Cancelled { .. } => "cancelled",
            ApiError::Invalid { .. } => "invalid_request",
            ApiError::InvalidWorkflow { .. } => "invalid_workflow",
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::Busy { .. } => "busy",
            ApiError::Internal { .. } => "internal",
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::MalformedJson { line, column, message } => {
                format!("the body is not valid JSON: {message} at line {line} column {column}")
            }
            ApiError::BadRequest { message, .. }
            | ApiError::Unauthorized { message }
            | ApiError::NotFound { message }
            | ApiError::Conflict { message }
            | ApiError::Forbidden { message }
            | ApiError::StaleLease { message }
            | ApiError::Cancelled { message } => message.clone(),
            ApiError::OriginNotAllowed { origin } => {
                format!("origin {origin} is not allowed to call this api")
            }
            ApiError::MethodNotAllowed { allow } => {
                format!("this path accepts only {}", allow.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", "))
            }
            ApiError::PayloadTooLarge { limit_bytes } => {
                format!("the body is larger than the limit of {limit_bytes} bytes")
            }
            ApiError::NotAcceptable { offered } => {
                format!("this resource can be sent only as {}", offered.join(" or "))
            }
            ApiError::UnsupportedMediaType { expected } => {
                format!("the body must be sent as {expected}")
            }
            ApiError::Invalid { .. } => "the request is well-formed but invalid".into(),
            ApiError::InvalidWorkflow { details } => format!("the workflow has {} problem(s)", details.len()),
            ApiError::TooManyRequests { message, retry_after_seconds } => {
                format!("{message}; try again in {retry_after_seconds} s")
            }
            ApiError::Busy { retry_after_seconds } => {
                format!("the task is changing too fast to apply this now; nothing was written, send it again in {retry_after_seconds} s")
            }
            ApiError::Internal { request_id } => {
                format!("internal error; quote request id {request_id} when reporting it")
            }
        }
    }

    pub fn details(&self) -> &[Detail] {
        match self {
            ApiError::BadRequest { details, .. }
            | ApiError::Invalid { details }
            | ApiError::InvalidWorkflow { details } => details,
            _ => &[],
        }
    }

    /// The error as a complete response: envelope body plus the headers the status calls for.
    pub fn to_response(&self) -> ApiResponse {
        let body = serde_json::json!({
            "error": {
                "code": self.code(),
                "message": self.message(),
                "details": self.details(),
            }
        });
        let mut response = ApiResponse::json(self.status(), &body);
        match self {
            ApiError::MethodNotAllowed { allow } => {
                response.set_header("allow", &Method::join(allow));
            }
            ApiError::Unauthorized { .. } => {
                response.set_header("www-authenticate", "Bearer realm=\"switchyard\"");
            }
            ApiError::Busy { retry_after_seconds } | ApiError::TooManyRequests { retry_after_seconds, .. } => {
                response.set_header("retry-after", &retry_after_seconds.to_string());
            }
            _ => {}
        }
        response
    }
}

/// Turns a `serde_json` failure into the right rejection: broken syntax is 400, a well-formed
/// document of the wrong shape is 422 with the problem as a detail.
pub fn from_json_error(err: &serde_json::Error) -> ApiError {
    let line = u32::try_from(err.line()).unwrap_or(u32::MAX);
    let column = u32::try_from(err.column()).unwrap_or(u32::MAX);
    match err.classify() {
        serde_json::error::Category::Data => ApiError::Invalid {
            details: vec![Detail { field: None, line: None, column: None, message: strip_position(err) }],
        },
        _ => ApiError::MalformedJson { line, column, message: strip_position(err) },
    }
}

/// serde_json appends " at line L column C" to its messages; the envelope carries the position
/// itself, so the message is kept without it.
pub(crate) fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(err: &ApiError) -> serde_json::Value {
        serde_json::from_slice(&err.to_response().body).expect("error bodies are JSON")
    }

    fn check(err: ApiError, status: u16, code: &str) {
        assert_eq!(err.status(), status, "{err:?}");
        assert_eq!(err.code(), code, "{err:?}");
        let body = body_of(&err);
        assert_eq!(body["error"]["code"], code);
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(body["error"]["details"].is_array());
        let message = err.message();
        assert!(message.starts_with(|c: char| c.is_ascii_lowercase()), "messages are lowercase sentences: {message}");
    }

    #[test]
    fn every_error_maps_to_its_status_and_code() {
        check(ApiError::MalformedJson { line: 1, column: 2, message: "eof".into() }, 400, "malformed_json");
        check(ApiError::BadRequest { message: "bad cursor".into(), details: vec![] }, 400, "bad_request");
        check(ApiError::Unauthorized { message: "missing bearer token".into() }, 401, "unauthorized");
        check(ApiError::OriginNotAllowed { origin: "https://evil.example".into() }, 403, "origin_not_allowed");
        check(ApiError::not_found_route(), 404, "not_found");
        check(ApiError::MethodNotAllowed { allow: vec![Method::Get] }, 405, "method_not_allowed");
        check(ApiError::PayloadTooLarge { limit_bytes: 10 }, 413, "payload_too_large");
        check(ApiError::UnsupportedMediaType { expected: "application/json" }, 415, "unsupported_media_type");
        check(ApiError::Conflict { message: "agent x exists".into() }, 409, "conflict");
        check(ApiError::Forbidden { message: "not yours".into() }, 403, "forbidden");
        check(ApiError::StaleLease { message: "expired".into() }, 409, "stale_lease");
        check(ApiError::Cancelled { message: "stop".into() }, 409, "cancelled");
        check(ApiError::Invalid { details: vec![Detail::field("outcome", "unknown value")] }, 422, "invalid_request");
        check(ApiError::InvalidWorkflow { details: vec![Detail::at(1, 1, "x")] }, 422, "invalid_workflow");
        check(ApiError::Internal { request_id: "req_1".into() }, 500, "internal");
    }

    #[test]
    fn method_not_allowed_lists_the_allowed_methods_in_the_allow_header() {
        let response = ApiError::MethodNotAllowed { allow: vec![Method::Get, Method::Post] }.to_response();
        assert_eq!(response.header("allow"), Some("GET, POST"));
    }

    #[test]
    fn unauthorized_names_the_bearer_scheme() {
        let response = ApiError::Unauthorized { message: "x".into() }.to_response();
        assert_eq!(response.header("www-authenticate"), Some("Bearer realm=\"switchyard\""));
    }

    #[test]
    fn a_busy_task_is_a_503_that_says_when_to_send_again() {
        let error = ApiError::Busy { retry_after_seconds: 1 };
        let response = error.to_response();
        assert_eq!((response.status, error.code()), (503, "busy"));
        assert_eq!(response.header("retry-after"), Some("1"));
    }

    #[test]
    fn an_internal_error_shows_only_the_request_id() {
        let body = body_of(&ApiError::Internal { request_id: "req_abc".into() });
        assert_eq!(body["error"]["message"], "internal error; quote request id req_abc when reporting it");
        assert_eq!(body["error"]["details"], serde_json::json!([]));
    }

    #[test]
    fn broken_json_is_400_and_wrong_shape_is_422() {
        let syntax = serde_json::from_str::<serde_json::Value>("{\"a\": ").unwrap_err();
        assert_eq!(from_json_error(&syntax).status(), 400);
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Shape {
            n: u8,
        }
        let shape = serde_json::from_str::<Shape>("{\"n\": \"x\"}").unwrap_err();
        let err = from_json_error(&shape);
        assert_eq!(err.status(), 422);
        assert!(err.details()[0].message.contains("invalid type"), "{err:?}");
    }

    #[test]
    fn malformed_json_reports_where_it_broke() {
        let syntax = serde_json::from_str::<serde_json::Value>("{\n  \"a\": tru }").unwrap_err();
        match from_json_error(&syntax) {
            ApiError::MalformedJson { line, message, .. } => {
                assert_eq!(line, 2);
                assert!(!message.contains(" at line "), "{message}");
            }
            other => panic!("expected malformed json, got {other:?}"),
        }
    }

    #[test]
    fn details_leave_out_positions_they_do_not_have() {
        let json = serde_json::to_value(Detail::field("outcome", "unknown")).unwrap();
        assert_eq!(json, serde_json::json!({"field": "outcome", "message": "unknown"}));
        let json = serde_json::to_value(Detail::at(3, 7, "unclosed <step>")).unwrap();
        assert_eq!(json, serde_json::json!({"line": 3, "column": 7, "message": "unclosed <step>"}));
    }
}
