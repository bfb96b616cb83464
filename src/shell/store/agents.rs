//! The agents table: specs, tokens (by hash), webhook secrets and targets.

use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, Result};

use super::{int, text_or_null, trip, Statement};
use crate::core::base::time::Timestamp;
use crate::core::registry::agents::AgentSpec;

/// Most agents in the registry: the most that selection (core::analysis) scores. A team runs a
/// handful of specialists; a bound keeps each selection and the list small.
pub const AGENTS_MAX: i64 = crate::core::base::limits::SELECT_AGENTS_MAX as i64;

/// An agent as stored. Secrets (token hash, webhook secret) are not selected.
#[derive(Debug, Clone, Deserialize)]
pub struct AgentRow {
    pub name: String,
    pub description: String,
    pub capabilities: String,
    pub mode: String,
    pub webhook_url: Option<String>,
    pub max_concurrency: i64,
    pub lease_ms: i64,
    pub step_timeout_ms: i64,
    pub schedule_timeout_ms: i64,
    pub metadata: String,
    pub imported: i64,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const AGENT_COLUMNS: &str = "name, description, capabilities, mode, webhook_url, max_concurrency, lease_ms, \
     step_timeout_ms, schedule_timeout_ms, metadata, source IS NOT NULL AS imported, version, created_at, updated_at";

/// The secrets a new agent gets; stored as given (the token only as its hash).
pub struct AgentSecrets<'a> {
    pub token_hash: &'a str,
    pub webhook_secret: Option<&'a str>,
}

/// Capabilities are stored as a JSON array of strings (serialising strings cannot fail).
fn capabilities_json(spec: &AgentSpec) -> String {
    serde_json::to_string(&spec.capabilities).unwrap_or_else(|_| "[]".into())
}

pub(super) fn insert_agent_statement(
    db: &D1Database,
    spec: &AgentSpec,
    secrets: Option<&AgentSecrets>,
    now: Timestamp,
    guard: &str,
) -> Result<D1PreparedStatement> {
    let capabilities = capabilities_json(spec);
    db.statement(format!(
        "INSERT INTO agents (name, description, capabilities, mode, webhook_url, webhook_secret, token_hash,
                             max_concurrency, lease_ms, step_timeout_ms, schedule_timeout_ms, source, metadata,
                             version, created_at, updated_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?15, ?11, ?12, 1, ?13, ?13
         WHERE (SELECT COUNT(*) FROM agents) < ?14 {guard}
         ON CONFLICT (name) DO NOTHING"
    ))
    .bind(&[
        spec.name.as_str().into(),
        spec.description.as_str().into(),
        capabilities.into(),
        spec.mode.as_str().into(),
        text_or_null(spec.webhook_url.as_deref()),
        text_or_null(secrets.and_then(|s| s.webhook_secret)),
        text_or_null(secrets.map(|s| s.token_hash)),
        int(i64::from(spec.max_concurrency)),
        int(spec.lease_ms),
        int(spec.step_timeout_ms),
        text_or_null(spec.source.as_deref()),
        spec.metadata.to_string().into(),
        int(now.as_millis()),
        int(AGENTS_MAX),
        int(spec.schedule_timeout_ms),
    ])
}

/// Why an agent was not inserted.
pub enum InsertAgent {
    Inserted,
    NameTaken,
    RegistryFull,
}

pub async fn insert_agent(
    db: &D1Database,
    spec: &AgentSpec,
    secrets: &AgentSecrets<'_>,
    now: Timestamp,
) -> Result<InsertAgent> {
    trip()?;
    let result = insert_agent_statement(db, spec, Some(secrets), now, "")?.run().await?;
    if result.meta()?.and_then(|m| m.changes).unwrap_or(0) > 0 {
        return Ok(InsertAgent::Inserted);
    }
    Ok(if get_agent(db, &spec.name).await?.is_some() { InsertAgent::NameTaken } else { InsertAgent::RegistryFull })
}

pub async fn get_agent(db: &D1Database, name: &str) -> Result<Option<AgentRow>> {
    trip()?;
    db.statement(format!("SELECT {AGENT_COLUMNS} FROM agents WHERE name = ?1")).bind(&[name.into()])?.first(None).await
}

/// One page of agents by name, after `after` (exclusive).
pub async fn list_agents(db: &D1Database, after: Option<&str>, limit: u32) -> Result<Vec<AgentRow>> {
    trip()?;
    db.statement(format!("SELECT {AGENT_COLUMNS} FROM agents WHERE name > ?1 ORDER BY name LIMIT ?2"))
        .bind(&[after.unwrap_or("").into(), int(i64::from(limit))])?
        .all()
        .await?
        .results()
}

/// Every agent (bounded by [`AGENTS_MAX`]), for selection.
pub async fn all_agents(db: &D1Database) -> Result<Vec<AgentRow>> {
    trip()?;
    all_agents_statement(db)?.all().await?.results()
}

pub(super) fn all_agents_statement(db: &D1Database) -> Result<D1PreparedStatement> {
    db.statement(format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY name LIMIT ?1")).bind(&[int(AGENTS_MAX)])
}

/// The subset of `names` that are registered agents.
pub async fn existing_agents(db: &D1Database, names: &[&str]) -> Result<Vec<String>> {
    trip()?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    existing_agents_of(&existing_agents_statement(db, names)?.all().await?)
}

/// The statement behind [`existing_agents`]; `names` must not be empty.
pub(super) fn existing_agents_statement(db: &D1Database, names: &[&str]) -> Result<D1PreparedStatement> {
    let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
    let values: Vec<JsValue> = names.iter().map(|n| JsValue::from(*n)).collect();
    db.statement(format!("SELECT name FROM agents WHERE name IN ({})", placeholders.join(", "))).bind(&values)
}

pub(super) fn existing_agents_of(result: &worker::D1Result) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Name {
        name: String,
    }
    Ok(result.results::<Name>()?.into_iter().map(|r| r.name).collect())
}

