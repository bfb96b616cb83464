//! Agent messages: the seed's "Agent Communication Protocol". An agent sends another a `query`
//! and gets a `response` with the same `correlation_id`; a `notify` is one-way news. Messages
//! are kept in order per recipient (its inbox) and per conversation, and those about a task
//! appear in its history.
//!
//! This module parses and checks messages and shapes them for the API; storing, waking inbox
//! readers and delivering to webhook agents are the shell's job.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::core::base::limits::{CORRELATION_ID_BYTES_MAX, MESSAGE_PAYLOAD_BYTES_MAX};
use crate::core::base::time::Timestamp;
use crate::core::edge::auth::Principal;
use crate::core::edge::error::{ApiError, Detail};
use crate::core::registry::agents::check_name;

/// The seed's three message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Query,
    Response,
    Notify,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Query => "query",
            MessageType::Response => "response",
            MessageType::Notify => "notify",
        }
    }

    pub fn parse(text: &str) -> Option<MessageType> {
        match text {
            "query" => Some(MessageType::Query),
            "response" => Some(MessageType::Response),
            "notify" => Some(MessageType::Notify),
            _ => None,
        }
    }
}

/// `POST /v1/messages` as sent: the seed's envelope plus an optional `task_id`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    pub from: String,
    pub to: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub payload: Value,
    #[serde(default)]
    pub timestamp: Option<String>,
    pub correlation_id: String,
    #[serde(default)]
    pub task_id: Option<String>,
}

/// A checked message, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub from: String,
    pub to: String,
    pub kind: MessageType,
    /// A JSON object, serialised.
    pub payload: String,
    /// The sender's time, or the server's when the sender gave none.
    pub sent_at: Timestamp,
    pub correlation_id: String,
    pub task_id: Option<String>,
}

impl MessageRequest {
    /// Checks every field and returns every problem at once.
    pub fn validate(self, now: Timestamp) -> Result<NewMessage, ApiError> {
        let mut problems = Vec::new();
        for (field, name) in [("from", &self.from), ("to", &self.to)] {
            if check_name(name).is_err() {
                problems.push(Detail::field(field, "must be an agent name (lowercase letters, digits and hyphens)"));
            }
        }
        let kind = MessageType::parse(&self.kind);
        if kind.is_none() {
            problems.push(Detail::field("type", "must be query, response or notify"));
        }
        let payload = if self.payload.is_object() { self.payload.to_string() } else { String::new() };
        if !self.payload.is_object() {
            problems.push(Detail::field("payload", "must be a JSON object"));
        } else if payload.len() > MESSAGE_PAYLOAD_BYTES_MAX {
            problems.push(Detail::field(
                "payload",
                format!("is {} bytes; the limit is {MESSAGE_PAYLOAD_BYTES_MAX}", payload.len()),
            ));
        }
        let sent_at = match self.timestamp.as_deref() {
            None => Some(now),
            Some(text) => Timestamp::parse_rfc3339(text),
        };
        if sent_at.is_none() {
            problems.push(Detail::field("timestamp", "must be an RFC 3339 time, e.g. 2026-11-24T10:30:00Z"));
        }
        if !is_correlation_id(&self.correlation_id) {
            problems.push(Detail::field(
                "correlation_id",
                format!("must be 1 to {CORRELATION_ID_BYTES_MAX} letters, digits, '-', '_', '.' or ':'"),
            ));
        }
        if let Some(task_id) = &self.task_id {
            if !is_task_id(task_id) {
                problems.push(Detail::field("task_id", "must be a task id (tsk_...)"));
            }
        }
        if self.from == self.to && problems.is_empty() {
            problems.push(Detail::field("to", "an agent cannot send a message to itself"));
        }
        match (kind, sent_at) {
            (Some(kind), Some(sent_at)) if problems.is_empty() => Ok(NewMessage {
                from: self.from,
                to: self.to,
                kind,
                payload,
                sent_at,
                correlation_id: self.correlation_id,
                task_id: self.task_id,
            }),
            _ => Err(ApiError::Invalid { details: problems }),
        }
    }
}

