//! Tasks with their steps, attempts and events: reading a task's state, the guarded batch of
//! every transition, submission with its idempotency key, listing, and what the sweep picks.

use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, D1Result, Result};

use super::messages::{MessageRow, MESSAGE_COLUMNS};
use super::records::SummaryRow;
use super::{change_trip, count, int, opt_int, opt_time, report_count, text_or_null, time, trip, Statement};
use crate::core::base::limits::{MESSAGES_IN_LEASE_MAX, TASKS_RUNNING_MAX};
use crate::core::base::time::Timestamp;
use crate::core::engine::{
    AgentTimeouts, Attempt, AttemptStatus, Event, Extension, LoopItem, ReportRef, Runner, Scope, Step, StepStatus,
    StepTimeouts, Task, TaskStatus, Transition,
};
use crate::core::records::metrics::{ReportCounts, Usage};

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
    pub selection: Option<String>,
}

const TASK_COLUMNS: &str = "id, workflow_id, workflow_name, workflow_version, title, description, input, analysis, \
     status, version, created_at, updated_at, finished_at, selection";

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
    pub optional: i64,
    pub schedule_timeout_ms: Option<i64>,
    pub attempt_timeout_ms: Option<i64>,
    pub heartbeat_ms: Option<i64>,
    pub schedule_deadline_at: Option<i64>,
    pub attempt_deadline_at: Option<i64>,
    pub gate: Option<String>,
    pub report_fields: Option<String>,
    pub parent: Option<String>,
    pub child_run: Option<String>,
}

