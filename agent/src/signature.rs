//! Checking a webhook delivery from switchyard, as the Standard Webhooks specification says
//! (https://www.standardwebhooks.com/): `webhook-signature` lists `v1,<base64>` signatures, each
//! the HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` keyed with the secret's bytes
//! (the base64 after `whsec_`); the timestamp must be within five minutes of this clock. The id
//! is signed, so a delivery replayed under a new id fails. The same id again is, as the
//! specification says, the same message sent again (switchyard resends a step it could not
//! finish handing out): it is acknowledged and not acted on twice ([`SeenDeliveries`]).

use std::collections::HashMap;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
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
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rejected::Malformed => {
                "the webhook-id, webhook-timestamp or webhook-signature header is missing or malformed"
            }
            Rejected::WrongSignature => "the signature does not match the secret",
            Rejected::Stale => "the timestamp is too far from now",
        })
    }
}

/// The HMAC key of a `whsec_` secret: its base64 (standard, or URL-safe as older secrets were).
fn key_of(secret: &str) -> Vec<u8> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD
        .decode(encoded)
        .or_else(|_| URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('=')))
        .ok()
        .filter(|key| !key.is_empty())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// Checks the signatures of `body`, delivered as `id` at `timestamp` (seconds), against `secret`.
pub fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now_seconds: i64,
) -> Result<(), Rejected> {
    let seconds: i64 = timestamp.trim().parse().map_err(|_| Rejected::Malformed)?;
    if id.is_empty() {
        return Err(Rejected::Malformed);
    }
    let given: Vec<Vec<u8>> = signatures
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .map(|b64| STANDARD.decode(b64).map_err(|_| Rejected::Malformed))
        .collect::<Result<_, _>>()?;
    if given.is_empty() {
        return Err(Rejected::Malformed);
    }
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key_of(secret)).map_err(|_| Rejected::Malformed)?;
    mac.update(format!("{id}.{seconds}.").as_bytes());
    mac.update(body);
    // verify_slice compares in constant time.
    if !given.iter().any(|signature| mac.clone().verify_slice(signature).is_ok()) {
        return Err(Rejected::WrongSignature);
    }
    if (now_seconds - seconds).abs() > TOLERANCE_SECONDS {
        return Err(Rejected::Stale);
    }
    Ok(())
}

/// Delivery ids seen lately: the same id again is acknowledged without being acted on, and ids
/// are forgotten a while after the tolerance window (a request that old is refused as stale).
#[derive(Default)]
pub struct SeenDeliveries(HashMap<String, i64>);

impl SeenDeliveries {
    /// Records `id` seen at `now_seconds`; false if it was seen before (a resend).
    pub fn first_time(&mut self, id: &str, now_seconds: i64) -> bool {
        self.0.retain(|_, seen| now_seconds - *seen <= SEEN_KEPT_SECONDS);
        if self.0.contains_key(id) {
            return false;
        }
        self.0.insert(id.to_string(), now_seconds);
        true
    }
}

/// How long a delivery id is remembered: past the tolerance window, and past the longest run of
/// resends switchyard makes of one delivery (its queue's retries, at most a minute apart).
const SEEN_KEPT_SECONDS: i64 = 3600;

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    const AT: i64 = 1_614_265_330;

    #[test]
    fn the_specifications_example_is_accepted_within_the_tolerance() {
        assert_eq!(verify(SECRET, ID, "1614265330", SIGNATURE, BODY, AT + TOLERANCE_SECONDS), Ok(()));
        assert_eq!(verify(SECRET, ID, "1614265330", &format!("v1,AAAA {SIGNATURE}"), BODY, AT), Ok(()));
    }

    #[test]
    fn tampering_another_id_or_secret_an_old_timestamp_or_garbage_is_refused() {
        let at = "1614265330";
        assert_eq!(verify(SECRET, ID, at, SIGNATURE, br#"{"test": 1}"#, AT), Err(Rejected::WrongSignature));
        assert_eq!(verify(SECRET, "msg_other", at, SIGNATURE, BODY, AT), Err(Rejected::WrongSignature));
        assert_eq!(verify("whsec_AAAAAAAAAAAAAAAA", ID, at, SIGNATURE, BODY, AT), Err(Rejected::WrongSignature));
        assert_eq!(verify(SECRET, ID, "1614265331", SIGNATURE, BODY, AT), Err(Rejected::WrongSignature));
        assert_eq!(verify(SECRET, ID, at, SIGNATURE, BODY, AT + TOLERANCE_SECONDS + 1), Err(Rejected::Stale));
        assert_eq!(verify(SECRET, ID, "soon", SIGNATURE, BODY, AT), Err(Rejected::Malformed));
        assert_eq!(verify(SECRET, "", at, SIGNATURE, BODY, AT), Err(Rejected::Malformed));
        assert_eq!(verify(SECRET, ID, at, "v1=00", BODY, AT), Err(Rejected::Malformed));
        assert_eq!(verify(SECRET, ID, at, "v1,%%%", BODY, AT), Err(Rejected::Malformed));
    }

    #[test]
    fn a_delivery_id_is_acted_on_once_and_forgotten_after_the_window() {
        let mut seen = SeenDeliveries::default();
        assert!(seen.first_time("lse_1", 100));
        assert!(!seen.first_time("lse_1", 150));
        assert!(seen.first_time("lse_2", 150));
        assert!(seen.first_time("lse_1", 100 + SEEN_KEPT_SECONDS + 1));
    }
}