pub fn is_correlation_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= CORRELATION_ID_BYTES_MAX
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn is_task_id(text: &str) -> bool {
    text.strip_prefix("tsk_").is_some_and(|body| body.len() == 26 && body.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// An agent sends only as itself; an admin may send as any agent.
pub fn check_sender(principal: &Principal, from: &str) -> Result<(), ApiError> {
    match principal {
        Principal::Agent(own) if own != from => {
            Err(ApiError::Forbidden { message: format!("an agent sends messages only as itself, not as {from}") })
        }
        _ => Ok(()),
    }
}

/// The query a response must answer: one with the same correlation id, sent by the response's
/// recipient to its sender. Returns the problem when `query` (the one found, if any) is not it.
pub fn check_answers(response: &NewMessage, query_found: bool) -> Result<(), ApiError> {
    if response.kind != MessageType::Response || query_found {
        return Ok(());
    }
    Err(ApiError::Invalid {
        details: vec![Detail::field(
            "correlation_id",
            format!(
                "a response answers a query: {} sent {} no query with correlation id {}",
                response.to, response.from, response.correlation_id
            ),
        )],
    })
}

/// A stored message as the API shows it.
pub struct StoredMessage<'a> {
    pub seq: i64,
    pub id: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub kind: &'a str,
    pub payload: &'a str,
    pub correlation_id: &'a str,
    pub task_id: Option<&'a str>,
    pub sent_at: Timestamp,
    pub created_at: Timestamp,
}

impl StoredMessage<'_> {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "seq": self.seq,
            "from": self.from,
            "to": self.to,
            "type": self.kind,
            "payload": serde_json::from_str::<Value>(self.payload).unwrap_or(Value::Null),
            "timestamp": self.sent_at.to_rfc3339(),
            "correlation_id": self.correlation_id,
            "task_id": self.task_id,
            "created_at": self.created_at.to_rfc3339(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(value: Value) -> MessageRequest {
        serde_json::from_value(value).unwrap()
    }

    fn now() -> Timestamp {
        Timestamp::from_millis(1_700_000_000_000).unwrap()
    }

    fn seed_query() -> Value {
        json!({
            "from": "sveltekit-specialist",
            "to": "cloudflare-specialist",
            "type": "query",
            "payload": {"question": "What is the KV namespace key for user sessions?", "context": "logout"},
            "timestamp": "2024-01-15T10:30:00Z",
            "correlation_id": "task-123"
        })
    }

    #[test]
    fn the_seeds_example_query_is_accepted_with_its_own_timestamp() {
        let message = request(seed_query()).validate(now()).unwrap();
        assert_eq!(message.kind, MessageType::Query);
        assert_eq!(message.sent_at.to_rfc3339(), "2024-01-15T10:30:00.000Z");
        assert_eq!(message.task_id, None);
    }

    #[test]
    fn a_message_without_a_timestamp_gets_the_servers_time() {
        let mut value = seed_query();
        value.as_object_mut().unwrap().remove("timestamp");
        assert_eq!(request(value).validate(now()).unwrap().sent_at, now());
    }

    #[test]
    fn every_problem_of_a_bad_message_is_reported_at_once() {
        let value = json!({
            "from": "Not An Agent", "to": "x/y", "type": "shout", "payload": [1],
            "timestamp": "yesterday", "correlation_id": "", "task_id": "task-1"
        });
        let ApiError::Invalid { details } = request(value).validate(now()).unwrap_err() else { panic!() };
        let fields: Vec<&str> = details.iter().filter_map(|d| d.field.as_deref()).collect();
        assert_eq!(fields, vec!["from", "to", "type", "payload", "timestamp", "correlation_id", "task_id"]);
    }

    #[test]
    fn a_payload_over_the_limit_is_refused() {
        let mut value = seed_query();
        value["payload"] = json!({"text": "x".repeat(MESSAGE_PAYLOAD_BYTES_MAX)});
        let ApiError::Invalid { details } = request(value).validate(now()).unwrap_err() else { panic!() };
        assert!(details[0].message.contains("the limit is 16384"));
    }

    #[test]
    fn an_agent_sends_only_as_itself_and_an_admin_as_anyone() {
        let agent = Principal::Agent("sveltekit-specialist".into());
        assert!(check_sender(&agent, "sveltekit-specialist").is_ok());
        assert!(matches!(check_sender(&agent, "cloudflare-specialist"), Err(ApiError::Forbidden { .. })));
        assert!(check_sender(&Principal::Admin, "cloudflare-specialist").is_ok());
    }

    #[test]
    fn a_response_needs_its_query_and_other_types_do_not() {
        let mut value = seed_query();
        value["type"] = json!("response");
        let response = request(value).validate(now()).unwrap();
        assert!(check_answers(&response, true).is_ok());
        assert!(matches!(check_answers(&response, false), Err(ApiError::Invalid { .. })));
        let query = request(seed_query()).validate(now()).unwrap();
        assert!(check_answers(&query, false).is_ok());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut value = seed_query();
        value["priority"] = json!("high");
        assert!(serde_json::from_value::<MessageRequest>(value).is_err());
    }
}
