//! What the records read: reports and figures of a task's steps, summaries, and the per-agent
//! aggregates.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use worker::{D1Database, D1PreparedStatement, D1Result, Result};

use super::{int, trip, Statement};
use crate::core::base::time::Timestamp;
use crate::core::records::archive::day_start;
use crate::core::records::metrics::Usage;

/// A step as the records read it: its report, figures and times, in workflow order.
#[derive(Debug, Deserialize)]
pub struct RecordRow {
    pub key: String,
    /// For a step that runs a child run: its file and version, as JSON.
    pub child_run: Option<String>,
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
    /// Summed over the step's attempts; NULL when no attempt's tool reported the figure.
    pub cost_usd: Option<f64>,
    pub turns: Option<i64>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
}

/// The usage columns of a row (`cost_usd`, `turns`, `input_tokens`, `output_tokens`) as the
/// metrics count them: NULL stays "not reported".
fn usage_of(cost_usd: Option<f64>, turns: Option<i64>, input_tokens: Option<i64>, output_tokens: Option<i64>) -> Usage {
    let count = |n: Option<i64>| n.map(|n| u64::try_from(n).unwrap_or(0));
    Usage { cost_usd, turns: count(turns), input_tokens: count(input_tokens), output_tokens: count(output_tokens) }
}

impl RecordRow {
    pub fn usage(&self) -> Usage {
        usage_of(self.cost_usd, self.turns, self.input_tokens, self.output_tokens)
    }
}

impl AggregateRow {
    pub fn usage(&self) -> Usage {
        usage_of(self.cost_usd, self.turns, self.input_tokens, self.output_tokens)
    }
}

/// The steps the agent metrics count: an agent's steps that ended, succeeded or dead, after
/// starting. Shared by the live figures and the per-day totals archival writes.
pub(super) const ENDED_AGENT_STEPS: &str = "agent IS NOT NULL AND finished_at IS NOT NULL \
     AND status IN ('succeeded', 'dead') AND started_at IS NOT NULL";

/// The usage figures of a step, summed over its attempts, as columns of a query on `steps`.
pub(super) const STEP_USAGE: &str = "(SELECT SUM(cost_usd) FROM attempts a WHERE a.step_id = steps.id) AS cost_usd,
     (SELECT SUM(turns) FROM attempts a WHERE a.step_id = steps.id) AS turns,
     (SELECT SUM(input_tokens) FROM attempts a WHERE a.step_id = steps.id) AS input_tokens,
     (SELECT SUM(output_tokens) FROM attempts a WHERE a.step_id = steps.id) AS output_tokens";

/// Every step of a task with its records, in workflow order.
pub async fn task_records(db: &D1Database, task_id: &str) -> Result<Vec<RecordRow>> {
    trip()?;
    task_records_statement(db, task_id)?.all().await?.results()
}

