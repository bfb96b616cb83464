//! Sessions in KV: `POST /v1/sessions` trades a token for a session id, `DELETE
//! /v1/sessions/current` ends the session the request was made with, and `lookup` resolves a
//! session id for authentication; `resolve_token` says who any bearer token speaks for.
//!
//! What a session is lives in `core::sessions`; this module only reads and writes KV. It never
//! stores or logs a session id or token in the clear.

use serde_json::json;
use worker::Env;

use super::call::{Call, Failed, Handled};
use super::{platform, registry};
use crate::core::base::bindings;
use crate::core::base::limits::{KV_TTL_SECONDS_MIN, SESSION_TTL_SECONDS_DEFAULT, SESSION_TTL_SECONDS_MAX};
use crate::core::base::time::Timestamp;
use crate::core::edge::auth::{self, Principal};
use crate::core::edge::error::ApiError;
use crate::core::edge::http::parse_json_body;
use crate::core::edge::response::ApiResponse;
use crate::core::edge::sessions::{self, SessionRecord, SessionRequest, SESSION_RANDOM_BYTES};

/// Who a bearer token speaks for, and the session id when it is one.
pub(super) struct Credential {
    pub principal: Principal,
    pub session_id: Option<String>,
}

/// Admin tokens are checked first (in constant time, without I/O); an agent token is looked up
/// by its hash, a session id in KV. `None` when the token is none of these (or an expired
/// session).
pub(super) async fn resolve_token(env: &Env, token: &str, now: Timestamp) -> Result<Option<Credential>, Failed> {
    if platform::admin_tokens(env).accepts(token) {
        return Ok(Some(Credential { principal: Principal::Admin, session_id: None }));
    }
    if token.starts_with(auth::AGENT_TOKEN_PREFIX) {
        let agent = registry::agent_for_token(env, &auth::hash_token(token)).await?;
        return Ok(agent.map(|name| Credential { principal: Principal::Agent(name), session_id: None }));
    }
    if sessions::looks_like_session(token) {
        let principal = lookup(env, token, now).await?;
        return Ok(principal.map(|principal| Credential { principal, session_id: Some(token.to_string()) }));
    }
    Ok(None)
}

/// The session length: the var `SESSION_TTL_SECONDS` (1 s to 30 days), or 8 hours.
fn ttl_seconds(env: &Env) -> i64 {
    platform::text(env, bindings::SESSION_TTL_SECONDS)
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|s| (1..=SESSION_TTL_SECONDS_MAX).contains(s))
        .unwrap_or(SESSION_TTL_SECONDS_DEFAULT)
}

/// Whether `token` is an admin token or an agent token this isolate found valid moments ago,
/// known without any I/O. A session id is never known this way (its record is in KV).
pub(super) fn known_without_lookup(env: &Env, token: &str) -> bool {
    if platform::admin_tokens(env).accepts(token) {
        return true;
    }
    token.starts_with(auth::AGENT_TOKEN_PREFIX) && registry::token_known_here(&auth::hash_token(token))
}

/// Who a live session speaks for; `None` when it is unknown, ended or expired, or when the
/// token it was made from no longer speaks for the same principal: an admin token removed from
/// `ADMIN_TOKEN`, an agent token rotated, an agent deleted (a new agent of the same name has
/// another token).
pub async fn lookup(env: &Env, session_id: &str, now: Timestamp) -> worker::Result<Option<Principal>> {
    let stored = env.kv(bindings::CACHE)?.get(&sessions::kv_key(session_id)).text().await?;
    let Some(record) = stored.and_then(|text| serde_json::from_str::<SessionRecord>(&text).ok()) else {
        return Ok(None);
    };
    let (Some(principal), Some(credential)) = (record.principal(now), record.credential.as_deref()) else {
        return Ok(None);
    };
    let alive = match &principal {
        Principal::Admin => platform::admin_tokens(env).accepts_hash(credential),
        Principal::Agent(name) => registry::agent_for_token(env, credential).await?.as_deref() == Some(name.as_str()),
    };
    Ok(alive.then_some(principal))
}

/// `POST /v1/sessions` `{"token"}`: a new session for the token's admin or agent.
pub async fn create(call: &Call<'_>, body: &[u8]) -> Handled {
    let request: SessionRequest = parse_json_body(call.content_type.as_deref(), body)?;
    // A session is made from a token, not from another session: ending one must end it.
    let credential = if sessions::looks_like_session(&request.token) {
        None
    } else {
        resolve_token(call.env, &request.token, call.now).await?
    };
    let Some(credential) = credential else {
        return Err(ApiError::Unauthorized { message: "the token is not an admin or agent token".into() }.into());
    };
    let session_id = sessions::new_session_id(platform::random_bytes::<SESSION_RANDOM_BYTES>()?);
    let ttl = ttl_seconds(call.env);
    let record = SessionRecord::new(&credential.principal, &auth::hash_token(&request.token), call.now, ttl);
    let value = serde_json::to_string(&record).map_err(|e| worker::Error::RustError(e.to_string()))?;
    call.env
        .kv(bindings::CACHE)?
        .put(&sessions::kv_key(&session_id), value)
        .map_err(worker::Error::from)?
        .expiration_ttl(ttl.max(KV_TTL_SECONDS_MIN) as u64)
        .execute()
        .await
        .map_err(worker::Error::from)?;
    let principal = match &credential.principal {
        Principal::Admin => json!({"principal": "admin"}),
        Principal::Agent(name) => json!({"principal": "agent", "agent": name}),
    };
    Ok(ApiResponse::json(
        201,
        &json!({
            "session_id": session_id,
            "expires_at": Timestamp::saturating_from_millis(record.expires_at).to_rfc3339(),
            "principal": principal,
        }),
    ))
}

/// `DELETE /v1/sessions/current`: ends the session the request was made with.
pub async fn delete_current(call: &Call<'_>) -> Handled {
    let Some(session_id) = &call.session_id else {
        return Err(ApiError::BadRequest {
            message: "this request was not made with a session; only a session can end itself".into(),
            details: vec![],
        }
        .into());
    };
    call.env.kv(bindings::CACHE)?.delete(&sessions::kv_key(session_id)).await.map_err(worker::Error::from)?;
    Ok(ApiResponse::empty(204))
}
