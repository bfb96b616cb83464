//! Checking a webhook delivery from switchyard: `x-switchyard-signature: v1=<hex>` is the
//! HMAC-SHA256, under the agent's webhook secret, of `{timestamp}.{body}`; the timestamp must be
//! within five minutes of the receiver's clock, and a delivery id is accepted once.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a delivery's timestamp may be from this clock: clock skew and a slow delivery,
/// while a captured request cannot be replayed later.
pub const TOLERANCE_SECONDS: i64 = 300;

#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    Malformed,
    WrongSignature,
    Stale,
    Replayed,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rejected::Malformed => "the signature headers are missing or malformed",
            Rejected::WrongSignature => "the signature does not match the secret",
            Rejected::Stale => "the timestamp is too far from now",
            Rejected::Replayed => "this delivery id was already accepted",
        })
    }
}

/// Checks the signature of `body` sent at `timestamp` (seconds) against `secret`.
pub fn verify(secret: &str, timestamp: &str, signature: &str, body: &[u8], now_seconds: i64) -> Result<(), Rejected> {
    let seconds: i64 = timestamp.trim().parse().map_err(|_| Rejected::Malformed)?;
    let hex = signature.trim().strip_prefix("v1=").ok_or(Rejected::Malformed)?;
    let given = decode_hex(hex).ok_or(Rejected::Malformed)?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).map_err(|_| Rejected::Malformed)?;
    mac.update(seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&given).map_err(|_| Rejected::WrongSignature)?;
    if (now_seconds - seconds).abs() > TOLERANCE_SECONDS {
        return Err(Rejected::Stale);
    }
    Ok(())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Delivery ids seen within the tolerance window: a replay inside the window is refused, and
/// ids older than it are forgotten (their timestamps are refused anyway).
#[derive(Default)]
pub struct SeenDeliveries(HashMap<String, i64>);

impl SeenDeliveries {
    /// Records `id` seen at `now_seconds`; `Err(Replayed)` if it was seen before.
    pub fn accept(&mut self, id: &str, now_seconds: i64) -> Result<(), Rejected> {
        self.0.retain(|_, seen| now_seconds - *seen <= 2 * TOLERANCE_SECONDS);
        if self.0.contains_key(id) {
            return Err(Rejected::Replayed);
        }
        self.0.insert(id.to_string(), now_seconds);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        let bytes = mac.finalize().into_bytes();
        format!("v1={}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }

    #[test]
    fn a_correct_signature_within_the_tolerance_is_accepted() {
        let signature = sign("whsec_s", 1_000, b"{\"step\":{}}");
        assert_eq!(verify("whsec_s", "1000", &signature, b"{\"step\":{}}", 1_000 + TOLERANCE_SECONDS), Ok(()));
    }

    #[test]
    fn tampering_another_secret_an_old_timestamp_or_garbage_is_refused() {
        let body = b"{\"step\":{}}";
        let signature = sign("whsec_s", 1_000, body);
        assert_eq!(
            verify("whsec_s", "1000", &signature, b"{\"step\":{\"x\":1}}", 1_000),
            Err(Rejected::WrongSignature)
        );
        assert_eq!(verify("whsec_other", "1000", &signature, body, 1_000), Err(Rejected::WrongSignature));
        assert_eq!(verify("whsec_s", "1001", &signature, body, 1_000), Err(Rejected::WrongSignature));
        assert_eq!(verify("whsec_s", "1000", &signature, body, 1_000 + TOLERANCE_SECONDS + 1), Err(Rejected::Stale));
        assert_eq!(verify("whsec_s", "soon", &signature, body, 1_000), Err(Rejected::Malformed));
        assert_eq!(verify("whsec_s", "1000", "v2=00", body, 1_000), Err(Rejected::Malformed));
        assert_eq!(verify("whsec_s", "1000", "v1=zz", body, 1_000), Err(Rejected::Malformed));
    }

    #[test]
    fn a_delivery_id_is_accepted_once_and_forgotten_after_the_window() {
        let mut seen = SeenDeliveries::default();
        assert_eq!(seen.accept("lse_1", 100), Ok(()));
        assert_eq!(seen.accept("lse_1", 150), Err(Rejected::Replayed));
        assert_eq!(seen.accept("lse_2", 150), Ok(()));
        assert_eq!(seen.accept("lse_1", 100 + 2 * TOLERANCE_SECONDS + 1), Ok(()));
    }
}
