//! Reading requests: JSON bodies (400 vs 415 vs 413 vs 422), content types, and `Accept`
//! negotiation (406).
//!
//! Nothing here knows the runtime: the shell hands in the header values and the body bytes.

use serde::Deserialize;

use crate::core::base::limits::JSON_BODY_BYTES_MAX;
use crate::core::edge::error::{from_json_error, strip_position, ApiError, Detail};

/// Checks that a body is declared as JSON (`application/json`, any parameters), is a JSON object,
/// and parses it into `T`, mapping every failure to the error a client should see: broken JSON
/// is 400, well-formed JSON of the wrong shape (including a top-level array, which serde would
/// otherwise accept for a struct) is 422.
pub fn parse_json_body<T: serde::de::DeserializeOwned>(content_type: Option<&str>, body: &[u8]) -> Result<T, ApiError> {
    parse_json_body_within(JSON_BODY_BYTES_MAX, content_type, body)
}

/// [`parse_json_body`] for a route whose bodies may be larger than `JSON_BODY_BYTES_MAX`.
pub fn parse_json_body_within<T: serde::de::DeserializeOwned>(
    limit_bytes: usize,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<T, ApiError> {
    if !is_json_content_type(content_type) {
        return Err(ApiError::UnsupportedMediaType { expected: "application/json" });
    }
    if body.len() > limit_bytes {
        return Err(ApiError::PayloadTooLarge { limit_bytes });
    }
    // serde_json skips strings it ignores without checking their encoding, so check it first.
    if let Err(err) = std::str::from_utf8(body) {
        let valid = std::str::from_utf8(&body[..err.valid_up_to()]).unwrap_or_default();
        let line = valid.matches('\n').count() + 1;
        let column = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        return Err(ApiError::MalformedJson {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
            message: "invalid UTF-8".into(),
        });
    }
    // Whether the body is well-formed at all decides between 400 and 422; serde_json classifies
    // some shape errors (a number where an enum belongs) as syntax errors.
    if let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
        return Err(from_json_error(&syntax));
    }
    let invalid = |message: String| ApiError::Invalid {
        details: vec![Detail { field: None, line: None, column: None, message }],
    };
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(invalid("the body must be a JSON object".into()));
    }
    serde_json::from_slice(body).map_err(|err| invalid(strip_position(&err)))
}

pub fn is_json_content_type(content_type: Option<&str>) -> bool {
    media_type(content_type).is_some_and(|m| m.eq_ignore_ascii_case("application/json"))
}

/// The query of a request's absolute URL, without the `?`: what follows the first `?` up to a
/// `#`, or "" when there is none. The runtime hands the URL already serialised (its host in
/// ASCII), so splitting the text is enough; parsing it whole would cost the module the `url`
/// crate and its host tables.
pub fn query_of(url: &str) -> &str {
    let before_fragment = url.split('#').next().unwrap_or("");
    before_fragment.split_once('?').map_or("", |(_, query)| query)
}

/// The media type of a `Content-Type` header without its parameters: `text/markdown`.
pub fn media_type(content_type: Option<&str>) -> Option<&str> {
    content_type.map(|value| value.split(';').next().unwrap_or("").trim())
}

/// True for the types an instruction or subagent file may be sent as.
pub fn is_markdown_content_type(content_type: Option<&str>) -> bool {
    media_type(content_type)
        .is_some_and(|m| ["text/markdown", "text/x-markdown", "text/plain"].iter().any(|t| m.eq_ignore_ascii_case(t)))
}