const STEP_COLUMNS: &str = "id, key, name, runner, agent, status, depends_on, attempt, attempts_max, attempts_budget, \
     lease_id, lease_expires_at, queued_at, due_at, ready_at, started_at, finished_at, skip_reason, error, optional, \
     schedule_timeout_ms, attempt_timeout_ms, heartbeat_ms, schedule_deadline_at, attempt_deadline_at, gate, report_fields, \
     parent, child_run";

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
            optional: row.optional != 0,
            timeouts: StepTimeouts {
                schedule_ms: row.schedule_timeout_ms,
                attempt_ms: row.attempt_timeout_ms,
                heartbeat_ms: row.heartbeat_ms,
            },
            schedule_deadline_at: time(row.schedule_deadline_at),
            attempt_deadline_at: time(row.attempt_deadline_at),
            gate: match &row.gate {
                Some(text) => Some(serde_json::from_str(text).map_err(|_| corrupt("step gate"))?),
                None => None,
            },
            report_fields: match &row.report_fields {
                Some(text) => Some(serde_json::from_str(text).map_err(|_| corrupt("step report fields"))?),
                None => None,
            },
            parent: row.parent.clone(),
            child_run: match &row.child_run {
                Some(text) => Some(serde_json::from_str(text).map_err(|_| corrupt("step child run"))?),
                None => None,
            },
        });
    }
    Ok(Task {
        id: task.id.clone(),
        status: TaskStatus::parse(&task.status).ok_or_else(|| corrupt("task status"))?,
        version: task.version,
        finished_at: time(task.finished_at),
        steps: out,
        selection: match &task.selection {
            Some(text) => Some(serde_json::from_str(text).map_err(|_| corrupt("task selection"))?),
            None => None,
        },
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
        db.statement(format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = {task_id_sql}")).bind(binds)?,
        db.statement(format!("SELECT {STEP_COLUMNS} FROM steps WHERE task_id = {task_id_sql} ORDER BY rowid"))
            .bind(binds)?,
        db.statement(format!(
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
    trip()?;
    let results = db.batch(read_statements(db, "?1", &[task_id.into()])?).await?;
    into_read(&results)
}

/// The task a step belongs to, read like [`read_task`] in the same single round trip.
pub async fn read_task_of_step(db: &D1Database, step_id: &str) -> Result<Option<TaskRead>> {
    Ok(read_task_of_step_and_agents(db, step_id, &[]).await?.0)
}

/// [`read_task_of_step`] and which of `names` are registered agents, in one round trip: what
/// checking a completion's reported selection needs, and the state its transition decides on.
pub async fn read_task_of_step_and_agents(
    db: &D1Database,
    step_id: &str,
    names: &[&str],
) -> Result<(Option<TaskRead>, Vec<String>)> {
    let sql = "(SELECT task_id FROM steps WHERE id = ?1)";
    let mut statements = read_statements(db, sql, &[step_id.into()])?;
    if !names.is_empty() {
        statements.push(super::agents::existing_agents_statement(db, names)?);
    }
    trip()?;
    let results = db.batch(statements).await?;
    let registered = match results.get(3) {
        Some(result) => super::agents::existing_agents_of(result)?,
        None => Vec::new(),
    };
    Ok((into_read(&results)?, registered))
}

/// A pull agent's view when it asks for work: its limits, and the task of its oldest leasable
/// step with that task's finished reports (the step's inputs), all in one round trip.
pub struct LeaseRead {
    pub max_concurrency: i64,
    pub lease_ms: i64,
    /// How long one attempt of the agent's steps may run; runners stop a command after it.
    pub step_timeout_ms: i64,
    /// How long the agent's steps may wait to be leased.
    pub schedule_timeout_ms: i64,
    pub leased: i64,
    /// The agent as registered, for its part of the step's brief (JSON text for the last two).
    pub description: String,
    pub capabilities: String,
    pub metadata: String,
    pub task: Option<TaskRead>,
    /// Instructions of the task's steps, by step id.
    pub instructions: Vec<(String, String)>,
    pub reports: Vec<ReportRow>,
    /// The newest messages to the agent about the task, oldest first.
    pub messages: Vec<MessageRow>,
}

impl LeaseRead {
    pub fn timeouts(&self) -> AgentTimeouts {
        AgentTimeouts {
            schedule_ms: self.schedule_timeout_ms,
            attempt_ms: self.step_timeout_ms,
            heartbeat_ms: self.lease_ms,
        }
    }
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
    let statements = lease_read_statements(db, agent, spread)?;
    trip()?;
    lease_read_of(&db.batch(statements).await?)
}

/// The statements of [`read_for_lease`], for a batch of their own or at the end of a
/// transition's (see [`write_transition`]).
pub fn lease_read_statements(db: &D1Database, agent: &str, spread: u32) -> Result<Vec<D1PreparedStatement>> {
    let task_sql = "(SELECT task_id FROM steps WHERE agent = ?1 AND status = 'queued' AND ready_at IS NOT NULL \
                    ORDER BY ready_at, id LIMIT 1 OFFSET ?2 % MAX(1, (SELECT COUNT(*) FROM steps \
                    WHERE agent = ?1 AND status = 'queued' AND ready_at IS NOT NULL)))";
    let binds = [JsValue::from(agent), int(i64::from(spread))];
    let mut statements = vec![db
        .statement(
            "SELECT max_concurrency, lease_ms, step_timeout_ms, schedule_timeout_ms,
                    (SELECT COUNT(*) FROM steps WHERE agent = ?1 AND status = 'leased') AS leased,
                    description, capabilities, metadata
             FROM agents WHERE name = ?1",
        )
        .bind(&binds[..1])?];
    statements.extend(read_statements(db, task_sql, &binds)?);
    statements.push(
        db.statement(format!(
            "SELECT id, instructions FROM steps
             WHERE task_id = {task_sql} AND agent = ?1 AND status = 'queued' AND ready_at IS NOT NULL"
        ))
        .bind(&binds)?,
    );
    // `+` keeps SQLite on the task's steps: by the agent's index it would walk every ready step
    // of the agent in every task, a backlog's worth, for each report.
    let readers = "reader.task_id = steps.task_id AND +reader.agent = ?1 AND +reader.status = 'queued' \
                   AND reader.ready_at IS NOT NULL";
    statements.push(db.statement(input_reports_sql(task_sql, readers)).bind(&binds)?);
    statements.push(
        db.statement(format!(
            "SELECT * FROM (SELECT {MESSAGE_COLUMNS} FROM messages
                            WHERE to_agent = ?1 AND task_id = {task_sql} ORDER BY seq DESC LIMIT {MESSAGES_IN_LEASE_MAX})
             ORDER BY seq"
        ))
        .bind(&binds)?,
    );
    Ok(statements)
}

/// What the statements of [`lease_read_statements`] read; `None` when the agent is not
/// registered.
pub fn lease_read_of(results: &[D1Result]) -> Result<Option<LeaseRead>> {
    #[derive(Deserialize)]
    struct Limits {
        max_concurrency: i64,
        lease_ms: i64,
        step_timeout_ms: i64,
        schedule_timeout_ms: i64,
        leased: i64,
        description: String,
        capabilities: String,
        metadata: String,
    }
    #[derive(Deserialize)]
    struct Instructions {
        id: String,
        instructions: String,
    }
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
        schedule_timeout_ms: limits.schedule_timeout_ms,
        leased: limits.leased,
        description: limits.description,
        capabilities: limits.capabilities,
        metadata: limits.metadata,
        task,
        instructions: instructions.into_iter().map(|i| (i.id, i.instructions)).collect(),
        reports,
        messages: results.get(6).map(|r| r.results()).transpose()?.unwrap_or_default(),
    }))
}

