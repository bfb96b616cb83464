//! All SQL switchyard runs, each statement next to the function that runs it, with bound
//! parameters only. Times are INTEGER milliseconds since the epoch.
//!
//! Functions here translate between rows and core values and nothing else: no decisions, no
//! HTTP. A multi-statement change is one `batch`, which D1 runs as one transaction.

use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, Result};

use crate::core::agents::{AgentSpec, LEASE_MS_DEFAULT, STEP_TIMEOUT_MS_DEFAULT};
use crate::core::system::{CronPlan, SystemEvent};
use crate::core::time::Timestamp;

fn int(value: i64) -> JsValue {
    // Exact: every integer we store (times, sequence numbers) is far below 2^53.
    JsValue::from_f64(value as f64)
}

/// A cheap query that fails unless switchyard's schema is in place; used by `GET /health`.
pub async fn check_schema(db: &D1Database) -> Result<()> {
    db.prepare("SELECT seq FROM events LIMIT 1").all().await?;
    Ok(())
}

/// The statement that records a system event unless one with the same dedupe key exists.
fn insert_system_event(db: &D1Database, event: &SystemEvent, now: Timestamp) -> Result<D1PreparedStatement> {
    db.prepare(
        "INSERT INTO events (task_id, step_id, kind, data, dedupe_key, created_at)
         VALUES (NULL, NULL, ?1, ?2, ?3, ?4)
         ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(&[
        event.kind.into(),
        event.data.to_string().into(),
        event.dedupe_key.as_str().into(),
        int(now.as_millis()),
    ])
}

/// Records a system event unless one with the same dedupe key exists. Returns whether it was new.
pub async fn record_system_event(db: &D1Database, event: &SystemEvent, now: Timestamp) -> Result<bool> {
    let result = insert_system_event(db, event, now)?.run().await?;
    let changes = result.meta()?.and_then(|m| m.changes).unwrap_or(0);
    Ok(changes > 0)
}

/// Records a cron tick and prunes old system events, in one transaction.
pub async fn run_cron_plan(db: &D1Database, plan: &CronPlan, now: Timestamp) -> Result<()> {
    let insert = insert_system_event(db, &plan.tick, now)?;
    let prune = db
        .prepare("DELETE FROM events WHERE task_id IS NULL AND created_at < ?1")
        .bind(&[int(plan.prune_before.as_millis())])?;
    db.batch(vec![insert, prune]).await?;
    Ok(())
}

#[derive(Debug, Deserialize)]
pub struct SystemEventRow {
    pub seq: i64,
    pub kind: String,
    pub data: String,
    pub created_at: i64,
}

/// One page of system events, oldest first.
pub async fn list_system_events(db: &D1Database, after_seq: i64, limit: u32) -> Result<Vec<SystemEventRow>> {
    db.prepare(
        "SELECT seq, kind, data, created_at FROM events
         WHERE task_id IS NULL AND seq > ?1
         ORDER BY seq
         LIMIT ?2",
    )
    .bind(&[int(after_seq), int(i64::from(limit))])?
    .all()
    .await?
    .results::<SystemEventRow>()
}

/// Most agents in the registry: the most that selection (core::analysis) scores. A team runs a
/// handful of specialists; a bound keeps each selection and the list small.
pub const AGENTS_MAX: i64 = crate::core::limits::SELECT_AGENTS_MAX as i64;

/// The settings key recording that the defaults were loaded once.
const DEFAULTS_LOADED: &str = "defaults_loaded";

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
    pub metadata: String,
    pub imported: i64,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const AGENT_COLUMNS: &str = "name, description, capabilities, mode, webhook_url, max_concurrency, lease_ms, \
     step_timeout_ms, metadata, source IS NOT NULL AS imported, version, created_at, updated_at";

/// The secrets a new agent gets; stored as given (the token only as its hash).
pub struct AgentSecrets<'a> {
    pub token_hash: &'a str,
    pub webhook_secret: Option<&'a str>,
}

fn text_or_null(value: Option<&str>) -> JsValue {
    value.map_or(JsValue::NULL, JsValue::from)
}

/// Capabilities are stored as a JSON array of strings (serialising strings cannot fail).
fn capabilities_json(spec: &AgentSpec) -> String {
    serde_json::to_string(&spec.capabilities).unwrap_or_else(|_| "[]".into())
}