fn task_records_statement(db: &D1Database, task_id: &str) -> Result<D1PreparedStatement> {
    db.statement(format!(
        "SELECT key, name, agent, status, skip_reason, error, report, report_key, attempt, started_at,
                finished_at, child_run, files_created, files_modified, lines_added, lines_removed, {STEP_USAGE}
         FROM steps WHERE task_id = ?1 ORDER BY rowid"
    ))
    .bind(&[task_id.into()])
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

/// What a built-in step summarises: the task with its workflow, and every step with its
/// records.
pub type SummaryInputs = (SummaryTaskRow, Vec<RecordRow>);

/// [`SummaryInputs`] in one round trip. `None` when the task is gone.
pub async fn summary_inputs(db: &D1Database, task_id: &str) -> Result<Option<SummaryInputs>> {
    let statements = summary_statements(db, task_id)?;
    trip()?;
    summary_inputs_of(&db.batch(statements).await?)
}

/// The statements of [`summary_inputs`], for a batch of their own or at the end of the batch of
/// the transition that queued the built-in step (see `write_transition`).
pub fn summary_statements(db: &D1Database, task_id: &str) -> Result<Vec<D1PreparedStatement>> {
    let task = db
        .statement(
            "SELECT t.title, t.description, t.input, json_extract(t.analysis, '$.task_type') AS task_type, t.status,
                    w.definition
             FROM tasks t JOIN workflows w ON w.id = t.workflow_id WHERE t.id = ?1",
        )
        .bind(&[task_id.into()])?;
    Ok(vec![task, task_records_statement(db, task_id)?])
}

/// What the statements of [`summary_statements`] read.
pub fn summary_inputs_of(results: &[D1Result]) -> Result<Option<SummaryInputs>> {
    let (Some(task), Some(steps)) = (results.first(), results.get(1)) else {
        return Err(worker::Error::RustError("a summary read returned too few results".into()));
    };
    let Some(task) = task.results::<SummaryTaskRow>()?.into_iter().next() else { return Ok(None) };
    Ok(Some((task, steps.results()?)))
}

/// An attempt its agent completed, as that agent's log shows it.
#[derive(Debug, Deserialize)]
pub struct CompletedAttemptRow {
    pub key: String,
    pub name: String,
    pub agent: String,
    pub attempt: i64,
    pub status: String,
    pub finished_at: i64,
    /// The R2 key of the attempt's own log, when the completion sent one.
    pub log_key: Option<String>,
    pub report: Option<String>,
    pub report_key: Option<String>,
}

/// Every attempt of the task that an agent answered with a completion (late answers included;
/// not the ones only the sweep ended), in the order they ended. `None` when the task does not
/// exist. One round trip.
pub async fn completed_attempts(db: &D1Database, task_id: &str) -> Result<Option<Vec<CompletedAttemptRow>>> {
    trip()?;
    let task = task_exists_statement(db, task_id)?;
    let attempts = db
        .statement(
            "SELECT s.key, s.name, COALESCE(a.agent, s.agent) AS agent, a.attempt, a.status,
                    a.finished_at, a.log_key, a.report, a.report_key
             FROM steps s JOIN attempts a ON a.step_id = s.id
             WHERE s.task_id = ?1 AND a.completion_hash IS NOT NULL AND a.finished_at IS NOT NULL
               AND COALESCE(a.agent, s.agent) IS NOT NULL
             ORDER BY a.finished_at, s.rowid, a.attempt",
        )
        .bind(&[task_id.into()])?;
    let results = db.batch(vec![task, attempts]).await?;
    let (Some(task), Some(attempts)) = (results.first(), results.get(1)) else {
        return Err(worker::Error::RustError("a log read returned too few results".into()));
    };
    if task.results::<serde_json::Value>()?.is_empty() {
        return Ok(None);
    }
    Ok(Some(attempts.results()?))
}

/// Whether a task exists.
pub async fn task_exists(db: &D1Database, task_id: &str) -> Result<bool> {
    #[derive(Deserialize)]
    struct Row {
        #[allow(dead_code)]
        id: String,
    }
    trip()?;
    let row: Option<Row> = task_exists_statement(db, task_id)?.first(None).await?;
    Ok(row.is_some())
}

/// The task's id when it exists: no row when it does not.
fn task_exists_statement(db: &D1Database, task_id: &str) -> Result<D1PreparedStatement> {
    db.statement("SELECT id FROM tasks WHERE id = ?1").bind(&[task_id.into()])
}

/// Whether `agent` holds or held a step of the task: one started at least once under its name.
pub async fn agent_worked_on(db: &D1Database, task_id: &str, agent: &str) -> Result<bool> {
    #[derive(Deserialize)]
    struct Row {
        #[allow(dead_code)]
        id: String,
    }
    trip()?;
    let row: Option<Row> = db
        .statement("SELECT id FROM steps WHERE task_id = ?1 AND agent = ?2 AND attempt > 0 LIMIT 1")
        .bind(&[task_id.into(), agent.into()])?
        .first(None)
        .await?;
    Ok(row.is_some())
}

/// The summary written last for a task, of any kind.
pub async fn latest_summary(db: &D1Database, task_id: &str) -> Result<Option<SummaryRow>> {
    trip()?;
    db.statement(
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
    pub cost_usd: Option<f64>,
    pub turns: Option<i64>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
}

/// Per agent, over its steps that ended (succeeded or dead) at or after `since`: counts, totals
/// and nearest-rank p50/p95 durations, computed in one D1 query that reads the steps once (window
/// functions rank each agent's durations) and returns one row per agent (the percentile rank is
/// `metrics::nearest_rank`). In the same round trip, the per-day totals of archived tasks' steps
/// from the day `since` falls in (without percentiles: the totals keep no durations).
pub async fn agent_aggregates(db: &D1Database, since: Timestamp) -> Result<(Vec<AggregateRow>, Vec<AggregateRow>)> {
    let live = db
        .statement(format!(
            "SELECT agent, COUNT(*) AS steps, MAX(succeeded) AS succeeded,
                MAX(CASE WHEN position = MAX(1, (total * 50 + 99) / 100) THEN duration END) AS p50_ms,
                MAX(CASE WHEN position = MAX(1, (total * 95 + 99) / 100) THEN duration END) AS p95_ms,
                SUM(files_created) AS files_created, SUM(files_modified) AS files_modified,
                SUM(lines_added) AS lines_added, SUM(lines_removed) AS lines_removed,
                SUM(cost_usd) AS cost_usd, SUM(turns) AS turns, SUM(input_tokens) AS input_tokens,
                SUM(output_tokens) AS output_tokens
         FROM (
           SELECT agent, finished_at - started_at AS duration, files_created, files_modified, lines_added,
                  lines_removed, {STEP_USAGE},
                  ROW_NUMBER() OVER (PARTITION BY agent ORDER BY finished_at - started_at) AS position,
                  COUNT(*) OVER (PARTITION BY agent) AS total,
                  SUM(status = 'succeeded') OVER (PARTITION BY agent) AS succeeded
           FROM steps
           WHERE {ENDED_AGENT_STEPS} AND finished_at >= ?1
         )
         GROUP BY agent ORDER BY agent"
        ))
        .bind(&[int(since.as_millis())])?;
    let archived = db
        .statement(
            "SELECT agent, SUM(steps) AS steps, SUM(succeeded) AS succeeded, NULL AS p50_ms, NULL AS p95_ms,
                SUM(files_created) AS files_created,
                SUM(files_modified) AS files_modified, SUM(lines_added) AS lines_added,
                SUM(lines_removed) AS lines_removed, SUM(cost_usd) AS cost_usd, SUM(turns) AS turns,
                SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens
             FROM agent_days WHERE day >= ?1
             GROUP BY agent ORDER BY agent",
        )
        .bind(&[int(day_start(since.as_millis()))])?;
    trip()?;
    let results = db.batch(vec![live, archived]).await?;
    let (Some(live), Some(archived)) = (results.first(), results.get(1)) else {
        return Err(worker::Error::RustError("the metrics read returned too few results".into()));
    };
    if let Ok(Some(meta)) = live.meta() {
        AGGREGATE_ROWS_READ.store(meta.rows_read.unwrap_or(0) as u64, Ordering::Relaxed);
    }
    Ok((live.results()?, archived.results()?))
}

/// Rows D1 read for the last `agent_aggregates` query of this isolate, for the benchmark.
static AGGREGATE_ROWS_READ: AtomicU64 = AtomicU64::new(0);

pub fn aggregate_rows_read() -> u64 {
    AGGREGATE_ROWS_READ.load(Ordering::Relaxed)
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
