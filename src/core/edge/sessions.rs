//! Sessions: a short-lived bearer credential traded for an admin or agent token, so that a web
//! app (the SvelteKit dashboard) keeps a session id in a cookie instead of the token itself.
//!
//! A session id is `sys_` and 256 random bits; KV keeps `session:{sha256(id)}` (a leaked KV
//! listing leaks no usable id) holding who the session is for, the hash of the token it was
//! made from, and when it ends. A session lives only as long as that token: once the token is
//! rotated, its agent deleted, or the admin token removed from `ADMIN_TOKEN`, the shell finds
//! the hash no longer stands for the session's principal and the session is over. This module
//! makes ids, records and keys and decides whether a record is still good; the shell reads
//! and writes KV.

use serde::{Deserialize, Serialize};

use crate::core::base::encoding::{base64url, sha256_hex};
use crate::core::base::time::Timestamp;
use crate::core::edge::auth::Principal;

/// Random bytes in a session id: 256 bits, far beyond guessing (the issue asks for at least 128).
pub const SESSION_RANDOM_BYTES: usize = 32;

/// Prefix of session ids: tells them apart from admin and agent tokens at a glance.
pub const SESSION_PREFIX: &str = "sys_";

/// `POST /v1/sessions` as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    pub token: String,
}

/// What KV holds for a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// `None` for an admin session, the agent's name for an agent's.
    pub agent: Option<String>,
    /// SHA-256 (hex) of the token the session was made from. Sessions made before sessions
    /// remembered it have none and are not accepted.
    #[serde(default)]
    pub credential: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

impl SessionRecord {
    pub fn new(principal: &Principal, credential_hash: &str, now: Timestamp, ttl_seconds: i64) -> SessionRecord {
        let agent = match principal {
            Principal::Admin => None,
            Principal::Agent(name) => Some(name.clone()),
        };
        SessionRecord {
            agent,
            credential: Some(credential_hash.to_string()),
            created_at: now.as_millis(),
            expires_at: now.plus_millis(ttl_seconds * 1000).as_millis(),
        }
    }

    /// Who the session speaks for, while it has not expired. KV keeps a record until at least
    /// its TTL (never under a minute), so the expiry is checked here to the millisecond.
    /// The shell must still check that [`Self::credential`] stands for this principal.
    pub fn principal(&self, now: Timestamp) -> Option<Principal> {
        if now.as_millis() >= self.expires_at || self.credential.is_none() {
            return None;
        }
        Some(match &self.agent {
            None => Principal::Admin,
            Some(name) => Principal::Agent(name.clone()),
        })
    }
}

pub fn new_session_id(random: [u8; SESSION_RANDOM_BYTES]) -> String {
    format!("{SESSION_PREFIX}{}", base64url(&random))
}

/// Whether a bearer token has the shape of a session id (it may still be unknown or expired).
pub fn looks_like_session(token: &str) -> bool {
    token.strip_prefix(SESSION_PREFIX).is_some_and(|rest| {
        rest.len() == (SESSION_RANDOM_BYTES * 4).div_ceil(3)
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// The KV key of a session: by the id's hash, never the id.
pub fn kv_key(session_id: &str) -> String {
    format!("session:{}", sha256_hex(session_id.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_millis(1_700_000_000_000).unwrap()
    }

    #[test]
    fn a_session_id_carries_256_random_bits_and_is_recognised_by_its_shape() {
        let id = new_session_id([7; SESSION_RANDOM_BYTES]);
        assert!(id.starts_with("sys_"));
        assert_eq!(id.len(), 4 + 43);
        assert!(looks_like_session(&id));
        assert_ne!(id, new_session_id([8; SESSION_RANDOM_BYTES]));
        assert!(!looks_like_session("sys_short"));
        assert!(!looks_like_session(&id.replace("sys_", "sya_")));
        assert!(!looks_like_session(&format!("{id}x")));
    }

    #[test]
    fn a_session_speaks_for_its_principal_until_it_expires() {
        let record = SessionRecord::new(&Principal::Agent("test-runner".into()), "abc", now(), 60);
        assert_eq!(record.principal(now()), Some(Principal::Agent("test-runner".into())));
        assert_eq!(record.principal(now().plus_millis(59_999)), Some(Principal::Agent("test-runner".into())));
        assert_eq!(record.principal(now().plus_millis(60_000)), None);
        let admin = SessionRecord::new(&Principal::Admin, "abc", now(), 1);
        assert_eq!(admin.principal(now()), Some(Principal::Admin));
        assert_eq!(admin.credential.as_deref(), Some("abc"));
    }

    #[test]
    fn a_session_stored_before_sessions_remembered_their_token_is_not_accepted() {
        let old: SessionRecord =
            serde_json::from_str(r#"{"agent":null,"created_at":0,"expires_at":9999999999999}"#).unwrap();
        assert_eq!(old.principal(now()), None);
    }

    #[test]
    fn sessions_are_stored_under_the_ids_hash() {
        let id = new_session_id([1; SESSION_RANDOM_BYTES]);
        let key = kv_key(&id);
        assert!(key.starts_with("session:"));
        assert!(!key.contains(&id[4..]));
        assert_eq!(key.len(), "session:".len() + 64);
    }
}
