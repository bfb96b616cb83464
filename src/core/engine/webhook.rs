//! Webhook deliveries: how a step is signed for a webhook agent, and what its answer means.
//!
//! A delivery is a POST of the step (the same JSON a pull agent gets from a lease) with three
//! headers: the delivery id, the Unix time in seconds, and `v1=` followed by the hex
//! HMAC-SHA256, under the agent's webhook secret, of `{timestamp}.{body}`. A receiver recomputes
//! the signature, compares it in constant time, and rejects a timestamp outside its tolerance
//! (a replay) and a delivery id it has already seen.
//!
//! This module signs, verifies and reads answers; it never sends anything.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::core::base::encoding::hex;
use crate::core::edge::auth::constant_time_eq;

pub const DELIVERY_HEADER: &str = "x-switchyard-delivery";
pub const TIMESTAMP_HEADER: &str = "x-switchyard-timestamp";
pub const SIGNATURE_HEADER: &str = "x-switchyard-signature";

/// How far a receiver should accept a timestamp from its own clock: five minutes covers clock
/// skew and a slow delivery, and bounds how long a captured request could be replayed.
pub const SIGNATURE_TOLERANCE_SECONDS: i64 = 300;

/// The signature header's value for `body` sent at `timestamp_seconds`.
pub fn sign(secret: &str, timestamp_seconds: i64, body: &[u8]) -> String {
    format!("v1={}", hex(&mac(secret, timestamp_seconds, body)))
}

fn mac(secret: &str, timestamp_seconds: i64, body: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("hmac accepts any key length");
    mac.update(timestamp_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Why a receiver rejects a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    MalformedSignature,
    WrongSignature,
    StaleTimestamp,
}

/// What a receiver does: checks the signature, then that the timestamp is within the tolerance
/// of its own clock.
pub fn verify(
    secret: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now_seconds: i64,
) -> Result<(), Rejection> {
    let timestamp: i64 = timestamp_header.trim().parse().map_err(|_| Rejection::MalformedSignature)?;
    let given = signature_header.trim().strip_prefix("v1=").ok_or(Rejection::MalformedSignature)?;
    let expected = hex(&mac(secret, timestamp, body));
    if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(Rejection::WrongSignature);
    }
    if (now_seconds - timestamp).abs() > SIGNATURE_TOLERANCE_SECONDS {
        return Err(Rejection::StaleTimestamp);
    }
    Ok(())
}

/// What a webhook agent's answer means for the step.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A 2xx (other than 202) with a completion body: the step completes now.
    Complete(Value),
    /// 202: the agent will complete the step over the API before its lease runs out.
    Later,
    /// Anything else: a failed attempt, with the reason.
    Failed(String),
}

/// Reads a webhook's HTTP status and body.
pub fn read_answer(status: u16, body: &str) -> Answer {
    match status {
        202 => Answer::Later,
        200..=299 => match serde_json::from_str::<Value>(body) {
            Ok(value @ Value::Object(_)) => Answer::Complete(value),
            _ => Answer::Failed(format!("the webhook answered {status} without a JSON object body")),
        },
        _ => Answer::Failed(format!("the webhook answered {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_the_hmac_of_timestamp_dot_body() {
        // Reference value from an independent HMAC-SHA256 implementation (Python hmac).
        assert_eq!(
            sign("whsec_test", 1_700_000_000, b"{}"),
            "v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91".to_string()
        );
    }

    #[test]
    fn a_receiver_accepts_a_fresh_correct_signature() {
        let body = br#"{"step":{"id":"stp_1"}}"#;
        let signature = sign("whsec_a", 1_000, body);
        assert_eq!(verify("whsec_a", "1000", &signature, body, 1_010), Ok(()));
    }

    #[test]
    fn a_receiver_rejects_another_secret_body_or_timestamp() {
        let body = b"{}";
        let signature = sign("whsec_a", 1_000, body);
        assert_eq!(verify("whsec_b", "1000", &signature, body, 1_000), Err(Rejection::WrongSignature));
        assert_eq!(verify("whsec_a", "1000", &signature, b"{ }", 1_000), Err(Rejection::WrongSignature));
        assert_eq!(verify("whsec_a", "1001", &signature, body, 1_000), Err(Rejection::WrongSignature));
        assert_eq!(verify("whsec_a", "1000", "abc", body, 1_000), Err(Rejection::MalformedSignature));
        assert_eq!(verify("whsec_a", "soon", &signature, body, 1_000), Err(Rejection::MalformedSignature));
    }

    #[test]
    fn a_receiver_rejects_a_replay_outside_the_tolerance() {
        let signature = sign("whsec_a", 1_000, b"{}");
        assert_eq!(
            verify("whsec_a", "1000", &signature, b"{}", 1_000 + SIGNATURE_TOLERANCE_SECONDS + 1),
            Err(Rejection::StaleTimestamp)
        );
    }

    #[test]
    fn answers_are_read_by_status() {
        assert_eq!(read_answer(202, ""), Answer::Later);
        assert_eq!(read_answer(200, r#"{"report":{}}"#), Answer::Complete(serde_json::json!({"report": {}})));
        assert!(matches!(read_answer(200, "ok"), Answer::Failed(_)));
        assert!(matches!(read_answer(500, "{}"), Answer::Failed(reason) if reason.contains("500")));
        assert!(matches!(read_answer(301, ""), Answer::Failed(_)));
    }
}
