//! What every handler receives and returns: the [`Call`] with the request's parts, and
//! [`Handled`], its response or why there is none. The router in `api` makes the call; the
//! handler modules only read it, so none of them imports the router.

use serde_json::{json, Value};
use worker::Env;

use crate::core::base::time::Timestamp;
use crate::core::edge::auth::Principal;
use crate::core::edge::error::ApiError;
use crate::core::edge::response::ApiResponse;
use crate::core::edge::routes::Matched;

/// Why a handler did not produce a response: the client's mistake, or a fault to log.
pub(super) enum Failed {
    Client(ApiError),
    Fault(String),
}

impl From<ApiError> for Failed {
    fn from(err: ApiError) -> Self {
        Failed::Client(err)
    }
}

impl From<worker::Error> for Failed {
    fn from(err: worker::Error) -> Self {
        Failed::Fault(err.to_string())
    }
}

pub(super) type Handled = Result<ApiResponse, Failed>;

/// Everything a handler may need about the request besides its body.
pub(super) struct Call<'a> {
    pub env: &'a Env,
    pub now: Timestamp,
    pub query: String,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub matched: Matched,
    /// Who is calling; `None` on public routes.
    pub principal: Option<Principal>,
    /// The session the call was made with, if it was made with one.
    pub session_id: Option<String>,
    pub idempotency_key: Option<String>,
}

/// An event as the API shows it.
pub(super) fn event_json(seq: i64, kind: String, data: String, created_at: i64) -> Value {
    json!({
        "seq": seq,
        "kind": kind,
        // Written by us as JSON; a row that somehow is not stays readable as text.
        "data": serde_json::from_str::<Value>(&data).unwrap_or(Value::String(data)),
        "created_at": Timestamp::saturating_from_millis(created_at).to_rfc3339(),
    })
}

/// A task id from the path; anything that is not one cannot name a task.
pub(super) fn task_id_param(call: &Call<'_>) -> Result<String, ApiError> {
    id_param(call, "tsk_", "no task with this id")
}

pub(super) fn step_id_param(call: &Call<'_>) -> Result<String, ApiError> {
    id_param(call, "stp_", "no step with this id")
}

fn id_param(call: &Call<'_>, prefix: &str, missing: &str) -> Result<String, ApiError> {
    let id = call.matched.param("id");
    let body = id.strip_prefix(prefix).unwrap_or("");
    if body.len() != 26 || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::NotFound { message: missing.into() });
    }
    Ok(id.to_string())
}