/// For routes whose body is optional and, when sent, must be an empty JSON object (`{}`).
pub fn parse_no_fields(content_type: Option<&str>, body: &[u8]) -> Result<(), ApiError> {
    if body.is_empty() {
        return Ok(());
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Empty {}
    parse_json_body::<Empty>(content_type, body).map(|_| ())
}

/// Picks the media type to answer with: the one of `offered` the `Accept` header rates highest
/// (ties go to the earlier in `offered`); the first when there is no header or it accepts
/// anything. `None` when every offered type is refused: the caller answers 406.
pub fn negotiate(accept: Option<&str>, offered: &[&'static str]) -> Option<&'static str> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else { return offered.first().copied() };
    let mut best: Option<(&'static str, u32)> = None;
    for &media in offered {
        let (kind, _) = media.split_once('/').unwrap_or((media, ""));
        let mut quality: Option<(u32, u8)> = None; // (q in thousandths, specificity)
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let specificity = if name == media {
                2
            } else if name == format!("{kind}/*") {
                1
            } else if name == "*/*" {
                0
            } else {
                continue;
            };
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .filter_map(|q| q.trim().parse::<f32>().ok())
                .next()
                .map_or(1000, |q| (q.clamp(0.0, 1.0) * 1000.0) as u32);
            if quality.is_none_or(|(_, s)| specificity > s) {
                quality = Some((q, specificity));
            }
        }
        if let Some((q, _)) = quality.filter(|(q, _)| *q > 0) {
            if best.is_none_or(|(_, b)| q > b) {
                best = Some((media, q));
            }
        }
    }
    best.map(|(media, _)| media)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_what_follows_the_first_question_mark_up_to_a_fragment() {
        assert_eq!(query_of("https://example.com/v1/tasks?limit=5&cursor=a%3Fb"), "limit=5&cursor=a%3Fb");
        assert_eq!(query_of("http://127.0.0.1:8787/v1/agents/a/lease?wait=20"), "wait=20");
        assert_eq!(query_of("https://example.com/v1/tasks?a=1?b=2"), "a=1?b=2");
        assert_eq!(query_of("https://example.com/v1/tasks?a=1#frag?x"), "a=1");
        assert_eq!(query_of("https://example.com/v1/tasks#frag?x"), "");
        assert_eq!(query_of("https://example.com/v1/tasks?"), "");
        assert_eq!(query_of("https://example.com/v1/tasks"), "");
    }

    #[test]
    fn accept_picks_the_highest_rated_offered_type_and_none_when_all_are_refused() {
        let offered = ["text/markdown", "application/json"];
        assert_eq!(negotiate(None, &offered), Some("text/markdown"));
        assert_eq!(negotiate(Some("*/*"), &offered), Some("text/markdown"));
        assert_eq!(negotiate(Some("application/json"), &offered), Some("application/json"));
        assert_eq!(negotiate(Some("text/*;q=0.5, application/json"), &offered), Some("application/json"));
        assert_eq!(negotiate(Some("text/markdown, application/json"), &offered), Some("text/markdown"));
        assert_eq!(negotiate(Some("Application/JSON; charset=utf-8"), &offered), Some("application/json"));
        assert_eq!(negotiate(Some("*/*, text/markdown;q=0"), &offered), Some("application/json"));
        assert_eq!(negotiate(Some("image/png"), &offered), None);
    }

    #[test]
    fn json_content_types_are_recognised_with_parameters_and_any_case() {
        assert!(is_json_content_type(Some("application/json")));
        assert!(is_json_content_type(Some("Application/JSON; charset=utf-8")));
        assert!(!is_json_content_type(Some("text/plain")));
        assert!(!is_json_content_type(Some("application/jsonx")));
        assert!(!is_json_content_type(None));
    }

    #[test]
    fn a_body_that_is_not_declared_as_json_is_415() {
        let err = parse_json_body::<serde_json::Value>(Some("text/plain"), b"{}").unwrap_err();
        assert_eq!(err.status(), 415);
    }

    #[test]
    fn a_body_over_the_limit_is_413_even_when_it_is_valid_json() {
        let big = format!("\"{}\"", "a".repeat(JSON_BODY_BYTES_MAX));
        let err = parse_json_body::<serde_json::Value>(Some("application/json"), big.as_bytes()).unwrap_err();
        assert_eq!(err.status(), 413);
    }

    #[test]
    fn well_formed_json_of_the_wrong_shape_is_422_whatever_serde_calls_it() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Outcome {
            Ack,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Body {
            outcome: Outcome,
        }
        for body in [
            r#"{"outcome":1}"#,
            r#"{"outcome":"boom"}"#,
            r#"{"outcome":"ack","x":1}"#,
            r#"{"outcome":"ack","outcome":"ack"}"#,
            "[]",
            "null",
        ] {
            let err = parse_json_body::<Body>(Some("application/json"), body.as_bytes()).unwrap_err();
            assert_eq!(err.status(), 422, "{body}: {err:?}");
        }
        for body in ["{", r#"{"outcome":}"#, "nul", ""] {
            let err = parse_json_body::<Body>(Some("application/json"), body.as_bytes()).unwrap_err();
            assert_eq!(err.status(), 400, "{body}: {err:?}");
        }
    }

    #[test]
    fn invalid_utf8_anywhere_is_malformed_with_its_position() {
        let err = parse_json_body::<serde_json::Value>(Some("application/json"), b"{\n \"a\": \"\xff\"}").unwrap_err();
        assert_eq!(err, ApiError::MalformedJson { line: 2, column: 8, message: "invalid UTF-8".into() });
    }

    #[test]
    fn an_empty_json_body_is_malformed() {
        let err = parse_json_body::<serde_json::Value>(Some("application/json"), b"").unwrap_err();
        assert_eq!(err.code(), "malformed_json");
    }
}
