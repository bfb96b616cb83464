//! Agent messages over HTTP: sending (`POST /v1/messages`), an agent's inbox with long polling,
//! a conversation by correlation id, and delivery to webhook agents through the `STEPS` queue.
//!
//! Checks live in `core::messages`; this module reads and writes through `store`, wakes this
//! isolate's inbox readers, and signs deliveries. It never changes a task's steps.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use worker::Env;

use super::call::{Call, Handled};
use super::{engine, platform, store};
use crate::core::base::bindings;
use crate::core::base::encoding::query_value;
use crate::core::base::ids::IdKind;
use crate::core::base::limits::{
    LEASE_POLL_INTERVAL_MS, LEASE_WAIT_SECONDS_MAX, LEASE_WAKE_CHECK_MS, MESSAGES_PER_MINUTE_MAX,
};
use crate::core::base::time::Timestamp;
use crate::core::edge::auth::Principal;
use crate::core::edge::error::{ApiError, Detail};
use crate::core::edge::http::parse_json_body;
use crate::core::edge::paging::Page;
use crate::core::edge::response::ApiResponse;
use crate::core::engine::queue::QueueMessage;
use crate::core::records::messages::{self, check_answers, check_sender, MessageRequest, StoredMessage};
use crate::core::registry::agents::check_name;

thread_local! {
    /// Per agent, how many messages this isolate has stored for it: a waiting inbox read looks
    /// again as soon as its agent's count moves.
    static SENT: RefCell<BTreeMap<String, u64>> = const { RefCell::new(BTreeMap::new()) };
}

fn sent_count(agent: &str) -> u64 {
    SENT.with(|sent| sent.borrow().get(agent).copied().unwrap_or(0))
}

fn note_sent(agent: &str) {
    SENT.with(|sent| *sent.borrow_mut().entry(agent.to_string()).or_insert(0) += 1);
}

pub fn message_json(row: &store::MessageRow) -> Value {
    StoredMessage {
        seq: row.seq,
        id: &row.id,
        from: &row.from_agent,
        to: &row.to_agent,
        kind: &row.kind,
        payload: &row.payload,
        correlation_id: &row.correlation_id,
        task_id: row.task_id.as_deref(),
        sent_at: Timestamp::saturating_from_millis(row.sent_at),
        created_at: Timestamp::saturating_from_millis(row.created_at),
    }
    .to_json()
}

/// `POST /v1/messages`.
pub async fn send(call: &Call<'_>, body: &[u8]) -> Handled {
    let request: MessageRequest = parse_json_body(call.content_type.as_deref(), body)?;
    let message = request.validate(call.now)?;
    let principal = call.principal.clone().unwrap_or(Principal::Admin);
    check_sender(&principal, &message.from)?;
    let db = call.env.d1(bindings::DB)?;
    let found = store::check_message(&db, &message, call.now).await?;
    if found.sent_last_minute >= MESSAGES_PER_MINUTE_MAX {
        return Err(ApiError::TooManyRequests {
            message: format!("{} sent {MESSAGES_PER_MINUTE_MAX} messages in the last minute, the limit", message.from),
            retry_after_seconds: 60,
        }
        .into());
    }
    let mode_of = |name: &str| found.agents.iter().find(|(n, _)| n == name).map(|(_, mode)| mode.clone());
    let mut problems = Vec::new();
    for (field, name) in [("from", &message.from), ("to", &message.to)] {
        if mode_of(name).is_none() {
            problems.push(Detail::field(field, format!("no agent named {name} is registered")));
        }
    }
    if let (Some(task_id), false) = (&message.task_id, found.task_exists) {
        problems.push(Detail::field("task_id", format!("no task {task_id}")));
    }
    if !problems.is_empty() {
        return Err(ApiError::Invalid { details: problems }.into());
    }
    check_answers(&message, found.query_found)?;
    let id = platform::new_id(IdKind::Message, call.now)?;
    let seq = store::insert_message(&db, &id, &message, call.now).await?;
    note_sent(&message.to);
    if mode_of(&message.to).as_deref() == Some("webhook") {
        let body = QueueMessage::Message { message_id: id.clone() }.to_json();
        let sent = match super::faults::check(super::faults::Point::QueueSend) {
            Ok(()) => call.env.queue(bindings::STEPS)?.send(body).await,
            Err(err) => Err(err),
        };
        if let Err(err) = sent {
            // The message is stored and in the inbox; only the push to the webhook is lost.
            worker::console_error!("message {id}: queueing its webhook delivery failed: {err}");
        }
    }
    let row = store::MessageRow {
        seq,
        id,
        from_agent: message.from,
        to_agent: message.to,
        kind: message.kind.as_str().to_string(),
        payload: message.payload,
        correlation_id: message.correlation_id,
        task_id: message.task_id,
        sent_at: message.sent_at.as_millis(),
        created_at: call.now.as_millis(),
    };
    Ok(ApiResponse::json(201, &json!({"message": message_json(&row)})))
}

