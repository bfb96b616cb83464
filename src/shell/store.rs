//! All SQL switchyard runs, each statement next to the function that runs it, with bound
//! parameters only. Times are INTEGER milliseconds since the epoch.
//!
//! Functions here translate between rows and core values and nothing else: no decisions, no
//! HTTP. A multi-statement change is one `batch`, which D1 runs as one transaction.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, D1Result, Result};

use crate::core::base::limits::{MESSAGES_IN_LEASE_MAX, TASKS_RUNNING_MAX};
use crate::core::base::time::Timestamp;
use crate::core::engine::system::{CronPlan, SystemEvent};
use crate::core::engine::{
    Attempt, AttemptStatus, Event, ReportRef, Runner, Step, StepStatus, Task, TaskStatus, Transition,
};
use crate::core::records::messages::NewMessage;
use crate::core::records::metrics::ReportCounts;
use crate::core::registry::agents::{AgentSpec, STEP_TIMEOUT_MS_DEFAULT};

fn int(value: i64) -> JsValue {
    // Exact: every integer we store (times, sequence numbers) is far below 2^53.
    JsValue::from_f64(value as f64)
}

/// A cheap query that fails unless switchyard's schema is in place; used by `GET /health`.
pub async fn check_schema(db: &D1Database) -> Result<()> {
    trip();
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
    trip();
    let result = insert_system_event(db, event, now)?.run().await?;
    let changes = result.meta()?.and_then(|m| m.changes).unwrap_or(0);
    Ok(changes > 0)
}

