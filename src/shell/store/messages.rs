//! Agent messages: the checks a send must pass, the inbox, conversations, deliveries.

use serde::Deserialize;
use worker::{D1Database, Result};

use super::{int, text_or_null, trip, Statement};
use crate::core::base::time::Timestamp;
use crate::core::records::messages::NewMessage;

/// The columns of a message row, as [`MessageRow`] reads them.
pub(super) const MESSAGE_COLUMNS: &str =
    "seq, id, from_agent, to_agent, type, payload, correlation_id, task_id, sent_at, created_at";

#[derive(Debug, Clone, Deserialize)]
pub struct MessageRow {
    pub seq: i64,
    pub id: String,
    pub from_agent: String,
    pub to_agent: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub payload: String,
    pub correlation_id: String,
    pub task_id: Option<String>,
    pub sent_at: i64,
    pub created_at: i64,
}

/// What sending a message must find first: both agents (with the recipient's mode), the task
/// named, and for a response the query it answers.
pub struct MessageCheck {
    /// Each registered agent among sender and recipient, with its mode.
    pub agents: Vec<(String, String)>,
    pub task_exists: bool,
    pub query_found: bool,
    /// Messages the sender stored in the last minute.
    pub sent_last_minute: i64,
}

pub async fn check_message(db: &D1Database, message: &NewMessage, now: Timestamp) -> Result<MessageCheck> {
    #[derive(Deserialize)]
    struct Agent {
        name: String,
        mode: String,
    }
    #[derive(Deserialize)]
    struct Found {
        found: i64,
    }
    let statements = vec![
        db.statement("SELECT name, mode FROM agents WHERE name IN (?1, ?2)")
            .bind(&[message.from.as_str().into(), message.to.as_str().into()])?,
        db.statement("SELECT EXISTS (SELECT 1 FROM tasks WHERE id = ?1) AS found")
            .bind(&[text_or_null(message.task_id.as_deref())])?,
        db.statement(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE correlation_id = ?1 AND type = 'query'
                            AND from_agent = ?2 AND to_agent = ?3) AS found",
        )
        .bind(&[
            message.correlation_id.as_str().into(),
            message.to.as_str().into(),
            message.from.as_str().into(),
        ])?,
        db.statement("SELECT COUNT(*) AS found FROM messages WHERE from_agent = ?1 AND created_at > ?2")
            .bind(&[message.from.as_str().into(), int(now.minus_millis(60_000).as_millis())])?,
    ];
    trip()?;
    let results = db.batch(statements).await?;
    let agents: Vec<Agent> = results.first().map(|r| r.results()).transpose()?.unwrap_or_default();
    let found = |index: usize| -> Result<bool> {
        let rows: Vec<Found> = results.get(index).map(|r| r.results()).transpose()?.unwrap_or_default();
        Ok(rows.first().is_some_and(|r| r.found == 1))
    };
    Ok(MessageCheck {
        agents: agents.into_iter().map(|a| (a.name, a.mode)).collect(),
        task_exists: found(1)?,
        query_found: found(2)?,
        sent_last_minute: {
            let rows: Vec<Found> = results.get(3).map(|r| r.results()).transpose()?.unwrap_or_default();
            rows.first().map_or(0, |r| r.found)
        },
    })
}

/// Stores a message and, when it names a task, its `message.sent` event, in one batch.
pub async fn insert_message(db: &D1Database, id: &str, message: &NewMessage, now: Timestamp) -> Result<i64> {
    #[derive(Deserialize)]
    struct Seq {
        seq: i64,
    }
    let mut statements = vec![db
        .statement(
            "INSERT INTO messages (id, from_agent, to_agent, type, payload, correlation_id, task_id, sent_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING seq",
        )
        .bind(&[
            id.into(),
            message.from.as_str().into(),
            message.to.as_str().into(),
            message.kind.as_str().into(),
            message.payload.as_str().into(),
            message.correlation_id.as_str().into(),
            text_or_null(message.task_id.as_deref()),
            int(message.sent_at.as_millis()),
            int(now.as_millis()),
        ])?];
    if let Some(task_id) = &message.task_id {
        let data = serde_json::json!({
            "message_id": id, "from": message.from, "to": message.to,
            "type": message.kind.as_str(), "correlation_id": message.correlation_id,
        });
        statements.push(
            db.statement(
                "INSERT INTO events (task_id, step_id, kind, data, dedupe_key, created_at)
                 VALUES (?1, NULL, 'message.sent', ?2, ?3, ?4) ON CONFLICT (dedupe_key) DO NOTHING",
            )
            .bind(&[
                task_id.as_str().into(),
                data.to_string().into(),
                format!("message:{id}").into(),
                int(now.as_millis()),
            ])?,
        );
    }
    trip()?;
    let results = db.batch(statements).await?;
    let seq: Vec<Seq> = results.first().map(|r| r.results()).transpose()?.unwrap_or_default();
    Ok(seq.first().map_or(0, |s| s.seq))
}

/// An agent's messages after `after_seq`, oldest first.
pub async fn inbox(db: &D1Database, agent: &str, after_seq: i64, limit: u32) -> Result<Vec<MessageRow>> {
    trip()?;
    db.statement(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE to_agent = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
    ))
    .bind(&[agent.into(), int(after_seq), int(i64::from(limit))])?
    .all()
    .await?
    .results()
}

/// A conversation after `after_seq`, oldest first; with `party`, only the messages it sent or
/// received.
pub async fn conversation(
    db: &D1Database,
    correlation_id: &str,
    party: Option<&str>,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<MessageRow>> {
    trip()?;
    db.statement(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages
         WHERE correlation_id = ?1 AND seq > ?2 AND (?3 IS NULL OR from_agent = ?3 OR to_agent = ?3)
         ORDER BY seq LIMIT ?4"
    ))
    .bind(&[correlation_id.into(), int(after_seq), text_or_null(party), int(i64::from(limit))])?
    .all()
    .await?
    .results()
}

pub async fn message_by_id(db: &D1Database, id: &str) -> Result<Option<MessageRow>> {
    trip()?;
    db.statement(format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1")).bind(&[id.into()])?.first(None).await
}

/// Records that a message reached its recipient's webhook, in the task's history.
pub async fn record_delivery(db: &D1Database, message: &MessageRow, now: Timestamp) -> Result<()> {
    let Some(task_id) = &message.task_id else { return Ok(()) };
    let data = serde_json::json!({"message_id": message.id, "to": message.to_agent});
    trip()?;
    db.statement(
        "INSERT INTO events (task_id, step_id, kind, data, dedupe_key, created_at)
         VALUES (?1, NULL, 'message.delivered', ?2, ?3, ?4) ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(&[
        task_id.as_str().into(),
        data.to_string().into(),
        format!("delivered:{}", message.id).into(),
        int(now.as_millis()),
    ])?
    .run()
    .await?;
    Ok(())
}