/// The finished steps of task `{task_sql}` that the steps `{readers}` (a condition on
/// `reader`) take inputs from: their dependencies and the steps of those dependencies' child
/// runs (`key.x`, `key#n.x`). A superset where keys share a prefix; `engine::inputs_of` picks
/// exactly. A step's brief needs these, not every report the task has so far.
fn input_reports_sql(task_sql: &str, readers: &str) -> String {
    format!(
        "SELECT key, name, agent, status, skip_reason, report, report_key FROM steps
         WHERE task_id = {task_sql} AND status IN ('succeeded', 'skipped')
           AND EXISTS (SELECT 1 FROM steps AS reader, json_each(reader.depends_on) AS dep
                       WHERE {readers}
                         AND (steps.key = dep.value
                              OR substr(steps.key, 1, length(dep.value) + 1) IN (dep.value || '.', dep.value || '#')))"
    )
}

/// What a webhook delivery of a step is made from, in one round trip: the task as submitted,
/// the step's instructions (fixed at submission), and the finished reports it takes inputs from.
pub struct DeliveryRead {
    pub task: TaskRow,
    pub instructions: String,
    pub reports: Vec<ReportRow>,
}

pub async fn read_for_delivery(db: &D1Database, task_id: &str, step_id: &str) -> Result<Option<DeliveryRead>> {
    #[derive(Deserialize)]
    struct Instructions {
        instructions: String,
    }
    trip()?;
    let results = db
        .batch(vec![
            db.statement(format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1")).bind(&[task_id.into()])?,
            db.statement("SELECT instructions FROM steps WHERE id = ?1").bind(&[step_id.into()])?,
            db.statement(input_reports_sql("?1", "reader.id = ?2")).bind(&[task_id.into(), step_id.into()])?,
        ])
        .await?;
    let task = results.first().map(|r| r.results::<TaskRow>()).transpose()?.and_then(|t| t.into_iter().next());
    let instructions =
        results.get(1).map(|r| r.results::<Instructions>()).transpose()?.and_then(|i| i.into_iter().next());
    let (Some(task), Some(instructions)) = (task, instructions) else { return Ok(None) };
    let reports = results.get(2).map(|r| r.results()).transpose()?.unwrap_or_default();
    Ok(Some(DeliveryRead { task, instructions: instructions.instructions, reports }))
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

/// The guard row's statement. A task-wide transition: the task is at its version, every lease
/// expiry it read is unchanged (heartbeats move them without a version; see `core::engine`),
/// and every step it read as leasable still is, at the same attempt (leases take steps without
/// a version). A lease: the task is there and not cancelled, and its step is still leasable at
/// the attempt and ready time read. And `guard` holds.
fn guard_statement(
    db: &D1Database,
    before: &Task,
    transition: &Transition,
    guard: &Guard,
) -> Result<D1PreparedStatement> {
    let mut binds = vec![JsValue::from(before.id.as_str())];
    let state = match &transition.scope {
        Scope::Task => {
            let expiries: serde_json::Map<String, serde_json::Value> =
                transition.expiries_read.iter().map(|(id, at)| (id.clone(), at.as_millis().into())).collect();
            let leasable: serde_json::Map<String, serde_json::Value> =
                transition.leasable_read.iter().map(|(id, attempt)| (id.clone(), (*attempt).into())).collect();
            binds.extend([
                int(before.version),
                serde_json::Value::Object(expiries).to_string().into(),
                serde_json::Value::Object(leasable).to_string().into(),
            ]);
            "COALESCE((SELECT version FROM tasks WHERE id = ?1) = ?2, 0)
             AND NOT EXISTS (SELECT 1 FROM json_each(?3) AS read JOIN steps ON steps.id = read.key
                             WHERE steps.lease_expires_at IS NOT read.value)
             AND NOT EXISTS (SELECT 1 FROM json_each(?4) AS read JOIN steps ON steps.id = read.key
                             WHERE steps.status != 'queued' OR steps.ready_at IS NULL OR steps.attempt != read.value)"
        }
        Scope::Step(step_id) => {
            let read = before.step(step_id).ok_or_else(|| worker::Error::RustError(format!("no step {step_id}")))?;
            binds.extend([step_id.as_str().into(), int(i64::from(read.attempt)), opt_time(read.ready_at)]);
            "COALESCE((SELECT status FROM tasks WHERE id = ?1) != 'cancelled', 0)
             AND EXISTS (SELECT 1 FROM steps WHERE id = ?2 AND task_id = ?1 AND status = 'queued'
                                                AND attempt = ?3 AND ready_at = ?4)"
        }
    };
    let extra = match guard {
        Guard::Version => String::new(),
        Guard::AgentBelow { agent, max_concurrency } => {
            binds.extend([(*agent).into(), int(*max_concurrency)]);
            let (a, m) = (binds.len() - 1, binds.len());
            format!("AND (SELECT COUNT(*) FROM steps WHERE agent = ?{a} AND status = 'leased') < ?{m}")
        }
    };
    db.statement(format!(
        "INSERT INTO transition_guard (id, ok) VALUES (1, {state} {extra})
         ON CONFLICT (id) DO UPDATE SET ok = excluded.ok"
    ))
    .bind(&binds)
}

/// Extends a lease while the step is still leased under it: a heartbeat, written without the
/// task's version (see `core::engine`). False when the lease is not the step's any more.
pub async fn extend_lease(db: &D1Database, extension: &Extension) -> Result<bool> {
    trip()?;
    let result = db
        .statement("UPDATE steps SET lease_expires_at = ?3 WHERE id = ?1 AND lease_id = ?2 AND status = 'leased'")
        .bind(&[
            extension.step_id.as_str().into(),
            extension.lease_id.as_str().into(),
            int(extension.expires_at.as_millis()),
        ])?
        .run()
        .await?;
    Ok(result.meta()?.and_then(|m| m.changes).unwrap_or(0) > 0)
}

fn event_statement(
    db: &D1Database,
    task_id: &str,
    event: &Event,
    dedupe_key: String,
    now: Timestamp,
) -> Result<D1PreparedStatement> {
    db.statement(
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
    db.statement(
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
    db.statement(
        "UPDATE steps SET status = ?2, attempt = ?3, attempts_max = ?4, lease_id = ?5, lease_expires_at = ?6,
                queued_at = ?7, due_at = ?8, ready_at = ?9, started_at = ?10, finished_at = ?11, error = ?12,
                skip_reason = ?13, schedule_deadline_at = ?14, attempt_deadline_at = ?15, report_fields = ?16,
                child_run = ?17, version = version + 1
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
        text_or_null(step.skip_reason.as_deref()),
        opt_time(step.schedule_deadline_at),
        opt_time(step.attempt_deadline_at),
        text_or_null(step.report_fields.as_ref().and_then(|f| serde_json::to_string(f).ok()).as_deref()),
        text_or_null(step.child_run.as_ref().and_then(|c| serde_json::to_string(c).ok()).as_deref()),
    ])
}

/// What a lease writes on its step: the columns `Step::take_lease` sets, and the step's row
/// version. The rest of the row may have moved since the lease read it.
fn leased_step_statement(db: &D1Database, step: &Step) -> Result<D1PreparedStatement> {
    db.statement(
        "UPDATE steps SET status = ?2, attempt = ?3, lease_id = ?4, lease_expires_at = ?5, schedule_deadline_at = ?6,
                attempt_deadline_at = ?7, started_at = ?8, version = version + 1
         WHERE id = ?1",
    )
    .bind(&[
        step.id.as_str().into(),
        step.status.as_str().into(),
        int(i64::from(step.attempt)),
        text_or_null(step.lease_id.as_deref()),
        opt_time(step.lease_expires_at),
        opt_time(step.schedule_deadline_at),
        opt_time(step.attempt_deadline_at),
        opt_time(step.started_at),
    ])
}

/// The instructions of a step of a loop's item (SQL over the step's `instructions`, with the
/// item's part bound as `?{part}`): `loop` is the item's part, and a loop's steps that were
/// already in an item of a loop around it keep that one as `loop.outer`.
fn with_loop_part(part: u8) -> String {
    format!(
        "json_set(instructions, '$.loop', CASE WHEN json_type(instructions, '$.loop') IS NULL THEN json(?{part})
                                        ELSE json_set(json(?{part}), '$.outer', json(json_extract(instructions, '$.loop'))) END)"
    )
}

/// The statement that adds a step a `FOR each` loop made for a later item: a copy of the
/// planned step `item.template_id` under the new step's id, key, parent and dependencies (its
/// status set by the [`step_statement`] after it), with the item in its instructions.
fn new_step_statement(db: &D1Database, step: &Step, item: &LoopItem) -> Result<D1PreparedStatement> {
    let instructions = with_loop_part(5);
    db.statement(format!(
        "INSERT INTO steps (id, task_id, key, name, runner, agent, status, depends_on, attempt, attempts_max,
                            attempts_budget, instructions, optional, schedule_timeout_ms, attempt_timeout_ms,
                            heartbeat_ms, gate, parent, child_run)
         SELECT ?1, task_id, ?2, name, runner, agent, 'pending', ?3, 0, attempts_max, attempts_budget,
                json_set({instructions}, '$.workflow.step.key', ?2, '$.workflow.step.depends_on', json(?3)),
                optional, schedule_timeout_ms, attempt_timeout_ms, heartbeat_ms, ?6, ?7, child_run
         FROM steps WHERE id = ?4"
    ))
    .bind(&[
        step.id.as_str().into(),
        step.key.as_str().into(),
        serde_json::to_string(&step.depends_on).unwrap_or_else(|_| "[]".into()).into(),
        item.template_id.as_str().into(),
        item.part.to_string().into(),
        text_or_null(step.gate.as_ref().and_then(|g| serde_json::to_string(g).ok()).as_deref()),
        text_or_null(step.parent.as_deref()),
    ])
}

/// The statement that tells a planned step which item of its loop it is for.
fn loop_item_statement(db: &D1Database, item: &LoopItem) -> Result<D1PreparedStatement> {
    db.statement(format!("UPDATE steps SET instructions = {} WHERE id = ?1", with_loop_part(2)))
        .bind(&[item.step_id.as_str().into(), item.part.to_string().into()])
}

/// Something written with a transition besides the state: a report, or an attempt's log key.
#[derive(Clone)]
pub enum Extra {
    /// An attempt's report and what the attempt cost; with the change figures, the step's
    /// report too when the attempt succeeded.
    Report {
        step_id: String,
        attempt: u32,
        report: ReportRef,
        counts: ReportCounts,
        usage: Usage,
        succeeded: bool,
    },
    LogKey {
        step_id: String,
        attempt: u32,
        key: String,
    },
    /// A summary a built-in step wrote to R2.
    Summary(SummaryRow),
}

/// Writes a transition decided on `before`, in one batch that applies only if its guard holds
/// (see [`guard_statement`]). Only what changed is written; a lease writes its step's lease
/// columns alone ([`leased_step_statement`]) and leaves the task's version. `read_after` go at
/// the end of the batch: what they read once the transition applied (nothing when it did not),
/// in the same round trip.
pub async fn write_transition(
    db: &D1Database,
    before: &Task,
    transition: &Transition,
    guard: &Guard<'_>,
    extras: &[Extra],
    now: Timestamp,
    read_after: Vec<D1PreparedStatement>,
) -> Result<(Write, Vec<D1Result>)> {
    let after = &transition.task;
    let mut statements = vec![guard_statement(db, before, transition, guard)?];
    match &transition.scope {
        Scope::Task => statements.push(
            db.statement(
                "UPDATE tasks SET status = ?2, version = ?3, updated_at = ?4, finished_at = ?5, selection = ?6
                 WHERE id = ?1",
            )
            .bind(&[
                after.id.as_str().into(),
                after.status.as_str().into(),
                int(after.version),
                int(now.as_millis()),
                opt_time(after.finished_at),
                text_or_null(after.selection.as_ref().and_then(|s| serde_json::to_string(s).ok()).as_deref()),
            ])?,
        ),
        Scope::Step(_) => statements.push(
            db.statement("UPDATE tasks SET updated_at = ?2 WHERE id = ?1")
                .bind(&[after.id.as_str().into(), int(now.as_millis())])?,
        ),
    }
    for step in &after.steps {
        let old = before.steps.iter().find(|s| s.id == step.id);
        if old.is_some_and(|old| old == step) {
            continue;
        }
        if old.is_none() {
            let Some(item) = transition.loop_items.iter().find(|item| item.step_id == step.id) else {
                return Err(worker::Error::RustError(format!("step {} is new but no loop made it", step.id)));
            };
            statements.push(new_step_statement(db, step, item)?);
        }
        statements.push(match transition.scope {
            Scope::Task => step_statement(db, step)?,
            Scope::Step(_) => leased_step_statement(db, step)?,
        });
        for attempt in &step.attempts {
            let old_attempt = old.and_then(|o| o.attempts.iter().find(|a| a.number == attempt.number));
            if old_attempt != Some(attempt) {
                statements.push(attempt_statement(db, &step.id, attempt)?);
            }
        }
    }
    // After the copies, which read their template's instructions as they were.
    for item in transition.loop_items.iter().filter(|item| item.step_id == item.template_id) {
        statements.push(loop_item_statement(db, item)?);
    }
    for extra in extras {
        statements.extend(extra_statements(db, extra)?);
    }
    for (index, event) in transition.events.iter().enumerate() {
        // Unique per applied transition: the guard lets each version be written once, and each
        // attempt of a step be leased once.
        let dedupe_key = match &transition.scope {
            Scope::Task => format!("{}:{}:{index}", after.id, after.version),
            Scope::Step(step_id) => {
                let attempt = after.step(step_id).map_or(0, |s| s.attempt);
                format!("{}:{step_id}:{attempt}:{index}", after.id)
            }
        };
        statements.push(event_statement(db, &after.id, event, dedupe_key, now)?);
    }
    guarded_batch(db, statements, read_after).await
}

/// Runs `statements` (a guard row first) with `read_after` at their end, in one round trip:
/// `Stale` when the guard did not hold and nothing was written, else what `read_after` read.
async fn guarded_batch(
    db: &D1Database,
    mut statements: Vec<D1PreparedStatement>,
    read_after: Vec<D1PreparedStatement>,
) -> Result<(Write, Vec<D1Result>)> {
    let written = statements.len();
    statements.extend(read_after);
    change_trip().await?;
    match db.batch(statements).await {
        Ok(mut results) => Ok((Write::Done, results.split_off(written.min(results.len())))),
        Err(err) if err.to_string().contains("stale_state") => Ok((Write::Stale, Vec::new())),
        Err(err) => Err(err),
    }
}

/// The statements that write what a transition carries besides the state.
fn extra_statements(db: &D1Database, extra: &Extra) -> Result<Vec<D1PreparedStatement>> {
    let mut statements = Vec::new();
    match extra {
        Extra::Report { step_id, attempt, report, usage, succeeded, counts } => {
            let figure = |n: Option<u64>| n.map_or(JsValue::NULL, |n| int(i64::try_from(n).unwrap_or(i64::MAX)));
            let (inline, key) = match report {
                ReportRef::Inline(json) => (Some(json.as_str()), None),
                ReportRef::Stored(key) => (None, Some(key.as_str())),
            };
            statements.push(
                db.statement(
                    "UPDATE attempts SET report = ?3, report_key = ?4, cost_usd = ?5, turns = ?6, input_tokens = ?7,
                            output_tokens = ?8
                     WHERE step_id = ?1 AND attempt = ?2",
                )
                .bind(&[
                    step_id.as_str().into(),
                    int(i64::from(*attempt)),
                    text_or_null(inline),
                    text_or_null(key),
                    usage.cost_usd.map_or(JsValue::NULL, JsValue::from),
                    figure(usage.turns),
                    figure(usage.input_tokens),
                    figure(usage.output_tokens),
                ])?,
            );
            if *succeeded {
                statements.push(
                    db.statement(
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
                    ])?,
                );
            }
        }
        Extra::Summary(row) => statements.push(
            db.statement(
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
        ),
        Extra::LogKey { step_id, attempt, key } => statements.push(
            db.statement("UPDATE attempts SET log_key = ?3 WHERE step_id = ?1 AND attempt = ?2").bind(&[
                step_id.as_str().into(),
                int(i64::from(*attempt)),
                key.as_str().into(),
            ])?,
        ),
    }
    Ok(statements)
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
    /// What the submission's read found, when the isolate kept that read rather than made it.
    pub read_guard: Option<&'a ReadGuard>,
}

/// What a task's insert must find as its submission read it, when that read was one an isolate
/// kept: each workflow or posted file by name at its latest version (`None`: nothing posted
/// under the name), and every registered agent at its version, no more and no fewer.
pub struct ReadGuard {
    pub workflows: Vec<(String, Option<i64>)>,
    pub agents: Vec<(String, i64)>,
}

/// The route name idempotency keys of task submissions are stored under.
const SUBMIT_ROUTE: &str = "POST /v1/tasks";

/// Inserts a task, its steps and its first events in one batch, which applies only while fewer
/// than `TASKS_RUNNING_MAX` tasks run and, with an idempotency key, only if the key is new:
/// `Write::Stale` means one of these did not hold.
/// Inserts a submitted task, its steps and first events in one guarded batch; `read_after` go at
/// its end, as in [`write_transition`].
pub async fn insert_task(
    db: &D1Database,
    new: &NewTask<'_>,
    now: Timestamp,
    read_after: Vec<D1PreparedStatement>,
) -> Result<(Write, Vec<D1Result>)> {
    let task = new.task;
    // The guard: fewer than TASKS_RUNNING_MAX tasks are running, the idempotency key (if any)
    // is new, and a kept read (if any) is still what D1 holds. Any failing rolls the batch back
    // as `Write::Stale`.
    let (workflows, agents) = match new.read_guard {
        Some(guard) => (
            serde_json::to_string(&guard.workflows).map_err(|e| worker::Error::RustError(e.to_string()))?.into(),
            serde_json::to_string(&guard.agents).map_err(|e| worker::Error::RustError(e.to_string()))?.into(),
        ),
        None => (JsValue::NULL, JsValue::NULL),
    };
    let mut statements = vec![db
        .statement(
            "INSERT INTO transition_guard (id, ok)
             VALUES (1, (SELECT COUNT(*) FROM tasks WHERE status = 'running') < ?3
                        AND NOT EXISTS (SELECT 1 FROM idempotency_keys WHERE key = ?1 AND route = ?2)
                        AND (?4 IS NULL OR (
                          NOT EXISTS (SELECT 1 FROM json_each(?4) AS w
                                      WHERE (SELECT MAX(version) FROM workflows WHERE name = w.value ->> 0)
                                            IS NOT w.value ->> 1)
                          AND (SELECT COUNT(*) FROM agents) = json_array_length(?5)
                          AND NOT EXISTS (SELECT 1 FROM json_each(?5) AS a
                                          WHERE NOT EXISTS (SELECT 1 FROM agents
                                                            WHERE name = a.value ->> 0 AND version = a.value ->> 1)))))
             ON CONFLICT (id) DO UPDATE SET ok = excluded.ok",
        )
        .bind(&[
            text_or_null(new.idempotency.map(|(key, _, _)| key)),
            SUBMIT_ROUTE.into(),
            int(TASKS_RUNNING_MAX),
            workflows,
            agents,
        ])?];
    if let Some((key, hash, response)) = new.idempotency {
        statements.push(
            db.statement(
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
        db.statement(
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
            db.statement(
                "INSERT INTO steps (id, task_id, key, name, runner, agent, status, depends_on, attempt, attempts_max,
                                    attempts_budget, queued_at, due_at, finished_at, skip_reason, instructions,
                                    optional, schedule_timeout_ms, attempt_timeout_ms, heartbeat_ms, gate, parent,
                                    child_run, started_at, ready_at, schedule_deadline_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
                         ?21, ?22, ?23, ?24, ?25)",
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
                int(i64::from(step.optional)),
                opt_int(step.timeouts.schedule_ms),
                opt_int(step.timeouts.attempt_ms),
                opt_int(step.timeouts.heartbeat_ms),
                text_or_null(step.gate.as_ref().and_then(|g| serde_json::to_string(g).ok()).as_deref()),
                text_or_null(step.parent.as_deref()),
                text_or_null(step.child_run.as_ref().and_then(|c| serde_json::to_string(c).ok()).as_deref()),
                opt_time(step.started_at),
                // Set when the first step is made leasable at creation (`leasable_at_once`).
                opt_time(step.ready_at),
                opt_time(step.schedule_deadline_at),
            ])?,
        );
    }
    for (index, event) in new.events.iter().enumerate() {
        statements.push(event_statement(db, &task.id, event, format!("{}:1:{index}", task.id), now)?);
    }
    guarded_batch(db, statements, read_after).await
}

#[derive(Debug, Clone, Deserialize)]
pub struct IdempotencyRow {
    pub request_hash: String,
    pub status: i64,
    pub response: String,
}

pub async fn submission_by_key(db: &D1Database, key: &str) -> Result<Option<IdempotencyRow>> {
    trip()?;
    db.statement("SELECT request_hash, status, response FROM idempotency_keys WHERE key = ?1 AND route = ?2")
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
    // Only the filters given are in the statement: `(?1 IS NULL OR status = ?1)` would make
    // SQLite walk every task newest first to find a rare status or a deep cursor, where
    // `status = ?` and `id < ?` seek straight to the page in `tasks_by_status` or the key.
    let mut conditions = Vec::new();
    let mut binds = Vec::new();
    for (column, value) in [("status = ", status), ("id < ", before)] {
        if let Some(value) = value {
            binds.push(JsValue::from(value));
            conditions.push(format!("{column}?{}", binds.len()));
        }
    }
    let filter = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    binds.push(int(i64::from(limit)));
    trip()?;
    db.statement(format!(
        "SELECT id, title, status, workflow_name, workflow_version,
                json_extract(analysis, '$.task_type') AS task_type, json_extract(analysis, '$.agents') AS agents,
                created_at, updated_at, finished_at
         FROM tasks {filter}
         ORDER BY id DESC LIMIT ?{}",
        binds.len()
    ))
    .bind(&binds)?
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
    trip()?;
    db.statement(
        "SELECT seq, step_id, kind, data, created_at FROM events
         WHERE task_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )
    .bind(&[task_id.into(), int(after_seq), int(i64::from(limit))])?
    .all()
    .await?
    .results()
}

/// How many steps `agent` holds leased now.
pub async fn leased_count(db: &D1Database, agent: &str) -> Result<i64> {
    #[derive(Deserialize)]
    struct Row {
        n: i64,
    }
    trip()?;
    let row: Option<Row> = db
        .statement("SELECT COUNT(*) AS n FROM steps WHERE agent = ?1 AND status = 'leased'")
        .bind(&[agent.into()])?
        .first(None)
        .await?;
    Ok(row.map_or(0, |r| r.n))
}

/// A step waiting, leasable, for its agent: the task, the step, and the attempt it would start.
#[derive(Deserialize)]
pub struct WaitingStep {
    pub task_id: String,
    pub id: String,
    pub attempt: u32,
}

/// The oldest `limit` leasable steps of `agent`.
pub async fn waiting_steps(db: &D1Database, agent: &str, limit: i64) -> Result<Vec<WaitingStep>> {
    trip()?;
    db.statement(
        "SELECT task_id, id, attempt + 1 AS attempt FROM steps
         WHERE agent = ?1 AND status = 'queued' AND ready_at IS NOT NULL ORDER BY ready_at, id LIMIT ?2",
    )
    .bind(&[agent.into(), int(limit)])?
    .all()
    .await?
    .results()
}

/// Webhook agents with steps waiting, leasable, for room.
pub async fn webhook_agents_waiting(db: &D1Database) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        name: String,
    }
    trip()?;
    let rows: Vec<Row> = db
        .statement(
            "SELECT name FROM agents WHERE mode = 'webhook' AND EXISTS (SELECT 1 FROM steps
                 WHERE steps.agent = agents.name AND steps.status = 'queued' AND steps.ready_at IS NOT NULL)",
        )
        .all()
        .await?
        .results()?;
    Ok(rows.into_iter().map(|r| r.name).collect())
}

/// Tasks the cron sweep has something to do for, the longest due first: an expired lease, an
/// attempt past its timeout, a step past its schedule timeout, or a message overdue by
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
    trip()?;
    let rows: Vec<Row> = db
        .statement(
            "SELECT task_id FROM steps
             WHERE (status = 'leased' AND (lease_expires_at <= ?1 OR attempt_deadline_at <= ?1))
                OR (status IN ('queued', 'failed') AND (schedule_deadline_at <= ?1 OR (ready_at IS NULL AND due_at <= ?2)))
             GROUP BY task_id
             ORDER BY MIN(COALESCE(lease_expires_at, schedule_deadline_at, due_at))
             LIMIT ?3",
        )
        .bind(&[int(now.as_millis()), int(now.as_millis() - redispatch_after_ms), int(i64::from(limit))])?
        .all()
        .await?
        .results()?;
    Ok(rows.into_iter().map(|r| r.task_id).collect())
}