fn insert_agent_statement(
    db: &D1Database,
    spec: &AgentSpec,
    secrets: Option<&AgentSecrets>,
    now: Timestamp,
    guard: &str,
) -> Result<D1PreparedStatement> {
    let capabilities = capabilities_json(spec);
    db.prepare(format!(
        "INSERT INTO agents (name, description, capabilities, mode, webhook_url, webhook_secret, token_hash,
                             max_concurrency, lease_ms, step_timeout_ms, source, metadata, version, created_at, updated_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 1, ?13, ?13
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
        int(LEASE_MS_DEFAULT),
        int(STEP_TIMEOUT_MS_DEFAULT),
        text_or_null(spec.source.as_deref()),
        spec.metadata.to_string().into(),
        int(now.as_millis()),
        int(AGENTS_MAX),
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
    let result = insert_agent_statement(db, spec, Some(secrets), now, "")?.run().await?;
    if result.meta()?.and_then(|m| m.changes).unwrap_or(0) > 0 {
        return Ok(InsertAgent::Inserted);
    }
    Ok(if get_agent(db, &spec.name).await?.is_some() { InsertAgent::NameTaken } else { InsertAgent::RegistryFull })
}

pub async fn get_agent(db: &D1Database, name: &str) -> Result<Option<AgentRow>> {
    db.prepare(format!("SELECT {AGENT_COLUMNS} FROM agents WHERE name = ?1")).bind(&[name.into()])?.first(None).await
}

/// One page of agents by name, after `after` (exclusive).
pub async fn list_agents(db: &D1Database, after: Option<&str>, limit: u32) -> Result<Vec<AgentRow>> {
    db.prepare(format!("SELECT {AGENT_COLUMNS} FROM agents WHERE name > ?1 ORDER BY name LIMIT ?2"))
        .bind(&[after.unwrap_or("").into(), int(i64::from(limit))])?
        .all()
        .await?
        .results()
}

/// Every agent (bounded by [`AGENTS_MAX`]), for selection.
pub async fn all_agents(db: &D1Database) -> Result<Vec<AgentRow>> {
    db.prepare(format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY name LIMIT ?1"))
        .bind(&[int(AGENTS_MAX)])?
        .all()
        .await?
        .results()
}

/// The subset of `names` that are registered agents.
pub async fn existing_agents(db: &D1Database, names: &[&str]) -> Result<Vec<String>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    #[derive(Deserialize)]
    struct Name {
        name: String,
    }
    let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
    let values: Vec<JsValue> = names.iter().map(|n| JsValue::from(*n)).collect();
    let rows: Vec<Name> = db
        .prepare(format!("SELECT name FROM agents WHERE name IN ({})", placeholders.join(", ")))
        .bind(&values)?
        .all()
        .await?
        .results()?;
    Ok(rows.into_iter().map(|r| r.name).collect())
}

/// Replaces an agent's editable fields; sets the webhook secret when one is given (an agent
/// that becomes a webhook agent). Returns whether the agent existed.
pub async fn update_agent(
    db: &D1Database,
    spec: &AgentSpec,
    new_webhook_secret: Option<&str>,
    now: Timestamp,
) -> Result<bool> {
    let capabilities = capabilities_json(spec);
    let result = db
        .prepare(
            "UPDATE agents SET description = ?2, capabilities = ?3, mode = ?4, webhook_url = ?5,
                    webhook_secret = COALESCE(?6, webhook_secret), max_concurrency = ?7,
                    version = version + 1, updated_at = ?8
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
        ])?
        .run()
        .await?;
    Ok(result.meta()?.and_then(|m| m.changes).unwrap_or(0) > 0)
}

/// Whether the agent has a webhook secret (set when it was created or became a webhook agent).
pub async fn has_webhook_secret(db: &D1Database, name: &str) -> Result<bool> {
    #[derive(Deserialize)]
    struct Has {
        has: i64,
    }
    let row: Option<Has> = db
        .prepare("SELECT webhook_secret IS NOT NULL AS has FROM agents WHERE name = ?1")
        .bind(&[name.into()])?
        .first(None)
        .await?;
    Ok(row.is_some_and(|r| r.has != 0))
}

pub async fn delete_agent(db: &D1Database, name: &str) -> Result<bool> {
    let result = db.prepare("DELETE FROM agents WHERE name = ?1").bind(&[name.into()])?.run().await?;
    Ok(result.meta()?.and_then(|m| m.changes).unwrap_or(0) > 0)
}

/// A stored workflow version.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkflowRow {
    pub id: String,
    pub version: i64,
    pub definition: String,
    pub created_at: i64,
}