/// Replaces an agent's editable fields; sets the webhook secret when one is given (an agent
/// that becomes a webhook agent). Returns whether the agent existed.
pub async fn update_agent(
    db: &D1Database,
    spec: &AgentSpec,
    new_webhook_secret: Option<&str>,
    now: Timestamp,
) -> Result<bool> {
    trip()?;
    let capabilities = capabilities_json(spec);
    let result = db
        .statement(
            "UPDATE agents SET description = ?2, capabilities = ?3, mode = ?4, webhook_url = ?5,
                    webhook_secret = COALESCE(?6, webhook_secret), max_concurrency = ?7,
                    lease_ms = ?9, step_timeout_ms = ?10, schedule_timeout_ms = ?11, version = version + 1,
                    updated_at = ?8
             WHERE name = ?1",
        )
        .bind(&[
            spec.name.as_str().into(),
            spec.description.as_str().into(),
            capabilities.into(),
            spec.mode.as_str().into(),
            text_or_null(spec.webhook_url.as_deref()),
            text_or_null(new_webhook_secret),
            int(i64::from(spec.max_concurrency)),
            int(now.as_millis()),
            int(spec.lease_ms),
            int(spec.step_timeout_ms),
            int(spec.schedule_timeout_ms),
        ])?
        .run()
        .await?;
    Ok(result.meta()?.and_then(|m| m.changes).unwrap_or(0) > 0)
}

/// Whether the agent has a webhook secret (set when it was created or became a webhook agent).
/// What replacing a webhook secret came to.
pub enum SecretReplaced {
    Done,
    NoSuchAgent,
    NotWebhook,
}

/// Replaces a webhook agent's signing secret, in one statement that changes only a webhook agent.
pub async fn replace_webhook_secret(
    db: &D1Database,
    name: &str,
    secret: &str,
    now: Timestamp,
) -> Result<SecretReplaced> {
    #[derive(Deserialize)]
    struct Mode {
        mode: String,
    }
    let statements = vec![
        db.statement(
            "UPDATE agents SET webhook_secret = ?2, version = version + 1, updated_at = ?3
             WHERE name = ?1 AND mode = 'webhook'",
        )
        .bind(&[name.into(), secret.into(), int(now.as_millis())])?,
        db.statement("SELECT mode FROM agents WHERE name = ?1").bind(&[name.into()])?,
    ];
    trip()?;
    let results = db.batch(statements).await?;
    let modes: Vec<Mode> = results.get(1).map(|r| r.results()).transpose()?.unwrap_or_default();
    Ok(match modes.first().map(|m| m.mode.as_str()) {
        None => SecretReplaced::NoSuchAgent,
        Some("webhook") => SecretReplaced::Done,
        Some(_) => SecretReplaced::NotWebhook,
    })
}

pub async fn has_webhook_secret(db: &D1Database, name: &str) -> Result<bool> {
    trip()?;
    #[derive(Deserialize)]
    struct Has {
        has: i64,
    }
    let row: Option<Has> = db
        .statement("SELECT webhook_secret IS NOT NULL AS has FROM agents WHERE name = ?1")
        .bind(&[name.into()])?
        .first(None)
        .await?;
    Ok(row.is_some_and(|r| r.has != 0))
}

/// Gives an agent a new token hash; returns the old hash (`Some(None)` if it had none), or
/// `None` if there is no such agent. Read and write are one batch, so the old hash returned is
/// the one replaced.
pub async fn replace_token_hash(
    db: &D1Database,
    name: &str,
    token_hash: &str,
    now: Timestamp,
) -> Result<Option<Option<String>>> {
    #[derive(Deserialize)]
    struct Old {
        token_hash: Option<String>,
    }
    trip()?;
    let results = db
        .batch(vec![
            db.statement("SELECT token_hash FROM agents WHERE name = ?1").bind(&[name.into()])?,
            db.statement("UPDATE agents SET token_hash = ?2, version = version + 1, updated_at = ?3 WHERE name = ?1")
                .bind(&[name.into(), token_hash.into(), int(now.as_millis())])?,
        ])
        .await?;
    let old: Option<Old> = results.first().map(|r| r.results::<Old>()).transpose()?.and_then(|v| v.into_iter().next());
    Ok(old.map(|o| o.token_hash))
}

/// A deleted agent's token hash, so that the token's cached lookup can be dropped too.
#[derive(Debug, Clone, Deserialize)]
pub struct DeletedAgent {
    pub token_hash: Option<String>,
}

pub async fn delete_agent(db: &D1Database, name: &str) -> Result<Option<DeletedAgent>> {
    trip()?;
    db.statement("DELETE FROM agents WHERE name = ?1 RETURNING token_hash").bind(&[name.into()])?.first(None).await
}

/// The agent a token belongs to, by the token's hash.
pub async fn agent_by_token_hash(db: &D1Database, token_hash: &str) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Row {
        name: String,
    }
    trip()?;
    let row: Option<Row> =
        db.statement("SELECT name FROM agents WHERE token_hash = ?1").bind(&[token_hash.into()])?.first(None).await?;
    Ok(row.map(|r| r.name))
}

/// Where and how to deliver to a webhook agent.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookTarget {
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
}

pub async fn webhook_target(db: &D1Database, agent: &str) -> Result<Option<WebhookTarget>> {
    trip()?;
    db.statement("SELECT webhook_url, webhook_secret FROM agents WHERE name = ?1")
        .bind(&[agent.into()])?
        .first(None)
        .await
}