/// Records a cron tick and prunes old system events, in one transaction.
pub async fn run_cron_plan(db: &D1Database, plan: &CronPlan, now: Timestamp) -> Result<()> {
    trip();
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
    trip();
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
pub const AGENTS_MAX: i64 = crate::core::base::limits::SELECT_AGENTS_MAX as i64;

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

/// A count from a report: bounded far below 2^53 by the report's limits.
fn report_count(value: u64) -> JsValue {
    int(i64::try_from(value).unwrap_or(i64::MAX))
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
        int(spec.lease_ms),
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
    trip();
    let result = insert_agent_statement(db, spec, Some(secrets), now, "")?.run().await?;
    if result.meta()?.and_then(|m| m.changes).unwrap_or(0) > 0 {
        return Ok(InsertAgent::Inserted);
    }
    Ok(if get_agent(db, &spec.name).await?.is_some() { InsertAgent::NameTaken } else { InsertAgent::RegistryFull })
}

pub async fn get_agent(db: &D1Database, name: &str) -> Result<Option<AgentRow>> {
    trip();
    db.prepare(format!("SELECT {AGENT_COLUMNS} FROM agents WHERE name = ?1")).bind(&[name.into()])?.first(None).await
}

/// One page of agents by name, after `after` (exclusive).
pub async fn list_agents(db: &D1Database, after: Option<&str>, limit: u32) -> Result<Vec<AgentRow>> {
    trip();
    db.prepare(format!("SELECT {AGENT_COLUMNS} FROM agents WHERE name > ?1 ORDER BY name LIMIT ?2"))
        .bind(&[after.unwrap_or("").into(), int(i64::from(limit))])?
        .all()
        .await?
        .results()
}

/// Every agent (bounded by [`AGENTS_MAX`]), for selection.
pub async fn all_agents(db: &D1Database) -> Result<Vec<AgentRow>> {
    trip();
    db.prepare(format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY name LIMIT ?1"))
        .bind(&[int(AGENTS_MAX)])?
        .all()
        .await?
        .results()
}

/// The subset of `names` that are registered agents.
pub async fn existing_agents(db: &D1Database, names: &[&str]) -> Result<Vec<String>> {
    trip();
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
    trip();
    let capabilities = capabilities_json(spec);
    let result = db
        .prepare(
            "UPDATE agents SET description = ?2, capabilities = ?3, mode = ?4, webhook_url = ?5,
                    webhook_secret = COALESCE(?6, webhook_secret), max_concurrency = ?7,
                    lease_ms = ?9, version = version + 1, updated_at = ?8
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
        db.prepare(
            "UPDATE agents SET webhook_secret = ?2, version = version + 1, updated_at = ?3
             WHERE name = ?1 AND mode = 'webhook'",
        )
        .bind(&[name.into(), secret.into(), int(now.as_millis())])?,
        db.prepare("SELECT mode FROM agents WHERE name = ?1").bind(&[name.into()])?,
    ];
    trip();
    let results = db.batch(statements).await?;
    let modes: Vec<Mode> = results.get(1).map(|r| r.results()).transpose()?.unwrap_or_default();
    Ok(match modes.first().map(|m| m.mode.as_str()) {
        None => SecretReplaced::NoSuchAgent,
        Some("webhook") => SecretReplaced::Done,
        Some(_) => SecretReplaced::NotWebhook,
    })
}

pub async fn has_webhook_secret(db: &D1Database, name: &str) -> Result<bool> {
    trip();
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
    trip();
    let results = db
        .batch(vec![
            db.prepare("SELECT token_hash FROM agents WHERE name = ?1").bind(&[name.into()])?,
            db.prepare("UPDATE agents SET token_hash = ?2, version = version + 1, updated_at = ?3 WHERE name = ?1")
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
    trip();
    db.prepare("DELETE FROM agents WHERE name = ?1 RETURNING token_hash").bind(&[name.into()])?.first(None).await
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
    // One statement is atomic, so two posts cannot take the same number; should a database ever
    // interleave them, the UNIQUE index refuses the second, which then takes the next number.
    let mut attempts_left = 3;
    loop {
        trip();
        let inserted: Result<Option<Version>> = db
            .prepare(
                "INSERT INTO workflows (id, name, version, definition, source, created_at)
                 SELECT ?1, ?2, COALESCE(MAX(version), 0) + 1, ?3, ?4, ?5 FROM workflows WHERE name = ?2
                 RETURNING version",
            )
            .bind(&[id.into(), name.into(), definition.into(), text_or_null(source), int(now.as_millis())])?
            .first(None)
            .await;
        match inserted {
            Ok(row) => {
                return row
                    .map(|r| r.version)
                    .ok_or_else(|| worker::Error::RustError("insert returned no version".into()))
            }
            Err(err) if attempts_left > 1 && err.to_string().contains("UNIQUE constraint failed: workflows.name") => {
                attempts_left -= 1;
            }
            Err(err) => return Err(err),
        }
    }
}

const WORKFLOW_COLUMNS: &str = "id, version, definition, created_at";

pub async fn latest_workflow(db: &D1Database, name: &str) -> Result<Option<WorkflowRow>> {
    trip();
    db.prepare(format!("SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE name = ?1 ORDER BY version DESC LIMIT 1"))
        .bind(&[name.into()])?
        .first(None)
        .await
}

pub async fn workflow_version(db: &D1Database, name: &str, version: i64) -> Result<Option<WorkflowRow>> {
    trip();
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
    trip();
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
    trip();
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

// ---------------------------------------------------------------------------------------------
// Tasks, steps and attempts: the execution engine's state.
// ---------------------------------------------------------------------------------------------

/// D1 round trips made by this isolate since it started (a query or a batch is one), for the
/// benchmark's "round trips per transition".
static ROUND_TRIPS: AtomicU64 = AtomicU64::new(0);

fn trip() {
    ROUND_TRIPS.fetch_add(1, Ordering::Relaxed);
}

pub fn round_trips() -> u64 {
    ROUND_TRIPS.load(Ordering::Relaxed)
}

fn opt_int(value: Option<i64>) -> JsValue {
    value.map_or(JsValue::NULL, int)
}

fn opt_time(value: Option<Timestamp>) -> JsValue {
    opt_int(value.map(Timestamp::as_millis))
}

fn time(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(Timestamp::saturating_from_millis)
}

/// A task as stored, without its steps.
#[derive(Debug, Clone, Deserialize)]
pub struct TaskRow {
    pub id: String,
    pub workflow_id: String,
    pub workflow_name: String,
    pub workflow_version: i64,
    pub title: String,
    pub description: String,
    pub input: String,
    pub analysis: String,
    pub status: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

const TASK_COLUMNS: &str = "id, workflow_id, workflow_name, workflow_version, title, description, input, analysis, \
     status, version, created_at, updated_at, finished_at";

#[derive(Debug, Clone, Deserialize)]
pub struct StepRow {
    pub id: String,
    pub key: String,
    pub name: String,
    pub runner: String,
    pub agent: Option<String>,
    pub status: String,
    pub depends_on: String,
    pub attempt: i64,
    pub attempts_max: i64,
    pub attempts_budget: i64,
    pub lease_id: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub queued_at: Option<i64>,
    pub due_at: Option<i64>,
    pub ready_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub skip_reason: Option<String>,
    pub error: Option<String>,
}

const STEP_COLUMNS: &str = "id, key, name, runner, agent, status, depends_on, attempt, attempts_max, attempts_budget, \
     lease_id, lease_expires_at, queued_at, due_at, ready_at, started_at, finished_at, skip_reason, error";

#[derive(Debug, Clone, Deserialize)]
pub struct AttemptRow {
    pub step_id: String,
    pub attempt: i64,
    pub agent: Option<String>,
    pub lease_id: Option<String>,
    pub status: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
    pub completion_hash: Option<String>,
    pub response: Option<String>,
}

const ATTEMPT_COLUMNS: &str =
    "step_id, attempt, agent, lease_id, status, started_at, finished_at, error, completion_hash, response";

fn corrupt(what: &str) -> worker::Error {
    worker::Error::RustError(format!("stored {what} is not valid"))
}

fn count(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

/// Builds the engine's view of a task from its rows. A row the engine cannot read is a fault,
/// never silently a different state.
pub fn task_state(task: &TaskRow, steps: &[StepRow], attempts: &[AttemptRow]) -> Result<Task> {
    let mut out = Vec::with_capacity(steps.len());
    for row in steps {
        let mut own: Vec<Attempt> = Vec::new();
        for a in attempts.iter().filter(|a| a.step_id == row.id) {
            own.push(Attempt {
                number: count(a.attempt),
                agent: a.agent.clone(),
                lease_id: a.lease_id.clone(),
                status: AttemptStatus::parse(&a.status).ok_or_else(|| corrupt("attempt status"))?,
                started_at: Timestamp::saturating_from_millis(a.started_at),
                finished_at: time(a.finished_at),
                error: a.error.clone(),
                completion_hash: a.completion_hash.clone(),
                response: a.response.clone(),
            });
        }
        own.sort_by_key(|a| a.number);
        out.push(Step {
            id: row.id.clone(),
            key: row.key.clone(),
            name: row.name.clone(),
            runner: Runner::parse(&row.runner).ok_or_else(|| corrupt("step runner"))?,
            agent: row.agent.clone(),
            status: StepStatus::parse(&row.status).ok_or_else(|| corrupt("step status"))?,
            depends_on: serde_json::from_str(&row.depends_on).map_err(|_| corrupt("step dependencies"))?,
            attempt: count(row.attempt),
            attempts_max: count(row.attempts_max),
            attempts_budget: count(row.attempts_budget),
            lease_id: row.lease_id.clone(),
            lease_expires_at: time(row.lease_expires_at),
            queued_at: time(row.queued_at),
            due_at: time(row.due_at),
            ready_at: time(row.ready_at),
            started_at: time(row.started_at),
            finished_at: time(row.finished_at),
            skip_reason: row.skip_reason.clone(),
            error: row.error.clone(),
            attempts: own,
        });
    }
    Ok(Task {
        id: task.id.clone(),
        status: TaskStatus::parse(&task.status).ok_or_else(|| corrupt("task status"))?,
        version: task.version,
        finished_at: time(task.finished_at),
        steps: out,
    })
}

/// A task with its steps and attempts, read in one round trip.
pub struct TaskRead {
    pub task: TaskRow,
    pub steps: Vec<StepRow>,
    pub attempts: Vec<AttemptRow>,
}

fn read_statements(db: &D1Database, task_id_sql: &str, binds: &[JsValue]) -> Result<Vec<D1PreparedStatement>> {
    Ok(vec![
        db.prepare(format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = {task_id_sql}")).bind(binds)?,
        db.prepare(format!("SELECT {STEP_COLUMNS} FROM steps WHERE task_id = {task_id_sql} ORDER BY rowid"))
            .bind(binds)?,
        db.prepare(format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts
             WHERE step_id IN (SELECT id FROM steps WHERE task_id = {task_id_sql}) ORDER BY step_id, attempt"
        ))
        .bind(binds)?,
    ])
}

fn into_read(results: &[D1Result]) -> Result<Option<TaskRead>> {
    let (Some(task), Some(steps), Some(attempts)) = (results.first(), results.get(1), results.get(2)) else {
        return Err(worker::Error::RustError("a task read returned too few results".into()));
    };
    let Some(task) = task.results::<TaskRow>()?.into_iter().next() else { return Ok(None) };
    Ok(Some(TaskRead { task, steps: steps.results()?, attempts: attempts.results()? }))
}

pub async fn read_task(db: &D1Database, task_id: &str) -> Result<Option<TaskRead>> {
    trip();
    let results = db.batch(read_statements(db, "?1", &[task_id.into()])?).await?;
    into_read(&results)
}

/// The task a step belongs to, read like [`read_task`] in the same single round trip.
pub async fn read_task_of_step(db: &D1Database, step_id: &str) -> Result<Option<TaskRead>> {
    trip();
    let sql = "(SELECT task_id FROM steps WHERE id = ?1)";
    let results = db.batch(read_statements(db, sql, &[step_id.into()])?).await?;
    into_read(&results)
}

/// A pull agent's view when it asks for work: its limits, and the task of its oldest leasable
/// step with that task's finished reports (the step's inputs), all in one round trip.
pub struct LeaseRead {
    pub max_concurrency: i64,
    pub lease_ms: i64,
    /// How long the agent's steps may run in all; runners stop a command after it.
    pub step_timeout_ms: i64,
    pub leased: i64,
    pub task: Option<TaskRead>,
    /// Instructions of the task's steps, by step id.
    pub instructions: Vec<(String, String)>,
    pub reports: Vec<ReportRow>,
    /// The newest messages to the agent about the task, oldest first.
    pub messages: Vec<MessageRow>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReportRow {
    pub key: String,
    pub name: String,
    pub agent: Option<String>,
    pub status: String,
    pub skip_reason: Option<String>,
    pub report: Option<String>,
    pub report_key: Option<String>,
}

/// `spread` picks among the agent's oldest few ready steps (taken modulo how many there are), so
/// that several workers of one agent asking at once mostly pick different steps instead of all
/// racing for the oldest one.
pub async fn read_for_lease(db: &D1Database, agent: &str, spread: u32) -> Result<Option<LeaseRead>> {
    #[derive(Deserialize)]
    struct Limits {
        max_concurrency: i64,
        lease_ms: i64,
        step_timeout_ms: i64,
        leased: i64,
    }
    #[derive(Deserialize)]
    struct Instructions {
        id: String,
        instructions: String,
    }
    let task_sql = "(SELECT task_id FROM steps WHERE agent = ?1 AND status = 'queued' AND ready_at IS NOT NULL \
                    ORDER BY ready_at, id LIMIT 1 OFFSET ?2 % MAX(1, (SELECT COUNT(*) FROM steps \
                    WHERE agent = ?1 AND status = 'queued' AND ready_at IS NOT NULL)))";
    let binds = [JsValue::from(agent), int(i64::from(spread))];
    let mut statements = vec![db
        .prepare(
            "SELECT max_concurrency, lease_ms, step_timeout_ms,
                    (SELECT COUNT(*) FROM steps WHERE agent = ?1 AND status = 'leased') AS leased
             FROM agents WHERE name = ?1",
        )
        .bind(&binds[..1])?];
    statements.extend(read_statements(db, task_sql, &binds)?);
    statements.push(
        db.prepare(format!(
            "SELECT id, instructions FROM steps
             WHERE task_id = {task_sql} AND agent = ?1 AND status = 'queued' AND ready_at IS NOT NULL"
        ))
        .bind(&binds)?,
    );
    statements.push(
        db.prepare(format!(
            "SELECT key, name, agent, status, skip_reason, report, report_key FROM steps
             WHERE task_id = {task_sql} AND status IN ('succeeded', 'skipped')"
        ))
        .bind(&binds)?,
    );
    statements.push(
        db.prepare(format!(
            "SELECT * FROM (SELECT {MESSAGE_COLUMNS} FROM messages
                            WHERE to_agent = ?1 AND task_id = {task_sql} ORDER BY seq DESC LIMIT {MESSAGES_IN_LEASE_MAX})
             ORDER BY seq"
        ))
        .bind(&binds)?,
    );
    trip();
    let results = db.batch(statements).await?;
    let Some(limits) = results.first().map(|r| r.results::<Limits>()).transpose()?.and_then(|l| l.into_iter().next())
    else {
        return Ok(None);
    };
    let task = into_read(results.get(1..4).unwrap_or_default())?;
    let instructions: Vec<Instructions> = results.get(4).map(|r| r.results()).transpose()?.unwrap_or_default();
    let reports: Vec<ReportRow> = results.get(5).map(|r| r.results()).transpose()?.unwrap_or_default();
    Ok(Some(LeaseRead {
        max_concurrency: limits.max_concurrency,
        lease_ms: limits.lease_ms,
        step_timeout_ms: limits.step_timeout_ms,
        leased: limits.leased,
        task,
        instructions: instructions.into_iter().map(|i| (i.id, i.instructions)).collect(),
        reports,
        messages: results.get(6).map(|r| r.results()).transpose()?.unwrap_or_default(),
    }))
}

/// The finished reports of a task's steps, for a built-in step's inputs.
pub async fn task_reports(db: &D1Database, task_id: &str) -> Result<Vec<ReportRow>> {
    trip();
    db.prepare(
        "SELECT key, name, agent, status, skip_reason, report, report_key FROM steps
         WHERE task_id = ?1 AND status IN ('succeeded', 'skipped') ORDER BY rowid",
    )
    .bind(&[task_id.into()])?
    .all()
    .await?
    .results()
}

/// A step as the records read it: its report, figures and times, in workflow order.
#[derive(Debug, Deserialize)]
pub struct RecordRow {
    pub key: String,
    pub name: String,
    pub agent: Option<String>,
    pub status: String,
    pub skip_reason: Option<String>,
    pub error: Option<String>,
    pub report: Option<String>,
    pub report_key: Option<String>,
    pub attempt: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub files_created: i64,
    pub files_modified: i64,
    pub lines_added: i64,
    pub lines_removed: i64,
}

/// Every step of a task with its records, in workflow order.
pub async fn task_records(db: &D1Database, task_id: &str) -> Result<Vec<RecordRow>> {
    trip();
    db.prepare(
        "SELECT key, name, agent, status, skip_reason, error, report, report_key, attempt, started_at,
                finished_at, files_created, files_modified, lines_added, lines_removed
         FROM steps WHERE task_id = ?1 ORDER BY rowid",
    )
    .bind(&[task_id.into()])?
    .all()
    .await?
    .results()
}

/// A task as its summary shows it, with its workflow's definition (JSON).
#[derive(Debug, Deserialize)]
pub struct SummaryTaskRow {
    pub title: String,
    pub description: String,
    pub input: String,
    pub task_type: Option<String>,
    pub status: String,
    pub definition: String,
}

pub async fn task_for_summary(db: &D1Database, task_id: &str) -> Result<Option<SummaryTaskRow>> {
    trip();
    db.prepare(
        "SELECT t.title, t.description, t.input, json_extract(t.analysis, '$.task_type') AS task_type, t.status,
                w.definition
         FROM tasks t JOIN workflows w ON w.id = t.workflow_id WHERE t.id = ?1",
    )
    .bind(&[task_id.into()])?
    .first(None)
    .await
}

/// Whether a task exists.
pub async fn task_exists(db: &D1Database, task_id: &str) -> Result<bool> {
    #[derive(Deserialize)]
    struct Row {
        #[allow(dead_code)]
        id: String,
    }
    trip();
    let row: Option<Row> =
        db.prepare("SELECT id FROM tasks WHERE id = ?1").bind(&[task_id.into()])?.first(None).await?;
    Ok(row.is_some())
}

/// The summary written last for a task, of any kind.
pub async fn latest_summary(db: &D1Database, task_id: &str) -> Result<Option<SummaryRow>> {
    trip();
    db.prepare(
        "SELECT task_id, step_id, kind, written_at, markdown_key, json_key, metrics_key FROM summaries
         WHERE task_id = ?1 ORDER BY written_at DESC, rowid DESC LIMIT 1",
    )
    .bind(&[task_id.into()])?
    .first(None)
    .await
}

/// One agent's figures across the steps that ended since a time (see `agent_aggregates`).
#[derive(Debug, Deserialize)]
pub struct AggregateRow {
    pub agent: String,
    pub steps: i64,
    pub succeeded: i64,
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
    pub files_created: i64,
    pub files_modified: i64,
    pub lines_added: i64,
    pub lines_removed: i64,
}

/// Per agent, over its steps that ended (succeeded or dead) at or after `since`: counts, totals
/// and nearest-rank p50/p95 durations, computed in one D1 query that reads the steps once (window
/// functions rank each agent's durations) and returns one row per agent (the percentile rank is
/// `metrics::nearest_rank`).
pub async fn agent_aggregates(db: &D1Database, since: Timestamp) -> Result<Vec<AggregateRow>> {
    trip();
    let result = db
        .prepare(
            "SELECT agent, COUNT(*) AS steps, MAX(succeeded) AS succeeded,
                MAX(CASE WHEN position = MAX(1, (total * 50 + 99) / 100) THEN duration END) AS p50_ms,
                MAX(CASE WHEN position = MAX(1, (total * 95 + 99) / 100) THEN duration END) AS p95_ms,
                SUM(files_created) AS files_created, SUM(files_modified) AS files_modified,
                SUM(lines_added) AS lines_added, SUM(lines_removed) AS lines_removed
         FROM (
           SELECT agent, finished_at - started_at AS duration, files_created, files_modified, lines_added,
                  lines_removed,
                  ROW_NUMBER() OVER (PARTITION BY agent ORDER BY finished_at - started_at) AS position,
                  COUNT(*) OVER (PARTITION BY agent) AS total,
                  SUM(status = 'succeeded') OVER (PARTITION BY agent) AS succeeded
           FROM steps
           WHERE agent IS NOT NULL AND finished_at IS NOT NULL AND finished_at >= ?1
             AND status IN ('succeeded', 'dead') AND started_at IS NOT NULL
         )
         GROUP BY agent ORDER BY agent",
        )
        .bind(&[int(since.as_millis())])?
        .all()
        .await?;
    if let Ok(Some(meta)) = result.meta() {
        AGGREGATE_ROWS_READ.store(meta.rows_read.unwrap_or(0) as u64, Ordering::Relaxed);
    }
    result.results()
}

/// Rows D1 read for the last `agent_aggregates` query of this isolate, for the benchmark.
static AGGREGATE_ROWS_READ: AtomicU64 = AtomicU64::new(0);

pub fn aggregate_rows_read() -> u64 {
    AGGREGATE_ROWS_READ.load(Ordering::Relaxed)
}

/// The step's instructions (JSON), as fixed at submission.
pub async fn step_instructions(db: &D1Database, step_id: &str) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Row {
        instructions: String,
    }
    trip();
    let row: Option<Row> =
        db.prepare("SELECT instructions FROM steps WHERE id = ?1").bind(&[step_id.into()])?.first(None).await?;
    Ok(row.map(|r| r.instructions))
}

/// What the transition's batch must still find true, besides the task's version.
pub enum Guard<'a> {
    Version,
    /// A lease: the agent must still hold fewer leases than this.
    AgentBelow {
        agent: &'a str,
        max_concurrency: i64,
    },
}

/// Why a transition was not written.
pub enum Write {
    Done,
    /// The task changed since it was read: read again and decide again.
    Stale,
}

fn guard_statement(db: &D1Database, task_id: &str, version: i64, guard: &Guard) -> Result<D1PreparedStatement> {
    let (extra, binds) = match guard {
        Guard::Version => (String::new(), vec![task_id.into(), int(version)]),
        Guard::AgentBelow { agent, max_concurrency } => (
            "AND (SELECT COUNT(*) FROM steps WHERE agent = ?3 AND status = 'leased') < ?4".to_string(),
            vec![task_id.into(), int(version), (*agent).into(), int(*max_concurrency)],
        ),
    };
    db.prepare(format!(
        "INSERT INTO transition_guard (id, ok)
         VALUES (1, COALESCE((SELECT version FROM tasks WHERE id = ?1) = ?2, 0) {extra})
         ON CONFLICT (id) DO UPDATE SET ok = excluded.ok"
    ))
    .bind(&binds)
}

fn event_statement(
    db: &D1Database,
    task_id: &str,
    event: &Event,
    dedupe_key: String,
    now: Timestamp,
) -> Result<D1PreparedStatement> {
    db.prepare(
        "INSERT INTO events (task_id, step_id, kind, data, dedupe_key, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(&[
        task_id.into(),
        text_or_null(event.step_id.as_deref()),
        event.kind.into(),
        event.data.to_string().into(),
        dedupe_key.into(),
        int(now.as_millis()),
    ])
}

fn attempt_statement(db: &D1Database, step_id: &str, attempt: &Attempt) -> Result<D1PreparedStatement> {
    db.prepare(
        "INSERT INTO attempts (step_id, attempt, agent, lease_id, status, started_at, finished_at, error,
                               completion_hash, response)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (step_id, attempt) DO UPDATE SET status = excluded.status, finished_at = excluded.finished_at,
             error = excluded.error, completion_hash = excluded.completion_hash, response = excluded.response",
    )
    .bind(&[
        step_id.into(),
        int(i64::from(attempt.number)),
        text_or_null(attempt.agent.as_deref()),
        text_or_null(attempt.lease_id.as_deref()),
        attempt.status.as_str().into(),
        int(attempt.started_at.as_millis()),
        opt_time(attempt.finished_at),
        text_or_null(attempt.error.as_deref()),
        text_or_null(attempt.completion_hash.as_deref()),
        text_or_null(attempt.response.as_deref()),
    ])
}

fn step_statement(db: &D1Database, step: &Step) -> Result<D1PreparedStatement> {
    db.prepare(
        "UPDATE steps SET status = ?2, attempt = ?3, attempts_max = ?4, lease_id = ?5, lease_expires_at = ?6,
                queued_at = ?7, due_at = ?8, ready_at = ?9, started_at = ?10, finished_at = ?11, error = ?12,
                version = version + 1
         WHERE id = ?1",
    )
    .bind(&[
        step.id.as_str().into(),
        step.status.as_str().into(),
        int(i64::from(step.attempt)),
        int(i64::from(step.attempts_max)),
        text_or_null(step.lease_id.as_deref()),
        opt_time(step.lease_expires_at),
        opt_time(step.queued_at),
        opt_time(step.due_at),
        opt_time(step.ready_at),
        opt_time(step.started_at),
        opt_time(step.finished_at),
        text_or_null(step.error.as_deref()),
    ])
}

/// Something written with a transition besides the state: a report, or an attempt's log key.
#[derive(Clone)]
pub enum Extra {
    /// A step's report and its change figures.
    Report {
        step_id: String,
        report: ReportRef,
        counts: ReportCounts,
    },
    LogKey {
        step_id: String,
        attempt: u32,
        key: String,
    },
    /// A summary a built-in step wrote to R2.
    Summary(SummaryRow),
}

/// Where a written summary is in R2.
#[derive(Debug, Clone, Deserialize)]
pub struct SummaryRow {
    pub task_id: String,
    pub step_id: String,
    pub kind: String,
    pub written_at: i64,
    pub markdown_key: String,
    pub json_key: String,
    pub metrics_key: String,
}

/// Writes a transition decided on `before`, in one batch that applies only if the task is still
/// at `before.version` (and `guard` holds). Only what changed is written.
pub async fn write_transition(
    db: &D1Database,
    before: &Task,
    transition: &Transition,
    guard: &Guard<'_>,
    extras: &[Extra],
    now: Timestamp,
) -> Result<Write> {
    let after = &transition.task;
    let mut statements = vec![guard_statement(db, &before.id, before.version, guard)?];
    statements.push(
        db.prepare("UPDATE tasks SET status = ?2, version = ?3, updated_at = ?4, finished_at = ?5 WHERE id = ?1")
            .bind(&[
                after.id.as_str().into(),
                after.status.as_str().into(),
                int(after.version),
                int(now.as_millis()),
                opt_time(after.finished_at),
            ])?,
    );
    for step in &after.steps {
        let old = before.steps.iter().find(|s| s.id == step.id);
        if old.is_some_and(|old| old == step) {
            continue;
        }
        statements.push(step_statement(db, step)?);
        for attempt in &step.attempts {
            let old_attempt = old.and_then(|o| o.attempts.iter().find(|a| a.number == attempt.number));
            if old_attempt != Some(attempt) {
                statements.push(attempt_statement(db, &step.id, attempt)?);
            }
        }
    }
    for extra in extras {
        statements.push(match extra {
            Extra::Report { step_id, report, counts } => {
                let (inline, key) = match report {
                    ReportRef::Inline(json) => (Some(json.as_str()), None),
                    ReportRef::Stored(key) => (None, Some(key.as_str())),
                };
                db.prepare(
                    "UPDATE steps SET report = ?2, report_key = ?3, files_created = ?4, files_modified = ?5,
                            lines_added = ?6, lines_removed = ?7
                     WHERE id = ?1",
                )
                .bind(&[
                    step_id.as_str().into(),
                    text_or_null(inline),
                    text_or_null(key),
                    report_count(counts.files_created),
                    report_count(counts.files_modified),
                    report_count(counts.lines_added),
                    report_count(counts.lines_removed),
                ])?
            }
            Extra::Summary(row) => db
                .prepare(
                    "INSERT INTO summaries (task_id, step_id, kind, written_at, markdown_key, json_key, metrics_key)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                )
                .bind(&[
                    row.task_id.as_str().into(),
                    row.step_id.as_str().into(),
                    row.kind.as_str().into(),
                    int(row.written_at),
                    row.markdown_key.as_str().into(),
                    row.json_key.as_str().into(),
                    row.metrics_key.as_str().into(),
                ])?,
            Extra::LogKey { step_id, attempt, key } => db
                .prepare("UPDATE attempts SET log_key = ?3 WHERE step_id = ?1 AND attempt = ?2")
                .bind(&[step_id.as_str().into(), int(i64::from(*attempt)), key.as_str().into()])?,
        });
    }
    for (index, event) in transition.events.iter().enumerate() {
        // Unique per applied transition: the guard lets each version be written once.
        let dedupe_key = format!("{}:{}:{index}", after.id, after.version);
        statements.push(event_statement(db, &after.id, event, dedupe_key, now)?);
    }
    trip();
    match db.batch(statements).await {
        Ok(_) => Ok(Write::Done),
        Err(err) if err.to_string().contains("stale_state") => Ok(Write::Stale),
        Err(err) => Err(err),
    }
}

/// A new task as submitted.
pub struct NewTask<'a> {
    pub task: &'a Task,
    pub workflow_id: &'a str,
    pub workflow_name: &'a str,
    pub workflow_version: i64,
    pub title: &'a str,
    pub description: &'a str,
    pub input: &'a str,
    pub analysis: &'a str,
    pub instructions: &'a [String],
    pub events: &'a [Event],
    /// The idempotency key, the request's hash and the response to keep for it.
    pub idempotency: Option<(&'a str, &'a str, &'a str)>,
}

/// The route name idempotency keys of task submissions are stored under.
const SUBMIT_ROUTE: &str = "POST /v1/tasks";

/// Inserts a task, its steps and its first events in one batch, which applies only while fewer
/// than `TASKS_RUNNING_MAX` tasks run and, with an idempotency key, only if the key is new:
/// `Write::Stale` means one of these did not hold.
pub async fn insert_task(db: &D1Database, new: &NewTask<'_>, now: Timestamp) -> Result<Write> {
    let task = new.task;
    // The guard: fewer than TASKS_RUNNING_MAX tasks are running, and the idempotency key (if
    // any) is new. Either failing rolls the batch back as `Write::Stale`.
    let mut statements = vec![db
        .prepare(
            "INSERT INTO transition_guard (id, ok)
             VALUES (1, (SELECT COUNT(*) FROM tasks WHERE status = 'running') < ?3
                        AND NOT EXISTS (SELECT 1 FROM idempotency_keys WHERE key = ?1 AND route = ?2))
             ON CONFLICT (id) DO UPDATE SET ok = excluded.ok",
        )
        .bind(&[text_or_null(new.idempotency.map(|(key, _, _)| key)), SUBMIT_ROUTE.into(), int(TASKS_RUNNING_MAX)])?];
    if let Some((key, hash, response)) = new.idempotency {
        statements.push(
            db.prepare(
                "INSERT INTO idempotency_keys (key, route, request_hash, status, response, created_at)
                 VALUES (?1, ?2, ?3, 201, ?4, ?5)",
            )
            .bind(&[
                key.into(),
                SUBMIT_ROUTE.into(),
                hash.into(),
                response.into(),
                int(now.as_millis()),
            ])?,
        );
    }
    statements.push(
        db.prepare(
            "INSERT INTO tasks (id, workflow_id, workflow_name, workflow_version, title, description, input, analysis,
                                status, version, created_at, updated_at, finished_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12)",
        )
        .bind(&[
            task.id.as_str().into(),
            new.workflow_id.into(),
            new.workflow_name.into(),
            int(new.workflow_version),
            new.title.into(),
            new.description.into(),
            new.input.into(),
            new.analysis.into(),
            task.status.as_str().into(),
            int(task.version),
            int(now.as_millis()),
            opt_time(task.finished_at),
        ])?,
    );
    for (step, instructions) in task.steps.iter().zip(new.instructions) {
        statements.push(
            db.prepare(
                "INSERT INTO steps (id, task_id, key, name, runner, agent, status, depends_on, attempt, attempts_max,
                                    attempts_budget, queued_at, due_at, finished_at, skip_reason, instructions)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )
            .bind(&[
                step.id.as_str().into(),
                task.id.as_str().into(),
                step.key.as_str().into(),
                step.name.as_str().into(),
                step.runner.as_str().into(),
                text_or_null(step.agent.as_deref()),
                step.status.as_str().into(),
                serde_json::to_string(&step.depends_on).unwrap_or_else(|_| "[]".into()).into(),
                int(i64::from(step.attempts_max)),
                int(i64::from(step.attempts_budget)),
                opt_time(step.queued_at),
                opt_time(step.due_at),
                opt_time(step.finished_at),
                text_or_null(step.skip_reason.as_deref()),
                instructions.as_str().into(),
            ])?,
        );
    }
    for (index, event) in new.events.iter().enumerate() {
        statements.push(event_statement(db, &task.id, event, format!("{}:1:{index}", task.id), now)?);
    }
    trip();
    match db.batch(statements).await {
        Ok(_) => Ok(Write::Done),
        Err(err) if err.to_string().contains("stale_state") => Ok(Write::Stale),
        Err(err) => Err(err),
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct IdempotencyRow {
    pub request_hash: String,
    pub status: i64,
    pub response: String,
}

pub async fn submission_by_key(db: &D1Database, key: &str) -> Result<Option<IdempotencyRow>> {
    trip();
    db.prepare("SELECT request_hash, status, response FROM idempotency_keys WHERE key = ?1 AND route = ?2")
        .bind(&[key.into(), SUBMIT_ROUTE.into()])?
        .first(None)
        .await
}

/// A task in a list.
#[derive(Debug, Clone, Deserialize)]
pub struct TaskSummaryRow {
    pub id: String,
    pub title: String,
    pub status: String,
    pub workflow_name: String,
    pub workflow_version: i64,
    pub task_type: Option<String>,
    /// JSON array text: the agents analysis chose.
    pub agents: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

/// One page of tasks, newest first, before the id `before` (exclusive), optionally of a status.
pub async fn list_tasks(
    db: &D1Database,
    status: Option<&str>,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<TaskSummaryRow>> {
    trip();
    db.prepare(
        "SELECT id, title, status, workflow_name, workflow_version,
                json_extract(analysis, '$.task_type') AS task_type, json_extract(analysis, '$.agents') AS agents,
                created_at, updated_at, finished_at
         FROM tasks
         WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR id < ?2)
         ORDER BY id DESC LIMIT ?3",
    )
    .bind(&[text_or_null(status), text_or_null(before), int(i64::from(limit))])?
    .all()
    .await?
    .results()
}

#[derive(Debug, Clone, Deserialize)]
pub struct TaskEventRow {
    pub seq: i64,
    pub step_id: Option<String>,
    pub kind: String,
    pub data: String,
    pub created_at: i64,
}

/// One page of a task's events, oldest first.
pub async fn list_task_events(db: &D1Database, task_id: &str, after_seq: i64, limit: u32) -> Result<Vec<TaskEventRow>> {
    trip();
    db.prepare(
        "SELECT seq, step_id, kind, data, created_at FROM events
         WHERE task_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )
    .bind(&[task_id.into(), int(after_seq), int(i64::from(limit))])?
    .all()
    .await?
    .results()
}

/// Tasks the cron sweep has something to do for: an expired lease, or a message overdue by
/// `redispatch_after_ms`.
pub async fn tasks_to_sweep(
    db: &D1Database,
    now: Timestamp,
    redispatch_after_ms: i64,
    limit: u32,
) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        task_id: String,
    }
    trip();
    let rows: Vec<Row> = db
        .prepare(
            "SELECT DISTINCT task_id FROM steps
             WHERE (status = 'leased' AND lease_expires_at <= ?1)
                OR (status IN ('queued', 'failed') AND ready_at IS NULL AND due_at <= ?2)
             LIMIT ?3",
        )
        .bind(&[int(now.as_millis()), int(now.as_millis() - redispatch_after_ms), int(i64::from(limit))])?
        .all()
        .await?
        .results()?;
    Ok(rows.into_iter().map(|r| r.task_id).collect())
}

/// The agent a token belongs to, by the token's hash.
pub async fn agent_by_token_hash(db: &D1Database, token_hash: &str) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Row {
        name: String,
    }
    trip();
    let row: Option<Row> =
        db.prepare("SELECT name FROM agents WHERE token_hash = ?1").bind(&[token_hash.into()])?.first(None).await?;
    Ok(row.map(|r| r.name))
}

/// Where and how to deliver to a webhook agent.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookTarget {
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
}

pub async fn webhook_target(db: &D1Database, agent: &str) -> Result<Option<WebhookTarget>> {
    trip();
    db.prepare("SELECT webhook_url, webhook_secret FROM agents WHERE name = ?1")
        .bind(&[agent.into()])?
        .first(None)
        .await
}

/// The columns of a message row, as [`MessageRow`] reads them.
const MESSAGE_COLUMNS: &str =
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
        db.prepare("SELECT name, mode FROM agents WHERE name IN (?1, ?2)")
            .bind(&[message.from.as_str().into(), message.to.as_str().into()])?,
        db.prepare("SELECT EXISTS (SELECT 1 FROM tasks WHERE id = ?1) AS found")
            .bind(&[text_or_null(message.task_id.as_deref())])?,
        db.prepare(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE correlation_id = ?1 AND type = 'query'
                            AND from_agent = ?2 AND to_agent = ?3) AS found",
        )
        .bind(&[
            message.correlation_id.as_str().into(),
            message.to.as_str().into(),
            message.from.as_str().into(),
        ])?,
        db.prepare("SELECT COUNT(*) AS found FROM messages WHERE from_agent = ?1 AND created_at > ?2")
            .bind(&[message.from.as_str().into(), int(now.minus_millis(60_000).as_millis())])?,
    ];
    trip();
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
        .prepare(
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
            db.prepare(
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
    trip();
    let results = db.batch(statements).await?;
    let seq: Vec<Seq> = results.first().map(|r| r.results()).transpose()?.unwrap_or_default();
    Ok(seq.first().map_or(0, |s| s.seq))
}

/// An agent's messages after `after_seq`, oldest first.
pub async fn inbox(db: &D1Database, agent: &str, after_seq: i64, limit: u32) -> Result<Vec<MessageRow>> {
    trip();
    db.prepare(format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE to_agent = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"))
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
    trip();
    db.prepare(format!(
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
    trip();
    db.prepare(format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1")).bind(&[id.into()])?.first(None).await
}

/// Records that a message reached its recipient's webhook, in the task's history.
pub async fn record_delivery(db: &D1Database, message: &MessageRow, now: Timestamp) -> Result<()> {
    let Some(task_id) = &message.task_id else { return Ok(()) };
    let data = serde_json::json!({"message_id": message.id, "to": message.to_agent});
    trip();
    db.prepare(
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

/// Every table's row count, by table (for the test-only `/__test/row-counts`).
pub async fn row_counts(db: &D1Database) -> Result<serde_json::Map<String, serde_json::Value>> {
    #[derive(Deserialize)]
    struct Count {
        n: i64,
    }
    const TABLES: [&str; 10] = [
        "agents",
        "settings",
        "workflows",
        "tasks",
        "steps",
        "attempts",
        "events",
        "messages",
        "summaries",
        "idempotency_keys",
    ];
    let statements =
        TABLES.iter().map(|table| db.prepare(format!("SELECT COUNT(*) AS n FROM {table}"))).collect::<Vec<_>>();
    trip();
    let results = db.batch(statements).await?;
    let mut counts = serde_json::Map::new();
    for (table, result) in TABLES.iter().zip(results) {
        let rows: Vec<Count> = result.results()?;
        counts.insert((*table).to_string(), rows.first().map_or(0, |c| c.n).into());
    }
    Ok(counts)
}