/// Takes the parameters in `names` out of a query (decoded), leaving the paging parameters.
fn take_params<'q>(query: &'q str, names: &[&str]) -> Result<(BTreeMap<String, String>, String), ApiError> {
    let mut taken = BTreeMap::new();
    let mut rest: Vec<&'q str> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
        if names.contains(&name) {
            let value =
                query_value(raw).ok_or_else(|| ApiError::bad_query(name, "is not a well-formed query value"))?;
            taken.insert(name.to_string(), value);
        } else {
            rest.push(pair);
        }
    }
    Ok((taken, rest.join("&")))
}

/// The list answer: messages and the cursor to ask after (the last seq seen, or the one asked
/// after when nothing is new), so a reader can keep polling from it.
fn listed(rows: &[store::MessageRow], after: i64) -> ApiResponse {
    let next = rows.last().map_or(after, |r| r.seq);
    let messages: Vec<Value> = rows.iter().map(message_json).collect();
    ApiResponse::json(200, &json!({"messages": messages, "next_cursor": next.to_string()}))
}

/// `GET /v1/agents/{name}/inbox?after=&limit=&wait=`: messages to the agent after a cursor,
/// waiting up to `wait` seconds for the first one.
pub async fn inbox(call: &Call<'_>) -> Handled {
    let name = call.matched.param("name").to_string();
    if check_name(&name).is_err() {
        return Err(ApiError::NotFound { message: "no agent with this name".into() }.into());
    }
    if matches!(&call.principal, Some(Principal::Agent(own)) if *own != name) {
        return Err(ApiError::Forbidden { message: "an agent reads only its own inbox".into() }.into());
    }
    let (taken, rest) = take_params(&call.query, &["wait"])?;
    let wait = match taken.get("wait") {
        None => 0,
        Some(value) => value.parse::<u32>().ok().filter(|w| *w <= LEASE_WAIT_SECONDS_MAX).ok_or_else(|| {
            ApiError::bad_query("wait", format!("must be whole seconds from 0 to {LEASE_WAIT_SECONDS_MAX}"))
        })?,
    };
    let page = Page::parse_history(&rest)?;
    let after = page.after_seq()?;
    let db = call.env.d1(bindings::DB)?;
    if store::get_agent(&db, &name).await?.is_none() {
        return Err(ApiError::NotFound { message: format!("no agent named {name}") }.into());
    }
    let deadline = call.now.plus_millis(i64::from(wait) * 1000);
    loop {
        let seen = sent_count(&name);
        let rows = store::inbox(&db, &name, after, page.limit).await?;
        if !rows.is_empty() || platform::now() >= deadline {
            return Ok(listed(&rows, after));
        }
        // Look again when this isolate stores a message for the agent, or after the poll
        // interval for messages stored by other isolates.
        let look_again = platform::now().plus_millis(i64::from(LEASE_POLL_INTERVAL_MS)).min(deadline);
        while sent_count(&name) == seen && platform::now() < look_again {
            worker::Delay::from(Duration::from_millis(u64::from(LEASE_WAKE_CHECK_MS))).await;
        }
    }
}

/// `GET /v1/messages?correlation_id=&after=&limit=`: a conversation in order. An agent sees the
/// messages it sent or received.
pub async fn conversation(call: &Call<'_>) -> Handled {
    let (taken, rest) = take_params(&call.query, &["correlation_id"])?;
    let correlation_id = taken
        .get("correlation_id")
        .filter(|c| messages::is_correlation_id(c))
        .ok_or_else(|| ApiError::bad_query("correlation_id", "is required: the conversation's correlation id"))?;
    let page = Page::parse_history(&rest)?;
    let after = page.after_seq()?;
    let party = match &call.principal {
        Some(Principal::Agent(own)) => Some(own.as_str()),
        _ => None,
    };
    let db = call.env.d1(bindings::DB)?;
    let rows = store::conversation(&db, correlation_id, party, after, page.limit).await?;
    Ok(listed(&rows, after))
}

/// Handles a `message` queue message: POSTs the message, signed, to its recipient's webhook.
/// An error (unreachable, non-2xx) is returned so the queue retries it.
pub async fn deliver(env: &Env, message_id: &str) -> worker::Result<()> {
    let db = env.d1(bindings::DB)?;
    let Some(message) = store::message_by_id(&db, message_id).await? else {
        worker::console_warn!("delivery of unknown message {message_id}; dropped");
        return Ok(());
    };
    let target = store::webhook_target(&db, &message.to_agent).await?;
    let (Some(url), Some(secret)) =
        (target.as_ref().and_then(|t| t.webhook_url.clone()), target.as_ref().and_then(|t| t.webhook_secret.clone()))
    else {
        // No longer a webhook agent: the message waits in its inbox.
        return Ok(());
    };
    let body = json!({"message": message_json(&message)}).to_string();
    let now = platform::now();
    match engine::post_signed(&url, &secret, &message.id, now.as_millis() / 1000, &body).await {
        Ok((status, _)) if (200..300).contains(&status) => store::record_delivery(&db, &message, now).await,
        Ok((status, _)) => Err(worker::Error::RustError(format!("the webhook answered {status}"))),
        Err(reason) => Err(worker::Error::RustError(reason)),
    }
}
