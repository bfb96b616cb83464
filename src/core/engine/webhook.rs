//! Webhook deliveries: how a step (or a message) is signed for a webhook agent, and what its
//! answer means.
//!
//! Deliveries are signed as the Standard Webhooks specification says
//! (https://www.standardwebhooks.com/, "Signature scheme"), so receivers can check them with the
//! `standardwebhooks` or `svix` libraries they already have:
//!
//! - `webhook-id`: the delivery's id (a step's lease id, a message's id), unique per delivery;
//! - `webhook-timestamp`: Unix seconds;
//! - `webhook-signature`: `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`, keyed
//!   with the secret's bytes: the base64 after `whsec_`.
//!
//! The id is signed, so a captured delivery cannot be replayed under another id; a receiver
//! refuses a timestamp outside its tolerance and an id it has already seen.
//!
//! This module signs, verifies and reads answers; it never sends anything.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::core::base::encoding::{base64, base64_decode};
use crate::core::base::limits::{DELIVERY_LEASE_MARGIN_MS, WEBHOOK_TIMEOUT_MS};
use crate::core::edge::auth::constant_time_eq;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// The prefix of a webhook secret; what follows is the key, in base64.
pub const SECRET_PREFIX: &str = "whsec_";

/// How far a receiver should accept a timestamp from its own clock: five minutes covers clock
/// skew and a slow delivery, and bounds how long a captured request could be replayed.
pub const SIGNATURE_TOLERANCE_SECONDS: i64 = 300;

/// The lease of a webhook delivery: the agent's own, or longer when that would run out while
/// the Worker still waits for the answer (a slow webhook would otherwise always die).
pub fn delivery_lease_ms(agent_lease_ms: i64) -> i64 {
    agent_lease_ms.max(i64::from(WEBHOOK_TIMEOUT_MS) + DELIVERY_LEASE_MARGIN_MS)
}

/// The HMAC key of a secret: the base64 after `whsec_`. A secret that is not base64 (none
/// switchyard issues) is used as bytes, so it still signs, but Standard Webhooks libraries
/// will not accept it: rotate it.
pub fn secret_key(secret: &str) -> Vec<u8> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    base64_decode(encoded).filter(|key| !key.is_empty()).unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// A new secret for `key` (random bytes): `whsec_` and the key in standard base64.
pub fn secret_of(key: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", base64(key))
}

/// The `webhook-signature` value for `body` delivered as `id` at `timestamp_seconds`.
pub fn sign(secret: &str, id: &str, timestamp_seconds: i64, body: &[u8]) -> String {
    format!("v1,{}", base64(&mac(secret, id, timestamp_seconds, body)))
}

fn mac(secret: &str, id: &str, timestamp_seconds: i64, body: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&secret_key(secret)).expect("hmac accepts any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
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

/// What a receiver does: checks that one of the signatures (the header may list several,
/// space-separated, during a secret rotation) matches, then that the timestamp is within the
/// tolerance of its own clock.
pub fn verify(
    secret: &str,
    id: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now_seconds: i64,
) -> Result<(), Rejection> {
    let timestamp: i64 = timestamp_header.trim().parse().map_err(|_| Rejection::MalformedSignature)?;
    if id.is_empty() {
        return Err(Rejection::MalformedSignature);
    }
    let expected = base64(&mac(secret, id, timestamp, body));
    let given: Vec<&str> = signature_header.split_whitespace().filter_map(|s| s.strip_prefix("v1,")).collect();
    if given.is_empty() {
        return Err(Rejection::MalformedSignature);
    }
    if !given.iter().any(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
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
    fn a_delivery_is_leased_for_longer_than_the_worker_waits_for_its_answer() {
        assert_eq!(delivery_lease_ms(1_000), 20_000);
        assert_eq!(delivery_lease_ms(60_000), 60_000);
    }

    /// The example of the Standard Webhooks specification (its signature also checked with the
    /// `standardwebhooks` npm package).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const BODY: &[u8] = br#"{"test": 2432232314}"#;

    #[test]
    fn a_signature_is_the_standard_webhooks_hmac_of_id_timestamp_and_body() {
        assert_eq!(sign(SECRET, ID, 1_614_265_330, BODY), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_receiver_accepts_a_fresh_correct_signature_among_several() {
        let signature = sign(SECRET, ID, 1_000, BODY);
        assert_eq!(verify(SECRET, ID, "1000", &signature, BODY, 1_010), Ok(()));
        let rotating = format!("v1,bm90IHRoaXMgb25l {signature}");
        assert_eq!(verify(SECRET, ID, "1000", &rotating, BODY, 1_010), Ok(()));
    }

    #[test]
    fn a_receiver_rejects_another_secret_id_body_or_timestamp() {
        let signature = sign(SECRET, ID, 1_000, BODY);
        let other = secret_of(&[7u8; 24]);
        assert_eq!(verify(&other, ID, "1000", &signature, BODY, 1_000), Err(Rejection::WrongSignature));
        assert_eq!(verify(SECRET, "msg_replayed", "1000", &signature, BODY, 1_000), Err(Rejection::WrongSignature));
        assert_eq!(verify(SECRET, ID, "1000", &signature, b"{ }", 1_000), Err(Rejection::WrongSignature));
        assert_eq!(verify(SECRET, ID, "1001", &signature, BODY, 1_000), Err(Rejection::WrongSignature));
        assert_eq!(verify(SECRET, ID, "1000", "v1=abc", BODY, 1_000), Err(Rejection::MalformedSignature));
        assert_eq!(verify(SECRET, ID, "soon", &signature, BODY, 1_000), Err(Rejection::MalformedSignature));
        assert_eq!(verify(SECRET, "", "1000", &signature, BODY, 1_000), Err(Rejection::MalformedSignature));
    }

    #[test]
    fn a_receiver_rejects_a_replay_outside_the_tolerance() {
        let signature = sign(SECRET, ID, 1_000, BODY);
        assert_eq!(
            verify(SECRET, ID, "1000", &signature, BODY, 1_000 + SIGNATURE_TOLERANCE_SECONDS + 1),
            Err(Rejection::StaleTimestamp)
        );
    }

    #[test]
    fn a_secret_is_whsec_and_its_key_in_base64() {
        let secret = secret_of(&[0xfb, 0xff, 0xfe]);
        assert_eq!(secret, "whsec_+//+");
        assert_eq!(secret_key(&secret), vec![0xfb, 0xff, 0xfe]);
        assert_eq!(secret_key("not base64!"), b"not base64!".to_vec(), "a legacy secret still signs");
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