/// Stores a new version of workflow `name`: one more than the latest, decided inside the
/// statement, so two concurrent posts cannot get the same number (the UNIQUE index would refuse
/// the second). Returns the version given.
pub async fn insert_workflow(
    db: &D1Database,
    id: &str,
    name: &str,
    definition: &str,
    source: Option<&str>,
    now: Timestamp,
) -> Result<i64> {
    #[derive(Deserialize)]
    struct Version {
        version: i64,
    }
    let row: Option<Version> = db
        .prepare(
            "INSERT INTO workflows (id, name, version, definition, source, created_at)
             SELECT ?1, ?2, COALESCE(MAX(version), 0) + 1, ?3, ?4, ?5 FROM workflows WHERE name = ?2
             RETURNING version",
        )
        .bind(&[id.into(), name.into(), definition.into(), text_or_null(source), int(now.as_millis())])?
        .first(None)
        .await?;
    row.map(|r| r.version).ok_or_else(|| worker::Error::RustError("insert returned no version".into()))
}

const WORKFLOW_COLUMNS: &str = "id, version, definition, created_at";

pub async fn latest_workflow(db: &D1Database, name: &str) -> Result<Option<WorkflowRow>> {
    db.prepare(format!("SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE name = ?1 ORDER BY version DESC LIMIT 1"))
        .bind(&[name.into()])?
        .first(None)
        .await
}

pub async fn workflow_version(db: &D1Database, name: &str, version: i64) -> Result<Option<WorkflowRow>> {
    db.prepare(format!("SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE name = ?1 AND version = ?2"))
        .bind(&[name.into(), int(version)])?
        .first(None)
        .await
}

/// A workflow in a list: its latest version, summarised.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkflowSummaryRow {
    pub id: String,
    pub name: String,
    pub version: i64,
    pub title: Option<String>,
    pub description: Option<String>,
    pub steps: i64,
    pub created_at: i64,
}

/// One page of workflows by name (latest version of each), after `after` (exclusive).
pub async fn list_workflows(db: &D1Database, after: Option<&str>, limit: u32) -> Result<Vec<WorkflowSummaryRow>> {
    db.prepare(
        "SELECT id, name, version, json_extract(definition, '$.title') AS title,
                json_extract(definition, '$.description') AS description,
                json_array_length(definition, '$.steps') AS steps, created_at
         FROM workflows w
         WHERE name > ?1 AND version = (SELECT MAX(version) FROM workflows WHERE name = w.name)
         ORDER BY name LIMIT ?2",
    )
    .bind(&[after.unwrap_or("").into(), int(i64::from(limit))])?
    .all()
    .await?
    .results()
}

/// Loads the default agents and workflow, once per installation: every statement is guarded by
/// the settings marker the batch itself writes, so concurrent first requests load them once,
/// and a default an operator deleted later is not loaded again.
pub async fn load_defaults(
    db: &D1Database,
    agents: &[AgentSpec],
    workflow: (&str, &str, &str, &str),
    now: Timestamp,
) -> Result<()> {
    let not_loaded = format!("AND NOT EXISTS (SELECT 1 FROM settings WHERE key = '{DEFAULTS_LOADED}')");
    let mut statements = Vec::new();
    for agent in agents {
        statements.push(insert_agent_statement(db, agent, None, now, &not_loaded)?);
    }
    let (id, name, definition, source) = workflow;
    statements.push(
        db.prepare(format!(
            "INSERT INTO workflows (id, name, version, definition, source, created_at)
             SELECT ?1, ?2, 1, ?3, ?4, ?5
             WHERE NOT EXISTS (SELECT 1 FROM workflows WHERE name = ?2) {not_loaded}"
        ))
        .bind(&[id.into(), name.into(), definition.into(), source.into(), int(now.as_millis())])?,
    );
    statements.push(
        db.prepare("INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO NOTHING")
            .bind(&[DEFAULTS_LOADED.into(), now.to_rfc3339().into(), int(now.as_millis())])?,
    );
    db.batch(statements).await?;
    Ok(())
}
